#include "coordinator/web/api.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "farm/v1/farm.pb.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace farm::web {
namespace {

namespace v1 = farm::v1;
using google::protobuf::Struct;
using google::protobuf::Value;

constexpr size_t kDefaultJobs = 50;
constexpr size_t kMaxJobs = 1000;

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

Value StringValue(const std::string& s) {
  Value v;
  v.set_string_value(s);
  return v;
}
Value NumberValue(double d) {
  Value v;
  v.set_number_value(d);
  return v;
}

ApiReply Reply(const google::protobuf::Message& message) { return ApiReply{200, ToJson(message)}; }

// Reads a non-negative integer parameter; `fallback` when absent.
absl::Status UintParam(const ApiRequest& req, const std::string& name, uint64_t fallback,
                       uint64_t* out) {
  auto it = req.params.find(name);
  if (it == req.params.end() || it->second.empty()) {
    *out = fallback;
    return absl::OkStatus();
  }
  if (!absl::SimpleAtoi(it->second, out)) {
    return absl::InvalidArgumentError(absl::StrCat("parameter '", name, "' is '", it->second,
                                                   "': give a non-negative whole number"));
  }
  return absl::OkStatus();
}

ApiReply Jobs(Coordinator& core, const ApiRequest& req) {
  uint64_t limit = 0;
  if (absl::Status st = UintParam(req, "limit", kDefaultJobs, &limit); !st.ok()) {
    return ErrorReply(st);
  }
  if (limit == 0 || limit > kMaxJobs) {
    return ErrorReply(absl::InvalidArgumentError(
        absl::StrCat("limit ", limit, " is out of range: give 1..", kMaxJobs)));
  }
  absl::StatusOr<std::vector<v1::JobStatus>> jobs = core.ListJobs(limit);
  if (!jobs.ok()) return ErrorReply(jobs.status());
  v1::ListJobsResponse resp;
  for (v1::JobStatus& j : *jobs) *resp.add_jobs() = std::move(j);
  return Reply(resp);
}

ApiReply Log(Coordinator& core, const std::string& job_id, const ApiRequest& req) {
  auto commit = req.params.find("commit");
  if (commit == req.params.end() || commit->second.empty()) {
    return ErrorReply(absl::InvalidArgumentError(
        "give the commit whose log you want: /api/v1/jobs/ID/log?commit=SHA (a job's tasks "
        "are listed by /api/v1/jobs/ID)"));
  }
  uint64_t offset = 0;
  if (absl::Status st = UintParam(req, "offset", 0, &offset); !st.ok()) return ErrorReply(st);
  auto task = req.params.find("task");
  absl::StatusOr<std::vector<v1::TaskLog>> logs = core.GetTaskLog(job_id, commit->second);
  if (!logs.ok()) return ErrorReply(logs.status());
  Struct out;
  (*out.mutable_fields())["job_id"] = StringValue(job_id);
  (*out.mutable_fields())["commit"] = StringValue(commit->second);
  Value list;
  list.mutable_list_value();
  for (const v1::TaskLog& log : *logs) {
    if (task != req.params.end() && !task->second.empty() && log.task_id() != task->second) {
      continue;
    }
    Struct entry;
    auto& f = *entry.mutable_fields();
    f["task_id"] = StringValue(log.task_id());
    f["commit"] = StringValue(log.commit());
    f["state"] = StringValue(v1::TaskState_Name(log.state()));
    f["size"] = NumberValue(static_cast<double>(log.output().size()));
    f["offset"] = NumberValue(static_cast<double>(offset));
    uint64_t next = 0;
    f["text"] = StringValue(Utf8Tail(log.output(), offset, &next));
    f["next_offset"] = NumberValue(static_cast<double>(next));
    *list.mutable_list_value()->add_values()->mutable_struct_value() = std::move(entry);
  }
  (*out.mutable_fields())["logs"] = std::move(list);
  return Reply(out);
}

ApiReply MonitorsAndRegressions(Monitors* monitors) {
  if (monitors == nullptr) {
    return ErrorReply(absl::UnavailableError(
        "this coordinator runs no branch monitors (a coordinator started by `farm bisect` for "
        "one job does not): use farm-coordinator's dashboard"));
  }
  v1::MonitorsPage page;
  for (v1::Monitor& m : monitors->List()) *page.add_monitors() = std::move(m);
  for (v1::Regression& r : monitors->ListRegressions("")) *page.add_regressions() = std::move(r);
  return Reply(page);
}

std::string ErrorJson(const std::string& code, const std::string& message) {
  Struct e;
  Struct inner;
  (*inner.mutable_fields())["code"] = StringValue(code);
  (*inner.mutable_fields())["message"] = StringValue(message);
  *(*e.mutable_fields())["error"].mutable_struct_value() = std::move(inner);
  return ToJson(e);
}

ApiReply MethodNotAllowed(const ApiRequest& req, const char* allowed) {
  return ApiReply{
      405, ErrorJson("METHOD_NOT_ALLOWED", absl::StrCat(req.method, " is not allowed on /api/v1",
                                                        req.path, ": use ", allowed))};
}

}  // namespace

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(message, &out, options).ok()) {
    return R"({"error":{"code":"INTERNAL","message":"the reply could not be printed as JSON"}})";
  }
  return out;
}

ApiReply ErrorReply(const absl::Status& status) {
  return ApiReply{HttpStatusFor(status.code()), ErrorJson(absl::StatusCodeToString(status.code()),
                                                          std::string(status.message()))};
}

std::string Utf8Tail(const std::string& bytes, uint64_t offset, uint64_t* next) {
  std::string out;
  size_t i = offset < bytes.size() ? offset : bytes.size();
  while (i < bytes.size()) {
    unsigned char c = bytes[i];
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 0;
    if (len == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    if (i + len > bytes.size()) {
      // A character cut at the end of what has arrived: left for the next read.
      bool prefix_ok = true;
      for (size_t k = i + 1; k < bytes.size(); ++k) prefix_ok &= (bytes[k] & 0xC0) == 0x80;
      if (prefix_ok) break;
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    bool ok = true;
    for (size_t k = 1; k < len; ++k)
      ok &= (static_cast<unsigned char>(bytes[i + k]) & 0xC0) == 0x80;
    if (!ok) {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    out.append(bytes, i, len);
    i += len;
  }
  *next = i;
  return out;
}

ApiReply HandleApi(Coordinator& core, Monitors* monitors, const ApiRequest& req) {
  std::vector<std::string> parts = absl::StrSplit(req.path, '/', absl::SkipEmpty());
  const bool get = req.method == "GET" || req.method == "HEAD";
  if (parts.size() == 1 && parts[0] == "jobs") {
    return get ? Jobs(core, req) : MethodNotAllowed(req, "GET");
  }
  if (parts.size() == 2 && parts[0] == "jobs") {
    if (!get) return MethodNotAllowed(req, "GET");
    absl::StatusOr<v1::JobStatus> job = core.GetJob(parts[1]);
    return job.ok() ? Reply(*job) : ErrorReply(job.status());
  }
  if (parts.size() == 3 && parts[0] == "jobs" && parts[2] == "log") {
    return get ? Log(core, parts[1], req) : MethodNotAllowed(req, "GET");
  }
  if (parts.size() == 3 && parts[0] == "jobs" && parts[2] == "cancel") {
    if (req.method != "POST") return MethodNotAllowed(req, "POST");
    absl::StatusOr<v1::JobStatus> job = core.CancelJob(parts[1], req.caller);
    if (!job.ok()) return ErrorReply(job.status());
    v1::CancelJobResponse resp;
    *resp.mutable_status() = std::move(*job);
    return Reply(resp);
  }
  if (parts.size() == 1 && parts[0] == "agents") {
    if (!get) return MethodNotAllowed(req, "GET");
    v1::ListAgentsResponse resp;
    for (v1::AgentInfo& a : core.ListAgents()) *resp.add_agents() = std::move(a);
    return Reply(resp);
  }
  if (parts.size() == 1 && parts[0] == "monitors") {
    return get ? MonitorsAndRegressions(monitors) : MethodNotAllowed(req, "GET");
  }
  if (parts.size() == 3 && parts[0] == "health-checks" && parts[2] == "log") {
    if (!get) return MethodNotAllowed(req, "GET");
    absl::StatusOr<std::string> log = core.GetHealthCheckLog(parts[1]);
    if (!log.ok()) return ErrorReply(log.status());
    Struct out;
    (*out.mutable_fields())["task_id"] = StringValue(parts[1]);
    uint64_t next = 0;
    (*out.mutable_fields())["text"] = StringValue(Utf8Tail(*log, 0, &next));
    return Reply(out);
  }
  return ErrorReply(absl::NotFoundError(
      absl::StrCat("no API at /api/v1", req.path,
                   ": the routes are jobs, jobs/ID, jobs/ID/log, jobs/ID/cancel, agents, "
                   "health-checks/TASK/log, monitors (docs/api.md)")));
}

}  // namespace farm::web
