#include "coordinator/engine/report_text.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace farm {

std::string ShortSha(const std::string& sha) { return sha.substr(0, 12); }

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string TermOld(const v1::BisectSpec& spec) {
  return spec.term_old().empty() ? "good" : spec.term_old();
}

std::string TermNew(const v1::BisectSpec& spec) {
  return spec.term_new().empty() ? "bad" : spec.term_new();
}

std::string EndedWithoutAnswer(const JobText& job) {
  if (job.state == v1::FAILED) return absl::StrCat("bisect failed: ", job.error, "\n");
  if (job.state == v1::CANCELLED) return "bisect cancelled\n";
  return "";
}

void AppendTaskNotes(const JobText& job, std::string* report) {
  std::vector<std::string> retried;
  std::vector<std::string> reused;
  for (const v1::TaskSummary& t : job.finished) {
    if (t.retried_pristine()) {
      retried.push_back(
          absl::StrCat("  ", ShortSha(t.commit()), " ", t.subject(), ": ", t.retry_reason()));
    }
    if (t.reused()) {
      reused.push_back(absl::StrCat("  ", ShortSha(t.commit()), " ", t.subject(), ": ",
                                    t.verdict() == v1::GOOD  ? "good"
                                    : t.verdict() == v1::BAD ? "bad"
                                                             : "skip",
                                    " (from task ", t.reused_from(), ")"));
    }
  }
  if (!retried.empty()) {
    absl::StrAppend(report, "\nRetried in a pristine worktree before counting as a skip:\n",
                    absl::StrJoin(retried, "\n"), "\n");
  }
  if (!reused.empty()) {
    absl::StrAppend(report, "\nReused verdicts (same tree, same recipe; --no-reuse to retest):\n",
                    absl::StrJoin(reused, "\n"), "\n");
  }
}

}  // namespace farm
