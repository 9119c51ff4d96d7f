#include "tests/lib/tmpfs.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"

namespace farm::testing {
namespace {

// Empty when this thread has a private mount namespace, else why not.
std::string EnterPrivateMountNamespace() {
  static thread_local bool done = false;
  if (done) return "";
  if (unshare(CLONE_NEWNS) != 0) {
    return absl::StrCat("unshare(CLONE_NEWNS): ", std::strerror(errno),
                        " (needs root or CAP_SYS_ADMIN)");
  }
  // Without this the new namespace shares "/" with the old one, and mounts would propagate back.
  if (mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return absl::StrCat("making / private in the new mount namespace: ", std::strerror(errno));
  }
  done = true;
  return "";
}

}  // namespace

TmpfsMount::TmpfsMount(const std::string& dir, uint64_t size_bytes) : dir_(dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    error_ = absl::StrCat("cannot create ", dir, ": ", ec.message());
    return;
  }
  error_ = EnterPrivateMountNamespace();
  if (!error_.empty()) return;
  std::string options = absl::StrCat("size=", size_bytes, ",mode=0755");
  if (mount("farm-test-tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) != 0) {
    error_ = absl::StrCat("cannot mount a tmpfs at ", dir, ": ", std::strerror(errno),
                          " (needs root or CAP_SYS_ADMIN)");
    return;
  }
  mounted_ = true;
}

TmpfsMount::~TmpfsMount() {
  if (mounted_) umount2(dir_.c_str(), MNT_DETACH);
}

uint64_t FillDisk(const std::string& file) {
  int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return 0;
  std::vector<char> zeros(1 << 16, 0);
  uint64_t total = 0;
  while (true) {
    ssize_t n = write(fd, zeros.data(), zeros.size());
    if (n <= 0) break;
    total += static_cast<uint64_t>(n);
  }
  close(fd);
  return total;
}

}  // namespace farm::testing
