#include "coordinator/frontier/weights.h"

#include <algorithm>
#include <optional>

namespace farm {
namespace {

// Computing w(merge) is the only expensive part of the weights: the candidates reachable from a
// merge through several parents must be counted once. Two exact methods are combined:
//
//  1. A paint walk, as in git's merge-base, counting the candidates reachable from the merge's
//     other parents but not from its first candidate parent, so that
//     w(merge) = w(first) + 1 + that count. Commits reached from the first parent are painted A,
//     from the others B, and popped in decreasing id. Ids are topological, so when a commit is
//     popped every commit above it that can reach it has already been popped and its paint is
//     final. The walk stops as soon as no B-only commit is queued: anything further down that is
//     reachable from B only through A-painted commits is reachable from A too. Its cost is the
//     part of the graph between the merge and where its branches meet: small for ordinary topic
//     branches, but up to the whole range for long-lived ones.
//  2. A bit-parallel count of the whole candidate ancestry of 64 merges at a time: one sweep down
//     the ids ORs 64-bit masks into parents and adds them to bit-sliced counters, O(size()) per
//     64 merges.
// Each merge first tries (1) with a budget of about the per-merge cost of (2); merges that
// exceed it are left to (2). The worst case is thus O(size() * merges / 64) word operations.
//
// Only candidate parents are followed: the candidate ancestors of a candidate are exactly the
// candidates reachable through candidates (a commit on a path between two candidates is an
// ancestor of bad and a descendant of a non-good commit, so it is a candidate too). For the
// same reason a candidate with a single candidate parent p has w = w(p) + 1.
class MergeCounter {
 public:
  MergeCounter(const CommitGraph& graph, const std::vector<uint8_t>& flags, uint8_t candidate_bit,
               size_t budget)
      : graph_(graph), flags_(flags), candidate_bit_(candidate_bit), budget_(budget) {}

  // Method (1): the number of candidates reachable from the other candidate parents of `merge`
  // and not from `first`, or nullopt if that takes more than the budget.
  std::optional<uint32_t> Separation(CommitId merge, CommitId first) {
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
      if (p != first && (flags_[p] & candidate_bit_)) Push(p, kB);
    }
    uint32_t count = 0;
    size_t steps = 0;
    while (b_only_ > 0) {
      if (++steps > budget_) return std::nullopt;
      std::pop_heap(heap_.begin(), heap_.end());
      CommitId x = heap_.back();
      heap_.pop_back();
      const uint8_t paint = paint_[x];
      if (paint == kB) {
        --b_only_;
        ++count;
      }
      for (CommitId p : graph_.parents(x)) {
        if (flags_[p] & candidate_bit_) Push(p, paint);
      }
    }
    return count;
  }

  // Method (2): for each of `merges` (ascending ids), the number of candidates that are its
  // ancestors-or-self, stored into out[merge].
  void CountAncestries(const std::vector<CommitId>& merges, std::vector<uint32_t>& out) {
    if (merges.empty()) return;
    std::vector<uint64_t> mask(graph_.size(), 0);
    for (size_t begin = 0; begin < merges.size(); begin += 64) {
      const size_t end = std::min(merges.size(), begin + 64);
      for (size_t j = begin; j < end; ++j) mask[merges[j]] |= uint64_t{1} << (j - begin);
      // planes[k] holds bit k of each of the 64 counters.
      uint64_t planes[33] = {};
      for (int64_t x = merges[end - 1]; x >= 0; --x) {
        uint64_t m = mask[x];
        if (m == 0) continue;
        mask[x] = 0;
        for (uint64_t carry = m, *plane = planes; carry != 0; ++plane) {
          const uint64_t next = *plane & carry;
          *plane ^= carry;
          carry = next;
        }
        for (CommitId p : graph_.parents(static_cast<CommitId>(x))) {
          if (flags_[p] & candidate_bit_) mask[p] |= m;
        }
      }
      for (size_t j = begin; j < end; ++j) {
        uint32_t total = 0;
        for (int k = 0; k < 33; ++k) {
          total |= static_cast<uint32_t>((planes[k] >> (j - begin)) & 1) << k;
        }
        out[merges[j]] = total;
      }
    }
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
  const std::vector<uint8_t>& flags_;
  const uint8_t candidate_bit_;
  const size_t budget_;
  std::vector<uint32_t> stamp_;
  std::vector<uint8_t> paint_;
  std::vector<CommitId> heap_;  // max-heap of ids
  uint32_t generation_ = 0;
  size_t b_only_ = 0;  // queued commits painted B and not A
};

}  // namespace

void ComputeCandidateWeights(const CommitGraph& graph, const std::vector<uint8_t>& flags,
                             uint8_t candidate_bit, CommitId limit, size_t merge_walk_budget,
                             std::vector<uint32_t>& weights) {
  weights.assign(graph.size(), 0);
  constexpr CommitId kNone = UINT32_MAX;
  std::vector<CommitId> full;  // merges whose whole ancestry is counted by method (2)
  std::vector<uint8_t> is_merge(limit, 0);
  MergeCounter counter(graph, flags, candidate_bit, merge_walk_budget);
  auto first_candidate_parent = [&](CommitId id, int* in_set) {
    CommitId first = kNone;
    *in_set = 0;
    for (CommitId p : graph.parents(id)) {
      if (flags[p] & candidate_bit) {
        if (*in_set == 0) first = p;
        ++*in_set;
      }
    }
    return first;
  };
  // Pass 1: merges. weights[merge] temporarily holds its separation count (is_merge 1) or, for
  // those left to method (2), its full weight (is_merge 2).
  for (CommitId id = 0; id < limit; ++id) {
    if (!(flags[id] & candidate_bit)) continue;
    int in_set;
    CommitId first = first_candidate_parent(id, &in_set);
    if (in_set < 2) continue;
    if (std::optional<uint32_t> separated = counter.Separation(id, first)) {
      is_merge[id] = 1;
      weights[id] = *separated;
    } else {
      is_merge[id] = 2;
      full.push_back(id);
    }
  }
  counter.CountAncestries(full, weights);
  // Pass 2: everything, parents before children.
  for (CommitId id = 0; id < limit; ++id) {
    if (!(flags[id] & candidate_bit) || is_merge[id] == 2) continue;
    int in_set;
    CommitId first = first_candidate_parent(id, &in_set);
    if (in_set == 0) {
      weights[id] = 1;
    } else if (in_set == 1) {
      weights[id] = weights[first] + 1;
    } else {
      weights[id] += weights[first] + 1;
    }
  }
}

}  // namespace farm
