// What the farm command prints: progress, reports, job listings, logs, agents, errors.
//
// Everything that came from a user or a test (descriptions, commit subjects and messages,
// revisions, errors, agent names, log summaries) goes through Printable first, so that a
// description holding terminal escapes cannot drive the terminal of whoever runs `farm status`.
// Not thread-safe: call from the command's main thread.
#ifndef FARM_CLI_RENDER_H_
#define FARM_CLI_RENDER_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "farm/v1/farm.pb.h"

namespace farm {

// `text` with every control character escaped: C0 controls, DEL and the C1 controls (U+0080 to
// U+009F) become "\x1b"-style escapes, as do bytes that are not valid UTF-8. Tabs are kept, and
// newlines when `multiline` (otherwise "\n"). Printable text is returned unchanged.
std::string Printable(absl::string_view text, bool multiline = false);

// Prints "farm: <message>" (made Printable) to stderr and returns `code`.
int Fail(const absl::Status& error, int code);
// The same, with ExitCodeForError's code (cli/client.h).
int Fail(const absl::Status& error);

const char* StateName(farm::v1::JobState state);
// "verified", "unreliable", ... (the enum's name in lower case).
std::string VerificationWord(farm::v1::VerificationStatus status);

// The exit code (cli/exit_codes.h) of a job that ended in `state`.
int ExitCodeForJob(const farm::v1::JobStatus& status);

// A job's progress: a refreshing block on a terminal, plain lines otherwise.
class ProgressView {
 public:
  ProgressView();
  void Show(const farm::v1::JobEvent& event);

 private:
  bool tty_;
  int lines_ = 0;
  std::string last_;
};

// Messages about the watch's connection ("lost the coordinator...; reattaching...").
void ShowConnection(bool lost, const std::string& job_id, const std::string& why);
// The report of a job that ended by descending into a merged branch, and the header of the next.
void ShowDescend(const farm::v1::JobStatus& ended, const std::string& descended);

// The end of a bisect: git's report (or the error), the count of commits tested and reused, and
// the bisect log written to `log_file` (when not empty).
void PrintReport(const farm::v1::JobStatus& status, const std::string& log_file);

// `farm status`: the table of jobs, or one job in full.
void PrintJobTable(const std::vector<farm::v1::JobStatus>& jobs);
void PrintJob(const farm::v1::JobStatus& status);

// `farm log`: each task's output under a header. Without `raw`, control characters are escaped
// (Printable, multi-line); with it, the bytes are written as the test printed them.
void PrintLogs(const std::vector<farm::v1::TaskLog>& logs, bool raw);

// "good", "maintenance", ...: an AgentState as `farm agents` and `farm agent-state` spell it.
std::string AgentStateName(farm::v1::AgentState state);
// `farm agents`: one line per agent.
void PrintAgents(const std::vector<farm::v1::AgentInfo>& agents);

}  // namespace farm

#endif  // FARM_CLI_RENDER_H_
