// The two exact merge-counting methods behind Frontier::Weight agree with brute force, whichever
// is used for which merge.
#include "coordinator/frontier/weights.h"

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

}  // namespace
}  // namespace farm
