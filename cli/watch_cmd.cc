// farm watch JOB: follows a job until it ends (reattaching after a disconnect), then its report.
#include "cli/commands.h"
#include "cli/render.h"

namespace farm {

CLI::App* AddWatchCommand(CLI::App& app, WatchCommand& cmd, ClientFlags& client) {
  CLI::App* watch = app.add_subcommand("watch", "watch a job until it ends (reattachable)");
  watch->add_option("job", cmd.job_id, "job id")->required();
  watch->add_option("--log", cmd.log_file, "write the bisect log here at the end");
  AddCoordinatorFlag(watch, client);
  AddLocalFlags(watch, cmd.local);
  return watch;
}

int RunWatch(const WatchCommand& cmd, const ClientFlags& client) {
  if (!cmd.log_file.empty()) {
    absl::Status writable = CheckWritable(cmd.log_file, "--log");
    if (!writable.ok()) return Fail(writable);
  }
  absl::StatusOr<Connection> c = Connect(client, &cmd.local);
  if (!c.ok()) return Fail(c.status());
  if (c->local && !c->local->live()) {
    // Nothing runs the local state's jobs: a running one would be watched forever.
    absl::StatusOr<farm::v1::JobStatus> st = c->client->GetJob(cmd.job_id);
    if (!st.ok()) return Fail(st.status());
    if (st->state() == farm::v1::RUNNING) {
      return Fail(absl::FailedPreconditionError(
          absl::StrCat("job ", cmd.job_id,
                       " was interrupted: no farm bisect is running it (the next farm "
                       "bisect here cancels it; farm cancel ",
                       cmd.job_id, " ends it now)")));
    }
  }
  ProgressView view;
  FarmClient::WatchCallbacks cb;
  cb.on_event = [&view](const farm::v1::JobEvent& ev) { view.Show(ev); };
  cb.on_descend = ShowDescend;
  cb.on_connection = ShowConnection;
  absl::StatusOr<farm::v1::JobStatus> final = c->client->WatchUntilDone(cmd.job_id, cb);
  if (!final.ok()) return Fail(final.status());
  PrintReport(*final, cmd.log_file);
  return ExitCodeForJob(*final);
}

}  // namespace farm
