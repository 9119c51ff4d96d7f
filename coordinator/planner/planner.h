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

// Plans the next tests for `frontier` by k-section: the commits to start now are chosen so that,
// together with the in_flight commits that still matter, the k = in_flight + free_slots probes
// split the candidates into k + 1 parts of (as nearly as the history allows) equal weight, so
// that one round of k tests leaves about N / (k + 1) candidates whatever the culprit is.
//
// Method: a probe p with weight w splits the state into "p bad" (w candidates) and "p good"
// (N - w); given m probes to place in a state, the first is the p and the share a of the other
// m - 1 that go to its bad side minimising w^2 / (a + 1) + (N - w)^2 / (m - a) (the expected
// candidates left if each side is then split evenly), and the two sides are planned the same
// way, recursively, with their exact weights (a good side recomputes them). Running commits are
// placed first (the one nearest the state's middle splits it) and the free slots go to the sides
// where they reduce that cost most. So on a linear history with no running commits it starts
// the k commits at weights N/(k+1), 2N/(k+1), ...; with one slot it is git's midpoint
// (BestMidpoint, ties to the smallest object id). When a verdict arrives mid-round, calling it
// again with what is still running re-plans the rest around those commits.
//
// Same contract for start and cancel as PlanNext (distinct, never running, bad or skipped; at
// most free_slots, fewer only when fewer testable commits are left); `start` is ordered most
// balanced first (min(w, N - w) descending). Which commits are probed never changes the answer:
// the Frontier applies each verdict exactly as git would.
// Cost: two Frontier copies and one weight pass per probe placed or running, i.e.
// O((in_flight + free_slots) * size()). Thread safety: as PlanNext.
Plan PlanKSection(const Frontier& frontier, const PlanRequest& req);

// Estimated test rounds left with k parallel agents (k = 0 counts as 1): the smallest r with
// (k + 1)^r >= num_testable() + 1, since each round of k well-placed tests splits the remaining
// possibilities into k + 1 parts. 0 when Done(). Skips can make the real number larger.
int EstimateRoundsLeft(const Frontier& frontier, size_t k);

}  // namespace farm

#endif  // FARM_COORDINATOR_PLANNER_PLANNER_H_
