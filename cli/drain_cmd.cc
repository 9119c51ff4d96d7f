#include "cli/drain_cmd.h"

#include <cstdio>

#include "CLI/CLI.hpp"
#include "cli/exit_codes.h"

namespace farm {

namespace v1 = farm::v1;

bool DrainCommands::parsed() const { return drain->parsed() || undrain->parsed(); }

void AddDrainCommands(CLI::App& app, DrainCommands& d, std::string& coordinator) {
  d.drain =
      app.add_subcommand("drain", "let an agent finish its running tasks and give it no new ones");
  d.undrain = app.add_subcommand("undrain", "give a drained agent tasks again");
  for (CLI::App* cmd : {d.drain, d.undrain}) {
    cmd->add_option("agent", d.agent_id, "agent id (see `farm agents`)")->required();
    cmd->add_option("--coordinator", coordinator, "coordinator address (env FARM_COORDINATOR)");
  }
}

int RunDrain(v1::Farm::StubInterface* stub, const DrainCommands& d) {
  v1::DrainAgentRequest req;
  req.set_agent_id(d.agent_id);
  req.set_undrain(d.undrain->parsed());
  v1::DrainAgentResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  grpc::Status st = stub->DrainAgent(&ctx, req, &resp);
  if (st.error_code() == grpc::StatusCode::UNAVAILABLE ||
      st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    std::fprintf(stderr, "farm: the coordinator is unreachable: %s\n", st.error_message().c_str());
    return kExitUnreachable;
  }
  if (!st.ok()) {
    std::fprintf(stderr, "farm: %s\n", st.error_message().c_str());
    return kExitBadInput;
  }
  std::printf("%s: %s, %d task(s) running\n", resp.agent().agent_id().c_str(),
              resp.agent().draining() ? "draining (no new tasks)" : "taking tasks",
              resp.agent().running_tasks_size());
  return 0;
}

}  // namespace farm
