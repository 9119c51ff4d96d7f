// The subcommands of `farm` that talk to a coordinator, one .cc file each (bisect_cmd.cc holds
// bisect and submit, which share their flags), and how they reach it (connection.cc).
// `farm boot` and `farm next` run nothing remote: boot_cmd.h, next_cmd.h.
//
// Each Add*Command declares a subcommand and its flags on `app`, bound to the structs given;
// each Run* runs it and returns the process exit code (cli/exit_codes.h).
#ifndef FARM_CLI_COMMANDS_H_
#define FARM_CLI_COMMANDS_H_

#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "cli/bisect_spec.h"
#include "cli/client.h"
#include "cli/local_state.h"
#include "common/rpc/credentials.h"

namespace farm {

// How to reach the coordinator (the global flags, and --coordinator of each subcommand).
struct ClientFlags {
  std::string coordinator;  // HOST:PORT; empty: the local state (or an error where none applies)
  TlsFiles tls;
  std::string token_file;
  double connect_timeout = 10;  // seconds of retrying an unreachable coordinator per call
  // Seconds a watch reconnects after its established stream broke (a coordinator restart).
  double reconnect_timeout = 300;
};

// Where a local bisect's state is, for commands run without --coordinator.
struct LocalFlags {
  std::string repo = ".";
  std::string workdir;
};

// A client, and the local coordinator it talks to when there is no --coordinator.
struct Connection {
  std::unique_ptr<LocalCoordinator> local;  // null for a remote coordinator
  std::unique_ptr<FarmClient> client;
};

// Connects to `flags.coordinator`, or without it to the local state named by `local` (null: an
// INVALID_ARGUMENT saying to give --coordinator). Errors: a bad token file or TLS files; no
// local state (NOT_FOUND, saying what to give).
absl::StatusOr<Connection> Connect(const ClientFlags& flags, const LocalFlags* local);

// --coordinator HOST:PORT on `cmd` (env FARM_COORDINATOR).
void AddCoordinatorFlag(CLI::App* cmd, ClientFlags& flags, const std::string& extra_help = "");
// --repo and --workdir of a local bisect's state on `cmd`.
void AddLocalFlags(CLI::App* cmd, LocalFlags& local);

// farm bisect (local, or on --coordinator) and farm submit [--watch].
struct BisectCommand {
  BisectFlags flags;
  bool watch = false;  // submit: watch the job until it ends
  bool submit = false;
};
CLI::App* AddBisectCommand(CLI::App& app, BisectCommand& cmd, ClientFlags& client);
CLI::App* AddSubmitCommand(CLI::App& app, BisectCommand& cmd, ClientFlags& client);
int RunBisect(BisectCommand& cmd, const ClientFlags& client);
// farm matrix: a BisectCommand whose flags make a matrix job (cli/matrix_cmd.cc); run with
// RunBisect.
CLI::App* AddMatrixCommand(CLI::App& app, BisectCommand& cmd, ClientFlags& client);

// farm watch JOB [--log FILE].
struct WatchCommand {
  std::string job_id;
  std::string log_file;
  LocalFlags local;
};
CLI::App* AddWatchCommand(CLI::App& app, WatchCommand& cmd, ClientFlags& client);
int RunWatch(const WatchCommand& cmd, const ClientFlags& client);

// farm cancel JOB.
struct CancelCommand {
  std::string job_id;
  LocalFlags local;
};
CLI::App* AddCancelCommand(CLI::App& app, CancelCommand& cmd, ClientFlags& client);
int RunCancel(const CancelCommand& cmd, const ClientFlags& client);

// farm status [JOB].
struct StatusCommand {
  std::string job_id;
  LocalFlags local;
};
CLI::App* AddStatusCommand(CLI::App& app, StatusCommand& cmd, ClientFlags& client);
int RunStatus(const StatusCommand& cmd, const ClientFlags& client);

// farm log JOB COMMIT [--raw].
struct LogCommand {
  std::string job_id;
  std::string commit;
  bool raw = false;
  LocalFlags local;
};
CLI::App* AddLogCommand(CLI::App& app, LogCommand& cmd, ClientFlags& client);
int RunLog(const LogCommand& cmd, const ClientFlags& client);

// farm agents.
CLI::App* AddAgentsCommand(CLI::App& app, ClientFlags& client);
int RunAgents(const ClientFlags& client);

// farm drain AGENT and farm undrain AGENT.
struct DrainCommand {
  CLI::App* drain = nullptr;
  CLI::App* undrain = nullptr;
  std::string agent_id;
  bool parsed() const;
};
void AddDrainCommands(CLI::App& app, DrainCommand& cmd, ClientFlags& client);
int RunDrain(const DrainCommand& cmd, const ClientFlags& client);

// farm agent-state AGENT good|maintenance|retired [--reason TEXT].
struct AgentStateCommand {
  std::string agent_id;
  std::string state;
  std::string reason;
};
CLI::App* AddAgentStateCommand(CLI::App& app, AgentStateCommand& cmd, ClientFlags& client);
int RunAgentState(const AgentStateCommand& cmd, const ClientFlags& client);
// farm watch-branch (register a monitor), farm monitors, farm regressions [MONITOR], farm unwatch
// MONITOR: cli/watch_branch_cmd.cc.
struct MonitorCommands {
  CLI::App* watch_branch = nullptr;
  CLI::App* monitors = nullptr;
  CLI::App* regressions = nullptr;
  CLI::App* unwatch = nullptr;
  BisectFlags recipe;  // repo, build, timeout, require, description, kernel flags, the test
  std::string branch;
  std::string every = "10m";
  std::vector<std::string> webhooks;
  std::vector<std::string> emails;
  std::vector<std::string> subscribe;  // PATH=ADDR
  std::string monitor_id;
  bool parsed() const;
};
void AddMonitorCommands(CLI::App& app, MonitorCommands& cmd, ClientFlags& client);
int RunMonitorCommand(MonitorCommands& cmd, const ClientFlags& client);

}  // namespace farm

#endif  // FARM_CLI_COMMANDS_H_
