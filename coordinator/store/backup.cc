#include "coordinator/store/backup.h"

#include <sqlite3.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace farm {

absl::Status BackupDatabase(const std::string& db_path, const std::string& dest_path) {
  std::error_code ec;
  if (!std::filesystem::exists(db_path, ec)) {
    return absl::NotFoundError(
        absl::StrCat("database ", db_path, " does not exist: give the coordinator's --db"));
  }
  if (std::filesystem::equivalent(db_path, dest_path, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--backup ", dest_path, " is the database itself: give another file"));
  }
  const std::string tmp = dest_path + ".tmp";
  unlink(tmp.c_str());
  sqlite3* src = nullptr;
  sqlite3* dst = nullptr;
  auto fail = [&](sqlite3* db, const std::string& what) {
    absl::Status st =
        absl::UnavailableError(absl::StrCat(what, ": ", db ? sqlite3_errmsg(db) : "out of memory"));
    sqlite3_close(src);
    sqlite3_close(dst);
    unlink(tmp.c_str());
    return st;
  };
  if (sqlite3_open_v2(db_path.c_str(), &src, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    return fail(src, absl::StrCat("cannot open database ", db_path));
  }
  sqlite3_busy_timeout(src, 10000);
  if (sqlite3_open_v2(tmp.c_str(), &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    return fail(dst, absl::StrCat("cannot create ", tmp, " (is its directory writable?)"));
  }
  sqlite3_backup* b = sqlite3_backup_init(dst, "main", src, "main");
  if (b == nullptr) return fail(dst, "cannot start the backup");
  // The whole database in one step: one read transaction, so the copy is one committed state
  // (a step-by-step copy would restart whenever the coordinator writes).
  int rc;
  int busy_retries = 0;
  while ((rc = sqlite3_backup_step(b, -1)) == SQLITE_BUSY || rc == SQLITE_LOCKED) {
    if (++busy_retries > 100) break;
    sqlite3_sleep(100);
  }
  sqlite3_backup_finish(b);
  if (rc != SQLITE_DONE) return fail(dst, absl::StrCat("backup of ", db_path, " failed"));
  sqlite3_close(src);
  src = nullptr;
  if (sqlite3_close(dst) != SQLITE_OK) return fail(dst, "cannot finish the copy");
  dst = nullptr;
  if (std::rename(tmp.c_str(), dest_path.c_str()) != 0) {
    std::error_code rm;
    std::filesystem::remove(tmp, rm);
    return absl::UnavailableError(absl::StrCat("cannot rename ", tmp, " to ", dest_path));
  }
  return absl::OkStatus();
}

}  // namespace farm
