#include "coordinator/health/health_checks.h"

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace farm {

namespace {

constexpr char kTaskPrefix[] = "health-";
constexpr char kFlagForm[] =
    "give LABEL=SCRIPT[,every=DURATION][,tasks=N][,retry=DURATION][,timeout=DURATION], LABEL "
    "being * or key=value (e.g. --health-check '*=/etc/farm/check.sh,every=4h,tasks=50')";

absl::Status FlagError(const std::string& flag, const std::string& what) {
  return absl::InvalidArgumentError(
      absl::StrCat("--health-check '", flag, "': ", what, ": ", kFlagForm));
}

}  // namespace

bool IsHealthCheckTask(const std::string& task_id) {
  return absl::StartsWith(task_id, kTaskPrefix);
}

absl::StatusOr<HealthCheckConfig> ParseHealthCheckFlag(const std::string& flag) {
  std::vector<std::string> parts = absl::StrSplit(flag, ',');
  HealthCheckConfig config;
  // The label is "*" or "key=value", so the script follows the first '=' after it.
  const std::string& head = parts[0];
  size_t eq = head.find('=');
  if (eq != std::string::npos && head.substr(0, eq) != "*") eq = head.find('=', eq + 1);
  if (eq == std::string::npos || eq == 0 || eq + 1 == head.size()) {
    return FlagError(flag, "no LABEL=SCRIPT");
  }
  config.label = head.substr(0, eq);
  config.script_path = head.substr(eq + 1);
  for (size_t i = 1; i < parts.size(); ++i) {
    std::pair<std::string, std::string> kv = absl::StrSplit(parts[i], absl::MaxSplits('=', 1));
    absl::Duration d;
    if (kv.first == "tasks") {
      if (!absl::SimpleAtoi(kv.second, &config.tasks) || config.tasks == 0) {
        return FlagError(flag, absl::StrCat("tasks=", kv.second, " is not a positive number"));
      }
      continue;
    }
    if (kv.first != "every" && kv.first != "retry" && kv.first != "timeout") {
      return FlagError(flag, absl::StrCat("unknown option '", parts[i], "'"));
    }
    if (!absl::ParseDuration(kv.second, &d) || d <= absl::ZeroDuration()) {
      return FlagError(flag, absl::StrCat(kv.first, "=", kv.second,
                                          " is not a positive duration (e.g. 90s, 30m, 4h)"));
    }
    (kv.first == "every" ? config.every : kv.first == "retry" ? config.retry : config.timeout) = d;
  }
  std::ifstream in(config.script_path, std::ios::binary);
  std::ostringstream content;
  content << in.rdbuf();
  if (!in || content.str().empty()) {
    return absl::NotFoundError(absl::StrCat("--health-check '", flag, "': cannot read the script ",
                                            config.script_path,
                                            " (or it is empty): give a readable file"));
  }
  config.script = content.str();
  return config;
}

void HealthChecks::Restore(const std::string& agent_id, const v1::HealthCheck& last) {
  PerAgent& a = agents_[agent_id];
  a.has_last = true;
  a.last = last;
  a.last.set_running(false);
  a.bad = !last.passed();
  a.failure = last.detail();
}

void HealthChecks::OnConnect(const std::string& agent_id,
                             const std::map<std::string, std::string>& labels) {
  const HealthCheckConfig* config = nullptr;
  for (const HealthCheckConfig& c : configs_) {
    if (c.label == "*") {
      config = &c;
      break;
    }
    std::pair<std::string, std::string> kv = absl::StrSplit(c.label, absl::MaxSplits('=', 1));
    auto it = labels.find(kv.first);
    if (it != labels.end() && it->second == kv.second) {
      config = &c;
      break;
    }
  }
  if (config == nullptr && agents_.count(agent_id) == 0) return;
  PerAgent& a = agents_[agent_id];
  a.config = config;
  a.connect_due = config != nullptr;
}

void HealthChecks::OnTaskDone(const std::string& agent_id) {
  auto it = agents_.find(agent_id);
  if (it != agents_.end()) ++it->second.tasks_since;
}

void HealthChecks::CheckSoon(const std::string& agent_id) {
  auto it = agents_.find(agent_id);
  if (it != agents_.end() && it->second.config != nullptr) it->second.connect_due = true;
}

bool HealthChecks::DueAt(const PerAgent& a, absl::Time now) {
  if (a.config == nullptr || a.running) return false;
  if (a.connect_due || now >= a.next_due) return true;
  return !a.bad && a.config->tasks > 0 && a.tasks_since >= a.config->tasks;
}

bool HealthChecks::MayWork(const std::string& agent_id, absl::Time now) const {
  auto it = agents_.find(agent_id);
  if (it == agents_.end() || it->second.config == nullptr) return true;
  const PerAgent& a = it->second;
  return !a.bad && !a.running && !DueAt(a, now);
}

bool HealthChecks::Due(const std::string& agent_id, absl::Time now) const {
  auto it = agents_.find(agent_id);
  return it != agents_.end() && DueAt(it->second, now);
}

bool HealthChecks::AnyDue(const std::vector<std::string>& agent_ids, absl::Time now) const {
  for (const std::string& id : agent_ids) {
    if (Due(id, now)) return true;
  }
  return false;
}

v1::Assign HealthChecks::Start(const std::string& agent_id, absl::Time now, int64_t id_base,
                               uint32_t default_timeout_seconds) {
  PerAgent& a = agents_[agent_id];
  const HealthCheckConfig& config = *a.config;
  v1::Assign assign;
  assign.set_task_id(absl::StrCat(kTaskPrefix, id_base, "-", ++started_));
  assign.set_health_check(true);
  v1::Recipe& recipe = *assign.mutable_recipe();
  recipe.add_test_argv("health-check");
  recipe.set_test_script(config.script);
  recipe.set_timeout_seconds(config.timeout > absl::ZeroDuration()
                                 ? static_cast<uint32_t>(absl::ToInt64Seconds(config.timeout))
                                 : default_timeout_seconds);
  a.superseded = a.has_last ? a.last.task_id() : "";
  a.last = v1::HealthCheck();
  a.last.set_label(config.label);
  a.last.set_task_id(assign.task_id());
  a.last.set_started_unix(absl::ToUnixSeconds(now));
  a.last.set_running(true);
  a.last.set_log_path(absl::StrCat("/api/v1/health-checks/", assign.task_id(), "/log"));
  a.has_last = true;
  a.running = true;
  a.connect_due = false;
  a.tasks_since = 0;
  return assign;
}

bool HealthChecks::Running(const std::string& agent_id, const std::string& task_id) const {
  auto it = agents_.find(agent_id);
  return it != agents_.end() && it->second.running && it->second.last.task_id() == task_id;
}

std::optional<v1::HealthCheck> HealthChecks::Finish(const std::string& agent_id,
                                                    const std::string& task_id,
                                                    const v1::TaskResult* result,
                                                    const std::string& failure, absl::Time now) {
  if (!Running(agent_id, task_id)) return std::nullopt;
  PerAgent& a = agents_[agent_id];
  a.running = false;
  if (result != nullptr && result->cancelled()) {
    // Not a result: the next connection (or the admin) starts it again.
    a.connect_due = true;
    a.last.set_running(false);
    return std::nullopt;
  }
  bool passed = false;
  std::string detail = failure;
  if (result != nullptr) {
    switch (result->outcome_case()) {
      case v1::TaskResult::kVerdict:
        passed = result->verdict() == v1::GOOD;
        if (!passed) {
          detail = absl::StrCat("the check said ", v1::Verdict_Name(result->verdict()),
                                result->detail().empty() ? "" : ": ", result->detail());
        }
        break;
      case v1::TaskResult::kInfraError:
        detail = result->infra_error();
        break;
      case v1::TaskResult::kJobError:
        detail = result->job_error();
        break;
      default:
        detail = "the agent sent a result with no outcome";
        break;
    }
  }
  a.last.set_running(false);
  a.last.set_ended_unix(absl::ToUnixSeconds(now));
  a.last.set_passed(passed);
  a.last.set_detail(passed ? "" : detail);
  a.bad = !passed;
  a.failure = a.last.detail();
  a.next_due = passed ? (a.config->every > absl::ZeroDuration() ? now + a.config->every
                                                                : absl::InfiniteFuture())
                      : now + a.config->retry;
  return a.last;
}

std::string HealthChecks::Superseded(const std::string& agent_id) const {
  auto it = agents_.find(agent_id);
  return it == agents_.end() ? "" : it->second.superseded;
}

bool HealthChecks::Known(const std::string& task_id) const {
  for (const auto& [id, a] : agents_) {
    if (a.has_last && a.last.task_id() == task_id) return true;
  }
  return false;
}

const v1::HealthCheck* HealthChecks::Last(const std::string& agent_id) const {
  auto it = agents_.find(agent_id);
  return it == agents_.end() || !it->second.has_last ? nullptr : &it->second.last;
}

bool HealthChecks::Bad(const std::string& agent_id) const {
  auto it = agents_.find(agent_id);
  return it != agents_.end() && it->second.config != nullptr && it->second.bad;
}

void HealthChecks::Describe(v1::AgentInfo& info) const {
  auto it = agents_.find(info.agent_id());
  if (it == agents_.end()) return;
  const PerAgent& a = it->second;
  if (a.has_last) *info.mutable_health_check() = a.last;
  if (a.config == nullptr) return;
  if (a.bad && (info.state() == v1::AGENT_GOOD || info.state() == v1::AGENT_QUARANTINED)) {
    info.set_state(v1::AGENT_BAD);
    info.set_state_reason(
        absl::StrCat("health check failed: ", a.failure, a.running ? " (checking again now)" : "",
                     "; checked again every ", absl::FormatDuration(a.config->retry)));
  } else if (info.state() == v1::AGENT_GOOD && (a.running || a.connect_due)) {
    info.set_state_reason("health check running");
  }
}

std::vector<std::pair<std::string, std::string>> HealthChecks::RunningChecks() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [id, a] : agents_) {
    if (a.running) out.emplace_back(id, a.last.task_id());
  }
  return out;
}

}  // namespace farm
