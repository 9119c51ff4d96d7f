#include "common/git/commit_graph_write.h"

#include <memory>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/subprocess/subprocess.h"

namespace farm {

absl::Status WriteCommitGraph(const std::string& git_dir, absl::Duration timeout) {
  constexpr size_t kMaxOutput = 4096;
  std::string output;
  SubprocessOptions opts;
  opts.argv = {"git", "--git-dir=" + git_dir, "commit-graph", "write", "--reachable", "--split"};
  opts.timeout = timeout;
  opts.on_output = [&output](std::string_view chunk) {
    if (output.size() < kMaxOutput) output.append(chunk.substr(0, kMaxOutput - output.size()));
  };
  absl::StatusOr<std::unique_ptr<Subprocess>> proc = Subprocess::Start(std::move(opts));
  if (absl::IsNotFound(proc.status())) {
    return absl::NotFoundError(
        "the git CLI is not installed, so no commit-graph file is written (install git: big "
        "histories then load without reading every commit)");
  }
  FARM_RETURN_IF_ERROR(proc.status());
  const SubprocessResult r = (*proc)->Wait();
  if (r.kind == SubprocessResult::Kind::kTimedOut) {
    return absl::DeadlineExceededError(
        absl::StrCat("git commit-graph write in ", git_dir, ": ", r.Describe()));
  }
  if (r.kind != SubprocessResult::Kind::kExited || r.exit_code != 0) {
    return absl::InternalError(
        absl::StrCat("git commit-graph write in ", git_dir, ": ", r.Describe(), ": ", output));
  }
  return absl::OkStatus();
}

}  // namespace farm
