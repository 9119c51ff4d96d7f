// Booting a kernel under test in qemu (direct kernel boot, serial console on a pipe) and telling
// what happened: the test's verdict, or a panic, oops, BUG, hang, a boot that never reached init,
// or qemu itself failing (an infrastructure error, never a verdict).
#ifndef FARM_AGENT_BOOT_QEMU_BOOT_H_
#define FARM_AGENT_BOOT_QEMU_BOOT_H_

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/boot/console.h"
#include "agent/boot/ktap.h"
#include "farm/v1/farm.pb.h"

namespace farm {
class TaskControl;  // common/task_control/task_control.h
}

namespace farm::boot {

enum class BootOutcome {
  kPassed,     // the test exited 0 (and its KTAP output, if any, is complete with no failure)
  kFailed,     // exit 1..127 but 125; or exit 0 with a KTAP "not ok" or a truncated KTAP stream
  kSkipped,    // the test exited 125
  kTestError,  // exit 128 or more (the test was killed by a signal): not a verdict
  // A kernel crash before the test's result (which then never came, or was a signal's status);
  // the most severe kind seen names it:
  kPanic,      // "Kernel panic - not syncing"
  kOops,       // "Oops:", "general protection fault", "Unable to handle kernel", NULL dereference
  kBug,        // "BUG:" (sleeping in atomic, KASAN, lockup...), "kernel BUG at"
  kHang,       // init started but the result did not come within the test timeout
  kNoInit,     // init never started (boot timeout, "No working init found", VFS panic)
  kNoResult,   // init started, then the guest stopped (power off, reset) without a result
  kQemuError,  // qemu could not start or failed: an infrastructure error
  kCancelled,  // TaskControl::Cancel()
};
// "passed", "failed", "skipped", "test error", "panic", "oops", "BUG", "hang", "no init",
// "no result", "qemu error", "cancelled".
const char* OutcomeName(BootOutcome outcome);
// The BootFailure an outcome is (PANIC, OOPS, BUG, HANG, NO_INIT), if it is one.
std::optional<farm::v1::BootFailure> FailureOf(BootOutcome outcome);

// qboot (qemu-system-data's /usr/share/qemu/qboot.rom), a firmware that only loads the -kernel
// qemu gives it: under TCG it reaches the kernel ~0.1-0.2 s sooner than SeaBIOS's POST. It leaves
// the MTRRs blank (the kernel then runs without PAT, "x86/PAT: MTRRs disabled") and PCI BARs it
// does not need unassigned (the kernel assigns them). "" when it is not installed.
std::string DefaultFirmware();

struct BootRequest {
  // The kernel: a bzImage, or the ELF vmlinux of a kernel with CONFIG_PVH, which qemu boots
  // through the PVH entry (no decompressor: ~0.3 s less per boot under TCG).
  std::string kernel;
  // From BuildInitramfs. Empty: no initramfs; the kernel boots its own root (a disk image with the
  // user's init, `root=` in spec.kernel_cmdline) and the verdict comes from the result file or a
  // "FARM-RESULT: N" line the user's system prints; init markers are then not expected.
  std::string initramfs;
  // memory_mb, cpus, kernel_cmdline, qemu_args, disk_image, shared_dir, result_file,
  // boot_timeout_seconds, test_timeout_seconds, bad_failures, accel.
  farm::v1::BootSpec spec;
  // Overrides spec.accel when set: "auto" (probe KVM, else TCG), "kvm" or "tcg".
  std::string accel;
  // No console output for this long after init started counts as a hang (infinite: off).
  absl::Duration silence_timeout = absl::InfiniteDuration();
  // Console bytes as they arrive ('\r' removed), from the thread that called Boot().
  std::function<void(std::string_view)> on_console;
  // Cancel() kills qemu; Boot() then returns kCancelled. May be null.
  TaskControl* control = nullptr;
  std::string qemu = "qemu-system-x86_64";
  // Where a bzImage's ELF is unpacked for a PVH boot (agent/boot/pvh.h), kept between boots.
  // Empty: only a bzImage in a build directory (beside its vmlinux) or an ELF boots through PVH.
  // spec.no_pvh: the kernel is booted as given.
  std::string kernel_cache_dir;
  // "pc" boots faster than "q35" under TCG and needs nothing q35 has.
  std::string machine = "pc";
  // The firmware qemu runs (-bios): DefaultFirmware(), qboot when installed. Empty: qemu's own
  // (SeaBIOS). A "-bios" in spec.qemu_args replaces it.
  std::string firmware = DefaultFirmware();
};

struct BootResult {
  BootOutcome outcome = BootOutcome::kQemuError;
  std::optional<int> exit_code;  // the test's exit status, if it was reported
  std::string exit_code_source;  // "console" or "result file"
  KtapSummary ktap;
  CrashKind first_crash = CrashKind::kNone;  // of crashes before the result
  CrashKind worst_crash = CrashKind::kNone;
  std::vector<farm::v1::BootFailure> crashes;  // PANIC, OOPS, BUG seen before the result
  std::string crash_line;                      // the first crash line
  std::vector<std::string> warnings;           // WARNING/UBSAN/hung task lines (first few)
  std::string accel;                           // "kvm" or "tcg"
  std::string accel_note;  // why TCG was used when KVM was not ("/dev/kvm: ...", "probe hung")
  bool pvh = false;        // booted through the kernel's PVH entry (agent/boot/pvh.h)
  std::string entry_note;  // why not, when a PVH boot was allowed but not possible
  bool init_started = false;
  absl::Duration boot_time;     // qemu started -> init started (if it did)
  absl::Duration verdict_time;  // qemu started -> outcome known
  absl::Duration total_time;    // qemu started -> qemu gone
  // What identifies the outcome: the crash line with context (the report), the KTAP summary,
  // the last console lines for a hang or a boot without init, qemu's messages for its errors.
  std::string detail;
  std::vector<std::string> command;  // the qemu command line

  // One line: "passed (exit 0): verdict after 1.62s, init after 1.41s, tcg, pvh".
  std::string Summary() const;
};

// The farm's kernel command line, before BootSpec.kernel_cmdline (which can override it, e.g.
// "cryptomgr.notests=0"): the console on the serial port; panic=-1 reboots at once on a panic,
// which -no-reboot turns into qemu exiting; cryptomgr.notests skips the crypto self-tests, a
// third of the boot under TCG (0.35 s of CPU for Debian's cloud kernel).
inline constexpr std::string_view kFarmCmdline = "console=ttyS0 panic=-1 cryptomgr.notests";
// Added for a one-CPU TCG boot of the farm's initramfs: a kernel that finds one CPU rewrites
// every LOCK prefix (~9,000 in Debian's cloud kernel) into a no-op prefix, and under TCG each of
// those one-byte writes to code is self-modifying code that costs qemu far more than the
// instructions. Keeping the LOCK prefixes changes nothing a test can see on one CPU.
inline constexpr std::string_view kTcgUpCmdline = "noreplace-smp";

// Boots once and classifies the outcome; never fails (errors are kQemuError with a detail).
// Stops qemu (its whole process group) as soon as the outcome is known: the result marker, the
// guest's timeout marker, a panic (after a short grace for the trace), a crash listed in
// spec.bad_failures, or a timeout; a kernel that halts instead of powering off is fine.
// Thread-safe: concurrent boots are independent (the KVM probe is shared, see ProbeKvm).
BootResult Boot(const BootRequest& req);

// The qemu command line for `req` with accelerator `accel` ("kvm" or "tcg"), booting `kernel`
// (empty: req.kernel; Boot() gives the ELF of a PVH boot).
std::vector<std::string> QemuCommand(const BootRequest& req, std::string_view accel,
                                     std::string_view kernel = {});

// Why the host stopped qemu.
enum class StopReason {
  kNone,          // qemu exited by itself
  kResult,        // the result marker
  kGuestTimeout,  // the guest's test timer fired
  kPanic,
  kFatalCrash,    // a crash the job counts as bad
  kGuestStopped,  // "reboot: Power down" / "System halted" and qemu did not exit
  kBootTimeout,
  kTestTimeout,
  kSilence,
};

// What Boot() knew besides the console, for ClassifyBoot.
struct BootFacts {
  StopReason stop = StopReason::kNone;
  bool qemu_failed = false;  // exited by itself with a non-zero status or a signal
  std::string qemu_status;   // "exit 1"
  std::optional<int> result_file_code;
  std::string result_file_note;  // why the result file was not used, if configured
  bool own_init = true;          // the farm's initramfs: init markers are expected
  absl::Duration boot_timeout = absl::Seconds(60);
  absl::Duration test_timeout = absl::Seconds(300);
};

// The outcome, exit code and detail from the console and the facts (exposed for tests). Fills
// every field of `result` but accel, times and command.
void ClassifyBoot(const ConsoleScanner& console, const BootFacts& facts, BootResult& result);

struct KvmProbe {
  bool usable = false;
  bool probed = false;  // false: no kernel to boot was found; not cached, the next call retries
  std::string reason;   // why not usable, or "a kernel booted under KVM in 0.4s"
  absl::Duration elapsed;
};
// Is KVM usable? /dev/kvm must open and a kernel must boot under KVM to the end of its
// initialisation (its own root-mount panic is fine) within seconds: on some machines /dev/kvm
// exists but guests hang, which this notices in about 3 s (or qemu aborts at once). Boots
// $FARM_KVM_PROBE_KERNEL (a kernel known to boot: farm-agent sets it from --kvm-probe-kernel),
// else `kernel` (the first task's), else /boot/vmlinuz-$(uname -r). Runs once per process: later
// calls return the first result (concurrent callers wait for it). Thread-safe.
KvmProbe ProbeKvm(std::string_view kernel = {});
// The kernel ProbeKvm() boots when given none: $FARM_KVM_PROBE_KERNEL, else
// /boot/vmlinuz-$(uname -r) if readable, else "".
std::string DefaultProbeKernel();
// One probe, uncached, with the given qemu binary (for tests and diagnostics).
KvmProbe RunKvmProbe(std::string_view kernel, const std::string& qemu = "qemu-system-x86_64");
bool KvmUsable(std::string_view kernel = {});
// The agent's capability: "kvm" or "tcg".
std::string AccelCapability(std::string_view kernel = {});

// qemu's version ("7.2.22", from `qemu --version`). Errors: NOT_FOUND qemu is not installed;
// UNKNOWN it printed no version.
absl::StatusOr<std::string> QemuVersion(const std::string& qemu = "qemu-system-x86_64");

// What an agent says about booting in Hello.capabilities:
//   "accel"      "kvm", "tcg", "unknown" (KVM not probed: no kernel to probe with; the first boot
//                with accel auto probes with its own kernel) or "none (qemu-system-x86_64
//                missing)";
//   "accel_note" why not KVM (the probe's reason), when not "kvm";
//   "qemu"       qemu's version, when installed.
// `probe` is null when qemu is missing (nothing was probed).
std::map<std::string, std::string> BootCapabilities(const absl::StatusOr<std::string>& qemu_version,
                                                    const KvmProbe* probe);
// Finds qemu's version and probes KVM (ProbeKvm(): once per process, at most ~10 s, ~3 s on a
// machine whose KVM guests hang), then BootCapabilities. Thread-safe.
std::map<std::string, std::string> ProbeBootCapabilities();

}  // namespace farm::boot

#endif  // FARM_AGENT_BOOT_QEMU_BOOT_H_
