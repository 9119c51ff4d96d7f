// Bisection weights: for each candidate, how many candidates are its ancestors-or-self.
// Internal to the frontier (Frontier::Weight is the public face); exposed for tests and benches.
#ifndef FARM_COORDINATOR_FRONTIER_WEIGHTS_H_
#define FARM_COORDINATOR_FRONTIER_WEIGHTS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "coordinator/graph/commit_graph.h"

namespace farm {

// The per-merge walk budget Frontier uses for a graph of n commits: merges whose paint walk
// would visit more commits than this are counted by the bit-parallel sweep instead.
inline size_t DefaultMergeWalkBudget(size_t n) { return 32 + n / 512; }

// How ComputeCandidateWeights counted the merges (for tests and benchmarks).
struct WeightStats {
  size_t merges = 0;            // candidates with two or more candidate parents
  size_t merges_by_chains = 0;  // counted exactly from the chain decomposition, O(1) each
  size_t merges_by_walks = 0;   // counted by a paint walk within the budget
  size_t merges_by_sweeps = 0;  // counted by the bit-parallel sweep
  int levels = 0;               // depth of the chain decomposition
  size_t labels = 0;            // (commit, level) labels it built
};

// Computes, into `weights` (resized to graph.size()), the weight of every candidate: the number
// of candidates among its ancestors-or-self. A commit is a candidate iff
// (flags[id] & candidate_bit) != 0; candidates must all be < limit, and the candidate set must be
// ancestor-closed within itself the way bisection keeps it (the ancestors of a candidate that are
// reachable from a candidate through non-candidates are not candidates). Entries of
// non-candidates are 0.
//
// Method: a hierarchical first-parent chain decomposition (see weights.cc) gives the weight of
// every merge exactly in O(1)-ish after O(candidates + parent links) work per level (all of them
// on kernel-shaped histories: ~9 ms CPU for 80,000 commits); the rare merges it cannot settle
// (more than 16 ways out of their branch, octopus leftovers, nesting deeper than 64 levels) are
// counted by a paint walk of at most `merge_walk_budget` steps, or failing that by a
// bit-parallel sweep (0: always the sweep, SIZE_MAX: always the walk). The result does not
// depend on the budget.
// `stats`, if non-null, receives how the merges were counted.
// Thread safety: pure function of its arguments.
void ComputeCandidateWeights(const CommitGraph& graph, const std::vector<uint8_t>& flags,
                             uint8_t candidate_bit, CommitId limit, size_t merge_walk_budget,
                             std::vector<uint32_t>& weights, WeightStats* stats = nullptr);

// The previous method, kept as a reference for tests and benchmarks: every merge by a paint walk
// within `merge_walk_budget`, the rest by the bit-parallel sweep. Same contract and result as
// ComputeCandidateWeights; cost O(limit + links) plus, per merge, min(its walk, budget) and for
// merges over budget 1/64 of a sweep of the ids below them.
void ComputeCandidateWeightsByWalks(const CommitGraph& graph, const std::vector<uint8_t>& flags,
                                    uint8_t candidate_bit, CommitId limit, size_t merge_walk_budget,
                                    std::vector<uint32_t>& weights);

}  // namespace farm

#endif  // FARM_COORDINATOR_FRONTIER_WEIGHTS_H_
