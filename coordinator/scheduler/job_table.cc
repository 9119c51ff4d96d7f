// The job table: replay after a restart, results, the end of a job, merges, persistence.
#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log/log.h"
#include "common/status_macros.h"
#include "coordinator/engine/report_text.h"
#include "coordinator/scheduler/coordinator.h"
#include "coordinator/scheduler/job_intake.h"

namespace farm {

absl::Status Coordinator::ResumeLocked() {
  FARM_ASSIGN_OR_RETURN(std::vector<Store::JobRow> rows, store_->LoadJobs(true));
  std::reverse(rows.begin(), rows.end());  // oldest first
  for (Store::JobRow& row : rows) {
    Job& job = jobs_[row.id];
    job.id = row.id;
    job.spec = row.spec;
    job.created_unix = row.created_unix;
    job.started = Now() - absl::Seconds(row.elapsed_seconds);
    // Loading under the lock is fine here: nobody can reach the coordinator before Create ends.
    absl::StatusOr<LoadedJob> loaded = LoadJob(job.spec, repo_cache_);
    if (!loaded.ok()) {
      EndJobLocked(job, v1::FAILED, absl::StrCat("cannot resume: ", loaded.status().message()));
      continue;
    }
    AttachLoaded(std::move(*loaded), job);
    running_jobs_.insert(job.id);
    // Replay the verdicts in the order they arrived; re-adopt tasks that were running.
    FARM_ASSIGN_OR_RETURN(std::vector<v1::TaskSummary> tasks, store_->LoadTasks(row.id));
    for (v1::TaskSummary& t : tasks) {
      job.task_counter++;
      std::optional<CommitId> id = FindProbe(job, t.commit());
      if (!id) continue;
      if (t.state() == v1::TASK_DONE) {
        job.verdict_seq++;
        if (t.has_kernel_build()) job.engine->ObserveBuild(*id, t.kernel_build().image_sha256());
        job.engine->Observe(*id, VerdictFromProto(t.verdict()));
        job.finished.push_back(t);
      } else if (t.state() == v1::TASK_RUNNING) {
        Task& task = tasks_[t.task_id()];
        task.id = t.task_id();
        task.job_id = job.id;
        task.commit = *id;
        task.agent_id = t.agent();
        task.started = Now();
        task.lease_expiry = Now() + options_.lease;
        job.running.insert(task.id);
      } else {
        if (t.state() == v1::TASK_INFRA_ERROR) job.infra_failures[*id]++;
        job.finished.push_back(t);
      }
    }
    CheckDoneLocked(job);
  }
  return absl::OkStatus();
}

Job& Coordinator::AddJobLocked(Job job) {
  Job& stored = jobs_[job.id];
  stored = std::move(job);
  running_jobs_.insert(stored.id);
  return stored;
}

absl::StatusOr<Job*> Coordinator::FindJobLocked(const std::string& job_id) {
  int64_t id = 0;
  if (!absl::SimpleAtoi(job_id, &id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("job id '", job_id, "' is not a number: see `farm status` for job ids"));
  }
  auto it = jobs_.find(id);
  if (it != jobs_.end()) return &it->second;
  // An ended job from an earlier run: load its record (not its graph).
  absl::StatusOr<Store::JobRow> row = store_->LoadJob(id);
  if (!row.ok()) {
    return absl::NotFoundError(absl::StrCat("no job ", job_id, ": see `farm status`"));
  }
  Job& job = jobs_[id];
  job.id = id;
  job.spec = row->spec;
  job.state = row->state;
  job.first_bad = row->first_bad;
  job.error = row->error;
  job.created_unix = row->created_unix;
  job.ended_unix = row->ended_unix;
  job.elapsed_seconds = row->elapsed_seconds;
  FARM_ASSIGN_OR_RETURN(std::vector<v1::TaskSummary> tasks, store_->LoadTasks(id));
  for (auto& t : tasks) {
    if (t.state() != v1::TASK_RUNNING) job.finished.push_back(t);
  }
  job.report = row->report;
  job.stored_bisect_log = row->bisect_log;
  job.final_verification = {row->verification, row->verification_reason};
  return &job;
}

v1::TaskSummary Coordinator::SummaryLocked(Job& job, const Task& task) {
  v1::TaskSummary s;
  s.set_task_id(task.id);
  s.set_commit(ProbeHex(job, task.commit));
  s.set_subject(JobSubject(job, task.commit));
  s.set_agent(task.agent_id);
  s.set_state(task.state);
  s.set_phase(task.phase);
  s.set_seconds(absl::ToDoubleSeconds(Now() - task.started));
  return s;
}

void Coordinator::PersistTaskLocked(Job& job, const v1::TaskSummary& summary, int64_t seq) {
  absl::Status st = store_->PutTask(job.id, seq, summary);
  if (!st.ok()) {
    FARM_LOG(Error) << "cannot store task " << summary.task_id() << ": " << st.message();
  }
}

void Coordinator::PersistJobLocked(Job& job) {
  Store::JobRow row;
  row.id = job.id;
  row.spec = job.spec;
  row.state = job.state;
  row.first_bad = job.first_bad;
  row.error = job.error;
  row.bisect_log = job.engine ? BisectLogLocked(job) : job.stored_bisect_log;
  row.report = job.report;
  row.created_unix = job.created_unix;
  row.ended_unix = job.ended_unix;
  row.elapsed_seconds = job.elapsed_seconds;
  const EngineVerification v = JobVerification(job);
  row.verification = v.status;
  row.verification_reason = v.reason;
  absl::Status st = store_->UpdateJob(row);
  if (!st.ok()) {
    FARM_LOG(Error) << "cannot store job " << job.id << ": " << st.message();
  }
}

void Coordinator::OnResultLocked(Session& session, const v1::TaskResult& result) {
  FARM_LOG(Debug) << "result of " << result.task_id() << " from " << session.hello.agent_id()
                  << (result.cancelled() ? " (cancelled)" : "");
  session.tasks.erase(result.task_id());
  agents_.RefreshFree(session);
  if (IsHealthCheckTask(result.task_id())) {
    FinishHealthCheckLocked(session.hello.agent_id(), result.task_id(), &result, "");
    ScheduleLocked();
    return;
  }
  auto it = tasks_.find(result.task_id());
  if (it == tasks_.end()) return;  // an attempt from before a restart that is already counted
  Task& task = it->second;
  if (task.agent_id != session.hello.agent_id()) {
    // Only the agent a task was given to may report it (the same agent after a reconnect is
    // fine); anything else is ignored, and frees nothing.
    FARM_LOG(Warning) << "agent " << session.hello.agent_id() << " reported task " << task.id
                      << " of agent " << task.agent_id << ": ignored";
    return;
  }
  if (!result.cancelled()) health_.OnTaskDone(task.agent_id);
  Job& job = jobs_[task.job_id];
  bool was_open = task.state == v1::TASK_RUNNING || task.state == v1::TASK_LOST;
  ReleaseTaskLocked(task);
  if (!was_open || result.cancelled() || job.state != v1::RUNNING) {
    tasks_.erase(it);
    ScheduleLocked();
    return;
  }
  v1::TaskSummary s = SummaryLocked(job, task);
  s.set_detail(result.detail());
  s.set_retried_pristine(result.retried_pristine());
  s.set_retry_reason(result.retry_reason());
  s.set_seconds(result.checkout_seconds() + result.build_seconds() + result.test_seconds());
  if (result.has_kernel_build()) *s.mutable_kernel_build() = result.kernel_build();
  std::string what;
  if (result.outcome_case() == v1::TaskResult::kJobError) {
    // The job's own input cannot run (farm.proto): no agent would do better, and this one is
    // not at fault, so its health is untouched. The task is kept for `farm log`.
    s.set_state(v1::TASK_INFRA_ERROR);
    s.set_detail(result.job_error());
    PersistTaskLocked(job, s, 0);
    job.finished.push_back(s);
    tasks_.erase(it);
    EndJobLocked(
        job, v1::FAILED,
        absl::StrCat("the test cannot run: ", s.detail(), " (commit ", ShortSha(s.commit()), " on ",
                     s.agent(), "); fix the test and submit again"));
    ScheduleLocked();
    return;
  }
  std::string infra_error = result.infra_error();
  const bool verdict =
      result.outcome_case() == v1::TaskResult::kVerdict &&
      (result.verdict() == v1::GOOD || result.verdict() == v1::BAD || result.verdict() == v1::SKIP);
  if (!verdict && infra_error.empty()) {
    infra_error = "the agent's result has neither a verdict nor an error";
  }
  if (!infra_error.empty()) {
    if (agents_.RecordInfraError(task.agent_id, infra_error, Now())) {
      ++metrics_.quarantines;
      const AgentHealth* health = agents_.Health(task.agent_id);
      FARM_LOG(Warning) << "agent " << task.agent_id << " quarantined for "
                        << absl::FormatDuration(options_.quarantine) << ": " << health->reason;
    }
    s.set_state(v1::TASK_INFRA_ERROR);
    ++metrics_.infra_errors;
    s.set_detail(infra_error);
    int failures = ++job.infra_failures[task.commit];
    job.infra_agents[task.commit].insert(task.agent_id);
    PersistTaskLocked(job, s, 0);
    job.finished.push_back(s);
    what =
        absl::StrCat(ShortSha(s.commit()), " could not be tested on ", task.agent_id, ": ",
                     infra_error, " (attempt ", failures, " of ", options_.max_infra_attempts, ")");
    if (failures >= options_.max_infra_attempts) {
      EndJobLocked(job, v1::FAILED,
                   absl::StrCat("commit ", s.commit(), " could not be tested: ", failures,
                                " attempts failed with infrastructure errors (last: ", infra_error,
                                "); see `farm log ", job.id, " ", ShortSha(s.commit()), "`"));
    }
  } else {
    agents_.RecordVerdict(task.agent_id);
    s.set_state(v1::TASK_DONE);
    s.set_verdict(result.verdict());
    ++(result.verdict() == v1::GOOD  ? metrics_.verdicts_good
       : result.verdict() == v1::BAD ? metrics_.verdicts_bad
                                     : metrics_.verdicts_skip);
    if (result.has_kernel_build()) {
      job.engine->ObserveBuild(task.commit, result.kernel_build().image_sha256());
    }
    bool applied = job.engine->Observe(task.commit, VerdictFromProto(result.verdict()));
    s.set_applied(applied);
    if (job.engine->ReusesVerdicts()) {
      if (const std::string& tree = JobTree(job, task.commit); !tree.empty()) {
        absl::Status st =
            store_->PutTreeVerdict(tree, job.recipe_digest, result.verdict(), task.id);
        if (!st.ok()) {
          FARM_LOG(Error) << "cannot store a reusable verdict: " << st.message();
        }
      }
    }
    PersistTaskLocked(job, s, ++job.verdict_seq);
    job.finished.push_back(s);
    const std::string term = result.verdict() == v1::GOOD  ? TermOld(job.spec)
                             : result.verdict() == v1::BAD ? TermNew(job.spec)
                                                           : std::string("skip");
    what = absl::StrFormat("%s %s in %.1fs on %s%s%s", ShortSha(s.commit()), term, s.seconds(),
                           task.agent_id, result.retried_pristine() ? " (retried pristine: " : "",
                           result.retried_pristine() ? result.retry_reason() + ")" : "");
    if (!applied) absl::StrAppend(&what, " (already decided)");
    PruneLocked(job);
    CheckDoneLocked(job);
  }
  tasks_.erase(it);
  if (job.state == v1::RUNNING) EmitLocked(job, what);
  ScheduleLocked();
}

void Coordinator::CheckDoneLocked(Job& job) {
  if (job.state != v1::RUNNING || !job.engine->Done()) return;
  EngineAnswer answer = job.engine->Answer();
  job.first_bad.clear();
  for (CommitId id : answer.commits) job.first_bad.push_back(job.graph->Hex(id));
  if (answer.may_descend_merges && job.first_bad.size() == 1) ExplainMergeLocked(job);
  EndJobLocked(job, answer.state, answer.error);
}

void Coordinator::ExplainMergeLocked(Job& job) {
  std::optional<CommitId> culprit = job.graph->FindHex(job.first_bad[0]);
  git_commit* merge = nullptr;
  if (!job.repo || !culprit ||
      git_commit_lookup(&merge, job.repo.get(), &job.graph->oid(*culprit))) {
    return;
  }
  unsigned parents = git_commit_parentcount(merge);
  std::vector<std::string> parent_hex;
  for (unsigned i = 0; i < parents; ++i) {
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), git_commit_parent_id(merge, i));
    parent_hex.push_back(hex);
  }
  git_commit_free(merge);
  if (parents < 2) return;
  const std::string& m = job.first_bad[0];
  if (job.parent_job != 0 && job.spec.bad() == m) {
    job.merge_note = absl::StrCat(
        "The merge ", ShortSha(m),
        " is itself the first bad commit and every commit on the branch it "
        "merged tests good: the breakage comes from combining the branches (a semantic conflict), "
        "not from one commit on them.\n");
    return;
  }
  if (!job.spec.descend()) {
    job.merge_note = absl::StrCat(ShortSha(m), " is a merge",
                                  job.spec.first_parent() ? " (with --first-parent the branches it "
                                                            "merged were not bisected)"
                                                          : "",
                                  ": run again with --descend to bisect the branch it merged (",
                                  ShortSha(parent_hex[0]), "..", ShortSha(m), ").\n");
    return;
  }
  // The follow-up job: the branch the merge brought in, every parent followed. Its id is taken
  // now (the parent's last event names it); LoadPendingJobs loads it outside the lock.
  v1::BisectSpec spec = job.spec;
  spec.clear_good();
  spec.add_good(parent_hex[0]);
  spec.set_bad(m);
  spec.clear_skip();
  spec.set_first_parent(false);
  Job child;
  child.spec = spec;
  child.created_unix = absl::ToUnixSeconds(Now());
  child.started = Now();
  child.parent_job = job.id;
  absl::StatusOr<int64_t> id = store_->InsertJob(spec, child.created_unix);
  if (!id.ok()) {
    job.merge_note = absl::StrCat(
        ShortSha(m), " is a merge; descending into it failed: ", id.status().message(), "\n");
    return;
  }
  child.id = *id;
  job.descended_job = child.id;
  job.merge_note =
      absl::StrCat(ShortSha(m), " is a merge: descending into the branch it merged (",
                   ShortSha(parent_hex[0]), "..", ShortSha(m), ") as job ", child.id, ".\n");
  jobs_[child.id] = std::move(child);  // running once loaded
  pending_loads_.push_back(*id);
}

void Coordinator::LoadPendingJobs() {
  std::vector<std::pair<int64_t, v1::BisectSpec>> todo;
  {
    absl::MutexLock lock(&mu_);
    for (int64_t id : pending_loads_) todo.emplace_back(id, jobs_[id].spec);
    pending_loads_.clear();
  }
  for (auto& [id, spec] : todo) {
    absl::StatusOr<LoadedJob> loaded = LoadJob(spec, repo_cache_);
    const absl::Time arrived = Now();
    absl::MutexLock lock(&mu_);
    metrics_.Arrived(Trigger::kSubmit, arrived);
    Store::Batch batch(*store_);
    Job& job = jobs_[id];
    if (job.state != v1::RUNNING) continue;  // cancelled while it loaded
    if (!loaded.ok()) {
      EndJobLocked(job, v1::FAILED,
                   absl::StrCat("cannot load the follow-up job: ", loaded.status().message()));
      continue;
    }
    AttachLoaded(std::move(*loaded), job);
    running_jobs_.insert(id);
    EmitLocked(job, absl::StrCat("job ", id, " started: ", job.engine->Progress(1).candidates,
                                 " candidates"));
    CheckDoneLocked(job);
    ScheduleLocked();
  }
}

void Coordinator::EndJobLocked(Job& job, v1::JobState state, const std::string& error) {
  running_jobs_.erase(job.id);
  job.state = state;
  ++(state == v1::FOUND || state == v1::COMPLETE ? metrics_.ended_found
     : state == v1::AMBIGUOUS                    ? metrics_.ended_ambiguous
     : state == v1::CANCELLED                    ? metrics_.ended_cancelled
                                                 : metrics_.ended_failed);
  job.error = error;
  job.elapsed_seconds = absl::ToDoubleSeconds(Now() - job.started);
  job.ended_unix = absl::ToUnixSeconds(Now());
  for (auto it = tasks_.begin(); it != tasks_.end();) {
    it = (it->second.job_id == job.id && it->second.state == v1::TASK_LOST) ? tasks_.erase(it)
                                                                            : std::next(it);
  }
  // The report first: every event from here on (the cancellations too) is terminal and a watcher
  // stops at the first one it sees.
  job.report = job.engine ? ReportLocked(job) : EndedWithoutAnswer(state, error);
  PersistJobLocked(job);
  std::vector<std::string> ids(job.running.begin(), job.running.end());
  for (const std::string& id : ids) {
    CancelTaskLocked(tasks_[id],
                     state == v1::CANCELLED ? "the job was cancelled" : "the job has ended");
  }
  std::string what = state == v1::COMPLETE    ? std::string("complete: every cell tested")
                     : state == v1::FOUND     ? absl::StrCat("found ", ShortSha(job.first_bad[0]))
                     : state == v1::AMBIGUOUS ? "only skipped commits left"
                     : state == v1::CANCELLED ? "cancelled"
                                              : absl::StrCat("failed: ", error);
  if (job.engine) {
    if (EngineVerification v = job.engine->Verification(); v.status != v1::VERIFICATION_NONE) {
      absl::StrAppend(&what, "; ", VerificationName(v.status), ": ", v.reason);
    }
  }
  EmitLocked(job, what);
  ReleaseJobLocked(job);
}

void Coordinator::ReleaseJobLocked(Job& job) {
  if (!job.engine) return;
  job.stored_bisect_log = BisectLogLocked(job);
  job.final_confidence = job.engine->Confidence();
  job.final_verification = job.engine->Verification();
  job.move_cost = nullptr;  // refers to the repository
  job.engine.reset();
  job.graph.reset();
  job.repo.reset();
  job.infra_failures = {};
  job.infra_agents = {};
  job.subjects = {};
  job.trees = {};
  job.plan = {};
  trim_wanted_ = true;
}

}  // namespace farm
