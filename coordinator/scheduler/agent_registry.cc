#include "coordinator/scheduler/agent_registry.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/spec/spec.h"

namespace farm {

std::map<std::string, std::string> AgentLabels(const v1::Hello& hello) {
  std::map<std::string, std::string> labels(hello.capabilities().begin(),
                                            hello.capabilities().end());
  for (const auto& [k, v] : hello.labels()) labels[k] = v;
  return labels;
}

Session& AgentRegistry::Connect(const v1::Hello& hello, std::shared_ptr<AgentChannel> channel,
                                absl::Time now) {
  for (auto& [id, s] : sessions_) {
    if (s.hello.agent_id() == hello.agent_id()) SetDisconnected(s);
  }
  uint64_t sid = next_session_++;
  Session& session = sessions_[sid];
  session.id = sid;
  session.hello = hello;
  session.labels = AgentLabels(hello);
  // A kexec agent says which host kernel its machine runs (it may have kexecked into it before
  // this coordinator, or this connection, existed).
  if (auto key = hello.capabilities().find(spec::kHostKernelKeyCapability);
      key != hello.capabilities().end()) {
    session.host_key = key->second;
  }
  session.channel = std::move(channel);
  session.last_seen = now;
  session.draining = drained_.count(hello.agent_id()) > 0;
  ++connected_agents_;
  connected_slots_ += hello.slots();
  return session;
}

Session* AgentRegistry::Find(uint64_t session) {
  auto it = sessions_.find(session);
  return it == sessions_.end() ? nullptr : &it->second;
}

void AgentRegistry::SetDisconnected(Session& s) {
  if (!s.connected) return;
  free_sessions_.erase(s.id);
  s.connected = false;
  s.channel.reset();
  --connected_agents_;
  connected_slots_ -= s.hello.slots();
}

void AgentRegistry::RefreshFree(Session& s) {
  if (s.connected && !s.draining && s.tasks.size() < s.hello.slots()) {
    free_sessions_.insert(s.id);
  } else {
    free_sessions_.erase(s.id);
  }
}

bool AgentRegistry::SetDraining(const std::string& agent_id, bool draining) {
  bool found = false;
  for (auto& [id, s] : sessions_) {
    if (!s.connected || s.hello.agent_id() != agent_id) continue;
    found = true;
    s.draining = draining;
    RefreshFree(s);
  }
  if (found && draining) drained_.insert(agent_id);
  if (found && !draining) drained_.erase(agent_id);
  return found;
}

void AgentRegistry::SetAdminState(const std::string& agent_id, v1::AgentState state,
                                  const std::string& reason) {
  const bool out = state != v1::AGENT_GOOD;
  if (out) {
    admin_states_[agent_id] = {state, reason};
    drained_.insert(agent_id);
  } else {
    admin_states_.erase(agent_id);
    drained_.erase(agent_id);
  }
  for (auto& [id, s] : sessions_) {
    if (s.hello.agent_id() != agent_id) continue;
    s.draining = out;
    RefreshFree(s);
  }
}

bool AgentRegistry::Known(const std::string& agent_id) const {
  for (const auto& [id, s] : sessions_) {
    if (s.hello.agent_id() == agent_id) return true;
  }
  return false;
}

bool AgentRegistry::Quarantined(const std::string& agent_id, absl::Time now) const {
  if (quarantined_ == 0) return false;
  auto h = health_.find(agent_id);
  return h != health_.end() && h->second.quarantined_until > now;
}

bool AgentRegistry::RecordInfraError(const std::string& agent_id, const std::string& error,
                                     absl::Time now) {
  AgentHealth& health = health_[agent_id];
  if (++health.consecutive_infra_errors < quarantine_after_) return false;
  if (health.quarantined_until == absl::InfinitePast()) ++quarantined_;
  health.quarantined_until = now + quarantine_;
  health.reason = absl::StrCat(health.consecutive_infra_errors,
                               " infrastructure errors in a row, the last: ", error);
  health.consecutive_infra_errors = 0;
  return true;
}

void AgentRegistry::Quarantine(const std::string& agent_id, const std::string& reason,
                               absl::Time now) {
  AgentHealth& health = health_[agent_id];
  if (health.quarantined_until == absl::InfinitePast()) ++quarantined_;
  health.quarantined_until = now + quarantine_;
  health.reason = reason;
  health.consecutive_infra_errors = 0;
}

void AgentRegistry::RecordVerdict(const std::string& agent_id) {
  health_[agent_id].consecutive_infra_errors = 0;
}

bool AgentRegistry::EndQuarantines(absl::Time now) {
  bool any = false;
  for (auto& [id, h] : health_) {
    if (h.quarantined_until != absl::InfinitePast() && h.quarantined_until <= now) {
      h.quarantined_until = absl::InfinitePast();
      --quarantined_;
      any = true;
    }
  }
  return any;
}

const AgentHealth* AgentRegistry::Health(const std::string& agent_id) const {
  auto it = health_.find(agent_id);
  return it == health_.end() ? nullptr : &it->second;
}

std::string AgentRegistry::WaitingNote(absl::Time now) const {
  if (connected_agents_ == 0) return "waiting: no agent is connected";
  if (quarantined_ == 0) return "";
  std::vector<std::string> why;
  for (auto& [id, s] : sessions_) {
    if (!s.connected) continue;
    if (!Quarantined(s.hello.agent_id(), now)) return "";
    const AgentHealth& h = health_.at(s.hello.agent_id());
    why.push_back(
        absl::StrCat(s.hello.agent_id(), " for ",
                     absl::FormatDuration(absl::Trunc(h.quarantined_until - now, absl::Seconds(1))),
                     " (", h.reason, ")"));
  }
  return absl::StrCat("waiting: every connected agent is quarantined: ", absl::StrJoin(why, "; "),
                      ". See `farm agents`.");
}

std::vector<v1::AgentInfo> AgentRegistry::List(absl::Time now) const {
  std::vector<v1::AgentInfo> out;
  for (auto& [id, s] : sessions_) {
    v1::AgentInfo a;
    a.set_agent_id(s.hello.agent_id());
    a.set_hostname(s.hello.hostname());
    a.set_slots(s.hello.slots());
    for (const std::string& t : s.tasks) a.add_running_tasks(t);
    a.set_connected(s.connected);
    a.set_draining(s.draining);
    *a.mutable_capabilities() = s.hello.capabilities();
    *a.mutable_labels() = s.hello.labels();
    a.set_last_seen_seconds_ago(absl::ToDoubleSeconds(now - s.last_seen));
    auto h = health_.find(s.hello.agent_id());
    if (h != health_.end() && h->second.quarantined_until > now) {
      a.set_quarantined(true);
      a.set_quarantine_reason(h->second.reason);
      a.set_quarantined_for_seconds(absl::ToDoubleSeconds(h->second.quarantined_until - now));
    }
    if (auto admin = admin_states_.find(s.hello.agent_id()); admin != admin_states_.end()) {
      a.set_state(admin->second.state);
      a.set_state_reason(admin->second.reason);
    } else if (a.draining()) {
      a.set_state(v1::AGENT_DRAINING);
    } else if (a.quarantined()) {
      a.set_state(v1::AGENT_QUARANTINED);
      a.set_state_reason(a.quarantine_reason());
    } else {
      a.set_state(v1::AGENT_GOOD);
    }
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace farm
