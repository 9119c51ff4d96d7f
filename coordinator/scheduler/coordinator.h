// Coordinator: jobs, agents, tasks and leases; the core behind the gRPC services.
//
// One mutex guards everything. Calls never block on a test: agents are talked to through
// AgentChannel::Send, which only queues, and watchers through a callback that must only queue.
// The flow of a verdict: OnAgentMessage(result) -> the lease closes -> the store records the
// verdict (one transaction) -> the frontier marks the commit -> tasks made pointless are cancelled
// -> the planner refills free slots -> events go to every watcher.
#ifndef FARM_COORDINATOR_SCHEDULER_COORDINATOR_H_
#define FARM_COORDINATOR_SCHEDULER_COORDINATOR_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/git/git.h"
#include "coordinator/flaky/flaky_bisect.h"
#include "coordinator/frontier/frontier.h"
#include "coordinator/metrics/metrics.h"
#include "coordinator/planner/placement.h"
#include "coordinator/store/store.h"
#include "farm/v1/farm.pb.h"

namespace farm {

// The coordinator's handle on one connected agent stream.
class AgentChannel {
 public:
  virtual ~AgentChannel() = default;
  // Queues a message for the agent. Thread-safe, never blocks; dropped if the stream is gone.
  virtual void Send(const farm::v1::CoordinatorMessage& msg) = 0;
};

struct CoordinatorOptions {
  std::string db_path;    // SQLite file (created if missing)
  std::string cache_dir;  // mirrors of remote repositories
  absl::Duration lease = absl::Seconds(30);
  absl::Duration heartbeat = absl::Seconds(5);
  int max_infra_attempts = 3;  // per commit, before the job fails
  uint32_t default_timeout_seconds = 3600;
  // Consecutive infrastructure errors after which an agent is quarantined, and for how long.
  int quarantine_after = 3;
  absl::Duration quarantine = absl::Minutes(10);
  // Ended jobs older than this are deleted with their tasks and output (0: keep forever).
  absl::Duration retention = absl::Hours(24 * 30);
};

class Coordinator {
 public:
  using WatchFn = std::function<void(const farm::v1::JobEvent&)>;

  // Opens the store and resumes every job that was running. Errors: the store cannot be opened.
  static absl::StatusOr<std::unique_ptr<Coordinator>> Create(CoordinatorOptions options);
  ~Coordinator();

  // See farm.proto for each call's contract and errors.
  absl::StatusOr<farm::v1::JobStatus> SubmitBisect(farm::v1::BisectSpec spec);
  absl::StatusOr<farm::v1::JobStatus> GetJob(const std::string& job_id);
  absl::StatusOr<std::vector<farm::v1::JobStatus>> ListJobs(size_t limit);
  absl::StatusOr<farm::v1::JobStatus> CancelJob(const std::string& job_id);
  std::vector<farm::v1::AgentInfo> ListAgents();
  absl::StatusOr<std::vector<farm::v1::TaskLog>> GetTaskLog(const std::string& job_id,
                                                            const std::string& commit);

  // Registers a watcher: `fn` gets a snapshot at once, then every change, until the job ends or
  // Unwatch. `fn` runs under the coordinator's lock: it must only queue. NOT_FOUND for a bad id.
  absl::StatusOr<uint64_t> Watch(const std::string& job_id, WatchFn fn);
  void Unwatch(uint64_t watch_id);

  // Agent streams. Connect returns a session id, or INVALID_ARGUMENT for a bad Hello.
  absl::StatusOr<uint64_t> Connect(const farm::v1::Hello& hello,
                                   std::shared_ptr<AgentChannel> channel);
  void OnAgentMessage(uint64_t session, const farm::v1::AgentMessage& msg);
  void Disconnect(uint64_t session);

  // Waits until at least `n` agents are connected; false if `timeout` passed first.
  bool AwaitAgents(size_t n, absl::Duration timeout);

  // Requeues tasks whose lease ran out and applies the retention setting. Also run every second
  // by an internal thread.
  void ExpireLeases();

  // The coordinator's metrics in Prometheus' text format (for GET /metrics).
  std::string MetricsText();

  absl::Duration lease() const { return options_.lease; }
  absl::Duration heartbeat() const { return options_.heartbeat; }

 private:
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
  };
  struct Job {
    int64_t id = 0;
    farm::v1::BisectSpec spec;  // resolved
    farm::v1::JobState state = farm::v1::RUNNING;
    int64_t created_unix = 0;
    absl::Time started;
    double elapsed_seconds = 0;
    GitRepository repo;
    std::shared_ptr<const CommitGraph> graph;
    std::unique_ptr<Frontier> frontier;
    std::unique_ptr<FlakyBisect> flaky;  // flaky mode: the posterior decides, not the frontier
    MoveCost move_cost;  // files changed between two commits: the cost of moving a worktree
    std::vector<farm::v1::TaskSummary> finished;
    std::set<std::string> running;  // task ids
    std::vector<std::pair<CommitId, Verdict>> applied;
    absl::flat_hash_map<CommitId, int> infra_failures;
    // Agents on which a commit failed infrastructure-wise: it is retried elsewhere when it can be.
    absl::flat_hash_map<CommitId, std::set<std::string>> infra_agents;
    absl::flat_hash_map<CommitId, std::string> subjects;
    std::vector<std::string> first_bad;
    std::string error;
    std::string report;
    std::string stored_bisect_log;  // ended jobs from an earlier run (no frontier loaded)
    std::string recipe_digest;      // verdict reuse key, with the tree id
    absl::flat_hash_map<CommitId, std::string> trees;
    int64_t parent_job = 0;     // a follow-up job made by --descend: the job it descends from
    int64_t descended_job = 0;  // the follow-up job this one made
    std::string merge_note;     // what the report says about a merge found first-bad
    int64_t task_counter = 0;
    int64_t verdict_seq = 0;
    uint64_t event_seq = 0;
    // Planning cache: commits PlanNext chose that are not started yet, most useful first. Valid
    // while plan_key == PlanKey(): every finished task (verdict, cancellation, loss, infra error,
    // reuse) changes what is worth starting; plan_epoch covers the rest (a task re-adopted).
    std::vector<CommitId> plan;
    uint64_t plan_key = UINT64_MAX;
    uint64_t plan_epoch = 0;
    bool plan_exhausted = false;  // PlanNext gave fewer than asked: nothing more to start
    uint64_t PlanKey() const { return finished.size() + (plan_epoch << 32); }
    std::string waiting_note;  // why nothing runs, when no agent can take work (said once)
    // Kept when an ended job releases its graph and frontier.
    double final_confidence = 0;
  };
  struct Session {
    uint64_t id = 0;
    farm::v1::Hello hello;
    std::shared_ptr<AgentChannel> channel;
    std::set<std::string> tasks;
    absl::Time last_seen;
    bool connected = true;
    // Where its worktree is: the last commit given to it (placement prefers the nearest agent).
    int64_t last_job = 0;
    std::optional<CommitId> last_commit;
  };
  // What the coordinator remembers of an agent across its connections.
  struct AgentHealth {
    int consecutive_infra_errors = 0;
    absl::Time quarantined_until = absl::InfinitePast();
    std::string reason;
  };
  struct Watcher {
    int64_t job_id;
    WatchFn fn;
  };

  explicit Coordinator(CoordinatorOptions options, std::unique_ptr<Store> store);

  // Opens the repository and builds graph and frontier for a resolved spec.
  absl::Status LoadJobLocked(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Job*> FindJobLocked(const std::string& job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ScheduleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts at most one task of `job` on one of the unused `free` slots (marking it used), reusing
  // known verdicts on the way. False when the job has nothing it can start there.
  struct FreeSlots;
  bool DealOneLocked(Job& job, FreeSlots& slots, size_t share) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool QuarantinedLocked(const std::string& agent_id, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Frees what an ended job no longer needs (graph, frontier, repository, caches); its record,
  // report and bisect log stay.
  void ReleaseJobLocked(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetDisconnectedLocked(Session& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Tells the watchers of a job that has nothing running when no agent can take work.
  void NoteWaitingLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Keeps free_sessions_ true after s.tasks or s.connected changed.
  void RefreshFreeLocked(Session& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PruneLocked(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartTaskLocked(Job& job, CommitId commit, Session& session)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `emit`: send the job's watchers an event (PruneLocked sends one for many cancellations).
  void CancelTaskLocked(Task& task, const std::string& why, bool emit = true)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnResultLocked(Session& session, const farm::v1::TaskResult& result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleaseTaskLocked(Task& task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CheckDoneLocked(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // When the first bad commit is a merge: explain, and with spec.descend start the follow-up job.
  void ExplainMergeLocked(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EndJobLocked(Job& job, farm::v1::JobState state, const std::string& error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PersistJobLocked(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PersistTaskLocked(Job& job, const farm::v1::TaskSummary& summary, int64_t seq)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  farm::v1::TaskSummary SummaryLocked(Job& job, const Task& task)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `full`: with every finished task and the bisect log; without them for the events of a
  // running job (a watcher gets the whole status when it attaches and when the job ends).
  farm::v1::JobStatus StatusLocked(Job& job, bool full = true) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EmitLocked(Job& job, const std::string& message) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const std::string& SubjectLocked(Job& job, CommitId id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string BisectLogLocked(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string ReportLocked(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const std::string& TreeLocked(Job& job, CommitId id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Applies a verdict known for `commit`'s tree under the job's recipe, if there is one.
  bool ReuseLocked(Job& job, CommitId commit) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const CoordinatorOptions options_;
  RepoCache repo_cache_;

  absl::Mutex mu_;
  std::unique_ptr<Store> store_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, Job> jobs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Task> tasks_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, Session> sessions_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, Watcher> watchers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, AgentHealth> health_ ABSL_GUARDED_BY(mu_);
  size_t quarantined_ ABSL_GUARDED_BY(mu_) = 0;          // entries of health_ with a quarantine set
  std::set<int64_t> running_jobs_ ABSL_GUARDED_BY(mu_);  // ids of RUNNING jobs, loaded
  int64_t dealt_last_ ABSL_GUARDED_BY(mu_) = 0;          // the next deal starts after this job
  std::set<uint64_t> free_sessions_ ABSL_GUARDED_BY(mu_);  // connected, with a free slot
  size_t connected_agents_ ABSL_GUARDED_BY(mu_) = 0;
  size_t connected_slots_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time next_retention_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  uint64_t next_session_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t next_watch_ ABSL_GUARDED_BY(mu_) = 1;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Metrics. trigger_ is when the call being handled arrived (before it waited for the lock):
  // an Assign it causes is observed in assign_latency_ from that moment.
  struct Counters {
    uint64_t jobs_submitted = 0;
    uint64_t assigns = 0;
    uint64_t verdicts_good = 0, verdicts_bad = 0, verdicts_skip = 0;
    uint64_t reused = 0;
    uint64_t infra_errors = 0;
    uint64_t cancelled = 0;
    uint64_t leases_expired = 0;
    uint64_t quarantines = 0;
    uint64_t ended_found = 0, ended_ambiguous = 0, ended_failed = 0, ended_cancelled = 0;
  };
  Counters counters_ ABSL_GUARDED_BY(mu_);
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
  LatencyHistogram assign_latency_[static_cast<int>(Trigger::kCount)] ABSL_GUARDED_BY(mu_);
  absl::Time trigger_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  Trigger trigger_kind_ ABSL_GUARDED_BY(mu_) = Trigger::kResume;
  std::atomic<bool> trim_wanted_{false};  // a job released its graph since the last malloc_trim
  std::thread lease_thread_;
};

}  // namespace farm

#endif  // FARM_COORDINATOR_SCHEDULER_COORDINATOR_H_
