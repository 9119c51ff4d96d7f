#include "coordinator/notify/notify.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "httplib.h"

namespace farm {

std::vector<std::string> Recipients(const v1::Monitor& monitor, const CulpritInfo* culprit,
                                    bool culprit_verified) {
  std::vector<std::string> out;
  auto add = [&out](const std::string& a) {
    if (!a.empty() && std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  };
  for (const std::string& a : monitor.notify_emails()) add(a);
  for (const v1::Subscription& s : monitor.subscribers()) {
    bool match = s.path().empty();
    if (culprit != nullptr) {
      for (const std::string& f : culprit->files) match = match || absl::StartsWith(f, s.path());
    }
    if (match) add(s.address());
  }
  if (culprit != nullptr && culprit_verified) add(culprit->author_email);
  return out;
}

std::vector<std::string> Recipients(const v1::Monitor& monitor, const CulpritInfo* culprit,
                                    v1::VerificationStatus verification) {
  if (verification == v1::UNRELIABLE) return Recipients(monitor, nullptr, false);
  return Recipients(monitor, culprit, verification == v1::VERIFIED);
}

std::string StatusWord(v1::JobState state) {
  return absl::AsciiStrToLower(v1::JobState_Name(state));  // FOUND -> "found", ...
}

std::string ReportSubject(const v1::Monitor& monitor, const CulpritInfo* culprit,
                          v1::VerificationStatus verification) {
  if (culprit != nullptr && verification == v1::UNRELIABLE) {
    return absl::StrCat("[farm] ", monitor.branch(), ": unreliable bisection to \"",
                        culprit->subject, "\" (not verified)");
  }
  if (culprit != nullptr) {
    return absl::StrCat("[farm] ", monitor.branch(), ": regression bisected to \"",
                        culprit->subject, "\"");
  }
  return absl::StrCat("[farm] ", monitor.branch(), ": regression (no single culprit found)");
}

std::string ReportBody(const v1::Monitor& monitor, const v1::Regression& regression,
                       const v1::JobStatus& bisect, const CulpritInfo* culprit,
                       bool culprit_verified, const std::string& job_link,
                       const std::string& reporter) {
  std::string b;
  absl::StrAppend(&b, "Hello,\n\nthe bisect farm's monitor ", monitor.monitor_id(), " of ",
                  monitor.repo(), " branch ", monitor.branch(), " found a regression (",
                  regression.regression_id(), "):\n\n",
                  "  last passing head:  ", regression.last_pass(), "\n",
                  "  first failing head: ", regression.first_fail(), "\n\n");
  absl::StrAppend(&b, "Bisection (job ", bisect.job_id(), "): ", StatusWord(bisect.state()));
  const bool unreliable = regression.verification() == v1::UNRELIABLE;
  if (culprit != nullptr && unreliable) {
    absl::StrAppend(&b, ", culprit UNRELIABLE: ", regression.verification_reason(),
                    "\n\nDo not act on this culprit: a retest contradicted the bisection, or the "
                    "commit cannot be the cause. The test may be flaky, or the regression may come "
                    "from a merge. Only the monitor's owner is told; the culprit's author is not.");
  } else if (culprit != nullptr) {
    absl::StrAppend(&b, culprit_verified ? ", culprit verified" : ", culprit not verified");
  }
  absl::StrAppend(&b, "\n\n", bisect.report());
  if (!b.empty() && b.back() != '\n') b += '\n';
  if (culprit != nullptr && !unreliable) {
    absl::StrAppend(&b, "\nIf you fix this, please add these tags to the commit:\n\n",
                    "Fixes: ", culprit->commit.substr(0, 12), " (\"", culprit->subject, "\")\n",
                    "Reported-by: ", reporter, "\n");
  }
  absl::StrAppend(&b, "\nThe bisection: ", job_link, "\n",
                  "The monitor's history: farm monitors; its regressions: farm regressions\n");
  return b;
}

std::string MailMessage(const std::string& from, const std::vector<std::string>& to,
                        const std::string& subject, const std::string& body) {
  return absl::StrCat("From: ", from, "\nTo: ", absl::StrJoin(to, ", "), "\nSubject: ", subject,
                      "\nContent-Type: text/plain; charset=utf-8\n\n", body);
}

absl::Status CheckWebhookUrl(const std::string& url) {
  if (!absl::StartsWith(url, "http://") || url.size() <= 7 || url[7] == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("webhook '", url,
                     "' is not http://HOST[:PORT][/PATH] (https is not supported: put a "
                     "TLS proxy on the receiving side)"));
  }
  return absl::OkStatus();
}

absl::Status PostWebhook(const std::string& url, const std::string& json, absl::Duration timeout) {
  if (absl::Status st = CheckWebhookUrl(url); !st.ok()) return st;
  size_t slash = url.find('/', 7);
  std::string origin = slash == std::string::npos ? url : url.substr(0, slash);
  std::string path = slash == std::string::npos ? "/" : url.substr(slash);
  httplib::Client client(origin);
  int64_t ms = absl::ToInt64Milliseconds(timeout);
  client.set_connection_timeout(ms / 1000, (ms % 1000) * 1000);
  client.set_read_timeout(ms / 1000, (ms % 1000) * 1000);
  client.set_write_timeout(ms / 1000, (ms % 1000) * 1000);
  httplib::Result res = client.Post(path, json, "application/json");
  if (!res) {
    return absl::UnavailableError(absl::StrCat("webhook ", url, ": ",
                                               httplib::to_string(res.error()),
                                               ": is the receiver running and reachable?"));
  }
  if (res->status < 200 || res->status >= 300) {
    return absl::UnavailableError(
        absl::StrCat("webhook ", url, " answered HTTP ", res->status, ": check the receiver"));
  }
  return absl::OkStatus();
}

absl::Status SendMail(const std::string& sendmail_path, const std::string& message,
                      absl::Duration timeout) {
  int in[2];
  if (pipe2(in, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  pid_t pid = fork();
  if (pid < 0) {
    close(in[0]);
    close(in[1]);
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    dup2(in[0], 0);
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) dup2(devnull, 1);
    execl(sendmail_path.c_str(), sendmail_path.c_str(), "-t", "-i", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(in[0]);
  // A sendmail that exits early must not kill the coordinator with SIGPIPE: MSG_NOSIGNAL needs a
  // socket, so the pipe's writes go through poll + write with SIGPIPE ignored by the process
  // (common/signals.h blocks it in the coordinator; here a failed write is an error).
  absl::Time deadline = absl::Now() + timeout;
  size_t off = 0;
  bool write_failed = false;
  while (off < message.size()) {
    pollfd p{in[1], POLLOUT, 0};
    int left = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (left <= 0 || poll(&p, 1, left) <= 0) break;
    ssize_t n = write(in[1], message.data() + off, message.size() - off);
    if (n <= 0) {
      write_failed = true;
      break;
    }
    off += static_cast<size_t>(n);
  }
  close(in[1]);
  int status = 0;
  while (true) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (absl::Now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return absl::FailedPreconditionError(
          absl::StrCat(sendmail_path, " -t did not finish within ", absl::FormatDuration(timeout),
                       ": check the local MTA (or give --sendmail)"));
    }
    pollfd none{-1, 0, 0};
    poll(&none, 0, 20);  // waitpid has no timeout; the child is ours and ends soon
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot run ", sendmail_path, ": install an MTA that provides it, or give --sendmail"));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || write_failed || off < message.size()) {
    return absl::FailedPreconditionError(
        absl::StrCat(sendmail_path, " -t failed (",
                     WIFEXITED(status) ? absl::StrCat("exit ", WEXITSTATUS(status))
                                       : absl::StrCat("signal ", WTERMSIG(status)),
                     "): check the local MTA's log"));
  }
  return absl::OkStatus();
}

}  // namespace farm
