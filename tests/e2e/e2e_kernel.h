// What the e2e tests that boot a real kernel share: where the test kernel is, and why they skip.
#ifndef FARM_TESTS_E2E_E2E_KERNEL_H_
#define FARM_TESTS_E2E_E2E_KERNEL_H_

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/lib/test_util.h"

namespace farm::e2e {

// $FARM_KERNEL_CACHE, default /var/cache/farm-test-kernels (tests/e2e/fetch-kernel.sh fills it).
inline std::string KernelCache() {
  const char* c = std::getenv("FARM_KERNEL_CACHE");
  return c && *c ? c : "/var/cache/farm-test-kernels";
}

// $FARM_TEST_KERNEL, else Debian's cloud kernel in the cache.
inline std::string TestKernel() {
  if (const char* k = std::getenv("FARM_TEST_KERNEL"); k && *k) return k;
  return KernelCache() + "/debian-cloud/vmlinuz";
}

// Why `kernel` cannot be booted here (for GTEST_SKIP), or "" when it can: the kernel or qemu is
// missing.
inline std::string WhyNoBoot(const std::string& kernel) {
  if (access(kernel.c_str(), R_OK) != 0) {
    return "no test kernel at " + kernel +
           ": run tests/e2e/fetch-kernel.sh (or set FARM_TEST_KERNEL)";
  }
  if (farm::testing::Sh("command -v qemu-system-x86_64").exit_code != 0) {
    return "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)";
  }
  return "";
}

// Shell tests need busybox in the guest.
inline bool HaveBusybox() {
  return access("/bin/busybox", X_OK) == 0 ||
         farm::testing::Sh("command -v busybox").exit_code == 0;
}

inline std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace farm::e2e

#endif  // FARM_TESTS_E2E_E2E_KERNEL_H_
