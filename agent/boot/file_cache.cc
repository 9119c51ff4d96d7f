#include "agent/boot/file_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace farm::boot {
namespace {

namespace fs = std::filesystem;

uint64_t Fnv1a(std::string_view data, uint64_t h) {
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace

std::string CacheDigest(std::string_view data) {
  return absl::StrFormat("%016x%016x", Fnv1a(data, 0xcbf29ce484222325ull),
                         Fnv1a(data, 0x84222325cbf29ce4ull));
}

std::string FileIdentity(const std::string& path) {
  struct stat st;
  if (path.empty() || stat(path.c_str(), &st) != 0) return "-";
  return absl::StrCat(st.st_size, " ", st.st_mtim.tv_sec, ".", st.st_mtim.tv_nsec, " ", st.st_ino);
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  }
  std::string data;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) data.append(buf, n);
  bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) return absl::InternalError(absl::StrCat("cannot read ", path));
  return data;
}

absl::Status WriteFileAtomic(const std::string& path, std::string_view data, mode_t mode) {
  static std::atomic<uint64_t> counter{0};
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid(), ".", counter++);
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("cannot write ", tmp, ": ", std::strerror(errno)));
  }
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      close(fd);
      unlink(tmp.c_str());
      return absl::InternalError(absl::StrCat("cannot write ", tmp, ": ", std::strerror(err)));
    }
    off += static_cast<size_t>(n);
  }
  fchmod(fd, mode);
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat("cannot rename ", tmp, ": ", std::strerror(err)));
  }
  return absl::OkStatus();
}

absl::Status MakeDirs(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  return absl::OkStatus();
}

void TouchCacheEntry(const std::string& path) { utimensat(AT_FDCWD, path.c_str(), nullptr, 0); }

int PruneCacheEntries(const std::string& dir, std::string_view prefix, int keep,
                      std::string_view companion_suffix) {
  struct Entry {
    struct timespec mtime;
    std::string path;
  };
  std::vector<Entry> entries;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.compare(0, prefix.size(), prefix.data(), prefix.size()) != 0) continue;
    if (name.find(".tmp.") != std::string::npos) continue;
    if (!companion_suffix.empty() && name.size() > companion_suffix.size() &&
        name.compare(name.size() - companion_suffix.size(), companion_suffix.size(),
                     companion_suffix.data(), companion_suffix.size()) == 0) {
      continue;  // goes with its entry
    }
    struct stat st;
    if (stat(e.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    entries.push_back({st.st_mtim, e.path().string()});
  }
  if (static_cast<int>(entries.size()) <= keep) return 0;
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    if (a.mtime.tv_sec != b.mtime.tv_sec) return a.mtime.tv_sec > b.mtime.tv_sec;
    return a.mtime.tv_nsec > b.mtime.tv_nsec;
  });
  int removed = 0;
  for (size_t i = static_cast<size_t>(std::max(keep, 0)); i < entries.size(); ++i) {
    if (unlink(entries[i].path.c_str()) == 0) ++removed;
    if (!companion_suffix.empty()) {
      unlink(absl::StrCat(entries[i].path, std::string(companion_suffix)).c_str());
    }
  }
  return removed;
}

}  // namespace farm::boot
