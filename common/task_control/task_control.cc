#include "common/task_control/task_control.h"

namespace farm {

void TaskControl::Cancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  if (current_ != nullptr) current_->Cancel();
}

bool TaskControl::cancelled() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

void TaskControl::SetContainer(ProcessContainer* container) {
  absl::MutexLock lock(&mu_);
  container_ = container;
}

ProcessContainer* TaskControl::container() const {
  absl::MutexLock lock(&mu_);
  return container_;
}

void TaskControl::SetCurrent(Subprocess* p) {
  absl::MutexLock lock(&mu_);
  current_ = p;
  if (p != nullptr && cancelled_) p->Cancel();
}

}  // namespace farm
