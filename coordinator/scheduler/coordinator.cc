// The coordinator's life cycle and the calls that start and stop jobs.
#include "coordinator/scheduler/coordinator.h"

#include <malloc.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/scheduler/job_intake.h"

namespace farm {

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Create(CoordinatorOptions options) {
  if (!options.clock) options.clock = Clock::Real();
  FARM_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, Store::Open(options.db_path));
  std::unique_ptr<Coordinator> c(new Coordinator(std::move(options), std::move(store)));
  {
    absl::MutexLock lock(&c->mu_);
    FARM_RETURN_IF_ERROR(c->ResumeLocked());
    FARM_ASSIGN_OR_RETURN(std::vector<Store::AgentStateRow> states, c->store_->LoadAgentStates());
    for (const Store::AgentStateRow& row : states) {
      c->agents_.SetAdminState(row.agent_id, row.state, row.reason);
    }
    using Checks = std::map<std::string, v1::HealthCheck>;
    FARM_ASSIGN_OR_RETURN(Checks checks, c->store_->LoadHealthChecks());
    for (const auto& [agent_id, check] : checks) c->health_.Restore(agent_id, check);
    c->metrics_.Arrived(Trigger::kResume, c->Now());
    c->ScheduleLocked();
  }
  c->lease_thread_ = std::thread([cp = c.get()] {
    absl::MutexLock lock(&cp->mu_);
    // Wakes every second for the leases, and at once when a follow-up job waits to be loaded.
    auto wake = [cp] {
      cp->mu_.AssertHeld();
      return cp->stopping_ || !cp->pending_loads_.empty();
    };
    while (!cp->stopping_) {
      cp->mu_.AwaitWithTimeout(absl::Condition(&wake), absl::Seconds(1));
      if (cp->stopping_) break;
      cp->mu_.Unlock();
      cp->LoadPendingJobs();
      cp->ExpireLeases();
#ifdef __GLIBC__
      // Ended jobs freed their graphs: hand the memory back to the system, outside the lock.
      if (cp->trim_wanted_.exchange(false)) malloc_trim(0);
#endif
      cp->mu_.Lock();
    }
  });
  return c;
}

Coordinator::Coordinator(CoordinatorOptions options, std::unique_ptr<Store> store)
    : options_(std::move(options)),
      repo_cache_(options_.cache_dir),
      store_(std::move(store)),
      agents_(options_.quarantine_after, options_.quarantine),
      health_(options_.health_checks) {}

Coordinator::~Coordinator() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (lease_thread_.joinable()) lease_thread_.join();
}

absl::StatusOr<v1::JobStatus> Coordinator::SubmitBisect(v1::BisectSpec spec) {
  // Intake: nothing here holds the lock, so a large graph does not stall the farm.
  const RevisionNames names{spec.bad(), {spec.good().begin(), spec.good().end()}};
  FARM_ASSIGN_OR_RETURN(
      spec, ResolveSpec(std::move(spec), repo_cache_, options_.default_timeout_seconds));
  Job job;
  job.spec = std::move(spec);
  job.created_unix = absl::ToUnixSeconds(Now());
  job.started = Now();
  // The graph's load says whether the goods are ancestors of bad: no separate history walk.
  FARM_ASSIGN_OR_RETURN(LoadedJob loaded, LoadJob(job.spec, repo_cache_, &names));
  AttachLoaded(std::move(loaded), job);

  const absl::Time arrived = Now();
  absl::MutexLock lock(&mu_);
  metrics_.Arrived(Trigger::kSubmit, arrived);
  Store::Batch batch(*store_);  // the job and its first tasks commit once
  ++metrics_.jobs_submitted;
  FARM_ASSIGN_OR_RETURN(job.id, store_->InsertJob(job.spec, job.created_unix));
  Job& stored = AddJobLocked(std::move(job));
  const size_t candidates = stored.engine->Progress(1).candidates;
  CheckDoneLocked(stored);
  ScheduleLocked();
  EmitLocked(stored, absl::StrCat("job ", stored.id, " started: ", candidates, " candidates"));
  return StatusLocked(stored);
}

absl::StatusOr<v1::JobStatus> Coordinator::CancelJob(const std::string& job_id,
                                                     const CallerIdentity& caller) {
  const absl::Time arrived = Now();
  absl::MutexLock lock(&mu_);
  metrics_.Arrived(Trigger::kCancel, arrived);
  FARM_ASSIGN_OR_RETURN(Job * job, FindJobLocked(job_id));
  if (!caller.admin && caller.user != job->spec.owner()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "job ", job_id, " belongs to ", job->spec.owner().empty() ? "nobody" : job->spec.owner(),
        ": only its owner or an admin may cancel it (you are ", caller.user, ")"));
  }
  Store::Batch batch(*store_);
  if (job->state == v1::RUNNING) EndJobLocked(*job, v1::CANCELLED, "cancelled by the user");
  ScheduleLocked();
  return StatusLocked(*job);
}

std::string Coordinator::MetricsText() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = Now();
  CoordinatorGauges g;
  for (auto& [id, s] : agents_.sessions()) {
    if (!s.connected) continue;
    g.agents_quarantined += QuarantinedLocked(s.hello.agent_id(), now);
    g.slots_busy += std::min<size_t>(s.tasks.size(), s.hello.slots());
  }
  g.jobs_running = running_jobs_.size();
  g.agents_connected = agents_.connected_agents();
  g.slots = agents_.connected_slots();
  return RenderCoordinatorMetrics(metrics_, g);
}

}  // namespace farm
