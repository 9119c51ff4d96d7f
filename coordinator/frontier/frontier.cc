#include "coordinator/frontier/frontier.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "coordinator/frontier/weights.h"

namespace farm {

Frontier::Frontier(std::shared_ptr<const CommitGraph> graph) : graph_(std::move(graph)) {
  const size_t n = graph_->size();
  flags_.assign(n, kCandidateBit);
  num_candidates_ = n;
  if (n == 0) return;
  bad_ = graph_->bad();
  // A loaded range is exactly the ancestry of bad; a hand-built graph may hold more.
  KeepAncestorsOf(bad_);
}

bool Frontier::IsCandidate(CommitId id) const {
  return id < flags_.size() && (flags_[id] & kCandidateBit) != 0;
}

bool Frontier::IsSkipped(CommitId id) const {
  return id < flags_.size() &&
         (flags_[id] & (kCandidateBit | kSkippedBit)) == (kCandidateBit | kSkippedBit);
}

size_t Frontier::num_testable() const {
  // The bad commit is a candidate whenever there is one, and is never skipped.
  return num_candidates_ == 0 ? 0 : num_candidates_ - num_skipped_ - 1;
}

bool Frontier::Apply(CommitId id, Verdict v) {
  if (!IsCandidate(id) || id == bad_) return false;
  switch (v) {
    case Verdict::kSkip:
      if (flags_[id] & kSkippedBit) return false;
      flags_[id] |= kSkippedBit;
      ++num_skipped_;
      // The candidate set is unchanged, and so are the weights.
      return true;
    case Verdict::kGood:
      RemoveAncestorsOf(id);
      weights_.reset();
      return true;
    case Verdict::kBad:
      KeepAncestorsOf(id);
      if (flags_[id] & kSkippedBit) {
        flags_[id] &= ~kSkippedBit;
        --num_skipped_;
      }
      bad_ = id;
      // Every remaining candidate is an ancestor of id, and so are all candidates it reaches:
      // the weights of the survivors are unchanged.
      return true;
  }
  return false;
}

void Frontier::RemoveCandidate(CommitId id) {
  if (flags_[id] & kSkippedBit) --num_skipped_;
  flags_[id] &= ~(kCandidateBit | kSkippedBit);
  --num_candidates_;
}

void Frontier::RemoveAncestorsOf(CommitId id) {
  std::vector<CommitId> stack{id};
  RemoveCandidate(id);
  while (!stack.empty()) {
    CommitId x = stack.back();
    stack.pop_back();
    for (CommitId p : graph_->parents(x)) {
      if (flags_[p] & kCandidateBit) {
        RemoveCandidate(p);
        stack.push_back(p);
      }
    }
  }
}

void Frontier::KeepAncestorsOf(CommitId id) {
  std::vector<CommitId> stack{id};
  flags_[id] |= kMarkBit;
  while (!stack.empty()) {
    CommitId x = stack.back();
    stack.pop_back();
    for (CommitId p : graph_->parents(x)) {
      if ((flags_[p] & (kCandidateBit | kMarkBit)) == kCandidateBit) {
        flags_[p] |= kMarkBit;
        stack.push_back(p);
      }
    }
  }
  // All candidates are ancestors-or-self of the old bad, so none is above it.
  for (CommitId x = 0; x <= bad_; ++x) {
    if (flags_[x] & kMarkBit) {
      flags_[x] &= ~kMarkBit;
    } else if (flags_[x] & kCandidateBit) {
      RemoveCandidate(x);
    }
  }
}

void Frontier::EnsureWeights() const {
  if (weights_ != nullptr) return;
  const CommitId limit = flags_.empty() ? 0 : bad_ + 1;  // candidates are all <= bad_
  auto weights = std::make_shared<std::vector<uint32_t>>();
  ComputeCandidateWeights(*graph_, flags_, kCandidateBit, limit,
                          DefaultMergeWalkBudget(graph_->size()), *weights);
  weights_ = std::move(weights);
}

uint32_t Frontier::Weight(CommitId id) const {
  if (!IsCandidate(id)) return 0;
  EnsureWeights();
  return (*weights_)[id];
}

std::optional<CommitId> Frontier::BestMidpoint() const {
  if (Done()) return std::nullopt;
  EnsureWeights();
  const uint64_t n = num_candidates_;
  const std::vector<uint32_t>& weights = *weights_;
  std::optional<CommitId> best;
  uint64_t best_distance = 0;
  for (CommitId id = 0; id < bad_; ++id) {
    if ((flags_[id] & (kCandidateBit | kSkippedBit)) != kCandidateBit) continue;
    const uint64_t w = weights[id];
    const uint64_t distance = std::min(w, n - w);
    if (!best || distance > best_distance ||
        (distance == best_distance &&
         std::memcmp(graph_->oid(id).id, graph_->oid(*best).id, GIT_OID_RAWSZ) < 0)) {
      best = id;
      best_distance = distance;
    }
  }
  return best;
}

std::vector<CommitId> Frontier::Candidates() const {
  std::vector<CommitId> out;
  out.reserve(num_candidates_);
  for (CommitId id = 0; id < flags_.size(); ++id) {
    if (flags_[id] & kCandidateBit) out.push_back(id);
  }
  return out;
}

}  // namespace farm
