// The store's schema versions: a database from before versions existed opens with its jobs
// intact, a new one starts at the latest version, and one written by a newer coordinator is
// refused rather than misread.
#include "coordinator/store/store.h"

#include <sqlite3.h>

#include <filesystem>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/lib/test_util.h"

namespace farm::testing {
namespace {

constexpr char kFixtureCulprit[] = "97a9282afe3dc36adb44ba15c1e13c8fd904bef6";

std::string CopyFixture(const std::string& name) {
  std::string dir = MakeTempDir(name);
  std::string db = dir + "/farm.db";
  std::filesystem::copy_file(Source("tests/fixtures/store/before-versions.db"), db);
  return db;
}

int UserVersion(const std::string& db) {
  sqlite3* h = nullptr;
  EXPECT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  int v = -1;
  if (sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &s, nullptr) == SQLITE_OK &&
      sqlite3_step(s) == SQLITE_ROW) {
    v = sqlite3_column_int(s, 0);
  }
  sqlite3_finalize(s);
  sqlite3_close(h);
  return v;
}

TEST(StoreSchema, DatabaseFromBeforeVersionsKeepsItsJobs) {
  const std::string db = CopyFixture("store-fixture");
  ASSERT_EQ(UserVersion(db), 0) << "the fixture is from before schema versions";
  auto store = Store::Open(db);
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<int> version = (*store)->SchemaVersion();
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, Store::LatestSchemaVersion());

  auto jobs = (*store)->LoadJobs(/*only_running=*/false);
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 2u);
  const Store::JobRow& found = (*jobs)[1];  // newest first
  EXPECT_EQ(found.id, 1);
  EXPECT_EQ(found.state, v1::FOUND);
  ASSERT_EQ(found.first_bad.size(), 1u);
  EXPECT_EQ(found.first_bad[0], kFixtureCulprit);
  EXPECT_EQ(found.spec.description(), "fixture: found");
  EXPECT_TRUE(
      absl::StrContains(found.bisect_log, "# first bad commit: [" + std::string(kFixtureCulprit)))
      << found.bisect_log;
  EXPECT_EQ((*jobs)[0].state, v1::CANCELLED);

  auto tasks = (*store)->LoadTasks(1);
  ASSERT_TRUE(tasks.ok()) << tasks.status();
  EXPECT_EQ(tasks->size(), 6u);
  auto logs = (*store)->ReadLogs(1, (*tasks)[0].commit());
  ASSERT_TRUE(logs.ok()) << logs.status();
  EXPECT_FALSE(logs->empty());
}

TEST(StoreSchema, NewDatabaseStartsAtTheLatestVersionAndReopensAsIs) {
  const std::string db = MakeTempDir("store-new") + "/farm.db";
  {
    auto store = Store::Open(db);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->InsertJob(v1::BisectSpec(), 1700000000).ok());
  }
  EXPECT_EQ(UserVersion(db), Store::LatestSchemaVersion());
  auto again = Store::Open(db);
  ASSERT_TRUE(again.ok()) << again.status();
  auto jobs = (*again)->LoadJobs(false);
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_EQ(jobs->size(), 1u);
}

TEST(StoreSchema, DatabaseFromANewerCoordinatorIsRefused) {
  const std::string db = CopyFixture("store-newer");
  {
    sqlite3* h = nullptr;
    ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
    const std::string bump =
        "PRAGMA user_version = " + std::to_string(Store::LatestSchemaVersion() + 1);
    ASSERT_EQ(sqlite3_exec(h, bump.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(h);
  }
  auto store = Store::Open(db);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(store.status().message(), "written by a newer farm-coordinator"))
      << store.status();
  EXPECT_EQ(UserVersion(db), Store::LatestSchemaVersion() + 1) << "the refused file was changed";
}

}  // namespace
}  // namespace farm::testing
