// TaskRunner: one task on one slot: checkout -> build -> test -> verdict.
//
// The test's exit code is read with `git bisect run`'s contract (common/verdict.h). A failed build
// or a test that says 125 is retried once in a pristine worktree (untracked and ignored files
// removed, empty build directory) before the commit counts as a skip: stale generated files from
// another commit are not a verdict. A test killed by a signal, one that times out, or a checkout
// that fails is an infrastructure error, never a verdict; so is a failed build, or a test that
// says bad or skip, when the disk is full (the filesystem of the slot's worktree, build
// directory or the agent's scratch directory has almost no space left, or the checkout or build
// printed "No space left on device"): the error names the filesystem and what to do.
#ifndef FARM_AGENT_RUNNER_TASK_RUNNER_H_
#define FARM_AGENT_RUNNER_TASK_RUNNER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/synchronization/mutex.h"
#include "agent/runner/task_control.h"
#include "agent/workspace/workspace.h"
#include "common/subprocess/subprocess.h"
#include "farm/v1/farm.pb.h"

namespace farm {

// Keeps a task's output bounded: the first `head` bytes pass through, then only the last `tail`
// bytes are kept and flushed at the end behind a line that says how much was elided.
class OutputLimiter {
 public:
  using Sink = std::function<void(std::string_view)>;
  OutputLimiter(Sink sink, size_t head = 4 << 20, size_t tail = 1 << 20)
      : sink_(std::move(sink)), head_(head), tail_(tail) {}
  void Write(std::string_view data);
  // Flushes the kept tail. Call once, at the end.
  void Finish();
  uint64_t total() const { return total_; }

 private:
  Sink sink_;
  const size_t head_, tail_;
  uint64_t total_ = 0;
  uint64_t head_sent_ = 0;
  uint64_t after_head_ = 0;  // bytes past the head, of which the ring keeps the last tail_
  std::string ring_;
  size_t ring_pos_ = 0;
};

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

  // Runs the task on `slot`. Never fails: problems are reported in TaskResult.infra_error.
  // Thread-safe for different slots.
  farm::v1::TaskResult Run(const farm::v1::Assign& task, int slot, TaskControl* control,
                           const PhaseFn& on_phase, const OutputFn& on_output);

 private:
  struct Attempt;
  void RunOnce(const farm::v1::Assign& task, int slot, bool pristine,
               const std::string& test_program, TaskControl* control, const PhaseFn& on_phase,
               OutputLimiter& out, Attempt& attempt);
  // Turns a failed attempt (or a bad or skip verdict) on a full disk into an infrastructure
  // error that says where the disk is full (agent/workspace/disk_space.h).
  void ClassifyDiskFull(int slot, OutputLimiter& out, Attempt& attempt);
  // Boots the built (or named) kernel with the payload and reads the verdict.
  void RunBoot(const farm::v1::Assign& task, const std::string& worktree,
               const std::string& built_image, TaskControl* control, OutputLimiter& out,
               Attempt& attempt);

  Workspace* workspace_;
  std::string scratch_dir_;
  std::string ccache_dir_;
};

}  // namespace farm

#endif  // FARM_AGENT_RUNNER_TASK_RUNNER_H_
