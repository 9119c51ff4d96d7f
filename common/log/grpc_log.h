// Routes the gRPC library's own log lines (gpr_log) through the farm's logging facade, so that a
// coordinator's or an agent's stderr has one format and one level filter.
#ifndef FARM_COMMON_LOG_GRPC_LOG_H_
#define FARM_COMMON_LOG_GRPC_LOG_H_

namespace farm::log {

// Installs the routing (gpr_set_log_function). gRPC's DEBUG and INFO lines become kDebug records,
// its ERROR lines kError records, each prefixed "grpc: " and with gRPC's file and line. What gRPC
// emits at all follows the farm's level at the time of the call (Debug: everything; otherwise
// errors only, gRPC's own default), unless GRPC_VERBOSITY is set, which then wins as in any gRPC
// program. Call once, early in main, after the level is set. Thread-safe.
void RouteGrpcLogs();

}  // namespace farm::log

#endif  // FARM_COMMON_LOG_GRPC_LOG_H_
