// Client-side gRPC helpers shared by the agent and the CLI.
#ifndef FARM_COMMON_RPC_CHANNEL_H_
#define FARM_COMMON_RPC_CHANNEL_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace farm {

// A channel to the coordinator at `address` ("host:port", "unix:/path"), with keepalive so a dead
// peer is noticed even on an idle stream.
// Plaintext unless `creds` (from MakeChannelCredentials) says otherwise.
std::shared_ptr<grpc::Channel> MakeCoordinatorChannel(
    const std::string& address, std::shared_ptr<grpc::ChannelCredentials> creds = nullptr);

// Runs `call` (which must set its own ClientContext deadline) until it returns something other
// than UNAVAILABLE, with exponential backoff from 100 ms up to 5 s, for at most `total` overall.
grpc::Status CallWithRetry(const std::function<grpc::Status()>& call,
                           absl::Duration total = absl::Seconds(30));

// Sets a deadline `timeout` from now on `ctx`.
void SetDeadline(grpc::ClientContext& ctx, absl::Duration timeout);

}  // namespace farm

#endif  // FARM_COMMON_RPC_CHANNEL_H_
