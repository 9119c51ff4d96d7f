// CommitGraph::Load without a commit-graph file, reading the packs in one pass (PackCommits):
// the same DAG as the commit-by-commit read, the revision walk and the commit-graph file, on
// repositories whose commits are in several packs and loose, stored as deltas, only loose, and
// behind version-2 indexes with 64-bit offsets or a version-1 index (skipped).
#include <git2.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "coordinator/graph/commit_graph.h"
#include "coordinator/graph/pack_commits.h"
#include "coordinator/graph/small_inflate.h"
#include "gtest/gtest.h"
#include "tests/unit/bisect/bisect_testing.h"

namespace farm {
namespace {

using bisect_testing::Dag;
using bisect_testing::OidFromHex;
using bisect_testing::Quote;
using bisect_testing::Sh;

// How Load reads commits the (absent) file lacks.
enum class Way { kPackScan, kById, kRevwalk, kDefault };

class PackScanTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    git_libgit2_init();
    bisect_testing::IsolateGitConfig();
  }
  static void TearDownTestSuite() { git_libgit2_shutdown(); }

  void SetUp() override {
    if (!bisect_testing::GitAvailable()) GTEST_SKIP() << "git is not installed";
    static int counter = 0;
    dir_ = absl::StrCat(::testing::TempDir(), "pack_scan_test_", getpid(), "_", counter++);
    Sh("rm -rf " + Quote(dir_));
  }
  void TearDown() override {
    if (repo_ != nullptr) git_repository_free(repo_);
    if (!dir_.empty()) Sh("rm -rf " + Quote(dir_) + " " + Quote(dir_ + ".fi"));
  }

  // Runs `command` in the repository; fails the test if it fails.
  std::string Git(const std::string& command) {
    bisect_testing::CommandResult r = Sh("cd " + Quote(dir_) + " && " + command);
    EXPECT_EQ(r.exit_code, 0) << command << ": " << r.output;
    return r.output;
  }

  // (Re)opens the repository: libgit2 caches the packs it has seen.
  void Open() {
    if (repo_ != nullptr) git_repository_free(repo_);
    repo_ = nullptr;
    ASSERT_EQ(git_repository_open(&repo_, dir_.c_str()), 0);
  }

  // Moves every pack out and unpacks it: all objects loose.
  void Unpack() {
    Git("mkdir -p ../" + Quote(Base() + ".hold") + " && mv .git/objects/pack/pack-* ../" +
        Quote(Base() + ".hold") + "/ && for p in ../" + Quote(Base() + ".hold") +
        "/*.pack; do git unpack-objects -q < \"$p\"; done && rm -rf ../" + Quote(Base() + ".hold"));
  }
  // Commits in the packs stored whole and as deltas, as `git verify-pack -v` lists them:
  // "<id> commit <size> <size in pack> <offset> [<depth> <base id>]".
  std::pair<size_t, size_t> PackedCommits() {
    size_t whole = 0, delta = 0;
    for (absl::string_view line : absl::StrSplit(
             Git("for i in .git/objects/pack/*.idx; do git verify-pack -v $i; done"), '\n')) {
      std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (fields.size() >= 5 && fields[1] == "commit") ++(fields.size() == 7 ? delta : whole);
    }
    return {whole, delta};
  }
  std::string Base() const { return dir_.substr(dir_.rfind('/') + 1); }

  std::shared_ptr<const CommitGraph> Load(const std::string& bad,
                                          const std::vector<std::string>& goods, bool first_parent,
                                          Way way, GraphLoadInfo* info) {
    GraphLoadOptions options;
    options.use_commit_graph_file = way != Way::kRevwalk;
    if (way == Way::kPackScan) options.scan_packs_after = 0;
    if (way == Way::kById) options.scan_packs_after = SIZE_MAX;
    std::vector<git_oid> good_oids;
    for (const std::string& g : goods) good_oids.push_back(OidFromHex(g));
    absl::StatusOr<std::shared_ptr<const CommitGraph>> graph =
        CommitGraph::Load(repo_, OidFromHex(bad), good_oids, first_parent, options, info);
    EXPECT_TRUE(graph.ok()) << graph.status();
    return graph.ok() ? *graph : nullptr;
  }

  // The same commits with the same parents (in order), and the same bad commit.
  static void ExpectSameDag(const CommitGraph& a, const CommitGraph& b) {
    EXPECT_EQ(bisect_testing::GraphDifference(a, b), "");
    if (a.size() > 0 && b.size() > 0) {
      EXPECT_EQ(a.Hex(a.bad()), b.Hex(b.bad()));
    }
  }

  // Loads bad --not goods the three ways and checks they agree; returns the scan's info.
  GraphLoadInfo ExpectAllWaysAgree(const std::string& bad, const std::vector<std::string>& goods,
                                   bool first_parent) {
    GraphLoadInfo scan_info, by_id_info;
    auto scanned = Load(bad, goods, first_parent, Way::kPackScan, &scan_info);
    auto by_id = Load(bad, goods, first_parent, Way::kById, &by_id_info);
    auto walked = Load(bad, goods, first_parent, Way::kRevwalk, nullptr);
    EXPECT_TRUE(scanned && by_id && walked);
    if (!(scanned && by_id && walked)) return scan_info;
    ExpectSameDag(*scanned, *by_id);
    ExpectSameDag(*scanned, *walked);
    EXPECT_EQ(scan_info.good_is_ancestor, by_id_info.good_is_ancestor);
    EXPECT_EQ(by_id_info.commits_from_pack_scan, 0u);
    return scan_info;
  }

  std::string dir_;
  git_repository* repo_ = nullptr;
};

// SmallInflater against zlib: every compression level (stored, fixed and dynamic blocks),
// texts like commits, random bytes and long overlapping matches, read whole and in prefixes;
// damaged streams are refused or decoded within bounds, never read or written past them.
TEST(SmallInflaterTest, DecodesWhatZlibWrites) {
  std::mt19937_64 rng(1950);
  std::vector<std::string> inputs = {"", "a", std::string(70000, 'x')};
  for (int i = 0; i < 40; ++i) {
    std::string text;
    const int kind = i % 4;
    const size_t size = std::uniform_int_distribution<size_t>(1, i < 20 ? 400 : 90000)(rng);
    while (text.size() < size) {
      if (kind == 0) {
        text += "tree " + std::to_string(rng()) + std::to_string(rng()) + "\nparent ";
      } else if (kind == 1) {
        text += static_cast<char>(rng());
      } else if (kind == 2) {
        text += std::string(rng() % 300, static_cast<char>('a' + rng() % 3));
      } else {
        text += text.substr(0, rng() % (text.size() + 1)) + static_cast<char>(rng());
      }
    }
    inputs.push_back(text.substr(0, size));
  }
  SmallInflater inflater;
  for (const std::string& input : inputs) {
    for (int level = 0; level <= 9; ++level) {
      SCOPED_TRACE(absl::StrCat("size ", input.size(), ", level ", level));
      uLongf packed_size = compressBound(input.size());
      std::vector<uint8_t> packed(packed_size + 64, 0);
      ASSERT_EQ(compress2(packed.data(), &packed_size, reinterpret_cast<const Bytef*>(input.data()),
                          input.size(), level),
                Z_OK);
      ASSERT_TRUE(inflater.Start(packed.data(), packed_size, input.size()));
      for (size_t want = 1; want < input.size(); want *= 3) {
        ASSERT_TRUE(inflater.Produce(want));
        ASSERT_GE(inflater.produced(), want);
      }
      ASSERT_TRUE(inflater.Produce(input.size()));
      ASSERT_EQ(inflater.produced(), input.size());
      ASSERT_EQ(std::string(reinterpret_cast<const char*>(inflater.data()), input.size()), input);
      // Damaged: a flipped byte, or the stream cut short.
      for (int d = 0; d < 4; ++d) {
        std::vector<uint8_t> bad(packed.begin(), packed.begin() + packed_size);
        size_t cut = bad.size();
        if (d % 2 == 0) {
          bad[rng() % bad.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
        } else {
          cut = rng() % bad.size();
        }
        if (inflater.Start(bad.data(), cut, input.size()) && inflater.Produce(input.size())) {
          EXPECT_LE(inflater.produced(), input.size());
        }
      }
    }
  }
}

TEST(ParseCommitParentsTest, ReadsParentLinesAndAsksForMoreOnlyInsideThem) {
  git_libgit2_init();  // git_oid_fromstrn records its errors in libgit2's thread state
  const std::string tree = "tree " + std::string(40, 'a') + "\n";
  const std::string p1 = "parent " + std::string(40, 'b') + "\n";
  const std::string p2 = "parent " + std::string(40, 'c') + "\n";
  const std::string commit = tree + p1 + p2 + "author A <a@b> 1 +0000\n\nmessage\n";
  std::vector<git_oid> out;
  EXPECT_EQ(ParseCommitParents(commit, true, out), CommitParse::kDone);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].id[0], 0xbb);
  EXPECT_EQ(out[1].id[19], 0xcc);
  // Every prefix that ends inside the tree or parent lines needs more; past them it is done.
  for (size_t cut = 0; cut < commit.size(); ++cut) {
    out.clear();
    const CommitParse r = ParseCommitParents(absl::string_view(commit).substr(0, cut), false, out);
    if (cut <= tree.size() + p1.size() + p2.size()) {
      EXPECT_EQ(r, CommitParse::kNeedMore) << cut;
    } else {
      EXPECT_EQ(r, CommitParse::kDone) << cut;
      EXPECT_EQ(out.size(), 2u) << cut;
    }
  }
  out.clear();
  EXPECT_EQ(ParseCommitParents("tree x", true, out), CommitParse::kMalformed);
  EXPECT_EQ(ParseCommitParents("blob " + std::string(41, 'a'), true, out), CommitParse::kMalformed);
  EXPECT_EQ(ParseCommitParents(tree + "parent " + std::string(40, 'z') + "\n", true, out),
            CommitParse::kMalformed);
  out.clear();
  EXPECT_EQ(ParseCommitParents(tree + "parent short\n", true, out), CommitParse::kDone);
  EXPECT_TRUE(out.empty());  // as libgit2's odb read path parses it: not a parent line
  git_libgit2_shutdown();
}

// Two packs (nested ranges of the history), the rest loose; random ranges with merges, several
// goods and --first-parent; finally the commit-graph file gives the same DAG too. pack-objects
// without --delta-base-offset stores deltas as REF_DELTA, which the pass leaves to be read by id.
TEST_F(PackScanTest, SeveralPacksAndLooseObjectsGiveTheSameDag) {
  std::mt19937_64 rng(14);
  const Dag dag = bisect_testing::RandomHistory(rng, 1500);
  absl::StatusOr<std::vector<std::string>> shas = bisect_testing::CreateRepository(dir_, dag);
  ASSERT_TRUE(shas.ok()) << shas.status();
  const size_t n = shas->size();
  Unpack();
  const std::string a = (*shas)[n / 3], b = (*shas)[2 * n / 3];
  Git("git rev-list --objects " + a + " | git pack-objects -q .git/objects/pack/pack");
  Git("git rev-list --objects " + b + " --not " + a +
      " | git pack-objects -q .git/objects/pack/pack");
  Git("git prune-packed");
  const std::string packs = Git("ls .git/objects/pack/*.pack | wc -l");
  EXPECT_EQ(packs, "2\n");
  const auto [packed, packed_deltas] = PackedCommits();
  std::printf("%zu commits in 2 packs stored whole, %zu as deltas\n", packed, packed_deltas);
  Open();

  const std::string bad = shas->back();
  size_t by_id_total = 0;
  for (int round = 0; round < 6; ++round) {
    std::vector<std::string> goods;
    for (int g = 0; g <= round % 3; ++g) {
      goods.push_back((*shas)[std::uniform_int_distribution<size_t>(0, n / 2)(rng)]);
    }
    const bool first_parent = round % 2 == 1;
    SCOPED_TRACE(absl::StrCat("round ", round));
    GraphLoadInfo info = ExpectAllWaysAgree(bad, goods, first_parent);
    EXPECT_EQ(info.commits_from_pack_scan, packed) << "the packs were not scanned whole";
    by_id_total += info.commits_from_objects - info.commits_from_pack_scan;
  }
  EXPECT_GT(by_id_total, 0u) << "no loose commit was read by id";

  Git("git commit-graph write --reachable");
  Open();
  GraphLoadInfo file_info, scan_info;
  auto from_file = Load(bad, {(*shas)[0]}, false, Way::kDefault, &file_info);
  auto scanned = Load(bad, {(*shas)[0]}, false, Way::kPackScan, &scan_info);
  ASSERT_TRUE(from_file && scanned);
  EXPECT_TRUE(file_info.used_commit_graph_file);
  EXPECT_EQ(file_info.commits_from_objects, 0u);
  ExpectSameDag(*from_file, *scanned);
}

// Commits with long, nearly equal messages, repacked with a deep window: git stores some as
// deltas of others (OFS_DELTA, as repack writes them), which the pass rebuilds from their bases.
TEST_F(PackScanTest, CommitsStoredAsDeltasAreRebuiltInThePass) {
  const std::string message(3000, 'm');
  {
    std::ofstream stream(dir_ + ".fi");
    for (int i = 0; i < 200; ++i) {
      const std::string text = absl::StrCat(message, " ", i, "\n");
      stream << "commit refs/heads/main\nmark :" << i + 1 << "\ncommitter T <t@example.com> "
             << 1700000000 + i << " +0000\ndata " << text.size() << "\n"
             << text;
      if (i > 0) stream << "from :" << i << "\n";
      if (i > 2 && i % 7 == 0) stream << "merge :" << i - 2 << "\n";
    }
  }
  ASSERT_EQ(Sh("git init -q " + Quote(dir_) + " && cd " + Quote(dir_) +
               " && git symbolic-ref HEAD refs/heads/main && git fast-import --quiet < " +
               Quote(dir_ + ".fi"))
                .exit_code,
            0);
  Git("git repack -adfq --window=250 --depth=50");
  const size_t delta_commits = PackedCommits().second;
  Open();
  const std::string bad = Git("git rev-parse main").substr(0, 40);
  const std::string root = Git("git rev-list --max-parents=0 main").substr(0, 40);
  GraphLoadInfo info = ExpectAllWaysAgree(bad, {root}, false);
  std::printf("%zu of 200 commits stored as deltas\n", delta_commits);
  if (delta_commits == 0) {
    std::printf("git made no delta commit: the delta path was not exercised\n");
  }
  EXPECT_EQ(info.commits_from_pack_scan, 200u) << "delta commits were not rebuilt in the pass";
  EXPECT_EQ(info.commits_from_objects, 200u);
}

TEST_F(PackScanTest, OnlyLooseObjects) {
  std::mt19937_64 rng(7);
  const Dag dag = bisect_testing::RandomHistory(rng, 400);
  absl::StatusOr<std::vector<std::string>> shas = bisect_testing::CreateRepository(dir_, dag);
  ASSERT_TRUE(shas.ok()) << shas.status();
  Unpack();
  Open();
  GraphLoadInfo info = ExpectAllWaysAgree(shas->back(), {(*shas)[0]}, false);
  EXPECT_EQ(info.commits_from_pack_scan, 0u);
  EXPECT_GT(info.commits_from_objects, 0u);
}

// An index with a 64-bit offset table (git index-pack --index-version=2,<offset> moves every
// offset above <offset> there) is read; a version-1 index makes the scan skip its pack.
TEST_F(PackScanTest, LargeOffsetIndexIsReadAndVersionOneIndexIsSkipped) {
  std::mt19937_64 rng(64);
  const Dag dag = bisect_testing::RandomHistory(rng, 600);
  absl::StatusOr<std::vector<std::string>> shas = bisect_testing::CreateRepository(dir_, dag);
  ASSERT_TRUE(shas.ok()) << shas.status();
  const std::string reindex =
      "cd .git/objects/pack && for p in *.pack; do i=${p%.pack}.idx; rm -f $i && "
      "git index-pack --index-version=";
  Git(reindex + "2,4096 $p >/dev/null; done");
  // 8-byte header, 256 fanout entries, 28 bytes a commit, two checksums, then the large table.
  const std::string idx_size = Git("stat -c %s .git/objects/pack/*.idx");
  uint64_t size = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(idx_size), &size)) << idx_size;
  EXPECT_GT(size, 8 + 1024 + 28 * shas->size() + 40) << "no 64-bit offset table";
  Open();
  GraphLoadInfo info = ExpectAllWaysAgree(shas->back(), {(*shas)[0]}, false);
  EXPECT_EQ(info.commits_from_pack_scan, shas->size());

  Git(reindex + "1 $p >/dev/null; done");
  Open();
  info = ExpectAllWaysAgree(shas->back(), {(*shas)[0]}, true);
  EXPECT_EQ(info.commits_from_pack_scan, 0u);
  EXPECT_GT(info.commits_from_objects, 0u);
}

}  // namespace
}  // namespace farm
