// TaskRunner: one task on one slot: checkout -> build -> test -> verdict, as a pipeline of steps
// (agent/runner/steps.h) with the disk-full check and the pristine retry wrapped around each
// attempt (agent/runner/attempt_guards.h).
//
// The test's exit code is read with `git bisect run`'s contract (common/verdict.h). A failed build
// or a test that says 125 is retried once in a pristine worktree (untracked and ignored files
// removed, empty build directory) before the commit counts as a skip: stale generated files from
// another commit are not a verdict. A test killed by a signal, one that times out, or a checkout
// that fails is an infrastructure error, never a verdict; so is a failed build, or a test that
// says bad or skip, when the disk is full (the filesystem of the slot's worktree, build
// directory or the agent's scratch directory has almost no space left, or the checkout or build
// printed "No space left on device"): the error names the filesystem and what to do.
//
// Every process of a task runs in its container (a cgroup of its own where the agent may make one,
// else its process group and an environment cookie: common/subprocess/containment.h); what is
// left when a step's command exits is killed and listed in the task's log.
#ifndef FARM_AGENT_RUNNER_TASK_RUNNER_H_
#define FARM_AGENT_RUNNER_TASK_RUNNER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "agent/runner/output_limiter.h"
#include "agent/workspace/workspace.h"
#include "common/subprocess/containment.h"
#include "common/task_control/task_control.h"
#include "farm/v1/farm.pb.h"

namespace farm {

class TaskRunner {
 public:
  using PhaseFn = std::function<void(farm::v1::Phase)>;
  using OutputFn = std::function<void(std::string_view)>;

  // `workspace` holds the worktrees; `scratch_dir` receives shipped test scripts. `ccache_dir`
  // is the kernel builds' ccache (empty: <scratch_dir>/ccache); several agents on one host may
  // share one (`farm bisect` gives its local agents one), so that one agent's compile is
  // another's hit.
  TaskRunner(Workspace* workspace, std::string scratch_dir, std::string ccache_dir = "")
      : workspace_(workspace),
        scratch_dir_(std::move(scratch_dir)),
        ccache_dir_(ccache_dir.empty() ? scratch_dir_ + "/ccache" : std::move(ccache_dir)) {}

  // How tasks' processes are contained (a cgroup per task where one can be made). Call before
  // the first Run.
  void set_containment(ContainmentOptions options) { containment_ = options; }

  // Runs the task on `slot`. Never fails: the result holds exactly one outcome (a verdict, an
  // infrastructure error, a job error when the test cannot start because of the job's input, or
  // cancelled). `jobs` is how many cores the task's build may use (FARM_JOBS in its
  // environment, make -j of a kernel build whose spec leaves jobs at 0); 0: every core of the
  // machine. Thread-safe for different slots.
  farm::v1::TaskResult Run(const farm::v1::Assign& task, int slot, TaskControl* control,
                           const PhaseFn& on_phase, const OutputFn& on_output, int jobs = 0);

 private:
  Workspace* workspace_;
  std::string scratch_dir_;
  std::string ccache_dir_;
  ContainmentOptions containment_;
};

}  // namespace farm

#endif  // FARM_AGENT_RUNNER_TASK_RUNNER_H_
