// Clock: where the coordinator's time comes from, so that leases and quarantines can be tested
// on virtual time.
#ifndef FARM_COORDINATOR_CLOCK_CLOCK_H_
#define FARM_COORDINATOR_CLOCK_CLOCK_H_

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace farm {

class Clock {
 public:
  virtual ~Clock() = default;
  // The current time. Thread-safe.
  virtual absl::Time Now() const = 0;
  // The system's clock (absl::Now), shared; never null.
  static std::shared_ptr<Clock> Real();
};

// A clock that moves only when told to. Thread-safe.
class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::UnixEpoch() + absl::Hours(24 * 365 * 50))
      : now_(start) {}
  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace farm

#endif  // FARM_COORDINATOR_CLOCK_CLOCK_H_
