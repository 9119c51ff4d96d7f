// CommitGraph::Load on real repositories built with git fast-import, read by a libgit2 revision
// walk, from git's commit-graph files (one file, a split chain, a file that lacks the newer
// commits) and, without a file, straight from the object database.
#include "coordinator/graph/commit_graph.h"

#include <git2.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/bisect/bisect_testing.h"

namespace farm {
namespace {

using bisect_testing::Dag;
using bisect_testing::OidFromHex;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// How the repository's history is read.
enum class Mode { kRevwalk, kFile, kSplitFile, kPartialFile };

class CommitGraphLoadTest : public ::testing::TestWithParam<Mode> {
 protected:
  static void SetUpTestSuite() {
    git_libgit2_init();
    bisect_testing::IsolateGitConfig();
  }
  static void TearDownTestSuite() { git_libgit2_shutdown(); }

  void SetUp() override {
    if (!bisect_testing::GitAvailable()) GTEST_SKIP() << "git is not installed";
  }
  void TearDown() override {
    if (repo_ != nullptr) git_repository_free(repo_);
    if (!dir_.empty()) bisect_testing::Sh("rm -rf " + bisect_testing::Quote(dir_));
  }

  // Creates a repository holding `dag` and opens it; shas_[i] is commit i.
  void Create(const Dag& dag) {
    static std::atomic<int> counter{0};
    dir_ = absl::StrCat(::testing::TempDir(), "commit_graph_test_", getpid(), "_", counter++);
    bisect_testing::Sh("rm -rf " + bisect_testing::Quote(dir_));
    absl::StatusOr<std::vector<std::string>> shas = bisect_testing::CreateRepository(dir_, dag);
    ASSERT_TRUE(shas.ok()) << shas.status();
    shas_ = *shas;
    const std::string in_repo = "cd " + bisect_testing::Quote(dir_) + " && ";
    std::string write;
    switch (GetParam()) {
      case Mode::kRevwalk:
        break;
      case Mode::kFile:
        write = "git commit-graph write --reachable";
        break;
      case Mode::kSplitFile:
        // Two layers: the older half of main's history, then the rest.
        write = absl::StrCat("git rev-list --skip=", shas_.size() / 2,
                             " main | git commit-graph write --stdin-commits --split=no-merge && "
                             "git commit-graph write --reachable --split=no-merge");
        break;
      case Mode::kPartialFile:
        // Only the older half: the newer commits come from the object database.
        write = absl::StrCat("git rev-list --skip=", shas_.size() / 2,
                             " main | git commit-graph write --stdin-commits");
        break;
    }
    if (!write.empty()) {
      bisect_testing::CommandResult r = bisect_testing::Sh(in_repo + write);
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
    ASSERT_EQ(git_repository_open(&repo_, dir_.c_str()), 0);
  }

  std::shared_ptr<const CommitGraph> Load(uint32_t bad, std::vector<uint32_t> goods,
                                          bool first_parent = false) {
    std::vector<git_oid> good_oids;
    for (uint32_t g : goods) good_oids.push_back(OidFromHex(shas_[g]));
    GraphLoadInfo info;
    GraphLoadOptions options;
    // Without a file the objects are read directly (CommitGraphObjectsTest); this mode is the
    // revision walk that grafts, replace refs and shallow clones still use.
    options.use_commit_graph_file = GetParam() != Mode::kRevwalk;
    absl::StatusOr<std::shared_ptr<const CommitGraph>> graph =
        CommitGraph::Load(repo_, OidFromHex(shas_[bad]), good_oids, first_parent, options, &info);
    EXPECT_TRUE(graph.ok()) << graph.status();
    EXPECT_EQ(info.used_commit_graph_file, GetParam() != Mode::kRevwalk);
    last_info_ = info;
    return graph.ok() ? *graph : nullptr;
  }

  // The model indices of the graph's commits, by id.
  std::vector<uint32_t> Indices(const CommitGraph& graph) {
    std::vector<uint32_t> out;
    for (CommitId id = 0; id < graph.size(); ++id) {
      auto it = std::find(shas_.begin(), shas_.end(), graph.Hex(id));
      out.push_back(it == shas_.end() ? UINT32_MAX : static_cast<uint32_t>(it - shas_.begin()));
    }
    return out;
  }

  // Parents of `id` as model indices.
  std::vector<uint32_t> Parents(const CommitGraph& graph, CommitId id) {
    std::vector<uint32_t> index = Indices(graph);
    std::vector<uint32_t> out;
    for (CommitId p : graph.parents(id)) out.push_back(index[p]);
    return out;
  }

  std::string dir_;
  git_repository* repo_ = nullptr;
  GraphLoadInfo last_info_;
  std::vector<std::string> shas_;
};

TEST_P(CommitGraphLoadTest, LinearRange) {
  Dag dag(10);
  for (uint32_t i = 1; i < 10; ++i) dag[i] = {i - 1};
  Create(dag);
  auto graph = Load(9, {3});
  ASSERT_NE(graph, nullptr);
  ASSERT_EQ(graph->size(), 6u);
  EXPECT_EQ(graph->bad(), 5u);
  EXPECT_THAT(Indices(*graph), ElementsAre(4, 5, 6, 7, 8, 9));
  EXPECT_THAT(graph->parents(0), IsEmpty());  // 3 is outside the range
  EXPECT_THAT(graph->parents(1), ElementsAre(0));
  for (CommitId id = 0; id < 6; ++id) {
    EXPECT_EQ(graph->Hex(id), shas_[4 + id]);
    EXPECT_EQ(graph->Find(graph->oid(id)), id);
    EXPECT_EQ(graph->FindHex(shas_[4 + id]), id);
    EXPECT_EQ(graph->FindHex(absl::AsciiStrToUpper(shas_[4 + id])), id);
  }
  EXPECT_EQ(graph->FindHex(shas_[3]), std::nullopt);  // a good commit
  EXPECT_EQ(graph->Find(OidFromHex(shas_[0])), std::nullopt);
  EXPECT_EQ(graph->FindHex(shas_[5].substr(0, 12)), std::nullopt);  // abbreviated
  EXPECT_EQ(graph->FindHex(std::string(40, 'g')), std::nullopt);
  EXPECT_EQ(graph->FindHex(""), std::nullopt);
}

TEST_P(CommitGraphLoadTest, MergesAndSeveralGoods) {
  // main: 0 - 1 - 2 ------ 6 - 7
  // topic:     \- 3 - 4 -/     /
  // other:      \---- 5 -----/      (7 merges 6 and 5)
  const Dag dag = {{}, {0}, {1}, {1}, {3}, {1}, {2, 4}, {6, 5}};
  Create(dag);
  auto graph = Load(7, {2, 3});
  ASSERT_NE(graph, nullptr);
  // Range: 4, 5, 6, 7 (0..3 hidden).
  std::vector<uint32_t> index = Indices(*graph);
  EXPECT_THAT(std::vector<uint32_t>(index), ::testing::UnorderedElementsAre(4, 5, 6, 7));
  EXPECT_EQ(index.back(), 7u);
  for (CommitId id = 0; id < graph->size(); ++id) {
    for (CommitId p : graph->parents(id)) EXPECT_LT(p, id);
  }
  // Both goods are parents of range commits: every way of loading can tell they are ancestors.
  EXPECT_EQ(last_info_.good_is_ancestor, std::vector<bool>({true, true}));
  CommitId six = *graph->FindHex(shas_[6]);
  EXPECT_THAT(Parents(*graph, six), ElementsAre(4));              // 2 is hidden
  EXPECT_THAT(Parents(*graph, graph->bad()), ElementsAre(6, 5));  // first parent first

  auto fp = Load(7, {2, 3}, /*first_parent=*/true);
  ASSERT_NE(fp, nullptr);
  // --first-parent: 7, 6, then 2 is hidden. 4 and 5 are second parents.
  EXPECT_THAT(Indices(*fp), ElementsAre(6, 7));
  EXPECT_THAT(fp->parents(1), ElementsAre(0));
  EXPECT_THAT(fp->parents(0), IsEmpty());
}

TEST_P(CommitGraphLoadTest, FirstParentStillHidesTheWholeAncestryOfGoods) {
  // 3 merges 1 and 2; 2 is the good commit's child... good = 2 hides 0 and 2 through all parents.
  //   0 - 1 ---- 3 - 4
  //    \- 2 --/
  const Dag dag = {{}, {0}, {0}, {1, 2}, {3}};
  Create(dag);
  auto fp = Load(4, {2}, /*first_parent=*/true);
  ASSERT_NE(fp, nullptr);
  EXPECT_THAT(Indices(*fp), ElementsAre(1, 3, 4));  // 0 hidden: an ancestor of 2
}

TEST_P(CommitGraphLoadTest, EmptyRangeGivesAnEmptyGraph) {
  const Dag dag = {{}, {0}, {1}};
  Create(dag);
  auto graph = Load(1, {2});
  ASSERT_NE(graph, nullptr);
  EXPECT_EQ(graph->size(), 0u);
  EXPECT_EQ(graph->FindHex(shas_[1]), std::nullopt);
}

TEST_P(CommitGraphLoadTest, GoodNotAnAncestorOfBad) {
  // As git rev-list: only the common history is hidden.
  const Dag dag = {{}, {0}, {1}, {0}, {3}};
  Create(dag);
  auto graph = Load(2, {4});
  ASSERT_NE(graph, nullptr);
  EXPECT_THAT(Indices(*graph), ElementsAre(1, 2));
  if (GetParam() == Mode::kRevwalk) {
    EXPECT_TRUE(last_info_.good_is_ancestor.empty());  // the caller must ask libgit2
  } else {
    EXPECT_EQ(last_info_.good_is_ancestor, std::vector<bool>({false}));
  }
}

TEST_P(CommitGraphLoadTest, MissingCommitsAreErrors) {
  const Dag dag = {{}, {0}};
  Create(dag);
  const git_oid missing = OidFromHex("0123456789abcdef0123456789abcdef01234567");
  absl::StatusOr<std::shared_ptr<const CommitGraph>> graph =
      CommitGraph::Load(repo_, missing, {OidFromHex(shas_[0])}, false);
  ASSERT_FALSE(graph.ok());
  EXPECT_EQ(graph.status().code(), absl::StatusCode::kNotFound) << graph.status();
  EXPECT_THAT(std::string(graph.status().message()),
              HasSubstr("bad commit 0123456789abcdef0123456789abcdef01234567"));
  graph = CommitGraph::Load(repo_, OidFromHex(shas_[1]), {missing}, false);
  ASSERT_FALSE(graph.ok());
  EXPECT_EQ(graph.status().code(), absl::StatusCode::kNotFound) << graph.status();
  EXPECT_THAT(std::string(graph.status().message()), HasSubstr("good commit 0123456789abcdef"));
}

TEST_P(CommitGraphLoadTest, EightyThousandCommits) {
  std::mt19937_64 rng(5);
  // Mostly short-lived topics, as real histories: RandomHistory plus a long main line.
  Dag dag = bisect_testing::RandomHistory(rng, 40000);
  uint32_t tip = static_cast<uint32_t>(dag.size() - 1);
  while (dag.size() < 80000) {
    dag.push_back({tip});
    tip = static_cast<uint32_t>(dag.size() - 1);
  }
  auto start = std::chrono::steady_clock::now();
  Create(dag);
  std::printf("fast-import of %zu commits: %.2f s\n", dag.size(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  start = std::chrono::steady_clock::now();
  auto graph = Load(tip, {0});
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_NE(graph, nullptr);
  std::printf("CommitGraph::Load of %zu commits: %.3f s, %zu read from the objects\n",
              graph->size(), seconds, last_info_.commits_from_objects);
  if (GetParam() == Mode::kFile || GetParam() == Mode::kSplitFile) {
    EXPECT_EQ(last_info_.commits_from_objects, 0u);  // main's tip reaches every one of them
  }
  if (GetParam() == Mode::kPartialFile) {
    EXPECT_GT(last_info_.commits_from_objects, 1000u);
  }
  EXPECT_GT(graph->size(), 60000u);
  EXPECT_EQ(graph->Hex(graph->bad()), shas_[tip]);
  for (CommitId id = 0; id < graph->size(); ++id) {
    for (CommitId p : graph->parents(id)) ASSERT_LT(p, id);
  }
}

// Without a commit-graph file every commit is read from the object database: the same range,
// parents and ancestry answers as the revision walk and the model, and libgit2's object cache
// is left as it was (the revision walk leaves every commit of the range in it).
TEST(CommitGraphObjectsTest, MatchesTheRevisionWalkAndLeavesNoCache) {
  git_libgit2_init();
  bisect_testing::IsolateGitConfig();
  if (!bisect_testing::GitAvailable()) {
    git_libgit2_shutdown();
    GTEST_SKIP() << "git is not installed";
  }
  std::mt19937_64 rng(31);
  const Dag dag = bisect_testing::RandomHistory(rng, 3000);
  const auto anc = bisect_testing::AncestorSets(dag);
  const std::string dir = absl::StrCat(::testing::TempDir(), "commit_graph_objects_", getpid());
  bisect_testing::Sh("rm -rf " + bisect_testing::Quote(dir));
  absl::StatusOr<std::vector<std::string>> shas = bisect_testing::CreateRepository(dir, dag);
  ASSERT_TRUE(shas.ok()) << shas.status();
  git_repository* repo = nullptr;
  ASSERT_EQ(git_repository_open(&repo, dir.c_str()), 0);
  auto cached = [] {
    ssize_t current = 0, allowed = 0;
    git_libgit2_opts(GIT_OPT_GET_CACHED_MEMORY, &current, &allowed);
    return current;
  };
  const uint32_t bad = static_cast<uint32_t>(dag.size() - 1);
  for (int round = 0; round < 6; ++round) {
    std::vector<uint32_t> goods;
    for (int g = 0; g < 1 + round % 3; ++g) {
      goods.push_back(std::uniform_int_distribution<uint32_t>(0, bad - 1)(rng));
    }
    std::vector<git_oid> good_oids;
    for (uint32_t g : goods) good_oids.push_back(OidFromHex((*shas)[g]));
    const bool first_parent = round % 2 == 1;
    SCOPED_TRACE(absl::StrCat("round ", round, first_parent ? ", --first-parent" : ""));

    const ssize_t before = cached();
    GraphLoadInfo info;
    absl::StatusOr<std::shared_ptr<const CommitGraph>> direct = CommitGraph::Load(
        repo, OidFromHex((*shas)[bad]), good_oids, first_parent, GraphLoadOptions(), &info);
    ASSERT_TRUE(direct.ok()) << direct.status();
    const ssize_t after_direct = cached();
    EXPECT_FALSE(info.used_commit_graph_file);
    EXPECT_GE(info.commits_from_objects, (*direct)->size());
    ASSERT_EQ(info.good_is_ancestor.size(), goods.size());
    for (size_t g = 0; g < goods.size(); ++g) {
      EXPECT_EQ(info.good_is_ancestor[g], static_cast<bool>(anc[bad][goods[g]])) << goods[g];
    }
    EXPECT_LE(after_direct, before + 4096) << "commits left in libgit2's object cache";

    GraphLoadOptions walk_options;
    walk_options.use_commit_graph_file = false;
    absl::StatusOr<std::shared_ptr<const CommitGraph>> walked = CommitGraph::Load(
        repo, OidFromHex((*shas)[bad]), good_oids, first_parent, walk_options, nullptr);
    ASSERT_TRUE(walked.ok()) << walked.status();
    if (round == 0) {
      std::printf(
          "%zu commits: object cache +%zd bytes after the direct read, +%zd after the "
          "revision walk\n",
          (*direct)->size(), after_direct - before, cached() - after_direct);
    }
    const CommitGraph& a = **direct;
    const CommitGraph& b = **walked;
    ASSERT_EQ(bisect_testing::GraphDifference(a, b), "");
    if (a.size() > 0) {
      EXPECT_EQ(a.Hex(a.bad()), (*shas)[bad]);
    }
  }
  git_repository_free(repo);
  bisect_testing::Sh("rm -rf " + bisect_testing::Quote(dir));
  git_libgit2_shutdown();
}

INSTANTIATE_TEST_SUITE_P(Modes, CommitGraphLoadTest,
                         ::testing::Values(Mode::kRevwalk, Mode::kFile, Mode::kSplitFile,
                                           Mode::kPartialFile),
                         [](const ::testing::TestParamInfo<Mode>& info) {
                           switch (info.param) {
                             case Mode::kRevwalk:
                               return "Revwalk";
                             case Mode::kFile:
                               return "CommitGraphFile";
                             case Mode::kSplitFile:
                               return "SplitCommitGraphFiles";
                             case Mode::kPartialFile:
                               return "PartialCommitGraphFile";
                           }
                           return "Unknown";
                         });

}  // namespace
}  // namespace farm
