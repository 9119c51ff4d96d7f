#include "coordinator/flaky/ancestor_index.h"

#include <algorithm>
#include <utility>

namespace farm {
namespace {

// The paint walk of git's merge-base, as in coordinator/frontier/weights.cc: commits reached from
// the merge's first parent are painted A, from its other parents B, and popped in decreasing id.
// Ids are topological, so when a commit is popped every commit above it that can reach it has
// been popped already and its paint is final. A commit popped with B alone is in the separation.
// The walk ends when no B-only commit is queued: anything below that is reachable from B only
// through A-painted commits is reachable from A too. Every ancestor of a candidate is a
// candidate, so no filtering is needed.
class PaintWalk {
 public:
  explicit PaintWalk(const CommitGraph& graph)
      : graph_(graph), stamp_(graph.size(), 0), paint_(graph.size(), 0) {}

  template <typename Fn>
  void Separation(CommitId merge, Fn fn) {
    if (++generation_ == 0) {
      std::fill(stamp_.begin(), stamp_.end(), 0);
      generation_ = 1;
    }
    heap_.clear();
    b_only_ = 0;
    const absl::Span<const CommitId> parents = graph_.parents(merge);
    const CommitId first = parents[0];
    Push(first, kA);
    for (CommitId p : parents) {
      if (p != first) Push(p, kB);
    }
    while (b_only_ > 0) {
      std::pop_heap(heap_.begin(), heap_.end());
      const CommitId x = heap_.back();
      heap_.pop_back();
      const uint8_t paint = paint_[x];
      if (paint == kB) {
        --b_only_;
        fn(x);
      }
      for (CommitId p : graph_.parents(x)) Push(p, paint);
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
  std::vector<uint32_t> stamp_;
  std::vector<uint8_t> paint_;
  std::vector<CommitId> heap_;  // max-heap of ids
  uint32_t generation_ = 0;
  size_t b_only_ = 0;  // queued commits painted B and not A
};

}  // namespace

AncestorIndex::AncestorIndex(std::shared_ptr<const CommitGraph> graph)
    : AncestorIndex(graph, DefaultStoredBudget(graph->size())) {}

AncestorIndex::AncestorIndex(std::shared_ptr<const CommitGraph> graph, size_t stored_budget)
    : graph_(std::move(graph)) {
  const size_t n = graph_->size();
  candidate_.assign(n, 0);
  sep_begin_.assign(n, 0);
  sep_end_.assign(n, 0);
  if (n == 0) return;
  // The candidates: ancestors-or-self of bad, marked top-down (ids are topological).
  candidate_[graph_->bad()] = 1;
  for (CommitId id = graph_->bad() + 1; id-- > 0;) {
    if (!candidate_[id]) continue;
    ++num_candidates_;
    for (CommitId p : graph_->parents(id)) candidate_[p] = 1;
  }
  PaintWalk walk(*graph_);
  std::vector<CommitId> scratch;
  for (CommitId id = 0; id < n; ++id) {
    sep_begin_[id] = sep_end_[id] = static_cast<uint32_t>(separated_.size());
    if (!candidate_[id] || graph_->parents(id).size() < 2) continue;
    scratch.clear();
    walk.Separation(id, [&](CommitId c) { scratch.push_back(c); });
    if (separated_.size() + scratch.size() > stored_budget) {
      sep_begin_[id] = kUnstored;
      ++unstored_;
      continue;
    }
    separated_.insert(separated_.end(), scratch.begin(), scratch.end());
    sep_end_[id] = static_cast<uint32_t>(separated_.size());
  }
}

void AncestorIndex::Sum(absl::Span<const double> w, std::vector<double>& out) const {
  const size_t n = graph_->size();
  out.assign(n, 0.0);
  std::unique_ptr<PaintWalk> walk;
  for (CommitId x = 0; x < n; ++x) {
    if (!candidate_[x]) continue;
    const absl::Span<const CommitId> parents = graph_->parents(x);
    double v = w[x];
    if (!parents.empty()) v += out[parents[0]];
    if (parents.size() >= 2) {
      if (sep_begin_[x] == kUnstored) {
        if (walk == nullptr) walk = std::make_unique<PaintWalk>(*graph_);
        walk->Separation(x, [&](CommitId c) { v += w[c]; });
      } else {
        for (uint32_t i = sep_begin_[x]; i < sep_end_[x]; ++i) v += w[separated_[i]];
      }
    }
    out[x] = v;
  }
}

void AncestorIndex::SumByCell(absl::Span<const double> w, absl::Span<const uint32_t> cell,
                              size_t num_cells, std::vector<double>& out) const {
  if (num_cells == 1) {
    Sum(w, out);
    return;
  }
  const size_t n = graph_->size();
  out.assign(n * num_cells, 0.0);
  std::unique_ptr<PaintWalk> walk;
  for (CommitId x = 0; x < n; ++x) {
    if (!candidate_[x]) continue;
    const absl::Span<const CommitId> parents = graph_->parents(x);
    double* row = out.data() + size_t{x} * num_cells;
    if (!parents.empty()) {
      const double* from = out.data() + size_t{parents[0]} * num_cells;
      std::copy(from, from + num_cells, row);
    }
    row[cell[x]] += w[x];
    if (parents.size() >= 2) {
      if (sep_begin_[x] == kUnstored) {
        if (walk == nullptr) walk = std::make_unique<PaintWalk>(*graph_);
        walk->Separation(x, [&](CommitId c) { row[cell[c]] += w[c]; });
      } else {
        for (uint32_t i = sep_begin_[x]; i < sep_end_[x]; ++i) {
          const CommitId c = separated_[i];
          row[cell[c]] += w[c];
        }
      }
    }
  }
}

}  // namespace farm
