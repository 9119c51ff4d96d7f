// Text pieces every engine's report and log share.
#ifndef FARM_COORDINATOR_ENGINE_REPORT_TEXT_H_
#define FARM_COORDINATOR_ENGINE_REPORT_TEXT_H_

#include <string>

#include "coordinator/engine/engine.h"

namespace farm {

// The first 12 hex digits of a commit id.
std::string ShortSha(const std::string& sha);

// A word quoted for the shell: 'it'\''s'.
std::string ShellQuote(const std::string& s);

// The words for good and bad (spec.term_old/term_new, "good"/"bad" by default).
std::string TermOld(const farm::v1::BisectSpec& spec);
std::string TermNew(const farm::v1::BisectSpec& spec);

// "bisect failed: ...\n" or "bisect cancelled\n" for a job that ended that way, else "".
std::string EndedWithoutAnswer(const JobText& job);

// The report's notes on finished tasks: commits retried in a pristine worktree, reused verdicts.
void AppendTaskNotes(const JobText& job, std::string* report);

}  // namespace farm

#endif  // FARM_COORDINATOR_ENGINE_REPORT_TEXT_H_
