// The dashboard's JSON API (/api/v1/...; docs/api.md), over the Coordinator's own methods.
//
// Each route calls the same Coordinator method as the Farm gRPC service (ListJobs, GetJob,
// GetTaskLog, ListAgents, CancelJob) and prints its message with protobuf's JSON printer (proto
// field names, every field, enums by name), so the API says what the CLI sees. Who may call is
// decided before (dashboard.h); this layer knows no HTTP server and no tokens.
//
// Thread safety: as the Coordinator (any thread).
#ifndef FARM_COORDINATOR_WEB_API_H_
#define FARM_COORDINATOR_WEB_API_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "coordinator/monitor/monitors.h"
#include "coordinator/scheduler/coordinator.h"
#include "google/protobuf/message.h"

namespace farm::web {

// What a route answers: an HTTP status and a JSON body.
struct ApiReply {
  int http_status = 200;
  std::string json;
};

// One request, already authorised: `method` "GET" or "POST", `path` below /api/v1 (e.g.
// "/jobs/3/log"), `params` the query string's parameters.
struct ApiRequest {
  std::string method;
  std::string path;
  std::map<std::string, std::string> params;
  CallerIdentity caller;  // a logged-in user (owner and admin rules); unset for anonymous reads
};

// Answers one API request. Unknown paths are 404, a known path with the wrong method 405, bad
// parameters 400, each with {"error": {"code": "...", "message": "..."}} saying what to do.
// `monitors` is the coordinator's branch watch (nullptr: /monitors answers 503, saying so).
ApiReply HandleApi(Coordinator& core, Monitors* monitors, const ApiRequest& req);

// `message` as JSON (proto field names, default values printed, enums by name).
std::string ToJson(const google::protobuf::Message& message);

// {"error": {...}} for a failed status, with its HTTP status (NOT_FOUND 404, INVALID_ARGUMENT
// 400, FAILED_PRECONDITION 409, UNAUTHENTICATED 401, PERMISSION_DENIED 403, others 500/503).
ApiReply ErrorReply(const absl::Status& status);

// The part of `bytes` from `offset` on, as valid UTF-8 (invalid bytes become U+FFFD), stopping
// before a multi-byte character cut at the end; `*next` is the byte offset just after what was
// returned, for the next incremental read.
std::string Utf8Tail(const std::string& bytes, uint64_t offset, uint64_t* next);

}  // namespace farm::web

#endif  // FARM_COORDINATOR_WEB_API_H_
