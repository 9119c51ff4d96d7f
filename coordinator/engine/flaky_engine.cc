#include "coordinator/engine/flaky_engine.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "coordinator/engine/git_engine.h"
#include "coordinator/engine/report_text.h"

namespace farm {

FlakyEngine::FlakyEngine(FlakyBisect bisect, std::shared_ptr<const CommitGraph> graph,
                         const std::vector<CommitId>& skipped, bool learnt)
    : bisect_(std::move(bisect)), graph_(graph), frontier_(std::move(graph)), learnt_(learnt) {
  for (CommitId id : skipped) frontier_.Apply(id, Verdict::kSkip);
}

bool FlakyEngine::Observe(CommitId commit, Verdict verdict) {
  return bisect_.Observe(commit, verdict).ok();
}

std::vector<CommitId> FlakyEngine::Plan(size_t k, const std::vector<CommitId>& in_flight) {
  return bisect_.NextProbes(k, in_flight);
}

EngineAnswer FlakyEngine::Answer() const {
  EngineAnswer a;
  if (bisect_.Inconclusive()) {
    for (auto& [id, p] : bisect_.Top(5)) a.commits.push_back(id);
    a.state = v1::AMBIGUOUS;
  } else {
    a.commits.push_back(bisect_.Best());
    a.state = v1::FOUND;
  }
  return a;
}

EngineProgress FlakyEngine::Progress(size_t k) const { return FrontierProgress(frontier_, k); }

std::string FlakyEngine::BisectLog(const JobText& job) const {
  std::string log =
      "# flaky mode: commits were tested several times with conflicting results, which\n"
      "# git bisect replay cannot express. The runs, in order:\n";
  for (const v1::TaskSummary& t : job.finished) {
    if (t.state() != v1::TASK_DONE) continue;
    absl::StrAppend(&log, "# ",
                    t.verdict() == v1::BAD    ? "bad "
                    : t.verdict() == v1::GOOD ? "good"
                                              : "skip",
                    " ", t.commit(), " ", t.subject(), "\n");
  }
  return log;
}

std::string FlakyEngine::Report(const JobText& job) const {
  if (job.state != v1::FOUND && job.state != v1::AMBIGUOUS) {
    std::string report = EndedWithoutAnswer(job);
    AppendTaskNotes(job, &report);
    return report;
  }
  std::string report;
  if (job.state == v1::FOUND) {
    absl::StrAppend(&report, job.first_bad[0], " is the first ", TermNew(job.spec), " commit\n");
    if (std::optional<std::string> show = job.commits.Show(bisect_.Best())) {
      absl::StrAppend(&report, *show);
    }
  } else {
    absl::StrAppend(&report, "No candidate reached the requested confidence; the most likely:\n");
  }
  absl::StrAppendFormat(&report,
                        "\nFlaky mode: confidence %.4f after %d runs (false-pass rate %.3f, "
                        "false-fail rate %.3f%s). Most likely culprits:\n",
                        bisect_.Confidence(), bisect_.probes(), bisect_.false_pass(),
                        bisect_.false_fail(), learnt_ ? ", learnt" : "");
  for (auto& [id, p] : bisect_.Top(5)) {
    absl::StrAppendFormat(&report, "  %.4f  %s %s (%d runs)\n", p, ShortSha(graph_->Hex(id)),
                          job.commits.Subject(id), bisect_.runs_at(id));
  }
  return report;
}

}  // namespace farm
