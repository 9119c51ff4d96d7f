// Boots a real kernel (Debian's cloud kernel, fetched by tests/e2e/fetch-kernel.sh) under qemu with
// the farm's initramfs and checks that each kind of outcome gets its own verdict, in seconds.
// Skips, saying why, when the kernel, qemu or busybox is missing.
//
// The kernel: $FARM_TEST_KERNEL, else $FARM_KERNEL_CACHE/debian-cloud/vmlinuz (default cache
// /var/cache/farm-test-kernels).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/boot/boot_verdict.h"
#include "agent/boot/initramfs.h"
#include "agent/boot/modules.h"
#include "agent/boot/qemu_boot.h"
#include "common/task_control/task_control.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/e2e_kernel.h"
#include "tests/lib/test_util.h"

namespace farm::boot {
namespace {

namespace v1 = farm::v1;

// Time allowed after an event (a panic, a deadline, a cancel) for qemu to be stopped, on a loaded
// 2-core machine under TCG. Bounds below only tell "stopped at the event" from "waited for the
// next deadline" (the test's timeout, a sleep 1000), which is always further away than this.
constexpr absl::Duration kSlack = absl::Seconds(30);
using ::farm::testing::Bin;
using ::farm::testing::MakeTempDir;
using ::farm::testing::Quote;
using ::farm::testing::Sh;
using ::testing::HasSubstr;

using ::farm::e2e::KernelCache;
using ::farm::e2e::ReadFileOrEmpty;
using ::farm::e2e::TestKernel;

// The module tree fetch-kernel.sh keeps next to the kernel.
std::string ModulesDir(const std::string& kernel) {
  return kernel.substr(0, kernel.rfind('/')) + "/modules";
}

void WriteFile(const std::string& path, const std::string& data, mode_t mode = 0644) {
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << data;
  }
  chmod(path.c_str(), mode);
}

class BootE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kernel_ = TestKernel();
    if (std::string why = e2e::WhyNoBoot(kernel_); !why.empty()) GTEST_SKIP() << why;
    if (!e2e::HaveBusybox()) {
      GTEST_SKIP() << "busybox is not installed (apt-get install busybox-static)";
    }
    work_ = MakeTempDir("boot-e2e");
  }

  void TearDown() override {
    if (HasFailure() && !console_.empty()) {
      std::printf("--- console of the failed boot ---\n%s\n---\n", console_.c_str());
    }
    // Initramfs archives are megabytes: keep them only to look at a failure.
    if (!HasFailure() && !work_.empty()) Sh("rm -rf " + Quote(work_));
    for (const std::string& d : shared_dirs_) {
      if (!HasFailure()) Sh("rm -rf " + Quote(d));
    }
  }

  v1::BootSpec Spec(const std::string& payload) {
    v1::BootSpec spec;
    spec.set_payload(payload);
    spec.set_accel("tcg");  // the KVM probe has its own test
    spec.set_test_timeout_seconds(60);
    spec.set_boot_timeout_seconds(60);
    return spec;
  }

  // Builds the initramfs and boots; prints the timing.
  BootResult Run(const std::string& name, const v1::BootSpec& spec, TaskControl* control = nullptr,
                 std::function<void(std::string_view)> watch = nullptr,
                 const InitramfsOptions& options = {}, const std::string& kernel = "") {
    const absl::Time t0 = absl::Now();
    absl::StatusOr<std::string> initramfs = BuildInitramfs(spec, work_, options);
    const absl::Duration build = absl::Now() - t0;
    if (!initramfs.ok()) {
      ADD_FAILURE() << "BuildInitramfs: " << initramfs.status();
      return BootResult();
    }
    BootRequest req;
    req.kernel = kernel.empty() ? kernel_ : kernel;
    req.kernel_cache_dir = kernel_cache_dir_;
    req.initramfs = *initramfs;
    req.spec = spec;
    req.control = control;
    console_.clear();
    req.on_console = [&](std::string_view chunk) {
      console_.append(chunk);
      if (watch) watch(chunk);
    };
    BootResult r = Boot(req);
    std::printf("[ boot ] %-22s %s | initramfs %.1f ms, qemu %.2fs\n", name.c_str(),
                r.Summary().c_str(), absl::ToDoubleMilliseconds(build),
                absl::ToDoubleSeconds(r.total_time));
    return r;
  }

  std::string kernel_;
  std::string kernel_cache_dir_;  // empty: the image as given, as most tests here want
  std::string work_;
  std::string console_;
  std::vector<std::string> shared_dirs_;
};

TEST_F(BootE2eTest, PassingTestIsGood) {
  BootResult r = Run("passing test", Spec("#!/bin/sh\necho hello from the guest\nexit 0\n"));
  EXPECT_EQ(r.outcome, BootOutcome::kPassed) << r.detail;
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.accel, "tcg");
  EXPECT_TRUE(r.init_started);
  EXPECT_GT(r.boot_time, absl::ZeroDuration());
  EXPECT_LE(r.boot_time, r.verdict_time);
  EXPECT_THAT(console_, HasSubstr("hello from the guest"));
  EXPECT_EQ(DecideVerdict(r, v1::BootSpec()).verdict, v1::GOOD);
}

TEST_F(BootE2eTest, PvhBootOfTheElfKernel) {
  // The ELF vmlinux (fetch-kernel.sh extracts it from the package's bzImage; a kernel build has it
  // in its output directory) boots through the PVH entry when the kernel has CONFIG_PVH: no
  // decompressor, no real-mode setup.
  const std::string vmlinux = kernel_.substr(0, kernel_.rfind('/')) + "/vmlinux";
  if (access(vmlinux.c_str(), R_OK) != 0) {
    GTEST_SKIP() << "no " << vmlinux << " (fetch-kernel.sh extracts it when python3 and the "
                 << "decompressor are installed)";
  }
  BootResult r =
      Run("passing test (PVH ELF)", Spec("#!/bin/sh\nexit 0\n"), nullptr, nullptr, {}, vmlinux);
  EXPECT_EQ(r.outcome, BootOutcome::kPassed) << r.detail;
}

TEST_F(BootE2eTest, BzImageIsBootedThroughItsPvhEntryUnlessTheJobSaysNo) {
  // What an agent does with a bzImage: unpack its ELF once (Debian's payload is lz4: the lz4
  // tool) and enter it through PVH. The guest tells which way it came in: boot_params carries the
  // bzImage's own boot protocol version (2.15) after its setup, the 2.12 the kernel's PVH code
  // writes after a PVH entry (arch/x86/platform/pvh/enlighten.c).
  if (Sh("command -v lz4").exit_code != 0) GTEST_SKIP() << "lz4 is not installed (apt-get install lz4)";
  kernel_cache_dir_ = work_ + "/kernels";
  const std::string test =
      "#!/bin/sh\necho protocol=$(od -An -tx2 -j 518 -N 2 /sys/kernel/boot_params/data)\n";
  BootResult pvh = Run("bzImage through PVH", Spec(test));
  EXPECT_EQ(pvh.outcome, BootOutcome::kPassed) << pvh.detail;
  EXPECT_TRUE(pvh.pvh) << pvh.entry_note;
  EXPECT_THAT(pvh.Summary(), HasSubstr(", pvh"));
  EXPECT_THAT(console_, HasSubstr("protocol= 020c"));
  EXPECT_NE(pvh.command[std::find(pvh.command.begin(), pvh.command.end(), "-kernel") -
                        pvh.command.begin() + 1],
            kernel_);

  v1::BootSpec no_pvh = Spec(test);
  no_pvh.set_no_pvh(true);
  BootResult as_given = Run("bzImage, no_pvh", no_pvh);
  EXPECT_EQ(as_given.outcome, BootOutcome::kPassed) << as_given.detail;
  EXPECT_FALSE(as_given.pvh);
  EXPECT_THAT(console_, HasSubstr("protocol= 020f"));
  EXPECT_THAT(as_given.command, ::testing::Contains(kernel_));
}

TEST_F(BootE2eTest, FailingTestIsBad) {
  BootResult r = Run("failing test", Spec("#!/bin/sh\necho the bug is here >&2\nexit 1\n"));
  EXPECT_EQ(r.outcome, BootOutcome::kFailed) << r.detail;
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(DecideVerdict(r, v1::BootSpec()).verdict, v1::BAD);
}

TEST_F(BootE2eTest, PanicFromThePayload) {
  v1::BootSpec spec =
      Spec("#!/bin/sh\necho about to crash\necho c > /proc/sysrq-trigger\nsleep 30\n");
  BootResult r = Run("panic", spec);
  EXPECT_EQ(r.outcome, BootOutcome::kPanic) << r.detail;
  EXPECT_THAT(r.crash_line, HasSubstr("Kernel panic - not syncing: sysrq triggered crash"));
  EXPECT_THAT(r.detail, HasSubstr("sysrq_handle_crash")) << "the trace is in the detail";
  // kPanic already says the panic ended the boot; the bound says it did not wait for the test's
  // timeout either.
  EXPECT_LT(r.verdict_time - r.boot_time, absl::Seconds(spec.test_timeout_seconds()))
      << "stopped at the panic";
  EXPECT_EQ(DecideVerdict(r, spec).verdict, v1::SKIP) << "by default a panic is not a verdict";
  spec.add_bad_failures(v1::PANIC);
  EXPECT_EQ(DecideVerdict(r, spec).verdict, v1::BAD);
}

TEST_F(BootE2eTest, HangingTestTimesOut) {
  v1::BootSpec spec = Spec("#!/bin/sh\necho going to sleep\nsleep 1000\n");
  spec.set_test_timeout_seconds(5);
  BootResult r = Run("hang (5 s timeout)", spec);
  EXPECT_EQ(r.outcome, BootOutcome::kHang) << r.detail;
  EXPECT_GE(r.verdict_time - r.boot_time, absl::Seconds(5));
  EXPECT_LT(r.verdict_time - r.boot_time, absl::Seconds(5) + kSlack) << "not the sleep 1000";
  EXPECT_EQ(DecideVerdict(r, spec).verdict, v1::SKIP);
  spec.add_bad_failures(v1::HANG);
  EXPECT_EQ(DecideVerdict(r, spec).verdict, v1::BAD);
}

TEST_F(BootE2eTest, KtapWithOneFailureIsBad) {
  BootResult r = Run("KTAP not ok", Spec(R"SH(#!/bin/sh
echo "KTAP version 1"
echo "1..3"
echo "ok 1 first"
echo "# second: expected 128, got 4096"
echo "not ok 2 second"
echo "ok 3 third # SKIP no such device"
exit 0
)SH"));
  EXPECT_EQ(r.outcome, BootOutcome::kFailed) << r.detail;
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.ktap.passed, 1);
  EXPECT_EQ(r.ktap.failed, 1);
  EXPECT_EQ(r.ktap.skipped, 1);
  EXPECT_TRUE(r.ktap.complete);
  EXPECT_EQ(r.ktap.first_failure, "second");
  EXPECT_EQ(DecideVerdict(r, v1::BootSpec()).verdict, v1::BAD);
}

TEST_F(BootE2eTest, ResultReadWhileTheKernelFloodsTheConsole) {
  // Kernel lines land in the middle of init's markers; 125 must not be read as 12, nor be missed.
  BootResult r = Run("console flood, exit 125", Spec(R"SH(#!/bin/sh
(i=0; while :; do i=$((i+1)); echo "farm-noise $i: a kernel message" > /dev/kmsg; done) &
sleep 0.5
exit 125
)SH"));
  EXPECT_EQ(r.outcome, BootOutcome::kSkipped) << r.detail;
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_THAT(console_, HasSubstr("farm-noise"));
}

TEST_F(BootE2eTest, CSourceCompiledStatically) {
  if (Sh("printf 'int main(){return 0;}' | gcc -static -x c -o /dev/null -").exit_code != 0) {
    GTEST_SKIP() << "gcc -static does not work (apt-get install gcc libc6-dev)";
  }
  // The seed's kind of test: a listen() on the loopback interface that init brought up.
  BootResult r = Run("C payload (loopback)", Spec(R"C(
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons(4242);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s, (struct sockaddr*)&a, sizeof(a)) || listen(s, 8)) { perror("listen"); return 1; }
  if (connect(c, (struct sockaddr*)&a, sizeof(a))) { perror("connect"); return 1; }
  printf("connected over loopback\n");
  return 0;
}
)C"));
  EXPECT_EQ(r.outcome, BootOutcome::kPassed) << r.detail;
  EXPECT_THAT(console_, HasSubstr("connected over loopback"));
}

TEST_F(BootE2eTest, AutoAccelFallsBackToTcgInSeconds) {
  const absl::Time t0 = absl::Now();
  KvmProbe probe = ProbeKvm(kernel_);
  const absl::Duration probe_time = absl::Now() - t0;
  std::printf("[ measure ] KVM probe: %s in %.2fs: %s\n", probe.usable ? "usable" : "not usable",
              absl::ToDoubleSeconds(probe_time), probe.reason.c_str());
  EXPECT_TRUE(probe.probed);
  EXPECT_LT(probe_time, kSlack);
  v1::BootSpec spec = Spec("#!/bin/sh\nexit 0\n");
  spec.set_accel("auto");
  BootResult r = Run("accel auto", spec);
  EXPECT_EQ(r.outcome, BootOutcome::kPassed) << r.detail;
  EXPECT_EQ(r.accel, probe.usable ? "kvm" : "tcg");
  EXPECT_EQ(AccelCapability(), r.accel) << "the probe runs once per process";
  if (!probe.usable) {
    EXPECT_FALSE(r.accel_note.empty());
    EXPECT_LT(probe_time, kSlack) << "a hanging KVM must be noticed, not waited for";
  }
}

TEST_F(BootE2eTest, BootThatNeverReachesInit) {
  v1::BootSpec spec = Spec("#!/bin/sh\nexit 0\n");
  spec.set_boot_timeout_seconds(1);  // the kernel needs longer than that under TCG
  BootResult r = Run("no init (1 s budget)", spec);
  EXPECT_EQ(r.outcome, BootOutcome::kNoInit) << r.detail;
  EXPECT_FALSE(r.init_started);
  EXPECT_LT(r.verdict_time, absl::Seconds(1) + kSlack) << "the boot budget, not the test's 60 s";
  EXPECT_EQ(DecideVerdict(r, spec).verdict, v1::SKIP);
}

TEST_F(BootE2eTest, DiskImageIsSeenButNeverChanged) {
  // Debian's cloud kernel has virtio_blk as a module: load it (and its dependencies) from the
  // package's module tree.
  absl::StatusOr<std::vector<std::string>> modules =
      ResolveModules(ModulesDir(kernel_), {"virtio_blk", "virtio_pci"});
  if (!modules.ok()) {
    GTEST_SKIP() << "no virtio_blk module next to the kernel (" << modules.status()
                 << "): run tests/e2e/fetch-kernel.sh again after removing " << ModulesDir(kernel_);
  }
  InitramfsOptions options;
  options.modules = *modules;
  const std::string disk = work_ + "/disk.img";
  ASSERT_EQ(Sh("head -c 4194304 /dev/zero > " + Quote(disk) +
               " && printf FARM-DISK-MARKER | dd of=" + Quote(disk) + " conv=notrunc 2>/dev/null")
                .exit_code,
            0);
  const std::string before = Sh("md5sum < " + Quote(disk)).output;
  // A shared directory too: this kernel has no 9p, so the guest says so and the console decides.
  const std::string shared = MakeTempDir("boot-share");
  shared_dirs_.push_back(shared);
  WriteFile(shared + "/test_result", "1\n");  // stale: must not be read as this boot's result
  v1::BootSpec spec = Spec(R"SH(#!/bin/sh
[ "$(head -c 16 /dev/vda)" = FARM-DISK-MARKER ] || { echo "no marker on /dev/vda"; exit 1; }
dd if=/dev/zero of=/dev/vda bs=4096 count=16 2>/dev/null && sync && echo "overwrote /dev/vda"
exit 0
)SH");
  spec.set_disk_image(disk);
  spec.set_shared_dir(shared);
  spec.set_result_file("test_result");
  BootResult r = Run("disk (virtio_blk.ko)", spec, nullptr, nullptr, options);
  EXPECT_EQ(r.outcome, BootOutcome::kPassed) << r.detail;
  EXPECT_THAT(console_, HasSubstr("overwrote /dev/vda"));
  EXPECT_EQ(Sh("md5sum < " + Quote(disk)).output, before) << "-snapshot: the image is unchanged";
  EXPECT_THAT(console_, HasSubstr("cannot mount the shared directory"));
  EXPECT_EQ(r.exit_code_source, "console");
  EXPECT_THAT(r.detail, HasSubstr("was not written"));
  EXPECT_EQ(access((shared + "/test_result").c_str(), F_OK), -1) << "the stale result was removed";
}

TEST_F(BootE2eTest, SharedDirectoryResultFile) {
  // Debian's generic kernel has 9p as modules (the cloud kernel has none).
  const std::string kernel = KernelCache() + "/debian-generic/vmlinuz";
  if (access(kernel.c_str(), R_OK) != 0) {
    GTEST_SKIP() << "no kernel with 9p at " << kernel << ": run tests/e2e/fetch-kernel.sh generic";
  }
  absl::StatusOr<std::vector<std::string>> modules =
      ResolveModules(ModulesDir(kernel), {"9p", "9pnet_virtio", "virtio_pci"});
  ASSERT_TRUE(modules.ok()) << modules.status();
  InitramfsOptions options;
  options.modules = *modules;
  const std::string shared = MakeTempDir("boot-share");
  shared_dirs_.push_back(shared);
  WriteFile(shared + "/test_result", "0\n");  // stale: must not be read as this boot's result
  v1::BootSpec spec = Spec(R"SH(#!/bin/sh
echo "running in $(pwd)"
echo "written by the guest" > from-guest.txt
exit 1
)SH");
  spec.set_shared_dir(shared);
  spec.set_result_file("test_result");
  BootResult r = Run("9p result file", spec, nullptr, nullptr, options, kernel);
  EXPECT_EQ(r.outcome, BootOutcome::kFailed) << r.detail;
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.exit_code_source, "result file");
  EXPECT_THAT(console_, HasSubstr("running in /farm/shared"));
  EXPECT_EQ(ReadFileOrEmpty(shared + "/test_result"), "1\n");
  EXPECT_EQ(ReadFileOrEmpty(shared + "/from-guest.txt"), "written by the guest\n");
}

TEST_F(BootE2eTest, CancelStopsQemu) {
  TaskControl control;
  std::atomic<bool> cancelled{false};
  absl::Time cancel_at;
  BootResult r = Run("cancel", Spec("#!/bin/sh\nsleep 1000\n"), &control, [&](std::string_view) {
    // console_ has every chunk so far: the marker may span two.
    if (!cancelled && absl::StrContains(console_, "FARM-INIT-STARTED")) {
      cancelled = true;
      cancel_at = absl::Now();
      std::thread([&control] { control.Cancel(); }).detach();
    }
  });
  ASSERT_TRUE(cancelled.load());
  EXPECT_EQ(r.outcome, BootOutcome::kCancelled);
  EXPECT_LT(absl::Now() - cancel_at, kSlack) << "stopped at the cancel, not after the sleep";
  EXPECT_FALSE(DecideVerdict(r, v1::BootSpec()).verdict.has_value());
}

TEST_F(BootE2eTest, FarmBootCommandFollowsGitBisectRun) {
  const std::string tool = Bin("farm-boot-tool");
  if (access(tool.c_str(), X_OK) != 0) GTEST_SKIP() << tool << " is not built";
  struct Case {
    const char* script;
    int code;
    const char* word;
  } cases[] = {{"exit 0", 0, "GOOD"}, {"exit 3", 1, "BAD"}, {"exit 125", 125, "SKIP"}};
  for (const Case& c : cases) {
    const std::string test = work_ + "/t.sh";
    WriteFile(test, absl::StrCat("#!/bin/sh\necho running\n", c.script, "\n"), 0755);
    const std::string console = work_ + "/console.txt";
    const absl::Time t0 = absl::Now();
    auto out = Sh(absl::StrCat(Quote(tool), " --kernel ", Quote(kernel_), " --test ", Quote(test),
                               " --accel tcg --work-dir ", Quote(work_ + "/cache"), " --console ",
                               Quote(console)));
    std::printf("[ boot ] farm boot: %-10s exit %d in %.2fs\n", c.script, out.exit_code,
                absl::ToDoubleSeconds(absl::Now() - t0));
    EXPECT_EQ(out.exit_code, c.code) << out.output;
    EXPECT_THAT(out.output, HasSubstr(absl::StrCat("farm boot: ", c.word)));
    EXPECT_THAT(out.output, HasSubstr("boot to verdict"));
    EXPECT_THAT(ReadFileOrEmpty(console), HasSubstr("running"));
  }
}

}  // namespace
}  // namespace farm::boot
