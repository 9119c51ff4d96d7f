#include "coordinator/engine/probe_engine.h"

#include "absl/strings/str_cat.h"
#include "coordinator/engine/report_text.h"

namespace farm {

ProbeEngine::ProbeEngine(std::shared_ptr<const CommitGraph> graph) : graph_(std::move(graph)) {}

bool ProbeEngine::Observe(CommitId commit, Verdict verdict) {
  if (verdict_ || commit != graph_->bad()) return false;
  verdict_ = verdict;
  return true;
}

std::vector<CommitId> ProbeEngine::Plan(size_t k, const std::vector<CommitId>& in_flight) {
  if (verdict_ || k == 0 || !in_flight.empty()) return {};
  return {graph_->bad()};
}

std::optional<CancelReason> ProbeEngine::ShouldCancel(CommitId commit) const {
  if (verdict_ && commit != graph_->bad()) return CancelReason::kRuledOut;
  return std::nullopt;
}

EngineAnswer ProbeEngine::Answer() const {
  EngineAnswer a;
  if (verdict_ == Verdict::kBad) {
    a.state = v1::FOUND;
    a.commits = {graph_->bad()};
  } else {
    a.state = v1::AMBIGUOUS;
  }
  return a;
}

EngineProgress ProbeEngine::Progress(size_t k) const {
  EngineProgress p;
  p.candidates = verdict_ ? 0 : 1;
  p.testable = p.candidates;
  p.rounds_left = static_cast<int>(p.candidates);
  return p;
}

std::string ProbeEngine::BisectLog(const JobText& job) const { return ""; }

std::string ProbeEngine::Report(const JobText& job) const {
  std::string report = EndedWithoutAnswer(job);
  if (!report.empty()) return report;
  const char* word = !verdict_                     ? "untested"
                     : *verdict_ == Verdict::kGood ? "good (PASS)"
                     : *verdict_ == Verdict::kBad  ? "bad (FAIL)"
                                                   : "skip (undecided)";
  absl::StrAppend(&report, "head test of ", ShortSha(graph_->Hex(graph_->bad())), " (",
                  job.commits.Subject(graph_->bad()), "): ", word, "\n");
  AppendTaskNotes(job, &report);
  return report;
}

}  // namespace farm
