// farm status [JOB]: the list of jobs, or one job in full.
#include <cstdio>

#include "cli/commands.h"
#include "cli/render.h"

namespace farm {

CLI::App* AddStatusCommand(CLI::App& app, StatusCommand& cmd, ClientFlags& client) {
  CLI::App* status = app.add_subcommand("status", "list jobs, or show one");
  status->add_option("job", cmd.job_id, "job id");
  AddCoordinatorFlag(status, client);
  AddLocalFlags(status, cmd.local);
  return status;
}

int RunStatus(const StatusCommand& cmd, const ClientFlags& client) {
  absl::StatusOr<Connection> c = Connect(client, &cmd.local);
  if (!c.ok()) return Fail(c.status());
  // A local job that is running while no farm bisect runs it was interrupted.
  const bool stale = c->local && !c->local->live();
  auto note = [stale](const farm::v1::JobStatus& j) {
    if (!stale || j.state() != farm::v1::RUNNING) return;
    std::printf(
        "  (job %s was interrupted: no farm bisect is running it; the next farm bisect "
        "here cancels it, farm cancel %s ends it now)\n",
        Printable(j.job_id()).c_str(), Printable(j.job_id()).c_str());
  };
  if (!cmd.job_id.empty()) {
    absl::StatusOr<farm::v1::JobStatus> st = c->client->GetJob(cmd.job_id);
    if (!st.ok()) return Fail(st.status());
    PrintJob(*st);
    note(*st);
    return 0;
  }
  absl::StatusOr<std::vector<farm::v1::JobStatus>> jobs = c->client->ListJobs();
  if (!jobs.ok()) return Fail(jobs.status());
  PrintJobTable(*jobs);
  for (const auto& j : *jobs) note(j);
  return 0;
}

}  // namespace farm
