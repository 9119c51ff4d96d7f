// Reports and status: what clients and watchers see of a job.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "coordinator/scheduler/coordinator.h"

namespace farm {

namespace {

bool IsTerminal(v1::JobState s) { return s != v1::RUNNING; }

// A status lists at most this many candidate commits (JobStatus.candidate_commits).
constexpr size_t kMaxCandidatesShown = 2000;

}  // namespace

std::string Coordinator::BisectLogLocked(Job& job) {
  JobCommitTexts texts(job);
  return job.engine->BisectLog(
      JobText{job.spec, job.state, job.first_bad, job.error, job.merge_note, job.finished, texts});
}

std::string Coordinator::ReportLocked(Job& job) {
  JobCommitTexts texts(job);
  return job.engine->Report(
      JobText{job.spec, job.state, job.first_bad, job.error, job.merge_note, job.finished, texts});
}

void Coordinator::SetSpecLocked(const Job& job, v1::JobStatus& st) {
  *st.mutable_spec() = job.spec;
  // The payloads can be megabytes: a status names the job, it does not carry them.
  st.mutable_spec()->mutable_recipe()->clear_test_script();
  if (st.spec().recipe().has_boot()) {
    st.mutable_spec()->mutable_recipe()->mutable_boot()->clear_payload();
  }
}

v1::JobStatus Coordinator::StatusLocked(Job& job, bool full) {
  v1::JobStatus st;
  st.set_job_id(absl::StrCat(job.id));
  st.set_state(job.state);
  if (full) SetSpecLocked(job, st);
  const size_t slots = agents_.connected_slots();
  if (job.engine) {
    size_t k = std::max<size_t>(
        1, job.spec.max_parallel() ? std::min<size_t>(job.spec.max_parallel(), slots) : slots);
    EngineProgress p = job.engine->Progress(k);
    st.set_candidates(p.candidates);
    st.set_testable(p.testable);
    st.set_rounds_left(job.state == v1::RUNNING ? p.rounds_left : 0);
  } else if (IsTerminal(job.state)) {
    st.set_candidates(job.first_bad.size());
  }
  for (const std::string& id : job.running) {
    auto it = tasks_.find(id);
    if (it != tasks_.end()) *st.add_running() = SummaryLocked(job, it->second);
  }
  if (full) {
    for (const v1::TaskSummary& t : job.finished) *st.add_finished() = t;
    st.set_bisect_log(job.engine ? BisectLogLocked(job) : job.stored_bisect_log);
  }
  for (const std::string& c : job.first_bad) st.add_first_bad(c);
  st.set_error(job.error);
  st.set_created_unix(job.created_unix);
  st.set_elapsed_seconds(job.state == v1::RUNNING ? absl::ToDoubleSeconds(Now() - job.started)
                                                  : job.elapsed_seconds);
  st.set_agents_connected(agents_.connected_agents());
  st.set_report(job.report);
  st.set_confidence(job.engine ? job.engine->Confidence() : job.final_confidence);
  const EngineVerification v = JobVerification(job);
  st.set_verification(v.status);
  st.set_verification_reason(v.reason);
  if (job.descended_job) st.set_descended_job(absl::StrCat(job.descended_job));
  if (job.parent_job) st.set_parent_job(absl::StrCat(job.parent_job));
  if (job.state == v1::RUNNING && job.running.empty()) QueueNoteLocked(job, st);
  return st;
}

void Coordinator::EmitLocked(Job& job, const std::string& message) {
  bool any = false;
  for (auto& [id, w] : watchers_) any |= w.job_id == job.id;
  ++job.event_seq;
  if (!any) return;
  v1::JobEvent ev;
  ev.set_seq(job.event_seq);
  ev.set_message(message);
  // Events of a running job carry the light status (progress, running tasks); the last one
  // carries everything.
  *ev.mutable_status() = StatusLocked(job, /*full=*/IsTerminal(job.state));
  for (auto& [id, w] : watchers_) {
    if (w.job_id == job.id) w.fn(ev);
  }
}

void Coordinator::NoteWaitingLocked(absl::Time now) {
  // A job with nothing running because no agent can take work says so once, instead of waiting
  // in silence (its commits are not failing: there is no agent to try them on).
  const std::string note = agents_.WaitingNote(now);
  for (int64_t id : running_jobs_) {
    Job& job = jobs_[id];
    std::string want = job.running.empty() ? note : "";
    // Say it when it starts, not again every second while it lasts.
    bool same = !want.empty() && !job.waiting_note.empty() &&
                want.substr(0, 40) == job.waiting_note.substr(0, 40);
    if (want.empty() || same) {
      if (want.empty()) job.waiting_note.clear();
      continue;
    }
    job.waiting_note = want;
    EmitLocked(job, want);
  }
  if (agents_.connected_agents() == 0) return;
  // A job that requires labels no connected agent has would wait in silence: say what it needs.
  for (int64_t id : running_jobs_) {
    Job& job = jobs_[id];
    if (job.spec.require().empty()) continue;
    bool servable = false;
    for (const auto& [sid, s] : agents_.sessions()) servable |= s.connected && Eligible(job, s);
    if (servable) {
      job.unservable_note.clear();
      continue;
    }
    if (!job.unservable_note.empty()) continue;
    std::vector<std::string> needs;
    for (const auto& [k, v] : job.spec.require()) needs.push_back(absl::StrCat(k, "=", v));
    std::sort(needs.begin(), needs.end());
    job.unservable_note = absl::StrCat(
        "waiting: no connected agent has the labels this job requires (", absl::StrJoin(needs, " "),
        "); start an agent with --label KEY=VALUE for each, or see `farm agents`");
    EmitLocked(job, job.unservable_note);
  }
}

absl::StatusOr<v1::JobStatus> Coordinator::GetJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  FARM_ASSIGN_OR_RETURN(Job * job, FindJobLocked(job_id));
  v1::JobStatus st = StatusLocked(*job);
  // Only here: listing candidates walks the job's graph, too much for every job of ListJobs.
  if (job->engine && job->graph && job->state == v1::RUNNING) {
    for (CommitId c : job->engine->CandidateCommits(kMaxCandidatesShown)) {
      st.add_candidate_commits(job->graph->Hex(c));
    }
  }
  return st;
}

absl::StatusOr<std::vector<v1::JobStatus>> Coordinator::ListJobs(size_t limit) {
  absl::MutexLock lock(&mu_);
  FARM_ASSIGN_OR_RETURN(std::vector<Store::JobRow> rows, store_->LoadJobs(false, limit));
  std::vector<v1::JobStatus> out;
  for (const Store::JobRow& row : rows) {
    FARM_ASSIGN_OR_RETURN(Job * job, FindJobLocked(absl::StrCat(row.id)));
    // The light status and the spec: the finished tasks and the bisect log (which the engine
    // writes anew) would be built under the lock for every job only to be dropped.
    v1::JobStatus st = StatusLocked(*job, /*full=*/false);
    SetSpecLocked(*job, st);
    out.push_back(std::move(st));
  }
  return out;
}

absl::StatusOr<std::vector<v1::TaskLog>> Coordinator::GetTaskLog(const std::string& job_id,
                                                                 const std::string& commit) {
  absl::MutexLock lock(&mu_);
  FARM_ASSIGN_OR_RETURN(Job * job, FindJobLocked(job_id));
  return store_->ReadLogs(job->id, commit);
}

absl::StatusOr<uint64_t> Coordinator::Watch(const std::string& job_id, WatchFn fn) {
  absl::MutexLock lock(&mu_);
  FARM_ASSIGN_OR_RETURN(Job * job, FindJobLocked(job_id));
  uint64_t id = next_watch_++;
  v1::JobEvent ev;
  ev.set_seq(job->event_seq);
  ev.set_message("attached");
  *ev.mutable_status() = StatusLocked(*job);
  fn(ev);
  if (!IsTerminal(job->state)) watchers_[id] = Watcher{job->id, std::move(fn)};
  return id;
}

void Coordinator::Unwatch(uint64_t watch_id) {
  absl::MutexLock lock(&mu_);
  watchers_.erase(watch_id);
}

}  // namespace farm
