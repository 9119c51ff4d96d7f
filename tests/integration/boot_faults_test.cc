// A kernel bisect of prebuilt images (`farm submit --kernels`) on three agents: one boots Debian's
// cloud kernel for real (tests/e2e/fetch-kernel.sh fetches it), one has no qemu on its PATH, one
// has a qemu that dies of SIGSEGV as it starts. The failing agents' tasks are infrastructure
// errors, never verdicts, retried on the agent that boots; they are quarantined, saying why.
//
// Every image is the same kernel and the test passes in it, so the answer must be the newest
// image: a qemu failure taken for a bad verdict would make an older image the culprit, one taken
// for a skip would leave the answer ambiguous. (The stand-in qemu of faults_test puts the culprit
// in the middle.)
//
// The kernel: $FARM_TEST_KERNEL, else $FARM_KERNEL_CACHE/debian-cloud/vmlinuz (default cache
// /var/cache/farm-test-kernels). Skips, saying why, when the kernel, qemu or busybox is missing.
#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "tests/integration/test_farm.h"
#include "tests/lib/test_util.h"

namespace farm::testing {
namespace {

std::string TestKernel() {
  if (const char* k = std::getenv("FARM_TEST_KERNEL"); k && *k) return k;
  const char* cache = std::getenv("FARM_KERNEL_CACHE");
  return absl::StrCat(cache && *cache ? cache : "/var/cache/farm-test-kernels",
                      "/debian-cloud/vmlinuz");
}

TEST(BootFaults, QemuMissingOrCrashingBesideARealBoot) {
  const std::string kernel = TestKernel();
  if (access(kernel.c_str(), R_OK) != 0) {
    GTEST_SKIP() << "no test kernel at " << kernel
                 << ": run tests/e2e/fetch-kernel.sh (or set FARM_TEST_KERNEL)";
  }
  if (Sh("command -v qemu-system-x86_64").exit_code != 0) {
    GTEST_SKIP() << "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)";
  }
  if (access("/bin/busybox", X_OK) != 0 && Sh("command -v busybox").exit_code != 0) {
    GTEST_SKIP() << "busybox is not installed (apt-get install busybox-static)";
  }
  std::string dir = MakeTempDir("bootfaults");
  // Eight names for the one kernel: eight commits, one blob.
  std::string kernels;
  for (int i = 0; i < 8; ++i) {
    std::string image = absl::StrCat(dir, "/k", i);
    ASSERT_EQ(symlink(kernel.c_str(), image.c_str()), 0) << image;
    absl::StrAppend(&kernels, " ", Quote(image));
  }
  WriteScript(dir + "/payload.sh", "#!/bin/sh\necho \"guest kernel $(uname -r)\"\nexit 0\n");
  std::string cache = dir + "/cache";
  setenv("XDG_CACHE_HOME", cache.c_str(), 1);  // where `farm submit --kernels` keeps its repo

  TestFarm farm(dir);
  ASSERT_TRUE(farm.started()) << farm.coordinator().Output();
  farm.AddAgent("real-qemu-host", dir + "/real-qemu-host");
  AddAgentsWithBrokenQemu(farm, dir);
  ASSERT_TRUE(farm.WaitForAgents()) << farm.Agents();
  std::string job = farm.Submit(absl::StrCat("--kernels", kernels, " --test ",
                                             Quote(dir + "/payload.sh"), " --test-timeout 120"));
  ASSERT_FALSE(job.empty());
  CommandResult watch = farm.Watch(job);
  EXPECT_EQ(watch.exit_code, 0) << watch.output;
  std::string k6 = KernelListCommit(cache, "k6"), k7 = KernelListCommit(cache, "k7");
  ASSERT_FALSE(k7.empty());
  EXPECT_EQ(ParseAnswer(watch.output).first_bad, k7) << watch.output;
  ExpectBrokenQemuWasInfrastructure(farm, job);
  std::string status = farm.Status(job);
  // The newest image before the bad one was booted for real, and its verdict is the real agent's.
  std::string log = farm.Log(job, k6.substr(0, 12));
  std::ifstream version_file(kernel.substr(0, kernel.rfind('/')) + "/version");
  std::stringstream version;
  version << version_file.rdbuf();
  EXPECT_TRUE(absl::StrContains(
      log, absl::StrCat("guest kernel ", absl::StripAsciiWhitespace(version.str()))))
      << log.substr(0, 4000);
  bool k6_good_here = false;
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    line = absl::StripLeadingAsciiWhitespace(line);
    k6_good_here |= absl::StartsWith(line, "good ") &&
                    absl::StrContains(line, " on real-qemu-host ") && absl::EndsWith(line, " k6");
  }
  EXPECT_TRUE(k6_good_here) << status;
  // The worktrees hold the image: megabytes per agent. Keep them only to look at a failure.
  if (!HasFailure()) Sh("rm -rf " + Quote(dir));
}

}  // namespace
}  // namespace farm::testing
