// One coordinator per database: an exclusive lock held for the coordinator's life.
//
// Two coordinators on one SQLite file would each replay and schedule the same jobs, and agents
// connected to one would never serve the other's tasks. The lock is flock(2) on "<db>.lock",
// which the kernel releases when the process dies however it dies, so a crash leaves no stale
// lock. The file also says who holds it (pid, address), for the message the next one prints.
#ifndef FARM_COORDINATOR_STORE_DB_LOCK_H_
#define FARM_COORDINATOR_STORE_DB_LOCK_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace farm {

class DatabaseLock {
 public:
  // Locks the database at `db_path` for this process (":memory:" and "" need no lock: an object
  // that holds nothing is returned). Errors: ALREADY_EXISTS when a live coordinator holds it,
  // naming its pid and address and what to do; UNAVAILABLE when the lock file cannot be created.
  // Thread-safe.
  static absl::StatusOr<std::unique_ptr<DatabaseLock>> Acquire(const std::string& db_path);
  ~DatabaseLock();  // releases the lock
  DatabaseLock(const DatabaseLock&) = delete;
  DatabaseLock& operator=(const DatabaseLock&) = delete;

  // Records the address the holder serves on, for the message another coordinator shows.
  void SetAddress(const std::string& address);

 private:
  DatabaseLock(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_;  // -1: nothing locked
  std::string path_;
};

}  // namespace farm

#endif  // FARM_COORDINATOR_STORE_DB_LOCK_H_
