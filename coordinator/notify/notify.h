// Notifications of a branch monitor's regressions: the report (syzbot-like text a kernel developer
// can answer, with Fixes: and Reported-by: tags), who gets it, and the two ways it leaves: a
// webhook (JSON POST) and the local sendmail interface (so the lab's MTA delivers it).
//
// Thread safety: the functions are independent and may be called from any thread.
#ifndef FARM_COORDINATOR_NOTIFY_NOTIFY_H_
#define FARM_COORDINATOR_NOTIFY_NOTIFY_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "farm/v1/farm.pb.h"

namespace farm {

// What the report says about the culprit (read from the repository by the caller).
struct CulpritInfo {
  std::string commit;  // full id
  std::string subject;
  std::string author;  // "Name <email>"
  std::string author_email;
  std::vector<std::string> files;  // paths the commit touches (against its first parent)
};

// Where a report goes: the monitor's owner addresses always; subscribers whose path is a prefix
// of a file the culprit touches (an empty path matches all); the culprit's author when
// `culprit_verified`. Each address once, in that order.
std::vector<std::string> Recipients(const farm::v1::Monitor& monitor, const CulpritInfo* culprit,
                                    bool culprit_verified);
// The same by what the culprit's verification showed: VERIFIED as `culprit_verified`; UNRELIABLE
// only the owner's addresses (the culprit cannot be trusted, so neither the paths it touches nor
// its author say who should read it: syzbot and KernelCI mail nobody else either); any other
// status as a culprit that is not verified.
std::vector<std::string> Recipients(const farm::v1::Monitor& monitor, const CulpritInfo* culprit,
                                    farm::v1::VerificationStatus verification);

// The report's subject line and body. `bisect` is the regression's ended bisect (its report in
// git's words is quoted); `culprit` null when the bisect found no single commit; `job_link` how
// to look at the bisect (a URL, or a `farm status` command); `reporter` the Reported-by: name and
// address. A regression whose verification is UNRELIABLE gets a subject and body that say so,
// with `regression.verification_reason`, and no Fixes: tag to paste.
std::string ReportSubject(const farm::v1::Monitor& monitor, const CulpritInfo* culprit,
                          farm::v1::VerificationStatus verification = farm::v1::VERIFICATION_NONE);
std::string ReportBody(const farm::v1::Monitor& monitor, const farm::v1::Regression& regression,
                       const farm::v1::JobStatus& bisect, const CulpritInfo* culprit,
                       bool culprit_verified, const std::string& job_link,
                       const std::string& reporter);

// "found", "ambiguous", "failed", "cancelled" or "running" (the JobState in lower case).
std::string StatusWord(farm::v1::JobState state);

// POSTs `json` to `url` (http://HOST[:PORT]/PATH) with Content-Type application/json. Errors:
// INVALID_ARGUMENT for a URL that is not http://; UNAVAILABLE when the receiver cannot be
// reached, does not answer within `timeout`, or answers other than 2xx (the status is named).
absl::Status PostWebhook(const std::string& url, const std::string& json, absl::Duration timeout);

// Hands an RFC 5322 message to `sendmail_path` as `sendmail -t -i` (the recipients are read
// from its To: header), on its standard input. Errors: FAILED_PRECONDITION when the program
// cannot be run, or exits non-zero (its status is named), or is still running after `timeout`
// (it is then killed).
absl::Status SendMail(const std::string& sendmail_path, const std::string& message,
                      absl::Duration timeout);

// The message SendMail sends: From, To (the recipients), Subject, then the body.
std::string MailMessage(const std::string& from, const std::vector<std::string>& to,
                        const std::string& subject, const std::string& body);

// Checks a webhook URL before it is stored: INVALID_ARGUMENT naming it unless it is
// http://HOST[:PORT][/PATH].
absl::Status CheckWebhookUrl(const std::string& url);

}  // namespace farm

#endif  // FARM_COORDINATOR_NOTIFY_NOTIFY_H_
