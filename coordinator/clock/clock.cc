#include "coordinator/clock/clock.h"

namespace farm {
namespace {

class RealClock : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

}  // namespace

std::shared_ptr<Clock> Clock::Real() {
  static const std::shared_ptr<Clock> real = std::make_shared<RealClock>();
  return real;
}

}  // namespace farm
