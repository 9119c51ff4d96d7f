#include "agent/boot/kvm_probe_memory.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace farm::boot {
namespace {

std::string ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// `program` as execvp would find it.
std::string FindInPath(const std::string& program) {
  if (program.find('/') != std::string::npos) return program;
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path != nullptr ? path : "", ':')) {
    const std::string candidate = absl::StrCat(dir.empty() ? "." : dir, "/", program);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return program;
}

}  // namespace

std::string KvmProbeKey(const std::string& qemu) {
  const std::string binary = FindInPath(qemu);
  struct stat st = {};
  const bool found = stat(binary.c_str(), &st) == 0;
  const int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  const int kvm_errno = fd < 0 ? errno : 0;
  if (fd >= 0) close(fd);
  return absl::StrCat("boot_id=", ReadFirstLine("/proc/sys/kernel/random/boot_id"),
                      " qemu=", binary, found ? "" : " (missing)", " size=", st.st_size,
                      " mtime=", st.st_mtim.tv_sec, ".", st.st_mtim.tv_nsec,
                      " kvm_open_errno=", kvm_errno);
}

std::optional<std::string> RecallFailedKvmProbe(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string stored_key, reason;
  if (!std::getline(in, stored_key) || stored_key != key || !std::getline(in, reason) ||
      reason.empty()) {
    return std::nullopt;
  }
  return reason;
}

absl::Status RememberKvmProbe(const std::string& path, const std::string& key,
                              const KvmProbe& probe) {
  if (probe.usable || !probe.probed) return absl::OkStatus();
  const std::string tmp = absl::StrCat(path, ".tmp-", getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    // One line each: a reason with a newline would end the record early.
    std::string reason = probe.reason;
    for (char& c : reason) {
      if (c == '\n') c = ' ';
    }
    out << key << "\n" << reason << "\n";
    if (!out.good()) {
      std::remove(tmp.c_str());
      return absl::InternalError(absl::StrCat("cannot write ", tmp));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    return absl::InternalError(
        absl::StrCat("cannot rename ", tmp, " to ", path, ": ", std::strerror(err)));
  }
  return absl::OkStatus();
}

}  // namespace farm::boot
