// Frontier on hand-built graphs, and against a brute-force reference on random histories.
#include "coordinator/frontier/frontier.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <set>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/bisect/bisect_testing.h"

namespace farm {
namespace {

using bisect_testing::AncestorSets;
using bisect_testing::Dag;
using bisect_testing::GraphOf;
using bisect_testing::LinearHistory;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

// Runs bisection to the end, testing BestMidpoint() each time: commit x is bad iff `culprit` is
// an ancestor-or-self of x, and commits in `skip` are untestable. Returns the answer.
std::vector<CommitId> Bisect(Frontier f, const Dag& dag, CommitId culprit,
                             const std::set<CommitId>& skip, int* steps = nullptr) {
  const auto anc = AncestorSets(dag);
  int n = 0;
  while (!f.Done()) {
    std::optional<CommitId> m = f.BestMidpoint();
    if (!m) break;
    Verdict v = skip.count(*m) ? Verdict::kSkip : anc[*m][culprit] ? Verdict::kBad : Verdict::kGood;
    EXPECT_TRUE(f.Apply(*m, v));
    if (++n > 1000) break;
  }
  if (steps) *steps = n;
  return f.Candidates();
}

TEST(FrontierTest, LinearWeightsAndMidpoint) {
  Frontier f(GraphOf(LinearHistory(10)));
  EXPECT_EQ(f.num_candidates(), 10u);
  EXPECT_EQ(f.num_testable(), 9u);
  EXPECT_EQ(f.bad(), 9u);
  EXPECT_FALSE(f.Done());
  for (CommitId i = 0; i < 10; ++i) EXPECT_EQ(f.Weight(i), i + 1) << i;
  // min(w, 10 - w) is 5 only for w = 5.
  EXPECT_EQ(f.BestMidpoint(), 4u);

  EXPECT_TRUE(f.Apply(4, Verdict::kGood));
  EXPECT_THAT(f.Candidates(), ElementsAre(5, 6, 7, 8, 9));
  EXPECT_EQ(f.Weight(4), 0u);
  EXPECT_EQ(f.Weight(5), 1u);
  EXPECT_EQ(f.Weight(9), 5u);
  // N = 5: w = 2 (id 6) and w = 3 (id 7) both give 2; the smaller oid wins.
  EXPECT_EQ(f.BestMidpoint(), 6u);

  EXPECT_TRUE(f.Apply(7, Verdict::kBad));
  EXPECT_EQ(f.bad(), 7u);
  EXPECT_THAT(f.Candidates(), ElementsAre(5, 6, 7));
  EXPECT_EQ(f.Weight(7), 3u);
  EXPECT_EQ(f.Weight(8), 0u);
  EXPECT_EQ(f.BestMidpoint(), 5u);  // w = 1 and w = 2 both give 1

  EXPECT_TRUE(f.Apply(5, Verdict::kGood));
  EXPECT_TRUE(f.Apply(6, Verdict::kGood));
  EXPECT_TRUE(f.Done());
  EXPECT_EQ(f.BestMidpoint(), std::nullopt);
  EXPECT_THAT(f.Candidates(), ElementsAre(7));
}

TEST(FrontierTest, LinearFindsEveryCulpritInLogSteps) {
  const Dag dag = LinearHistory(100);
  for (CommitId culprit = 0; culprit < 100; ++culprit) {
    int steps = 0;
    EXPECT_THAT(Bisect(Frontier(GraphOf(dag)), dag, culprit, {}, &steps), ElementsAre(culprit));
    EXPECT_LE(steps, 7) << culprit;  // ceil(log2(100))
  }
}

TEST(FrontierTest, StaleAndRedundantVerdictsAreIgnored) {
  Frontier f(GraphOf(LinearHistory(10)));
  EXPECT_FALSE(f.Apply(9, Verdict::kBad));    // already the bad commit
  EXPECT_FALSE(f.Apply(9, Verdict::kGood));   // contradicts it: ignored
  EXPECT_FALSE(f.Apply(9, Verdict::kSkip));   // bad is never tested
  EXPECT_FALSE(f.Apply(10, Verdict::kGood));  // not in the graph
  EXPECT_TRUE(f.Apply(3, Verdict::kGood));
  EXPECT_FALSE(f.Apply(2, Verdict::kBad));  // no longer a candidate
  EXPECT_FALSE(f.Apply(3, Verdict::kGood));
  EXPECT_TRUE(f.Apply(6, Verdict::kSkip));
  EXPECT_FALSE(f.Apply(6, Verdict::kSkip));
  EXPECT_TRUE(f.Apply(8, Verdict::kBad));
  EXPECT_FALSE(f.Apply(9, Verdict::kGood));  // above the new bad: not a candidate
  EXPECT_THAT(f.Candidates(), ElementsAre(4, 5, 6, 7, 8));
  EXPECT_EQ(f.num_candidates(), 5u);
  EXPECT_EQ(f.num_testable(), 3u);
}

TEST(FrontierTest, DiamondWeights) {
  //   1
  // 0   3 - 4
  //   2
  const Dag dag = {{}, {0}, {0}, {1, 2}, {3}};
  Frontier f(GraphOf(dag));
  EXPECT_EQ(f.Weight(0), 1u);
  EXPECT_EQ(f.Weight(1), 2u);
  EXPECT_EQ(f.Weight(2), 2u);
  EXPECT_EQ(f.Weight(3), 4u);  // not 2 + 2 + 1: 0 is reached twice
  EXPECT_EQ(f.Weight(4), 5u);
  // min(w, 5 - w): 1, 2, 2, 1. Tie between 1 and 2: smaller oid.
  EXPECT_EQ(f.BestMidpoint(), 1u);
  // 1 good: 0 and 1 go, 2 (a sibling) stays.
  EXPECT_TRUE(f.Apply(1, Verdict::kGood));
  EXPECT_THAT(f.Candidates(), ElementsAre(2, 3, 4));
  EXPECT_EQ(f.Weight(2), 1u);
  EXPECT_EQ(f.Weight(3), 2u);  // the merge now has a single candidate parent
  EXPECT_EQ(f.Weight(4), 3u);
}

TEST(FrontierTest, CrissCrossMergeWeights) {
  // 3 and 4 both merge 1 and 2; 5 merges 3 and 4.
  const Dag dag = {{}, {0}, {0}, {1, 2}, {2, 1}, {3, 4}, {5}};
  Frontier f(GraphOf(dag));
  EXPECT_THAT(std::vector<uint32_t>({f.Weight(0), f.Weight(1), f.Weight(2), f.Weight(3),
                                     f.Weight(4), f.Weight(5), f.Weight(6)}),
              ElementsAre(1, 2, 2, 4, 4, 6, 7));
  // min(w, 7 - w): 1, 2, 2, 3, 3, 1: 3 beats 4 on oid.
  EXPECT_EQ(f.BestMidpoint(), 3u);
  EXPECT_TRUE(f.Apply(3, Verdict::kBad));
  EXPECT_THAT(f.Candidates(), ElementsAre(0, 1, 2, 3));
  EXPECT_EQ(f.Weight(3), 4u);
}

TEST(FrontierTest, MergeWhoseFirstParentSideIsShorter) {
  // A long topic 1..6 merged into a short main line 0, 7: the merge's first parent (7) reaches
  // less than its second (6).
  const Dag dag = {{}, {0}, {1}, {2}, {3}, {4}, {5}, {0}, {7, 6}, {8}};
  Frontier f(GraphOf(dag));
  EXPECT_EQ(f.Weight(7), 2u);
  EXPECT_EQ(f.Weight(6), 7u);
  EXPECT_EQ(f.Weight(8), 9u);
  EXPECT_EQ(f.Weight(9), 10u);
  // min(w, 10 - w) is 5 only at w = 5: commit 4.
  EXPECT_EQ(f.BestMidpoint(), 4u);
}

TEST(FrontierTest, MultipleGoods) {
  // main 0-1-2, topic 0-3-4, merge 5 = (2, 4), bad 6.
  const Dag dag = {{}, {0}, {1}, {0}, {3}, {2, 4}, {5}};
  Frontier f(GraphOf(dag));
  EXPECT_TRUE(f.Apply(2, Verdict::kGood));
  EXPECT_THAT(f.Candidates(), ElementsAre(3, 4, 5, 6));
  EXPECT_EQ(f.Weight(5), 3u);
  EXPECT_TRUE(f.Apply(4, Verdict::kGood));
  EXPECT_THAT(f.Candidates(), ElementsAre(5, 6));
  EXPECT_EQ(f.BestMidpoint(), 5u);
  EXPECT_TRUE(f.Apply(5, Verdict::kBad));
  EXPECT_TRUE(f.Done());
  EXPECT_THAT(f.Candidates(), ElementsAre(5));  // the merge itself is the first bad commit
}

TEST(FrontierTest, SkipsGiveAnswerSets) {
  const Dag dag = LinearHistory(10);
  // The culprit and its parent untestable: git's "could be any of 4 5 6".
  EXPECT_THAT(Bisect(Frontier(GraphOf(dag)), dag, 5, {4, 5}), ElementsAre(4, 5, 6));
  EXPECT_THAT(Bisect(Frontier(GraphOf(dag)), dag, 5, {5}), ElementsAre(5, 6));
  // A skipped descendant does not hide a testable culprit.
  EXPECT_THAT(Bisect(Frontier(GraphOf(dag)), dag, 5, {6}), ElementsAre(5));
  // A skipped ancestor of the culprit that is never needed.
  EXPECT_THAT(Bisect(Frontier(GraphOf(dag)), dag, 5, {2}), ElementsAre(5));
}

TEST(FrontierTest, SkippedCandidatesCountButAreNotChosen) {
  Frontier f(GraphOf(LinearHistory(10)));
  ASSERT_EQ(f.BestMidpoint(), 4u);
  EXPECT_TRUE(f.Apply(4, Verdict::kSkip));
  EXPECT_TRUE(f.IsCandidate(4));
  EXPECT_TRUE(f.IsSkipped(4));
  EXPECT_EQ(f.num_candidates(), 10u);
  EXPECT_EQ(f.num_testable(), 8u);
  EXPECT_EQ(f.Weight(4), 5u);
  // Next best: w = 4 (min 4) and w = 6 (min 4); commit 3 has the smaller oid.
  EXPECT_EQ(f.BestMidpoint(), 3u);
  // A later real verdict for a skipped commit overrides the skip.
  EXPECT_TRUE(f.Apply(4, Verdict::kBad));
  EXPECT_FALSE(f.IsSkipped(4));
  EXPECT_EQ(f.bad(), 4u);
  EXPECT_EQ(f.num_testable(), 4u);
  // Skip everything testable: done, and the answer is all that is left.
  for (CommitId i = 0; i < 4; ++i) EXPECT_TRUE(f.Apply(i, Verdict::kSkip));
  EXPECT_TRUE(f.Done());
  EXPECT_EQ(f.BestMidpoint(), std::nullopt);
  EXPECT_THAT(f.Candidates(), ElementsAre(0, 1, 2, 3, 4));
  // A good verdict for a skipped commit removes it and its ancestors.
  EXPECT_TRUE(f.Apply(2, Verdict::kGood));
  EXPECT_THAT(f.Candidates(), ElementsAre(3, 4));
  EXPECT_EQ(f.num_testable(), 0u);
  EXPECT_FALSE(f.IsSkipped(2));
}

TEST(FrontierTest, CopiesAreIndependent) {
  Frontier a(GraphOf(LinearHistory(8)));
  EXPECT_EQ(a.Weight(7), 8u);
  Frontier b = a;
  EXPECT_TRUE(b.Apply(3, Verdict::kGood));
  EXPECT_EQ(a.num_candidates(), 8u);
  EXPECT_EQ(a.Weight(7), 8u);
  EXPECT_EQ(b.num_candidates(), 4u);
  EXPECT_EQ(b.Weight(7), 4u);
}

TEST(FrontierTest, EmptyGraphIsDone) {
  Frontier f(CommitGraph::FromParents({}, {}));
  EXPECT_TRUE(f.Done());
  EXPECT_EQ(f.num_candidates(), 0u);
  EXPECT_EQ(f.num_testable(), 0u);
  EXPECT_EQ(f.BestMidpoint(), std::nullopt);
  EXPECT_TRUE(f.Candidates().empty());
  EXPECT_FALSE(f.Apply(0, Verdict::kGood));
}

TEST(FrontierTest, TieBreakUsesObjectIdNotCommitId) {
  // Linear, N = 5: ids 1 (w = 2) and 2 (w = 3) tie at 2; give id 2 the smaller object id.
  std::vector<git_oid> oids = bisect_testing::OrderedOids(5);
  std::swap(oids[1], oids[2]);
  Frontier f(CommitGraph::FromParents(oids, LinearHistory(5)));
  EXPECT_EQ(f.BestMidpoint(), 2u);
}

// The reference: candidates and weights by brute force from ancestor sets, after random verdict
// sequences on random histories.
TEST(FrontierTest, MatchesBruteForceOnRandomHistories) {
  const uint64_t seed = 20240601;
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 300; ++round) {
    const size_t n = std::uniform_int_distribution<size_t>(1, 150)(rng);
    const Dag dag = bisect_testing::RandomHistory(rng, n);
    const auto anc = AncestorSets(dag);
    Frontier f(GraphOf(dag));
    std::vector<bool> good(n, false);  // hidden by an applied good verdict
    std::vector<bool> skipped(n, false);
    CommitId bad = static_cast<CommitId>(n - 1);
    for (int step = 0; step < 12; ++step) {
      // Reference state.
      std::vector<bool> cand(n, false);
      size_t num = 0, num_skipped = 0;
      for (size_t x = 0; x < n; ++x) {
        cand[x] = anc[bad][x] && !good[x];
        num += cand[x];
        num_skipped += cand[x] && skipped[x];
      }
      ASSERT_EQ(f.num_candidates(), num) << "round " << round << " step " << step;
      ASSERT_EQ(f.bad(), bad);
      ASSERT_EQ(f.num_testable(), num - num_skipped - 1);
      std::optional<CommitId> best;
      size_t best_distance = 0;
      for (CommitId x = 0; x < n; ++x) {
        ASSERT_EQ(f.IsCandidate(x), cand[x]) << x;
        ASSERT_EQ(f.IsSkipped(x), cand[x] && skipped[x]) << x;
        size_t w = 0;
        if (cand[x]) {
          for (size_t y = 0; y <= x; ++y) w += anc[x][y] && cand[y];
        }
        ASSERT_EQ(f.Weight(x), w) << "round " << round << " step " << step << " commit " << x;
        if (cand[x] && !skipped[x] && x != bad) {
          size_t d = std::min(w, num - w);
          if (!best || d > best_distance) {
            best = x;
            best_distance = d;
          }
        }
      }
      ASSERT_EQ(f.BestMidpoint(), best);
      if (f.Done()) break;
      // A random verdict: usually for the midpoint, sometimes for any commit (maybe stale).
      CommitId x = std::uniform_real_distribution<double>(0, 1)(rng) < 0.6
                       ? *best
                       : std::uniform_int_distribution<CommitId>(0, n - 1)(rng);
      Verdict v = static_cast<Verdict>(std::uniform_int_distribution<int>(0, 2)(rng));
      const bool expect_change = cand[x] && x != bad && !(v == Verdict::kSkip && skipped[x]);
      ASSERT_EQ(f.Apply(x, v), expect_change) << x;
      if (!expect_change) continue;
      switch (v) {
        case Verdict::kGood:
          for (size_t y = 0; y < n; ++y) good[y] = good[y] || anc[x][y];
          break;
        case Verdict::kBad:
          bad = x;
          skipped[x] = false;
          break;
        case Verdict::kSkip:
          skipped[x] = true;
          break;
      }
    }
  }
}

// Weights on a large merge-heavy history stay fast (paint walks, not whole-ancestry counts).
TEST(FrontierTest, LargeMergeHeavyHistory) {
  std::mt19937_64 rng(7);
  const Dag dag = bisect_testing::RandomHistory(rng, 80000);
  size_t merges = 0;
  for (const auto& p : dag) merges += p.size() > 1;
  auto start = std::chrono::steady_clock::now();
  Frontier f(GraphOf(dag));
  std::optional<CommitId> m = f.BestMidpoint();
  ASSERT_TRUE(m.has_value());
  const uint32_t w = f.Weight(*m);
  EXPECT_LE(w, f.num_candidates() / 2 + 1);
  EXPECT_GE(w, f.num_candidates() / 4);  // a reasonable split exists in such histories
  Frontier g = f;
  ASSERT_TRUE(g.Apply(*m, Verdict::kGood));
  ASSERT_TRUE(g.BestMidpoint().has_value());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("80000 commits, %zu merges: two weight passes in %.3f s\n", merges, seconds);
}

}  // namespace
}  // namespace farm
