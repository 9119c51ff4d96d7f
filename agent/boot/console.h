// Reading a guest's serial console as it streams: the farm's init markers, the test's exit code,
// KTAP results, and the kernel's crash reports (patterns as syzkaller's pkg/report/linux.go).
#ifndef FARM_AGENT_BOOT_CONSOLE_H_
#define FARM_AGENT_BOOT_CONSOLE_H_

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/boot/ktap.h"

namespace farm::boot {

// Printed by the farm's init (agent/boot/initramfs.cc) on the console.
inline constexpr std::string_view kInitStartedMarker = "FARM-INIT-STARTED";
inline constexpr std::string_view kResultMarker = "FARM-RESULT: ";  // followed by the exit code
inline constexpr std::string_view kTestTimeoutMarker = "FARM-TEST-TIMEOUT";

// What a console line says about the kernel, most severe last.
enum class CrashKind { kNone, kWarning, kBug, kOops, kPanic };
const char* CrashKindName(CrashKind kind);  // "none", "warning", "BUG", "oops", "panic"

// Classifies one console line (printk prefix allowed). Userspace fault reports ("traps: ...",
// "segfault at") are not kernel crashes.
CrashKind ClassifyLine(std::string_view line);

// Feed it the console stream in chunks of any size: lines are reassembled, so a marker or a crash
// line split across chunks is still found. The kernel's console output can also land in the middle
// of a line init or the test is writing ("FARM-RESU[    1.98] msg\nLT: 0"): a kernel line (it
// starts with a printk timestamp) found inside another line is taken out and the two halves are
// joined again. A result is only read when its number ends the line, so a number cut by a kernel
// line without a timestamp is not misread (12 for 125); init prints it twice for that case.
// Not thread-safe.
class ConsoleScanner {
 public:
  // What Feed() saw that may change what the caller does next.
  struct Events {
    bool init_started = false;
    bool result = false;          // the test's exit code arrived
    bool test_timed_out = false;  // the guest's own timer killed the test
    bool crash = false;           // a BUG, oops or panic line (not a warning)
    bool panic = false;           // "Kernel panic - not syncing"
    bool guest_stopped = false;   // "reboot: Power down", "System halted", "Restarting system"
  };

  // Scans `chunk`; returns what the complete lines in it said.
  Events Feed(std::string_view chunk);
  // Scans a final partial line, if any.
  Events Finish();

  bool init_started() const { return init_started_; }
  std::optional<int> exit_code() const { return exit_code_; }
  bool test_timed_out() const { return test_timed_out_; }
  bool panicked() const { return panicked_; }
  bool guest_stopped() const { return guest_stopped_; }
  // "No working init found", "VFS: Unable to mount root fs", "Requested init ... failed".
  bool no_init() const { return no_init_; }
  // The first BUG/oops/panic line, its kind, and the worst kind seen.
  CrashKind first_crash() const { return first_crash_; }
  CrashKind worst_crash() const { return worst_crash_; }
  const std::string& first_crash_line() const { return first_crash_line_; }
  // Was an oops / BUG / panic seen (in any order)?
  bool saw(CrashKind kind) const { return (seen_ & (1u << static_cast<int>(kind))) != 0; }
  // The first crash line with a few lines before it and the report that followed (up to
  // kCrashContextAfter lines); empty without a crash.
  std::string CrashReport() const;
  const std::vector<std::string>& warnings() const { return warnings_; }  // first few
  // Lines qemu itself printed ("qemu-system-x86_64: ..."), for infrastructure errors.
  const std::vector<std::string>& qemu_messages() const { return qemu_messages_; }
  KtapSummary ktap() const { return ktap_.Summary(); }
  // The last lines seen (up to kTailLines), for reports when nothing else explains the outcome.
  std::string Tail(size_t lines = 15) const;
  uint64_t bytes() const { return bytes_; }

  static constexpr size_t kCrashContextBefore = 3;
  static constexpr size_t kCrashContextAfter = 40;
  static constexpr size_t kTailLines = 40;
  // Longer lines are scanned in pieces of this size (a guest printing without newlines must not
  // make the buffer grow without bound).
  static constexpr size_t kMaxLine = 4096;

 private:
  // Splits kernel lines out of `raw` and passes whole lines to Line().
  void RawLine(std::string_view raw, Events& ev);
  void Line(std::string_view line, Events& ev);

  std::string partial_;
  std::string carry_;  // the start of a user line that a kernel line interrupted
  uint64_t bytes_ = 0;
  bool init_started_ = false;
  std::optional<int> exit_code_;
  bool test_timed_out_ = false;
  bool panicked_ = false;
  bool guest_stopped_ = false;
  bool no_init_ = false;
  CrashKind first_crash_ = CrashKind::kNone;
  CrashKind worst_crash_ = CrashKind::kNone;
  uint32_t seen_ = 0;
  std::string first_crash_line_;
  std::vector<std::string> crash_report_;
  size_t crash_lines_after_ = 0;
  std::deque<std::string> recent_;
  std::vector<std::string> warnings_;
  std::vector<std::string> qemu_messages_;
  KtapParser ktap_;
};

}  // namespace farm::boot

#endif  // FARM_AGENT_BOOT_CONSOLE_H_
