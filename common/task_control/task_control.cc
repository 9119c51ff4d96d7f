#include "agent/runner/task_control.h"

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

void TaskControl::SetCurrent(Subprocess* p) {
  absl::MutexLock lock(&mu_);
  current_ = p;
  if (p != nullptr && cancelled_) p->Cancel();
}

}  // namespace farm
