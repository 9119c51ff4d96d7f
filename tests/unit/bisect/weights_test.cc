// The merge-counting methods behind Frontier::Weight (the chain decomposition, paint walks and
// bit-parallel sweeps) agree with brute force, whichever is used for which merge.
#include "coordinator/frontier/weights.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/bisect/bisect_testing.h"

namespace farm {
namespace {

using bisect_testing::AncestorSets;
using bisect_testing::Dag;
using bisect_testing::GraphOf;

TEST(WeightsTest, AllBudgetsMatchBruteForce) {
  const uint64_t seed = 99173;
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  const size_t budgets[] = {0, 1, 3, 10, DefaultMergeWalkBudget(300), SIZE_MAX};
  size_t merges_seen = 0;
  for (int round = 0; round < 120; ++round) {
    const size_t n = std::uniform_int_distribution<size_t>(2, 300)(rng);
    const Dag dag = bisect_testing::RandomHistory(rng, n);
    const auto anc = AncestorSets(dag);
    auto graph = GraphOf(dag);
    // A random bisection state: a bad commit and up to 3 goods among its ancestors.
    const CommitId bad = std::uniform_int_distribution<CommitId>(n / 2, n - 1)(rng);
    std::vector<uint8_t> flags(n, 0);
    for (size_t x = 0; x < n; ++x) flags[x] = anc[bad][x] ? 1 : 0;
    const int goods = std::uniform_int_distribution<int>(0, 3)(rng);
    for (int g = 0; g < goods; ++g) {
      CommitId good = std::uniform_int_distribution<CommitId>(0, bad)(rng);
      if (good == bad || !anc[bad][good]) continue;
      for (size_t x = 0; x < n; ++x) {
        if (anc[good][x]) flags[x] = 0;
      }
    }
    // Some unrelated bits must not confuse it.
    for (size_t x = 0; x < n; ++x) flags[x] |= 2 * (x % 3 == 0);
    std::vector<uint32_t> expected(n, 0);
    for (size_t x = 0; x < n; ++x) {
      if (!(flags[x] & 1)) continue;
      for (size_t y = 0; y <= x; ++y) expected[x] += anc[x][y] && (flags[y] & 1);
      size_t parents_in = 0;
      for (uint32_t p : dag[x]) parents_in += flags[p] & 1;
      merges_seen += parents_in > 1;
    }
    for (size_t budget : budgets) {
      std::vector<uint32_t> weights = {7, 7, 7};  // stale content must be replaced
      ComputeCandidateWeights(*graph, flags, 1, bad + 1, budget, weights);
      ASSERT_EQ(weights, expected) << "round " << round << " budget " << budget;
    }
  }
  EXPECT_GT(merges_seen, 1000u);  // the histories really are merge-heavy
}

// The sweep alone and the default mix agree on a large history with long-lived branches (where
// the unbounded paint walk would take seconds).
TEST(WeightsTest, LargeHistoryMethodsAgree) {
  std::mt19937_64 rng(7);
  const size_t n = 80000;
  const Dag dag = bisect_testing::RandomHistory(rng, n);
  auto graph = GraphOf(dag);
  std::vector<uint8_t> flags(n, 1);
  std::vector<uint32_t> reference;
  for (size_t budget : {size_t{0}, DefaultMergeWalkBudget(n)}) {
    auto start = std::chrono::steady_clock::now();
    std::vector<uint32_t> weights;
    ComputeCandidateWeights(*graph, flags, 1, static_cast<CommitId>(n), budget, weights);
    std::printf("budget %zu: %.3f s\n", budget,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (reference.empty()) {
      reference = weights;
    } else {
      EXPECT_EQ(weights, reference);
    }
  }
}

// Random bisection states of `dag`: every commit's weight by brute force vs both methods.
void CheckAgainstBruteForce(const Dag& dag, std::mt19937_64& rng, int states, const char* what) {
  const size_t n = dag.size();
  const auto anc = AncestorSets(dag);
  auto graph = GraphOf(dag);
  for (int state = 0; state < states; ++state) {
    const CommitId bad = state == 0 ? static_cast<CommitId>(n - 1)
                                    : std::uniform_int_distribution<CommitId>(0, n - 1)(rng);
    std::vector<uint8_t> flags(n, 0);
    for (size_t x = 0; x < n; ++x) flags[x] = anc[bad][x] ? 1 : 0;
    const int goods = state == 0 ? 0 : std::uniform_int_distribution<int>(0, 3)(rng);
    for (int g = 0; g < goods; ++g) {
      const CommitId good = std::uniform_int_distribution<CommitId>(0, bad)(rng);
      if (good == bad || !anc[bad][good]) continue;
      for (size_t x = 0; x < n; ++x) {
        if (anc[good][x]) flags[x] = 0;
      }
    }
    std::vector<uint32_t> expected(n, 0);
    for (size_t x = 0; x < n; ++x) {
      if (!(flags[x] & 1)) continue;
      for (size_t y = 0; y <= x; ++y) expected[x] += anc[x][y] && (flags[y] & 1);
    }
    for (size_t budget : {size_t{0}, size_t{8}, SIZE_MAX}) {
      std::vector<uint32_t> weights;
      ComputeCandidateWeights(*graph, flags, 1, bad + 1, budget, weights);
      ASSERT_EQ(weights, expected) << what << " state " << state << " budget " << budget;
    }
    std::vector<uint32_t> walks;
    ComputeCandidateWeightsByWalks(*graph, flags, 1, bad + 1, 8, walks);
    ASSERT_EQ(walks, expected) << what << " state " << state;
  }
}

// DAGs no one would draw: each commit has 1-5 parents anywhere among the last 40 commits
// (octopus merges, criss-crosses, merges of merges of merges), and several roots.
TEST(WeightsTest, WildDagsWithOctopusMergesMatchBruteForce) {
  std::mt19937_64 rng(1234);
  for (int round = 0; round < 150; ++round) {
    const size_t n = std::uniform_int_distribution<size_t>(2, 160)(rng);
    Dag dag(n);
    for (size_t i = 1; i < n; ++i) {
      if (std::uniform_real_distribution<double>(0, 1)(rng) < 0.03) continue;  // another root
      const int parents = std::uniform_int_distribution<int>(1, 5)(rng);
      for (int k = 0; k < parents; ++k) {
        const uint32_t p = static_cast<uint32_t>(
            i - 1 - std::uniform_int_distribution<size_t>(0, std::min<size_t>(i - 1, 39))(rng));
        if (std::find(dag[i].begin(), dag[i].end(), p) == dag[i].end()) dag[i].push_back(p);
      }
    }
    CheckAgainstBruteForce(dag, rng, 4, "wild");
  }
}

// Branches merged into branches merged into branches, 100 deep: deeper than the decomposition
// goes (its deepest merges fall back to walks and sweeps).
TEST(WeightsTest, NestingDeeperThanTheDecompositionMatchesBruteForce) {
  Dag dag = {{}};
  // Nest(k): a branch off the root with one commit, then a merge of Nest(k - 1).
  std::vector<uint32_t> tips;
  uint32_t inner = 0;
  for (int k = 0; k < 100; ++k) {
    dag.push_back({0});
    const uint32_t c = static_cast<uint32_t>(dag.size() - 1);
    if (k == 0) {
      inner = c;
      continue;
    }
    dag.push_back({c, inner});
    inner = static_cast<uint32_t>(dag.size() - 1);
  }
  dag.push_back({0});
  dag.push_back({static_cast<uint32_t>(dag.size() - 1), inner});
  std::mt19937_64 rng(9);
  CheckAgainstBruteForce(dag, rng, 6, "nested");
  auto graph = GraphOf(dag);
  std::vector<uint8_t> flags(dag.size(), 1);
  std::vector<uint32_t> weights;
  WeightStats stats;
  ComputeCandidateWeights(*graph, flags, 1, static_cast<CommitId>(dag.size()),
                          DefaultMergeWalkBudget(dag.size()), weights, &stats);
  EXPECT_EQ(stats.levels, 64);
  EXPECT_GT(stats.merges_by_chains, 50u);
  EXPECT_GT(stats.merges_by_walks + stats.merges_by_sweeps, 0u);
}

// Kernel-shaped histories: the decomposition settles every merge, and agrees with the walks in
// many bisection states.
TEST(WeightsTest, KernelShapedHistoriesAreSettledByChains) {
  std::mt19937_64 rng(77);
  for (size_t n : {size_t{300}, size_t{2000}, size_t{20000}}) {
    const Dag dag = bisect_testing::KernelShapedHistory(n, n);
    if (n <= 2000) CheckAgainstBruteForce(dag, rng, 8, "kernel");
    auto graph = GraphOf(dag);
    const auto bad = static_cast<CommitId>(n - 1);
    std::vector<uint8_t> flags(n, 0);
    // Candidates: the ancestors of the last commit.
    flags[bad] = 1;
    for (CommitId x = bad + 1; x-- > 0;) {
      if (!flags[x]) continue;
      for (CommitId p : graph->parents(x)) flags[p] = 1;
    }
    std::vector<uint32_t> chains, walks;
    WeightStats stats;
    ComputeCandidateWeights(*graph, flags, 1, bad + 1, DefaultMergeWalkBudget(n), chains, &stats);
    ComputeCandidateWeightsByWalks(*graph, flags, 1, bad + 1, DefaultMergeWalkBudget(n), walks);
    EXPECT_EQ(chains, walks) << n;
    std::printf("%zu commits: %zu merges, %zu by chains, %d levels, %zu labels\n", n, stats.merges,
                stats.merges_by_chains, stats.levels, stats.labels);
    EXPECT_EQ(stats.merges_by_chains, stats.merges) << n;
    EXPECT_GT(stats.merges, n / 6);
  }
}

}  // namespace
}  // namespace farm
