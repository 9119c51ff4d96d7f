// Bisection weights: for each candidate, how many candidates are its ancestors-or-self.
// Internal to the frontier (Frontier::Weight is the public face); exposed for tests.
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

// Computes, into `weights` (resized to graph.size()), the weight of every candidate: the number
// of candidates among its ancestors-or-self. A commit is a candidate iff
// (flags[id] & candidate_bit) != 0; candidates must all be < limit, and the candidate set must be
// ancestor-closed within itself the way bisection keeps it (the ancestors of a candidate that are
// reachable from a candidate through non-candidates are not candidates). Entries of
// non-candidates are 0.
//
// `merge_walk_budget` picks the method for each merge (0: always the bit-parallel sweep,
// SIZE_MAX: always the paint walk); the result does not depend on it.
// Cost: O(limit + parent links) plus, per merge, min(its paint walk, budget) and for merges over
// budget 1/64 of a sweep of the ids below them.
void ComputeCandidateWeights(const CommitGraph& graph, const std::vector<uint8_t>& flags,
                             uint8_t candidate_bit, CommitId limit, size_t merge_walk_budget,
                             std::vector<uint32_t>& weights);

}  // namespace farm

#endif  // FARM_COORDINATOR_FRONTIER_WEIGHTS_H_
