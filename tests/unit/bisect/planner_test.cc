#include "coordinator/planner/planner.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <set>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/bisect/bisect_testing.h"
#include "tests/unit/bisect/round_sim.h"

namespace farm {
namespace {

using bisect_testing::AncestorSets;
using bisect_testing::Arrival;
using bisect_testing::Dag;
using bisect_testing::GraphOf;
using bisect_testing::LinearHistory;
using bisect_testing::PlannerKind;
using bisect_testing::RoundSimResult;
using bisect_testing::SimulateRounds;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(PlannerTest, LinearRangeStartsRootThenChildMidpoints) {
  // 31 commits, bad = 30. Root midpoint: w = 15 and w = 16 tie at 15, the smaller oid is 14.
  // "14 good" (16 candidates left, probability 16/31) comes before "14 bad" (15/31): its
  // midpoint is 22 (w = 8 of 16); then "14 bad" with 15 candidates: 6 (w = 7 of 15).
  Frontier f(GraphOf(LinearHistory(31)));
  EXPECT_THAT(PlanNext(f, {{}, 1}).start, ElementsAre(14));
  EXPECT_THAT(PlanNext(f, {{}, 3}).start, ElementsAre(14, 22, 6));
  // Next level, most likely first, ties breadth first: 14 good + 22 bad {15..22} -> 18;
  // 14 good + 22 good {23..30} -> 26; 14 bad + 6 good {7..14} -> 10 (8/31 each);
  // 14 bad + 6 bad {0..6} -> 2 (7/31).
  Plan seven = PlanNext(f, {{}, 7});
  EXPECT_THAT(seven.start, ElementsAre(14, 22, 6, 18, 26, 10, 2));
  EXPECT_THAT(seven.cancel, IsEmpty());
}

TEST(PlannerTest, InFlightMidpointsAreNotStartedAgainButTheirSubtreesAre) {
  Frontier f(GraphOf(LinearHistory(31)));
  Plan plan = PlanNext(f, {{14}, 2});
  EXPECT_THAT(plan.start, ElementsAre(22, 6));
  EXPECT_THAT(plan.cancel, IsEmpty());
  plan = PlanNext(f, {{14, 22, 6}, 2});
  EXPECT_THAT(plan.start, ElementsAre(18, 26));
}

TEST(PlannerTest, CancelListsCommitsThatNoLongerMatter) {
  Frontier f(GraphOf(LinearHistory(31)));
  ASSERT_TRUE(f.Apply(14, Verdict::kGood));
  ASSERT_TRUE(f.Apply(25, Verdict::kSkip));
  ASSERT_TRUE(f.Apply(28, Verdict::kBad));
  // 3: below a good commit; 14: itself good; 25: skipped; 28: the bad commit; 29: above the
  // bad commit. 20 still matters. Duplicates are reported once.
  Plan plan = PlanNext(f, {{3, 20, 14, 25, 28, 29, 3}, 0});
  EXPECT_THAT(plan.cancel, ElementsAre(3, 14, 25, 28, 29));
  EXPECT_THAT(plan.start, IsEmpty());  // no free slot
  plan = PlanNext(f, {{3, 20}, 2});
  EXPECT_THAT(plan.cancel, ElementsAre(3));
  EXPECT_EQ(plan.start.size(), 2u);
  for (CommitId c : plan.start) {
    EXPECT_TRUE(f.IsCandidate(c));
    EXPECT_FALSE(f.IsSkipped(c));
    EXPECT_NE(c, f.bad());
    EXPECT_NE(c, 20u);
  }
}

TEST(PlannerTest, DoneFrontierStartsNothing) {
  Frontier f(GraphOf(LinearHistory(4)));
  ASSERT_TRUE(f.Apply(2, Verdict::kBad));
  ASSERT_TRUE(f.Apply(1, Verdict::kGood));
  ASSERT_TRUE(f.Done());
  Plan plan = PlanNext(f, {{3, 2}, 4});
  EXPECT_THAT(plan.start, IsEmpty());
  EXPECT_THAT(plan.cancel, ElementsAre(3, 2));
}

TEST(PlannerTest, SmallRangeRunsOutOfUsefulCommits) {
  // Two testable commits: more slots do not invent work.
  Frontier f(GraphOf(LinearHistory(3)));
  Plan plan = PlanNext(f, {{}, 5});
  std::vector<CommitId> start = plan.start;
  std::sort(start.begin(), start.end());
  EXPECT_THAT(start, ElementsAre(0, 1));
}

TEST(PlannerTest, SkippedCommitsAreNeverStarted) {
  Frontier f(GraphOf(LinearHistory(31)));
  ASSERT_TRUE(f.Apply(14, Verdict::kSkip));
  Plan plan = PlanNext(f, {{}, 8});
  EXPECT_EQ(plan.start.size(), 8u);
  EXPECT_EQ(plan.start[0], 15u);  // 14 and 15 tied at min(w, 31 - w) = 15; 14 is skipped
  for (CommitId c : plan.start) EXPECT_NE(c, 14u);
}

// A random history after a few random verdicts, with random commits in flight (up to
// max_in_flight, possibly repeated or useless) and 0-16 free slots.
struct RandomCase {
  Frontier frontier;
  std::vector<CommitId> in_flight;
  size_t slots;
};

// Calls check(case) for `cases` random cases from `seed` (printed).
void ForEachRandomCase(uint64_t seed, int cases, int max_in_flight,
                       const std::function<void(const RandomCase&)>& check) {
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  for (int round = 0; round < cases; ++round) {
    const size_t n = std::uniform_int_distribution<size_t>(1, 200)(rng);
    const Dag dag = bisect_testing::RandomHistory(rng, n);
    RandomCase c{Frontier(GraphOf(dag)), {}, 0};
    for (int i = 0; i < 3; ++i) {
      CommitId x = std::uniform_int_distribution<CommitId>(0, n - 1)(rng);
      c.frontier.Apply(x, static_cast<Verdict>(std::uniform_int_distribution<int>(0, 2)(rng)));
    }
    for (int i = std::uniform_int_distribution<int>(0, max_in_flight)(rng); i > 0; --i) {
      c.in_flight.push_back(std::uniform_int_distribution<CommitId>(0, n - 1)(rng));
    }
    c.slots = std::uniform_int_distribution<size_t>(0, 16)(rng);
    check(c);
  }
}

// plan.start is distinct, and each is a testable candidate that is not in flight.
void ExpectStartsAreNewTestableCommits(const Frontier& f, const std::vector<CommitId>& in_flight,
                                       const Plan& plan) {
  std::set<CommitId> started(plan.start.begin(), plan.start.end());
  EXPECT_EQ(started.size(), plan.start.size()) << "duplicates";
  for (CommitId c : plan.start) {
    EXPECT_TRUE(f.IsCandidate(c) && !f.IsSkipped(c) && c != f.bad()) << c;
    EXPECT_EQ(std::count(in_flight.begin(), in_flight.end(), c), 0) << c;
  }
}

// plan.cancel lists, once each, exactly the in-flight commits whose verdict cannot matter.
void ExpectCancelsExactlyTheUseless(const Frontier& f, const std::vector<CommitId>& in_flight,
                                    const Plan& plan) {
  std::set<CommitId> expected_cancel;
  for (CommitId c : in_flight) {
    if (!f.IsCandidate(c) || f.IsSkipped(c) || c == f.bad()) expected_cancel.insert(c);
  }
  EXPECT_EQ(std::set<CommitId>(plan.cancel.begin(), plan.cancel.end()), expected_cancel);
  EXPECT_EQ(plan.cancel.size(), expected_cancel.size());
}

// Invariants of every plan, on random histories and states.
TEST(PlannerTest, PlansAreWellFormedOnRandomHistories) {
  ForEachRandomCase(4242, 150, 4, [](const RandomCase& rc) {
    const Frontier& f = rc.frontier;
    const std::vector<CommitId>& in_flight = rc.in_flight;
    const size_t slots = rc.slots;
    Plan plan = PlanNext(f, {in_flight, slots});
    EXPECT_LE(plan.start.size(), slots);
    ExpectStartsAreNewTestableCommits(f, in_flight, plan);
    if (slots > 0 && !f.Done()) {
      ASSERT_FALSE(plan.start.empty() &&
                   std::count(in_flight.begin(), in_flight.end(), *f.BestMidpoint()) == 0);
      // The best midpoint comes first unless it is already running.
      if (std::count(in_flight.begin(), in_flight.end(), *f.BestMidpoint()) == 0) {
        EXPECT_EQ(plan.start[0], *f.BestMidpoint());
      }
    }
    ExpectCancelsExactlyTheUseless(f, in_flight, plan);
  });
}

// Rounds of k parallel tests, each round planned from scratch and all its verdicts applied,
// finish in about log_{k+1}(N) rounds rather than log_2(N).
int RoundsToFinish(const Dag& dag, CommitId culprit, size_t k) {
  const auto anc = AncestorSets(dag);
  Frontier f(GraphOf(dag));
  int rounds = 0;
  while (!f.Done() && rounds < 100) {
    Plan plan = PlanNext(f, {{}, k});
    for (CommitId c : plan.start) f.Apply(c, anc[c][culprit] ? Verdict::kBad : Verdict::kGood);
    ++rounds;
  }
  EXPECT_THAT(f.Candidates(), ElementsAre(culprit));
  return rounds;
}

TEST(PlannerTest, ParallelRoundsBeatSequentialBisection) {
  const Dag dag = LinearHistory(1000);
  int worst1 = 0, worst3 = 0, worst7 = 0;
  for (CommitId culprit = 0; culprit < 1000; culprit += 37) {
    worst1 = std::max(worst1, RoundsToFinish(dag, culprit, 1));
    worst3 = std::max(worst3, RoundsToFinish(dag, culprit, 3));
    worst7 = std::max(worst7, RoundsToFinish(dag, culprit, 7));
  }
  EXPECT_EQ(worst1, 10);  // ceil(log2(1000))
  EXPECT_LE(worst3, 6);   // log4(1000) ~ 5
  EXPECT_LE(worst7, 5);   // log8(1000) ~ 3.3; the depth-6 tree and ties cost a little
  std::printf("worst rounds: k=1 %d, k=3 %d, k=7 %d\n", worst1, worst3, worst7);
}

TEST(PlannerTest, EstimateRoundsLeft) {
  Frontier f(GraphOf(LinearHistory(31)));  // 30 testable
  EXPECT_EQ(EstimateRoundsLeft(f, 1), 5);
  EXPECT_EQ(EstimateRoundsLeft(f, 0), 5);
  EXPECT_EQ(EstimateRoundsLeft(f, 3), 3);  // 4^2 = 16 < 31 <= 64
  EXPECT_EQ(EstimateRoundsLeft(f, 30), 1);
  EXPECT_EQ(EstimateRoundsLeft(f, SIZE_MAX), 1);
  ASSERT_TRUE(f.Apply(29, Verdict::kBad));
  ASSERT_TRUE(f.Apply(28, Verdict::kGood));
  EXPECT_TRUE(f.Done());
  EXPECT_EQ(EstimateRoundsLeft(f, 1), 0);
  EXPECT_EQ(EstimateRoundsLeft(f, 8), 0);
}

TEST(PlannerTest, TenThousandCommitsSixteenSlotsIsFast) {
  std::mt19937_64 rng(11);
  const Dag dag = bisect_testing::RandomHistory(rng, 10000);
  Frontier f(GraphOf(dag));
  auto start = std::chrono::steady_clock::now();
  Plan plan = PlanNext(f, {{}, 16});
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%zu candidates, 16 slots: planned in %.3f s\n", f.num_candidates(), seconds);
  EXPECT_EQ(plan.start.size(), 16u);
}

// --- k-section (PlanKSection) ---

// One bisection in rounds of k tests that all take the same time.
RoundSimResult Bisect(const Dag& dag, const std::vector<std::vector<bool>>& anc, CommitId culprit,
                      size_t k, Arrival arrival = Arrival::kTogether,
                      PlannerKind planner = PlannerKind::kKSection) {
  RoundSimResult r = SimulateRounds(
      GraphOf(dag), [&](CommitId c) { return static_cast<bool>(anc[c][culprit]); }, k, planner,
      arrival, 100);
  EXPECT_THAT(r.answer, ElementsAre(culprit));
  return r;
}

TEST(PlannerKSectionTest, FourAgentsFinishAThousandCommitLineInFiveRounds) {
  // ceil(log5 1000) = 5: every round leaves a fifth of the candidates (rounded up), whichever
  // the culprit: 1,000 -> 200 -> 40 -> 8 -> 2 or 1 -> 1.
  const Dag dag = LinearHistory(1000);
  const auto anc = AncestorSets(dag);
  Frontier f(GraphOf(dag));
  // The first round: weights 200, 400, 600, 800 of 1,000 (commit i has weight i + 1).
  std::vector<CommitId> first = PlanKSection(f, {{}, 4}).start;
  std::sort(first.begin(), first.end());
  EXPECT_THAT(first, ElementsAre(199, 399, 599, 799));
  int worst = 0;
  std::vector<int> histogram(8, 0);
  for (CommitId culprit = 0; culprit < 1000; ++culprit) {
    const RoundSimResult r = Bisect(dag, anc, culprit, 4);
    size_t before = 1000;
    for (size_t left : r.left) {
      ASSERT_LE(left, (before + 4) / 5) << "culprit " << culprit;
      before = left;
    }
    worst = std::max(worst, r.rounds);
    ++histogram[std::min(r.rounds, 7)];
  }
  std::printf("k-section, 4 agents, 1,000 commits: worst %d rounds; 4 rounds %d, 5 rounds %d\n",
              worst, histogram[4], histogram[5]);
  EXPECT_EQ(worst, 5);
}

TEST(PlannerKSectionTest, EightyThousandKernelShapedCommitsSixteenSlots) {
  const Dag dag = bisect_testing::KernelShapedHistory(80000, 1);
  Frontier f(GraphOf(dag));
  f.BestMidpoint();  // the root's weights, as the coordinator has them cached
  auto start = std::chrono::steady_clock::now();
  Plan plan = PlanKSection(f, {{}, 16});
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%zu candidates, 16 slots: planned in %.3f s\n", f.num_candidates(), seconds);
  EXPECT_EQ(plan.start.size(), 16u);
  // A verdict mid-round: one slot free, the other 15 still running.
  std::vector<CommitId> running(plan.start.begin() + 1, plan.start.end());
  start = std::chrono::steady_clock::now();
  Plan replan = PlanKSection(f, {running, 1});
  std::printf("re-plan of 1 slot around 15 running: %.3f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  EXPECT_EQ(replan.start.size(), 1u);
}

TEST(PlannerKSectionTest, OneSlotIsGitsMidpoint) {
  std::mt19937_64 rng(77);
  for (int round = 0; round < 50; ++round) {
    const Dag dag = bisect_testing::RandomHistory(rng, 20 + round * 7);
    Frontier f(GraphOf(dag));
    ASSERT_FALSE(f.Done());
    EXPECT_THAT(PlanKSection(f, {{}, 1}).start, ElementsAre(*f.BestMidpoint()));
  }
}

TEST(PlannerKSectionTest, AVerdictMidRoundReplansAroundWhatIsRunning) {
  // Round one runs 199, 399, 599, 799; "399 good" arrives first (the culprit is above it). The
  // candidates are 400..999: 599 and 799 still cut them in three parts of 200, and the two free
  // agents each get the middle of a part: 499 (weight 100 of 400..599) and 699.
  Frontier f(GraphOf(LinearHistory(1000)));
  ASSERT_TRUE(f.Apply(399, Verdict::kGood));
  Plan plan = PlanKSection(f, {{199, 599, 799}, 2});
  EXPECT_THAT(plan.cancel, ElementsAre(199));
  EXPECT_THAT(plan.start, ElementsAre(499, 699));
}

TEST(PlannerKSectionTest, PlansAreWellFormedOnRandomHistories) {
  ForEachRandomCase(4243, 200, 6, [](const RandomCase& rc) {
    const Frontier& f = rc.frontier;
    const std::vector<CommitId>& in_flight = rc.in_flight;
    const Plan plan = PlanKSection(f, {in_flight, rc.slots});
    ExpectStartsAreNewTestableCommits(f, in_flight, plan);
    // As many as asked, unless the testable commits that are not running run out.
    size_t available = 0;
    for (CommitId c : f.Candidates()) {
      if (!f.IsSkipped(c) && c != f.bad() &&
          std::count(in_flight.begin(), in_flight.end(), c) == 0) {
        ++available;
      }
    }
    EXPECT_EQ(plan.start.size(), std::min(rc.slots, available));
    ExpectCancelsExactlyTheUseless(f, in_flight, plan);
  });
}

// The coordinator's way (Arrival::kOneByOne): verdicts arrive one at a time, each is applied,
// the commits it made useless are cancelled and the free agents are given new commits planned
// around what is still running. The culprit is found, and on merge-heavy histories k-section
// takes no more rounds in total than the decision tree.
TEST(PlannerKSectionTest, FindsTheCulpritWithVerdictsArrivingOneByOne) {
  std::mt19937_64 rng(99);
  int ksection_rounds = 0, tree_rounds = 0;
  const int cases = 40;
  for (int round = 0; round < cases; ++round) {
    const Dag dag = bisect_testing::RandomHistory(rng, 300);
    const auto anc = AncestorSets(dag);
    std::vector<CommitId> range;  // the last commit is bad; the culprit is one of its ancestors
    for (CommitId c = 0; c < dag.size(); ++c) {
      if (anc.back()[c]) range.push_back(c);
    }
    const CommitId culprit = range[std::uniform_int_distribution<size_t>(0, range.size() - 1)(rng)];
    const size_t k = std::uniform_int_distribution<size_t>(1, 8)(rng);
    ksection_rounds += Bisect(dag, anc, culprit, k, Arrival::kOneByOne).rounds;
    tree_rounds +=
        Bisect(dag, anc, culprit, k, Arrival::kOneByOne, PlannerKind::kDecisionTree).rounds;
  }
  std::printf("mean rounds over %d cases: k-section %.2f, decision tree %.2f\n", cases,
              static_cast<double>(ksection_rounds) / cases,
              static_cast<double>(tree_rounds) / cases);
  EXPECT_LE(ksection_rounds, tree_rounds);
}

}  // namespace
}  // namespace farm
