// The coordinator's gRPC services (callback API): thin reactors over Coordinator.
//
// Long-lived streams (agents, watchers) hold no thread: each reactor queues outgoing messages
// under its own small mutex and writes one at a time; the Coordinator never waits on them.
#ifndef FARM_COORDINATOR_SERVICE_SERVICE_H_
#define FARM_COORDINATOR_SERVICE_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/rpc/credentials.h"
#include "coordinator/monitor/monitors.h"
#include "coordinator/scheduler/coordinator.h"
#include "coordinator/store/db_lock.h"
#include "farm/v1/farm.grpc.pb.h"

namespace farm {

// Who may call. Empty tokens: every client may, and is an admin; otherwise Farm calls need
// "authorization: Bearer <one of them>", and act as that token's user. require_agent_cert:
// AgentLink streams need a verified client certificate (mTLS).
struct AccessPolicy {
  TokenTable tokens;
  bool require_agent_cert = false;
};

class FarmService final : public farm::v1::Farm::CallbackService {
 public:
  // `monitors` may be null: the monitor calls then answer UNIMPLEMENTED.
  FarmService(Coordinator* core, AccessPolicy policy, Monitors* monitors = nullptr)
      : core_(core), policy_(std::move(policy)), monitors_(monitors) {}

  grpc::ServerUnaryReactor* SubmitBisect(grpc::CallbackServerContext* ctx,
                                         const farm::v1::SubmitBisectRequest* req,
                                         farm::v1::SubmitBisectResponse* resp) override;
  grpc::ServerWriteReactor<farm::v1::JobEvent>* WatchJob(
      grpc::CallbackServerContext* ctx, const farm::v1::WatchJobRequest* req) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* ctx,
                                   const farm::v1::GetJobRequest* req,
                                   farm::v1::JobStatus* resp) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* ctx,
                                     const farm::v1::ListJobsRequest* req,
                                     farm::v1::ListJobsResponse* resp) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* ctx,
                                      const farm::v1::CancelJobRequest* req,
                                      farm::v1::CancelJobResponse* resp) override;
  grpc::ServerUnaryReactor* ListAgents(grpc::CallbackServerContext* ctx,
                                       const farm::v1::ListAgentsRequest* req,
                                       farm::v1::ListAgentsResponse* resp) override;
  grpc::ServerUnaryReactor* GetTaskLog(grpc::CallbackServerContext* ctx,
                                       const farm::v1::GetTaskLogRequest* req,
                                       farm::v1::GetTaskLogResponse* resp) override;
  grpc::ServerUnaryReactor* DrainAgent(grpc::CallbackServerContext* ctx,
                                       const farm::v1::DrainAgentRequest* req,
                                       farm::v1::DrainAgentResponse* resp) override;
  grpc::ServerUnaryReactor* SetAgentState(grpc::CallbackServerContext* ctx,
                                          const farm::v1::SetAgentStateRequest* req,
                                          farm::v1::SetAgentStateResponse* resp) override;
  grpc::ServerUnaryReactor* WatchBranch(grpc::CallbackServerContext* ctx,
                                        const farm::v1::WatchBranchRequest* req,
                                        farm::v1::Monitor* resp) override;
  grpc::ServerUnaryReactor* ListMonitors(grpc::CallbackServerContext* ctx,
                                         const farm::v1::ListMonitorsRequest* req,
                                         farm::v1::ListMonitorsResponse* resp) override;
  grpc::ServerUnaryReactor* Unwatch(grpc::CallbackServerContext* ctx,
                                    const farm::v1::UnwatchRequest* req,
                                    farm::v1::UnwatchResponse* resp) override;
  grpc::ServerUnaryReactor* ListRegressions(grpc::CallbackServerContext* ctx,
                                            const farm::v1::ListRegressionsRequest* req,
                                            farm::v1::ListRegressionsResponse* resp) override;

 private:
  // The caller; UNAUTHENTICATED unless the call carries a valid token (when tokens are
  // configured).
  absl::StatusOr<CallerIdentity> Authorize(grpc::CallbackServerContext* ctx) const;
  Coordinator* core_;
  AccessPolicy policy_;
  Monitors* monitors_;
};

class AgentLinkService final : public farm::v1::AgentLink::CallbackService {
 public:
  AgentLinkService(Coordinator* core, bool require_cert)
      : core_(core), require_cert_(require_cert) {}
  grpc::ServerBidiReactor<farm::v1::AgentMessage, farm::v1::CoordinatorMessage>* Connect(
      grpc::CallbackServerContext* ctx) override;

 private:
  Coordinator* core_;
  bool require_cert_;
};

struct ServerSecurity {
  TlsFiles tls;       // cert/key: TLS; ca: client certificates verified (agents must have one)
  TokenTable tokens;  // users' bearer tokens and who they are (needs TLS)
};

// A coordinator with its gRPC server, as `farm-coordinator` and the local mode of `farm bisect`
// run it.
class CoordinatorServer {
 public:
  // Opens the coordinator (resuming its jobs) and listens on `listen` ("127.0.0.1:0" picks a free
  // port; "unix:/path"), holding the database's lock (DatabaseLock) until it is destroyed.
  // Errors, each naming its cause and what to do: INVALID_ARGUMENT for unusable TLS files, or
  // tokens without TLS; UNAVAILABLE when the address cannot be bound (the port in use: by which
  // process); ALREADY_EXISTS when another live coordinator holds the database; DATA_LOSS when the
  // database is damaged or truncated; others as Coordinator::Create.
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Start(
      CoordinatorOptions options, const std::string& listen,
      const ServerSecurity& security = ServerSecurity());
  ~CoordinatorServer();
  // The address clients dial ("127.0.0.1:43211").
  const std::string& address() const { return address_; }
  Coordinator* core() { return core_.get(); }
  Monitors* monitors() { return monitors_.get(); }
  // A channel to this server that bypasses the network (tests and fuzz targets).
  std::shared_ptr<grpc::Channel> InProcessChannel() {
    return server_->InProcessChannel(grpc::ChannelArguments());
  }
  void Wait() { server_->Wait(); }
  // Stops accepting, ends every stream, waits up to `grace` for calls in progress.
  void Shutdown(absl::Duration grace = absl::Seconds(2));

 private:
  std::unique_ptr<DatabaseLock> db_lock_;  // released after everything below is gone
  std::unique_ptr<Coordinator> core_;
  std::unique_ptr<Monitors> monitors_;  // uses core_
  std::unique_ptr<FarmService> farm_;
  std::unique_ptr<AgentLinkService> link_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  bool shut_down_ = false;
};

}  // namespace farm

#endif  // FARM_COORDINATOR_SERVICE_SERVICE_H_
