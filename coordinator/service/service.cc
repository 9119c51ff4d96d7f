#include "coordinator/service/service.h"

#include <deque>
#include <mutex>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/rpc/grpc_status.h"
#include "common/rpc/listen_check.h"
#include "common/status_macros.h"
#include "coordinator/service/event_queue.h"

namespace farm {
namespace {

namespace v1 = farm::v1;

constexpr size_t kMaxQueuedEvents = 64;

grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* ctx, const absl::Status& st) {
  grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
  r->Finish(ToGrpcStatus(st));
  return r;
}

// Streams job events to one watcher. Events are queued by the Coordinator (under its lock) and
// written one at a time; the stream ends after the event whose job state is terminal.
class WatchReactor : public grpc::ServerWriteReactor<v1::JobEvent> {
 public:
  WatchReactor(Coordinator* core, const std::string& job_id) : core_(core) {
    auto self = std::shared_ptr<Shared>(shared_);
    absl::StatusOr<uint64_t> id = core_->Watch(job_id, [self](const v1::JobEvent& ev) {
      std::lock_guard<std::mutex> lock(self->mu);
      if (self->reactor == nullptr) return;
      self->queue.Push(ev);  // bounded: a watcher that cannot keep up gets the newest snapshot
      self->reactor->MaybeWriteLocked();
    });
    if (!id.ok()) {
      std::lock_guard<std::mutex> lock(shared_->mu);
      shared_->reactor = nullptr;
      Finish(ToGrpcStatus(id.status()));
      return;
    }
    std::lock_guard<std::mutex> lock(shared_->mu);
    watch_id_ = *id;
    watching_ = true;
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(shared_->mu);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "watcher went away"));
      return;
    }
    shared_->queue.pop_front();
    MaybeWriteLocked();
  }
  void OnCancel() override {
    std::lock_guard<std::mutex> lock(shared_->mu);
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "watcher cancelled"));
  }
  void OnDone() override {
    {
      std::lock_guard<std::mutex> lock(shared_->mu);
      shared_->reactor = nullptr;
    }
    if (watching_) core_->Unwatch(watch_id_);
    delete this;
  }

 private:
  struct Shared {
    std::mutex mu;
    WatchReactor* reactor = nullptr;
    EventQueue queue{kMaxQueuedEvents};
  };

  void MaybeWriteLocked() {
    if (writing_ || finished_) return;
    if (shared_->queue.empty()) {
      if (shared_->queue.saw_terminal()) FinishLocked(grpc::Status::OK);
      return;
    }
    writing_ = true;
    StartWrite(&shared_->queue.front());
  }
  void FinishLocked(const grpc::Status& st) {
    if (finished_) return;
    finished_ = true;
    Finish(st);
  }

  Coordinator* core_;
  std::shared_ptr<Shared> shared_ = [this] {
    auto s = std::make_shared<Shared>();
    s->reactor = this;
    return s;
  }();
  uint64_t watch_id_ = 0;
  bool watching_ = false;
  bool writing_ = false;
  bool finished_ = false;
};

// One agent's stream. Reads are handed to the Coordinator; writes come from the Coordinator
// through Channel::Send and go out one at a time.
class AgentReactor : public grpc::ServerBidiReactor<v1::AgentMessage, v1::CoordinatorMessage> {
 public:
  explicit AgentReactor(Coordinator* core) : core_(core) {
    channel_ = std::make_shared<Channel>();
    channel_->reactor = this;
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The agent closed its side or the connection broke.
      Close(grpc::Status::OK);
      return;
    }
    if (session_ == 0) {
      if (in_.kind_case() != v1::AgentMessage::kHello) {
        Close(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                           "the first message on AgentLink.Connect must be Hello"));
        return;
      }
      absl::StatusOr<uint64_t> sid = core_->Connect(in_.hello(), channel_);
      if (!sid.ok()) {
        Close(ToGrpcStatus(sid.status()));
        return;
      }
      session_ = *sid;
    } else {
      core_->OnAgentMessage(session_, in_);
    }
    StartRead(&in_);
  }
  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(channel_->mu);
    channel_->writing = false;
    channel_->queue.pop_front();
    if (!ok) {
      channel_->broken = true;
    }
    channel_->MaybeWriteLocked();
  }
  void OnCancel() override { Close(grpc::Status(grpc::StatusCode::CANCELLED, "agent gone")); }
  void OnDone() override {
    {
      std::lock_guard<std::mutex> lock(channel_->mu);
      channel_->reactor = nullptr;
    }
    if (session_ != 0) core_->Disconnect(session_);
    delete this;
  }

 private:
  struct Channel : public AgentChannel {
    std::mutex mu;
    AgentReactor* reactor = nullptr;
    std::deque<v1::CoordinatorMessage> queue;
    bool writing = false;
    bool closing = false;
    bool finished = false;
    bool broken = false;
    grpc::Status final_status;

    void Send(const v1::CoordinatorMessage& msg) override {
      std::lock_guard<std::mutex> lock(mu);
      if (reactor == nullptr || closing || broken) return;
      queue.push_back(msg);
      MaybeWriteLocked();
    }
    void MaybeWriteLocked() {
      if (reactor == nullptr || writing || finished) return;
      if (!queue.empty() && !broken && !closing) {
        writing = true;
        reactor->StartWrite(&queue.front());
        return;
      }
      if (closing || broken) {
        finished = true;
        reactor->Finish(final_status);
      }
    }
  };

  void Close(const grpc::Status& st) {
    std::lock_guard<std::mutex> lock(channel_->mu);
    if (channel_->closing) return;
    channel_->closing = true;
    channel_->final_status = st;
    // Drop what is not yet being written; the message in flight is popped by OnWriteDone.
    channel_->queue.resize(channel_->writing ? 1 : 0);
    channel_->MaybeWriteLocked();
  }

  Coordinator* core_;
  std::shared_ptr<Channel> channel_;
  v1::AgentMessage in_;
  uint64_t session_ = 0;
};

// A stream refused before it started.
class RefusedWatch : public grpc::ServerWriteReactor<v1::JobEvent> {
 public:
  explicit RefusedWatch(const absl::Status& st) { Finish(ToGrpcStatus(st)); }
  void OnDone() override { delete this; }
};
class RefusedAgent : public grpc::ServerBidiReactor<v1::AgentMessage, v1::CoordinatorMessage> {
 public:
  explicit RefusedAgent(const grpc::Status& st) { Finish(st); }
  void OnDone() override { delete this; }
};

}  // namespace

absl::StatusOr<CallerIdentity> FarmService::Authorize(grpc::CallbackServerContext* ctx) const {
  // Without tokens nobody is authenticated, so nobody can be told apart: everyone is an admin.
  if (policy_.tokens.empty()) return CallerIdentity{"", true};
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  absl::string_view value;
  if (it != md.end()) value = absl::string_view(it->second.data(), it->second.size());
  return IdentifyBearer(policy_.tokens, value);
}

#define FARM_AUTHORIZE(ctx, who)                       \
  absl::StatusOr<CallerIdentity> who = Authorize(ctx); \
  if (!who.ok()) return Done(ctx, who.status())

grpc::ServerUnaryReactor* FarmService::SubmitBisect(grpc::CallbackServerContext* ctx,
                                                    const v1::SubmitBisectRequest* req,
                                                    v1::SubmitBisectResponse* resp) {
  FARM_AUTHORIZE(ctx, caller);
  v1::BisectSpec spec = req->spec();
  if (!policy_.tokens.empty()) spec.set_owner(caller->user);
  absl::StatusOr<v1::JobStatus> st = core_->SubmitBisect(std::move(spec));
  if (st.ok()) {
    resp->set_job_id(st->job_id());
    *resp->mutable_status() = std::move(*st);
  }
  return Done(ctx, st.status());
}

grpc::ServerWriteReactor<v1::JobEvent>* FarmService::WatchJob(grpc::CallbackServerContext* ctx,
                                                              const v1::WatchJobRequest* req) {
  absl::StatusOr<CallerIdentity> caller = Authorize(ctx);
  if (!caller.ok()) return new RefusedWatch(caller.status());
  return new WatchReactor(core_, req->job_id());
}

grpc::ServerUnaryReactor* FarmService::GetJob(grpc::CallbackServerContext* ctx,
                                              const v1::GetJobRequest* req, v1::JobStatus* resp) {
  FARM_AUTHORIZE(ctx, caller);
  absl::StatusOr<v1::JobStatus> st = core_->GetJob(req->job_id());
  if (st.ok()) *resp = std::move(*st);
  return Done(ctx, st.status());
}

grpc::ServerUnaryReactor* FarmService::ListJobs(grpc::CallbackServerContext* ctx,
                                                const v1::ListJobsRequest* req,
                                                v1::ListJobsResponse* resp) {
  FARM_AUTHORIZE(ctx, caller);
  absl::StatusOr<std::vector<v1::JobStatus>> st = core_->ListJobs(req->limit() ? req->limit() : 50);
  if (st.ok()) {
    for (auto& j : *st) *resp->add_jobs() = std::move(j);
  }
  return Done(ctx, st.status());
}

grpc::ServerUnaryReactor* FarmService::CancelJob(grpc::CallbackServerContext* ctx,
                                                 const v1::CancelJobRequest* req,
                                                 v1::CancelJobResponse* resp) {
  FARM_AUTHORIZE(ctx, caller);
  absl::StatusOr<v1::JobStatus> st = core_->CancelJob(req->job_id(), *caller);
  if (st.ok()) *resp->mutable_status() = std::move(*st);
  return Done(ctx, st.status());
}

grpc::ServerUnaryReactor* FarmService::ListAgents(grpc::CallbackServerContext* ctx,
                                                  const v1::ListAgentsRequest* req,
                                                  v1::ListAgentsResponse* resp) {
  FARM_AUTHORIZE(ctx, caller);
  for (auto& a : core_->ListAgents()) *resp->add_agents() = std::move(a);
  return Done(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* FarmService::GetTaskLog(grpc::CallbackServerContext* ctx,
                                                  const v1::GetTaskLogRequest* req,
                                                  v1::GetTaskLogResponse* resp) {
  FARM_AUTHORIZE(ctx, caller);
  absl::StatusOr<std::vector<v1::TaskLog>> st = core_->GetTaskLog(req->job_id(), req->commit());
  if (st.ok()) {
    for (auto& l : *st) *resp->add_logs() = std::move(l);
  }
  return Done(ctx, st.status());
}

grpc::ServerUnaryReactor* FarmService::DrainAgent(grpc::CallbackServerContext* ctx,
                                                  const v1::DrainAgentRequest* req,
                                                  v1::DrainAgentResponse* resp) {
  FARM_AUTHORIZE(ctx, caller);
  absl::Status st = core_->DrainAgent(req->agent_id(), !req->undrain());
  if (st.ok()) {
    for (auto& a : core_->ListAgents()) {
      if (a.agent_id() == req->agent_id() && a.connected()) *resp->mutable_agent() = std::move(a);
    }
  }
  return Done(ctx, st);
}

grpc::ServerUnaryReactor* FarmService::SetAgentState(grpc::CallbackServerContext* ctx,
                                                     const v1::SetAgentStateRequest* req,
                                                     v1::SetAgentStateResponse* resp) {
  FARM_AUTHORIZE(ctx, caller);
  absl::StatusOr<v1::AgentInfo> agent =
      core_->SetAgentState(req->agent_id(), req->state(), req->reason(), *caller);
  if (agent.ok()) *resp->mutable_agent() = std::move(*agent);
  return Done(ctx, agent.status());
}

#define FARM_NEED_MONITORS(ctx)                                                        \
  do {                                                                                 \
    if (monitors_ == nullptr) {                                                        \
      return Done(ctx, absl::UnimplementedError("this server does not run monitors")); \
    }                                                                                  \
  } while (0)

grpc::ServerUnaryReactor* FarmService::WatchBranch(grpc::CallbackServerContext* ctx,
                                                   const v1::WatchBranchRequest* req,
                                                   v1::Monitor* resp) {
  FARM_AUTHORIZE(ctx, caller);
  FARM_NEED_MONITORS(ctx);
  v1::Monitor monitor = req->monitor();
  // The monitor's bisects belong to whoever registered it (the token's user, when tokens are on).
  if (!policy_.tokens.empty()) {
    monitor.set_owner(caller->user);
    monitor.mutable_job()->set_owner(caller->user);
  }
  absl::StatusOr<v1::Monitor> st = monitors_->Add(monitor);
  if (st.ok()) *resp = std::move(*st);
  return Done(ctx, st.status());
}

grpc::ServerUnaryReactor* FarmService::ListMonitors(grpc::CallbackServerContext* ctx,
                                                    const v1::ListMonitorsRequest* req,
                                                    v1::ListMonitorsResponse* resp) {
  FARM_AUTHORIZE(ctx, caller);
  FARM_NEED_MONITORS(ctx);
  for (auto& m : monitors_->List()) *resp->add_monitors() = std::move(m);
  return Done(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* FarmService::Unwatch(grpc::CallbackServerContext* ctx,
                                               const v1::UnwatchRequest* req,
                                               v1::UnwatchResponse* resp) {
  FARM_AUTHORIZE(ctx, caller);
  FARM_NEED_MONITORS(ctx);
  return Done(ctx, monitors_->Remove(req->monitor_id(), *caller));
}

grpc::ServerUnaryReactor* FarmService::ListRegressions(grpc::CallbackServerContext* ctx,
                                                       const v1::ListRegressionsRequest* req,
                                                       v1::ListRegressionsResponse* resp) {
  FARM_AUTHORIZE(ctx, caller);
  FARM_NEED_MONITORS(ctx);
  for (auto& r : monitors_->ListRegressions(req->monitor_id())) {
    *resp->add_regressions() = std::move(r);
  }
  return Done(ctx, absl::OkStatus());
}

grpc::ServerBidiReactor<v1::AgentMessage, v1::CoordinatorMessage>* AgentLinkService::Connect(
    grpc::CallbackServerContext* ctx) {
  if (require_cert_ && !ctx->auth_context()->IsPeerAuthenticated()) {
    return new RefusedAgent(
        grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                     "agents must present a client certificate signed by the farm's agent CA "
                     "(farm-agent --tls-cert/--tls-key)"));
  }
  return new AgentReactor(core_);
}

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(
    CoordinatorOptions options, const std::string& listen, const ServerSecurity& security) {
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds =
      MakeServerCredentials(security.tls);
  if (!creds.ok()) return creds.status();
  if (!security.tokens.empty() && security.tls.cert.empty()) {
    return absl::InvalidArgumentError(
        "tokens need TLS (--tls-cert/--tls-key): they must not cross the network in clear");
  }
  // Refused before the database is touched: the port, then the database, held by another
  // coordinator (gRPC alone would say neither; with SO_REUSEPORT it would even share the port).
  FARM_RETURN_IF_ERROR(CheckPortFree(listen));
  auto s = std::make_unique<CoordinatorServer>();
  FARM_ASSIGN_OR_RETURN(s->db_lock_, DatabaseLock::Acquire(options.db_path));
  MonitorOptions monitor_options{options.db_path, options.cache_dir, options.sendmail,
                                 options.report_from, options.public_url};
  absl::StatusOr<std::unique_ptr<Coordinator>> core = Coordinator::Create(std::move(options));
  if (!core.ok()) return core.status();
  s->core_ = std::move(*core);
  // Monitors keep their tables through a connection of their own, which an in-memory database
  // (the fuzzers', the load harness's) cannot share: such a server runs no monitors, and their
  // RPCs say so (UNIMPLEMENTED).
  if (monitor_options.db_path != ":memory:") {
    FARM_ASSIGN_OR_RETURN(s->monitors_, Monitors::Start(s->core_.get(), monitor_options));
  }
  s->farm_ = std::make_unique<FarmService>(
      s->core_.get(), AccessPolicy{security.tokens, !security.tls.ca.empty()}, s->monitors_.get());
  s->link_ = std::make_unique<AgentLinkService>(s->core_.get(), !security.tls.ca.empty());
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, *creds, &port);
  builder.RegisterService(s->farm_.get());
  builder.RegisterService(s->link_.get());
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // gRPC sets SO_REUSEPORT by default: a second coordinator would share the port and take half
  // of the connections.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  s->server_ = builder.BuildAndStart();
  if (!s->server_ || (port == 0 && !absl::StartsWith(listen, "unix:"))) {
    FARM_RETURN_IF_ERROR(CheckPortFree(listen));  // taken since the check above
    return absl::UnavailableError(absl::StrCat("cannot listen on '", listen,
                                               "': is the address in use or malformed? "
                                               "(use HOST:PORT, or unix:/path)"));
  }
  if (absl::StartsWith(listen, "unix:")) {
    s->address_ = listen;
  } else {
    std::string host = listen.substr(0, listen.rfind(':'));
    if (host.empty() || host == "0.0.0.0" || host == "[::]") host = "127.0.0.1";
    s->address_ = absl::StrCat(host, ":", port);
  }
  s->db_lock_->SetAddress(s->address_);
  return s;
}

void CoordinatorServer::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
}

CoordinatorServer::~CoordinatorServer() {
  if (server_) Shutdown();
}

}  // namespace farm
