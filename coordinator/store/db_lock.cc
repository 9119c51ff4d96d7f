#include "coordinator/store/db_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace farm {
namespace {

void WriteHolder(int fd, const std::string& address) {
  std::string text = absl::StrCat("pid ", getpid(), "\n");
  if (!address.empty()) absl::StrAppend(&text, "address ", address, "\n");
  if (ftruncate(fd, 0) != 0) return;
  // The file only informs the next coordinator's message: a failed write costs nothing else.
  if (pwrite(fd, text.data(), text.size(), 0) < 0) return;
}

// "pid 123, listening on 127.0.0.1:7411" from the holder's lock file, or "" when it is empty.
std::string ReadHolder(int fd) {
  char buf[512];
  ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0) return "";
  std::string pid, address;
  for (absl::string_view line : absl::StrSplit(absl::string_view(buf, n), '\n')) {
    if (absl::ConsumePrefix(&line, "pid ")) pid = std::string(line);
    if (absl::ConsumePrefix(&line, "address ")) address = std::string(line);
  }
  if (pid.empty()) return "";
  return address.empty() ? absl::StrCat("pid ", pid)
                         : absl::StrCat("pid ", pid, ", listening on ", address);
}

}  // namespace

absl::StatusOr<std::unique_ptr<DatabaseLock>> DatabaseLock::Acquire(const std::string& db_path) {
  if (db_path.empty() || db_path == ":memory:") {
    return std::unique_ptr<DatabaseLock>(new DatabaseLock(-1, ""));
  }
  const std::string path = db_path + ".lock";
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("cannot create the lock file '", path,
                                               "' of database '", db_path,
                                               "': ", std::strerror(errno)));
  }
  // flock, not fcntl: its lock belongs to this open file, so a second coordinator in the same
  // process (tests, farm bisect's embedded one) is refused too.
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    std::string holder = ReadHolder(fd);
    close(fd);
    if (err != EWOULDBLOCK) {
      return absl::UnavailableError(absl::StrCat("cannot lock '", path, "': ", std::strerror(err)));
    }
    return absl::AlreadyExistsError(absl::StrCat(
        "database '", db_path, "' is in use by another coordinator",
        holder.empty() ? "" : absl::StrCat(" (", holder, ")"),
        ": stop that one first, or give this one another database (farm-coordinator --db FILE)"));
  }
  WriteHolder(fd, "");
  return std::unique_ptr<DatabaseLock>(new DatabaseLock(fd, path));
}

void DatabaseLock::SetAddress(const std::string& address) {
  if (fd_ >= 0) WriteHolder(fd_, address);
}

DatabaseLock::~DatabaseLock() {
  if (fd_ >= 0) close(fd_);  // releases the flock
}

}  // namespace farm
