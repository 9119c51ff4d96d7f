#include "cli/client.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "cli/exit_codes.h"
#include "common/rpc/channel.h"
#include "common/rpc/grpc_status.h"

namespace farm {

namespace {

absl::Status FromRpc(const grpc::Status& st) {
  if (st.error_code() == grpc::StatusCode::UNAVAILABLE ||
      st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return absl::Status(static_cast<absl::StatusCode>(st.error_code()),
                        absl::StrCat("the coordinator is unreachable: ", st.error_message()));
  }
  return FromGrpcStatus(st);
}

}  // namespace

FarmClient::FarmClient(const std::string& address, std::shared_ptr<grpc::ChannelCredentials> creds,
                       absl::Duration retry_for, absl::Duration reconnect_for)
    : address_(address),
      retry_for_(retry_for),
      reconnect_for_(reconnect_for),
      stub_(v1::Farm::NewStub(MakeCoordinatorChannel(address, std::move(creds)))) {}

absl::Status FarmClient::Call(absl::Duration timeout,
                              const std::function<grpc::Status(grpc::ClientContext*)>& call) {
  return FromRpc(CallWithRetry(
      [&] {
        grpc::ClientContext ctx;
        SetDeadline(ctx, timeout);
        return call(&ctx);
      },
      retry_for_));
}

absl::StatusOr<v1::SubmitBisectResponse> FarmClient::Submit(const v1::BisectSpec& spec) {
  v1::SubmitBisectRequest req;
  *req.mutable_spec() = spec;
  v1::SubmitBisectResponse resp;
  // Submission loads the repository's graph: a large one takes a while.
  absl::Status st = Call(absl::Minutes(10), [&](grpc::ClientContext* ctx) {
    return stub_->SubmitBisect(ctx, req, &resp);
  });
  if (!st.ok()) return st;
  return resp;
}

absl::StatusOr<v1::JobStatus> FarmClient::GetJob(const std::string& job_id) {
  v1::GetJobRequest req;
  req.set_job_id(job_id);
  v1::JobStatus resp;
  absl::Status st = Call(absl::Seconds(30),
                         [&](grpc::ClientContext* ctx) { return stub_->GetJob(ctx, req, &resp); });
  if (!st.ok()) return st;
  return resp;
}

absl::StatusOr<std::vector<v1::JobStatus>> FarmClient::ListJobs() {
  v1::ListJobsRequest req;
  v1::ListJobsResponse resp;
  absl::Status st = Call(absl::Seconds(30), [&](grpc::ClientContext* ctx) {
    return stub_->ListJobs(ctx, req, &resp);
  });
  if (!st.ok()) return st;
  return std::vector<v1::JobStatus>(resp.jobs().begin(), resp.jobs().end());
}

absl::StatusOr<v1::JobStatus> FarmClient::Cancel(const std::string& job_id) {
  v1::CancelJobRequest req;
  req.set_job_id(job_id);
  v1::CancelJobResponse resp;
  // CancelJob is idempotent: retrying it is safe.
  absl::Status st = Call(absl::Seconds(30), [&](grpc::ClientContext* ctx) {
    return stub_->CancelJob(ctx, req, &resp);
  });
  if (!st.ok()) return st;
  return resp.status();
}

absl::StatusOr<std::vector<v1::AgentInfo>> FarmClient::ListAgents() {
  v1::ListAgentsRequest req;
  v1::ListAgentsResponse resp;
  absl::Status st = Call(absl::Seconds(30), [&](grpc::ClientContext* ctx) {
    return stub_->ListAgents(ctx, req, &resp);
  });
  if (!st.ok()) return st;
  return std::vector<v1::AgentInfo>(resp.agents().begin(), resp.agents().end());
}

absl::StatusOr<std::vector<v1::TaskLog>> FarmClient::GetTaskLog(const std::string& job_id,
                                                                const std::string& commit) {
  v1::GetTaskLogRequest req;
  req.set_job_id(job_id);
  req.set_commit(commit);
  v1::GetTaskLogResponse resp;
  absl::Status st = Call(absl::Seconds(60), [&](grpc::ClientContext* ctx) {
    return stub_->GetTaskLog(ctx, req, &resp);
  });
  if (!st.ok()) return st;
  return std::vector<v1::TaskLog>(resp.logs().begin(), resp.logs().end());
}

absl::StatusOr<v1::AgentInfo> FarmClient::DrainAgent(const std::string& agent_id, bool undrain) {
  v1::DrainAgentRequest req;
  req.set_agent_id(agent_id);
  req.set_undrain(undrain);
  v1::DrainAgentResponse resp;
  // DrainAgent is idempotent: retrying it is safe.
  absl::Status st = Call(absl::Seconds(30), [&](grpc::ClientContext* ctx) {
    return stub_->DrainAgent(ctx, req, &resp);
  });
  if (!st.ok()) return st;
  return resp.agent();
}

absl::StatusOr<v1::AgentInfo> FarmClient::SetAgentState(const std::string& agent_id,
                                                        v1::AgentState state,
                                                        const std::string& reason) {
  v1::SetAgentStateRequest req;
  req.set_agent_id(agent_id);
  req.set_state(state);
  req.set_reason(reason);
  v1::SetAgentStateResponse resp;
  // SetAgentState is idempotent: retrying it is safe.
  absl::Status st = Call(absl::Seconds(30), [&](grpc::ClientContext* ctx) {
    return stub_->SetAgentState(ctx, req, &resp);
  });
  if (!st.ok()) return st;
  return resp.agent();
}

absl::StatusOr<v1::Monitor> FarmClient::WatchBranch(const v1::Monitor& monitor) {
  v1::WatchBranchRequest req;
  *req.mutable_monitor() = monitor;
  v1::Monitor resp;
  // The coordinator fetches the branch once before it answers.
  absl::Status st = Call(absl::Minutes(10), [&](grpc::ClientContext* ctx) {
    return stub_->WatchBranch(ctx, req, &resp);
  });
  if (!st.ok()) return st;
  return resp;
}

absl::StatusOr<std::vector<v1::Monitor>> FarmClient::ListMonitors() {
  v1::ListMonitorsResponse resp;
  absl::Status st = Call(absl::Seconds(30), [&](grpc::ClientContext* ctx) {
    return stub_->ListMonitors(ctx, v1::ListMonitorsRequest(), &resp);
  });
  if (!st.ok()) return st;
  return std::vector<v1::Monitor>(resp.monitors().begin(), resp.monitors().end());
}

absl::Status FarmClient::Unwatch(const std::string& monitor_id) {
  v1::UnwatchRequest req;
  req.set_monitor_id(monitor_id);
  v1::UnwatchResponse resp;
  return Call(absl::Seconds(30),
              [&](grpc::ClientContext* ctx) { return stub_->Unwatch(ctx, req, &resp); });
}

absl::StatusOr<std::vector<v1::Regression>> FarmClient::ListRegressions(
    const std::string& monitor_id) {
  v1::ListRegressionsRequest req;
  req.set_monitor_id(monitor_id);
  v1::ListRegressionsResponse resp;
  absl::Status st = Call(absl::Seconds(30), [&](grpc::ClientContext* ctx) {
    return stub_->ListRegressions(ctx, req, &resp);
  });
  if (!st.ok()) return st;
  return std::vector<v1::Regression>(resp.regressions().begin(), resp.regressions().end());
}

absl::StatusOr<v1::JobStatus> FarmClient::WatchUntilDone(const std::string& first_job_id,
                                                         const WatchCallbacks& callbacks) {
  std::string job_id = first_job_id;
  absl::Duration backoff = absl::Milliseconds(100);
  bool lost = false;
  bool reached = false;  // a stream of this watch delivered an event
  absl::Time trying_since = absl::Now();  // the last time the coordinator was known to answer
  while (true) {
    grpc::ClientContext ctx;
    v1::WatchJobRequest req;
    req.set_job_id(job_id);
    std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader = stub_->WatchJob(&ctx, req);
    v1::JobEvent ev;
    bool got = false;
    bool follow = false;
    while (reader->Read(&ev)) {
      got = true;
      reached = true;
      if (lost) {
        lost = false;
        if (callbacks.on_connection) callbacks.on_connection(false, job_id, "");
      }
      if (callbacks.on_event) callbacks.on_event(ev);
      if (ev.status().state() == v1::RUNNING) continue;
      ctx.TryCancel();
      reader->Finish().IgnoreError();
      if (ev.status().descended_job().empty()) return ev.status();
      // --descend: this job's report, then the branch's bisect.
      if (callbacks.on_descend) callbacks.on_descend(ev.status(), ev.status().descended_job());
      job_id = ev.status().descended_job();
      follow = true;
      break;
    }
    if (follow) continue;
    grpc::Status st = reader->Finish();
    if (st.error_code() != grpc::StatusCode::UNAVAILABLE &&
        st.error_code() != grpc::StatusCode::CANCELLED && !st.ok()) {
      return FromRpc(st);
    }
    if (got) {
      backoff = absl::Milliseconds(100);
      trying_since = absl::Now();
    }
    // Bounded: a typo in --coordinator, or a coordinator that is gone for good, must not keep the
    // command (or the script that runs it) waiting forever.
    const absl::Duration budget = reached ? reconnect_for_ : retry_for_;
    if (absl::Now() - trying_since >= budget) {
      return absl::UnavailableError(absl::StrCat(
          "the coordinator is unreachable: ",
          reached ? absl::StrCat("lost the stream of job ", job_id, " at ", address_,
                                 " and could not reattach within ",
                                 absl::FormatDuration(budget),
                                 " (--reconnect-timeout)")
                  : absl::StrCat("no answer from ", address_, " within ",
                                 absl::FormatDuration(budget), " (--connect-timeout)"),
          ": ", st.error_message(),
          ". Check that farm-coordinator runs there and that --coordinator (or "
          "FARM_COORDINATOR) names it; `farm watch ",
          job_id, "` reattaches once it is back"));
    }
    if (!lost) {
      lost = true;
      if (callbacks.on_connection) callbacks.on_connection(true, job_id, st.error_message());
    }
    // Backoff before reconnecting to an unreachable coordinator, not a synchronisation.
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(
        std::min(backoff, budget - (absl::Now() - trying_since))));
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

int ExitCodeForError(const absl::Status& error) {
  if (absl::IsUnavailable(error) || absl::IsDeadlineExceeded(error)) return kExitUnreachable;
  return kExitBadInput;
}

}  // namespace farm
