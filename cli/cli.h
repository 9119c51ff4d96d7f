// The `farm` command: local bisects with an embedded coordinator and agents, and a client for a
// remote coordinator (submit, watch, cancel, status, log, agents, drain).
//
// Exit codes: cli/exit_codes.h (one table for farm, farm-agent and farm-coordinator).
#ifndef FARM_CLI_CLI_H_
#define FARM_CLI_CLI_H_

namespace farm {

// Parses argv and runs the command. Returns the process exit code.
int FarmMain(int argc, char** argv);

}  // namespace farm

#endif  // FARM_CLI_CLI_H_
