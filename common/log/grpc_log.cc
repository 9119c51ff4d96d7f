#include "common/log/grpc_log.h"

#include <grpc/support/log.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/log/log.h"

namespace farm::log {
namespace {

void ToFarmLog(gpr_log_func_args* args) {
  // gRPC's INFO lines are about its internals (channel states, pollers): details, not events of
  // the farm.
  const Level level = args->severity == GPR_LOG_SEVERITY_ERROR ? Level::kError : Level::kDebug;
  if (!Enabled(level)) return;
  Write(level, args->file != nullptr ? args->file : "grpc", args->line,
        absl::StrCat("grpc: ", args->message != nullptr ? args->message : ""));
}

}  // namespace

void RouteGrpcLogs() {
  gpr_set_log_function(ToFarmLog);
  // Setting the verbosity first keeps gRPC from reading GRPC_VERBOSITY itself: read it here.
  if (std::getenv("GRPC_VERBOSITY") == nullptr) {
    gpr_set_log_verbosity(Enabled(Level::kDebug) ? GPR_LOG_SEVERITY_DEBUG : GPR_LOG_SEVERITY_ERROR);
  }
}

}  // namespace farm::log
