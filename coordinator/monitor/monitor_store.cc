#include "coordinator/monitor/monitor_store.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace farm {

namespace {

// A statement that finalizes itself.
struct Statement {
  sqlite3_stmt* stmt = nullptr;
  ~Statement() { sqlite3_finalize(stmt); }
};

int64_t IdOf(const std::string& id) {
  int64_t n = 0;
  return absl::SimpleAtoi(id, &n) ? n : 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<MonitorStore>> MonitorStore::Open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("cannot open database ", path, ": ", msg));
  }
  sqlite3_busy_timeout(db, 10000);
  std::unique_ptr<MonitorStore> store(new MonitorStore(db));
  sqlite3_stmt* probe = nullptr;
  int found =
      sqlite3_prepare_v2(db, "SELECT 1 FROM monitors, regressions LIMIT 0", -1, &probe, nullptr);
  sqlite3_finalize(probe);
  if (found != SQLITE_OK) {
    return absl::FailedPreconditionError(
        absl::StrCat("database ", path,
                     " has no monitor tables: open it with Store::Open (farm-coordinator) "
                     "first, which applies the schema's migrations"));
  }
  return store;
}

MonitorStore::~MonitorStore() { sqlite3_close(db_); }

absl::Status MonitorStore::Error(const char* what) const {
  return absl::UnavailableError(absl::StrCat("sqlite: ", what, ": ", sqlite3_errmsg(db_)));
}

absl::StatusOr<int64_t> MonitorStore::Insert(const char* sql,
                                             const google::protobuf::Message& row) {
  Statement s;
  if (sqlite3_prepare_v2(db_, sql, -1, &s.stmt, nullptr) != SQLITE_OK) return Error(sql);
  std::string blob = row.SerializeAsString();
  sqlite3_bind_blob(s.stmt, 1, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
  if (sqlite3_step(s.stmt) != SQLITE_DONE) return Error(sql);
  return sqlite3_last_insert_rowid(db_);
}

absl::Status MonitorStore::Update(const char* sql, int64_t id,
                                  const google::protobuf::Message& row) {
  Statement s;
  if (sqlite3_prepare_v2(db_, sql, -1, &s.stmt, nullptr) != SQLITE_OK) return Error(sql);
  std::string blob = row.SerializeAsString();
  sqlite3_bind_blob(s.stmt, 1, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int64(s.stmt, 2, id);
  if (sqlite3_step(s.stmt) != SQLITE_DONE) return Error(sql);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> MonitorStore::LoadAll(const char* sql) {
  Statement s;
  if (sqlite3_prepare_v2(db_, sql, -1, &s.stmt, nullptr) != SQLITE_OK) return Error(sql);
  std::vector<std::string> rows;
  int rc;
  while ((rc = sqlite3_step(s.stmt)) == SQLITE_ROW) {
    const char* data = static_cast<const char*>(sqlite3_column_blob(s.stmt, 1));
    std::string blob(data ? data : "", sqlite3_column_bytes(s.stmt, 1));
    rows.push_back(absl::StrCat(sqlite3_column_int64(s.stmt, 0), "\n", blob));
  }
  if (rc != SQLITE_DONE) return Error(sql);
  return rows;
}

absl::StatusOr<int64_t> MonitorStore::InsertMonitor(const v1::Monitor& monitor) {
  return Insert("INSERT INTO monitors (data) VALUES (?1)", monitor);
}

absl::Status MonitorStore::UpdateMonitor(const v1::Monitor& monitor) {
  return Update("UPDATE monitors SET data = ?1 WHERE id = ?2", IdOf(monitor.monitor_id()), monitor);
}

absl::Status MonitorStore::DeleteMonitor(int64_t id) {
  Statement s;
  const char* sql = "DELETE FROM monitors WHERE id = ?1";
  if (sqlite3_prepare_v2(db_, sql, -1, &s.stmt, nullptr) != SQLITE_OK) return Error(sql);
  sqlite3_bind_int64(s.stmt, 1, id);
  if (sqlite3_step(s.stmt) != SQLITE_DONE) return Error(sql);
  if (sqlite3_changes(db_) == 0) {
    return absl::NotFoundError(
        absl::StrCat("no monitor ", id, ": `farm monitors` lists the monitors"));
  }
  return absl::OkStatus();
}

namespace {

// Rows of LoadAll ("<id>\n<blob>") parsed into `T`, whose id field `set_id` fills.
template <typename T, typename SetId>
absl::StatusOr<std::vector<T>> Parse(absl::StatusOr<std::vector<std::string>> rows, SetId set_id) {
  if (!rows.ok()) return rows.status();
  std::vector<T> out;
  for (const std::string& row : *rows) {
    size_t nl = row.find('\n');
    T t;
    if (!t.ParseFromString(row.substr(nl + 1))) {
      return absl::DataLossError(
          absl::StrCat("a stored ", T::descriptor()->name(), " (id ", row.substr(0, nl),
                       ") cannot be read: restore the database from a backup"));
    }
    set_id(t, row.substr(0, nl));
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<v1::Monitor>> MonitorStore::LoadMonitors() {
  return Parse<v1::Monitor>(LoadAll("SELECT id, data FROM monitors ORDER BY id"),
                            [](v1::Monitor& m, const std::string& id) { m.set_monitor_id(id); });
}

absl::StatusOr<int64_t> MonitorStore::InsertRegression(const v1::Regression& regression) {
  Statement s;
  const char* sql = "INSERT INTO regressions (monitor_id, data) VALUES (?1, ?2)";
  if (sqlite3_prepare_v2(db_, sql, -1, &s.stmt, nullptr) != SQLITE_OK) return Error(sql);
  sqlite3_bind_int64(s.stmt, 1, IdOf(regression.monitor_id()));
  std::string blob = regression.SerializeAsString();
  sqlite3_bind_blob(s.stmt, 2, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
  if (sqlite3_step(s.stmt) != SQLITE_DONE) return Error(sql);
  return sqlite3_last_insert_rowid(db_);
}

absl::Status MonitorStore::UpdateRegression(const v1::Regression& regression) {
  return Update("UPDATE regressions SET data = ?1 WHERE id = ?2", IdOf(regression.regression_id()),
                regression);
}

absl::StatusOr<std::vector<v1::Regression>> MonitorStore::LoadRegressions() {
  return Parse<v1::Regression>(
      LoadAll("SELECT id, data FROM regressions ORDER BY id"),
      [](v1::Regression& r, const std::string& id) { r.set_regression_id(id); });
}

}  // namespace farm
