// The paint walk of git's merge-base, shared by the frontier's weights
// (coordinator/frontier/weights.cc) and the flaky engine's ancestor index
// (coordinator/flaky/ancestor_index.cc).
//
// For a merge and one of its parents ("first"): commits reached from first are painted A, those
// reached from the merge's other parents B, and they are popped in decreasing id. Ids are
// topological, so when a commit is popped every commit above it that can reach it has been popped
// already and its paint is final. A commit popped with B alone is in the separation: reachable
// from the other parents, not from first. The walk ends when no B-only commit is queued: anything
// below that is reachable from B only through A-painted commits is reachable from A too. Its cost
// is the part of the graph between the merge and where its branches meet.
#ifndef FARM_COORDINATOR_GRAPH_SEPARATION_WALK_H_
#define FARM_COORDINATOR_GRAPH_SEPARATION_WALK_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "coordinator/graph/commit_graph.h"

namespace farm {

class SeparationWalk {
 public:
  explicit SeparationWalk(const CommitGraph& graph) : graph_(graph) {}

  // Calls fn(x) for every commit x in the separation of `merge` from its parent `first`, walking
  // only commits for which keep(x) holds (first itself is always walked). Returns false, having
  // stopped early, when more than `budget` commits were popped.
  // Cost: O(commits walked * log); memory: two arrays of graph.size(), made at the first call.
  template <typename Keep, typename Fn>
  bool Run(CommitId merge, CommitId first, Keep keep, Fn fn,
           size_t budget = std::numeric_limits<size_t>::max()) {
    if (stamp_.empty()) {
      stamp_.assign(graph_.size(), 0);
      paint_.assign(graph_.size(), 0);
    }
    if (++generation_ == 0) {  // wrapped: restart the stamps
      std::fill(stamp_.begin(), stamp_.end(), 0);
      generation_ = 1;
    }
    heap_.clear();
    b_only_ = 0;
    Push(first, kA);
    for (CommitId p : graph_.parents(merge)) {
      if (p != first && keep(p)) Push(p, kB);
    }
    size_t steps = 0;
    while (b_only_ > 0) {
      if (++steps > budget) return false;
      std::pop_heap(heap_.begin(), heap_.end());
      const CommitId x = heap_.back();
      heap_.pop_back();
      const uint8_t paint = paint_[x];
      if (paint == kB) {
        --b_only_;
        fn(x);
      }
      for (CommitId p : graph_.parents(x)) {
        if (keep(p)) Push(p, paint);
      }
    }
    return true;
  }

 private:
  static constexpr uint8_t kA = 1;
  static constexpr uint8_t kB = 2;

  void Push(CommitId id, uint8_t paint) {
    if (stamp_[id] != generation_) {
      stamp_[id] = generation_;
      paint_[id] = paint;
      heap_.push_back(id);
      std::push_heap(heap_.begin(), heap_.end());
      if (paint == kB) ++b_only_;
      return;
    }
    const uint8_t old = paint_[id];
    const uint8_t now = old | paint;
    if (old == kB && now != kB) --b_only_;
    paint_[id] = now;
  }

  const CommitGraph& graph_;
  std::vector<uint32_t> stamp_;
  std::vector<uint8_t> paint_;
  std::vector<CommitId> heap_;  // max-heap of ids
  uint32_t generation_ = 0;
  size_t b_only_ = 0;  // queued commits painted B and not A
};

}  // namespace farm

#endif  // FARM_COORDINATOR_GRAPH_SEPARATION_WALK_H_
