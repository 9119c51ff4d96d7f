#include "agent/link/core_share.h"

#include <algorithm>
#include <thread>

namespace farm {

CoreShare::CoreShare(int cores) : cores_(std::max(1, cores)) {}

int CoreShare::Start() {
  absl::MutexLock lock(&mu_);
  ++running_;
  return std::max(1, cores_ / running_);
}

void CoreShare::End() {
  absl::MutexLock lock(&mu_);
  if (running_ > 0) --running_;
}

int CoreShare::MachineCores() {
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace farm
