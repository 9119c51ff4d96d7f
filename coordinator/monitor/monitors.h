// Monitors: the coordinator's branch watch (`farm watch-branch`) and its regressions.
//
// One thread polls each monitor's branch every `every_seconds` (a fetch into the coordinator's
// mirror, or the branch read in place for a local repository). A new head is tested once, as a
// head-test job (BisectSpec.probe) on an agent; only the head of a push of many commits is. Its
// verdict goes into the monitor's history; PASS -> FAIL opens a Regression and submits a bisect
// (last passing head good, first failing head bad), FAIL -> PASS closes it. When the bisect ends,
// the report (coordinator/notify) goes to the monitor's webhooks and, by sendmail, to its owner
// and matching subscribers. Everything is stored (MonitorStore) and picked up again at start.
//
// Jobs are followed through Coordinator::Watch, whose callback only queues the job id; the
// thread does the rest. Lock order: Monitors::mu_, then the coordinator's lock (never the
// reverse: the watch callback takes only events_mu_).
//
// Thread safety: every public method may be called from any thread.
#ifndef FARM_COORDINATOR_MONITOR_MONITORS_H_
#define FARM_COORDINATOR_MONITOR_MONITORS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/git/git.h"
#include "coordinator/monitor/monitor_store.h"
#include "coordinator/notify/notify.h"
#include "coordinator/scheduler/coordinator.h"
#include "farm/v1/farm.pb.h"

namespace farm {

struct MonitorOptions {
  std::string db_path;    // the coordinator's database
  std::string cache_dir;  // the coordinator's mirrors of remote repositories
  // The local sendmail interface (`sendmail -t -i`, message on standard input).
  std::string sendmail = "/usr/sbin/sendmail";
  // From: of the emails and the Reported-by: tag ("" : "bisect farm <bisect-farm@HOSTNAME>").
  std::string reporter;
  // Base of the links in reports (a dashboard's URL: <base>/jobs/<id>); "": a `farm status`
  // command.
  std::string public_url;
  absl::Duration notify_timeout = absl::Seconds(30);
};

class Monitors {
 public:
  // Opens the monitor tables of `options.db_path`, resumes every monitor (following its running
  // head test and bisects) and starts polling. `core` must outlive the result.
  // Errors: the store's.
  static absl::StatusOr<std::unique_ptr<Monitors>> Start(Coordinator* core, MonitorOptions options);
  // Stops the thread; running jobs go on and are picked up at the next start.
  ~Monitors();

  // Checks and stores a new monitor (see Farm.WatchBranch for the errors; the branch is resolved
  // once, so that a typo is said at once) and polls it at once. Returns it with its id.
  absl::StatusOr<farm::v1::Monitor> Add(farm::v1::Monitor monitor);
  // Stops and deletes a monitor: only its owner or an admin may (PERMISSION_DENIED otherwise,
  // naming the owner). NOT_FOUND for an unknown id, INVALID_ARGUMENT for one that is not a number.
  absl::Status Remove(const std::string& monitor_id, const CallerIdentity& caller);
  std::vector<farm::v1::Monitor> List();
  // Newest first; `monitor_id` "" for every monitor's.
  std::vector<farm::v1::Regression> ListRegressions(const std::string& monitor_id);

 private:
  Monitors(Coordinator* core, MonitorOptions options, std::unique_ptr<MonitorStore> store);
  void Loop();
  // The branch's head now (fetched first when the repository is remote), and its first parent
  // ("" for a root commit).
  struct Head {
    std::string commit;
    std::string parent;
  };
  absl::StatusOr<Head> FetchHead(const farm::v1::Monitor& monitor);
  void PollLocked(farm::v1::Monitor& monitor) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnJobEndedLocked(const std::string& job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnProbeEndedLocked(farm::v1::Monitor& monitor, const farm::v1::JobStatus& job)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OpenRegressionLocked(farm::v1::Monitor& monitor, const std::string& first_fail)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnBisectEndedLocked(farm::v1::Regression& regression, const farm::v1::JobStatus& job)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NotifyLocked(const farm::v1::Monitor& monitor, farm::v1::Regression& regression,
                    const farm::v1::JobStatus& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Follows `job_id` until it ends (its id is then queued for the thread).
  void Follow(const std::string& job_id);
  void SaveLocked(const farm::v1::Monitor& monitor) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SaveLocked(const farm::v1::Regression& regression) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Coordinator* const core_;
  const MonitorOptions options_;
  RepoCache repo_cache_;

  absl::Mutex mu_;
  std::unique_ptr<MonitorStore> store_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, farm::v1::Monitor> monitors_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, farm::v1::Regression> regressions_ ABSL_GUARDED_BY(mu_);

  // What the thread is woken for.
  absl::Mutex events_mu_;
  std::vector<std::string> ended_jobs_ ABSL_GUARDED_BY(events_mu_);
  // Coordinator::Watch registrations, removed when this object goes (their callbacks use it).
  std::map<std::string, uint64_t> watches_ ABSL_GUARDED_BY(events_mu_);  // by job id
  bool poll_now_ ABSL_GUARDED_BY(events_mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(events_mu_) = false;
  std::thread thread_;
};

// The spec of a regression's bisect: the monitor's recipe and labels, `good` the last passing
// head, `bad` the first failing one. The one place where the service's own bisects get their
// options (verification, when the spec has it, is always on for them).
farm::v1::BisectSpec MakeRegressionBisectSpec(const farm::v1::Monitor& monitor,
                                              const std::string& good, const std::string& bad);

// Whether the bisect's culprit was verified (the culprit's author is then told too).
bool CulpritVerified(const farm::v1::JobStatus& bisect);

}  // namespace farm

#endif  // FARM_COORDINATOR_MONITOR_MONITORS_H_
