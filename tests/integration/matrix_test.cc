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
  CommandResult local =
      Sh(absl::StrCat(env, Farm(), " matrix --host-kernels ", Quote(dir + "/host-0"), " -- true"));
  EXPECT_EQ(local.exit_code, 2) << local.output;
  EXPECT_TRUE(absl::StrContains(local.output, "host kernels need kexec agents")) << local.output;
  // A two-dimensional bisect needs two kernels in each dimension.
  CommandResult one = Sh(absl::StrCat(
      env, Farm(), " bisect --coordinator 127.0.0.1:1", " --host-kernels ", Quote(dir + "/host-0"),
      " --guest-kernels ", Quote(dir + "/guest-0"), " ", Quote(dir + "/guest-1"), " -- true"));
  EXPECT_EQ(one.exit_code, 2) << one.output;
  EXPECT_TRUE(absl::StrContains(one.output, "at least two --host-kernels")) << one.output;
}

}  // namespace
}  // namespace farm::testing
