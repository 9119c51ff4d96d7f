// FlakyEngine: bisection with a test that is sometimes wrong (FlakyBisect's posterior).
#ifndef FARM_COORDINATOR_ENGINE_FLAKY_ENGINE_H_
#define FARM_COORDINATOR_ENGINE_FLAKY_ENGINE_H_

#include <memory>
#include <string>
#include <vector>

#include "coordinator/engine/engine.h"
#include "coordinator/flaky/flaky_bisect.h"

namespace farm {

// A commit may run several times; every run is evidence, so nothing is cancelled and no verdict
// is reused; the search stops at the requested confidence (or the run budget). The log is a list
// of runs, since `git bisect replay` cannot express conflicting verdicts.
class FlakyEngine : public BisectEngine {
 public:
  // `skipped` only narrow the progress figures, as the Frontier counts them.
  // `learnt`: the rates are learnt (the report says so).
  FlakyEngine(FlakyBisect bisect, std::shared_ptr<const CommitGraph> graph,
              const std::vector<CommitId>& skipped, bool learnt);

  bool Observe(CommitId commit, Verdict verdict) override;
  std::vector<CommitId> Plan(size_t k, const std::vector<CommitId>& in_flight) override;
  std::optional<CancelReason> ShouldCancel(CommitId) const override { return std::nullopt; }
  bool Done() const override { return bisect_.Done(); }
  EngineAnswer Answer() const override;
  double Confidence() const override { return bisect_.Confidence(); }
  EngineProgress Progress(size_t k) const override;
  bool ReusesVerdicts() const override { return false; }
  std::string BisectLog(const JobText& job) const override;
  std::string Report(const JobText& job) const override;

 private:
  FlakyBisect bisect_;
  std::shared_ptr<const CommitGraph> graph_;
  Frontier frontier_;  // the range and the spec's skips, for the progress figures
  bool learnt_;
};

}  // namespace farm

#endif  // FARM_COORDINATOR_ENGINE_FLAKY_ENGINE_H_
