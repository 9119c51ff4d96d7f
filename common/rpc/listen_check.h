// Tells, before a server binds, whether its TCP address is taken, and by which process.
//
// gRPC reports a failed bind as "Failed to add port" with no cause; these checks let a server say
// "port 7411 is in use by pid 1234 (farm-coordinator)" instead.
#ifndef FARM_COMMON_RPC_LISTEN_CHECK_H_
#define FARM_COMMON_RPC_LISTEN_CHECK_H_

#include <sys/types.h>

#include <optional>
#include <string>

#include "absl/status/status.h"

namespace farm {

// A process that listens on a TCP port.
struct PortListener {
  pid_t pid = 0;
  std::string command;  // argv[0]'s base name, e.g. "farm-coordinator"
};

// The process listening on TCP `port` (IPv4 or IPv6, any local address), from /proc/net/tcp{,6}
// and /proc/*/fd. nullopt when none is found or it cannot be seen (another user's process when
// not root, another network namespace).
std::optional<PortListener> FindPortListener(int port);

// OK when `listen` ("HOST:PORT", "[V6]:PORT") can be bound now, as gRPC would bind it
// (SO_REUSEADDR, no SO_REUSEPORT); OK also for port 0, "unix:" addresses and hosts that do not
// resolve (gRPC reports those itself). INVALID_ARGUMENT when there is no port from 0 to 65535.
// UNAVAILABLE when the port is in use, naming the process that holds it when it can be found and
// what to do.
absl::Status CheckPortFree(const std::string& listen);

}  // namespace farm

#endif  // FARM_COMMON_RPC_LISTEN_CHECK_H_
