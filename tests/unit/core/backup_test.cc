// farm-coordinator --backup: a copy of a database that a coordinator has open, restored and read.
#include "coordinator/store/backup.h"

#include <gtest/gtest.h>

#include "coordinator/store/store.h"
#include "tests/lib/test_util.h"

namespace farm {
namespace {

using ::farm::testing::MakeTempDir;

TEST(Backup, CopiesTheCommittedStateOfALiveDatabase) {
  std::string dir = MakeTempDir("backup");
  absl::StatusOr<std::unique_ptr<Store>> live = Store::Open(dir + "/farm.db");
  ASSERT_TRUE(live.ok()) << live.status();
  v1::BisectSpec spec;
  spec.set_repo("/src/repo");
  spec.add_good("aaaa");
  spec.set_bad("bbbb");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*live)->InsertJob(spec, 1700000000 + i).ok());
  {
    // The coordinator is in the middle of a transaction: the copy has what was committed.
    Store::Batch batch(**live);
    ASSERT_TRUE((*live)->InsertJob(spec, 1800000000).ok());
    ASSERT_TRUE(BackupDatabase(dir + "/farm.db", dir + "/copy.db").ok());
  }
  absl::StatusOr<std::unique_ptr<Store>> restored = Store::Open(dir + "/copy.db");
  ASSERT_TRUE(restored.ok()) << restored.status();
  absl::StatusOr<std::vector<Store::JobRow>> jobs = (*restored)->LoadJobs(false);
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 3u);
  EXPECT_EQ((*jobs)[0].spec.bad(), "bbbb");
  EXPECT_EQ((*jobs)[2].created_unix, 1700000000);
  // The live database went on and has all four.
  EXPECT_EQ((*live)->LoadJobs(false)->size(), 4u);
}

TEST(Backup, SaysWhatIsWrong) {
  std::string dir = MakeTempDir("backup_errors");
  absl::Status st = BackupDatabase(dir + "/none.db", dir + "/copy.db");
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(st.message().find("--db"), std::string::npos) << st;
  ASSERT_TRUE(Store::Open(dir + "/farm.db").ok());
  st = BackupDatabase(dir + "/farm.db", dir + "/farm.db");
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  st = BackupDatabase(dir + "/farm.db", dir + "/no/such/dir/copy.db");
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
}

}  // namespace
}  // namespace farm
