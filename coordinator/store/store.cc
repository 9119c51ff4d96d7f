#include "coordinator/store/store.h"

#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/log/log.h"
#include "common/status_macros.h"

namespace farm {
namespace {

// A prepared statement that finalizes itself, or, taken from the store's cache (constant SQL,
// prepared once), is reset for the next use.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  Stmt(sqlite3* db, std::map<std::string, sqlite3_stmt*>* cache, const char* sql)
      : db_(db), cached_(true) {
    auto [it, added] = cache->emplace(sql, nullptr);
    rc_ = SQLITE_OK;
    if (added) {
      rc_ = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &it->second, nullptr);
      if (rc_ != SQLITE_OK) {
        sqlite3_finalize(it->second);
        cache->erase(it);
        return;
      }
    }
    stmt_ = it->second;
  }
  ~Stmt() {
    if (!cached_) {
      sqlite3_finalize(stmt_);
    } else if (stmt_ != nullptr) {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
    }
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  absl::Status status() const {
    if (rc_ == SQLITE_OK) return absl::OkStatus();
    return absl::UnavailableError(absl::StrCat("sqlite: ", sqlite3_errmsg(db_)));
  }
  Stmt& Bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Stmt& Bind(int i, double v) {
    sqlite3_bind_double(stmt_, i, v);
    return *this;
  }
  Stmt& Bind(int i, const std::string& v) {
    sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  // Returns true for a row, false when done; errors as status.
  absl::StatusOr<bool> Step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    if (rc == SQLITE_FULL) {
      return absl::ResourceExhaustedError(
          absl::StrCat("database disk is full: ", sqlite3_errmsg(db_),
                       "; free space or lower the retention setting"));
    }
    if (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB) {
      return absl::DataLossError(
          absl::StrCat("the database is damaged (sqlite: ", sqlite3_errmsg(db_),
                       "): restart the coordinator, which checks it and says what to do"));
    }
    return absl::UnavailableError(absl::StrCat("sqlite: ", sqlite3_errmsg(db_)));
  }
  absl::Status Run() {
    auto r = Step();
    return r.ok() ? absl::OkStatus() : r.status();
  }
  int64_t Int(int col) { return sqlite3_column_int64(stmt_, col); }
  double Double(int col) { return sqlite3_column_double(stmt_, col); }
  std::string Blob(int col) {
    const void* p = sqlite3_column_blob(stmt_, col);
    int n = sqlite3_column_bytes(stmt_, col);
    return p ? std::string(static_cast<const char*>(p), n) : std::string();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  bool cached_ = false;
  int rc_;
};

// Version 1: the schema of every database written before the store had versions (their
// user_version is 0). IF NOT EXISTS makes it a no-op on those.
constexpr char kSchemaV1[] = R"sql(
CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  spec BLOB NOT NULL,
  state INTEGER NOT NULL,
  first_bad TEXT NOT NULL DEFAULT '',
  error TEXT NOT NULL DEFAULT '',
  bisect_log TEXT NOT NULL DEFAULT '',
  report TEXT NOT NULL DEFAULT '',
  created INTEGER NOT NULL,
  ended INTEGER NOT NULL DEFAULT 0,
  elapsed REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tasks (
  task_id TEXT PRIMARY KEY,
  job_id INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  commit_id TEXT NOT NULL,
  summary BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_by_job ON tasks(job_id, seq);
CREATE TABLE IF NOT EXISTS tree_verdicts (
  tree TEXT NOT NULL,
  recipe TEXT NOT NULL,
  verdict INTEGER NOT NULL,
  task_id TEXT NOT NULL,
  PRIMARY KEY (tree, recipe)
);
CREATE TABLE IF NOT EXISTS logs (
  task_id TEXT NOT NULL,
  n INTEGER NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY (task_id, n)
);
)sql";

// The schema's history: kMigrations[i] takes a database from version i to i + 1 (PRAGMA
// user_version). Open applies the missing steps in order, each in its own transaction with the
// version bump, so a crash between two steps leaves a database at a known version. Append new
// steps at the end; never edit one that has shipped (databases in the field have run it).
struct Migration {
  const char* what;
  const char* sql;
};
// Branch monitors and their regressions (coordinator/monitor/monitor_store.h): each row a
// serialized proto (farm.proto Monitor, Regression).
constexpr char kSchemaMonitors[] =
    "CREATE TABLE monitors (id INTEGER PRIMARY KEY AUTOINCREMENT, data BLOB NOT NULL);"
    "CREATE TABLE regressions (id INTEGER PRIMARY KEY AUTOINCREMENT, monitor_id INTEGER NOT NULL,"
    " data BLOB NOT NULL);";

constexpr Migration kMigrations[] = {
    {"jobs, tasks, tree verdicts and task output", kSchemaV1},
    {"agent states set by an admin",
     "CREATE TABLE agent_states (agent_id TEXT PRIMARY KEY, state INTEGER NOT NULL, "
     "reason TEXT NOT NULL);"},
    {"the verification of a job's culprit (BisectSpec.verify)",
     "ALTER TABLE jobs ADD COLUMN verification INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE jobs ADD COLUMN verification_reason TEXT NOT NULL DEFAULT '';"},
    {"branch monitors and regressions", kSchemaMonitors},
};
constexpr int kSchemaVersion = sizeof(kMigrations) / sizeof(kMigrations[0]);

// What a user whose database is damaged can do, for the messages that say so.
std::string DamagedAdvice(const std::string& path) {
  return absl::StrCat(
      "stop every coordinator using it, then restore it from a backup, or salvage "
      "what is readable with `sqlite3 ",
      path,
      " .recover | sqlite3 NEW.db` and "
      "start on NEW.db, or move it aside to start with an empty database (its jobs "
      "are lost)");
}

// A database file that exists but holds nothing is what truncation leaves: SQLite would take it
// for a new database and the farm would start empty, its jobs gone without a word. A crash never
// leaves one (SQLite writes the header when the file is created), unless its write-ahead log
// still holds the writes, which SQLite then replays.
absl::Status CheckNotTruncated(const std::string& path) {
  struct stat db, wal;
  if (stat(path.c_str(), &db) != 0 || !S_ISREG(db.st_mode) || db.st_size != 0) {
    return absl::OkStatus();
  }
  if (stat((path + "-wal").c_str(), &wal) == 0 && wal.st_size > 0) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat(
      "database '", path,
      "' is empty (0 bytes): it was probably truncated, and the coordinator "
      "will not start on it as if it were new (every job would be forgotten). Restore it from a "
      "backup; or, to start a new farm with no jobs, delete it"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& path) {
  FARM_RETURN_IF_ERROR(CheckNotTruncated(path));
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("cannot open database '", path, "': ", msg));
  }
  sqlite3_busy_timeout(db, 5000);
  std::unique_ptr<Store> store(new Store(db, path));
  absl::Status st = store->Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
  if (st.ok()) st = store->CheckIntegrity();
  if (st.ok()) st = store->Migrate();
  if (absl::IsDataLoss(st) || absl::IsFailedPrecondition(st)) return st;
  if (!st.ok()) {
    return absl::UnavailableError(
        absl::StrCat("database '", path, "' is not usable: ", st.message()));
  }
  return store;
}

absl::StatusOr<int> Store::SchemaVersion() {
  Stmt s(db_, "PRAGMA user_version");
  FARM_RETURN_IF_ERROR(s.status());
  FARM_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return absl::UnavailableError("PRAGMA user_version returned nothing");
  return static_cast<int>(s.Int(0));
}

int Store::LatestSchemaVersion() { return kSchemaVersion; }

absl::Status Store::Migrate() {
  FARM_ASSIGN_OR_RETURN(int version, SchemaVersion());
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "database '", path_, "' has schema version ", version,
        ", written by a newer farm-coordinator (this one knows versions up to ", kSchemaVersion,
        "): run the newer farm-coordinator, or restore a backup taken before the upgrade"));
  }
  for (int v = version; v < kSchemaVersion; ++v) {
    // BEGIN IMMEDIATE: two coordinators cannot both migrate (the second waits, then finds the
    // version bumped and has nothing left to do).
    FARM_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    FARM_ASSIGN_OR_RETURN(int now, SchemaVersion());
    absl::Status st = now == v ? Exec(kMigrations[v].sql) : absl::OkStatus();
    if (st.ok() && now == v) {
      st = Exec(absl::StrCat("PRAGMA user_version = ", v + 1).c_str());
    }
    if (!st.ok()) {
      (void)Exec("ROLLBACK");
      return absl::Status(st.code(),
                          absl::StrCat("migrating the schema from version ", v, " to ", v + 1, " (",
                                       kMigrations[v].what, ") failed: ", st.message()));
    }
    FARM_RETURN_IF_ERROR(Exec("COMMIT"));
    if (now == v && version > 0) {
      FARM_LOG(Info) << "database '" << path_ << "': schema migrated to version " << v + 1 << " ("
                     << kMigrations[v].what << ")";
    }
  }
  return absl::OkStatus();
}

absl::Status Store::CheckIntegrity() {
  // quick_check reads every page and checks the b-trees' structure (not index contents against
  // tables, which integrity_check adds at several times the cost): a page damaged in the middle of
  // the file is found here, not by whichever later query happens to read it.
  Stmt s(db_, "PRAGMA quick_check(5)");
  std::vector<std::string> problems;
  absl::Status st = s.status();
  while (st.ok()) {
    absl::StatusOr<bool> row = s.Step();
    if (!row.ok()) {
      st = row.status();
      break;
    }
    if (!*row) break;
    std::string line = s.Blob(0);
    std::replace(line.begin(), line.end(), '\n', ' ');
    if (line != "ok") problems.push_back(std::move(line));
  }
  if (st.ok() && problems.empty()) return absl::OkStatus();
  std::string what = problems.empty() ? std::string(st.message()) : absl::StrJoin(problems, "; ");
  return absl::DataLossError(absl::StrCat("database '", path_,
                                          "' is damaged (SQLite's integrity check: ", what,
                                          "): ", DamagedAdvice(path_)));
}

Store::~Store() {
  for (auto& [sql, stmt] : stmts_) sqlite3_finalize(stmt);
  sqlite3_close(db_);
}

absl::Status Store::Exec(const char* sql) {
  char* err = nullptr;
  if (int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err); rc != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    if (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB) {
      return absl::DataLossError(absl::StrCat("database '", path_, "' is damaged (sqlite: ", msg,
                                              "): ", DamagedAdvice(path_)));
    }
    return absl::UnavailableError(absl::StrCat("sqlite: ", msg));
  }
  return absl::OkStatus();
}

Store::Batch::Batch(Store& store) : store_(store) {
  if (sqlite3_get_autocommit(store_.db_) == 0) return;  // inside an outer batch
  began_ = store_.Exec("BEGIN").ok();
}

Store::Batch::~Batch() {
  if (!began_) return;
  absl::Status st = store_.Exec("COMMIT");
  if (!st.ok()) {
    FARM_LOG(Error) << "cannot store a batch of writes: " << st.message();
    store_.Exec("ROLLBACK").IgnoreError();
  }
}

absl::StatusOr<int64_t> Store::InsertJob(const farm::v1::BisectSpec& spec, int64_t created_unix) {
  Stmt s(db_, &stmts_, "INSERT INTO jobs(spec, state, created) VALUES (?, ?, ?)");
  FARM_RETURN_IF_ERROR(s.status());
  s.Bind(1, spec.SerializeAsString())
      .Bind(2, static_cast<int64_t>(farm::v1::RUNNING))
      .Bind(3, created_unix);
  FARM_RETURN_IF_ERROR(s.Run());
  return sqlite3_last_insert_rowid(db_);
}

absl::Status Store::UpdateJob(const JobRow& row) {
  Stmt s(db_, &stmts_,
         "UPDATE jobs SET state=?, first_bad=?, error=?, bisect_log=?, elapsed=?, report=?, "
         "ended=CASE WHEN ?=1 THEN 0 ELSE ? END, verification=?, "
         "verification_reason=? WHERE id=?");
  FARM_RETURN_IF_ERROR(s.status());
  s.Bind(1, static_cast<int64_t>(row.state))
      .Bind(2, absl::StrJoin(row.first_bad, "\n"))
      .Bind(3, row.error)
      .Bind(4, row.bisect_log)
      .Bind(5, row.elapsed_seconds)
      .Bind(6, row.report)
      .Bind(7, static_cast<int64_t>(row.state))
      .Bind(8, row.ended_unix)
      .Bind(9, static_cast<int64_t>(row.verification))
      .Bind(10, row.verification_reason)
      .Bind(11, row.id);
  return s.Run();
}

namespace {
absl::StatusOr<Store::JobRow> ReadJobRow(Stmt& s) {
  Store::JobRow row;
  row.id = s.Int(0);
  if (!row.spec.ParseFromString(s.Blob(1))) {
    return absl::DataLossError(absl::StrCat("job ", row.id, ": stored spec is corrupt"));
  }
  row.state = static_cast<farm::v1::JobState>(s.Int(2));
  std::string fb = s.Blob(3);
  if (!fb.empty()) row.first_bad = absl::StrSplit(fb, '\n');
  row.error = s.Blob(4);
  row.bisect_log = s.Blob(5);
  row.created_unix = s.Int(6);
  row.elapsed_seconds = s.Double(7);
  row.report = s.Blob(8);
  row.verification = static_cast<farm::v1::VerificationStatus>(s.Int(9));
  row.verification_reason = s.Blob(10);
  row.ended_unix = s.Int(11);
  return row;
}
constexpr char kJobColumns[] =
    "SELECT id, spec, state, first_bad, error, bisect_log, created, elapsed, report, "
    "verification, verification_reason, ended FROM jobs ";
}  // namespace

absl::StatusOr<std::vector<Store::JobRow>> Store::LoadJobs(bool only_running, size_t limit) {
  std::string sql = absl::StrCat(kJobColumns, only_running ? "WHERE state=1 " : "",
                                 "ORDER BY id DESC", limit ? absl::StrCat(" LIMIT ", limit) : "");
  Stmt s(db_, sql.c_str());
  FARM_RETURN_IF_ERROR(s.status());
  std::vector<JobRow> rows;
  while (true) {
    FARM_ASSIGN_OR_RETURN(bool more, s.Step());
    if (!more) break;
    FARM_ASSIGN_OR_RETURN(JobRow row, ReadJobRow(s));
    rows.push_back(std::move(row));
  }
  return rows;
}

absl::StatusOr<Store::JobRow> Store::LoadJob(int64_t id) {
  std::string sql = absl::StrCat(kJobColumns, "WHERE id=?");
  Stmt s(db_, sql.c_str());
  FARM_RETURN_IF_ERROR(s.status());
  s.Bind(1, id);
  FARM_ASSIGN_OR_RETURN(bool found, s.Step());
  if (!found) return absl::NotFoundError(absl::StrCat("no job ", id));
  return ReadJobRow(s);
}

absl::Status Store::PutTask(int64_t job_id, int64_t seq, const farm::v1::TaskSummary& task) {
  Stmt s(db_, &stmts_,
         "INSERT INTO tasks(task_id, job_id, seq, commit_id, summary) VALUES (?,?,?,?,?) "
         "ON CONFLICT(task_id) DO UPDATE SET seq=excluded.seq, summary=excluded.summary");
  FARM_RETURN_IF_ERROR(s.status());
  s.Bind(1, task.task_id())
      .Bind(2, job_id)
      .Bind(3, seq)
      .Bind(4, task.commit())
      .Bind(5, task.SerializeAsString());
  return s.Run();
}

absl::StatusOr<std::vector<farm::v1::TaskSummary>> Store::LoadTasks(int64_t job_id) {
  Stmt s(db_, &stmts_, "SELECT summary FROM tasks WHERE job_id=? ORDER BY seq, rowid");
  FARM_RETURN_IF_ERROR(s.status());
  s.Bind(1, job_id);
  std::vector<farm::v1::TaskSummary> out;
  while (true) {
    FARM_ASSIGN_OR_RETURN(bool more, s.Step());
    if (!more) break;
    farm::v1::TaskSummary t;
    if (!t.ParseFromString(s.Blob(0))) {
      return absl::DataLossError(absl::StrCat("job ", job_id, ": a stored task is corrupt"));
    }
    out.push_back(std::move(t));
  }
  return out;
}

absl::Status Store::AppendLog(const std::string& task_id, const std::string& data) {
  Stmt s(db_, &stmts_,
         "INSERT INTO logs(task_id, n, data) VALUES "
         "(?, (SELECT COALESCE(MAX(n), -1) + 1 FROM logs WHERE task_id=?), ?)");
  FARM_RETURN_IF_ERROR(s.status());
  s.Bind(1, task_id).Bind(2, task_id).Bind(3, data);
  return s.Run();
}

absl::StatusOr<std::vector<farm::v1::TaskLog>> Store::ReadLogs(int64_t job_id,
                                                               const std::string& commit_prefix) {
  if (commit_prefix.size() < 4 ||
      commit_prefix.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "commit '", commit_prefix, "' is not a commit id: give at least 4 lower-case hex digits"));
  }
  Stmt s(db_, &stmts_,
         "SELECT task_id, commit_id, summary FROM tasks WHERE job_id=? AND "
         "substr(commit_id, 1, ?)=? ORDER BY seq, rowid");
  FARM_RETURN_IF_ERROR(s.status());
  s.Bind(1, job_id).Bind(2, static_cast<int64_t>(commit_prefix.size())).Bind(3, commit_prefix);
  std::vector<farm::v1::TaskLog> logs;
  std::string commit;
  while (true) {
    FARM_ASSIGN_OR_RETURN(bool more, s.Step());
    if (!more) break;
    farm::v1::TaskLog log;
    log.set_task_id(s.Blob(0));
    log.set_commit(s.Blob(1));
    farm::v1::TaskSummary t;
    t.ParseFromString(s.Blob(2));
    log.set_state(t.state());
    if (!commit.empty() && commit != log.commit()) {
      return absl::InvalidArgumentError(absl::StrCat("commit prefix '", commit_prefix,
                                                     "' is ambiguous in job ", job_id,
                                                     ": give more digits"));
    }
    commit = log.commit();
    logs.push_back(std::move(log));
  }
  if (logs.empty()) {
    return absl::NotFoundError(
        absl::StrCat("job ", job_id, " never tested a commit starting with '", commit_prefix,
                     "': see `farm status ", job_id, "` for the tested commits"));
  }
  for (auto& log : logs) {
    Stmt d(db_, &stmts_, "SELECT data FROM logs WHERE task_id=? ORDER BY n");
    FARM_RETURN_IF_ERROR(d.status());
    d.Bind(1, log.task_id());
    std::string out;
    while (true) {
      FARM_ASSIGN_OR_RETURN(bool more, d.Step());
      if (!more) break;
      out += d.Blob(0);
    }
    log.set_output(std::move(out));
  }
  return logs;
}

absl::Status Store::PutTreeVerdict(const std::string& tree, const std::string& recipe,
                                   farm::v1::Verdict verdict, const std::string& task_id) {
  Stmt s(db_, &stmts_,
         "INSERT INTO tree_verdicts(tree, recipe, verdict, task_id) VALUES (?,?,?,?) "
         "ON CONFLICT(tree, recipe) DO UPDATE SET verdict=excluded.verdict, "
         "task_id=excluded.task_id");
  FARM_RETURN_IF_ERROR(s.status());
  s.Bind(1, tree).Bind(2, recipe).Bind(3, static_cast<int64_t>(verdict)).Bind(4, task_id);
  return s.Run();
}

absl::StatusOr<std::optional<Store::TreeVerdict>> Store::GetTreeVerdict(const std::string& tree,
                                                                        const std::string& recipe) {
  Stmt s(db_, &stmts_, "SELECT verdict, task_id FROM tree_verdicts WHERE tree=? AND recipe=?");
  FARM_RETURN_IF_ERROR(s.status());
  s.Bind(1, tree).Bind(2, recipe);
  FARM_ASSIGN_OR_RETURN(bool found, s.Step());
  if (!found) return std::optional<TreeVerdict>();
  return std::optional<TreeVerdict>(
      TreeVerdict{static_cast<farm::v1::Verdict>(s.Int(0)), s.Blob(1)});
}

absl::Status Store::PutAgentState(const std::string& agent_id, farm::v1::AgentState state,
                                  const std::string& reason) {
  if (state == farm::v1::AGENT_GOOD) {
    Stmt s(db_, &stmts_, "DELETE FROM agent_states WHERE agent_id=?");
    FARM_RETURN_IF_ERROR(s.status());
    s.Bind(1, agent_id);
    return s.Run();
  }
  Stmt s(db_, &stmts_,
         "INSERT INTO agent_states(agent_id, state, reason) VALUES (?,?,?) "
         "ON CONFLICT(agent_id) DO UPDATE SET state=excluded.state, reason=excluded.reason");
  FARM_RETURN_IF_ERROR(s.status());
  s.Bind(1, agent_id).Bind(2, static_cast<int64_t>(state)).Bind(3, reason);
  return s.Run();
}

absl::StatusOr<std::vector<Store::AgentStateRow>> Store::LoadAgentStates() {
  Stmt s(db_, "SELECT agent_id, state, reason FROM agent_states ORDER BY agent_id");
  FARM_RETURN_IF_ERROR(s.status());
  std::vector<AgentStateRow> rows;
  while (true) {
    FARM_ASSIGN_OR_RETURN(bool found, s.Step());
    if (!found) break;
    rows.push_back({s.Blob(0), static_cast<farm::v1::AgentState>(s.Int(1)), s.Blob(2)});
  }
  return rows;
}

absl::StatusOr<int> Store::DeleteEndedBefore(int64_t cutoff_unix) {
  FARM_RETURN_IF_ERROR(Exec("BEGIN"));
  std::string ids =
      absl::StrCat("SELECT id FROM jobs WHERE state<>1 AND ended>0 AND ended<", cutoff_unix);
  absl::Status st = Exec(absl::StrCat("DELETE FROM logs WHERE task_id IN (SELECT task_id FROM "
                                      "tasks WHERE job_id IN (",
                                      ids, "));")
                             .c_str());
  if (st.ok()) st = Exec(absl::StrCat("DELETE FROM tasks WHERE job_id IN (", ids, ");").c_str());
  if (st.ok()) st = Exec(absl::StrCat("DELETE FROM jobs WHERE id IN (", ids, ");").c_str());
  if (!st.ok()) {
    Exec("ROLLBACK").IgnoreError();
    return st;
  }
  int n = sqlite3_changes(db_);
  FARM_RETURN_IF_ERROR(Exec("COMMIT"));
  return n;
}

}  // namespace farm
