// rounds_sim: how many rounds (test times) a bisection takes with k agents whose tests all take
// the same time, for the decision-tree planner (PlanNext) and k-section (PlanKSection), against
// the limit ceil(log_{k+1} N). A deterministic simulation: rounds are counted, not timed.
//
// Histories of COMMITS commits: linear, merge-heavy (bisect_testing::RandomHistory: topic
// branches, back-merges, topic-into-topic merges) and kernel-shaped (KernelShapedHistory). For
// each, CULPRITS culprits drawn uniformly from the range (the prior both planners assume); commit
// c is bad iff it contains the culprit. Two arrival models (tests/unit/bisect/round_sim.h):
// "together" (a round's verdicts are applied at once) and "one by one" (as the coordinator
// receives them: each verdict re-plans around what is still running).
//
// Usage: rounds_sim [COMMITS=10000] [CULPRITS=60] [SEED=1]
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "coordinator/frontier/frontier.h"
#include "tests/unit/bisect/bisect_testing.h"
#include "tests/unit/bisect/round_sim.h"

namespace farm {
namespace {

using bisect_testing::Arrival;
using bisect_testing::Dag;
using bisect_testing::PlannerKind;

int Limit(size_t candidates, size_t k) {
  int rounds = 0;
  for (uint64_t reach = 1; reach < candidates; reach *= k + 1) ++rounds;
  return rounds;
}

struct Stats {
  double mean = 0;
  int worst = 0;
};

Stats Run(const Dag& dag, const std::vector<std::vector<bool>>& anc,
          const std::vector<CommitId>& culprits, size_t k, PlannerKind planner, Arrival arrival) {
  Stats s;
  for (CommitId culprit : culprits) {
    bisect_testing::RoundSimResult r = bisect_testing::SimulateRounds(
        bisect_testing::GraphOf(dag),
        [&](CommitId c) { return static_cast<bool>(anc[c][culprit]); }, k, planner, arrival);
    if (r.answer != std::vector<CommitId>{culprit}) {
      std::fprintf(stderr, "rounds_sim: wrong answer for culprit %u\n", culprit);
      std::exit(1);
    }
    s.mean += r.rounds;
    s.worst = std::max(s.worst, r.rounds);
  }
  s.mean /= static_cast<double>(culprits.size());
  return s;
}

int Main(int argc, char** argv) {
  const size_t commits = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 10000;
  const size_t num_culprits = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 60;
  const uint64_t seed = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 1;
  if (commits < 64 || num_culprits == 0) {
    std::fprintf(stderr, "usage: rounds_sim [COMMITS>=64] [CULPRITS>=1] [SEED]\n");
    return 2;
  }
  std::mt19937_64 rng(seed);
  struct History {
    std::string name;
    Dag dag;
  };
  std::vector<History> histories;
  histories.push_back({"linear", bisect_testing::LinearHistory(static_cast<uint32_t>(commits))});
  histories.push_back({"merge-heavy", bisect_testing::RandomHistory(rng, commits)});
  histories.push_back({"kernel-shaped", bisect_testing::KernelShapedHistory(commits, seed)});
  std::printf("mean (worst) rounds over %zu culprits; seed %llu\n\n", num_culprits,
              static_cast<unsigned long long>(seed));
  std::printf(
      "| history | N | k | limit | tree, together | k-section, together | tree, one by one | "
      "k-section, one by one |\n|---|---|---|---|---|---|---|---|\n");
  for (const History& h : histories) {
    const std::vector<std::vector<bool>> anc = bisect_testing::AncestorSets(h.dag);
    Frontier f(bisect_testing::GraphOf(h.dag));
    const std::vector<CommitId> range = f.Candidates();
    std::vector<CommitId> culprits;
    for (size_t i = 0; i < num_culprits; ++i) {
      culprits.push_back(range[std::uniform_int_distribution<size_t>(0, range.size() - 1)(rng)]);
    }
    for (size_t k : {1, 2, 4, 8, 16}) {
      std::printf("| %s | %zu | %zu | %d |", h.name.c_str(), range.size(), k,
                  Limit(range.size(), k));
      for (Arrival arrival : {Arrival::kTogether, Arrival::kOneByOne}) {
        for (PlannerKind planner : {PlannerKind::kDecisionTree, PlannerKind::kKSection}) {
          const Stats s = Run(h.dag, anc, culprits, k, planner, arrival);
          std::printf(" %.2f (%d) |", s.mean, s.worst);
          std::fflush(stdout);
        }
      }
      std::printf("\n");
    }
  }
  return 0;
}

}  // namespace
}  // namespace farm

int main(int argc, char** argv) { return farm::Main(argc, argv); }
