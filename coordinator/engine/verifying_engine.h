// VerifyingEngine: a decorator that verifies the culprit another engine names (BisectSpec.verify).
#ifndef FARM_COORDINATOR_ENGINE_VERIFYING_ENGINE_H_
#define FARM_COORDINATOR_ENGINE_VERIFYING_ENGINE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "coordinator/engine/culprit_repo.h"
#include "coordinator/engine/engine.h"

namespace farm {

// Runs the inner engine's search unchanged. When it names one culprit, retests the culprit, its
// first parent, and the bad commit with the culprit reverted (when the revert applies), `runs`
// times each, as ordinary probes; the job is done when they all have a verdict. Verification
// verdicts never reach the inner engine (so its bisect log stays replayable) and are never reused
// nor stored for reuse (every retest is a fresh run). The answer stays the inner engine's;
// Verification() says what the retests showed (syzbot's statuses: verified, unreliable with why,
// inconclusive when only skipped commits are left).
class VerifyingEngine : public BisectEngine {
 public:
  // `runs` >= 1. `repo` (may be null: no facts, no revert) reads the culprit and makes the revert.
  VerifyingEngine(std::unique_ptr<BisectEngine> inner, std::shared_ptr<const CommitGraph> graph,
                  int runs, std::unique_ptr<CulpritRepo> repo);

  bool Observe(CommitId commit, Verdict verdict) override;
  std::vector<CommitId> Plan(size_t k, const std::vector<CommitId>& in_flight) override;
  std::optional<CancelReason> ShouldCancel(CommitId commit) const override;
  bool Done() const override { return phase_ == Phase::kDone; }
  EngineAnswer Answer() const override { return inner_->Answer(); }
  double Confidence() const override { return inner_->Confidence(); }
  EngineProgress Progress(size_t k) const override;
  bool ReusesVerdicts() const override {
    return phase_ == Phase::kSearch && inner_->ReusesVerdicts();
  }
  std::string BisectLog(const JobText& job) const override;
  std::string Report(const JobText& job) const override;
  std::vector<git_oid> ExtraProbes() const override { return extra_; }
  // The search's own: a decorator adds no candidates and no host kernels.
  std::vector<CommitId> CandidateCommits(size_t max) const override {
    return inner_->CandidateCommits(max);
  }
  const farm::v1::HostKernel* HostKernelOf(CommitId commit) const override {
    return inner_->HostKernelOf(commit);
  }
  EngineVerification Verification() const override;
  std::optional<RevertProbe> RevertOf(CommitId commit) const override;
  // Remembers the image each target's build made: a culprit whose image equals its parent's
  // changed nothing the build uses (syzbot's "unreliable" for such a commit).
  void ObserveBuild(CommitId commit, const std::string& image_digest) override;

 private:
  enum class Phase { kSearch, kVerify, kDone };
  // One commit retested `runs_` times.
  struct Target {
    std::string what;  // "culprit", "parent", "revert"
    CommitId id = 0;
    Verdict expected = Verdict::kBad;
    int good = 0, bad = 0, skip = 0;
    int done() const { return good + bad + skip; }
  };

  // Called once the inner engine is done: plans the retests, or ends at once without a culprit.
  void StartVerification();
  CommitId AddExtra(const git_oid& oid);
  const git_oid& Oid(CommitId id) const;
  void Finish();
  std::string Runs() const;  // "culprit failed 3/3, parent passed 3/3, ..."

  std::unique_ptr<BisectEngine> inner_;
  std::shared_ptr<const CommitGraph> graph_;
  int runs_;
  std::unique_ptr<CulpritRepo> repo_;
  Phase phase_ = Phase::kSearch;
  std::vector<Target> targets_;
  std::vector<git_oid> extra_;
  std::vector<std::string> suspicious_;  // what is wrong with the culprit before any retest
  std::string revert_note_;              // why the revert was not tested
  std::optional<CommitId> revert_id_;    // the revert probe, once made
  RevertProbe revert_of_{};              // what it reverts, on what
  absl::flat_hash_map<CommitId, std::string> images_;  // the last image built of each commit
  EngineVerification result_;                          // once kDone
};

}  // namespace farm

#endif  // FARM_COORDINATOR_ENGINE_VERIFYING_ENGINE_H_
