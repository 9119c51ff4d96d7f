// MonitorStore: branch monitors and their regressions, in the coordinator's database.
//
// Each row holds its record as a serialized proto (farm.proto Monitor, Regression), so that a
// field added to them needs no schema change. The tables are created by the store's migrations
// (coordinator/store/store.cc, kMigrations), which Store::Open applies.
//
// It has its own SQLite connection to the same file (WAL: the coordinator's writes and these wait
// for each other at most the busy timeout), so that the monitor never takes the coordinator's lock.
// Thread safety: none; Monitors calls it under its own lock.
#ifndef FARM_COORDINATOR_MONITOR_MONITOR_STORE_H_
#define FARM_COORDINATOR_MONITOR_MONITOR_STORE_H_

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "farm/v1/farm.pb.h"

namespace farm {

class MonitorStore {
 public:
  // Opens the database at `path` (which the coordinator already opened, checked and migrated).
  // Errors: UNAVAILABLE with SQLite's message; FAILED_PRECONDITION when the tables are missing.
  static absl::StatusOr<std::unique_ptr<MonitorStore>> Open(const std::string& path);
  ~MonitorStore();

  // Stores a new monitor and returns its id (1, 2, ...); Update rewrites it (by monitor_id).
  absl::StatusOr<int64_t> InsertMonitor(const farm::v1::Monitor& monitor);
  absl::Status UpdateMonitor(const farm::v1::Monitor& monitor);
  // NOT_FOUND when no monitor has that id.
  absl::Status DeleteMonitor(int64_t id);
  // Every monitor, oldest first.
  absl::StatusOr<std::vector<farm::v1::Monitor>> LoadMonitors();

  absl::StatusOr<int64_t> InsertRegression(const farm::v1::Regression& regression);
  absl::Status UpdateRegression(const farm::v1::Regression& regression);
  // Every regression, oldest first.
  absl::StatusOr<std::vector<farm::v1::Regression>> LoadRegressions();

 private:
  explicit MonitorStore(sqlite3* db) : db_(db) {}
  absl::StatusOr<int64_t> Insert(const char* sql, const google::protobuf::Message& row);
  absl::Status Update(const char* sql, int64_t id, const google::protobuf::Message& row);
  absl::StatusOr<std::vector<std::string>> LoadAll(const char* sql);
  absl::Status Error(const char* what) const;
  sqlite3* db_;
};

}  // namespace farm

#endif  // FARM_COORDINATOR_MONITOR_MONITOR_STORE_H_
