#include "cli/boot_cmd.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agent/boot/boot_verdict.h"
#include "agent/boot/initramfs.h"
#include "agent/boot/kvm_probe_memory.h"
#include "agent/boot/modules.h"
#include "agent/boot/qemu_boot.h"
#include "common/task_control/task_control.h"
#include "common/signals.h"
#include "common/spec/spec.h"

namespace farm {
namespace {

namespace v1 = farm::v1;

constexpr int kExitGood = 0;
constexpr int kExitBad = 1;
constexpr int kExitBadInput = 2;
constexpr int kExitSkip = 125;
constexpr int kExitInterrupted = 130;
constexpr int kExitInfra = 255;

int Fail(const std::string& message, int code = kExitBadInput) {
  std::fprintf(stderr, "farm boot: %s\n", message.c_str());
  return code;
}

std::string DefaultWorkDir() {
  if (const char* d = std::getenv("FARM_BOOT_CACHE")) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return absl::StrCat(x, "/farm/boot");
  if (const char* h = std::getenv("HOME"); h && *h) return absl::StrCat(h, "/.cache/farm/boot");
  return absl::StrCat("/tmp/farm-boot-", getuid());
}

bool ParseFailure(std::string name, v1::BootFailure* out) {
  name = absl::AsciiStrToLower(name);
  if (name == "panic")
    *out = v1::PANIC;
  else if (name == "oops")
    *out = v1::OOPS;
  else if (name == "bug")
    *out = v1::BUG;
  else if (name == "hang")
    *out = v1::HANG;
  else if (name == "no-init" || name == "no_init" || name == "noinit")
    *out = v1::NO_INIT;
  else
    return false;
  return true;
}

std::string Seconds(absl::Duration d) { return absl::StrFormat("%.2fs", absl::ToDoubleSeconds(d)); }

}  // namespace

void AddBootFlags(CLI::App* cmd, BootFlags& f) {
  cmd->add_option("--kernel", f.kernel, "kernel image to boot (bzImage)")->required();
  cmd->add_option("--test", f.test,
                  "the test: a shell script, a C file (compiled with gcc -static) or a static "
                  "binary; run as the guest's only program")
      ->required();
  cmd->add_option("--kind", f.kind, "what --test is: sh, c or binary (default: guessed)")
      ->check(CLI::IsMember({"sh", "shell", "c", "binary"}));
  cmd->add_option("--accel", f.accel, "auto (KVM if a probe boot works, else TCG), kvm or tcg")
      ->check(CLI::IsMember({"auto", "kvm", "tcg"}))
      ->capture_default_str();
  cmd->add_option("--memory", f.memory_mb, "guest memory, MB")
      ->check(CLI::Range(spec::kMinMemoryMb, spec::kMaxMemoryMb))
      ->capture_default_str();
  cmd->add_option("--cpus", f.cpus, "guest CPUs")->check(CLI::Range(1, 256))->capture_default_str();
  cmd->add_option("--append", f.append, "extra kernel command line");
  cmd->add_option("--timeout", f.timeout, "seconds the test may run before it counts as a hang")
      ->check(CLI::Range(1, 7 * 86400))
      ->capture_default_str();
  cmd->add_option("--boot-timeout", f.boot_timeout, "seconds until init must have started")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  cmd->add_option("--disk", f.disk,
                  "disk image (qcow2 or raw), opened copy-on-write: never changed");
  cmd->add_option("--share", f.share,
                  "host directory shared with the guest over 9p (/farm/shared)");
  cmd->add_option(
      "--result-file", f.result_file,
      "file in --share that receives the test's exit code; the verdict is read from it");
  cmd->add_option("--bad-on", f.bad_on,
                  "boot failures that count as bad instead of skip: panic, oops, bug, hang, "
                  "no-init (repeatable or comma-separated)")
      ->delimiter(',');
  cmd->add_option("--qemu-arg", f.qemu_args,
                  "argument appended to qemu's command line (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--module", f.modules,
                  "kernel module loaded before the test (repeatable): a .ko path, or a name looked "
                  "up with its dependencies in --modules-dir");
  cmd->add_option("--modules-dir", f.modules_dir,
                  "the kernel's module tree (/lib/modules/VERSION, e.g. from dpkg -x of its "
                  "package), for --module NAME");
  cmd->add_option("--console", f.console_file, "write the console here instead of to stdout");
  cmd->add_option("--work-dir", f.work_dir,
                  "cache for the initramfs parts and compiled tests (default ~/.cache/farm/boot "
                  "or $FARM_BOOT_CACHE)");
  cmd->add_flag("--gzip", f.gzip, "gzip the initramfs (the kernel needs CONFIG_RD_GZIP)");
  cmd->add_flag("--no-pvh", f.no_pvh,
                "boot a bzImage through its own setup and decompressor (default: its ELF through "
                "the kernel's PVH entry when it has one, faster under TCG)");
}

int RunBoot(const BootFlags& f) {
  v1::BootSpec spec;
  {
    std::ifstream in(f.test, std::ios::binary);
    if (!in) return Fail(absl::StrCat("cannot read the test ", f.test));
    std::stringstream ss;
    ss << in.rdbuf();
    spec.set_payload(ss.str());
  }
  if (f.kind == "sh" || f.kind == "shell") {
    spec.set_payload_kind(v1::BootSpec::SHELL);
  } else if (f.kind == "c") {
    spec.set_payload_kind(v1::BootSpec::C_SOURCE);
  } else if (f.kind == "binary") {
    spec.set_payload_kind(v1::BootSpec::BINARY);
  } else if (absl::EndsWith(f.test, ".sh")) {
    spec.set_payload_kind(v1::BootSpec::SHELL);
  } else if (absl::EndsWith(f.test, ".c")) {
    spec.set_payload_kind(v1::BootSpec::C_SOURCE);
  }
  spec.set_kernel_image(f.kernel);
  spec.set_kernel_cmdline(f.append);
  for (const std::string& a : f.qemu_args) spec.add_qemu_args(a);
  spec.set_memory_mb(f.memory_mb);
  spec.set_cpus(f.cpus);
  spec.set_disk_image(f.disk);
  spec.set_shared_dir(f.share);
  spec.set_result_file(f.result_file);
  spec.set_boot_timeout_seconds(f.boot_timeout);
  spec.set_test_timeout_seconds(f.timeout);
  spec.set_accel(f.accel);
  spec.set_no_pvh(f.no_pvh);
  for (const std::string& name : f.bad_on) {
    v1::BootFailure failure;
    if (!ParseFailure(name, &failure)) {
      return Fail(absl::StrCat("--bad-on ", name,
                               ": unknown boot failure (use panic, oops, bug, hang or no-init)"));
    }
    spec.add_bad_failures(failure);
  }
  if (!f.result_file.empty() && f.share.empty()) {
    return Fail("--result-file needs --share: the file is read from the shared directory");
  }
  if (access(f.kernel.c_str(), R_OK) != 0) {
    return Fail(absl::StrCat("cannot read the kernel image ", f.kernel, " (--kernel)"));
  }

  const std::string work_dir = f.work_dir.empty() ? DefaultWorkDir() : f.work_dir;
  boot::InitramfsOptions iopts;
  iopts.compress = f.gzip;
  std::vector<std::string> names;
  for (const std::string& m : f.modules) {
    if (absl::EndsWith(m, ".ko") || m.find('/') != std::string::npos) {
      iopts.modules.push_back(m);
    } else {
      names.push_back(m);
    }
  }
  if (!names.empty()) {
    if (f.modules_dir.empty()) {
      return Fail(absl::StrCat("--module ", names.front(),
                               " is a name: give --modules-dir (or a path to the .ko file)"));
    }
    absl::StatusOr<std::vector<std::string>> resolved = boot::ResolveModules(f.modules_dir, names);
    if (!resolved.ok()) return Fail(std::string(resolved.status().message()));
    iopts.modules.insert(iopts.modules.end(), resolved->begin(), resolved->end());
  }
  const absl::Time build_start = absl::Now();
  absl::StatusOr<std::string> initramfs = boot::BuildInitramfs(spec, work_dir, iopts);
  const absl::Duration build_time = absl::Now() - build_start;
  if (!initramfs.ok()) {
    return Fail(std::string(initramfs.status().message()),
                absl::IsInternal(initramfs.status()) ? kExitInfra : kExitBadInput);
  }

  FILE* console = stdout;
  if (!f.console_file.empty()) {
    console = std::fopen(f.console_file.c_str(), "w");
    if (console == nullptr) return Fail(absl::StrCat("cannot write ", f.console_file));
  }

  static TaskControl* control = new TaskControl();  // outlives the signal thread
  HandleTerminationSignals([](int) { control->Cancel(); });

  boot::BootRequest req;
  // A KVM probe that failed in an earlier run is not repeated (boot::RememberKvmProbe).
  const std::string probe_file = work_dir + "/kvm-probe";
  const bool auto_accel = f.accel.empty() || f.accel == "auto";
  const std::string probe_key = auto_accel ? boot::KvmProbeKey() : "";
  std::optional<std::string> recalled;
  if (auto_accel) recalled = boot::RecallFailedKvmProbe(probe_file, probe_key);
  if (recalled) req.accel = "tcg";
  req.kernel = f.kernel;
  req.initramfs = *initramfs;
  req.spec = spec;
  req.control = control;
  req.kernel_cache_dir = work_dir + "/kernels";
  req.on_console = [console](std::string_view chunk) {
    std::fwrite(chunk.data(), 1, chunk.size(), console);
    std::fflush(console);
  };
  boot::BootResult r = boot::Boot(req);
  if (console != stdout) std::fclose(console);
  if (auto_accel && !recalled && r.accel == "tcg") {
    // Boot probed (once per process): the same answer again, at no cost.
    if (absl::Status st = boot::RememberKvmProbe(probe_file, probe_key, boot::ProbeKvm(f.kernel));
        !st.ok()) {
      std::fprintf(stderr, "farm boot: %s (the next run probes KVM again)\n",
                   std::string(st.message()).c_str());
    }
  }
  boot::BootVerdict v = boot::DecideVerdict(r, spec);

  std::string word;
  int code;
  if (r.outcome == boot::BootOutcome::kCancelled) {
    word = "INTERRUPTED";
    code = kExitInterrupted;
  } else if (!v.verdict.has_value()) {
    word = "ERROR";
    code = kExitInfra;
  } else if (*v.verdict == v1::GOOD) {
    word = "GOOD";
    code = kExitGood;
  } else if (*v.verdict == v1::BAD) {
    word = "BAD";
    code = kExitBad;
  } else {
    word = "SKIP";
    code = kExitSkip;
  }
  std::printf("\nfarm boot: %s: %s\n", word.c_str(),
              v.verdict.has_value() ? v.detail.c_str() : v.infra_error.c_str());
  std::printf("  outcome: %s\n", r.Summary().c_str());
  std::printf("  timing: initramfs %.1fms, boot to init %s, boot to verdict %s, qemu total %s\n",
              absl::ToDoubleMilliseconds(build_time),
              r.init_started ? Seconds(r.boot_time).c_str() : "-", Seconds(r.verdict_time).c_str(),
              Seconds(r.total_time).c_str());
  if (!r.pvh && !r.entry_note.empty()) {
    std::printf("  entry: the image as given, not PVH (%s)\n", r.entry_note.c_str());
  }
  if (!r.accel_note.empty() && r.accel == "tcg") {
    std::printf("  accel: tcg (%s)\n", r.accel_note.c_str());
  } else if (recalled) {
    std::printf(
        "  accel: tcg (KVM not usable: %s; remembered in %s until the host reboots or "
        "qemu changes)\n",
        recalled->c_str(), probe_file.c_str());
  }
  if (!r.detail.empty() && code != kExitGood) {
    std::printf("  detail:\n");
    for (absl::string_view line : absl::StrSplit(r.detail, '\n')) {
      std::printf("    %.*s\n", static_cast<int>(line.size()), line.data());
    }
  }
  std::fflush(stdout);
  return code;
}

}  // namespace farm
