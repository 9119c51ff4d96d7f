#include "coordinator/flaky/ancestor_index.h"

#include <algorithm>
#include <utility>

#include "coordinator/graph/separation_walk.h"

namespace farm {
namespace {

// Every ancestor of a candidate is a candidate, so the separation walk needs no filter.
constexpr auto kEvery = [](CommitId) { return true; };

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
  SeparationWalk walk(*graph_);
  std::vector<CommitId> scratch;
  for (CommitId id = 0; id < n; ++id) {
    sep_begin_[id] = sep_end_[id] = static_cast<uint32_t>(separated_.size());
    if (!candidate_[id] || graph_->parents(id).size() < 2) continue;
    scratch.clear();
    walk.Run(id, graph_->parents(id)[0], kEvery, [&](CommitId c) { scratch.push_back(c); });
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
  std::unique_ptr<SeparationWalk> walk;
  for (CommitId x = 0; x < n; ++x) {
    if (!candidate_[x]) continue;
    const absl::Span<const CommitId> parents = graph_->parents(x);
    double v = w[x];
    if (!parents.empty()) v += out[parents[0]];
    if (parents.size() >= 2) {
      if (sep_begin_[x] == kUnstored) {
        if (walk == nullptr) walk = std::make_unique<SeparationWalk>(*graph_);
        walk->Run(x, parents[0], kEvery, [&](CommitId c) { v += w[c]; });
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
  std::unique_ptr<SeparationWalk> walk;
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
        if (walk == nullptr) walk = std::make_unique<SeparationWalk>(*graph_);
        walk->Run(x, parents[0], kEvery, [&](CommitId c) { row[cell[c]] += w[c]; });
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
