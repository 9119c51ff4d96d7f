// The farm's kernel path end to end with real boots of Debian's cloud kernel (fetched by
// tests/e2e/fetch-kernel.sh): `farm bisect --kernels` over a list of images, and a farm-agent that
// says in its capabilities which accelerator it boots with (`farm agents`). Skips, saying why,
// when the kernel, qemu or busybox is missing.
//
// The kernel: e2e_kernel.h's TestKernel().
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/boot/qemu_boot.h"
#include "coordinator/service/service.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/e2e_kernel.h"
#include "tests/lib/test_util.h"

namespace farm {
namespace {

using ::farm::testing::Background;
using ::farm::testing::Bin;
using ::farm::testing::MakeTempDir;
using ::farm::testing::Quote;
using ::farm::testing::Sh;
using ::testing::HasSubstr;

using ::farm::e2e::ReadFileOrEmpty;

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << data;
}

class FarmKernelsE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kernel_ = e2e::TestKernel();
    if (std::string why = e2e::WhyNoBoot(kernel_); !why.empty()) GTEST_SKIP() << why;
    for (const char* bin : {"farm", "farm-agent"}) {
      if (access(Bin(bin).c_str(), X_OK) != 0) GTEST_SKIP() << Bin(bin) << " is not built";
    }
    dir_ = MakeTempDir("farm-kernels-e2e");
  }
  void TearDown() override {
    if (!HasFailure() && !dir_.empty()) Sh("rm -rf " + Quote(dir_));
  }

  std::string kernel_;
  std::string dir_;
};

// Offset of root_dev in a bzImage's setup header (Documentation/x86/boot.rst): a field the kernel
// ignores when it boots an initramfs, which qemu passes on and the guest can read back from
// /sys/kernel/boot_params/data. Copies of one kernel that differ there are images a guest can
// tell apart.
constexpr size_t kRootDevOffset = 0x1fc;

TEST_F(FarmKernelsE2eTest, KernelsListBisectNamesTheImageTheGuestBooted) {
  if (!e2e::HaveBusybox())
    GTEST_SKIP() << "busybox is not installed (apt-get install busybox-static)";
  const std::string image = ReadFileOrEmpty(kernel_);
  ASSERT_GT(image.size(), 0x210u);
  ASSERT_EQ(image.substr(0x202, 4), "HdrS") << kernel_ << " is not a bzImage";
  // Five images, oldest first; the guest's test fails from image 3 on.
  constexpr int kImages = 5, kCulprit = 3;
  std::vector<std::string> images;
  for (int i = 0; i < kImages; ++i) {
    std::string copy = image;
    const uint16_t root_dev = 0xfa00 + i;
    copy[kRootDevOffset] = static_cast<char>(root_dev & 0xff);
    copy[kRootDevOffset + 1] = static_cast<char>(root_dev >> 8);
    images.push_back(absl::StrCat(dir_, "/img-", i, ".bzImage"));
    WriteFile(images.back(), copy);
  }
  const std::string test = dir_ + "/test.sh";
  WriteFile(test, absl::StrCat(R"SH(#!/bin/sh
n=$(( $(od -An -tu2 -j 508 -N 2 /sys/kernel/boot_params/data) - 64000 ))
echo "the guest booted image $n"
[ "$n" -ge 0 ] && [ "$n" -lt )SH",
                               kCulprit, " ]\n"));

  std::string command = absl::StrCat(
      "cd ", Quote(dir_), " && XDG_CACHE_HOME=", Quote(dir_ + "/cache"), " ", Quote(Bin("farm")),
      " bisect --agents 1 --accel tcg", " --test-timeout 60 --test ", Quote(test),
      // The bzImages themselves: a PVH boot enters the ELF inside,
      // which is the same in every copy, and the guest would not see
      // the setup header (agent/boot/pvh.h).
      " --no-pvh --kernels");
  for (const std::string& img : images) absl::StrAppend(&command, " ", Quote(img));
  auto out = Sh(command);
  std::printf("%s\n", out.output.c_str());
  ASSERT_EQ(out.exit_code, 0) << "farm bisect did not find a first bad image";

  // farm names a commit of the list's repository; its subject is the image's file name.
  auto repo = Sh("ls -d " + Quote(dir_ + "/cache/farm/kernel-lists") + "/*.git");
  ASSERT_EQ(repo.exit_code, 0) << repo.output;
  const std::string repo_dir(absl::StripTrailingAsciiWhitespace(repo.output));
  auto log = Sh("git --git-dir=" + Quote(repo_dir) + " log --format='%H %s' main");
  ASSERT_EQ(log.exit_code, 0) << log.output;
  std::map<std::string, std::string> image_of;  // sha -> file name
  for (absl::string_view line : absl::StrSplit(log.output, '\n', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits(' ', 1));
    image_of[kv.first] = kv.second;
  }
  ASSERT_EQ(image_of.size(), static_cast<size_t>(kImages));
  ::farm::testing::BisectAnswer answer = ::farm::testing::ParseAnswer(out.output);
  ASSERT_FALSE(answer.first_bad.empty()) << "no first bad commit in the report";
  std::string named;
  for (const auto& [sha, name] : image_of) {
    if (absl::StartsWith(sha, answer.first_bad)) named = name;
  }
  EXPECT_EQ(named, absl::StrCat("img-", kCulprit, ".bzImage"));

  // The task's log: the guest's console, and why the boot did not pass.
  auto task_log = Sh(
      absl::StrCat(Quote(Bin("farm")), " log 1 ", answer.first_bad, " --repo ", Quote(repo_dir)));
  EXPECT_EQ(task_log.exit_code, 0) << task_log.output;
  EXPECT_THAT(task_log.output, HasSubstr(absl::StrCat("the guest booted image ", kCulprit)));
  EXPECT_THAT(task_log.output, HasSubstr("farm: boot detail:\nthe test exited 1"));
}

TEST_F(FarmKernelsE2eTest, AgentSaysWhichAcceleratorItBootsWith) {
  CoordinatorOptions copts;
  copts.db_path = dir_ + "/farm.db";
  copts.cache_dir = dir_ + "/mirrors";
  absl::StatusOr<std::unique_ptr<CoordinatorServer>> server =
      CoordinatorServer::Start(copts, "127.0.0.1:0");
  ASSERT_TRUE(server.ok()) << server.status();
  Background agent({Bin("farm-agent"), "--coordinator", (*server)->address(), "--workdir",
                    dir_ + "/agent", "--id", "e2e-agent", "--kvm-probe-kernel", kernel_},
                   dir_ + "/agent.log");
  // The probe runs before the agent's Hello: once it is connected, its capabilities are known.
  ASSERT_TRUE((*server)->core()->AwaitAgents(1, absl::Seconds(60))) << agent.Output();
  auto agents =
      Sh(absl::StrCat(Quote(Bin("farm")), " agents --coordinator ", (*server)->address()));
  std::printf("%s%s", agent.Output().c_str(), agents.output.c_str());
  ASSERT_EQ(agents.exit_code, 0) << agents.output;
  absl::StatusOr<std::string> version = boot::QemuVersion();
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_THAT(agents.output, HasSubstr(absl::StrCat("qemu=", *version)));
  // /dev/kvm here either cannot be opened, or opens and its guests hang, or works: a kernel was
  // given, so the probe decides between kvm and tcg, and says why not kvm.
  const bool kvm = absl::StrContains(agents.output, "e2e-agent") &&
                   absl::StrContains(agents.output, " accel=kvm ");
  if (!kvm) {
    EXPECT_THAT(agents.output, HasSubstr(" accel=tcg "));
    EXPECT_THAT(agents.output, ::testing::AnyOf(HasSubstr("/dev/kvm"), HasSubstr("KVM guest"),
                                                HasSubstr("qemu failed under KVM")));
  }
  EXPECT_THAT(agent.Output(), HasSubstr(kvm ? "farm-agent: accel kvm" : "farm-agent: accel tcg"));
  (*server)->Shutdown(absl::Milliseconds(500));
}

}  // namespace
}  // namespace farm
