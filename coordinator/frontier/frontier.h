// Frontier: the state of one bisection, with exactly `git bisect`'s semantics.
//
// The candidates are the commits that may still be the first bad commit:
//   ancestors-or-self(bad) minus ancestors-or-self(every good),
// within the range of the CommitGraph, where `bad` is the most recent bad commit. This is what
// git recomputes from refs/bisect/* at each step (`git rev-list bad --not good...`), kept here as
// a byte per commit and updated incrementally by each verdict.
#ifndef FARM_COORDINATOR_FRONTIER_FRONTIER_H_
#define FARM_COORDINATOR_FRONTIER_FRONTIER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "coordinator/graph/commit_graph.h"

namespace farm {

// The outcome of testing one commit (`git bisect good|bad|skip`).
enum class Verdict { kGood, kBad, kSkip };

// The bisection state over one CommitGraph.
//
// Copying is allowed and costs O(size()) bytes copied (the graph and the weight cache are
// shared, copy-on-write): the planner copies a Frontier and applies hypothetical verdicts to the
// copy.
//
// Thread safety: not thread-safe. Const methods may fill an internal weight cache, so even
// read-only use from several threads needs external synchronization. Distinct copies are
// independent.
class Frontier {
 public:
  // Starts with graph->bad() bad and its ancestors-or-self as candidates (for a loaded range:
  // every commit), none skipped. O(size()).
  // `graph` must be non-null; an empty graph gives a Frontier that is Done() with no candidates.
  explicit Frontier(std::shared_ptr<const CommitGraph> graph);

  Frontier(const Frontier&) = default;
  Frontier& operator=(const Frontier&) = default;
  Frontier(Frontier&&) = default;
  Frontier& operator=(Frontier&&) = default;

  // Applies a verdict for `id`; returns true if it changed the state.
  //  - kGood removes `id` and all its ancestors from the candidates.
  //  - kBad makes `id` the bad commit and keeps only the candidates that are its ancestors
  //    (itself included).
  //  - kSkip marks `id` untestable; it stays a candidate (it may be the first bad commit).
  // A good or bad verdict for a skipped candidate overrides the skip (a retry that succeeded).
  // Returns false, changing nothing, when the verdict is stale or redundant: `id` is not a
  // candidate (or not in the graph at all), `id` is already skipped (kSkip), or `id` is the
  // current bad commit (kBad and kSkip are redundant; kGood contradicts an earlier verdict and
  // is ignored so that a flaky test cannot empty the range). Never an error.
  bool Apply(CommitId id, Verdict v);

  // True if `id` may still be the first bad commit (the current bad commit included).
  bool IsCandidate(CommitId id) const;

  // True if `id` is a candidate that has been marked skipped.
  bool IsSkipped(CommitId id) const;

  // N, as git counts it: all candidates, including skipped ones and the bad commit.
  size_t num_candidates() const { return num_candidates_; }

  // Candidates that could still be tested: neither skipped nor the current bad commit.
  size_t num_testable() const;

  // The current bad commit (the last commit given kBad, initially graph().bad()).
  CommitId bad() const { return bad_; }

  // True when nothing is left to test: num_testable() == 0. Candidates() is then the answer.
  bool Done() const { return num_testable() == 0; }

  // The best commit to test next, as git bisect chooses it: among the non-skipped candidates
  // other than bad, the one maximising min(w, N - w), where w = Weight(id) and
  // N = num_candidates(). nullopt when Done().
  //
  // Ties go to the smallest object id. That is the order `git rev-list --bisect-all` prints,
  // and the commit `git bisect` picks whenever a skip has been recorded (unless its pick is
  // itself skipped: git then jumps pseudo-randomly away from it, we take the next best).
  // Without skips, git bisect stops at the first commit of its internal (date-ordered) list with
  // |2w - N| <= 1, which has the same min(w, N - w) as ours but may be another commit; for
  // N >= 2048 it also stops within N/1024 of halfway (bisect.c approx_halfway), so its pick can
  // be up to 0.1% of N worse than ours.
  //
  // O(N) after the weights are known. Computing them is O(N + parent links) per level of the
  // first-parent chain decomposition (see weights.h: a few levels for kernel-shaped history;
  // about 10 ms for 80,000 commits), with a bounded fallback of O(N * merges / 64) for merges it
  // cannot settle.
  std::optional<CommitId> BestMidpoint() const;

  // w for a candidate: the number of candidates that are ancestors-or-self of `id` (skipped ones
  // included). 0 for a non-candidate. Weights are computed for all candidates at once and cached;
  // kGood invalidates the cache, kBad and kSkip keep it valid (the weights of the candidates
  // that remain do not change), and copies share it until then.
  uint32_t Weight(CommitId id) const;

  // True if the weights are cached (the next Weight or BestMidpoint costs O(1) or O(N)).
  bool weights_cached() const { return weights_ != nullptr; }

  // All current candidates, ascending id. When Done() this is the answer: {bad()} (the first bad
  // commit) when no skipped candidate remains, otherwise the skipped candidates and bad(), git's
  // "The first bad commit could be any of:".
  std::vector<CommitId> Candidates() const;

  // The graph this state is over.
  const CommitGraph& graph() const { return *graph_; }

 private:
  static constexpr uint8_t kCandidateBit = 1;
  static constexpr uint8_t kSkippedBit = 2;
  static constexpr uint8_t kMarkBit = 4;  // scratch, always clear between calls

  void RemoveAncestorsOf(CommitId id);  // kGood
  void KeepAncestorsOf(CommitId id);    // kBad
  void RemoveCandidate(CommitId id);
  void EnsureWeights() const;

  std::shared_ptr<const CommitGraph> graph_;
  std::vector<uint8_t> flags_;  // by id: kCandidateBit | kSkippedBit
  CommitId bad_ = 0;
  size_t num_candidates_ = 0;
  size_t num_skipped_ = 0;  // skipped candidates (bad is never skipped)

  // Weight cache, by id (only entries of candidates are meaningful); null when not computed.
  // Immutable once built, so copies share it.
  mutable std::shared_ptr<const std::vector<uint32_t>> weights_;
};

}  // namespace farm

#endif  // FARM_COORDINATOR_FRONTIER_FRONTIER_H_
