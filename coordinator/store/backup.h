// A consistent copy of a live coordinator database (SQLite's online backup API).
#ifndef FARM_COORDINATOR_STORE_BACKUP_H_
#define FARM_COORDINATOR_STORE_BACKUP_H_

#include <string>

#include "absl/status/status.h"

namespace farm {

// Copies the database at `db_path` into `dest_path` as one snapshot, while a coordinator may be
// running on it: the source is opened read-only and needs no DatabaseLock (WAL lets a reader see
// one committed state while the coordinator writes; a copy step that meets a writer's lock is
// retried). The copy is written to `dest_path`.tmp and renamed into place, so `dest_path` is
// never a half copy. Errors: NOT_FOUND when `db_path` does not exist; INVALID_ARGUMENT when both
// paths are the same file; UNAVAILABLE with SQLite's message when either cannot be opened or the
// copy fails (a disk full, a directory that cannot be written).
absl::Status BackupDatabase(const std::string& db_path, const std::string& dest_path);

}  // namespace farm

#endif  // FARM_COORDINATOR_STORE_BACKUP_H_
