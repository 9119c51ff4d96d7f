#include "coordinator/engine/git_engine.h"

#include "absl/strings/str_cat.h"
#include "coordinator/engine/report_text.h"
#include "coordinator/planner/planner.h"

namespace farm {

GitEngine::GitEngine(std::shared_ptr<const CommitGraph> graph, const std::vector<CommitId>& skipped)
    : graph_(graph), frontier_(std::move(graph)) {
  for (CommitId id : skipped) frontier_.Apply(id, Verdict::kSkip);
}

bool GitEngine::Observe(CommitId commit, Verdict verdict) {
  if (!frontier_.Apply(commit, verdict)) return false;
  applied_.emplace_back(commit, verdict);
  return true;
}

std::vector<CommitId> GitEngine::Plan(size_t k, const std::vector<CommitId>& in_flight) {
  PlanRequest req;
  req.in_flight = in_flight;
  req.free_slots = k;
  return PlanKSection(frontier_, req).start;
}

std::optional<CancelReason> GitEngine::ShouldCancel(CommitId commit) const {
  if (!frontier_.IsCandidate(commit)) return CancelReason::kRuledOut;
  if (frontier_.IsSkipped(commit)) return CancelReason::kSkipped;
  return std::nullopt;
}

EngineAnswer GitEngine::Answer() const {
  EngineAnswer a;
  a.commits = frontier_.Candidates();
  a.state = a.commits.size() == 1 ? v1::FOUND : v1::AMBIGUOUS;
  a.may_descend_merges = true;
  return a;
}

EngineProgress FrontierProgress(const Frontier& frontier, size_t k) {
  EngineProgress p;
  p.candidates = frontier.num_candidates();
  p.testable = frontier.num_testable();
  p.rounds_left = EstimateRoundsLeft(frontier, k);
  return p;
}

EngineProgress GitEngine::Progress(size_t k) const { return FrontierProgress(frontier_, k); }

std::string GitEngine::BisectLog(const JobText& job) const {
  const v1::BisectSpec& spec = job.spec;
  const std::string term_old = TermOld(spec);
  const std::string term_new = TermNew(spec);
  std::string log;
  auto line = [&](const std::string& word, CommitId id) {
    const std::string hex = graph_->Hex(id);
    absl::StrAppend(&log, "# ", word, ": [", hex, "] ", job.commits.Subject(id), "\n",
                    "git bisect ", word, " ", hex, "\n");
  };
  std::string start = "git bisect start";
  if (!spec.term_old().empty()) {
    absl::StrAppend(&start, " ", ShellQuote("--term-old=" + term_old), " ",
                    ShellQuote("--term-new=" + term_new));
  }
  if (spec.first_parent()) absl::StrAppend(&start, " '--first-parent'");
  absl::StrAppend(&start, " ", ShellQuote(spec.bad()));
  for (const std::string& g : spec.good()) absl::StrAppend(&start, " ", ShellQuote(g));
  absl::StrAppend(&log, start, "\n");
  for (const std::string& s : spec.skip()) {
    git_oid oid;
    git_oid_fromstr(&oid, s.c_str());
    if (std::optional<CommitId> id = graph_->Find(oid)) line("skip", *id);
  }
  for (auto& [id, v] : applied_) {
    line(v == Verdict::kGood ? term_old : v == Verdict::kBad ? term_new : "skip", id);
  }
  if (job.state == v1::FOUND) {
    absl::StrAppend(&log, "# first ", term_new, " commit: [", job.first_bad[0], "] ",
                    job.commits.Subject(frontier_.bad()), "\n");
  } else if (job.state == v1::AMBIGUOUS) {
    for (CommitId id : frontier_.Candidates()) {
      absl::StrAppend(&log, "# possible first ", term_new, " commit: [", graph_->Hex(id), "] ",
                      job.commits.Subject(id), "\n");
    }
  }
  return log;
}

std::string GitEngine::Report(const JobText& job) const {
  const std::string term_new = TermNew(job.spec);
  std::string report;
  if (job.state == v1::FOUND) {
    absl::StrAppend(&report, job.first_bad[0], " is the first ", term_new, " commit\n");
    if (std::optional<std::string> show = job.commits.Show(frontier_.bad())) {
      absl::StrAppend(&report, *show);
    }
    if (!job.merge_note.empty()) absl::StrAppend(&report, "\n", job.merge_note);
  } else if (job.state == v1::AMBIGUOUS) {
    absl::StrAppend(&report, "There are only 'skip'ped commits left to test.\nThe first ", term_new,
                    " commit could be any of:\n");
    for (const std::string& c : job.first_bad) absl::StrAppend(&report, c, "\n");
    absl::StrAppend(&report, "We cannot bisect more!\n");
  } else {
    report = EndedWithoutAnswer(job);
  }
  AppendTaskNotes(job, &report);
  return report;
}

std::vector<CommitId> GitEngine::CandidateCommits(size_t max) const {
  std::vector<CommitId> all = frontier_.Candidates();
  if (all.size() > max) all.resize(max);
  return all;
}

}  // namespace farm
