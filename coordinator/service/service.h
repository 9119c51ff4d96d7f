// The coordinator's gRPC services (callback API): thin reactors over Coordinator.
//
// Long-lived streams (agents, watchers) hold no thread: each reactor queues outgoing messages
// under its own small mutex and writes one at a time; the Coordinator never waits on them.
#ifndef FARM_COORDINATOR_SERVICE_SERVICE_H_
#define FARM_COORDINATOR_SERVICE_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/scheduler/coordinator.h"
#include "farm/v1/farm.grpc.pb.h"

namespace farm {

class FarmService final : public farm::v1::Farm::CallbackService {
 public:
  explicit FarmService(Coordinator* core) : core_(core) {}

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

 private:
  Coordinator* core_;
};

class AgentLinkService final : public farm::v1::AgentLink::CallbackService {
 public:
  explicit AgentLinkService(Coordinator* core) : core_(core) {}
  grpc::ServerBidiReactor<farm::v1::AgentMessage, farm::v1::CoordinatorMessage>* Connect(
      grpc::CallbackServerContext* ctx) override;

 private:
  Coordinator* core_;
};

// A coordinator with its gRPC server, as `farm-coordinator` and the local mode of `farm bisect`
// run it.
class CoordinatorServer {
 public:
  // Opens the coordinator (resuming its jobs) and listens on `listen` ("127.0.0.1:0" picks a free
  // port; "unix:/path"). Errors: the store cannot be opened, the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Start(CoordinatorOptions options,
                                                                 const std::string& listen);
  ~CoordinatorServer();
  // The address clients dial ("127.0.0.1:43211").
  const std::string& address() const { return address_; }
  Coordinator* core() { return core_.get(); }
  void Wait() { server_->Wait(); }
  // Stops accepting, ends every stream, waits up to `grace` for calls in progress.
  void Shutdown(absl::Duration grace = absl::Seconds(2));

 private:
  std::unique_ptr<Coordinator> core_;
  std::unique_ptr<FarmService> farm_;
  std::unique_ptr<AgentLinkService> link_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  bool shut_down_ = false;
};

}  // namespace farm

#endif  // FARM_COORDINATOR_SERVICE_SERVICE_H_
