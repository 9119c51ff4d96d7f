// The dispatcher: which job's planned commit goes to which free slot. It knows no job kind: the
// job's engine plans and decides what is pointless; the dispatcher deals slots (max-min fair
// share), keeps each job's plan, checks eligibility (labels, failed-here) and places commits
// near agents' worktrees.
#include <algorithm>
#include <functional>
#include <queue>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log/log.h"
#include "common/spec/spec.h"
#include "coordinator/engine/report_text.h"
#include "coordinator/scheduler/coordinator.h"

namespace farm {

// The free slots of one ScheduleLocked call: one entry per free slot (an agent with two free
// slots is there twice).
struct Coordinator::FreeSlots {
  std::vector<Session*> slots;
  std::vector<bool> used;
  size_t left = 0;
  absl::Time now;
  // Agents that can take work now; computed the first time a commit that failed somewhere needs
  // it.
  std::set<std::string> usable;
  bool usable_known = false;
};

// A job's place in the dispatcher's queue; smaller is served first.
struct Coordinator::Turn {
  uint32_t priority_rank;  // kMaxPriority - priority
  size_t user_running;     // tasks running of the job's owner
  size_t job_running;      // tasks running of the job
  size_t rank;             // rotation: jobs after the one dealt last come first
  int64_t job_id;
  auto Key() const { return std::tie(priority_rank, user_running, job_running, rank, job_id); }
  bool operator>(const Turn& o) const { return Key() > o.Key(); }
  bool operator!=(const Turn& o) const { return Key() != o.Key(); }
};

bool Coordinator::Eligible(const Job& job, const Session& session) {
  if (job.spec.has_host_kernel()) {
    auto it = session.labels.find("kexec");
    if (it == session.labels.end() || it->second != "1") return false;
  }
  for (const auto& [key, value] : job.spec.require()) {
    auto it = session.labels.find(key);
    if (it == session.labels.end() || it->second != value) return false;
  }
  return true;
}

void Coordinator::ScheduleLocked() {
  if (stopping_) return;
  // Health checks come first: an agent with one due takes no job's task until it passed.
  if (health_.enabled()) StartHealthChecksLocked(Now());
  if (running_jobs_.empty()) return;
  FreeSlots free;
  free.now = Now();
  for (uint64_t id : agents_.free_sessions()) {
    Session& s = *agents_.Find(id);
    if (QuarantinedLocked(s.hello.agent_id(), free.now)) continue;
    if (!health_.MayWork(s.hello.agent_id(), free.now)) continue;
    for (size_t i = s.tasks.size(); i < s.hello.slots(); ++i) free.slots.push_back(&s);
  }
  if (free.slots.empty()) return;
  free.used.assign(free.slots.size(), false);
  free.left = free.slots.size();
  // Priority first (LAVA's 0..100); within a priority, max-min fair share between users, then
  // between that user's jobs: each free slot goes to the job whose user has the fewest tasks
  // running, then to that user's job with the fewest, ties to the job after the one dealt last.
  // So a user with ten jobs does not get ten times the farm. A job whose verdict just came in
  // (its tasks pruned) is served first among equals, and no job can hold more than one slot over
  // another's share while the other waits. A job plans only when its turn comes, and keeps its
  // plan until a finished task changes what is worth testing: a freed slot costs at most one
  // plan of one job, not a plan of every job.
  std::map<std::string, size_t> user_running = UserRunningLocked();
  auto turn_of = [&](const Job& job, size_t rank) {
    return Turn{spec::kMaxPriority - spec::Priority(job.spec), user_running[job.spec.owner()],
                job.running.size(), rank, job.id};
  };
  std::vector<Turn> turns;
  turns.reserve(running_jobs_.size());
  auto pivot = running_jobs_.upper_bound(dealt_last_);
  size_t rank = 0;
  for (auto it = pivot; it != running_jobs_.end(); ++it) {
    turns.push_back(turn_of(jobs_[*it], rank++));
  }
  for (auto it = running_jobs_.begin(); it != pivot; ++it) {
    turns.push_back(turn_of(jobs_[*it], rank++));
  }
  std::priority_queue<Turn, std::vector<Turn>, std::greater<Turn>> queue(std::greater<Turn>(),
                                                                         std::move(turns));
  const size_t user_cap = options_.max_slots_per_user;
  while (free.left > 0 && !queue.empty()) {
    Turn turn = queue.top();
    queue.pop();
    auto it = jobs_.find(turn.job_id);
    if (it == jobs_.end() || it->second.state != v1::RUNNING) continue;
    Job& job = it->second;
    // Another job of the same user was dealt a slot since this turn was queued: its place moved.
    Turn now = turn_of(job, turn.rank);
    if (now != turn) {
      queue.push(now);
      continue;
    }
    if (user_cap > 0 && turn.user_running >= user_cap) continue;
    size_t share = (free.left + queue.size()) / (queue.size() + 1);
    if (user_cap > 0) share = std::min(share, user_cap - turn.user_running);
    const size_t before = job.running.size();
    if (DealOneLocked(job, free, std::max<size_t>(1, share))) {
      dealt_last_ = job.id;
      // A reused verdict may also have cancelled some of the job's tasks.
      size_t& mine = user_running[job.spec.owner()];
      mine = mine + job.running.size() - before;
      queue.push(turn_of(job, turn.rank));
    }
  }
}

std::map<std::string, size_t> Coordinator::UserRunningLocked() {
  std::map<std::string, size_t> running;
  for (int64_t id : running_jobs_) {
    const Job& job = jobs_[id];
    running[job.spec.owner()] += job.running.size();
  }
  return running;
}

void Coordinator::QueueNoteLocked(const Job& job, v1::JobStatus& status) {
  std::map<std::string, size_t> user_running = UserRunningLocked();
  auto key = [&](const Job& j) {
    return std::make_tuple(spec::kMaxPriority - spec::Priority(j.spec),
                           user_running[j.spec.owner()], j.id);
  };
  const auto mine = key(job);
  const uint32_t priority = spec::Priority(job.spec);
  size_t ahead = 0;
  size_t higher = 0;
  for (int64_t id : running_jobs_) {
    const Job& other = jobs_[id];
    if (other.id == job.id) continue;
    higher += spec::Priority(other.spec) > priority;
    ahead += other.running.empty() && key(other) < mine;
  }
  status.set_queue_position(static_cast<uint32_t>(ahead + 1));
  std::string why;
  if (!job.spec.require().empty()) {
    bool servable = false;
    std::vector<std::string> missing;
    for (const auto& [k, v] : job.spec.require()) {
      bool found = false;
      for (const auto& [sid, s] : agents_.sessions()) {
        if (!s.connected) continue;
        auto l = s.labels.find(k);
        found |= l != s.labels.end() && l->second == v;
      }
      if (!found) missing.push_back(absl::StrCat(k, "=", v));
    }
    for (const auto& [sid, s] : agents_.sessions()) servable |= s.connected && Eligible(job, s);
    std::sort(missing.begin(), missing.end());
    if (!missing.empty()) {
      why = absl::StrCat("no agent has label", missing.size() > 1 ? "s " : " ",
                         absl::StrJoin(missing, " "));
    } else if (!servable) {
      why = "no single agent has all the labels this job requires";
    }
  }
  const size_t cap = options_.max_slots_per_user;
  bool all_bad = health_.enabled();
  for (const auto& [sid, s] : agents_.sessions()) {
    all_bad &= !s.connected || health_.Bad(s.hello.agent_id());
  }
  if (!why.empty()) {
    // A label nobody has outweighs everything below.
  } else if (agents_.connected_agents() == 0) {
    why = "no agent connected";
  } else if (all_bad) {
    why = "every connected agent failed its health check (see `farm agents`)";
  } else if (cap > 0 && user_running[job.spec.owner()] >= cap) {
    why = absl::StrCat("user cap ", cap, " reached");
  } else if (higher > 0) {
    why = absl::StrCat("waiting: ", higher, higher == 1 ? " job" : " jobs", " of higher priority");
  } else if (ahead > 0) {
    why = absl::StrCat("waiting: ", ahead, ahead == 1 ? " job" : " jobs",
                       " ahead (fair share between users)");
  } else {
    why = "waiting for a free slot";
  }
  status.set_waiting_reason(why);
}

int Coordinator::PickSlotLocked(Job& job, FreeSlots& free, CommitId c) {
  // A commit that failed infrastructure-wise on an agent goes to another agent when one is free;
  // only when every usable agent has failed it does it go back to one of them (so a lone agent
  // still reaches the attempt limit).
  const std::set<std::string>* failed = nullptr;
  if (auto f = job.infra_agents.find(c); f != job.infra_agents.end()) failed = &f->second;
  bool everyone_failed = false;
  if (failed != nullptr) {
    if (!free.usable_known) {
      free.usable_known = true;
      for (auto& [id, s] : agents_.sessions()) {
        if (s.connected && !s.draining && !QuarantinedLocked(s.hello.agent_id(), free.now) &&
            !health_.Bad(s.hello.agent_id()) && Eligible(job, s)) {
          free.usable.insert(s.hello.agent_id());
        }
      }
    }
    everyone_failed =
        std::includes(failed->begin(), failed->end(), free.usable.begin(), free.usable.end());
  }
  const bool any_requirement = !job.spec.require().empty() || job.spec.has_host_kernel();
  std::vector<size_t> eligible;
  for (size_t i = 0; i < free.slots.size(); ++i) {
    if (free.used[i]) continue;
    if (failed && !everyone_failed && failed->count(free.slots[i]->hello.agent_id())) continue;
    if (any_requirement && !Eligible(job, *free.slots[i])) continue;
    eligible.push_back(i);
  }
  if (eligible.size() > 1) {
    if (int same = SameHostKernelSlot(job, free, eligible, c); same >= 0) return same;
  }
  if (eligible.size() <= 1 || !job.move_cost) {
    return eligible.empty() ? -1 : static_cast<int>(eligible[0]);
  }
  // Cost-aware placement: the agent whose worktree is nearest (fewest files to change, so the
  // cheapest incremental build); an agent that last tested another job starts afresh.
  int best = -1;
  double best_cost = 0;
  double fresh_cost = -1;
  for (size_t i : eligible) {
    Session* s = free.slots[i];
    double cost = 0;
    if (s->last_job == job.id && s->last_commit) {
      cost = job.move_cost(s->last_commit, c);
    } else {
      if (fresh_cost < 0) fresh_cost = job.move_cost(std::nullopt, c);
      cost = fresh_cost;
    }
    if (best < 0 || cost < best_cost) {
      best = static_cast<int>(i);
      best_cost = cost;
      if (cost == 0) break;
    }
  }
  return best;
}

// Host kernels (matrix jobs, issue 11): a cell goes to a free agent whose machine already runs
// its host kernel, so that it need not kexec; -1 when no eligible slot does.
int Coordinator::SameHostKernelSlot(const Job& job, const FreeSlots& free,
                                    const std::vector<size_t>& eligible, CommitId c) {
  const v1::HostKernel* host = job.engine->HostKernelOf(c);
  if (host == nullptr) return -1;
  for (size_t i : eligible) {
    if (free.slots[i]->host_key == host->key()) return static_cast<int>(i);
  }
  return -1;
}

bool Coordinator::DealOneLocked(Job& job, FreeSlots& free, size_t share) {
  const size_t cap = job.spec.max_parallel();
  // Plans hold `share` probes (k-section's geometry is for that many). Only when no free slot can
  // take any of them (each failed infrastructure-wise on the free agents) is a wider plan asked
  // for, so that those agents get other commits meanwhile.
  bool widened = false;
  while (job.state == v1::RUNNING && job.engine) {
    if (cap > 0 && job.running.size() >= cap) return false;
    if (job.plan_key != job.PlanKey()) {
      job.plan.clear();
      job.plan_exhausted = false;
      job.plan_key = job.PlanKey();
    }
    if (job.plan.empty()) {
      if (job.plan_exhausted) return false;
      size_t want = share + (widened ? std::min<size_t>(job.infra_agents.size(), share) : 0);
      if (cap > 0) want = std::min(want, cap - job.running.size());
      std::vector<CommitId> in_flight;
      for (const std::string& tid : job.running) {
        if (auto t = tasks_.find(tid); t != tasks_.end()) in_flight.push_back(t->second.commit);
      }
      job.plan = job.engine->Plan(want, in_flight);
      FARM_LOG(Debug) << "job " << job.id << " planned " << job.plan.size() << " of " << want
                      << " around " << in_flight.size() << " running";
      if (job.plan.size() > want) job.plan.resize(want);
      job.plan_exhausted = job.plan.size() < want;
      if (job.plan.empty()) return false;
    }
    bool reused = false;
    for (size_t i = 0; i < job.plan.size(); ++i) {
      CommitId c = job.plan[i];
      if (job.engine->ReusesVerdicts() && ReuseLocked(job, c)) {
        reused = true;  // the engine's state moved: plan again
        break;
      }
      int slot = PickSlotLocked(job, free, c);
      if (slot < 0) continue;
      job.plan.erase(job.plan.begin() + i);
      free.used[slot] = true;
      --free.left;
      StartTaskLocked(job, c, *free.slots[slot]);
      return true;
    }
    if (!reused) {
      // No free slot can take any planned commit.
      if (widened || job.infra_agents.empty() || job.plan_exhausted) return false;
      widened = true;
      job.plan.clear();
    }
  }
  return false;
}

bool Coordinator::ReuseLocked(Job& job, CommitId commit) {
  if (job.spec.no_reuse()) return false;
  const std::string& tree = JobTree(job, commit);
  if (tree.empty()) return false;
  absl::StatusOr<std::optional<Store::TreeVerdict>> known =
      store_->GetTreeVerdict(tree, job.recipe_digest);
  if (!known.ok() || !known->has_value()) return false;
  v1::TaskSummary s;
  s.set_task_id(absl::StrCat(job.id, ".", ++job.task_counter));
  s.set_commit(ProbeHex(job, commit));
  s.set_subject(JobSubject(job, commit));
  s.set_agent("reused");
  s.set_state(v1::TASK_DONE);
  s.set_verdict((*known)->verdict);
  s.set_reused(true);
  s.set_reused_from((*known)->task_id);
  s.set_detail(absl::StrCat("same tree as task ", (*known)->task_id));
  ++metrics_.reused;
  bool applied = job.engine->Observe(commit, VerdictFromProto(s.verdict()));
  s.set_applied(applied);
  PersistTaskLocked(job, s, ++job.verdict_seq);
  job.finished.push_back(s);
  EmitLocked(job, absl::StrCat(ShortSha(s.commit()), " reused verdict of task ", s.reused_from(),
                               " (same tree, same recipe)"));
  PruneLocked(job);
  CheckDoneLocked(job);
  return true;
}

void Coordinator::StartTaskLocked(Job& job, CommitId commit, Session& session) {
  std::string id = absl::StrCat(job.id, ".", ++job.task_counter);
  Task& t = tasks_[id];
  t.id = id;
  t.job_id = job.id;
  t.commit = commit;
  t.session = session.id;
  t.agent_id = session.hello.agent_id();
  t.started = Now();
  t.lease_expiry = t.started + options_.lease;
  session.tasks.insert(id);
  agents_.RefreshFree(session);
  session.last_job = job.id;
  session.last_commit = commit;
  job.running.insert(id);
  PersistTaskLocked(job, SummaryLocked(job, t), 0);

  v1::CoordinatorMessage msg;
  v1::Assign* a = msg.mutable_assign();
  a->set_task_id(id);
  a->set_job_id(absl::StrCat(job.id));
  a->set_repo(job.spec.repo());
  a->set_commit(ProbeHex(job, commit));
  *a->mutable_recipe() = job.spec.recipe();
  if (job.spec.has_host_kernel()) *a->mutable_host_kernel() = job.spec.host_kernel();
  if (const v1::HostKernel* host = job.engine->HostKernelOf(commit)) {
    *a->mutable_host_kernel() = *host;
    session.host_key = host->key();
  }
  if (std::optional<BisectEngine::RevertProbe> revert = job.engine->RevertOf(commit)) {
    a->set_revert_culprit(OidHex(revert->culprit));
    a->set_revert_head(OidHex(revert->head));
  }
  session.channel->Send(msg);
  FARM_LOG(Debug) << "assign " << id << " (" << ShortSha(a->commit()) << ") to " << t.agent_id;
  metrics_.Assigned(Now());
  EmitLocked(job, absl::StrCat("testing ", ShortSha(ProbeHex(job, commit)), " on ", t.agent_id));
}

void Coordinator::PruneLocked(Job& job) {
  std::vector<std::string> ids(job.running.begin(), job.running.end());
  // One event for all of them: a verdict can rule out a hundred speculative tasks at once.
  std::vector<std::string> ruled_out;
  for (const std::string& id : ids) {
    Task& t = tasks_[id];
    std::optional<CancelReason> why = job.engine->ShouldCancel(t.commit);
    if (!why) continue;
    if (*why == CancelReason::kRuledOut) {
      CancelTaskLocked(t, "a newer verdict ruled this commit out", /*emit=*/false);
      ruled_out.push_back(ShortSha(ProbeHex(job, t.commit)));
    } else {
      CancelTaskLocked(t, "this commit was skipped");
    }
  }
  if (ruled_out.size() == 1) {
    EmitLocked(job,
               absl::StrCat("cancelled ", ruled_out[0], ": a newer verdict ruled this commit out"));
  } else if (ruled_out.size() > 1) {
    size_t shown = std::min<size_t>(ruled_out.size(), 8);
    EmitLocked(job, absl::StrCat("cancelled ", ruled_out.size(), " tasks (",
                                 absl::StrJoin(ruled_out.begin(), ruled_out.begin() + shown, " "),
                                 shown < ruled_out.size() ? " ..." : "",
                                 "): a newer verdict ruled these commits out"));
  }
}

void Coordinator::CancelTaskLocked(Task& task, const std::string& why, bool emit) {
  Job& job = jobs_[task.job_id];
  Session* s = agents_.Find(task.session);
  if (s != nullptr && s->connected) {
    v1::CoordinatorMessage msg;
    msg.mutable_cancel()->set_task_id(task.id);
    s->channel->Send(msg);
  }
  task.state = v1::TASK_CANCELLED;
  ++metrics_.cancelled;
  v1::TaskSummary summary = SummaryLocked(job, task);
  summary.set_detail(why);
  PersistTaskLocked(job, summary, 0);
  job.finished.push_back(summary);
  // The slot stays taken until the agent confirms the process group is gone.
  job.running.erase(task.id);
  if (emit) {
    EmitLocked(job, absl::StrCat("cancelled ", ShortSha(ProbeHex(job, task.commit)), ": ", why));
  }
}

void Coordinator::ReleaseTaskLocked(Task& task) {
  if (Session* s = agents_.Find(task.session)) {
    s->tasks.erase(task.id);
    agents_.RefreshFree(*s);
  }
  jobs_[task.job_id].running.erase(task.id);
}

}  // namespace farm
