// GitEngine: git's exact bisection (Frontier) with speculative parallel probes placed by
// k-section (PlanKSection: k probes split the candidates into k + 1 parts of equal weight).
#ifndef FARM_COORDINATOR_ENGINE_GIT_ENGINE_H_
#define FARM_COORDINATOR_ENGINE_GIT_ENGINE_H_

#include <memory>
#include <utility>
#include <vector>

#include "coordinator/engine/engine.h"

namespace farm {

// Every verdict is trusted; a verdict for a commit that is no longer a candidate is recorded but
// not applied, so the answer is one git could give from the same verdicts and the log replays.
// Running probes the verdict ruled out are cancelled at once.
class GitEngine : public BisectEngine {
 public:
  // `skipped`: commits of `graph` the spec marks untestable before anything runs.
  GitEngine(std::shared_ptr<const CommitGraph> graph, const std::vector<CommitId>& skipped);

  bool Observe(CommitId commit, Verdict verdict) override;
  std::vector<CommitId> Plan(size_t k, const std::vector<CommitId>& in_flight) override;
  std::optional<CancelReason> ShouldCancel(CommitId commit) const override;
  bool Done() const override { return frontier_.Done(); }
  EngineAnswer Answer() const override;
  double Confidence() const override { return 0; }
  EngineProgress Progress(size_t k) const override;
  std::vector<CommitId> CandidateCommits(size_t max) const override;
  bool ReusesVerdicts() const override { return true; }
  std::string BisectLog(const JobText& job) const override;
  std::string Report(const JobText& job) const override;

 private:
  std::shared_ptr<const CommitGraph> graph_;
  Frontier frontier_;
  std::vector<std::pair<CommitId, Verdict>> applied_;  // in order, for the bisect log
};

// The progress figures of a Frontier with `k` parallel probes.
EngineProgress FrontierProgress(const Frontier& frontier, size_t k);

}  // namespace farm

#endif  // FARM_COORDINATOR_ENGINE_GIT_ENGINE_H_
