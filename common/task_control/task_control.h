// TaskControl: cancellation of a running task, shared between the agent's link (which receives
// Cancel) and whatever runs the task's steps (processes, builds, boots).
#ifndef FARM_AGENT_RUNNER_TASK_CONTROL_H_
#define FARM_AGENT_RUNNER_TASK_CONTROL_H_

#include "absl/synchronization/mutex.h"
#include "common/subprocess/subprocess.h"

namespace farm {

// Cancellation shared between the agent's link (which receives Cancel) and the runner.
// Thread-safe.
class TaskControl {
 public:
  // Kills the current step's process group and stops further steps.
  void Cancel();
  bool cancelled() const;
  // Used by the runner: the step now running (nullptr between steps).
  void SetCurrent(Subprocess* p);

 private:
  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  Subprocess* current_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace farm

#endif  // FARM_AGENT_RUNNER_TASK_CONTROL_H_
