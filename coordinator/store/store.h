// Store: the coordinator's durable state in one SQLite file (WAL).
//
// Jobs (with their resolved spec and outcome), tasks (one row per attempt, with the verdict and
// the order verdicts arrived in) and task output. A coordinator killed at any moment reopens the
// same file and rebuilds every running job by replaying its verdicts in order.
//
// Thread safety: none. The coordinator calls it under its own lock.
#ifndef FARM_COORDINATOR_STORE_STORE_H_
#define FARM_COORDINATOR_STORE_STORE_H_

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "farm/v1/farm.pb.h"

namespace farm {

class Store {
 public:
  struct JobRow {
    int64_t id = 0;
    farm::v1::BisectSpec spec;  // resolved
    farm::v1::JobState state = farm::v1::RUNNING;
    std::vector<std::string> first_bad;
    std::string error;
    std::string bisect_log;
    std::string report;
    int64_t created_unix = 0;
    // When it ended, by the coordinator's clock (as created_unix); ignored while it runs (0 then).
    int64_t ended_unix = 0;
    double elapsed_seconds = 0;
    farm::v1::VerificationStatus verification = farm::v1::VERIFICATION_NONE;
    std::string verification_reason;
  };

  // Opens (creating if needed) the database at `path` and checks every page of it (PRAGMA
  // quick_check: 0.7 s for 184 MB, cached, on 2 busy cores). Errors: DATA_LOSS, naming the file and
  // what to do, when it is damaged, is not a database, or is empty (0 bytes: truncated; a new
  // database is only created where no file is); UNAVAILABLE when the file cannot be opened, with
  // SQLite's message. Later calls return DATA_LOSS when they meet a damaged page.
  // Open also brings the schema to the latest version (PRAGMA user_version; the steps are
  // kMigrations in store.cc), each step in one transaction; FAILED_PRECONDITION when the file was
  // written by a newer coordinator (a higher version than this one knows).
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& path);
  ~Store();

  // The schema version of the open database, and the latest this build knows.
  absl::StatusOr<int> SchemaVersion();
  static int LatestSchemaVersion();

  // Groups every write made while it lives into one transaction (one WAL commit instead of one
  // per write). Nested batches join the outermost one. A failed BEGIN leaves the writes to commit
  // one by one; a failed COMMIT is rolled back and logged (the writes are lost, as
  // each of them would have been).
  class Batch {
   public:
    explicit Batch(Store& store);
    ~Batch();
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;

   private:
    Store& store_;
    bool began_ = false;
  };

  // Stores a new job and returns its id (1, 2, ...).
  absl::StatusOr<int64_t> InsertJob(const farm::v1::BisectSpec& spec, int64_t created_unix);
  absl::Status UpdateJob(const JobRow& row);
  // Every job, newest first; `only_running` restricts to jobs in state RUNNING.
  absl::StatusOr<std::vector<JobRow>> LoadJobs(bool only_running, size_t limit = 0);
  absl::StatusOr<JobRow> LoadJob(int64_t id);

  // Tasks: one row per attempt, written when it starts and rewritten when it ends. `seq` orders
  // the verdicts of a job as they arrived (replayed in that order on restart).
  absl::Status PutTask(int64_t job_id, int64_t seq, const farm::v1::TaskSummary& task);
  absl::StatusOr<std::vector<farm::v1::TaskSummary>> LoadTasks(int64_t job_id);

  // Task output. Appends are in order; the agent already bounds the size (head and tail).
  absl::Status AppendLog(const std::string& task_id, const std::string& data);
  // Output of every attempt that tested a commit whose id starts with `commit_prefix`.
  // Errors: NOT_FOUND (no such commit tested), INVALID_ARGUMENT (prefix matches several commits).
  absl::StatusOr<std::vector<farm::v1::TaskLog>> ReadLogs(int64_t job_id,
                                                          const std::string& commit_prefix);
  // Verdicts by (tree id, recipe digest), shared by every job: a commit whose tree was already
  // tested under the same recipe need not be tested again. Put overwrites.
  absl::Status PutTreeVerdict(const std::string& tree, const std::string& recipe,
                              farm::v1::Verdict verdict, const std::string& task_id);
  struct TreeVerdict {
    farm::v1::Verdict verdict;
    std::string task_id;
  };
  absl::StatusOr<std::optional<TreeVerdict>> GetTreeVerdict(const std::string& tree,
                                                            const std::string& recipe);

  // Agent states set by an admin (maintenance, retired), kept across restarts. Putting
  // AGENT_GOOD deletes the agent's row.
  absl::Status PutAgentState(const std::string& agent_id, farm::v1::AgentState state,
                             const std::string& reason);
  struct AgentStateRow {
    std::string agent_id;
    farm::v1::AgentState state;
    std::string reason;
  };
  absl::StatusOr<std::vector<AgentStateRow>> LoadAgentStates();

  // Deletes jobs that ended more than `max_age_seconds` ago, with their tasks and output.
  absl::StatusOr<int> DeleteEndedBefore(int64_t cutoff_unix);

 private:
  Store(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  absl::Status Exec(const char* sql);
  // Applies the migrations the database has not had yet.
  absl::Status Migrate();
  // DATA_LOSS when PRAGMA quick_check finds a damaged page.
  absl::Status CheckIntegrity();
  sqlite3* db_;
  std::string path_;
  // Statements with constant SQL, prepared once (PutTask and AppendLog run for every message).
  std::map<std::string, sqlite3_stmt*> stmts_;
};

}  // namespace farm

#endif  // FARM_COORDINATOR_STORE_STORE_H_
