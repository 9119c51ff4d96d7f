// farm drain AGENT / farm undrain AGENT: stop giving an agent new tasks (its running ones
// finish), or give it tasks again. Exit codes: 0 done; 2 no connected agent has that id (the
// message says how to list them); 5 the coordinator is unreachable.
#include <cstdio>

#include "cli/commands.h"
#include "cli/render.h"

namespace farm {

bool DrainCommand::parsed() const { return drain->parsed() || undrain->parsed(); }

void AddDrainCommands(CLI::App& app, DrainCommand& cmd, ClientFlags& client) {
  cmd.drain =
      app.add_subcommand("drain", "let an agent finish its running tasks and give it no new ones");
  cmd.undrain = app.add_subcommand("undrain", "give a drained agent tasks again");
  for (CLI::App* sub : {cmd.drain, cmd.undrain}) {
    sub->add_option("agent", cmd.agent_id, "agent id (see `farm agents`)")->required();
    AddCoordinatorFlag(sub, client);
  }
}

int RunDrain(const DrainCommand& cmd, const ClientFlags& client) {
  absl::StatusOr<Connection> c = Connect(client, nullptr);
  if (!c.ok()) return Fail(c.status());
  absl::StatusOr<farm::v1::AgentInfo> agent =
      c->client->DrainAgent(cmd.agent_id, cmd.undrain->parsed());
  if (!agent.ok()) return Fail(agent.status());
  std::printf("%s: %s, %d task(s) running\n", Printable(agent->agent_id()).c_str(),
              agent->draining() ? "draining (no new tasks)" : "taking tasks",
              agent->running_tasks_size());
  return 0;
}

}  // namespace farm
