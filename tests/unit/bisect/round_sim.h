// A deterministic simulation of a bisection with k agents whose tests all take the same time,
// counting rounds (test times) instead of seconds: the model behind the planner tests and
// bench/rounds_sim.
#ifndef FARM_TESTS_UNIT_BISECT_ROUND_SIM_H_
#define FARM_TESTS_UNIT_BISECT_ROUND_SIM_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <vector>

#include "coordinator/graph/commit_graph.h"

namespace farm::bisect_testing {

enum class PlannerKind {
  kDecisionTree,  // PlanNext
  kKSection,      // PlanKSection
};

enum class Arrival {
  // Every round is planned with nothing running and all its verdicts are applied before the next.
  kTogether,
  // As the coordinator sees them: the verdicts of a round arrive one by one (in the order the
  // commits were started); each is applied, the running commits it made useless are cancelled,
  // and the free agents get new commits planned around what still runs. Those start at once and
  // finish with the next round.
  kOneByOne,
};

struct RoundSimResult {
  int rounds = 0;                // test times until nothing is left to test
  size_t tests = 0;              // verdicts applied or cancelled tests included: tests started
  std::vector<CommitId> answer;  // the Frontier's Candidates() at the end
  std::vector<size_t> left;      // num_candidates() at the end of each round
};

// Bisects `graph` (bad: graph->bad(), no skips) with `agents` agents, where commit c is bad iff
// is_bad(c) (monotone: a commit that has a bad ancestor is bad). Gives up after `max_rounds`.
RoundSimResult SimulateRounds(std::shared_ptr<const CommitGraph> graph,
                              const std::function<bool(CommitId)>& is_bad, size_t agents,
                              PlannerKind planner, Arrival arrival, int max_rounds = 1000);

}  // namespace farm::bisect_testing

#endif  // FARM_TESTS_UNIT_BISECT_ROUND_SIM_H_
