// farm cancel JOB: ends a job as cancelled (its running tests' process groups are killed).
#include <cstdio>

#include "cli/commands.h"
#include "cli/render.h"

namespace farm {

CLI::App* AddCancelCommand(CLI::App& app, CancelCommand& cmd, ClientFlags& client) {
  CLI::App* cancel = app.add_subcommand("cancel", "cancel a job");
  cancel->add_option("job", cmd.job_id, "job id")->required();
  AddCoordinatorFlag(cancel, client);
  AddLocalFlags(cancel, cmd.local);
  return cancel;
}

int RunCancel(const CancelCommand& cmd, const ClientFlags& client) {
  absl::StatusOr<Connection> c = Connect(client, &cmd.local);
  if (!c.ok()) return Fail(c.status());
  absl::StatusOr<farm::v1::JobStatus> st = c->client->Cancel(cmd.job_id);
  if (!st.ok()) return Fail(st.status());
  std::printf("job %s: %s\n", Printable(cmd.job_id).c_str(), StateName(st->state()));
  return 0;
}

}  // namespace farm
