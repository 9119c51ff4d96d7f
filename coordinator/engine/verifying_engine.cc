#include "coordinator/engine/verifying_engine.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "coordinator/engine/report_text.h"

namespace farm {

VerifyingEngine::VerifyingEngine(std::unique_ptr<BisectEngine> inner,
                                 std::shared_ptr<const CommitGraph> graph, int runs,
                                 std::unique_ptr<CulpritRepo> repo)
    : inner_(std::move(inner)),
      graph_(std::move(graph)),
      runs_(std::max(1, runs)),
      repo_(std::move(repo)) {
  if (inner_->Done()) StartVerification();  // a range whose answer is known before any run
}

CommitId VerifyingEngine::AddExtra(const git_oid& oid) {
  if (std::optional<CommitId> id = graph_->Find(oid)) return *id;
  for (size_t i = 0; i < extra_.size(); ++i) {
    if (git_oid_equal(&extra_[i], &oid)) return static_cast<CommitId>(graph_->size() + i);
  }
  extra_.push_back(oid);
  return static_cast<CommitId>(graph_->size() + extra_.size() - 1);
}

void VerifyingEngine::ObserveBuild(CommitId commit, const std::string& image_digest) {
  if (!image_digest.empty()) images_[commit] = image_digest;
}

std::optional<BisectEngine::RevertProbe> VerifyingEngine::RevertOf(CommitId commit) const {
  if (revert_id_ && *revert_id_ == commit) return revert_of_;
  return std::nullopt;
}

const git_oid& VerifyingEngine::Oid(CommitId id) const {
  return id < graph_->size() ? graph_->oid(id) : extra_[id - graph_->size()];
}

void VerifyingEngine::StartVerification() {
  EngineAnswer answer = inner_->Answer();
  phase_ = Phase::kDone;
  if (answer.state == v1::AMBIGUOUS) {
    std::vector<std::string> shas;
    for (CommitId id : answer.commits) shas.push_back(ShortSha(graph_->Hex(id)));
    result_.status = v1::INCONCLUSIVE;
    // A flaky search (it has a confidence) ends without one culprit below its confidence.
    result_.reason = absl::StrCat(
        inner_->Confidence() > 0 ? "no candidate reached the requested confidence"
                                 : "only skipped commits are left",
        "; the culprit is one of ", answer.commits.size(), ": ", absl::StrJoin(shas, " "));
    return;
  }
  if (answer.state != v1::FOUND || answer.commits.size() != 1) return;
  const CommitId culprit = answer.commits[0];
  targets_.push_back({"culprit", culprit, Verdict::kBad});
  if (!repo_) {
    absl::Span<const CommitId> parents = graph_->parents(culprit);
    if (!parents.empty()) targets_.push_back({"parent", parents[0], Verdict::kGood});
    revert_note_ = "no repository to make it in";
  } else if (absl::StatusOr<CulpritFacts> facts = repo_->Facts(graph_->oid(culprit)); !facts.ok()) {
    suspicious_.push_back(absl::StrCat("the culprit cannot be read: ", facts.status().message()));
  } else {
    if (facts->is_merge) suspicious_.push_back("the culprit is a merge");
    if (facts->same_tree_as_parent) {
      suspicious_.push_back(
          "the culprit's tree equals its parent's: an empty change cannot change the result");
    }
    if (facts->parent) targets_.push_back({"parent", AddExtra(*facts->parent), Verdict::kGood});
    absl::StatusOr<git_oid> revert =
        repo_->Revert(graph_->oid(culprit), graph_->oid(graph_->bad()));
    if (revert.ok()) {
      revert_id_ = AddExtra(*revert);
      revert_of_ = {graph_->oid(culprit), graph_->oid(graph_->bad())};
      targets_.push_back({"revert", *revert_id_, Verdict::kGood});
    } else {
      revert_note_ = std::string(revert.status().message());
    }
  }
  phase_ = Phase::kVerify;
}

bool VerifyingEngine::Observe(CommitId commit, Verdict verdict) {
  if (phase_ == Phase::kSearch) {
    const bool applied = inner_->Observe(commit, verdict);
    if (inner_->Done()) StartVerification();
    return applied;
  }
  if (phase_ != Phase::kVerify) return false;
  for (Target& t : targets_) {
    if (t.id != commit || t.done() >= runs_) continue;
    ++(verdict == Verdict::kGood ? t.good : verdict == Verdict::kBad ? t.bad : t.skip);
    bool all = true;
    for (const Target& u : targets_) all &= u.done() >= runs_;
    if (all) Finish();
    return true;
  }
  return false;  // a late verdict of the search
}

std::vector<CommitId> VerifyingEngine::Plan(size_t k, const std::vector<CommitId>& in_flight) {
  if (phase_ == Phase::kSearch) return inner_->Plan(k, in_flight);
  std::vector<CommitId> out;
  if (phase_ != Phase::kVerify) return out;
  absl::flat_hash_map<CommitId, int> busy;
  for (CommitId c : in_flight) ++busy[c];
  // Round-robin over the targets, so that k slots retest all of them at once.
  for (bool more = true; more && out.size() < k;) {
    more = false;
    for (const Target& t : targets_) {
      if (out.size() >= k) break;
      int& b = busy[t.id];
      if (t.done() + b >= runs_) continue;
      ++b;
      out.push_back(t.id);
      more = true;
    }
  }
  return out;
}

std::optional<CancelReason> VerifyingEngine::ShouldCancel(CommitId commit) const {
  if (phase_ == Phase::kSearch) return inner_->ShouldCancel(commit);
  for (const Target& t : targets_) {
    if (t.id == commit && phase_ == Phase::kVerify) return std::nullopt;
  }
  return CancelReason::kRuledOut;  // a speculative probe of the search
}

EngineProgress VerifyingEngine::Progress(size_t k) const {
  if (phase_ != Phase::kVerify) return inner_->Progress(k);
  EngineProgress p;
  p.candidates = 1;
  p.testable = 1;
  int left = 0;
  for (const Target& t : targets_) left += runs_ - t.done();
  p.rounds_left = static_cast<int>((left + std::max<size_t>(k, 1) - 1) / std::max<size_t>(k, 1));
  return p;
}

std::string VerifyingEngine::Runs() const {
  std::vector<std::string> parts;
  for (const Target& t : targets_) {
    const int as_expected = t.expected == Verdict::kBad ? t.bad : t.good;
    absl::StrAppend(&parts.emplace_back(), t.what,
                    t.expected == Verdict::kBad ? " failed " : " passed ", as_expected, "/",
                    t.done());
  }
  if (!revert_note_.empty()) parts.push_back(absl::StrCat("revert not tested: ", revert_note_));
  return absl::StrJoin(parts, ", ");
}

void VerifyingEngine::Finish() {
  phase_ = Phase::kDone;
  std::vector<std::string> why = suspicious_;
  for (const Target& t : targets_) {
    const int against = t.expected == Verdict::kBad ? t.good : t.bad;
    if (against > 0) {
      why.push_back(t.what == "culprit"
                        ? absl::StrCat("the culprit passed ", against, " of ", t.done(), " retests")
                    : t.what == "parent"
                        ? absl::StrCat("its parent failed ", against, " of ", t.done(), " retests")
                        : absl::StrCat("the bad commit with the culprit reverted "
                                       "still failed ",
                                       against, " of ", t.done(), " retests"));
    }
    if (t.skip > 0) {
      why.push_back(absl::StrCat("the ", t.what, " could not be tested (skip) ", t.skip, " of ",
                                 t.done(), " times"));
    }
  }
  // The culprit's build made the very image its parent's did: the change touches only files the
  // build does not use, so it cannot be what the test saw (syzbot marks such results unreliable).
  const Target* culprit = nullptr;
  const Target* parent = nullptr;
  for (const Target& t : targets_) {
    if (t.what == "culprit") culprit = &t;
    if (t.what == "parent") parent = &t;
  }
  if (culprit != nullptr && parent != nullptr) {
    auto c = images_.find(culprit->id);
    auto p = images_.find(parent->id);
    if (c != images_.end() && p != images_.end() && c->second == p->second) {
      why.push_back(
          absl::StrCat("the culprit's build makes the same image as its parent's (sha256 ",
                       c->second.substr(0, 12), "): it only touches files the build does not use"));
    }
  }
  result_.status = why.empty() ? v1::VERIFIED : v1::UNRELIABLE;
  result_.reason = why.empty() ? Runs() : absl::StrCat(absl::StrJoin(why, "; "), " (", Runs(), ")");
}

EngineVerification VerifyingEngine::Verification() const {
  if (phase_ == Phase::kSearch) return {v1::VERIFICATION_NONE, ""};
  if (phase_ == Phase::kDone) return result_;
  return {v1::VERIFYING, Runs()};
}

std::string VerifyingEngine::BisectLog(const JobText& job) const {
  std::string log = inner_->BisectLog(job);
  for (const Target& t : targets_) {
    absl::StrAppend(&log, "# verification (not replayed): ", t.what, " [", OidHex(Oid(t.id)), "] ",
                    TermOld(job.spec), " ", t.good, ", ", TermNew(job.spec), " ", t.bad, ", skip ",
                    t.skip, "\n");
  }
  return log;
}

std::string VerifyingEngine::Report(const JobText& job) const {
  std::string report = inner_->Report(job);
  if (job.state != v1::FOUND && job.state != v1::AMBIGUOUS) return report;
  std::vector<VerificationRow> rows;
  for (const Target& t : targets_) {
    VerificationRow& r = rows.emplace_back();
    r.what = t.what;
    r.commit = OidHex(Oid(t.id));
    r.subject = job.commits.Subject(t.id);
    r.expected = t.expected;
    r.good = t.good;
    r.bad = t.bad;
    r.skip = t.skip;
  }
  absl::StrAppend(&report, VerificationSection(job.spec, Verification(), rows, revert_note_));
  return report;
}

}  // namespace farm
