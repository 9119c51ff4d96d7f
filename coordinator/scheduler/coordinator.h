// Coordinator: jobs, agents, tasks and leases; the core behind the gRPC services.
//
// One mutex guards everything. Calls never block on a test: agents are talked to through
// AgentChannel::Send, which only queues, and watchers through a callback that must only queue.
// The flow of a verdict: OnAgentMessage(result) -> the lease closes -> the store records the
// verdict (one transaction) -> the job's engine observes it -> tasks made pointless are cancelled
// -> the dispatcher refills free slots -> events go to every watcher.
//
// The class is one object split by concern over several files (docs/ARCHITECTURE.md has the
// map): coordinator.cc (life cycle, the lease thread), job_intake (no lock: validation,
// revisions, graph, engine), job_table.cc (jobs, replay, results, ends), dispatcher.cc (fair
// share, plan cache, eligibility, placement), agent_sessions.cc with agent_registry (sessions,
// health, quarantine, leases, drain), reports.cc (status, events, watchers), and
// metrics/coordinator_metrics. What a job kind decides lives in coordinator/engine.
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

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/git/git.h"
#include "common/rpc/credentials.h"
#include "coordinator/clock/clock.h"
#include "coordinator/health/health_checks.h"
#include "coordinator/metrics/coordinator_metrics.h"
#include "coordinator/power/power.h"
#include "coordinator/scheduler/agent_registry.h"
#include "coordinator/scheduler/job.h"
#include "coordinator/store/store.h"
#include "farm/v1/farm.pb.h"

namespace farm {

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
  // At most this many tasks of one user's jobs run at once (0: no cap).
  uint32_t max_slots_per_user = 0;
  // Where time comes from (leases, quarantines, elapsed times); null: the real clock. The lease
  // thread still wakes every real second; tests on a fake clock call ExpireLeases themselves.
  std::shared_ptr<Clock> clock;
  // Branch monitors' reports (coordinator/monitor, MonitorOptions): the sendmail program, the
  // From:/Reported-by: address ("": bisect-farm@HOSTNAME) and the base URL of links.
  std::string sendmail = "/usr/sbin/sendmail";
  std::string report_from;
  std::string public_url;
  // How kexec agents' machines are power-cycled when one does not come back from a kexec by its
  // boot deadline (null: none; such a machine is then an infrastructure error at once).
  std::shared_ptr<PowerControl> power;
  // The longest boot deadline an agent may announce before a kexec.
  absl::Duration max_boot_deadline = absl::Minutes(10);
  // Agent health checks (--health-check), in the order given: an agent runs the first whose
  // label it has.
  std::vector<HealthCheckConfig> health_checks;
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
  // PERMISSION_DENIED, naming the owner, unless `caller` owns the job or is an admin.
  absl::StatusOr<farm::v1::JobStatus> CancelJob(const std::string& job_id,
                                                const CallerIdentity& caller = {"", true});
  std::vector<farm::v1::AgentInfo> ListAgents();
  absl::StatusOr<std::vector<farm::v1::TaskLog>> GetTaskLog(const std::string& job_id,
                                                            const std::string& commit);
  // The output of a health check (HealthCheck.task_id); NOT_FOUND unless it is the last or
  // running check of an agent.
  absl::StatusOr<std::string> GetHealthCheckLog(const std::string& task_id);
  // Drains (true: running tasks finish, no new ones; the agent is told) or undrains an agent.
  // NOT_FOUND when no connected agent has that id.
  absl::Status DrainAgent(const std::string& agent_id, bool drain);
  // Sets an admin's state for an agent (farm.proto SetAgentState), stored so that it survives a
  // restart, and returns the agent as listed. Errors: PERMISSION_DENIED when `caller` is not an
  // admin; INVALID_ARGUMENT for a state other than good, maintenance or retired; NOT_FOUND when
  // no agent with that id has connected.
  absl::StatusOr<farm::v1::AgentInfo> SetAgentState(const std::string& agent_id,
                                                    farm::v1::AgentState state,
                                                    const std::string& reason,
                                                    const CallerIdentity& caller);

  // Registers a watcher: `fn` gets a snapshot at once, then every change, until the job ends or
  // Unwatch. `fn` runs under the coordinator's lock: it must only queue. NOT_FOUND for a bad id.
  absl::StatusOr<uint64_t> Watch(const std::string& job_id, WatchFn fn);
  void Unwatch(uint64_t watch_id);

  // Agent streams. Connect returns a session id, or INVALID_ARGUMENT for a bad Hello.
  absl::StatusOr<uint64_t> Connect(const farm::v1::Hello& hello,
                                   std::shared_ptr<AgentChannel> channel);
  void OnAgentMessage(uint64_t session, const farm::v1::AgentMessage& msg);
  void Disconnect(uint64_t session);

  // Waits until at least `n` agents are connected; false if `timeout` (real time) passed first.
  bool AwaitAgents(size_t n, absl::Duration timeout);

  // Requeues tasks whose lease ran out, lifts quarantines that ended and applies the retention
  // setting. Also run every second by an internal thread.
  void ExpireLeases();

  // The coordinator's metrics in Prometheus' text format (for GET /metrics).
  std::string MetricsText();

  absl::Duration lease() const { return options_.lease; }
  absl::Duration heartbeat() const { return options_.heartbeat; }

 private:
  struct Watcher {
    int64_t job_id;
    WatchFn fn;
  };
  struct FreeSlots;
  struct Turn;

  explicit Coordinator(CoordinatorOptions options, std::unique_ptr<Store> store);
  absl::Time Now() const { return options_.clock->Now(); }

  // --- job table (job_table.cc) ---
  // Replays the store: running jobs are loaded and their verdicts re-observed in order.
  absl::Status ResumeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds a loaded job to the table, running.
  Job& AddJobLocked(Job job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Job*> FindJobLocked(const std::string& job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnResultLocked(Session& session, const farm::v1::TaskResult& result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records an applied-or-not verdict of `commit` (from an agent or reused) and moves the job on.
  void CheckDoneLocked(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // When the first bad commit is a merge: explain, and with spec.descend start the follow-up job.
  void ExplainMergeLocked(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Loads the follow-up jobs ExplainMergeLocked queued, outside the lock, and starts them.
  void LoadPendingJobs() ABSL_LOCKS_EXCLUDED(mu_);
  void EndJobLocked(Job& job, farm::v1::JobState state, const std::string& error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Frees what an ended job no longer needs (graph, engine, repository, caches); its record,
  // report and bisect log stay.
  void ReleaseJobLocked(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PersistJobLocked(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PersistTaskLocked(Job& job, const farm::v1::TaskSummary& summary, int64_t seq)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  farm::v1::TaskSummary SummaryLocked(Job& job, const Task& task)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // --- dispatcher (dispatcher.cc) ---
  void ScheduleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Tasks running per job owner, over the running jobs.
  std::map<std::string, size_t> UserRunningLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Why a running job with nothing running waits, and its place among such jobs (1-based) in
  // the order the dispatcher serves them.
  void QueueNoteLocked(const Job& job, farm::v1::JobStatus& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts at most one task of `job` on one of the unused `free` slots (marking it used), reusing
  // known verdicts on the way. False when the job has nothing it can start there.
  bool DealOneLocked(Job& job, FreeSlots& slots, size_t share) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The free slot where `commit` of `job` is cheapest to test, or -1.
  int PickSlotLocked(Job& job, FreeSlots& free, CommitId commit) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static int SameHostKernelSlot(const Job& job, const FreeSlots& free,
                                const std::vector<size_t>& eligible, CommitId c);
  // Whether `session`'s agent may run tasks of `job` (its labels satisfy the job's require).
  static bool Eligible(const Job& job, const Session& session);
  void StartTaskLocked(Job& job, CommitId commit, Session& session)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Applies a verdict known for `commit`'s tree under the job's recipe, if there is one.
  bool ReuseLocked(Job& job, CommitId commit) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Cancels the running tasks the job's engine no longer wants.
  void PruneLocked(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `emit`: send the job's watchers an event (PruneLocked sends one for many cancellations).
  void CancelTaskLocked(Task& task, const std::string& why, bool emit = true)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleaseTaskLocked(Task& task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // --- reports and status (reports.cc) ---
  // `full`: with every finished task and the bisect log; without them for the events of a
  // running job (a watcher gets the whole status when it attaches and when the job ends).
  farm::v1::JobStatus StatusLocked(Job& job, bool full = true) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets `st`'s spec from the job's, without its payloads (test script, boot payload).
  void SetSpecLocked(const Job& job, farm::v1::JobStatus& st) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EmitLocked(Job& job, const std::string& message) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string BisectLogLocked(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string ReportLocked(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Tells the watchers of a job that has nothing running when no agent can take work, or what
  // it requires when no connected agent offers it; each once.
  void NoteWaitingLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // --- agents (agent_sessions.cc) ---
  void RequeueExpiredLocked(absl::Time now, bool& changed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Kexec-aware leases (kexec_leases.cc): a KexecAnnounce extends the task's
  // lease to the boot deadline; a task whose machine is not back by then is power-cycled once,
  // then ends as an infrastructure error and quarantines the agent. True when it handled the
  // expired task (it is then not lost).
  void OnKexecAnnounceLocked(Session& session, const farm::v1::KexecAnnounce& announce)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool ExpireKexecLeaseLocked(Task& task, absl::Time now,
                              std::vector<std::pair<uint64_t, farm::v1::TaskResult>>& failed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ForgetDisconnectedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ApplyRetentionLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Health checks (agent_sessions.cc): starts the checks due on free agents; ends one with the
  // agent's result (null: `failure`, the agent went silent), storing it.
  void StartHealthChecksLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishHealthCheckLocked(const std::string& agent_id, const std::string& task_id,
                               const farm::v1::TaskResult* result, const std::string& failure)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether a health check of `agent_id` is due (the lease thread's cue to schedule).
  bool HealthCheckDueLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool QuarantinedLocked(const std::string& agent_id, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return agents_.Quarantined(agent_id, now);
  }

  const CoordinatorOptions options_;
  RepoCache repo_cache_;

  absl::Mutex mu_;
  std::unique_ptr<Store> store_ ABSL_GUARDED_BY(mu_);
  // The job table.
  std::map<int64_t, Job> jobs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Task> tasks_ ABSL_GUARDED_BY(mu_);
  std::set<int64_t> running_jobs_ ABSL_GUARDED_BY(mu_);      // ids of RUNNING jobs, loaded
  std::vector<int64_t> pending_loads_ ABSL_GUARDED_BY(mu_);  // RUNNING, not loaded yet
  // The dispatcher's rotation: the next deal starts after this job.
  int64_t dealt_last_ ABSL_GUARDED_BY(mu_) = 0;
  AgentRegistry agents_ ABSL_GUARDED_BY(mu_);
  HealthChecks health_ ABSL_GUARDED_BY(mu_);
  // Lease of each running health check, by task id.
  std::map<std::string, absl::Time> health_leases_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, Watcher> watchers_ ABSL_GUARDED_BY(mu_);
  uint64_t next_watch_ ABSL_GUARDED_BY(mu_) = 1;
  absl::Time next_retention_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  CoordinatorMetrics metrics_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> trim_wanted_{false};  // a job released its graph since the last malloc_trim
  std::thread lease_thread_;
};

}  // namespace farm

#endif  // FARM_COORDINATOR_SCHEDULER_COORDINATOR_H_
