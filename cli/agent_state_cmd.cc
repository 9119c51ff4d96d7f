// farm agent-state AGENT good|maintenance|retired: an admin takes an agent out of service (its
// running tasks finish; it stays out across reconnections and coordinator restarts) or puts it
// back. Exit codes: 0 done; 2 bad state, unknown agent or not an admin (the message says what
// to do); 5 the coordinator is unreachable.
#include <cstdio>

#include "absl/strings/ascii.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/render.h"

namespace farm {

CLI::App* AddAgentStateCommand(CLI::App& app, AgentStateCommand& cmd, ClientFlags& client) {
  CLI::App* sub = app.add_subcommand(
      "agent-state", "set an agent's state: maintenance or retired (no new tasks, kept so), good");
  sub->add_option("agent", cmd.agent_id, "agent id (see `farm agents`)")->required();
  sub->add_option("state", cmd.state, "good, maintenance or retired")->required();
  sub->add_option("--reason", cmd.reason, "why, shown by `farm agents`");
  AddCoordinatorFlag(sub, client);
  return sub;
}

int RunAgentState(const AgentStateCommand& cmd, const ClientFlags& client) {
  farm::v1::AgentState state;
  const std::string name = absl::AsciiStrToUpper("agent_" + cmd.state);
  if (!farm::v1::AgentState_Parse(name, &state) ||
      (state != farm::v1::AGENT_GOOD && state != farm::v1::AGENT_MAINTENANCE &&
       state != farm::v1::AGENT_RETIRED)) {
    std::fprintf(stderr, "farm: agent-state '%s': give good, maintenance or retired\n",
                 Printable(cmd.state).c_str());
    return kExitBadInput;
  }
  absl::StatusOr<Connection> c = Connect(client, nullptr);
  if (!c.ok()) return Fail(c.status());
  absl::StatusOr<farm::v1::AgentInfo> agent =
      c->client->SetAgentState(cmd.agent_id, state, cmd.reason);
  if (!agent.ok()) return Fail(agent.status());
  std::printf("%s: %s, %d task(s) running\n", Printable(agent->agent_id()).c_str(),
              AgentStateName(agent->state()).c_str(), agent->running_tasks_size());
  return 0;
}

}  // namespace farm
