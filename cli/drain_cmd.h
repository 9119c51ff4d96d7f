// `farm drain AGENT` and `farm undrain AGENT`: stop giving an agent new tasks (its running ones
// finish), or give it tasks again.
//
// Exit codes: 0 done; 2 no connected agent has that id (the message says how to list them);
// 5 the coordinator is unreachable.
#ifndef FARM_CLI_DRAIN_CMD_H_
#define FARM_CLI_DRAIN_CMD_H_

#include <string>

#include "farm/v1/farm.grpc.pb.h"

namespace CLI {
class App;
}  // namespace CLI

namespace farm {

struct DrainCommands {
  CLI::App* drain = nullptr;
  CLI::App* undrain = nullptr;
  std::string agent_id;
  bool parsed() const;
};

// Declares the two subcommands on `app`; both take the agent id and --coordinator (bound to
// `coordinator`).
void AddDrainCommands(CLI::App& app, DrainCommands& d, std::string& coordinator);

// Runs whichever of the two was parsed against `stub`; prints the agent's state or the error.
int RunDrain(farm::v1::Farm::StubInterface* stub, const DrainCommands& d);

}  // namespace farm

#endif  // FARM_CLI_DRAIN_CMD_H_
