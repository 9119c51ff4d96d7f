// Agent streams: connections, messages, leases, drain. The registry (agent_registry.h) holds the
// sessions and their health; this file ties them to tasks and jobs.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "common/status_macros.h"
#include "coordinator/engine/report_text.h"
#include "coordinator/scheduler/coordinator.h"

namespace farm {

namespace {

constexpr int64_t kMaxLogBytesPerTask = 64 << 20;  // agents bound their output well below this

}  // namespace

absl::StatusOr<uint64_t> Coordinator::Connect(const v1::Hello& hello,
                                              std::shared_ptr<AgentChannel> channel) {
  const absl::Time arrived = Now();
  if (hello.agent_id().empty()) {
    return absl::InvalidArgumentError("hello.agent_id is empty: every agent needs a stable id");
  }
  if (hello.slots() == 0 || hello.slots() > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("hello.slots is ", hello.slots(), ": give 1 to 1024"));
  }
  absl::MutexLock lock(&mu_);
  metrics_.Arrived(Trigger::kConnect, arrived);
  Store::Batch batch(*store_);
  Session& session = agents_.Connect(hello, std::move(channel), Now());
  const uint64_t sid = session.id;
  v1::CoordinatorMessage welcome;
  welcome.mutable_welcome()->set_heartbeat_seconds(
      std::max<int64_t>(1, absl::ToInt64Seconds(options_.heartbeat)));
  welcome.mutable_welcome()->set_lease_seconds(
      std::max<int64_t>(1, absl::ToInt64Seconds(options_.lease)));
  session.channel->Send(welcome);
  if (session.draining) {
    v1::CoordinatorMessage drain;
    drain.mutable_drain();
    session.channel->Send(drain);
  }
  // Re-adopt the tasks it still runs, if they are still wanted; cancel the rest.
  for (const std::string& tid : hello.running()) {
    auto it = tasks_.find(tid);
    bool wanted = false;
    if (it != tasks_.end()) {
      Task& t = it->second;
      Job& job = jobs_[t.job_id];
      wanted = job.state == v1::RUNNING &&
               (t.state == v1::TASK_RUNNING ||
                (t.state == v1::TASK_LOST && !job.engine->ShouldCancel(t.commit)));
      if (wanted) {
        Session* old = agents_.Find(t.session);
        if (old != nullptr && old->id != sid) {
          old->tasks.erase(tid);
          agents_.RefreshFree(*old);
        }
        t.session = sid;
        t.state = v1::TASK_RUNNING;
        t.lease_expiry = Now() + options_.lease;
        t.in_kexec = false;  // back from its kexec (the result says in which kernel)
        job.running.insert(tid);
        ++job.plan_epoch;  // in flight again: the job's plan must not start it twice
      }
    }
    session.tasks.insert(tid);  // its slot is busy until the agent reports
    if (!wanted) {
      v1::CoordinatorMessage msg;
      msg.mutable_cancel()->set_task_id(tid);
      session.channel->Send(msg);
    }
  }
  // Tasks given to this agent on an earlier connection that it does not list: it never got them
  // (the Assign went out on a stream that was breaking) or no longer runs them. Their lease ends
  // now, so the next expiry pass requeues them instead of holding them for a whole lease. A task
  // inside an announced kexec keeps its boot deadline.
  const std::set<std::string> listed(hello.running().begin(), hello.running().end());
  for (auto& [tid, t] : tasks_) {
    if (t.agent_id == hello.agent_id() && t.state == v1::TASK_RUNNING && t.session != sid &&
        !t.in_kexec && !listed.count(tid)) {
      t.lease_expiry = std::min(t.lease_expiry, Now());
    }
  }
  agents_.RefreshFree(session);
  // A check it ran on an earlier connection was cancelled above: this connection's runs anew.
  for (const auto& [agent, tid] : health_.RunningChecks()) {
    if (agent != hello.agent_id()) continue;
    v1::TaskResult cancelled;
    cancelled.set_cancelled(true);
    FinishHealthCheckLocked(agent, tid, &cancelled, "");
  }
  health_.OnConnect(hello.agent_id(), session.labels);
  ScheduleLocked();
  return sid;
}

void Coordinator::OnAgentMessage(uint64_t sid, const v1::AgentMessage& msg) {
  const absl::Time arrived = Now();
  absl::MutexLock lock(&mu_);
  metrics_.Arrived(Trigger::kAgentMessage, arrived);
  Store::Batch batch(*store_);  // a result's writes (verdict, cancellations, new tasks) commit once
  Session* found = agents_.Find(sid);
  if (found == nullptr || !found->connected) return;
  Session& session = *found;
  session.last_seen = Now();
  auto renew = [&](const std::string& tid) -> Task* {
    mu_.AssertHeld();
    if (IsHealthCheckTask(tid)) {
      auto lease = health_leases_.find(tid);
      if (lease != health_leases_.end() && health_.Running(session.hello.agent_id(), tid)) {
        lease->second = Now() + options_.lease;
      }
      return nullptr;
    }
    auto it = tasks_.find(tid);
    if (it == tasks_.end() || it->second.session != sid) return nullptr;
    // A task inside a kexec keeps the boot deadline it announced.
    it->second.lease_expiry = std::max(it->second.lease_expiry, Now() + options_.lease);
    return &it->second;
  };
  switch (msg.kind_case()) {
    case v1::AgentMessage::kHeartbeat:
      for (const std::string& tid : msg.heartbeat().running()) renew(tid);
      break;
    case v1::AgentMessage::kProgress:
      if (Task* t = renew(msg.progress().task_id())) {
        t->phase = msg.progress().phase();
        Job& job = jobs_[t->job_id];
        if (t->state == v1::TASK_RUNNING && job.state == v1::RUNNING) {
          EmitLocked(job, "");
        }
      }
      break;
    case v1::AgentMessage::kLog:
      if (health_.Running(session.hello.agent_id(), msg.log().task_id())) {
        renew(msg.log().task_id());
        absl::Status st = store_->AppendLog(msg.log().task_id(), msg.log().data());
        if (!st.ok()) {
          FARM_LOG(Error) << "cannot store output of " << msg.log().task_id() << ": "
                          << st.message();
        }
      } else if (Task* t = renew(msg.log().task_id())) {
        if (t->log_bytes < kMaxLogBytesPerTask) {
          t->log_bytes += msg.log().data().size();
          absl::Status st = store_->AppendLog(t->id, msg.log().data());
          if (!st.ok()) {
            FARM_LOG(Error) << "cannot store output of " << t->id << ": " << st.message();
          }
        }
      }
      break;
    case v1::AgentMessage::kResult:
      OnResultLocked(session, msg.result());
      break;
    case v1::AgentMessage::kKexec:
      OnKexecAnnounceLocked(session, msg.kexec());
      break;
    default:
      break;
  }
}

void Coordinator::Disconnect(uint64_t sid) {
  const absl::Time arrived = Now();
  absl::MutexLock lock(&mu_);
  metrics_.Arrived(Trigger::kDisconnect, arrived);
  Store::Batch batch(*store_);
  Session* s = agents_.Find(sid);
  if (s == nullptr) return;
  // Its tasks keep their leases: the agent may come back with them. ExpireLeases requeues them
  // if it does not.
  agents_.SetDisconnected(*s);
  if (s->tasks.empty()) agents_.sessions().erase(sid);
  ScheduleLocked();
}

bool Coordinator::AwaitAgents(size_t n, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto enough = [this, n] {
    mu_.AssertHeld();
    return agents_.connected_agents() >= n;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

std::vector<v1::AgentInfo> Coordinator::ListAgents() {
  absl::MutexLock lock(&mu_);
  std::vector<v1::AgentInfo> agents = agents_.List(Now());
  for (v1::AgentInfo& a : agents) health_.Describe(a);
  return agents;
}

absl::StatusOr<std::string> Coordinator::GetHealthCheckLog(const std::string& task_id) {
  absl::MutexLock lock(&mu_);
  if (!health_.Known(task_id)) {
    return absl::NotFoundError(absl::StrCat(
        "no health check '", task_id,
        "' is kept (only each agent's last one is): see `farm agents` for the current ones"));
  }
  return store_->ReadLog(task_id);
}

void Coordinator::StartHealthChecksLocked(absl::Time now) {
  const std::vector<uint64_t> free(agents_.free_sessions().begin(), agents_.free_sessions().end());
  for (uint64_t id : free) {
    Session& s = *agents_.Find(id);
    const std::string& agent = s.hello.agent_id();
    if (QuarantinedLocked(agent, now) || !health_.Due(agent, now)) continue;
    v1::CoordinatorMessage msg;
    *msg.mutable_assign() =
        health_.Start(agent, now, absl::ToUnixMillis(now), options_.default_timeout_seconds);
    const std::string& tid = msg.assign().task_id();
    s.tasks.insert(tid);
    agents_.RefreshFree(s);
    health_leases_[tid] = now + options_.lease;
    FARM_LOG(Info) << "health check " << tid << " started on agent " << agent;
    s.channel->Send(msg);
  }
}

void Coordinator::FinishHealthCheckLocked(const std::string& agent_id, const std::string& task_id,
                                          const v1::TaskResult* result,
                                          const std::string& failure) {
  std::optional<v1::HealthCheck> done = health_.Finish(agent_id, task_id, result, failure, Now());
  if (!done) return;
  health_leases_.erase(task_id);
  absl::Status st = store_->PutHealthCheck(agent_id, *done);
  if (st.ok() && !health_.Superseded(agent_id).empty()) {
    st = store_->DeleteLog(health_.Superseded(agent_id));
  }
  if (!st.ok()) {
    FARM_LOG(Error) << "cannot store the health check of agent " << agent_id << ": "
                    << st.message();
  }
  if (done->passed()) {
    FARM_LOG(Info) << "agent " << agent_id << " passed its health check " << task_id;
  } else {
    FARM_LOG(Warning) << "agent " << agent_id << " failed its health check " << task_id << " ("
                      << done->detail() << "): it is bad and takes no work until a check passes";
  }
}

bool Coordinator::HealthCheckDueLocked(absl::Time now) {
  for (uint64_t id : agents_.free_sessions()) {
    if (health_.Due(agents_.Find(id)->hello.agent_id(), now)) return true;
  }
  return false;
}

absl::Status Coordinator::DrainAgent(const std::string& agent_id, bool drain) {
  absl::MutexLock lock(&mu_);
  if (!drain && agents_.SetAside(agent_id)) {
    return absl::FailedPreconditionError(
        absl::StrCat("agent '", agent_id, "' was set aside by an admin (see `farm agents`): `farm ",
                     "agent-state ", agent_id, " good` puts it back in service"));
  }
  if (!agents_.SetDraining(agent_id, drain)) {
    return absl::NotFoundError(absl::StrCat("no connected agent '", agent_id,
                                            "': see `farm agents` for the connected ones"));
  }
  v1::CoordinatorMessage msg;
  if (drain) {
    msg.mutable_drain();
  } else {
    msg.mutable_undrain();
  }
  for (auto& [id, s] : agents_.sessions()) {
    if (s.connected && s.hello.agent_id() == agent_id) s.channel->Send(msg);
  }
  FARM_LOG(Info) << "agent " << agent_id << (drain ? " drained" : " undrained");
  if (!drain) ScheduleLocked();
  return absl::OkStatus();
}

absl::StatusOr<v1::AgentInfo> Coordinator::SetAgentState(const std::string& agent_id,
                                                         v1::AgentState state,
                                                         const std::string& reason,
                                                         const CallerIdentity& caller) {
  if (!caller.admin) {
    return absl::PermissionDeniedError(absl::StrCat(
        "only an admin may set an agent's state (you are ", caller.user,
        "): ask the farm's admin, or use a token marked admin in the coordinator's tokens file"));
  }
  if (state != v1::AGENT_GOOD && state != v1::AGENT_MAINTENANCE && state != v1::AGENT_RETIRED) {
    return absl::InvalidArgumentError(
        "an agent's state can be set to good, maintenance or retired; the others follow from "
        "what happens (drain, quarantine, health checks)");
  }
  absl::MutexLock lock(&mu_);
  if (!agents_.Known(agent_id)) {
    return absl::NotFoundError(absl::StrCat(
        "no agent '", agent_id, "' has connected: see `farm agents` for the known ones"));
  }
  FARM_RETURN_IF_ERROR(store_->PutAgentState(agent_id, state, reason));
  agents_.SetAdminState(agent_id, state, reason);
  if (state == v1::AGENT_GOOD) health_.CheckSoon(agent_id);
  v1::CoordinatorMessage msg;
  if (state == v1::AGENT_GOOD) {
    msg.mutable_undrain();
  } else {
    msg.mutable_drain();
  }
  for (auto& [id, s] : agents_.sessions()) {
    if (s.connected && s.hello.agent_id() == agent_id) s.channel->Send(msg);
  }
  FARM_LOG(Info) << "agent " << agent_id << " set to " << v1::AgentState_Name(state)
                 << (reason.empty() ? "" : ": ") << reason << " by "
                 << (caller.user.empty() ? "an admin" : caller.user);
  if (state == v1::AGENT_GOOD) ScheduleLocked();
  for (v1::AgentInfo& a : agents_.List(Now())) {
    health_.Describe(a);
    if (a.agent_id() == agent_id) return a;
  }
  return v1::AgentInfo();
}

void Coordinator::ApplyRetentionLocked(absl::Time now) {
  if (options_.retention <= absl::ZeroDuration() || now < next_retention_) return;
  next_retention_ = now + absl::Hours(1);
  absl::StatusOr<int> deleted =
      store_->DeleteEndedBefore(absl::ToUnixSeconds(now - options_.retention));
  if (!deleted.ok()) {
    FARM_LOG(Error) << "retention: " << deleted.status().message();
    return;
  }
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    // Forget ended jobs loaded from an earlier run once the store no longer has them.
    it = (it->second.state != v1::RUNNING && !it->second.engine && !store_->LoadJob(it->first).ok())
             ? jobs_.erase(it)
             : std::next(it);
  }
}

void Coordinator::RequeueExpiredLocked(absl::Time now, bool& changed) {
  std::vector<std::pair<uint64_t, v1::TaskResult>> kexec_failed;
  for (auto& [tid, t] : tasks_) {
    if (t.state != v1::TASK_RUNNING || t.lease_expiry > now) continue;
    if (ExpireKexecLeaseLocked(t, now, kexec_failed)) continue;
    Job& job = jobs_[t.job_id];
    t.state = v1::TASK_LOST;
    Session* s = agents_.Find(t.session);
    if (s != nullptr && s->connected) {
      // Silent but connected (a stuck agent): stop the task there; its slot stays busy until the
      // agent confirms, so it is not given a second task meanwhile.
      v1::CoordinatorMessage msg;
      msg.mutable_cancel()->set_task_id(t.id);
      s->channel->Send(msg);
      job.running.erase(t.id);
    } else {
      ReleaseTaskLocked(t);
    }
    ++metrics_.leases_expired;
    v1::TaskSummary summary = SummaryLocked(job, t);
    summary.set_detail(absl::StrCat("agent ", t.agent_id, " went silent for ",
                                    absl::FormatDuration(options_.lease), "; requeued"));
    PersistTaskLocked(job, summary, 0);
    job.finished.push_back(summary);
    EmitLocked(job, absl::StrCat(ShortSha(summary.commit()), ": ", summary.detail()));
    changed = true;
  }
  for (const auto& [sid, result] : kexec_failed) {
    if (Session* s = agents_.Find(sid)) OnResultLocked(*s, result);
    changed = true;
  }
  for (const auto& [agent, tid] : health_.RunningChecks()) {
    auto lease = health_leases_.find(tid);
    if (lease == health_leases_.end() || lease->second > now) continue;
    // Its slot stays busy until the agent reports, as a job's task's would.
    for (auto& [id, s] : agents_.sessions()) {
      if (!s.connected || !s.tasks.count(tid)) continue;
      v1::CoordinatorMessage msg;
      msg.mutable_cancel()->set_task_id(tid);
      s.channel->Send(msg);
    }
    FinishHealthCheckLocked(
        agent, tid, nullptr,
        absl::StrCat("the agent went silent for ", absl::FormatDuration(options_.lease),
                     " during the check"));
    changed = true;
  }
}

void Coordinator::ForgetDisconnectedLocked() {
  // Disconnected sessions: drop what they can no longer report on, then forget empty ones.
  auto& sessions = agents_.sessions();
  for (auto it = sessions.begin(); it != sessions.end();) {
    Session& s = it->second;
    if (!s.connected) {
      for (auto t = s.tasks.begin(); t != s.tasks.end();) {
        auto tt = tasks_.find(*t);
        if (tt != tasks_.end() && tt->second.session == it->first &&
            tt->second.state == v1::TASK_RUNNING) {
          ++t;
          continue;
        }
        if (tt != tasks_.end() && tt->second.session == it->first &&
            tt->second.state == v1::TASK_CANCELLED) {
          tasks_.erase(tt);
        }
        t = s.tasks.erase(t);
      }
    }
    it = (!s.connected && s.tasks.empty()) ? sessions.erase(it) : std::next(it);
  }
}

void Coordinator::ExpireLeases() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = Now();
  metrics_.Arrived(Trigger::kLeaseCheck, now);
  ApplyRetentionLocked(now);
  Store::Batch batch(*store_);  // after the retention, which runs its own transaction
  // A quarantine that ran out lets the agent work again.
  bool changed = agents_.EndQuarantines(now);
  RequeueExpiredLocked(now, changed);
  if (health_.enabled() && HealthCheckDueLocked(now)) changed = true;
  ForgetDisconnectedLocked();
  if (changed) ScheduleLocked();
  NoteWaitingLocked(now);
}

}  // namespace farm
