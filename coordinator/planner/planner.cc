#include "coordinator/planner/planner.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <queue>
#include <utility>

#include "absl/container/flat_hash_set.h"

namespace farm {
namespace {

// A state of the speculation tree, materialised only when it is expanded: its parent's state
// plus one hypothetical verdict. Most leaves are never expanded, so they cost nothing.
//
// Under a uniform prior over which candidate is the first bad commit, the probability of reaching
// a state is (its number of candidates) / (the root's): "m bad" leaves the w(m) candidates m
// reaches, "m good" the other N - w(m), and the products telescope. So nodes are ranked by that
// integer, exactly, with ties in insertion order (breadth first).
struct Node {
  size_t candidates;  // num_candidates() of the state, i.e. its probability times the root's
  uint64_t sequence;  // insertion order, for deterministic ties
  int depth;
  std::shared_ptr<const Frontier> parent;  // null for the root
  CommitId tested;
  Verdict verdict;
};

struct LessLikely {
  bool operator()(const Node& a, const Node& b) const {
    if (a.candidates != b.candidates) return a.candidates < b.candidates;
    return a.sequence > b.sequence;
  }
};

}  // namespace

Plan PlanNext(const Frontier& frontier, const PlanRequest& req) {
  Plan plan;
  absl::flat_hash_set<CommitId> taken;
  for (CommitId c : req.in_flight) {
    if (!taken.insert(c).second) continue;
    if (!frontier.IsCandidate(c) || frontier.IsSkipped(c) || c == frontier.bad()) {
      plan.cancel.push_back(c);
    }
  }
  if (req.free_slots == 0 || frontier.Done()) return plan;

  std::priority_queue<Node, std::vector<Node>, LessLikely> queue;
  uint64_t sequence = 0;
  queue.push(Node{frontier.num_candidates(), sequence++, 0, nullptr, 0, Verdict::kSkip});
  std::shared_ptr<const Frontier> root;  // a copy of `frontier`, made once if the tree grows
  int expanded = 0;
  while (!queue.empty() && expanded < kPlanNodeBudget) {
    Node node = queue.top();
    queue.pop();
    ++expanded;
    std::shared_ptr<Frontier> owned;
    const Frontier* state = &frontier;
    if (node.parent != nullptr) {
      owned = std::make_shared<Frontier>(*node.parent);
      owned->Apply(node.tested, node.verdict);
      state = owned.get();
    }
    if (state->Done()) continue;
    const CommitId midpoint = *state->BestMidpoint();
    if (taken.insert(midpoint).second) {
      plan.start.push_back(midpoint);
      if (plan.start.size() >= req.free_slots) break;
    }
    if (node.depth >= kPlanMaxDepth) continue;

    std::shared_ptr<const Frontier> shared = owned;
    if (shared == nullptr) {
      if (root == nullptr) root = std::make_shared<const Frontier>(frontier);
      shared = root;
    }
    // The midpoint is bad iff the culprit is one of the w candidates it reaches.
    const size_t w = state->Weight(midpoint);
    queue.push(Node{w, sequence++, node.depth + 1, shared, midpoint, Verdict::kBad});
    queue.push(Node{state->num_candidates() - w, sequence++, node.depth + 1, shared, midpoint,
                    Verdict::kGood});
  }
  return plan;
}

int EstimateRoundsLeft(const Frontier& frontier, size_t k) {
  if (frontier.Done()) return 0;
  // Clamped so that reach * split cannot overflow.
  const uint64_t split = static_cast<uint64_t>(std::clamp<size_t>(k, 1, size_t{1} << 30)) + 1;
  const uint64_t target = static_cast<uint64_t>(frontier.num_testable()) + 1;
  int rounds = 0;
  for (uint64_t reach = 1; reach < target; reach *= split) ++rounds;
  return rounds;
}

}  // namespace farm
