// Host x guest jobs (issue 11): what the farm command refuses before any agent is involved. The
// jobs themselves run on real kexec agents in emulated hosts: tests/e2e/kexec/matrix_e2e.sh (the
// table, each cell's log, kexecs per agent, reuse, a two-dimensional bisect naming both kernels).
#include "absl/strings/ascii.h"
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

// Host kernels as revisions of a kernel repository (--host-repo): the client's errors, and a
// two-dimensional bisect over a host range that the coordinator accepts (it waits for kexec
// agents, each of which will build its cells' host kernels with --kernel --config).
TEST(Matrix, HostKernelsAsRevisions) {
  std::string dir = MakeTempDir("host-revisions");
  Repo kernel_repo = MakeRepo(dir + "/linux", "--shape linear --commits 8 --seed 2");
  WriteScript(dir + "/guest-0", "image guest-0\n");
  WriteScript(dir + "/guest-1", "image guest-1\n");
  WriteScript(dir + "/t.sh", "#!/bin/sh\ntrue\n");
  const std::string env = absl::StrCat("XDG_CACHE_HOME=", Quote(dir + "/cache"), " ");
  const std::string guests =
      absl::StrCat(" --guest-kernels ", Quote(dir + "/guest-0"), " ", Quote(dir + "/guest-1"));
  auto bisect = [&](const std::string& coordinator, const std::string& args) {
    return Sh(absl::StrCat(env, Farm(), " submit --coordinator ", coordinator, " --test ",
                           Quote(dir + "/t.sh"), guests, " ", args));
  };
  const std::string range = absl::StrCat(" --host-repo ", Quote(kernel_repo.path), " --host-good ",
                                         kernel_repo.root, " --host-bad ", kernel_repo.bad);
  struct Case {
    std::string args, says;
  } cases[] = {
      {range, "add --kernel --config CONFIG"},
      {range + " --kernel --config tinyconfig --host-kernels " + Quote(dir + "/guest-0"),
       "not both"},
      {absl::StrCat(" --host-repo ", Quote(kernel_repo.path), " --host-good ", kernel_repo.bad,
                    " --host-bad ", kernel_repo.root, " --kernel --config tinyconfig"),
       "did you swap them?"},
      {absl::StrCat(" --host-repo ", Quote(kernel_repo.path), " --host-good v0.1 --host-bad ",
                    kernel_repo.bad, " --kernel --config tinyconfig"),
       "--host-good: unknown revision 'v0.1'"},
      {absl::StrCat(" --host-repo ", Quote(kernel_repo.path), " --host-bad ", kernel_repo.bad,
                    " --kernel --config tinyconfig"),
       "missing --host-good"},
      {absl::StrCat(" --host-good ", kernel_repo.root, " --host-bad ", kernel_repo.bad),
       "add --host-repo"},
  };
  for (const Case& c : cases) {
    CommandResult r = bisect("127.0.0.1:1", c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << "\n" << r.output;
    EXPECT_TRUE(absl::StrContains(r.output, c.says)) << c.says << "\n" << r.output;
  }
  CommandResult matrix =
      Sh(absl::StrCat(env, Farm(), " matrix --coordinator 127.0.0.1:1 --host-repo ",
                      Quote(kernel_repo.path), " --kernel --config tinyconfig --host-kernels ",
                      kernel_repo.root, " nope --test ", Quote(dir + "/t.sh")));
  EXPECT_EQ(matrix.exit_code, 2) << matrix.output;
  EXPECT_TRUE(absl::StrContains(matrix.output, "--host-kernels: unknown revision 'nope'"))
      << matrix.output;

  TestFarm farm(dir);
  ASSERT_TRUE(farm.started());
  CommandResult submitted = bisect(farm.listen(), range + " --kernel --config tinyconfig");
  ASSERT_EQ(submitted.exit_code, 0) << submitted.output;
  std::string job = std::string(absl::StripAsciiWhitespace(submitted.output));
  std::string status = farm.Status(job);
  EXPECT_TRUE(absl::StrContains(status, "kexec=1")) << status;
}

}  // namespace
}  // namespace farm::testing
