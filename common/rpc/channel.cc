#include "common/rpc/channel.h"

#include <algorithm>
#include <thread>

namespace farm {

std::shared_ptr<grpc::Channel> MakeCoordinatorChannel(
    const std::string& address, std::shared_ptr<grpc::ChannelCredentials> creds) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  args.SetMaxReceiveMessageSize(64 << 20);
  return grpc::CreateCustomChannel(address, creds ? creds : grpc::InsecureChannelCredentials(),
                                   args);
}

grpc::Status CallWithRetry(const std::function<grpc::Status()>& call, absl::Duration total) {
  absl::Time give_up = absl::Now() + total;
  absl::Duration backoff = absl::Milliseconds(100);
  while (true) {
    grpc::Status st = call();
    if (st.error_code() != grpc::StatusCode::UNAVAILABLE || absl::Now() + backoff > give_up) {
      return st;
    }
    // Backoff between attempts at an unreachable server, not a synchronisation.
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(backoff));
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

void SetDeadline(grpc::ClientContext& ctx, absl::Duration timeout) {
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

}  // namespace farm
