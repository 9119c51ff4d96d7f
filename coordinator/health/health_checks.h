// Agent health checks, as LAVA's: a known-good script that an agent runs when it connects, every
// `every` and every `tasks` job tasks. An agent whose check fails (or times out) is bad: it gets
// no job's task, only the check again every `retry`, until one passes.
//
// A check is a task of no job: its id starts with "health-", the coordinator keeps it here (not
// in its job table, not in the store's tasks table) and the agent runs it in an empty scratch
// directory (Assign.health_check).
//
// Thread safety: none; the coordinator holds its lock around every call. Time is passed in.
#ifndef FARM_COORDINATOR_HEALTH_HEALTH_CHECKS_H_
#define FARM_COORDINATOR_HEALTH_HEALTH_CHECKS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "farm/v1/farm.pb.h"

namespace farm {

// One --health-check flag.
struct HealthCheckConfig {
  std::string label = "*";  // "*" (every agent) or "key=value" (agents with that label)
  std::string script_path;
  std::string script;                             // its content, sent to the agent
  absl::Duration every = absl::ZeroDuration();    // 0: only on connect (and retries)
  uint32_t tasks = 0;                             // 0: not by task count
  absl::Duration retry = absl::Minutes(5);        // how often a bad agent is checked again
  absl::Duration timeout = absl::ZeroDuration();  // 0: the coordinator's task timeout
};

// Parses `LABEL=SCRIPT[,every=DURATION][,tasks=N][,retry=DURATION][,timeout=DURATION]` (LABEL is
// `*` or `key=value`; durations as "90s", "4h") and reads SCRIPT. Errors: INVALID_ARGUMENT
// saying what is wrong with the flag; NOT_FOUND when the script cannot be read.
absl::StatusOr<HealthCheckConfig> ParseHealthCheckFlag(const std::string& flag);

// Whether `task_id` names a health check rather than a job's task.
bool IsHealthCheckTask(const std::string& task_id);

class HealthChecks {
 public:
  // The first config whose label an agent has applies to it (so give specific labels before `*`).
  explicit HealthChecks(std::vector<HealthCheckConfig> configs) : configs_(std::move(configs)) {}

  bool enabled() const { return !configs_.empty(); }

  // The last check of `agent_id` as stored before a restart: a failed one keeps the agent bad.
  void Restore(const std::string& agent_id, const farm::v1::HealthCheck& last);

  // The agent connected with these labels: its check is due now (when one applies).
  void OnConnect(const std::string& agent_id, const std::map<std::string, std::string>& labels);
  // A job's task of the agent ended with a result: counted for `tasks=N`.
  void OnTaskDone(const std::string& agent_id);
  // An admin set the agent good: a bad agent is checked again at once (it stays bad until then).
  void CheckSoon(const std::string& agent_id);

  // Whether the agent may be given a job's task at `now`: no check applies, or its last check
  // passed, none runs and none is due.
  bool MayWork(const std::string& agent_id, absl::Time now) const;
  // Whether a check should start on the agent at `now` (due, none running).
  bool Due(const std::string& agent_id, absl::Time now) const;
  // Whether any of `agent_ids` has a check due at `now`.
  bool AnyDue(const std::vector<std::string>& agent_ids, absl::Time now) const;

  // Starts the agent's check (Due was true): the Assign to send. `id_base` makes the task id
  // unique across restarts (the coordinator passes the time in ms); `default_timeout_seconds`
  // applies when the config has none.
  farm::v1::Assign Start(const std::string& agent_id, absl::Time now, int64_t id_base,
                         uint32_t default_timeout_seconds);
  // Whether `task_id` is the running check of `agent_id`.
  bool Running(const std::string& agent_id, const std::string& task_id) const;
  // Ends the running check `task_id` of `agent_id` with the agent's result (a GOOD verdict
  // passes) or with `failure` when the result is null (the agent went silent). Returns the check
  // as it now stands (to store), or nullopt when `task_id` is not that agent's running check or
  // the result is a cancellation (the check is then forgotten; the next connect runs it again).
  std::optional<farm::v1::HealthCheck> Finish(const std::string& agent_id,
                                              const std::string& task_id,
                                              const farm::v1::TaskResult* result,
                                              const std::string& failure, absl::Time now);
  // The previous check's task id, whose output is no longer needed once a new check ended ("").
  std::string Superseded(const std::string& agent_id) const;

  // Whether `task_id` is the last or running check of some agent.
  bool Known(const std::string& task_id) const;
  // The last or running check of the agent, or nullptr.
  const farm::v1::HealthCheck* Last(const std::string& agent_id) const;
  // Whether the agent's last check failed.
  bool Bad(const std::string& agent_id) const;
  // Adds the agent's check to `info` and makes it AGENT_BAD when its last check failed (an admin's
  // state and a drain still show first).
  void Describe(farm::v1::AgentInfo& info) const;
  // The running checks' (agent id, task id), for lease handling.
  std::vector<std::pair<std::string, std::string>> RunningChecks() const;

 private:
  struct PerAgent {
    const HealthCheckConfig* config = nullptr;
    bool connect_due = false;  // connected (or set good) since its last check started
    absl::Time next_due = absl::InfiniteFuture();
    uint32_t tasks_since = 0;
    bool bad = false;
    std::string failure;  // why the last finished check failed
    bool has_last = false;
    farm::v1::HealthCheck last;  // the running one while `running`
    bool running = false;
    std::string superseded;  // task id of the check before `last`
  };
  static bool DueAt(const PerAgent& a, absl::Time now);

  std::vector<HealthCheckConfig> configs_;
  std::map<std::string, PerAgent> agents_;
  uint64_t started_ = 0;
};

}  // namespace farm

#endif  // FARM_COORDINATOR_HEALTH_HEALTH_CHECKS_H_
