// Planner: which commits to test next when several agents can test at once.
//
// Plain bisection tests one midpoint at a time. With k idle agents the planner speculates on the
// decision tree of future midpoints: the root is the current state and its midpoint m; after
// "m is bad" and "m is good" come two more states with their own midpoints, and so on. Nodes are
// expanded best-first by the probability of being reached (a uniform prior over which candidate
// is the first bad commit: P(m bad) = w(m) / N), and the midpoints of the most likely nodes are
// started now, so that whichever way the running tests go, the next midpoint is already being
// tested.
#ifndef FARM_COORDINATOR_PLANNER_PLANNER_H_
#define FARM_COORDINATOR_PLANNER_PLANNER_H_

#include <cstddef>
#include <vector>

#include "coordinator/frontier/frontier.h"
#include "coordinator/graph/commit_graph.h"

namespace farm {

// What is running, and how much room there is.
struct PlanRequest {
  std::vector<CommitId> in_flight;  // commits being tested right now
  size_t free_slots = 0;            // agents idle now
};

// What to do about it.
struct Plan {
  // Commits to start now, most useful first. Distinct, never in in_flight, never the bad commit
  // or a skipped one; at most free_slots of them (fewer when the tree runs out).
  std::vector<CommitId> start;
  // in_flight commits whose result can no longer matter: no longer candidates, skipped, or the
  // current bad commit. Each listed once, in in_flight order.
  std::vector<CommitId> cancel;
};

// The speculation tree is cut at this depth below the current state...
inline constexpr int kPlanMaxDepth = 6;
// ...and after this many states have been expanded, whichever comes first.
inline constexpr int kPlanNodeBudget = 256;

// Plans the next tests for `frontier`. A tree node whose midpoint is already in in_flight or
// already chosen is not chosen again, but its subtree is still explored. When the frontier is
// Done() nothing is started. Cost: one Frontier copy, verdict and midpoint per expanded node,
// i.e. O(size()) each; a "bad" node shares its parent's weights (they do not change), a "good"
// node recomputes them (about 5 ms at 40,000 candidates). k = 8 on 80,000 commits: ~13 ms.
// Thread safety: reads `frontier` (whose const methods may fill its cache), so callers hold
// the same lock they use for Frontier::Apply.
Plan PlanNext(const Frontier& frontier, const PlanRequest& req);

// Estimated test rounds left with k parallel agents (k = 0 counts as 1): the smallest r with
// (k + 1)^r >= num_testable() + 1, since each round of k well-placed tests splits the remaining
// possibilities into k + 1 parts. 0 when Done(). Skips can make the real number larger.
int EstimateRoundsLeft(const Frontier& frontier, size_t k);

}  // namespace farm

#endif  // FARM_COORDINATOR_PLANNER_PLANNER_H_
