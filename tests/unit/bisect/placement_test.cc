// PlaceTasks against brute force, and the tree-diff cost on a real repository.
#include "coordinator/planner/placement.h"

#include <git2.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/bisect/bisect_testing.h"

namespace farm {
namespace {

using ::testing::ElementsAre;

double Total(const std::vector<int>& placed, const std::vector<std::vector<double>>& cost) {
  double total = 0;
  for (size_t i = 0; i < placed.size(); ++i) {
    if (placed[i] >= 0) total += cost[i][placed[i]];
  }
  return total;
}

MoveCost FromMatrix(const std::vector<CommitId>& commits,
                    const std::vector<std::vector<double>>& cost, int* calls) {
  return [&commits, &cost, calls](std::optional<CommitId> from, CommitId to) {
    ++*calls;
    const size_t i = std::find(commits.begin(), commits.end(), to) - commits.begin();
    return cost[i][from.has_value() ? *from : cost[i].size() - 1];
  };
}

TEST(PlaceTasksTest, MatchesBruteForce) {
  std::mt19937_64 rng(42);
  for (int round = 0; round < 300; ++round) {
    const size_t k = std::uniform_int_distribution<size_t>(1, 6)(rng);
    const size_t agents = std::uniform_int_distribution<size_t>(k, 7)(rng);
    std::vector<CommitId> commits(k);
    std::iota(commits.begin(), commits.end(), 100);
    // Agent j sits at "commit" j (the last one, if any, has an empty worktree).
    std::vector<std::optional<CommitId>> positions;
    for (size_t j = 0; j < agents; ++j) positions.push_back(static_cast<CommitId>(j));
    if (round % 3 == 0) positions.back() = std::nullopt;
    std::vector<std::vector<double>> cost(k, std::vector<double>(agents));
    for (auto& row : cost) {
      for (double& c : row) c = std::uniform_int_distribution<int>(0, 20)(rng);
    }
    int calls = 0;
    std::vector<int> placed = PlaceTasks(commits, positions, FromMatrix(commits, cost, &calls));
    EXPECT_EQ(calls, static_cast<int>(k * agents));
    // Distinct agents, all placed.
    std::vector<int> used(agents, 0);
    for (int a : placed) {
      ASSERT_GE(a, 0);
      ASSERT_LT(a, static_cast<int>(agents));
      EXPECT_EQ(used[a]++, 0);
    }
    // Brute force over all injective assignments.
    std::vector<int> perm(agents);
    std::iota(perm.begin(), perm.end(), 0);
    double best = 1e18;
    do {
      double t = 0;
      for (size_t i = 0; i < k; ++i) t += cost[i][perm[i]];
      best = std::min(best, t);
    } while (std::next_permutation(perm.begin(), perm.end()));
    EXPECT_DOUBLE_EQ(Total(placed, cost), best) << "round " << round;
  }
}

TEST(PlaceTasksTest, MoreCommitsThanAgentsPlacesTheMostUsefulOnes) {
  const std::vector<CommitId> commits = {7, 8, 9};
  const std::vector<std::optional<CommitId>> positions = {9, 7};
  auto distance = [](std::optional<CommitId> from, CommitId to) {
    return from.has_value() ? std::fabs(double(*from) - double(to)) : 100.0;
  };
  // Only 7 and 8 are placed; 7 costs 0 at agent 1, so 8 goes to agent 0 (at 9).
  EXPECT_THAT(PlaceTasks(commits, positions, distance), ElementsAre(1, 0, -1));
}

TEST(PlaceTasksTest, EmptyInputs) {
  auto zero = [](std::optional<CommitId>, CommitId) { return 0.0; };
  EXPECT_TRUE(PlaceTasks({}, {1, 2}, zero).empty());
  EXPECT_THAT(PlaceTasks({1, 2}, {}, zero), ElementsAre(-1, -1));
}

TEST(PlaceTasksTest, AgentsStayWhereTheyAreWhenTheirCommitIsPlanned) {
  std::vector<CommitId> commits = {5, 6, 7, 8};
  std::vector<std::optional<CommitId>> positions = {8, std::nullopt, 6, 5, 7};
  auto distance = [](std::optional<CommitId> from, CommitId to) {
    return from.has_value() ? std::fabs(double(*from) - double(to)) : 1000.0;
  };
  EXPECT_THAT(PlaceTasks(commits, positions, distance), ElementsAre(3, 2, 4, 0));
}

TEST(PlaceTasksTest, LargeInputsUseTheGreedyPlacement) {
  // 400 commits, 400 agents: 6.4e7 > 5e7, greedy; each agent sits at one commit.
  std::vector<CommitId> commits(400);
  std::iota(commits.begin(), commits.end(), 0);
  std::vector<std::optional<CommitId>> positions(commits.rbegin(), commits.rend());
  auto distance = [](std::optional<CommitId> from, CommitId to) {
    return std::fabs(double(*from) - double(to));
  };
  std::vector<int> placed = PlaceTasks(commits, positions, distance);
  for (size_t i = 0; i < placed.size(); ++i) EXPECT_EQ(placed[i], 399 - static_cast<int>(i));
}

class TreeDiffCostTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    git_libgit2_init();
    bisect_testing::IsolateGitConfig();
  }
  static void TearDownTestSuite() { git_libgit2_shutdown(); }
};

TEST_F(TreeDiffCostTest, CountsChangedFilesAsGitDiffDoes) {
  if (!bisect_testing::GitAvailable()) GTEST_SKIP() << "git is not installed";
  static std::atomic<int> counter{0};
  const std::string dir =
      absl::StrCat(::testing::TempDir(), "placement_test_", getpid(), "_", counter++);
  const std::string q = bisect_testing::Quote(dir);
  // A line of 12 commits, commit i adding file f<i> and rewriting `common`.
  std::string script = absl::StrCat("rm -rf ", q, " && git init -q ", q, " && cd ", q,
                                    " && git config user.email t@e && git config user.name t");
  for (int i = 0; i < 12; ++i) {
    absl::StrAppend(&script, " && echo ", i, " > f", i, " && echo ", i,
                    " > common && git add -A && git commit -qm c", i);
  }
  absl::StrAppend(&script, " && git rev-list --reverse HEAD");
  bisect_testing::CommandResult made = bisect_testing::Sh(script);
  ASSERT_EQ(made.exit_code, 0) << made.output;
  std::vector<std::string> shas = absl::StrSplit(made.output, '\n', absl::SkipEmpty());
  ASSERT_EQ(shas.size(), 12u);
  bisect_testing::Dag dag(12);
  for (uint32_t i = 1; i < 12; ++i) dag[i] = {i - 1};
  std::vector<git_oid> oids;
  for (const std::string& s : shas) oids.push_back(bisect_testing::OidFromHex(s));
  auto graph = CommitGraph::FromParents(oids, dag);

  git_repository* repo = nullptr;
  ASSERT_EQ(git_repository_open(&repo, dir.c_str()), 0);
  absl::StatusOr<size_t> n = ChangedFileCount(repo, oids[2], oids[7]);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 6u);  // f3..f7 and common
  MoveCost cost = TreeDiffCost(repo, graph);
  EXPECT_EQ(cost(2, 7), 6);
  EXPECT_EQ(cost(7, 2), 6);
  EXPECT_EQ(cost(4, 4), 0);
  EXPECT_EQ(cost(std::nullopt, 3), 5);  // a checkout of f0..f3 and common
  // Two agents at 2 and 10, commits 9 and 3: each goes to the nearer one.
  EXPECT_THAT(PlaceTasks({9, 3}, {2, 10}, cost), ElementsAre(1, 0));
  const git_oid missing = bisect_testing::OidFromHex("0123456789abcdef0123456789abcdef01234567");
  EXPECT_EQ(ChangedFileCount(repo, missing, oids[1]).status().code(), absl::StatusCode::kNotFound);
  git_repository_free(repo);
  bisect_testing::Sh("rm -rf " + q);
}

}  // namespace
}  // namespace farm
