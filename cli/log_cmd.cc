// farm log JOB COMMIT: the build and test output of the tasks that tested a commit.
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "cli/render.h"
#include "common/git/git.h"

namespace farm {

namespace {

bool LooksLikeCommitId(const std::string& s) {
  if (s.size() < 4 || s.size() > 40) return false;
  for (char c : s) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// `rev` (e.g. main~1) as a commit id, resolved in the job's repository when it is a path here,
// else in `fallback_repo`.
absl::StatusOr<std::string> ResolveInRepo(FarmClient& client, const std::string& job_id,
                                          const std::string& rev,
                                          const std::string& fallback_repo) {
  absl::StatusOr<farm::v1::JobStatus> job = client.GetJob(job_id);
  if (!job.ok()) return job.status();
  std::string repo_path = fallback_repo;
  std::error_code ec;
  if (!job->spec().repo().empty() && std::filesystem::exists(job->spec().repo(), ec)) {
    repo_path = job->spec().repo();
  }
  absl::StatusOr<GitRepository> repo = OpenRepository(repo_path);
  if (!repo.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", rev, "' is not a commit id and cannot be resolved here (",
                     repo.status().message(), "): give the commit id (farm status ", job_id,
                     " lists the tested commits), or --repo "
                     "PATH of a clone"));
  }
  absl::StatusOr<git_oid> oid = ResolveCommit(repo->get(), rev);
  if (!oid.ok()) {
    return absl::Status(oid.status().code(), absl::StrCat(oid.status().message(), " (farm status ",
                                                          job_id, " lists the tested commits)"));
  }
  char hex[GIT_OID_HEXSZ + 1];
  git_oid_tostr(hex, sizeof(hex), &*oid);
  return std::string(hex);
}

}  // namespace

CLI::App* AddLogCommand(CLI::App& app, LogCommand& cmd, ClientFlags& client) {
  CLI::App* log = app.add_subcommand("log", "show the output of the tasks that tested a commit");
  log->add_option("job", cmd.job_id, "job id")->required();
  log->add_option("commit", cmd.commit,
                  "commit id, unique prefix, or revision (main~1, a tag) of the job's repository")
      ->required();
  log->add_flag("--raw", cmd.raw,
                "write the output as the test printed it, terminal escapes included (by default "
                "control characters are shown escaped, e.g. \\x1b, on a terminal or not)");
  AddCoordinatorFlag(log, client, "; without it, the local state of --repo is read");
  AddLocalFlags(log, cmd.local);
  return log;
}

int RunLog(const LogCommand& cmd, const ClientFlags& client) {
  absl::StatusOr<Connection> c = Connect(client, &cmd.local);
  if (!c.ok()) return Fail(c.status());
  std::string commit = cmd.commit;
  if (!LooksLikeCommitId(commit)) {
    absl::StatusOr<std::string> resolved =
        ResolveInRepo(*c->client, cmd.job_id, commit, cmd.local.repo);
    if (!resolved.ok()) return Fail(resolved.status());
    commit = *resolved;
  }
  absl::StatusOr<std::vector<farm::v1::TaskLog>> logs = c->client->GetTaskLog(cmd.job_id, commit);
  if (!logs.ok()) return Fail(logs.status());
  PrintLogs(*logs, cmd.raw);
  return 0;
}

}  // namespace farm
