// Text pieces every engine's report and log share.
#ifndef FARM_COORDINATOR_ENGINE_REPORT_TEXT_H_
#define FARM_COORDINATOR_ENGINE_REPORT_TEXT_H_

#include <string>
#include <vector>

#include "coordinator/engine/engine.h"

namespace farm {

// The 40 hex digits of an object id.
std::string OidHex(const git_oid& oid);

// The first 12 hex digits of a commit id.
std::string ShortSha(const std::string& sha);

// A word quoted for the shell: 'it'\''s'.
std::string ShellQuote(const std::string& s);

// The words for good and bad (spec.term_old/term_new, "good"/"bad" by default).
std::string TermOld(const farm::v1::BisectSpec& spec);
std::string TermNew(const farm::v1::BisectSpec& spec);

// "bisect failed: ...\n" or "bisect cancelled\n" for a job that ended that way, else "".
std::string EndedWithoutAnswer(const JobText& job);
std::string EndedWithoutAnswer(farm::v1::JobState state, const std::string& error);

// The report's notes on finished tasks: commits retried in a pristine worktree, reused verdicts.
void AppendTaskNotes(const JobText& job, std::string* report);

// One commit a verification retested, for the report.
struct VerificationRow {
  std::string what;  // "culprit", "parent", "revert"
  std::string commit;
  std::string subject;
  Verdict expected = Verdict::kBad;
  int good = 0, bad = 0, skip = 0;
};

// "verified", "unreliable", "inconclusive", "verifying", "" for VERIFICATION_NONE.
std::string VerificationName(farm::v1::VerificationStatus status);

// The report's verification section: the status and why, then one line per retested commit and
// why the revert was not tested (`revert_note`, may be empty). "" for VERIFICATION_NONE.
std::string VerificationSection(const farm::v1::BisectSpec& spec, const EngineVerification& v,
                                const std::vector<VerificationRow>& rows,
                                const std::string& revert_note);

}  // namespace farm

#endif  // FARM_COORDINATOR_ENGINE_REPORT_TEXT_H_
