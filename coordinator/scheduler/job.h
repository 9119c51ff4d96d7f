// The coordinator's records of a job and of a task (one run of one commit on one agent).
// Guarded by the coordinator's lock.
#ifndef FARM_COORDINATOR_SCHEDULER_JOB_H_
#define FARM_COORDINATOR_SCHEDULER_JOB_H_

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "common/git/git.h"
#include "coordinator/engine/engine.h"
#include "coordinator/planner/placement.h"
#include "farm/v1/farm.pb.h"

namespace farm {

struct Task {
  std::string id;
  int64_t job_id = 0;
  CommitId commit = 0;
  uint64_t session = 0;  // 0: no connected agent holds it (after a restart)
  std::string agent_id;
  absl::Time started;
  absl::Time lease_expiry;
  farm::v1::TaskState state = farm::v1::TASK_RUNNING;
  farm::v1::Phase phase = farm::v1::CHECKOUT;
  int64_t log_bytes = 0;
  // Kexec agents: the agent announced a reboot into the task's host kernel (KexecAnnounce); the
  // lease runs to the boot deadline, then the machine is power-cycled once (coordinator/power).
  bool in_kexec = false;
  bool power_cycled = false;
  std::string kexec_release;
  absl::Duration boot_deadline;
};

struct Job {
  int64_t id = 0;
  farm::v1::BisectSpec spec;  // resolved
  farm::v1::JobState state = farm::v1::RUNNING;
  int64_t created_unix = 0;
  int64_t ended_unix = 0;  // Now() when it ended (the store's retention compares it with Now())
  absl::Time started;
  double elapsed_seconds = 0;
  // Loaded while the job runs (job_intake.h); released when it ends.
  GitRepository repo;
  std::shared_ptr<const CommitGraph> graph;
  std::unique_ptr<BisectEngine> engine;  // what the job kind decides
  MoveCost move_cost;         // files changed between two commits: the cost of moving a worktree
  std::string recipe_digest;  // verdict reuse key, with the tree id
  std::vector<farm::v1::TaskSummary> finished;
  std::set<std::string> running;  // task ids
  absl::flat_hash_map<CommitId, int> infra_failures;
  // Agents on which a commit failed infrastructure-wise: it is retried elsewhere when it can be.
  absl::flat_hash_map<CommitId, std::set<std::string>> infra_agents;
  absl::flat_hash_map<CommitId, std::string> subjects;
  std::vector<std::string> first_bad;
  std::string error;
  std::string report;
  std::string stored_bisect_log;  // ended jobs from an earlier run (no engine loaded)
  absl::flat_hash_map<CommitId, std::string> trees;
  int64_t parent_job = 0;     // a follow-up job made by --descend: the job it descends from
  int64_t descended_job = 0;  // the follow-up job this one made
  std::string merge_note;     // what the report says about a merge found first-bad
  int64_t task_counter = 0;
  int64_t verdict_seq = 0;
  uint64_t event_seq = 0;
  // Planning cache: commits the engine chose that are not started yet, most useful first. Valid
  // while plan_key == PlanKey(): every finished task (verdict, cancellation, loss, infra error,
  // reuse) changes what is worth starting; plan_epoch covers the rest (a task re-adopted).
  std::vector<CommitId> plan;
  uint64_t plan_key = UINT64_MAX;
  uint64_t plan_epoch = 0;
  bool plan_exhausted = false;  // the engine gave fewer than asked: nothing more to start
  uint64_t PlanKey() const { return finished.size() + (plan_epoch << 32); }
  std::string waiting_note;     // why nothing runs, when no agent can take work (said once)
  std::string unservable_note;  // what no connected agent offers (said once)
  // Kept when an ended job releases its graph and engine.
  double final_confidence = 0;
  EngineVerification final_verification;
};

inline Verdict VerdictFromProto(farm::v1::Verdict v) {
  return v == farm::v1::GOOD ? Verdict::kGood : v == farm::v1::BAD ? Verdict::kBad : Verdict::kSkip;
}

// A probe's object id and hex sha: a commit of the job's graph, or one the engine probes beyond
// it (BisectEngine::ExtraProbes). Needs the graph and the engine (a running job).
git_oid ProbeOid(const Job& job, CommitId id);
std::string ProbeHex(const Job& job, CommitId id);
// The probe id of a hex sha (the graph's commits, then the engine's extra probes).
std::optional<CommitId> FindProbe(const Job& job, const std::string& hex);

// What verifying the job's answer showed: the engine's while it runs, then the one kept.
EngineVerification JobVerification(const Job& job);

// The subject of `id` (cached in the job; "" when the repository is released or unreadable).
const std::string& JobSubject(Job& job, CommitId id);

// The tree id of `id` (cached; "" when unknown).
const std::string& JobTree(Job& job, CommitId id);

// The engine's view of a job's commits, for its texts.
class JobCommitTexts : public CommitTexts {
 public:
  explicit JobCommitTexts(Job& job) : job_(job) {}
  const std::string& Subject(CommitId id) override { return JobSubject(job_, id); }
  std::optional<std::string> Show(CommitId id) override;

 private:
  Job& job_;
};

}  // namespace farm

#endif  // FARM_COORDINATOR_SCHEDULER_JOB_H_
