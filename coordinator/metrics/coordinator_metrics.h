// The coordinator's counters and assignment latencies, and their /metrics page.
#ifndef FARM_COORDINATOR_METRICS_COORDINATOR_METRICS_H_
#define FARM_COORDINATOR_METRICS_COORDINATOR_METRICS_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "coordinator/metrics/metrics.h"

namespace farm {

// What a call that may start tasks was (for farm_assign_latency_seconds{trigger}).
enum class Trigger {
  kAgentMessage,
  kConnect,
  kDisconnect,
  kSubmit,
  kCancel,
  kLeaseCheck,
  kResume,
  kCount
};

// Counters, and when the call being handled arrived (before it waited for the lock): an Assign
// it causes is observed from that moment. Not thread-safe: the coordinator's lock guards it.
struct CoordinatorMetrics {
  uint64_t jobs_submitted = 0;
  uint64_t assigns = 0;
  uint64_t verdicts_good = 0, verdicts_bad = 0, verdicts_skip = 0;
  uint64_t reused = 0;
  uint64_t infra_errors = 0;
  uint64_t cancelled = 0;
  uint64_t leases_expired = 0;
  uint64_t quarantines = 0;
  uint64_t ended_found = 0, ended_ambiguous = 0, ended_failed = 0, ended_cancelled = 0;
  LatencyHistogram assign_latency[static_cast<int>(Trigger::kCount)];
  absl::Time trigger = absl::InfinitePast();
  Trigger trigger_kind = Trigger::kResume;

  // A call of kind `kind` that arrived at `arrived` is being handled.
  void Arrived(Trigger kind, absl::Time arrived) {
    trigger = arrived;
    trigger_kind = kind;
  }
  // An Assign was queued at `now`.
  void Assigned(absl::Time now) {
    ++assigns;
    assign_latency[static_cast<int>(trigger_kind)].Observe(absl::ToDoubleSeconds(now - trigger));
  }
};

// The gauges read from the coordinator's state when the page is rendered.
struct CoordinatorGauges {
  size_t jobs_running = 0;
  size_t agents_connected = 0;
  size_t agents_quarantined = 0;
  size_t slots = 0;
  size_t slots_busy = 0;
};

// The Prometheus text page of `m` and `g`.
std::string RenderCoordinatorMetrics(const CoordinatorMetrics& m, const CoordinatorGauges& g);

}  // namespace farm

#endif  // FARM_COORDINATOR_METRICS_COORDINATOR_METRICS_H_
