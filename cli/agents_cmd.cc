// farm agents: the coordinator's agents, what they run, how they boot kernels.
#include "cli/commands.h"
#include "cli/render.h"

namespace farm {

CLI::App* AddAgentsCommand(CLI::App& app, ClientFlags& client) {
  CLI::App* agents = app.add_subcommand("agents", "list the coordinator's agents");
  AddCoordinatorFlag(agents, client);
  return agents;
}

int RunAgents(const ClientFlags& client) {
  absl::StatusOr<Connection> c = Connect(client, nullptr);
  if (!c.ok()) return Fail(c.status());
  absl::StatusOr<std::vector<farm::v1::AgentInfo>> agents = c->client->ListAgents();
  if (!agents.ok()) return Fail(agents.status());
  PrintAgents(*agents);
  return 0;
}

}  // namespace farm
