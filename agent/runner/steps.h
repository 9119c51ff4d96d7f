// The agent's task as a pipeline of steps: checkout -> build (a shell command or a kernel) ->
// test (a command or a boot). Each step does one thing and either passes the attempt on or ends
// it with an outcome; what concerns a whole attempt (the disk-full check, the pristine retry) is
// wrapped around the pipeline (agent/runner/attempt_guards.h), not written into the steps.
#ifndef FARM_AGENT_RUNNER_STEPS_H_
#define FARM_AGENT_RUNNER_STEPS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "agent/runner/output_limiter.h"
#include "agent/workspace/disk_space.h"
#include "agent/workspace/workspace.h"
#include "common/task_control/task_control.h"
#include "farm/v1/farm.pb.h"

namespace farm {

// How an attempt ended, or (kContinue) that a step passed it on to the next step.
struct StepOutcome {
  enum class Kind {
    kContinue,     // the step succeeded: run the next one
    kVerdict,      // the test decided (verdict)
    kBuildFailed,  // the build failed: a skip, unless a pristine retry builds
    kInfraError,   // the agent could not run the task (retried elsewhere)
    kJobError,     // the job's own input cannot run (ends the job; never the agent's fault)
    kCancelled,    // TaskControl::Cancel
  };
  Kind kind = Kind::kContinue;
  farm::v1::Verdict verdict = farm::v1::VERDICT_UNSPECIFIED;  // kVerdict only
  // In words: "exit 1", "build failed (exit 2)", or the error.
  std::string detail;

  static StepOutcome Continue() { return {}; }
  static StepOutcome Verdict(farm::v1::Verdict v, std::string detail) {
    return {Kind::kVerdict, v, std::move(detail)};
  }
  static StepOutcome Of(Kind kind, std::string detail) {
    return {kind, farm::v1::VERDICT_UNSPECIFIED, std::move(detail)};
  }
  static StepOutcome Cancelled() { return Of(Kind::kCancelled, "cancelled"); }
};

// What every step of one task shares, fixed for the task.
struct TaskContext {
  const farm::v1::Assign* task = nullptr;
  int slot = 0;
  Workspace* workspace = nullptr;
  TaskControl* control = nullptr;
  OutputLimiter* out = nullptr;
  std::string scratch_dir;   // the agent's: shipped scripts, initramfs, kernels
  std::string ccache_dir;    // kernel builds' ccache
  std::string test_program;  // test_argv[0], or the path of the shipped test script
  int jobs = 1;              // cores the build may use (FARM_JOBS, make -j)
};

// One attempt of a task: what its steps found and measured.
struct Attempt {
  bool pristine = false;
  // Set by the checkout, for the steps after it.
  std::string worktree;
  std::string build_dir;
  std::vector<std::pair<std::string, std::string>> env;  // the build's and the test's
  absl::Duration timeout = absl::InfiniteDuration();     // per step
  std::string kernel_image;                              // set by a kernel build
  // Measured.
  absl::Duration checkout, build, test;
  uint64_t files_written = 0;
  std::optional<farm::v1::KernelBuildStats> kernel_build;
  // ENOSPC's message in what the checkout and the build said (not the test: a test of a
  // program's ENOSPC handling may well print it).
  NoSpaceScanner no_space;
  StepOutcome outcome;  // how the attempt ended (never kContinue once it has run)
  // Set by the pristine retry on the attempt it returns: why there was a second attempt.
  std::string retry_reason;
};

// One step of the pipeline. Implementations are stateless: one pipeline may run several attempts.
class Step {
 public:
  virtual ~Step() = default;
  // The phase reported to the coordinator when the step starts.
  virtual farm::v1::Phase phase(const Attempt& attempt) const = 0;
  // Runs the step. kContinue: the next step runs; anything else ends the attempt. A step writes
  // what happened to task.out ("farm: ..." lines) and its duration into the attempt.
  virtual StepOutcome Run(const TaskContext& task, Attempt& attempt) const = 0;
};

// The steps for `task`: the checkout (an empty directory for a health check); the kernel build,
// or the shell build when there is a build command; the boot when recipe.boot is set, else the
// test command.
std::vector<std::unique_ptr<Step>> MakePipeline(const farm::v1::Assign& task);

// Runs `steps` in order until one ends the attempt, reporting each one's phase. A cancelled task
// ends as kCancelled whatever its step said (a killed step's exit is not its verdict).
Attempt RunPipeline(const std::vector<std::unique_ptr<Step>>& steps, const TaskContext& task,
                    bool pristine, const std::function<void(farm::v1::Phase)>& on_phase);

}  // namespace farm

#endif  // FARM_AGENT_RUNNER_STEPS_H_
