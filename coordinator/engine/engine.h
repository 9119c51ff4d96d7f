// BisectEngine: what a job kind decides, behind one interface.
//
// The dispatcher (coordinator/scheduler) owns agents, tasks, leases, retries, placement and fair
// share; it knows no job kind. An engine owns the search: which probes (commits of the job's
// graph) to start given what is in flight, what a verdict means, which running probes a verdict
// made pointless, when the search is over and what it found, and how the job's bisect log and
// report read. Today's kinds: git-exact (Frontier + PlanNext, git_engine.h) and flaky
// (FlakyBisect, flaky_engine.h). A new kind is a new implementation plus one line in
// engine_factory.cc; see docs/ARCHITECTURE.md "Adding a job kind".
//
// Thread safety: none; the coordinator calls an engine under its lock.
#ifndef FARM_COORDINATOR_ENGINE_ENGINE_H_
#define FARM_COORDINATOR_ENGINE_ENGINE_H_

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/frontier/frontier.h"
#include "coordinator/graph/commit_graph.h"
#include "farm/v1/farm.pb.h"

namespace farm {

// Why a running probe is no longer worth finishing.
enum class CancelReason {
  kRuledOut,  // a newer verdict decided the commit's side
  kSkipped,   // the commit was skipped meanwhile
};

// What a finished search found.
struct EngineAnswer {
  // FOUND or AMBIGUOUS once Done(); COMPLETE for a kind that has no culprit (a matrix); FAILED
  // when the job's own range contradicts itself (its report says how).
  farm::v1::JobState state = farm::v1::RUNNING;
  std::vector<CommitId> commits;  // FOUND: the culprit; AMBIGUOUS: the possible culprits
  // The answer is exact in git's sense, so a merge found first-bad may be descended into.
  bool may_descend_merges = false;
  std::string error;  // FAILED: what contradicts, and what to do
};

// Progress figures shown in a job's status.
struct EngineProgress {
  size_t candidates = 0;  // commits that may still be the answer
  size_t testable = 0;    // of those, the ones worth testing
  int rounds_left = 0;    // estimated rounds of `k` parallel probes
};

// What the verification of an answer showed (BisectSpec.verify); VERIFICATION_NONE without one.
struct EngineVerification {
  farm::v1::VerificationStatus status = farm::v1::VERIFICATION_NONE;
  std::string reason;  // why, in words (JobStatus.verification_reason)
};

// Commit descriptions an engine may need for its texts; the caller caches them.
class CommitTexts {
 public:
  virtual ~CommitTexts() = default;
  // The commit's subject line, "" when it cannot be read.
  virtual const std::string& Subject(CommitId id) = 0;
  // `git show --stat --summary` of the commit, nullopt when it cannot be read.
  virtual std::optional<std::string> Show(CommitId id) = 0;
};

// What an engine sees of its job when it writes the bisect log or the report.
struct JobText {
  const farm::v1::BisectSpec& spec;
  farm::v1::JobState state;
  const std::vector<std::string>& first_bad;  // hex, as stored
  const std::string& error;
  const std::string& merge_note;  // the dispatcher's note about a merge found first-bad
  const std::vector<farm::v1::TaskSummary>& finished;
  CommitTexts& commits;
};

class BisectEngine {
 public:
  virtual ~BisectEngine() = default;

  // Records a verdict for a probe of `commit`. True when it was applied (it changed what the
  // engine believes); false when the commit was already decided (the verdict is still stored).
  virtual bool Observe(CommitId commit, Verdict verdict) = 0;

  // Up to `k` commits to start now, most useful first, none of them in `in_flight` unless the
  // engine wants repeated runs. Fewer than `k` means nothing more is worth starting until
  // something changes. Empty once Done().
  virtual std::vector<CommitId> Plan(size_t k, const std::vector<CommitId>& in_flight) = 0;

  // Whether a running probe of `commit` should be cancelled, and why; nullopt to let it run.
  virtual std::optional<CancelReason> ShouldCancel(CommitId commit) const = 0;

  // True when the search is over; Answer() then says what it found.
  virtual bool Done() const = 0;
  virtual EngineAnswer Answer() const = 0;

  // How sure the engine is of its answer, in [0, 1]; 0 when it does not say (git-exact).
  virtual double Confidence() const = 0;

  virtual EngineProgress Progress(size_t k) const = 0;

  // At most `max` of the commits that may still be the answer, for display (the dashboard draws
  // them); empty when the kind does not list them.
  virtual std::vector<CommitId> CandidateCommits(size_t max) const { return {}; }

  // Whether a verdict known for the same tree under the same recipe may stand for a run (false
  // where every run is evidence, as in flaky mode).
  virtual bool ReusesVerdicts() const = 0;

  // The job's log (`git bisect replay` input where the kind allows it) and its report text.
  virtual std::string BisectLog(const JobText& job) const = 0;
  virtual std::string Report(const JobText& job) const = 0;

  // Commits the engine probes beyond the job's graph (a culprit's parent outside the range, a
  // revert commit made to verify it): the probe id graph.size() + i is ExtraProbes()[i].
  virtual std::vector<git_oid> ExtraProbes() const { return {}; }

  // What verifying the answer showed so far.
  virtual EngineVerification Verification() const { return {}; }

  // What a probe runs on besides its commit: the host kernel its agent switches to (kexec) before
  // the test (Assign.host_kernel), or null for a probe that is only a commit of the job's graph.
  // Kinds with a host axis (a matrix, a two-dimensional bisect) map each probe commit to its cell.
  virtual const farm::v1::HostKernel* HostKernelOf(CommitId /*commit*/) const { return nullptr; }

  // For a probe that is a revert commit the engine made (verification): the culprit it reverts
  // and the head it sits on, so that agents of a remote repository can make the same commit
  // (Assign.revert_culprit/revert_head). nullopt for every other probe.
  // What a task's build of `commit` made (the kernel image's sha256), told before its verdict
  // reaches Observe. Engines that do not care ignore it.
  virtual void ObserveBuild(CommitId /*commit*/, const std::string& /*image_digest*/) {}

  struct RevertProbe {
    git_oid culprit;
    git_oid head;
  };
  virtual std::optional<RevertProbe> RevertOf(CommitId /*commit*/) const { return std::nullopt; }
};

}  // namespace farm

#endif  // FARM_COORDINATOR_ENGINE_ENGINE_H_
