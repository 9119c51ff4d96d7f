#include "agent/boot/kvm_probe_memory.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/lib/test_util.h"

namespace farm::boot {
namespace {

// A fresh directory each time: a name made of the pid would meet a file left
// by an earlier run whose process had the same pid.
std::string TempDir() { return farm::testing::MakeTempDir("kvm_probe_memory"); }

KvmProbe Failed(const std::string& reason) {
  KvmProbe p;
  p.usable = false;
  p.probed = true;
  p.reason = reason;
  return p;
}

TEST(KvmProbeMemoryTest, AFailedProbeIsRecalledUnderTheSameKeyOnly) {
  const std::string file = TempDir() + "/kvm-probe";
  EXPECT_FALSE(RecallFailedKvmProbe(file, "k1").has_value());  // nothing yet
  ASSERT_TRUE(RememberKvmProbe(file, "k1", Failed("qemu failed under KVM\n(aborted)")).ok());
  EXPECT_EQ(RecallFailedKvmProbe(file, "k1"), "qemu failed under KVM (aborted)");
  EXPECT_FALSE(RecallFailedKvmProbe(file, "k2").has_value());
}

TEST(KvmProbeMemoryTest, UsableOrUnprobedKvmIsNotRemembered) {
  const std::string file = TempDir() + "/kvm-probe";
  KvmProbe usable;
  usable.usable = true;
  usable.probed = true;
  usable.reason = "a kernel booted under KVM in 0.4s";
  ASSERT_TRUE(RememberKvmProbe(file, "k", usable).ok());
  KvmProbe unprobed;
  unprobed.reason = "KVM not probed: no kernel to boot";
  ASSERT_TRUE(RememberKvmProbe(file, "k", unprobed).ok());
  EXPECT_NE(access(file.c_str(), F_OK), 0) << "nothing written";
  EXPECT_FALSE(RecallFailedKvmProbe(file, "k").has_value());
}

TEST(KvmProbeMemoryTest, TheKeyFollowsTheBootAndTheQemuBinary) {
  const std::string qemu = TempDir() + "/qemu-system-x86_64";
  {
    std::ofstream out(qemu);
    out << "#!/bin/sh\n";
  }
  chmod(qemu.c_str(), 0755);
  const std::string before = KvmProbeKey(qemu);
  EXPECT_TRUE(absl::StrContains(before, "boot_id=")) << before;
  EXPECT_TRUE(absl::StrContains(before, "qemu=" + qemu)) << before;
  EXPECT_EQ(KvmProbeKey(qemu), before);  // nothing changed
  {
    std::ofstream out(qemu, std::ios::app);
    out << "exit 1\n";  // an upgraded qemu
  }
  EXPECT_NE(KvmProbeKey(qemu), before);
  EXPECT_NE(KvmProbeKey(qemu + "-other"), before);
}

}  // namespace
}  // namespace farm::boot
