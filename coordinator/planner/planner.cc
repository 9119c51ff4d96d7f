#include "coordinator/planner/planner.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
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

// Sorts the in-flight commits (each once, into `taken`): those whose verdict can no longer
// matter into plan->cancel, the others into `running` (if given).
void SortInFlight(const Frontier& frontier, const PlanRequest& req,
                  absl::flat_hash_set<CommitId>& taken, Plan* plan,
                  std::vector<CommitId>* running) {
  for (CommitId c : req.in_flight) {
    if (!taken.insert(c).second) continue;
    if (!frontier.IsCandidate(c) || frontier.IsSkipped(c) || c == frontier.bad()) {
      plan->cancel.push_back(c);
    } else if (running != nullptr) {
      running->push_back(c);
    }
  }
}

}  // namespace

Plan PlanNext(const Frontier& frontier, const PlanRequest& req) {
  Plan plan;
  absl::flat_hash_set<CommitId> taken;
  SortInFlight(frontier, req, taken, &plan, nullptr);
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

namespace {

// Costs are compared as exact fractions: with N up to 2^32 and k up to 2^10 the products fit.
using Wide = unsigned __int128;

struct Fraction {
  Wide num;
  Wide den;
};

bool operator<(const Fraction& x, const Fraction& y) { return x.num * y.den < y.num * x.den; }

// The expected candidates left (times N) when a side of n candidates gets m probes that split
// it evenly: n^2 / (m + 1).
Fraction SideCost(uint64_t n, uint64_t m) { return Fraction{Wide{n} * n, Wide{m} + 1}; }

// What one more probe on a side of n candidates with m probes saves: n^2 / ((m + 1)(m + 2)).
Fraction SideGain(uint64_t n, uint64_t m) {
  return Fraction{Wide{n} * n, (Wide{m} + 1) * (Wide{m} + 2)};
}

Fraction Sum(const Fraction& x, const Fraction& y) {
  return Fraction{x.num * y.den + y.num * x.den, x.den * y.den};
}

bool OidLess(const Frontier& state, CommitId a, CommitId b) {
  return std::memcmp(state.graph().oid(a).id, state.graph().oid(b).id, GIT_OID_RAWSZ) < 0;
}

class SectionPlanner {
 public:
  SectionPlanner(absl::flat_hash_set<CommitId>& taken, std::vector<CommitId>& start)
      : taken_(taken), start_(start) {}

  // Places up to `budget` new probes in `state` around `fixed` (running commits that are
  // testable candidates of `state`); returns how many it placed (fewer only when `state` has no
  // more testable commits that are not taken).
  size_t Place(const Frontier& state, const std::vector<CommitId>& fixed, size_t budget) {
    if (budget == 0 || state.Done()) return 0;
    const uint64_t n = state.num_candidates();
    CommitId split = 0;
    size_t placed = 0;
    size_t bad_budget = 0;
    size_t good_budget = 0;
    std::optional<Frontier> bad_state;
    auto bad_side = [&]() -> const Frontier& {
      if (!bad_state) {
        bad_state.emplace(state);
        bad_state->Apply(split, Verdict::kBad);
      }
      return *bad_state;
    };
    std::vector<CommitId> fixed_bad, fixed_good;
    if (fixed.empty()) {
      size_t share = 0;
      if (!ChooseProbe(state, budget, &split, &share)) return 0;
      taken_.insert(split);
      start_.push_back(split);
      placed = 1;
      bad_budget = share;
      good_budget = budget - 1 - share;
      if (bad_budget + good_budget == 0) return placed;
    } else {
      // The running commit nearest the middle splits the state; the others fall on its sides.
      split = fixed[0];
      uint64_t best = UINT64_MAX;
      for (CommitId c : fixed) {
        const uint64_t w = state.Weight(c);
        const uint64_t off = 2 * w > n ? 2 * w - n : n - 2 * w;
        if (off < best || (off == best && OidLess(state, c, split))) {
          best = off;
          split = c;
        }
      }
      for (CommitId c : fixed) {
        if (c == split) continue;
        (bad_side().IsCandidate(c) ? fixed_bad : fixed_good).push_back(c);
      }
      // Each free probe goes where it saves most, within what each side can still take.
      const uint64_t w = state.Weight(split);
      const uint64_t room_bad = SaturatingSub(w - 1, fixed_bad.size());
      const uint64_t room_good = SaturatingSub(n - w - 1, fixed_good.size());
      for (size_t i = 0; i < budget; ++i) {
        const bool bad_ok = bad_budget < room_bad;
        const bool good_ok = good_budget < room_good;
        if (!bad_ok && !good_ok) break;
        if (bad_ok && (!good_ok || !(SideGain(w, fixed_bad.size() + bad_budget) <
                                     SideGain(n - w, fixed_good.size() + good_budget)))) {
          ++bad_budget;
        } else {
          ++good_budget;
        }
      }
    }
    size_t placed_bad = 0;
    const size_t bad_begin = start_.size();
    if (bad_budget > 0) {
      placed_bad = Place(bad_side(), fixed_bad, bad_budget);
    }
    good_budget += bad_budget - placed_bad;  // what the bad side could not take
    if (good_budget == 0) return placed + placed_bad;
    Frontier good_state(state);
    good_state.Apply(split, Verdict::kGood);
    const size_t placed_good = Place(good_state, fixed_good, good_budget);
    placed += placed_bad + placed_good;
    if (placed_good < good_budget && placed_bad == bad_budget) {
      // The good side is full: the bad side may still take what it was not offered.
      fixed_bad.insert(fixed_bad.end(), start_.begin() + bad_begin,
                       start_.begin() + bad_begin + placed_bad);
      placed += Place(bad_side(), fixed_bad, good_budget - placed_good);
    }
    return placed;
  }

 private:
  static uint64_t SaturatingSub(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

  // The probe of `state` and its share of the other budget - 1 probes that go to its bad side,
  // minimising SideCost(w, share) + SideCost(N - w, rest); ties to the smallest object id.
  // False if no testable commit is left.
  bool ChooseProbe(const Frontier& state, size_t budget, CommitId* probe, size_t* share) {
    const uint64_t n = state.num_candidates();
    const uint64_t m = budget;
    std::optional<Fraction> best;
    for (CommitId id = 0; id < state.bad(); ++id) {
      if (!state.IsCandidate(id) || state.IsSkipped(id) || taken_.contains(id)) continue;
      const uint64_t w = state.Weight(id);
      // The cost is convex in the share a, least near a + 1 = w (m + 1) / N.
      const uint64_t near = static_cast<uint64_t>(Wide{w} * (m + 1) / n);
      const uint64_t lo = std::min<uint64_t>(near > 0 ? near - 1 : 0, m - 1);
      for (uint64_t a = lo; a <= std::min<uint64_t>(lo + 1, m - 1); ++a) {
        const Fraction cost = Sum(SideCost(w, a), SideCost(n - w, m - 1 - a));
        if (!best || cost < *best ||
            (!(*best < cost) && *probe != id && OidLess(state, id, *probe))) {
          best = cost;
          *probe = id;
          *share = a;
        }
      }
    }
    return best.has_value();
  }

  absl::flat_hash_set<CommitId>& taken_;
  std::vector<CommitId>& start_;
};

}  // namespace

Plan PlanKSection(const Frontier& frontier, const PlanRequest& req) {
  Plan plan;
  absl::flat_hash_set<CommitId> taken;
  std::vector<CommitId> running;  // in flight and still worth their verdict
  SortInFlight(frontier, req, taken, &plan, &running);
  if (req.free_slots == 0 || frontier.Done()) return plan;
  SectionPlanner(taken, plan.start).Place(frontier, running, req.free_slots);
  // Most balanced first (git's midpoint when it is among them): a caller that can start only
  // some of them, or that shows them to a user, takes the most informative ones.
  const uint64_t n = frontier.num_candidates();
  auto balance = [&](CommitId id) {
    const uint64_t w = frontier.Weight(id);
    return std::min<uint64_t>(w, n - std::min<uint64_t>(w, n));
  };
  std::stable_sort(plan.start.begin(), plan.start.end(),
                   [&](CommitId a, CommitId b) { return balance(a) > balance(b); });
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
