// FlakyBisect: the posterior on hand-computed cases and against brute force on random DAGs,
// probe choice, stopping, learnt rates, and the options' validation.
#include "coordinator/flaky/flaky_bisect.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <random>
#include <utility>
#include <vector>

#include "coordinator/flaky/simulation.h"
#include "coordinator/frontier/frontier.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/bisect/bisect_testing.h"

namespace farm {
namespace {

using bisect_testing::AncestorSets;
using bisect_testing::Dag;
using bisect_testing::GraphOf;
using ::testing::Contains;
using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

Dag Linear(uint32_t n) {
  Dag dag(n);
  for (uint32_t i = 1; i < n; ++i) dag[i] = {i - 1};
  return dag;
}

// 0 <- 1 <- 3 (merge, bad)
//  \-- 2 --/
Dag Diamond() { return Dag{{}, {0}, {0}, {1, 2}}; }

FlakyOptions Rates(double false_pass, double false_fail) {
  FlakyOptions o;
  o.false_pass = false_pass;
  o.false_fail = false_fail;
  return o;
}

FlakyBisect Make(const Dag& dag, FlakyOptions options) {
  absl::StatusOr<FlakyBisect> b = FlakyBisect::Create(GraphOf(dag), std::move(options));
  EXPECT_TRUE(b.ok()) << b.status();
  return *std::move(b);
}

void Report(FlakyBisect& b, CommitId id, bool bad) {
  ASSERT_TRUE(b.Observe(id, bad ? Verdict::kBad : Verdict::kGood).ok());
}

TEST(FlakyBisectTest, UniformPriorBeforeAnyRun) {
  FlakyBisect b = Make(Linear(4), Rates(0.2, 0.1));
  for (CommitId c = 0; c < 4; ++c) {
    EXPECT_DOUBLE_EQ(b.Posterior(c), 0.25) << c;
    EXPECT_DOUBLE_EQ(b.ProbabilityBad(c), 0.25 * (c + 1)) << c;
  }
  EXPECT_EQ(b.Best(), 0u);  // ties go to the smaller id
  EXPECT_DOUBLE_EQ(b.Confidence(), 0.25);
  EXPECT_FALSE(b.Done());
  EXPECT_EQ(b.num_candidates(), 4u);
}

TEST(FlakyBisectTest, LinearPosteriorByHand) {
  FlakyBisect b = Make(Linear(4), Rates(0.2, 0.1));
  // A pass at 1: culprits 0 and 1 (1 truly bad) explain it with P = false_pass = 0.2, culprits
  // 2 and 3 (1 truly good) with 1 - false_fail = 0.9. Normalizer 2 * 0.2 + 2 * 0.9 = 2.2.
  Report(b, 1, false);
  EXPECT_NEAR(b.Posterior(0), 0.2 / 2.2, 1e-12);
  EXPECT_NEAR(b.Posterior(1), 0.2 / 2.2, 1e-12);
  EXPECT_NEAR(b.Posterior(2), 0.9 / 2.2, 1e-12);
  EXPECT_NEAR(b.Posterior(3), 0.9 / 2.2, 1e-12);
  EXPECT_NEAR(b.ProbabilityBad(2), (0.2 + 0.2 + 0.9) / 2.2, 1e-12);
  // A failure at 2: P = 0.8 if the culprit is <= 2, false_fail = 0.1 for culprit 3.
  // Unnormalized: 0.16, 0.16, 0.72, 0.09.
  Report(b, 2, true);
  EXPECT_NEAR(b.Posterior(0), 0.16 / 1.13, 1e-12);
  EXPECT_NEAR(b.Posterior(2), 0.72 / 1.13, 1e-12);
  EXPECT_NEAR(b.Posterior(3), 0.09 / 1.13, 1e-12);
  EXPECT_EQ(b.Best(), 2u);
  EXPECT_NEAR(b.Confidence(), 0.72 / 1.13, 1e-12);
  EXPECT_EQ(b.probes(), 2u);
  EXPECT_EQ(b.runs_at(2), 1u);
  EXPECT_THAT(b.Top(2), ElementsAre(std::make_pair(CommitId{2}, b.Posterior(2)),
                                    std::make_pair(CommitId{0}, b.Posterior(0))));
}

TEST(FlakyBisectTest, BugThatReproducesRarely) {
  // The test catches the bug only 30% of the time: false_pass 0.7 is used as given.
  FlakyBisect b = Make(Linear(2), Rates(0.7, 0.1));
  EXPECT_DOUBLE_EQ(b.false_pass(), 0.7);
  Report(b, 0, false);
  EXPECT_NEAR(b.Posterior(0), 0.7 / 1.6, 1e-12);
  Report(b, 0, true);
  EXPECT_NEAR(b.Posterior(0), 0.7 * 0.3 / (0.7 * 0.3 + 0.9 * 0.1), 1e-12);
}

TEST(FlakyBisectTest, MergeAncestryInTheUpdate) {
  FlakyBisect b = Make(Diamond(), Rates(0.2, 0.1));
  // 2 is on the merged topic: not an ancestor of 1, so a pass at 1 says nothing to tell culprit
  // 2 from culprit 3.
  Report(b, 1, false);
  EXPECT_NEAR(b.Posterior(0), 0.2 / 2.2, 1e-12);
  EXPECT_NEAR(b.Posterior(1), 0.2 / 2.2, 1e-12);
  EXPECT_NEAR(b.Posterior(2), 0.9 / 2.2, 1e-12);
  EXPECT_NEAR(b.Posterior(3), 0.9 / 2.2, 1e-12);
  // Truly bad at 2 iff the culprit is 0 or 2; at the merge, always.
  EXPECT_NEAR(b.ProbabilityBad(2), (0.2 + 0.9) / 2.2, 1e-12);
  EXPECT_NEAR(b.ProbabilityBad(1), 0.4 / 2.2, 1e-12);
  EXPECT_NEAR(b.ProbabilityBad(3), 1.0, 1e-12);
  // A failure at 2 (P 0.8 for culprits 0 and 2, 0.1 for 1 and 3).
  Report(b, 2, true);
  const double z = 0.2 * 0.8 + 0.2 * 0.1 + 0.9 * 0.8 + 0.9 * 0.1;
  EXPECT_NEAR(b.Posterior(2), 0.72 / z, 1e-12);
  EXPECT_NEAR(b.Posterior(1), 0.02 / z, 1e-12);
  EXPECT_EQ(b.Best(), 2u);
}

// Brute force: the posterior from the definition, with ancestor sets by exhaustive search.
std::vector<double> BrutePosterior(const Dag& dag,
                                   const std::vector<std::pair<CommitId, bool>>& runs, double fp,
                                   double ff) {
  const auto anc = AncestorSets(dag);
  const CommitId bad = static_cast<CommitId>(dag.size() - 1);
  std::vector<double> post(dag.size(), 0.0);
  double total = 0;
  for (CommitId c = 0; c < dag.size(); ++c) {
    if (!anc[bad][c]) continue;
    double l = 1.0;
    for (const auto& [x, failed] : runs) {
      const bool truly_bad = anc[x][c];
      l *= truly_bad ? (failed ? 1 - fp : fp) : (failed ? ff : 1 - ff);
    }
    post[c] = l;
    total += l;
  }
  for (double& p : post) p /= total;
  return post;
}

TEST(FlakyBisectTest, MatchesBruteForceOnRandomDags) {
  std::mt19937_64 rng(42);
  for (int trial = 0; trial < 30; ++trial) {
    const Dag dag = bisect_testing::RandomHistory(rng, 20 + trial * 3);
    const auto anc = AncestorSets(dag);
    FlakyBisect b = Make(dag, Rates(0.25, 0.05));
    std::vector<std::pair<CommitId, bool>> runs;
    for (int i = 0; i < 12; ++i) {
      // Any commit, candidate or not (RandomHistory leaves some topics unmerged).
      const CommitId x = static_cast<CommitId>(rng() % dag.size());
      const bool failed = rng() % 2 == 0;
      runs.emplace_back(x, failed);
      Report(b, x, failed);
    }
    const std::vector<double> want = BrutePosterior(dag, runs, 0.25, 0.05);
    const CommitId bad = static_cast<CommitId>(dag.size() - 1);
    for (CommitId c = 0; c < dag.size(); ++c) {
      EXPECT_NEAR(b.Posterior(c), want[c], 1e-9) << "trial " << trial << " commit " << c;
      double q = 0;
      for (CommitId a = 0; a < dag.size(); ++a) {
        if (anc[c][a] && anc[bad][a]) q += want[a];
      }
      EXPECT_NEAR(b.ProbabilityBad(c), q, 1e-9) << "trial " << trial << " commit " << c;
    }
  }
}

TEST(FlakyBisectTest, GainByHand) {
  // Two commits, uniform: a run at 0 is truly bad with q = 1/2.
  FlakyBisect b = Make(Linear(2), Rates(0.2, 0.0));
  // r = P(fail) = 0.8 * 0.5 = 0.4; gain = H(0.4) - 0.5 H(0.2) - 0.5 H(~0) bits.
  auto h = [](double p) { return -(p * std::log2(p) + (1 - p) * std::log2(1 - p)); };
  EXPECT_NEAR(b.ExpectedGain(0), h(0.4) - 0.5 * h(0.2), 1e-4);
  EXPECT_DOUBLE_EQ(b.ExpectedGain(1), 0.0);  // the bad commit is truly bad under every culprit
  EXPECT_THAT(b.NextProbes(1, {}), ElementsAre(0u));
}

TEST(FlakyBisectTest, FirstProbeIsTheMidpoint) {
  FlakyBisect b = Make(Linear(100), Rates(0.0, 0.0));
  EXPECT_THAT(b.NextProbes(1, {}), ElementsAre(49u));  // w = 50 of 100
  FlakyBisect flaky = Make(Linear(100), Rates(0.3, 0.0));
  // A false pass is likelier than a false fail, so a pass says less: the best split puts less
  // than half the mass below the probe: q* is about 0.42 here.
  const std::vector<CommitId> probe = flaky.NextProbes(1, {});
  ASSERT_EQ(probe.size(), 1u);
  EXPECT_LT(probe[0], 49u);
  EXPECT_GT(probe[0], 39u);
  for (CommitId x = 0; x < 99; ++x) {
    EXPECT_LE(flaky.ExpectedGain(x), flaky.ExpectedGain(probe[0])) << x;
  }
}

TEST(FlakyBisectTest, PendingRunsAreConditionedOn) {
  // Perfect test: a second run at the pending midpoint would tell nothing new.
  FlakyBisect perfect = Make(Linear(100), Rates(0.0, 0.0));
  const std::vector<CommitId> first = perfect.NextProbes(1, {});
  ASSERT_EQ(first.size(), 1u);
  const std::vector<CommitId> next = perfect.NextProbes(3, first);
  ASSERT_EQ(next.size(), 3u);
  EXPECT_THAT(next, Not(Contains(first[0])));
  // The quartiles come next (each splits one half of the pending midpoint's outcome), in
  // either order.
  const CommitId lo = std::min(next[0], next[1]), hi = std::max(next[0], next[1]);
  EXPECT_NEAR(static_cast<double>(lo), 24, 1.0);
  EXPECT_NEAR(static_cast<double>(hi), 74, 1.0);
  EXPECT_NE(next[2], lo);
  EXPECT_NE(next[2], hi);
  // The same four from a single call.
  std::vector<CommitId> four = perfect.NextProbes(4, {});
  EXPECT_EQ(four[0], first[0]);
  EXPECT_EQ(std::vector<CommitId>(four.begin() + 1, four.end()), next);
}

TEST(FlakyBisectTest, RepeatsOnlyWherePays) {
  // Linear 0 <- 1 <- 2 (bad). After many passes at 0 the culprit is 1 or 2: only a run at 1
  // can tell them apart, so every parallel probe goes there.
  FlakyBisect b = Make(Linear(3), Rates(0.3, 0.05));
  for (int i = 0; i < 12; ++i) Report(b, 0, false);
  ASSERT_LT(b.Posterior(0), 1e-5);
  EXPECT_THAT(b.NextProbes(4, {}), ElementsAre(1u, 1u, 1u, 1u));
  EXPECT_THAT(b.NextProbes(2, {1, 1}), ElementsAre(1u, 1u));
}

TEST(FlakyBisectTest, StopsAtTheRequestedConfidence) {
  FlakyOptions o = Rates(0.1, 0.0);
  o.confidence = 0.9;
  FlakyBisect b = Make(Linear(64), o);
  const CommitId culprit = 37;
  int steps = 0;
  while (!b.Done()) {
    const std::vector<CommitId> probe = b.NextProbes(1, {});
    ASSERT_EQ(probe.size(), 1u);
    EXPECT_LT(b.Confidence(), 0.9);  // not done yet, so not confident yet
    Report(b, probe[0], probe[0] >= culprit);
    ASSERT_LT(++steps, 100);
  }
  EXPECT_GE(b.Confidence(), 0.9);
  EXPECT_EQ(b.Best(), culprit);
  EXPECT_FALSE(b.Inconclusive());
  EXPECT_TRUE(b.NextProbes(4, {}).empty());
}

TEST(FlakyBisectTest, BudgetEndsInconclusive) {
  FlakyOptions o = Rates(0.3, 0.05);
  o.confidence = 0.999;
  o.max_probes = 3;
  FlakyBisect b = Make(Linear(64), o);
  for (int i = 0; i < 3; ++i) {
    ASSERT_FALSE(b.Done());
    Report(b, b.NextProbes(1, {})[0], true);
  }
  EXPECT_TRUE(b.Done());
  EXPECT_TRUE(b.Inconclusive());
  EXPECT_LT(b.Confidence(), 0.999);
  EXPECT_TRUE(b.NextProbes(1, {}).empty());
}

TEST(FlakyBisectTest, SkippedCommitsAreNotProbed) {
  FlakyBisect b = Make(Linear(3), Rates(0.1, 0.0));
  ASSERT_TRUE(b.Observe(1, Verdict::kSkip).ok());
  EXPECT_THAT(b.NextProbes(3, {}), Each(0u));
  ASSERT_TRUE(b.Observe(0, Verdict::kSkip).ok());
  // Nothing testable can decide between the culprits any more.
  EXPECT_TRUE(b.Done());
  EXPECT_TRUE(b.Inconclusive());
  EXPECT_EQ(b.probes(), 0u);
  // A later verdict at a skipped commit un-skips it.
  Report(b, 0, false);
  EXPECT_FALSE(b.Done());
  EXPECT_THAT(b.NextProbes(1, {}), Not(Contains(1u)));
}

// With a test that never lies, the engine bisects: the same culprit as the Frontier, and about
// log2(N) runs.
TEST(FlakyBisectTest, PerfectTestMatchesFrontier) {
  std::mt19937_64 rng(7);
  size_t dag_probes = 0, dag_frontier_steps = 0, dag_trials = 0;
  for (int trial = 0; trial < 20; ++trial) {
    const bool linear = trial % 2 == 0;
    const Dag dag = linear ? Linear(1000) : bisect_testing::RandomHistory(rng, 1000);
    const auto graph = GraphOf(dag);
    const auto anc = AncestorSets(dag);
    const CommitId bad = graph->bad();
    std::vector<CommitId> candidates;
    for (CommitId c = 0; c < dag.size(); ++c) {
      if (anc[bad][c]) candidates.push_back(c);
    }
    const CommitId culprit = candidates[rng() % candidates.size()];

    Frontier frontier(graph);
    int frontier_steps = 0;
    while (!frontier.Done()) {
      const CommitId m = *frontier.BestMidpoint();
      frontier.Apply(m, anc[m][culprit] ? Verdict::kBad : Verdict::kGood);
      ++frontier_steps;
    }
    ASSERT_EQ(frontier.bad(), culprit);

    FlakyOptions o = Rates(0.0, 0.0);
    o.confidence = 0.99;
    absl::StatusOr<FlakyBisect> b = FlakyBisect::Create(graph, o);
    ASSERT_TRUE(b.ok());
    while (!b->Done()) {
      const CommitId x = b->NextProbes(1, {})[0];
      Report(*b, x, anc[x][culprit]);
      ASSERT_LT(b->probes(), 100u);
    }
    EXPECT_EQ(b->Best(), culprit) << "trial " << trial;
    EXPECT_GE(b->Confidence(), 0.99);
    const size_t log2n = static_cast<size_t>(std::ceil(std::log2(candidates.size())));
    if (linear) {
      EXPECT_LE(b->probes(), log2n) << "trial " << trial;
      EXPECT_LE(b->probes(), static_cast<size_t>(frontier_steps) + 1) << "trial " << trial;
    } else {
      // On a DAG neither rule can always split in half, and ties between equally good splits
      // are broken differently, so single bisects may differ by a step or two either way.
      EXPECT_LE(b->probes(), log2n + 3) << "trial " << trial;
      dag_probes += b->probes();
      dag_frontier_steps += static_cast<size_t>(frontier_steps);
      ++dag_trials;
    }
  }
  // On average, no more than half a run more than git's rule.
  EXPECT_LE(2 * dag_probes, 2 * dag_frontier_steps + dag_trials);
}

TEST(FlakyBisectTest, NoCulpritHypothesis) {
  FlakyOptions o = Rates(0.2, 0.0);
  o.no_culprit_prior = 0.1;
  FlakyBisect b = Make(Linear(8), o);
  EXPECT_NEAR(b.NoCulpritProbability(), 0.1, 1e-12);
  EXPECT_NEAR(b.Posterior(3), 0.9 / 8, 1e-12);
  // Only "no culprit" makes the bad commit pass, so the bad commit is worth a run.
  EXPECT_GT(b.ExpectedGain(7), 0.01);
  // Five passes at bad: each has P 0.2 under every culprit, 1 under "no culprit".
  for (int i = 0; i < 5; ++i) Report(b, 7, false);
  const double culprits = 0.9 * std::pow(0.2, 5);
  const double none = 0.1 * std::pow(1 - kMinRate, 5);  // false_fail 0 is used as kMinRate
  EXPECT_NEAR(b.NoCulpritProbability(), none / (none + culprits), 1e-12);
  EXPECT_TRUE(b.Done());
  EXPECT_FALSE(b.Inconclusive());
  // One failure at bad rules it out again (false_fail is ~0).
  FlakyBisect c = Make(Linear(8), o);
  Report(c, 7, true);
  EXPECT_LT(c.NoCulpritProbability(), 1e-5);
}

TEST(FlakyBisectTest, PriorWeights) {
  FlakyOptions o = Rates(0.1, 0.0);
  o.prior = {1, 3, 0, 4};
  FlakyBisect b = Make(Linear(4), o);
  EXPECT_NEAR(b.Posterior(0), 0.125, 1e-12);
  EXPECT_NEAR(b.Posterior(1), 0.375, 1e-12);
  EXPECT_EQ(b.Posterior(2), 0.0);
  EXPECT_NEAR(b.Posterior(3), 0.5, 1e-12);
  EXPECT_EQ(b.Best(), 3u);
}

TEST(FlakyBisectTest, LearntRatesFromTheGoodEndpoint) {
  FlakyOptions o = Rates(0.1, 0.1);
  o.learn_rates = true;
  o.rate_prior_strength = 10;
  FlakyBisect b = Make(Linear(8), o);
  EXPECT_NEAR(b.false_fail(), 0.1, 1e-12);
  for (int i = 0; i < 100; ++i) b.ObserveGoodEndpoint(i < 20);
  // Beta(1, 9) plus 20 failures in 100 runs: mean 21 / 110. The posterior is unchanged.
  EXPECT_NEAR(b.false_fail(), 21.0 / 110.0, 1e-12);
  EXPECT_NEAR(b.false_pass(), 0.1, 1e-12);
  EXPECT_DOUBLE_EQ(b.Posterior(3), 0.125);
}

TEST(FlakyBisectTest, CalibrationRunsTestTheBadCommitFirst) {
  FlakyOptions o = Rates(0.2, 0.02);
  o.learn_rates = true;
  o.calibration_runs = 3;
  FlakyBisect b = Make(Linear(100), o);
  std::vector<CommitId> probes = b.NextProbes(4, {});
  ASSERT_EQ(probes.size(), 4u);
  EXPECT_THAT(std::vector<CommitId>(probes.begin(), probes.begin() + 3), Each(99u));
  EXPECT_NE(probes[3], 99u);
  EXPECT_THAT(b.NextProbes(1, {99, 99, 99}), Not(Contains(99u)));
  // Runs of the bad commit teach the false-pass rate: 10 runs, 5 passes, prior Beta(2, 8).
  for (int i = 0; i < 10; ++i) Report(b, 99, i % 2 == 0);
  EXPECT_NEAR(b.false_pass(), 7.0 / 20.0, 1e-9);
}

// Unknown rates, runs at random commits: the estimates converge to the injected rates.
TEST(FlakyBisectTest, LearntRatesConverge) {
  const double true_fp = 0.3, true_ff = 0.05;
  FlakyOptions o = Rates(0.1, 0.1);  // a poor guess
  o.learn_rates = true;
  FlakyBisect b = Make(Linear(500), o);
  const CommitId culprit = 321;
  flaky_sim::Rng rng(2024);
  for (int i = 0; i < 1000; ++i) {
    const CommitId x = static_cast<CommitId>(rng.Below(500));
    const bool truly_bad = x >= culprit;
    Report(b, x, truly_bad ? rng.Uniform() >= true_fp : rng.Uniform() < true_ff);
    if (i == 99) {
      // Already well on the way.
      EXPECT_GT(b.false_pass(), 0.2);
      EXPECT_LT(b.false_fail(), 0.09);
    }
  }
  // Random commits seldom land right next to the culprit, but the boundary is clear.
  EXPECT_LT(b.ProbabilityBad(culprit - 20), 0.01);
  EXPECT_GT(b.ProbabilityBad(culprit + 20), 0.99);
  EXPECT_NEAR(b.false_pass(), true_fp, 0.04);
  EXPECT_NEAR(b.false_fail(), true_ff, 0.02);
}

// The same in a bisection driven by the engine: it finds the culprit with rates it had to learn.
TEST(FlakyBisectTest, LearntRatesInABisection) {
  const double true_fp = 0.3, true_ff = 0.05;
  FlakyOptions o = Rates(0.1, 0.1);
  o.learn_rates = true;
  o.confidence = 0.999;
  FlakyBisect b = Make(Linear(500), o);
  const CommitId culprit = 123;
  flaky_sim::Rng rng(99);
  while (!b.Done()) {
    for (CommitId x : b.NextProbes(2, {})) {
      const bool truly_bad = x >= culprit;
      Report(b, x, truly_bad ? rng.Uniform() >= true_fp : rng.Uniform() < true_ff);
    }
    ASSERT_LT(b.probes(), 1000u);
  }
  EXPECT_EQ(b.Best(), culprit);
  EXPECT_GT(b.false_pass(), 0.2);   // moved from the 0.1 guess towards 0.3
  EXPECT_LT(b.false_fail(), 0.08);  // and from 0.1 towards 0.05
}

TEST(FlakyBisectTest, OptionErrors) {
  EXPECT_FALSE(FlakyBisect::Create(nullptr, FlakyOptions{}).ok());
  absl::StatusOr<FlakyBisect> empty =
      FlakyBisect::Create(CommitGraph::FromParents({}, {}), FlakyOptions{});
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(empty.status().message(), HasSubstr("empty"));

  const auto graph = GraphOf(Linear(4));
  EXPECT_THAT(FlakyBisect::Create(graph, Rates(0.6, 0.5)).status().message(),
              HasSubstr("must be below 1"));
  EXPECT_FALSE(FlakyBisect::Create(graph, Rates(-0.1, 0)).ok());
  EXPECT_FALSE(FlakyBisect::Create(graph, Rates(0.1, 1.0)).ok());
  FlakyOptions o;
  o.confidence = 1.0;
  EXPECT_THAT(FlakyBisect::Create(graph, o).status().message(), HasSubstr("--confidence"));
  o = FlakyOptions{};
  o.prior = {1, 1};
  EXPECT_THAT(FlakyBisect::Create(graph, o).status().message(), HasSubstr("one weight per"));
  o.prior = {0, 0, 0, 0};
  EXPECT_FALSE(FlakyBisect::Create(graph, o).ok());

  FlakyBisect b = Make(Linear(4), FlakyOptions{});
  const absl::Status s = b.Observe(4, Verdict::kBad);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(b.probes(), 0u);
}

TEST(FlakyBisectTest, ParseFlakyFlag) {
  FlakyOptions o;
  ASSERT_TRUE(ParseFlakyFlag("0.3,0.05", o).ok());
  EXPECT_DOUBLE_EQ(o.false_pass, 0.3);
  EXPECT_DOUBLE_EQ(o.false_fail, 0.05);
  EXPECT_FALSE(o.learn_rates);
  ASSERT_TRUE(ParseFlakyFlag("0.2", o).ok());
  EXPECT_DOUBLE_EQ(o.false_pass, 0.2);
  EXPECT_DOUBLE_EQ(o.false_fail, 0.0);
  ASSERT_TRUE(ParseFlakyFlag("learn", o).ok());
  EXPECT_TRUE(o.learn_rates);
  EXPECT_DOUBLE_EQ(o.false_pass, kLearnPriorFalsePass);
  EXPECT_DOUBLE_EQ(o.false_fail, kLearnPriorFalseFail);
  ASSERT_TRUE(ParseFlakyFlag("learn:0.25,0.01", o).ok());
  EXPECT_TRUE(o.learn_rates);
  EXPECT_DOUBLE_EQ(o.false_pass, 0.25);
  EXPECT_DOUBLE_EQ(o.false_fail, 0.01);

  FlakyOptions before = o;
  for (const char* bad : {"", "x", "0.1,0.2,0.3", "0.7,0.4", "learn:", "learn:abc", "1.5"}) {
    const absl::Status s = ParseFlakyFlag(bad, o);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_DOUBLE_EQ(o.false_pass, before.false_pass) << bad;  // unchanged on error
  }
}

}  // namespace
}  // namespace farm
