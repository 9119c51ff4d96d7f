#include "agent/boot/console.h"

#include <algorithm>
#include <cctype>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "agent/boot/text.h"

namespace farm::boot {
namespace {

struct Pattern {
  std::string_view text;
  CrashKind kind;
};

// Order matters: the first pattern found in a line decides. x86 prints "BUG: unable to handle
// page fault" and "BUG: kernel NULL pointer dereference" before the "Oops:" header: those are
// oopses, not BUG()s.
constexpr Pattern kPatterns[] = {
    {"Kernel panic - not syncing", CrashKind::kPanic},
    {"kernel BUG at", CrashKind::kBug},
    {"BUG: kernel NULL pointer dereference", CrashKind::kOops},
    {"BUG: unable to handle", CrashKind::kOops},
    {"Unable to handle kernel", CrashKind::kOops},
    {"general protection fault", CrashKind::kOops},
    {"Oops:", CrashKind::kOops},
    {"divide error:", CrashKind::kOops},
    {"invalid opcode:", CrashKind::kOops},
    {"stack segment:", CrashKind::kOops},
    {"double fault:", CrashKind::kOops},
    {"BUG:", CrashKind::kBug},
    {"WARNING:", CrashKind::kWarning},
    {"UBSAN:", CrashKind::kWarning},
    {"INFO: task ", CrashKind::kWarning},  // hung task
    {"INFO: rcu_", CrashKind::kWarning},   // RCU stall
};

constexpr std::string_view kNoInitPatterns[] = {
    "No working init found",
    "VFS: Unable to mount root",
    "Kernel panic - not syncing: VFS:",
    "Kernel panic - not syncing: Requested init",
    "Kernel panic - not syncing: No init found",
};

constexpr std::string_view kGuestStopPatterns[] = {
    "reboot: Power down",
    "reboot: System halted",
    "reboot: Restarting system",
    "System halted.",
};

constexpr size_t kMaxWarnings = 5;
constexpr size_t kMaxQemuMessages = 20;

}  // namespace

const char* CrashKindName(CrashKind kind) {
  switch (kind) {
    case CrashKind::kNone:
      return "none";
    case CrashKind::kWarning:
      return "warning";
    case CrashKind::kBug:
      return "BUG";
    case CrashKind::kOops:
      return "oops";
    case CrashKind::kPanic:
      return "panic";
  }
  return "unknown";
}

CrashKind ClassifyLine(std::string_view raw) {
  std::string_view line = StripPrintkPrefix(raw);
  // A user process's fault, reported by the kernel ("traps: t[97] general protection fault ip:..",
  // "t[97]: segfault at 0 ip ..."), is the test's business, not a kernel crash.
  if (text::Contains(line, "traps: ") || text::Contains(line, ": segfault at ")) {
    return CrashKind::kNone;
  }
  for (const Pattern& p : kPatterns) {
    if (text::Contains(line, p.text)) return p.kind;
  }
  return CrashKind::kNone;
}

namespace {

// Position of a printk timestamp ("[    1.234567]") in `line` at or after `from`, or npos.
size_t FindPrintkStamp(std::string_view line, size_t from) {
  for (size_t p = line.find('[', from); p != std::string_view::npos; p = line.find('[', p + 1)) {
    size_t close = line.find(']', p);
    if (close == std::string_view::npos || close - p > 20) continue;
    std::string_view inside = text::Trim(line.substr(p + 1, close - p - 1));
    size_t dot = inside.find('.');
    if (dot == std::string_view::npos || dot == 0 || dot + 1 == inside.size()) continue;
    bool digits = true;
    for (size_t i = 0; i < inside.size() && digits; ++i) {
      digits = i == dot || std::isdigit(static_cast<unsigned char>(inside[i]));
    }
    if (digits) return p;
  }
  return std::string_view::npos;
}

}  // namespace

void ConsoleScanner::RawLine(std::string_view raw, Events& ev) {
  std::string_view line = raw;
  while (!line.empty() && (line.back() == '\r' || line.back() == '\0')) line.remove_suffix(1);
  size_t start = 0;
  while (start < line.size() && (line[start] == '\r' || line[start] == '\0')) ++start;
  line.remove_prefix(start);
  if (FindPrintkStamp(line, 0) == 0) {
    Line(line, ev);  // a kernel line: whatever user line it interrupted continues after it
    return;
  }
  size_t stamp = FindPrintkStamp(line, 1);
  if (stamp != std::string_view::npos && carry_.size() + stamp <= kMaxLine) {
    carry_.append(line.substr(0, stamp));
    Line(line.substr(stamp), ev);
    return;
  }
  if (carry_.empty()) {
    Line(line, ev);
  } else {
    std::string joined = std::move(carry_);
    carry_.clear();
    joined.append(line);
    Line(joined, ev);
  }
}

void ConsoleScanner::Line(std::string_view raw, Events& ev) {
  std::string_view line = raw;
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
  // The console may carry NULs or a leading '\r' from the guest's tty: drop them for matching.
  std::string clean;
  clean.reserve(line.size());
  for (char c : line) {
    if (c != '\r' && c != '\0') clean.push_back(c);
  }
  line = clean;

  // Crashes after the test's result (in poweroff, say) do not change its verdict.
  const bool after_result = exit_code_.has_value();
  if (crash_lines_after_ > 0) {
    crash_report_.emplace_back(line);
    --crash_lines_after_;
  }

  if (!init_started_ && text::Contains(line, kInitStartedMarker)) {
    init_started_ = true;
    ev.init_started = true;
  }
  if (size_t pos = line.find(kResultMarker); pos != std::string_view::npos && !exit_code_) {
    std::string_view rest = line.substr(pos + kResultMarker.size());
    size_t digits = 0;
    while (digits < rest.size() && std::isdigit(static_cast<unsigned char>(rest[digits]))) {
      ++digits;
    }
    int code = 0;
    // The number must end the line: "FARM-RESULT: 12" cut from "125" by a kernel line without a
    // timestamp reads "FARM-RESULT: 12<kernel text>" and is not taken.
    if (digits > 0 && digits < 10 && text::Trim(rest.substr(digits)).empty() &&
        absl::SimpleAtoi(text::Av(rest.substr(0, digits)), &code)) {
      exit_code_ = code;
      ev.result = true;
      if (!init_started_) {  // its marker was garbled: the result proves init ran
        init_started_ = true;
        ev.init_started = true;
      }
    }
  }
  if (!test_timed_out_ && text::Contains(line, kTestTimeoutMarker)) {
    test_timed_out_ = true;
    ev.test_timed_out = true;
  }
  if (text::StartsWith(line, "qemu-system-") || text::StartsWith(line, "qemu: ")) {
    if (qemu_messages_.size() < kMaxQemuMessages) qemu_messages_.emplace_back(line);
  }
  for (std::string_view p : kGuestStopPatterns) {
    if (text::Contains(line, p)) {
      guest_stopped_ = true;
      ev.guest_stopped = true;
    }
  }
  for (std::string_view p : kNoInitPatterns) {
    if (text::Contains(line, p)) no_init_ = true;
  }

  const CrashKind kind = after_result ? CrashKind::kNone : ClassifyLine(line);
  if (kind == CrashKind::kWarning) {
    if (warnings_.size() < kMaxWarnings) warnings_.emplace_back(StripPrintkPrefix(line));
  } else if (kind != CrashKind::kNone) {
    seen_ |= 1u << static_cast<int>(kind);
    ev.crash = true;
    if (kind == CrashKind::kPanic) {
      panicked_ = true;
      ev.panic = true;
    }
    if (first_crash_ == CrashKind::kNone) {
      first_crash_ = kind;
      first_crash_line_ = std::string(StripPrintkPrefix(line));
      size_t before = std::min(recent_.size(), kCrashContextBefore);
      crash_report_.assign(recent_.end() - static_cast<std::ptrdiff_t>(before), recent_.end());
      crash_report_.emplace_back(line);
      crash_lines_after_ = kCrashContextAfter;
    }
    worst_crash_ = std::max(worst_crash_, kind);
  }

  ktap_.AddLine(line);
  recent_.emplace_back(line);
  if (recent_.size() > kTailLines) recent_.pop_front();
}

ConsoleScanner::Events ConsoleScanner::Feed(std::string_view chunk) {
  Events ev;
  bytes_ += chunk.size();
  while (!chunk.empty()) {
    size_t nl = chunk.find('\n');
    if (nl == std::string_view::npos) {
      partial_.append(chunk);
      break;
    }
    partial_.append(chunk.substr(0, nl));
    chunk.remove_prefix(nl + 1);
    RawLine(partial_, ev);
    partial_.clear();
  }
  while (partial_.size() > kMaxLine) {
    RawLine(std::string_view(partial_).substr(0, kMaxLine), ev);
    partial_.erase(0, kMaxLine);
  }
  return ev;
}

ConsoleScanner::Events ConsoleScanner::Finish() {
  Events ev;
  if (!partial_.empty()) {
    RawLine(partial_, ev);
    partial_.clear();
  }
  if (!carry_.empty()) {
    std::string rest = std::move(carry_);
    carry_.clear();
    Line(rest, ev);
  }
  return ev;
}

std::string ConsoleScanner::CrashReport() const { return absl::StrJoin(crash_report_, "\n"); }

std::string ConsoleScanner::Tail(size_t lines) const {
  size_t n = std::min(lines, recent_.size());
  std::vector<std::string> tail(recent_.end() - static_cast<std::ptrdiff_t>(n), recent_.end());
  return absl::StrJoin(tail, "\n");
}

}  // namespace farm::boot
