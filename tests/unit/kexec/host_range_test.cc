// Host kernels given as git revisions (cli/host_revisions): the host range of a two-dimensional
// bisect over a real repository, the client's errors, and the engine naming the first bad host
// commit in git's words over such a range (the guests a list of prebuilt images).
#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/host_revisions.h"
#include "coordinator/engine/engine_factory.h"
#include "gtest/gtest.h"
#include "tests/lib/test_util.h"
#include "tests/unit/core/cell_sim.h"

namespace farm {
namespace {

namespace v1 = farm::v1;
using farm::testing::Sh;

v1::KernelBuild Tiny() {
  v1::KernelBuild b;
  b.set_config_target("tinyconfig");
  return b;
}

using cell_sim::NoTexts;

// The range is good, then bad's first-parent line down to good, then bad, as
// `git rev-list --first-parent --reverse bad ^good` lists it; keys follow trees and recipes.
TEST(HostRange, FirstParentLineOfTheRangeOldestFirst) {
  std::string dir = farm::testing::MakeTempDir("host-range");
  farm::testing::Repo repo = farm::testing::MakeRepo(dir + "/linux", "--shape merges --commits 40");
  absl::StatusOr<std::vector<v1::HostKernel>> hosts =
      HostKernelsInRange(repo.path, repo.root, repo.bad, Tiny());
  ASSERT_TRUE(hosts.ok()) << hosts.status();
  auto git = Sh(absl::StrCat("git -C ", repo.path, " rev-list --first-parent --reverse ", repo.bad,
                             " ^", repo.root));
  ASSERT_EQ(git.exit_code, 0);
  std::vector<std::string> want = {repo.root};
  for (absl::string_view l : absl::StrSplit(git.output, '\n', absl::SkipEmpty())) {
    want.emplace_back(l);
  }
  std::vector<std::string> got;
  for (const v1::HostKernel& k : *hosts) got.push_back(k.commit());
  EXPECT_EQ(got, want);
  EXPECT_LT(got.size(), repo.commits.size()) << "topic commits are not host candidates";
  EXPECT_EQ(hosts->front().label(), repo.root);
  EXPECT_EQ(hosts->back().label(), repo.bad);
  EXPECT_EQ(hosts->front().repo(), repo.path);
  EXPECT_EQ(hosts->front().build().config_target(), "tinyconfig");
  EXPECT_NE(hosts->front().key(), hosts->back().key());
  v1::KernelBuild other = Tiny();
  other.add_fragments("kvm_guest");
  auto again = HostKernelsInRange(repo.path, repo.root, repo.bad, other);
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->front().key(), hosts->front().key()) << "another recipe, another kernel";
}

TEST(HostRange, ErrorsSayWhatIsWrongAndWhatToDo) {
  std::string dir = farm::testing::MakeTempDir("host-range-errors");
  farm::testing::Repo repo = farm::testing::MakeRepo(dir + "/linux", "--shape linear --commits 6");
  auto message = [&](const std::string& good, const std::string& bad) {
    absl::StatusOr<std::vector<v1::HostKernel>> r =
        HostKernelsInRange(repo.path, good, bad, Tiny());
    EXPECT_FALSE(r.ok());
    return std::string(r.status().message());
  };
  EXPECT_TRUE(absl::StrContains(message(repo.bad, repo.root), "did you swap them?"));
  EXPECT_TRUE(absl::StrContains(message("v9.99", repo.bad), "--host-good"));
  EXPECT_TRUE(absl::StrContains(message("v9.99", repo.bad), "unknown revision 'v9.99'"));
  EXPECT_TRUE(absl::StrContains(message(repo.root, repo.root), "are the same commit"));
  auto at = HostKernelsAtRevisions(repo.path, {repo.root, "nope"}, Tiny());
  ASSERT_FALSE(at.ok());
  EXPECT_TRUE(absl::StrContains(at.status().message(), "--host-kernels")) << at.status();
  auto missing = HostKernelsInRange(dir + "/none", repo.root, repo.bad, Tiny());
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "--host-repo")) << missing.status();
}

// A two-dimensional bisect whose host dimension is a range of commits and whose guests are a
// list: the regression is in the host range, and the report names its first bad commit as git
// bisect run names it.
TEST(HostRange, TwoDimensionalBisectNamesTheFirstBadHostCommit) {
  std::string dir = farm::testing::MakeTempDir("host-range-2d");
  farm::testing::Repo repo =
      farm::testing::MakeRepo(dir + "/linux", "--shape linear --commits 30 --seed 3");
  absl::StatusOr<std::vector<v1::HostKernel>> hosts =
      HostKernelsInRange(repo.path, repo.root, repo.bad, Tiny());
  ASSERT_TRUE(hosts.ok()) << hosts.status();
  const int n = static_cast<int>(hosts->size());
  cell_sim::Grid grid = cell_sim::MakeGrid(n, 3, /*bisect=*/true);
  for (int h = 0; h < n; ++h) *grid.spec.mutable_hosts(h) = (*hosts)[h];
  // A host is bad when its tree holds the planted `bug` file: what the host test would find.
  std::vector<bool> bad(n);
  for (int h = 0; h < n; ++h) {
    bad[h] = Sh(absl::StrCat("git -C ", repo.path, " cat-file -e ", (*hosts)[h].commit(), ":bug"))
                 .exit_code == 0;
  }
  v1::BisectSpec spec;
  *spec.mutable_matrix() = grid.spec;
  auto engine = CreateEngine(spec, grid.graph, {});
  ASSERT_TRUE(engine.ok()) << engine.status();
  auto cells = CellGrid::Create(grid.spec, *grid.graph);
  ASSERT_TRUE(cells.ok());
  cell_sim::Result r = cell_sim::Run(
      **engine, *cells, [&](Cell c) { return bad[c.host] ? Verdict::kBad : Verdict::kGood; },
      cell_sim::Options{});
  ASSERT_TRUE(r.done);
  EXPECT_LT(r.tests, n) << "a bisect, not every cell";
  std::vector<std::string> first_bad;
  std::string empty;
  std::vector<v1::TaskSummary> finished;
  NoTexts texts;
  JobText job{spec, v1::FOUND, first_bad, empty, empty, finished, texts};
  std::string report = (*engine)->Report(job);
  farm::testing::WriteScript(dir + "/host-test.sh", "#!/bin/sh\ntest ! -e bug\n");
  farm::testing::BisectAnswer git =
      farm::testing::GitBisectRun(repo.path, repo.bad, {repo.root}, dir + "/host-test.sh");
  ASSERT_EQ(git.first_bad, repo.culprit);
  EXPECT_TRUE(absl::StrContains(
      report, absl::StrCat(git.first_bad, " is the first bad host commit (", repo.path, ")")))
      << report;
  EXPECT_TRUE(absl::StrContains(report, "the change is in the host range")) << report;
}

}  // namespace
}  // namespace farm
