#include "cli/local_state.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/git/git.h"

namespace farm {

namespace fs = std::filesystem;

namespace {

// How long a command waits for another one that holds the state (a status or a bisect starting).
constexpr absl::Duration kLockWait = absl::Seconds(30);
// Polling interval while waiting for the lock or for a starting bisect's address.
constexpr absl::Duration kLockPoll = absl::Milliseconds(50);

// What the lock file says: "bisect PID [ADDRESS]" or "reader PID".
struct Holder {
  std::string kind;
  std::string pid;
  std::string address;
};

Holder ReadHolder(int fd) {
  char buf[256] = {};
  ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
  Holder h;
  if (n <= 0) return h;
  std::vector<std::string> words =
      absl::StrSplit(std::string(buf, n), absl::ByAnyChar(" \n"), absl::SkipEmpty());
  if (words.size() > 0) h.kind = words[0];
  if (words.size() > 1) h.pid = words[1];
  if (words.size() > 2) h.address = words[2];
  return h;
}

void WriteHolder(int fd, const std::string& text) {
  if (ftruncate(fd, 0) != 0) return;
  std::string line = text + "\n";
  // Best effort: readers that find no address wait and retry.
  if (pwrite(fd, line.data(), line.size(), 0) < 0) return;
}

// Takes the lock on `fd`, waiting (up to kLockWait) while another command holds it, unless
// `stop(holder)` says not to wait for that holder: then returns it. nullopt: the lock is taken.
absl::StatusOr<std::optional<Holder>> TakeLock(int fd, const std::string& state_dir,
                                               const std::function<bool(const Holder&)>& stop) {
  absl::Time give_up = absl::Now() + kLockWait;
  while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    Holder h = ReadHolder(fd);
    if (stop(h)) return h;
    if (absl::Now() > give_up) {
      return absl::UnavailableError(absl::StrCat("the state in ", state_dir, " stayed locked by ",
                                                 h.kind, " pid ", h.pid, " for ",
                                                 absl::FormatDuration(kLockWait)));
    }
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(kLockPoll));
  }
  return std::nullopt;
}

absl::StatusOr<int> OpenLockFile(const std::string& state_dir) {
  std::string path = state_dir + "/lock";
  // O_CLOEXEC: a test process must not inherit (and so keep) the lock.
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  }
  return fd;
}

}  // namespace

absl::StatusOr<std::string> LocalStateDir(const std::string& repo, const std::string& workdir) {
  if (!workdir.empty()) return workdir;
  absl::StatusOr<GitRepository> r = OpenRepository(repo);
  if (!r.ok()) {
    return absl::Status(r.status().code(),
                        absl::StrCat(r.status().message(),
                                     ": local bisect state is kept in the repository; give "
                                     "--repo PATH (or --workdir DIR), or --coordinator for a "
                                     "remote job"));
  }
  return (fs::path(git_repository_commondir(r->get())) / "farm").lexically_normal().string();
}

CoordinatorOptions LocalCoordinatorOptions(const std::string& state_dir) {
  CoordinatorOptions copts;
  copts.db_path = state_dir + "/farm.db";
  copts.cache_dir = state_dir + "/mirrors";
  copts.lease = absl::Seconds(10);
  copts.heartbeat = absl::Seconds(2);
  return copts;
}

absl::StatusOr<std::unique_ptr<StateLock>> StateLock::ForBisect(const std::string& state_dir) {
  std::error_code ec;
  fs::create_directories(state_dir, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot create the state directory ", state_dir, ": ", ec.message()));
  }
  absl::StatusOr<int> fd = OpenLockFile(state_dir);
  if (!fd.ok()) return fd.status();
  std::unique_ptr<StateLock> lock(new StateLock(*fd));
  absl::StatusOr<std::optional<Holder>> holder =
      TakeLock(*fd, state_dir, [](const Holder& h) { return h.kind == "bisect"; });
  if (!holder.ok()) return holder.status();
  if (*holder) {
    return absl::FailedPreconditionError(absl::StrCat(
        "another farm bisect (pid ", (*holder)->pid, ") is running on the state in ", state_dir,
        ": wait for it to end, cancel its job (farm status, then farm cancel JOB), or give "
        "--workdir DIR for a separate state"));
  }
  lock->held_ = true;
  WriteHolder(*fd, absl::StrCat("bisect ", getpid()));
  return lock;
}

StateLock::~StateLock() {
  if (held_) {
    // The next command finds no holder: it need not wait for an address.
    bool emptied = ftruncate(fd_, 0) == 0;
    (void)emptied;
    flock(fd_, LOCK_UN);
  }
  close(fd_);
}

void StateLock::Publish(const std::string& address) {
  WriteHolder(fd_, absl::StrCat("bisect ", getpid(), " ", address));
}

absl::StatusOr<std::unique_ptr<LocalCoordinator>> LocalCoordinator::Open(
    const std::string& state_dir) {
  std::string db = state_dir + "/farm.db";
  if (!fs::exists(db)) {
    return absl::NotFoundError(absl::StrCat(
        "no local bisect state in ", state_dir, " (", db,
        " is missing): run it in the repository of the bisect or give --repo PATH (or --workdir "
        "DIR), or --coordinator for a remote job"));
  }
  absl::StatusOr<int> fd = OpenLockFile(state_dir);
  if (!fd.ok()) return fd.status();
  std::unique_ptr<StateLock> lock(new StateLock(*fd));
  std::unique_ptr<LocalCoordinator> local(new LocalCoordinator());
  absl::StatusOr<std::optional<Holder>> holder = TakeLock(
      *fd, state_dir, [](const Holder& h) { return h.kind == "bisect" && !h.address.empty(); });
  if (!holder.ok()) return holder.status();
  if (*holder) {
    // A running bisect: its own coordinator answers.
    local->address_ = (*holder)->address;
    return local;
  }
  lock->held_ = true;
  WriteHolder(*fd, absl::StrCat("reader ", getpid()));
  CoordinatorOptions copts = LocalCoordinatorOptions(state_dir);
  // No agent will connect: a long lease keeps the interrupted job's tasks as they were.
  copts.lease = absl::Hours(24);
  absl::StatusOr<std::unique_ptr<CoordinatorServer>> server =
      CoordinatorServer::Start(copts, "127.0.0.1:0");
  if (!server.ok()) return server.status();
  local->lock_ = std::move(lock);
  local->server_ = std::move(*server);
  local->address_ = local->server_->address();
  return local;
}

LocalCoordinator::~LocalCoordinator() {
  if (server_) server_->Shutdown(absl::Milliseconds(500));
}

}  // namespace farm
