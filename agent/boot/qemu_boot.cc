#include "agent/boot/qemu_boot.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "agent/boot/initramfs.h"
#include "agent/boot/pvh.h"
#include "agent/boot/text.h"
#include "common/subprocess/subprocess.h"
#include "common/task_control/task_control.h"
#include "common/verdict.h"

namespace farm::boot {
namespace {

namespace v1 = farm::v1;

// After a panic, how long to keep reading for the rest of the trace ("---[ end Kernel panic").
// With panic=-1 and -no-reboot qemu exits by itself before that, usually.
constexpr absl::Duration kPanicGrace = absl::Milliseconds(700);
// After a crash the job counts as bad: time for the report that follows the first line.
constexpr absl::Duration kCrashGrace = absl::Milliseconds(1500);
// After "reboot: System halted": qemu does not exit on a halt.
constexpr absl::Duration kHaltGrace = absl::Milliseconds(300);
// The guest's own test timer fires first; the host's is a backstop for a wedged kernel.
constexpr absl::Duration kHostTestGrace = absl::Seconds(2);

// KVM probe: a working KVM prints the banner in well under a second.
constexpr absl::Duration kProbeBannerTimeout = absl::Seconds(3);
constexpr absl::Duration kProbeTotalTimeout = absl::Seconds(10);

std::string Seconds(absl::Duration d) { return absl::StrFormat("%.2fs", absl::ToDoubleSeconds(d)); }

// qemu's option syntax doubles commas inside values.
std::string QemuEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    out.push_back(c);
    if (c == ',') out.push_back(',');
  }
  return out;
}

std::string DiskFormat(const std::string& path) {
  char magic[4] = {0, 0, 0, 0};
  if (FILE* f = std::fopen(path.c_str(), "rb")) {
    size_t n = std::fread(magic, 1, sizeof(magic), f);
    std::fclose(f);
    if (n == 4 && std::memcmp(magic, "QFI\xfb", 4) == 0) return "qcow2";
  }
  return "raw";
}

CrashKind ToCrashKind(v1::BootFailure f) {
  switch (f) {
    case v1::PANIC:
      return CrashKind::kPanic;
    case v1::OOPS:
      return CrashKind::kOops;
    case v1::BUG:
      return CrashKind::kBug;
    default:
      return CrashKind::kNone;
  }
}

BootOutcome CrashOutcome(CrashKind kind) {
  switch (kind) {
    case CrashKind::kPanic:
      return BootOutcome::kPanic;
    case CrashKind::kOops:
      return BootOutcome::kOops;
    default:
      return BootOutcome::kBug;
  }
}

// Reads an exit code from the result file: the first integer in it.
std::optional<int> ReadResultFile(const std::string& path, std::string* note) {
  std::ifstream f(path);
  if (!f) {
    *note = absl::StrCat("result file ", path, " was not written");
    return std::nullopt;
  }
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  int code = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &code)) {
    *note = absl::StrCat("result file ", path, " does not hold an exit code: \"",
                         text.substr(0, 80), "\"");
    return std::nullopt;
  }
  return code;
}

}  // namespace

const char* OutcomeName(BootOutcome outcome) {
  switch (outcome) {
    case BootOutcome::kPassed:
      return "passed";
    case BootOutcome::kFailed:
      return "failed";
    case BootOutcome::kSkipped:
      return "skipped";
    case BootOutcome::kTestError:
      return "test error";
    case BootOutcome::kPanic:
      return "panic";
    case BootOutcome::kOops:
      return "oops";
    case BootOutcome::kBug:
      return "BUG";
    case BootOutcome::kHang:
      return "hang";
    case BootOutcome::kNoInit:
      return "no init";
    case BootOutcome::kNoResult:
      return "no result";
    case BootOutcome::kQemuError:
      return "qemu error";
    case BootOutcome::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

std::optional<v1::BootFailure> FailureOf(BootOutcome outcome) {
  switch (outcome) {
    case BootOutcome::kPanic:
      return v1::PANIC;
    case BootOutcome::kOops:
      return v1::OOPS;
    case BootOutcome::kBug:
      return v1::BUG;
    case BootOutcome::kHang:
      return v1::HANG;
    case BootOutcome::kNoInit:
      return v1::NO_INIT;
    default:
      return std::nullopt;
  }
}

std::string BootResult::Summary() const {
  std::string s = OutcomeName(outcome);
  if (exit_code.has_value()) absl::StrAppend(&s, " (exit ", *exit_code, ")");
  absl::StrAppend(&s, ": verdict after ", Seconds(verdict_time));
  if (init_started) absl::StrAppend(&s, ", init after ", Seconds(boot_time));
  if (!accel.empty()) absl::StrAppend(&s, ", ", accel);
  if (pvh) absl::StrAppend(&s, ", pvh");
  return s;
}

std::string DefaultFirmware() {
  static const std::string* const firmware = [] {
    for (const char* path : {"/usr/share/qemu/qboot.rom", "/usr/local/share/qemu/qboot.rom"}) {
      if (access(path, R_OK) == 0) return new std::string(path);
    }
    return new std::string();
  }();
  return *firmware;
}

std::vector<std::string> QemuCommand(const BootRequest& req, std::string_view accel,
                                     std::string_view kernel) {
  const v1::BootSpec& spec = req.spec;
  std::vector<std::string> argv = {req.qemu, "-nodefaults",     "-no-user-config", "-display",
                                   "none",   "-no-reboot",      "-machine",        req.machine,
                                   "-accel", std::string(accel)};
  if (accel == "kvm") {
    argv.push_back("-cpu");
    argv.push_back("host");
  }
  const bool own_bios = std::find(spec.qemu_args().begin(), spec.qemu_args().end(), "-bios") !=
                        spec.qemu_args().end();
  if (!req.firmware.empty() && !own_bios) argv.insert(argv.end(), {"-bios", req.firmware});
  argv.insert(argv.end(), {"-m", absl::StrCat(spec.memory_mb() ? spec.memory_mb() : 512), "-smp",
                           absl::StrCat(spec.cpus() ? spec.cpus() : 1), "-serial", "stdio",
                           "-kernel", kernel.empty() ? req.kernel : std::string(kernel)});
  std::string cmdline(kFarmCmdline);
  if (!spec.kernel_cmdline().empty()) absl::StrAppend(&cmdline, " ", spec.kernel_cmdline());
  if (!req.initramfs.empty()) {
    argv.insert(argv.end(), {"-initrd", req.initramfs});
    absl::StrAppend(&cmdline, " ", text::Av(kInitCmdline));
    if (accel == "tcg" && spec.cpus() <= 1) absl::StrAppend(&cmdline, " ", text::Av(kTcgUpCmdline));
  }
  argv.insert(argv.end(), {"-append", cmdline});
  if (!spec.disk_image().empty()) {
    // snapshot=on: writes go to a temporary overlay; the image is never changed.
    argv.insert(argv.end(),
                {"-drive", absl::StrCat("file=", QemuEscape(spec.disk_image()),
                                        ",if=virtio,format=", DiskFormat(spec.disk_image()),
                                        ",snapshot=on")});
  }
  if (!spec.shared_dir().empty()) {
    argv.insert(argv.end(),
                {"-virtfs", absl::StrCat("local,path=", QemuEscape(spec.shared_dir()),
                                         ",mount_tag=farm,security_model=none,id=farm")});
  }
  for (const std::string& a : spec.qemu_args()) argv.push_back(a);
  return argv;
}

void ClassifyBoot(const ConsoleScanner& console, const BootFacts& facts, BootResult& r) {
  r.init_started = console.init_started();
  r.ktap = console.ktap();
  r.first_crash = console.first_crash();
  r.worst_crash = console.worst_crash();
  r.crash_line = console.first_crash_line();
  r.warnings = console.warnings();
  r.crashes.clear();
  for (v1::BootFailure f : {v1::PANIC, v1::OOPS, v1::BUG}) {
    if (console.saw(ToCrashKind(f))) r.crashes.push_back(f);
  }
  r.exit_code.reset();
  r.exit_code_source.clear();
  if (facts.result_file_code.has_value()) {
    r.exit_code = facts.result_file_code;
    r.exit_code_source = "result file";
  } else if (console.exit_code().has_value()) {
    r.exit_code = console.exit_code();
    r.exit_code_source = "console";
  }
  const bool crashed = r.worst_crash >= CrashKind::kBug;
  // A panic ends the machine, whatever led to it; otherwise the first crash names the outcome
  // (a BUG() is followed by its "invalid opcode" oops header: it is still a BUG).
  const CrashKind named = r.worst_crash == CrashKind::kPanic ? CrashKind::kPanic : r.first_crash;

  std::string what;
  bool show_tail = false;
  if (console.test_timed_out() ||
      (r.init_started &&
       (facts.stop == StopReason::kTestTimeout || facts.stop == StopReason::kSilence) && !crashed &&
       !r.exit_code)) {
    r.outcome = BootOutcome::kHang;
    if (facts.stop == StopReason::kSilence) {
      what = "the guest printed nothing for too long after init started";
    } else {
      what = absl::StrCat("the test did not finish within its timeout (",
                          Seconds(facts.test_timeout), ")");
    }
    show_tail = true;
  } else if (r.exit_code.has_value()) {
    const int code = *r.exit_code;
    std::optional<v1::Verdict> v = VerdictForExitCode(code);
    if (crashed && !v.has_value()) {
      r.outcome = CrashOutcome(named);
      what = absl::StrCat("the kernel crashed (", CrashKindName(named),
                          ") and the test died with status ", code);
    } else if (!v.has_value()) {
      r.outcome = BootOutcome::kTestError;
      what = code > 128 ? absl::StrCat("the test was killed by signal ", code - 128, " (status ",
                                       code, ")")
                        : absl::StrCat("the test exited ", code,
                                       ", which is not a verdict (0 good, 1-127 bad, 125 skip)");
    } else if (*v == v1::GOOD) {
      if (r.ktap.found && r.ktap.failed > 0) {
        r.outcome = BootOutcome::kFailed;
        what =
            absl::StrCat("the test exited 0 but its KTAP output has failures: ", r.ktap.Describe());
      } else if (r.ktap.found && !r.ktap.complete) {
        r.outcome = BootOutcome::kFailed;
        what = absl::StrCat(
            "the test exited 0 but its KTAP output is truncated (a crash, as KUnit counts it): ",
            r.ktap.Describe());
      } else {
        r.outcome = BootOutcome::kPassed;
        what = "the test exited 0";
      }
    } else if (*v == v1::BAD) {
      r.outcome = BootOutcome::kFailed;
      what = absl::StrCat("the test exited ", code);
    } else {
      r.outcome = BootOutcome::kSkipped;
      what = "the test exited 125 (cannot test this kernel)";
    }
    if (r.exit_code_source == "result file") absl::StrAppend(&what, " (read from the result file)");
  } else if (facts.stop == StopReason::kNone && facts.qemu_failed) {
    r.outcome = BootOutcome::kQemuError;
    what = absl::StrCat("qemu failed (", facts.qemu_status, ")");
    if (!console.qemu_messages().empty()) {
      absl::StrAppend(&what, ": ", absl::StrJoin(console.qemu_messages(), "\n"));
    } else {
      show_tail = true;
    }
  } else if (console.panicked() && console.no_init()) {
    r.outcome = BootOutcome::kNoInit;
    what = absl::StrCat("the kernel could not run init: ", r.crash_line);
  } else if (crashed) {
    r.outcome = CrashOutcome(named);
    what = absl::StrCat("the kernel crashed (", CrashKindName(named),
                        ") before the test reported a result");
  } else if (facts.own_init && !r.init_started) {
    r.outcome = BootOutcome::kNoInit;
    what = facts.stop == StopReason::kBootTimeout
               ? absl::StrCat("init did not start within the boot timeout (",
                              Seconds(facts.boot_timeout), ")")
               : "the guest stopped before init started";
    show_tail = true;
  } else if (facts.stop == StopReason::kNone || facts.stop == StopReason::kGuestStopped) {
    r.outcome = BootOutcome::kNoResult;
    what = "the guest stopped (power off, halt or reset) before the test reported a result";
    show_tail = true;
  } else {
    r.outcome = BootOutcome::kHang;
    what = facts.own_init ? "the test did not report a result in time"
                          : absl::StrCat("no result within the boot and test timeouts (",
                                         Seconds(facts.boot_timeout + facts.test_timeout), ")");
    show_tail = true;
  }

  std::string detail = what;
  if (!facts.result_file_note.empty()) absl::StrAppend(&detail, "\n", facts.result_file_note);
  if (r.ktap.found && !text::Contains(what, "KTAP")) {
    absl::StrAppend(&detail, "\nKTAP: ", r.ktap.Describe());
  }
  if (crashed) {
    absl::StrAppend(&detail, "\nfirst crash (", CrashKindName(r.first_crash), "): ", r.crash_line,
                    "\n--- crash report ---\n", console.CrashReport(), "\n---");
  }
  if (!r.warnings.empty()) {
    absl::StrAppend(&detail, "\nkernel warnings (", r.warnings.size(), "): ", r.warnings.front());
  }
  if (show_tail && console.bytes() > 0) {
    absl::StrAppend(&detail, "\n--- last console lines ---\n", console.Tail(), "\n---");
  } else if (show_tail) {
    absl::StrAppend(&detail, "\n(no console output at all)");
  }
  r.detail = std::move(detail);
}

namespace {

// The boot's shared state: written by the output callback (Wait's thread), read by the watchdog.
struct Watch {
  absl::Mutex mu;
  ConsoleScanner console ABSL_GUARDED_BY(mu);
  absl::Time start;
  absl::Time init_at ABSL_GUARDED_BY(mu) = absl::InfiniteFuture();
  absl::Time last_output ABSL_GUARDED_BY(mu);
  absl::Time stop_at ABSL_GUARDED_BY(mu) = absl::InfiniteFuture();
  absl::Time decided_at ABSL_GUARDED_BY(mu) = absl::InfiniteFuture();
  StopReason reason ABSL_GUARDED_BY(mu) = StopReason::kNone;
  bool changed ABSL_GUARDED_BY(mu) = false;
  bool done ABSL_GUARDED_BY(mu) = false;

  // Schedules the stop at `at` for `why`, unless an earlier one is scheduled.
  void StopAt(absl::Time at, StopReason why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (at < stop_at) {
      stop_at = at;
      if (reason == StopReason::kNone) reason = why;
      if (decided_at == absl::InfiniteFuture()) decided_at = absl::Now();
    }
    changed = true;
  }
};

bool AnyListed(const ConsoleScanner& console, const v1::BootSpec& spec) {
  for (int f : spec.bad_failures()) {
    CrashKind k = ToCrashKind(static_cast<v1::BootFailure>(f));
    if (k != CrashKind::kNone && console.saw(k)) return true;
  }
  return false;
}

}  // namespace

BootResult Boot(const BootRequest& req) {
  BootResult result;
  const v1::BootSpec& spec = req.spec;
  BootFacts facts;
  facts.own_init = !req.initramfs.empty();
  facts.boot_timeout = absl::Seconds(BootTimeoutSeconds(spec));
  facts.test_timeout = absl::Seconds(TestTimeoutSeconds(spec));

  auto fail = [&](std::string why) {
    result.outcome = BootOutcome::kQemuError;
    result.detail = std::move(why);
    return result;
  };
  if (req.control != nullptr && req.control->cancelled()) {
    result.outcome = BootOutcome::kCancelled;
    result.detail = "cancelled before the boot";
    return result;
  }
  if (access(req.kernel.c_str(), R_OK) != 0) {
    return fail(
        absl::StrCat("cannot read the kernel image ", req.kernel, ": ", std::strerror(errno)));
  }
  if (!req.initramfs.empty() && access(req.initramfs.c_str(), R_OK) != 0) {
    return fail(
        absl::StrCat("cannot read the initramfs ", req.initramfs, ": ", std::strerror(errno)));
  }
  if (!spec.disk_image().empty() && access(spec.disk_image().c_str(), R_OK) != 0) {
    return fail(
        absl::StrCat("cannot read the disk image ", spec.disk_image(), ": ", std::strerror(errno)));
  }
  std::string result_path;
  if (!spec.shared_dir().empty()) {
    if (access(spec.shared_dir().c_str(), R_OK | W_OK | X_OK) != 0) {
      return fail(absl::StrCat("cannot share the directory ", spec.shared_dir(), ": ",
                               std::strerror(errno)));
    }
    if (!spec.result_file().empty()) {
      result_path = absl::StrCat(spec.shared_dir(), "/", spec.result_file());
      // A result left by an earlier boot must not be read as this one's.
      if (unlink(result_path.c_str()) != 0 && errno != ENOENT) {
        return fail(absl::StrCat("cannot remove the old result file ", result_path, ": ",
                                 std::strerror(errno)));
      }
    }
  }

  std::string accel = req.accel.empty() ? spec.accel() : req.accel;
  if (accel.empty()) accel = "auto";
  if (accel == "auto" || accel == "kvm") {
    KvmProbe probe = ProbeKvm(req.kernel);
    if (probe.usable) {
      accel = "kvm";
    } else if (accel == "kvm") {
      return fail(absl::StrCat("KVM was asked for but is not usable here: ", probe.reason,
                               " (use accel auto or tcg)"));
    } else {
      accel = "tcg";
      result.accel_note = absl::StrCat("KVM not usable: ", probe.reason, " (probe ",
                                       Seconds(probe.elapsed), ", once per process)");
    }
  } else if (accel != "tcg") {
    return fail(absl::StrCat("unknown accelerator \"", accel, "\": use auto, kvm or tcg"));
  }
  result.accel = accel;
  std::string kernel = req.kernel;
  if (!spec.no_pvh()) {
    PvhKernel k = PreparePvhKernel(req.kernel, req.kernel_cache_dir);
    kernel = std::move(k.path);
    result.pvh = k.pvh;
    result.entry_note = std::move(k.note);
  }
  result.command = QemuCommand(req, accel, kernel);

  Watch w;
  SubprocessOptions opts;
  opts.argv = result.command;
  if (req.control != nullptr) opts.container = req.control->container();
  // A backstop only: the watchdog below stops qemu long before.
  opts.timeout = facts.boot_timeout + facts.test_timeout + absl::Minutes(2);
  opts.on_output = [&](std::string_view chunk) {
    if (req.on_console) {
      std::string clean;
      clean.reserve(chunk.size());
      for (char c : chunk) {
        if (c != '\r') clean.push_back(c);
      }
      req.on_console(clean);
    }
    absl::MutexLock lock(&w.mu);
    const absl::Time now = absl::Now();
    w.last_output = now;
    ConsoleScanner::Events ev = w.console.Feed(chunk);
    if (ev.init_started) {
      w.init_at = now;
      w.changed = true;
    }
    if (ev.result) w.StopAt(now, StopReason::kResult);
    if (ev.test_timed_out) w.StopAt(now, StopReason::kGuestTimeout);
    if (ev.panic) w.StopAt(now + kPanicGrace, StopReason::kPanic);
    if (ev.crash && AnyListed(w.console, spec))
      w.StopAt(now + kCrashGrace, StopReason::kFatalCrash);
    if (ev.guest_stopped) w.StopAt(now + kHaltGrace, StopReason::kGuestStopped);
  };

  w.start = absl::Now();
  {
    absl::MutexLock lock(&w.mu);
    w.last_output = w.start;
  }
  absl::StatusOr<std::unique_ptr<Subprocess>> proc = Subprocess::Start(std::move(opts));
  if (!proc.ok()) {
    if (absl::IsNotFound(proc.status())) {
      return fail(absl::StrCat(proc.status().message(), " (install qemu-system-x86)"));
    }
    return fail(std::string(proc.status().message()));
  }
  if (req.control != nullptr) req.control->SetCurrent(proc->get());

  std::thread watchdog([&] {
    absl::MutexLock lock(&w.mu);
    while (!w.done) {
      absl::Time deadline = w.stop_at;
      StopReason why = w.reason;
      if (!facts.own_init) {
        if (w.start + facts.boot_timeout + facts.test_timeout < deadline) {
          deadline = w.start + facts.boot_timeout + facts.test_timeout;
          why = StopReason::kTestTimeout;
        }
      } else if (w.init_at == absl::InfiniteFuture()) {
        if (w.start + facts.boot_timeout < deadline) {
          deadline = w.start + facts.boot_timeout;
          why = StopReason::kBootTimeout;
        }
      } else {
        if (w.init_at + facts.test_timeout + kHostTestGrace < deadline) {
          deadline = w.init_at + facts.test_timeout + kHostTestGrace;
          why = StopReason::kTestTimeout;
        }
        if (req.silence_timeout != absl::InfiniteDuration() &&
            w.last_output + req.silence_timeout < deadline) {
          deadline = w.last_output + req.silence_timeout;
          why = StopReason::kSilence;
        }
      }
      if (absl::Now() >= deadline) {
        if (w.reason == StopReason::kNone) w.reason = why;
        if (w.decided_at == absl::InfiniteFuture()) w.decided_at = absl::Now();
        w.mu.Unlock();
        (*proc)->Cancel();
        w.mu.Lock();
        return;
      }
      w.changed = false;
      // Evaluated by absl::Condition with w.mu held; the analysis cannot see that in a lambda.
      auto wake = [&w]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return w.changed || w.done; };
      w.mu.AwaitWithDeadline(absl::Condition(&wake), deadline);
    }
  });

  SubprocessResult exit = (*proc)->Wait();
  {
    absl::MutexLock lock(&w.mu);
    w.done = true;
  }
  watchdog.join();
  if (req.control != nullptr) req.control->SetCurrent(nullptr);
  const absl::Time end = absl::Now();

  absl::MutexLock lock(&w.mu);
  if (w.console.Finish().init_started) w.init_at = end;
  facts.stop = w.reason;
  if (facts.stop == StopReason::kNone) {
    facts.qemu_failed = exit.kind == SubprocessResult::Kind::kSignaled ||
                        (exit.kind == SubprocessResult::Kind::kExited && exit.exit_code != 0) ||
                        exit.kind == SubprocessResult::Kind::kTimedOut;
    facts.qemu_status = exit.Describe();
  }
  if (!result_path.empty()) {
    facts.result_file_code = ReadResultFile(result_path, &facts.result_file_note);
  }
  ClassifyBoot(w.console, facts, result);
  if (req.control != nullptr && req.control->cancelled()) {
    result.outcome = BootOutcome::kCancelled;
    result.detail = "cancelled";
  }
  result.total_time = end - w.start;
  result.verdict_time = (w.decided_at == absl::InfiniteFuture() ? end : w.decided_at) - w.start;
  if (w.init_at != absl::InfiniteFuture()) result.boot_time = w.init_at - w.start;
  if (!result.accel_note.empty() && result.accel == "tcg") {
    absl::StrAppend(&result.detail, "\nTCG used: ", result.accel_note);
  }
  return result;
}

KvmProbe RunKvmProbe(std::string_view kernel_arg, const std::string& qemu) {
  const absl::Time start = absl::Now();
  auto finish = [&](bool usable, std::string reason) {
    return KvmProbe{usable, true, std::move(reason), absl::Now() - start};
  };
  int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    return finish(false, absl::StrCat("cannot open /dev/kvm: ", std::strerror(errno),
                                      errno == EACCES ? " (add the user to group kvm)" : ""));
  }
  int api = ioctl(fd, KVM_GET_API_VERSION, 0);
  close(fd);
  if (api != KVM_API_VERSION) {
    return finish(false, absl::StrCat("/dev/kvm answers API version ", api));
  }

  // A kernel known to boot beats the task's kernel, which may be the broken commit being bisected.
  std::string kernel;
  if (const char* k = getenv("FARM_KVM_PROBE_KERNEL"); k && *k) kernel = k;
  if (kernel.empty()) kernel = std::string(kernel_arg);
  if (kernel.empty()) kernel = DefaultProbeKernel();
  if (kernel.empty()) {
    return KvmProbe{false, false,
                    "KVM not probed: no kernel to boot (farm-agent --kvm-probe-kernel, or "
                    "FARM_KVM_PROBE_KERNEL)",
                    absl::Now() - start};
  }

  // No initramfs: the kernel initialises everything, then panics for want of a root file system,
  // which with panic=-1 and -no-reboot ends qemu. Any of these lines means the boot got through.
  static constexpr std::string_view kBootedLines[] = {
      "Run /init", "Kernel panic", "VFS:", "Freeing unused kernel", "Run /sbin/init"};
  absl::Mutex pmu;
  std::string text;
  bool banner = false, booted = false, done = false;
  BootRequest probe_req;
  probe_req.qemu = qemu;
  probe_req.kernel = kernel;
  probe_req.spec.set_memory_mb(256);
  probe_req.spec.set_kernel_cmdline("earlyprintk=serial,ttyS0,115200");
  SubprocessOptions opts;
  opts.argv = QemuCommand(probe_req, "kvm");  // exactly what a boot under KVM will run
  opts.timeout = kProbeTotalTimeout;
  Subprocess* raw = nullptr;
  opts.on_output = [&](std::string_view chunk) {
    absl::MutexLock l(&pmu);
    if (text.size() < (64 << 10)) text.append(chunk);
    banner = banner || text::Contains(text, "Linux version");
    for (std::string_view s : kBootedLines) {
      if (!booted && text::Contains(text, s)) {
        booted = true;
        raw->Cancel();
      }
    }
  };
  absl::StatusOr<std::unique_ptr<Subprocess>> proc = Subprocess::Start(std::move(opts));
  if (!proc.ok()) {
    return finish(false,
                  absl::StrCat("cannot start qemu for the KVM probe: ", proc.status().message()));
  }
  raw = proc->get();
  std::thread banner_watch([&] {
    absl::MutexLock l(&pmu);
    auto ready = [&]() { return banner || done; };
    if (!pmu.AwaitWithTimeout(absl::Condition(&ready), kProbeBannerTimeout)) raw->Cancel();
  });
  SubprocessResult r = (*proc)->Wait();
  {
    absl::MutexLock l(&pmu);
    done = true;
  }
  banner_watch.join();
  const absl::Duration took = absl::Now() - start;
  absl::MutexLock l(&pmu);
  if (booted) {
    return finish(true, absl::StrCat("a kernel booted under KVM in ", Seconds(took)));
  }
  if (r.kind == SubprocessResult::Kind::kExited || r.kind == SubprocessResult::Kind::kSignaled) {
    // qemu gave up by itself (e.g. "failed to set MSR" under nested virtualisation).
    std::string first_line = text.substr(0, text.find('\n'));
    return finish(false, absl::StrCat("qemu failed under KVM (", r.Describe(), ")",
                                      first_line.empty() ? "" : ": ", first_line));
  }
  if (!banner) {
    return finish(false,
                  absl::StrCat("a KVM guest printed nothing within ", Seconds(kProbeBannerTimeout),
                               " (KVM guests hang on this machine)"));
  }
  return finish(false, absl::StrCat("a KVM guest did not finish booting within ",
                                    Seconds(kProbeTotalTimeout), " (", r.Describe(), ")"));
}

KvmProbe ProbeKvm(std::string_view kernel) {
  static absl::Mutex mu(absl::kConstInit);
  static KvmProbe* cached = nullptr;
  absl::MutexLock lock(&mu);
  if (cached != nullptr) return *cached;
  KvmProbe probe = RunKvmProbe(kernel);
  if (probe.probed) cached = new KvmProbe(probe);
  return probe;
}

std::string DefaultProbeKernel() {
  if (const char* k = getenv("FARM_KVM_PROBE_KERNEL"); k && *k) return k;
  struct utsname u;
  if (uname(&u) == 0) {
    std::string host = absl::StrCat("/boot/vmlinuz-", u.release);
    if (access(host.c_str(), R_OK) == 0) return host;
  }
  return "";
}

bool KvmUsable(std::string_view kernel) { return ProbeKvm(kernel).usable; }

std::string AccelCapability(std::string_view kernel) { return KvmUsable(kernel) ? "kvm" : "tcg"; }

absl::StatusOr<std::string> QemuVersion(const std::string& qemu) {
  std::string out;
  SubprocessOptions opts;
  opts.argv = {qemu, "--version"};
  opts.timeout = absl::Seconds(10);
  opts.on_output = [&out](std::string_view chunk) {
    if (out.size() < 4096) out.append(chunk);
  };
  absl::StatusOr<std::unique_ptr<Subprocess>> proc = Subprocess::Start(std::move(opts));
  if (!proc.ok()) {
    if (absl::IsNotFound(proc.status())) {
      return absl::NotFoundError(absl::StrCat(qemu, " is not installed (install qemu-system-x86)"));
    }
    return proc.status();
  }
  SubprocessResult r = (*proc)->Wait();
  // "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)"
  constexpr std::string_view kWords = "version ";
  size_t at = out.find(kWords);
  if (r.kind != SubprocessResult::Kind::kExited || r.exit_code != 0 || at == std::string::npos) {
    const std::string first_line = out.substr(0, out.find('\n'));
    return absl::UnknownError(absl::StrCat(qemu, " --version (", r.Describe(),
                                           ") printed no version", first_line.empty() ? "" : ": ",
                                           first_line));
  }
  std::string version = out.substr(at + kWords.size());
  return version.substr(0, version.find_first_of(" \n"));
}

std::map<std::string, std::string> BootCapabilities(const absl::StatusOr<std::string>& qemu_version,
                                                    const KvmProbe* probe) {
  std::map<std::string, std::string> caps;
  if (!qemu_version.ok() || probe == nullptr) {
    caps["accel"] = absl::IsNotFound(qemu_version.status())
                        ? "none (qemu-system-x86_64 missing)"
                        : absl::StrCat("none (", qemu_version.status().message(), ")");
    return caps;
  }
  caps["qemu"] = *qemu_version;
  if (probe->usable) {
    caps["accel"] = "kvm";
  } else {
    caps["accel"] = probe->probed ? "tcg" : "unknown";
    caps["accel_note"] = probe->reason;
  }
  return caps;
}

std::map<std::string, std::string> ProbeBootCapabilities() {
  absl::StatusOr<std::string> version = QemuVersion();
  if (!version.ok()) return BootCapabilities(version, nullptr);
  KvmProbe probe = ProbeKvm();
  return BootCapabilities(version, &probe);
}

}  // namespace farm::boot
