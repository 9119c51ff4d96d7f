// AncestorIndex: ancestor sums against brute force, with stored and recomputed separations.
#include "coordinator/flaky/ancestor_index.h"

#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/bisect/bisect_testing.h"

namespace farm {
namespace {

using bisect_testing::AncestorSets;
using bisect_testing::Dag;
using bisect_testing::GraphOf;

TEST(AncestorIndexTest, DiamondByHand) {
  // 0 <- 1 <- 3 (merge, bad) -> 2 -> 0; 4 is a child of 2 that bad does not reach... except it
  // is the last id, so it is bad here: use a dangling 4 <- 2 before the merge instead.
  const Dag dag{{}, {0}, {0}, {2}, {1, 3}};
  AncestorIndex index(GraphOf(dag));
  EXPECT_EQ(index.num_candidates(), 5u);
  std::vector<double> out;
  index.Sum({1, 2, 4, 8, 16}, out);
  EXPECT_EQ(out, (std::vector<double>{1, 3, 5, 13, 31}));
  // S(4) = {2, 3}: reachable from the second parent only.
  EXPECT_EQ(index.stored_entries(), 2u);
  EXPECT_EQ(index.unstored_merges(), 0u);
  std::vector<uint32_t> cell{0, 1, 0, 1, 0};
  index.SumByCell({1, 2, 4, 8, 16}, cell, 2, out);
  EXPECT_EQ(out, (std::vector<double>{1, 0, 1, 2, 5, 0, 5, 8, 21, 10}));
}

TEST(AncestorIndexTest, NonCandidatesAreLeftOut) {
  // 2 is a topic never merged into bad (3).
  const Dag dag{{}, {0}, {1}, {1}};
  AncestorIndex index(GraphOf(dag));
  EXPECT_TRUE(index.is_candidate(1));
  EXPECT_FALSE(index.is_candidate(2));
  EXPECT_FALSE(index.is_candidate(4));
  EXPECT_EQ(index.num_candidates(), 3u);
  std::vector<CommitId> seen;
  std::vector<uint8_t> visited;
  index.ForEachAncestor(2, visited, [&](CommitId c) { seen.push_back(c); });
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<CommitId>{0, 1}));  // 2 itself is no candidate
  EXPECT_EQ(visited, std::vector<uint8_t>(4, 0));
}

TEST(AncestorIndexTest, MatchesBruteForceOnRandomDags) {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> weight(0.0, 1.0);
  for (int trial = 0; trial < 40; ++trial) {
    const Dag dag = bisect_testing::RandomHistory(rng, 30 + 7 * trial);
    const auto anc = AncestorSets(dag);
    const auto graph = GraphOf(dag);
    const CommitId bad = graph->bad();
    std::vector<double> w(dag.size());
    for (double& x : w) x = weight(rng);
    const size_t cells = 3;
    std::vector<uint32_t> cell(dag.size());
    for (auto& c : cell) c = static_cast<uint32_t>(rng() % cells);
    // Default budget (all stored here), none stored, and some stored.
    for (size_t budget : {AncestorIndex::DefaultStoredBudget(dag.size()), size_t{0}, size_t{20}}) {
      AncestorIndex index(graph, budget);
      if (budget == 0) {
        EXPECT_EQ(index.stored_entries(), 0u);
      }
      std::vector<double> sum, by_cell;
      index.Sum(w, sum);
      index.SumByCell(w, cell, cells, by_cell);
      for (CommitId x = 0; x < dag.size(); ++x) {
        EXPECT_EQ(index.is_candidate(x), static_cast<bool>(anc[bad][x]));
        double want = 0;
        std::vector<double> want_cell(cells, 0.0);
        if (anc[bad][x]) {
          for (CommitId c = 0; c < dag.size(); ++c) {
            if (anc[x][c]) {
              want += w[c];
              want_cell[cell[c]] += w[c];
            }
          }
        }
        ASSERT_NEAR(sum[x], want, 1e-9) << "trial " << trial << " budget " << budget << " x " << x;
        for (size_t j = 0; j < cells; ++j) {
          ASSERT_NEAR(by_cell[x * cells + j], want_cell[j], 1e-9) << "trial " << trial;
        }
        // The walk visits exactly the candidate ancestors-or-self.
        std::vector<uint8_t> visited;
        size_t count = 0, want_count = 0;
        index.ForEachAncestor(x, visited, [&](CommitId c) {
          ++count;
          EXPECT_TRUE(anc[x][c] && anc[bad][c]);
        });
        for (CommitId c = 0; c < dag.size(); ++c) want_count += anc[x][c] && anc[bad][c];
        ASSERT_EQ(count, want_count);
      }
    }
  }
}

}  // namespace
}  // namespace farm
