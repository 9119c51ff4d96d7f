#include "cli/render.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/client.h"
#include "cli/exit_codes.h"
#include "common/spec/spec.h"

namespace farm {

namespace {

// The length of the valid UTF-8 sequence at the start of `s` (0: not valid), and its code point.
size_t Utf8Sequence(absl::string_view s, uint32_t* cp) {
  const auto b = [&s](size_t i) { return static_cast<unsigned char>(s[i]); };
  size_t n = b(0) >= 0xf0 && b(0) <= 0xf4 ? 4 : b(0) >= 0xe0 ? 3 : b(0) >= 0xc2 ? 2 : 0;
  if (b(0) >= 0xf5 || n == 0 || s.size() < n) return 0;
  uint32_t v = b(0) & (0x7f >> n);
  for (size_t i = 1; i < n; ++i) {
    if ((b(i) & 0xc0) != 0x80) return 0;
    v = (v << 6) | (b(i) & 0x3f);
  }
  // Overlong forms, surrogates and values past U+10FFFF are not valid UTF-8.
  if ((n == 3 && v < 0x800) || (n == 4 && (v < 0x10000 || v > 0x10ffff)) ||
      (v >= 0xd800 && v <= 0xdfff)) {
    return 0;
  }
  *cp = v;
  return n;
}

std::string P(const std::string& s) { return Printable(s); }

std::string Short(const std::string& sha) { return sha.substr(0, 10); }

const char* PhaseName(v1::Phase p) {
  switch (p) {
    case v1::CHECKOUT:
      return "checkout";
    case v1::BUILD:
      return "build";
    case v1::TEST:
      return "test";
    case v1::PRISTINE_RETRY:
      return "pristine retry";
    default:
      return "starting";
  }
}

std::string VerdictWord(const v1::JobStatus& st, v1::Verdict v) {
  const v1::BisectSpec& spec = st.spec();
  if (v == v1::GOOD) return spec.term_old().empty() ? "good" : spec.term_old();
  if (v == v1::BAD) return spec.term_new().empty() ? "bad" : spec.term_new();
  return "skip";
}

void PrintJobLine(const v1::JobStatus& st) {
  std::string answer = st.first_bad_size() == 1  ? Short(st.first_bad(0))
                       : st.first_bad_size() > 1 ? absl::StrCat(st.first_bad_size(), " candidates")
                       : st.state() == v1::RUNNING ? absl::StrCat(st.candidates(), " left")
                                                   : std::string("-");
  if (st.verification() != v1::VERIFICATION_NONE) {
    absl::StrAppend(&answer, " ", VerificationWord(st.verification()));
  }
  std::string state = StateName(st.state());
  if (st.queue_position() > 0) state = absl::StrCat("queued #", st.queue_position());
  std::printf("%-6s %-10s %-12s %3u %-22s %8.1fs  %s  %s\n", P(st.job_id()).c_str(), state.c_str(),
              P(st.spec().owner()).c_str(), spec::Priority(st.spec()), P(answer).c_str(),
              st.elapsed_seconds(), P(st.spec().repo()).c_str(),
              P(st.spec().description()).c_str());
}

}  // namespace

std::string VerificationWord(v1::VerificationStatus s) {
  return absl::AsciiStrToLower(v1::VerificationStatus_Name(s));
}

std::string Printable(absl::string_view text, bool multiline) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\t' || (c == '\n' && multiline) || (c >= 0x20 && c < 0x7f)) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    if (c == '\n') {
      out.append("\\n");
      ++i;
      continue;
    }
    uint32_t cp = 0;
    size_t n = c >= 0x80 ? Utf8Sequence(text.substr(i), &cp) : 0;
    if (n > 0 && cp >= 0xa0) {
      out.append(text.substr(i, n).data(), n);
      i += n;
      continue;
    }
    // A control character (C0, DEL, C1) or a byte that is not UTF-8: shown, not interpreted.
    for (size_t k = 0; k < std::max<size_t>(n, 1); ++k) {
      absl::StrAppendFormat(&out, "\\x%02x", static_cast<unsigned char>(text[i + k]));
    }
    i += std::max<size_t>(n, 1);
  }
  return out;
}

int Fail(const absl::Status& error, int code) {
  std::fprintf(stderr, "farm: %s\n", Printable(error.message(), true).c_str());
  return code;
}

int Fail(const absl::Status& error) { return Fail(error, ExitCodeForError(error)); }

const char* StateName(v1::JobState s) {
  switch (s) {
    case v1::RUNNING:
      return "running";
    case v1::FOUND:
      return "found";
    case v1::COMPLETE:
      return "complete";
    case v1::AMBIGUOUS:
      return "ambiguous";
    case v1::FAILED:
      return "failed";
    case v1::CANCELLED:
      return "cancelled";
    default:
      return "unknown";
  }
}

int ExitCodeForJob(const v1::JobStatus& st) {
  switch (st.state()) {
    case v1::FOUND:
    case v1::COMPLETE:
      return kExitFound;
    case v1::AMBIGUOUS:
      return kExitAmbiguous;
    case v1::CANCELLED:
      return kExitCancelled;
    default:
      return kExitFailed;
  }
}

ProgressView::ProgressView() : tty_(isatty(STDOUT_FILENO) == 1) {}

void ProgressView::Show(const v1::JobEvent& ev) {
  const v1::JobStatus& st = ev.status();
  if (!tty_) {
    if (!ev.message().empty() && ev.message() != "attached") {
      std::printf("[%7.1fs] %s  (%u candidate%s left, ~%u round%s)\n", st.elapsed_seconds(),
                  P(ev.message()).c_str(), st.candidates(), st.candidates() == 1 ? "" : "s",
                  st.rounds_left(), st.rounds_left() == 1 ? "" : "s");
      std::fflush(stdout);
    }
    return;
  }
  if (!ev.message().empty() && ev.message() != "attached") last_ = P(ev.message());
  std::string block =
      absl::StrFormat("bisect %s: %u candidates (%u to test), ~%u rounds left, %u agents, %.1fs\n",
                      P(st.job_id()), st.candidates(), st.testable(), st.rounds_left(),
                      st.agents_connected(), st.elapsed_seconds());
  for (const v1::TaskSummary& t : st.running()) {
    absl::StrAppendFormat(&block, "  %-14s %s %-14s %.50s\n", P(t.agent()).substr(0, 14),
                          Short(t.commit()), PhaseName(t.phase()), P(t.subject()));
  }
  if (!last_.empty()) absl::StrAppend(&block, "  last: ", last_.substr(0, 100), "\n");
  // Move to the start of the previous block and clear to the end of the screen.
  if (lines_ > 0) std::printf("\x1b[%dF\x1b[J", lines_);
  std::fputs(block.c_str(), stdout);
  std::fflush(stdout);
  lines_ = std::count(block.begin(), block.end(), '\n');
}

void ShowConnection(bool lost, const std::string& job_id, const std::string& why) {
  if (lost) {
    std::fprintf(stderr, "farm: lost the coordinator (%s); reattaching to job %s...\n",
                 P(why).c_str(), P(job_id).c_str());
  } else {
    std::fprintf(stderr, "farm: reattached to job %s\n", P(job_id).c_str());
  }
}

void ShowDescend(const v1::JobStatus& ended, const std::string& descended) {
  std::fputs(Printable(ended.report(), true).c_str(), stdout);
  std::printf("\n== job %s: bisecting the merged branch\n", P(descended).c_str());
}

void PrintReport(const v1::JobStatus& st, const std::string& log_file) {
  std::fputs(Printable(st.report(), true).c_str(), stdout);
  if (!st.error().empty() && st.report().empty()) {
    std::printf("bisect %s: %s\n", StateName(st.state()), Printable(st.error(), true).c_str());
  }
  int tested = 0, reused = 0;
  for (const auto& t : st.finished()) {
    tested += t.state() == v1::TASK_DONE && !t.reused();
    reused += t.reused();
  }
  const char* unit = st.spec().has_matrix() ? "cell" : "commit";
  std::printf("\n%d %s%s tested in %.1fs", tested, unit, tested == 1 ? "" : "s",
              st.elapsed_seconds());
  if (reused > 0) std::printf(", %d verdict%s reused", reused, reused == 1 ? "" : "s");
  if (!log_file.empty() && !st.bisect_log().empty()) {
    std::ofstream f(log_file, std::ios::trunc);
    f << st.bisect_log();
    if (!f.good()) {
      std::fprintf(stderr, "farm: cannot write the bisect log to %s\n", P(log_file).c_str());
    } else if (st.spec().has_matrix()) {
      std::printf("; log of the cells' verdicts written to %s (not a log for git bisect replay)",
                  P(log_file).c_str());
    } else if (st.spec().flaky().empty()) {
      std::printf("; bisect log written to %s (git bisect replay accepts it)", P(log_file).c_str());
    } else {
      // Flaky mode's log lists every run, conflicting verdicts included: replay cannot take it.
      std::printf("; log of the runs written to %s (flaky mode: not a log for git bisect replay)",
                  P(log_file).c_str());
    }
  }
  std::printf("\n");
  std::fflush(stdout);
}

void PrintJobTable(const std::vector<v1::JobStatus>& jobs) {
  std::printf("%-6s %-10s %-12s %3s %-22s %9s  %s\n", "JOB", "STATE", "OWNER", "PRI", "ANSWER",
              "ELAPSED", "REPO");
  for (const auto& j : jobs) PrintJobLine(j);
}

void PrintJob(const v1::JobStatus& st) {
  std::printf("job %s: %s\n", P(st.job_id()).c_str(), StateName(st.state()));
  std::printf("  repo:       %s\n  bad:        %s\n  good:       %s\n", P(st.spec().repo()).c_str(),
              P(st.spec().bad()).c_str(), P(absl::StrJoin(st.spec().good(), " ")).c_str());
  if (!st.spec().description().empty()) {
    std::printf("  about:      %s\n", P(st.spec().description()).c_str());
  }
  std::printf("  owner:      %s, priority %u\n",
              st.spec().owner().empty() ? "-" : P(st.spec().owner()).c_str(),
              spec::Priority(st.spec()));
  if (st.queue_position() > 0) {
    std::printf("  queued:     #%u, %s\n", st.queue_position(), P(st.waiting_reason()).c_str());
  }
  std::printf("  test:       %s\n", P(absl::StrJoin(st.spec().recipe().test_argv(), " ")).c_str());
  if (st.state() == v1::RUNNING) {
    std::printf("  candidates: %u (%u to test, ~%u rounds left)\n", st.candidates(), st.testable(),
                st.rounds_left());
  }
  if (st.verification() != v1::VERIFICATION_NONE) {
    std::printf("  verification: %s: %s\n", VerificationWord(st.verification()).c_str(),
                P(st.verification_reason()).c_str());
  }
  for (const auto& t : st.running()) {
    std::printf("  running  %s on %s (%s)  %s\n", Short(t.commit()).c_str(), P(t.agent()).c_str(),
                PhaseName(t.phase()), P(t.subject()).c_str());
  }
  for (const auto& t : st.finished()) {
    std::string what = t.state() == v1::TASK_DONE        ? VerdictWord(st, t.verdict())
                       : t.state() == v1::TASK_CANCELLED ? "cancelled"
                       : t.state() == v1::TASK_LOST      ? "lost"
                                                         : "infra-error";
    std::string note = t.retried_pristine()
                           ? absl::StrCat(" [retried pristine: ", t.retry_reason(), "]")
                       : t.reused() ? absl::StrCat(" [reused from task ", t.reused_from(), "]")
                                    : "";
    if (t.has_kernel_build() && t.kernel_build().ccache_hits() >= 0) {
      const v1::KernelBuildStats& k = t.kernel_build();
      absl::StrAppendFormat(&note, " [ccache %d/%d hits", k.ccache_hits(),
                            k.ccache_hits() + k.ccache_misses());
      if (!k.image_sha256().empty()) {
        absl::StrAppend(&note, ", image ", k.image_sha256().substr(0, 12));
      }
      absl::StrAppend(&note, "]");
    }
    std::printf("  %-11s %s %6.1fs on %s  %s%s\n", P(what).c_str(), Short(t.commit()).c_str(),
                t.seconds(), P(t.agent()).c_str(), P(t.subject()).c_str(), P(note).c_str());
  }
  if (st.state() != v1::RUNNING) std::printf("\n%s", Printable(st.report(), true).c_str());
  if (st.report().empty() && !st.error().empty()) {
    std::printf("%s\n", Printable(st.error(), true).c_str());
  }
}

void PrintLogs(const std::vector<v1::TaskLog>& logs, bool raw) {
  for (const v1::TaskLog& l : logs) {
    std::printf("==> task %s, commit %s <==\n", P(l.task_id()).c_str(), P(l.commit()).c_str());
    const std::string out = raw ? l.output() : Printable(l.output(), true);
    std::fwrite(out.data(), 1, out.size(), stdout);
    if (!out.empty() && out.back() != '\n') std::printf("\n");
  }
}

std::string AgentStateName(v1::AgentState state) {
  std::string name = v1::AgentState_Name(state);
  if (absl::StartsWith(name, "AGENT_")) name = absl::AsciiStrToLower(name.substr(6));
  return name;
}

void PrintAgents(const std::vector<v1::AgentInfo>& agents) {
  for (const auto& a : agents) {
    // What the agent boots kernels with (agent/boot ProbeBootCapabilities).
    std::string boot;
    auto cap = [&a](const char* key) {
      auto it = a.capabilities().find(key);
      return it == a.capabilities().end() ? std::string() : it->second;
    };
    if (!cap("accel").empty()) boot = absl::StrCat(" accel=", cap("accel"));
    if (!cap("qemu").empty()) absl::StrAppend(&boot, " qemu=", cap("qemu"));
    if (!cap("accel_note").empty()) absl::StrAppend(&boot, " (", cap("accel_note"), ")");
    for (const auto& [k, v] :
         std::map<std::string, std::string>(a.labels().begin(), a.labels().end())) {
      absl::StrAppend(&boot, " ", k, "=", v);
    }
    std::string quarantine = a.quarantined()
                                 ? absl::StrFormat(" (%.0fs left: %s)", a.quarantined_for_seconds(),
                                                   a.quarantine_reason())
                                 : "";
    const bool set_by_admin = a.state() == v1::AGENT_MAINTENANCE || a.state() == v1::AGENT_RETIRED;
    std::string state = set_by_admin      ? AgentStateName(a.state())
                        : a.quarantined() ? "quarantined"
                        : a.draining()    ? "draining"
                        : a.connected()   ? "connected"
                                          : "gone";
    if (set_by_admin && !a.state_reason().empty()) {
      absl::StrAppend(&quarantine, " (", a.state_reason(), ")");
    }
    std::printf("%-30s %-11s slots=%u running=%d %s%s%s\n", P(a.agent_id()).c_str(), state.c_str(),
                a.slots(), a.running_tasks_size(), P(absl::StrJoin(a.running_tasks(), ",")).c_str(),
                P(boot).c_str(), P(quarantine).c_str());
  }
}

}  // namespace farm
