// ProbeEngine: a head test (BisectSpec.probe), the branch monitor's job kind: the range is the
// head alone; it is tested once and the job ends with that verdict.
#ifndef FARM_COORDINATOR_ENGINE_PROBE_ENGINE_H_
#define FARM_COORDINATOR_ENGINE_PROBE_ENGINE_H_

#include <memory>
#include <optional>

#include "coordinator/engine/engine.h"

namespace farm {

// Done after the first verdict for the graph's tip (`graph->bad()`): FOUND with the tip when it
// tested bad, AMBIGUOUS with no commit when it tested good or skip (JobStatus.finished holds the
// verdict). A verdict for another commit is recorded but not applied.
class ProbeEngine : public BisectEngine {
 public:
  explicit ProbeEngine(std::shared_ptr<const CommitGraph> graph);

  bool Observe(CommitId commit, Verdict verdict) override;
  std::vector<CommitId> Plan(size_t k, const std::vector<CommitId>& in_flight) override;
  std::optional<CancelReason> ShouldCancel(CommitId commit) const override;
  bool Done() const override { return verdict_.has_value(); }
  EngineAnswer Answer() const override;
  double Confidence() const override { return 0; }
  EngineProgress Progress(size_t k) const override;
  bool ReusesVerdicts() const override { return true; }
  std::string BisectLog(const JobText& job) const override;
  std::string Report(const JobText& job) const override;

 private:
  std::shared_ptr<const CommitGraph> graph_;
  std::optional<Verdict> verdict_;
};

}  // namespace farm

#endif  // FARM_COORDINATOR_ENGINE_PROBE_ENGINE_H_
