// AncestorIndex: sums over every commit's ancestry in one pass, for the flaky-test engine.
//
// The Bayesian engine needs, for every candidate x, the posterior mass of the candidates that are
// ancestors-or-self of x (the probability that a test at x is truly bad). On a linear history that
// is a prefix sum. On a DAG a merge reaches some commits through several parents, which must be
// counted once: for each merge m with first parent p, the "separation" S(m) (the commits reachable
// from m's other parents but not from p) is found once, so that
//   mass(m) = mass(p) + w(m) + sum of w over S(m)
// and one pass in id order gives every mass. Internal to the flaky engine; exposed for tests.
#ifndef FARM_COORDINATOR_FLAKY_ANCESTOR_INDEX_H_
#define FARM_COORDINATOR_FLAKY_ANCESTOR_INDEX_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/types/span.h"
#include "coordinator/graph/commit_graph.h"

namespace farm {

// The candidates of a range (the ancestors-or-self of graph->bad()) and the separations of their
// merges.
//
// Building walks, for each merge, the part of the graph between the merge and the point where
// its parents' ancestries meet (as git's merge-base does): small for topic branches, up to the
// whole range for merges of long-lived branches, so O(size() x merges) in the worst case.
// Separations are stored until `stored_budget` entries in total (4 bytes each); the separations of
// the merges beyond it are recomputed by the same walk at every Sum.
//
// Thread safety: immutable after construction; all methods may be called concurrently.
class AncestorIndex {
 public:
  // The default budget of stored separation entries: 16 per commit.
  static size_t DefaultStoredBudget(size_t n) { return 16 * n + 4096; }

  // `graph` must be non-null and non-empty.
  explicit AncestorIndex(std::shared_ptr<const CommitGraph> graph);
  AncestorIndex(std::shared_ptr<const CommitGraph> graph, size_t stored_budget);

  const CommitGraph& graph() const { return *graph_; }

  // True if `id` is an ancestor-or-self of the bad commit (false for ids out of range).
  bool is_candidate(CommitId id) const { return id < candidate_.size() && candidate_[id] != 0; }
  size_t num_candidates() const { return num_candidates_; }

  // For every candidate x: out[x] = the sum of w[c] over the candidates c that are
  // ancestors-or-self of x. out is resized to size(); entries of non-candidates are 0.
  // `w` has size() entries (those of non-candidates are ignored).
  // Cost: O(size() + parent links + stored separations + walks of the unstored ones).
  void Sum(absl::Span<const double> w, std::vector<double>& out) const;

  // As Sum, split by cell: each candidate c belongs to cell[c] < num_cells, and
  // out[x * num_cells + j] is the sum of w[c] over the candidate ancestors-or-self c of x in
  // cell j. out is resized to size() * num_cells. Cost: as Sum, times num_cells.
  void SumByCell(absl::Span<const double> w, absl::Span<const uint32_t> cell, size_t num_cells,
                 std::vector<double>& out) const;

  // Calls fn(c) once for every candidate c that is an ancestor-or-self of `x` (x may be any
  // commit of the graph, candidate or not; nothing for ids out of range). Walks the ancestry:
  // O(number of ancestors + their parent links). `visited` is scratch space, resized to size()
  // and left all zero.
  template <typename Fn>
  void ForEachAncestor(CommitId x, std::vector<uint8_t>& visited, Fn fn) const;

  // The total number of stored separation entries, and the number of merges whose separation is
  // recomputed at every Sum (for tests and statistics).
  size_t stored_entries() const { return separated_.size(); }
  size_t unstored_merges() const { return unstored_; }

 private:
  static constexpr uint32_t kUnstored = UINT32_MAX;

  std::shared_ptr<const CommitGraph> graph_;
  std::vector<uint8_t> candidate_;
  size_t num_candidates_ = 0;
  // For candidate merges m: S(m) is separated_[sep_begin_[m], sep_end_[m]), or sep_begin_[m] is
  // kUnstored. Empty ranges for everything else.
  std::vector<uint32_t> sep_begin_;
  std::vector<uint32_t> sep_end_;
  std::vector<CommitId> separated_;
  size_t unstored_ = 0;
};

template <typename Fn>
void AncestorIndex::ForEachAncestor(CommitId x, std::vector<uint8_t>& visited, Fn fn) const {
  if (x >= graph_->size()) return;
  visited.resize(graph_->size(), 0);
  std::vector<CommitId> stack{x};
  std::vector<CommitId> seen{x};
  visited[x] = 1;
  while (!stack.empty()) {
    const CommitId id = stack.back();
    stack.pop_back();
    if (candidate_[id]) fn(id);
    for (CommitId p : graph_->parents(id)) {
      if (!visited[p]) {
        visited[p] = 1;
        seen.push_back(p);
        stack.push_back(p);
      }
    }
  }
  for (CommitId id : seen) visited[id] = 0;
}

}  // namespace farm

#endif  // FARM_COORDINATOR_FLAKY_ANCESTOR_INDEX_H_
