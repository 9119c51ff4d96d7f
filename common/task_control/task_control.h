// TaskControl: cancellation of a running task, shared between the agent's link (which receives
// Cancel) and whatever runs the task's steps (processes, builds, boots), and the container that
// holds the task's processes (common/subprocess/containment.h). In common/ because agent/build
// and agent/boot take it as well as agent/runner.
#ifndef FARM_COMMON_TASK_CONTROL_TASK_CONTROL_H_
#define FARM_COMMON_TASK_CONTROL_TASK_CONTROL_H_

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
  // The container every process of the task joins (SubprocessOptions::container); nullptr: none.
  // Set by the runner before the first step; not owned.
  void SetContainer(ProcessContainer* container);
  ProcessContainer* container() const;

 private:
  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  Subprocess* current_ ABSL_GUARDED_BY(mu_) = nullptr;
  ProcessContainer* container_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace farm

#endif  // FARM_COMMON_TASK_CONTROL_TASK_CONTROL_H_
