#include "coordinator/engine/report_text.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace farm {

std::string OidHex(const git_oid& oid) {
  char hex[GIT_OID_HEXSZ + 1];
  git_oid_tostr(hex, sizeof(hex), &oid);
  return hex;
}

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

std::string EndedWithoutAnswer(v1::JobState state, const std::string& error) {
  if (state == v1::FAILED) return absl::StrCat("bisect failed: ", error, "\n");
  if (state == v1::CANCELLED) return "bisect cancelled\n";
  return "";
}

std::string EndedWithoutAnswer(const JobText& job) {
  return EndedWithoutAnswer(job.state, job.error);
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

std::string VerificationName(v1::VerificationStatus status) {
  if (status == v1::VERIFICATION_NONE) return "";
  return absl::AsciiStrToLower(v1::VerificationStatus_Name(status));
}

std::string VerificationSection(const v1::BisectSpec& spec, const EngineVerification& v,
                                const std::vector<VerificationRow>& rows,
                                const std::string& revert_note) {
  if (v.status == v1::VERIFICATION_NONE) return "";
  std::string out =
      absl::StrCat("\nVerification: ", VerificationName(v.status), ": ", v.reason, "\n");
  for (const VerificationRow& r : rows) {
    absl::StrAppend(&out, "  ", absl::StrFormat("%-7s", r.what), " ", ShortSha(r.commit), " ",
                    r.subject, ": ", TermOld(spec), " ", r.good, ", ", TermNew(spec), " ", r.bad,
                    r.skip ? absl::StrCat(", skip ", r.skip) : "", " (expected ",
                    r.expected == Verdict::kBad ? TermNew(spec) : TermOld(spec), ")\n");
  }
  if (!revert_note.empty()) {
    absl::StrAppend(&out, "  the culprit's revert was not tested: ", revert_note, "\n");
  }
  return out;
}

}  // namespace farm
