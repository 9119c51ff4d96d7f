// The state a local bisect keeps in a repository (`<git dir>/farm`, or --workdir): its SQLite
// store, worktrees and logs, and a lock file that says who is using it.
//
// A running `farm bisect` holds the lock exclusively and writes its embedded coordinator's
// address into it; `farm status/cancel/log/watch` without --coordinator then talk to that
// coordinator. When no bisect runs, they start an in-process coordinator on the state (no
// agents) and read it through the same Farm API: the CLI never opens the database itself.
#ifndef FARM_CLI_LOCAL_STATE_H_
#define FARM_CLI_LOCAL_STATE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "coordinator/service/service.h"

namespace farm {

// The state directory of the local bisects of the repository at `repo` (any directory inside a
// work tree, or a git dir), or `workdir` when not empty. Errors: NOT_FOUND when `repo` is not a
// git repository (the message says to give --repo or --workdir).
absl::StatusOr<std::string> LocalStateDir(const std::string& repo, const std::string& workdir);

// The coordinator options of a local bisect whose state is in `state_dir`.
CoordinatorOptions LocalCoordinatorOptions(const std::string& state_dir);

// An exclusive lock on a state directory (the file `lock` in it), released on destruction.
class StateLock {
 public:
  // For `farm bisect`: waits (up to 30 s) while a status/cancel/log command holds the lock; a
  // running bisect makes it FAILED_PRECONDITION, naming its pid and what to do. Creates the
  // directory. Errors also: the directory cannot be created or the lock file opened.
  static absl::StatusOr<std::unique_ptr<StateLock>> ForBisect(const std::string& state_dir);
  ~StateLock();
  // Tells readers the address of this bisect's coordinator.
  void Publish(const std::string& address);

 private:
  explicit StateLock(int fd) : fd_(fd) {}
  friend class LocalCoordinator;
  int fd_;
  bool held_ = false;
};

// A coordinator serving the local state of `state_dir`: the running bisect's, or an in-process
// one without agents that lives as long as this object.
class LocalCoordinator {
 public:
  // Errors: NOT_FOUND when the directory holds no local bisect state; the store cannot be opened.
  static absl::StatusOr<std::unique_ptr<LocalCoordinator>> Open(const std::string& state_dir);
  ~LocalCoordinator();
  const std::string& address() const { return address_; }
  // True when a `farm bisect` is running on this state (its jobs are really running).
  bool live() const { return server_ == nullptr; }

 private:
  LocalCoordinator() = default;
  std::unique_ptr<StateLock> lock_;
  std::unique_ptr<CoordinatorServer> server_;
  std::string address_;
};

}  // namespace farm

#endif  // FARM_CLI_LOCAL_STATE_H_
