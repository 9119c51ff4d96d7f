// Host x guest jobs (issue 11): what the farm command refuses before any agent is involved. The
// jobs themselves run on real kexec agents in emulated hosts: tests/e2e/kexec/matrix_e2e.sh (the
// table, each cell's log, kexecs per agent, reuse, a two-dimensional bisect naming both kernels).
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/integration/test_farm.h"
#include "tests/lib/test_util.h"

namespace farm::testing {
namespace {

TEST(Matrix, InputErrorsSayWhatToDo) {
  std::string dir = MakeTempDir("matrix-input");
  WriteScript(dir + "/host-0", "image host-0\n");
  WriteScript(dir + "/guest-0", "image guest-0\n");
  WriteScript(dir + "/guest-1", "image guest-1\n");
  const std::string env = absl::StrCat("XDG_CACHE_HOME=", Quote(dir + "/cache"), " ");
  // Host kernels need kexec agents; local agents are not, so a local run is refused at once.
  // (The test command's own options after a list option and "--" are not farm's.)
  CommandResult local = Sh(absl::StrCat(env, Farm(), " matrix --host-kernels ",
                                        Quote(dir + "/host-0"), " -- sh -c true"));
  EXPECT_EQ(local.exit_code, 2) << local.output;
  EXPECT_TRUE(absl::StrContains(local.output, "host kernels need kexec agents")) << local.output;
  // A two-dimensional bisect needs two kernels in each dimension.
  CommandResult one =
      Sh(absl::StrCat(env, Farm(), " bisect --coordinator 127.0.0.1:1", " --host-kernels ",
                      Quote(dir + "/host-0"), " --guest-kernels ", Quote(dir + "/guest-0"), " ",
                      Quote(dir + "/guest-1"), " -- sh -c true"));
  EXPECT_EQ(one.exit_code, 2) << one.output;
  EXPECT_TRUE(absl::StrContains(one.output, "at least two --host-kernels")) << one.output;
}

// "--" right after a list option's values (--good A B) still marks the test command, whose own
// options are its own: the bisect runs `sh -c` and finds the culprit.
TEST(Matrix, CommandAfterAListOption) {
  std::string dir = MakeTempDir("list-then-command");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 12 --seed 5");
  CommandResult run = Sh(absl::StrCat("cd ", Quote(dir), " && ", Farm(), " bisect --repo ",
                                      Quote(repo.path), " --bad ", repo.bad, " --good ", repo.root,
                                      " ", repo.root, " -- sh -c 'test ! -e bug'"));
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_TRUE(absl::StrContains(run.output, repo.culprit + " is the first bad commit"))
      << run.output;
}

}  // namespace
}  // namespace farm::testing
