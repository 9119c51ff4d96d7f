// FarmClient: the farm command's one way to talk to a coordinator (remote, or the embedded one
// of a local bisect): a stub, a deadline on every call, retries with exponential backoff while
// the coordinator is UNAVAILABLE, and a watch that reattaches until the job ends.
//
// Errors keep the coordinator's code and message (farm.proto lists them per call); a coordinator
// that cannot be reached within the retry budget is UNAVAILABLE, "the coordinator is unreachable:
// ...". ExitCodeForError (below) maps them onto cli/exit_codes.h.
//
// Thread safety: every method may be called from any thread.
#ifndef FARM_CLI_CLIENT_H_
#define FARM_CLI_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "farm/v1/farm.grpc.pb.h"

namespace farm {

class FarmClient {
 public:
  // `address` as farm-coordinator prints it ("host:port", "unix:/path"); `creds` from
  // MakeChannelCredentials (null: plaintext). Unary calls retry an unreachable coordinator for at
  // most `retry_for`; so does a watch that has not reached it yet. A watch whose stream worked and
  // broke reconnects for at most `reconnect_for` (a coordinator restart takes that long at most).
  FarmClient(const std::string& address, std::shared_ptr<grpc::ChannelCredentials> creds,
             absl::Duration retry_for = absl::Seconds(10),
             absl::Duration reconnect_for = absl::Minutes(5));

  const std::string& address() const { return address_; }

  absl::StatusOr<farm::v1::SubmitBisectResponse> Submit(const farm::v1::BisectSpec& spec);
  absl::StatusOr<farm::v1::JobStatus> GetJob(const std::string& job_id);
  absl::StatusOr<std::vector<farm::v1::JobStatus>> ListJobs();
  absl::StatusOr<farm::v1::JobStatus> Cancel(const std::string& job_id);
  absl::StatusOr<std::vector<farm::v1::AgentInfo>> ListAgents();
  absl::StatusOr<std::vector<farm::v1::TaskLog>> GetTaskLog(const std::string& job_id,
                                                            const std::string& commit);
  // Drains (or with `undrain`, undrains) an agent; returns its state.
  absl::StatusOr<farm::v1::AgentInfo> DrainAgent(const std::string& agent_id, bool undrain);
  // Sets an agent's state (good, maintenance, retired); returns the agent.
  absl::StatusOr<farm::v1::AgentInfo> SetAgentState(const std::string& agent_id,
                                                    farm::v1::AgentState state,
                                                    const std::string& reason);
  // Branch monitors (Farm.WatchBranch and friends).
  absl::StatusOr<farm::v1::Monitor> WatchBranch(const farm::v1::Monitor& monitor);
  absl::StatusOr<std::vector<farm::v1::Monitor>> ListMonitors();
  absl::Status Unwatch(const std::string& monitor_id);
  absl::StatusOr<std::vector<farm::v1::Regression>> ListRegressions(const std::string& monitor_id);

  // Called with every event of a watched job, and with the report of a job that descends into a
  // merged branch (`descended` then names the follow-up job).
  struct WatchCallbacks {
    std::function<void(const farm::v1::JobEvent&)> on_event;
    std::function<void(const farm::v1::JobStatus& ended, const std::string& descended)> on_descend;
    // Told once when the stream to `job_id` broke (`lost`: true, with the reason) and once when
    // it is back.
    std::function<void(bool lost, const std::string& job_id, const std::string& why)> on_connection;
  };
  // Watches `job_id` until it ends, reattaching (with backoff) after a broken connection, and
  // following --descend's follow-up jobs. Returns the final status of the last job. Errors:
  // NOT_FOUND for an unknown job; UNAVAILABLE naming the address when the coordinator was not
  // reached within `retry_for`, or stayed unreachable for `reconnect_for` after the stream broke;
  // any other error of the stream.
  absl::StatusOr<farm::v1::JobStatus> WatchUntilDone(const std::string& job_id,
                                                     const WatchCallbacks& callbacks);

 private:
  // Runs `call` with a fresh deadline `timeout` away, retrying UNAVAILABLE within retry_for_.
  absl::Status Call(absl::Duration timeout,
                    const std::function<grpc::Status(grpc::ClientContext*)>& call);

  std::string address_;
  absl::Duration retry_for_;
  absl::Duration reconnect_for_;
  std::unique_ptr<farm::v1::Farm::Stub> stub_;
};

// The exit code (cli/exit_codes.h) for an error of FarmClient or of the command's own checks:
// UNAVAILABLE and DEADLINE_EXCEEDED: kExitUnreachable; anything else: kExitBadInput.
int ExitCodeForError(const absl::Status& error);

}  // namespace farm

#endif  // FARM_CLI_CLIENT_H_
