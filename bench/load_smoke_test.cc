// A small run of the load harness in the test command: 50 agents, 20 concurrent bisects, every
// bisect correct and no result lost or counted twice. Timing is not asserted (bench/README.md has
// the figures of the full run).
#include "bench/load_harness.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/lib/test_util.h"

namespace farm::load {
namespace {

LoadOptions Small() {
  LoadOptions o;
  o.agents = 50;
  o.repos = 2;
  o.commits = 300;
  o.bisects_per_repo = 10;
  o.test_min = absl::Milliseconds(0);
  o.test_max = absl::Milliseconds(20);
  o.timeout = absl::Minutes(3);
  o.work_dir = farm::testing::MakeTempDir("load");
  return o;
}

void Expect(const absl::StatusOr<LoadReport>& r, int bisects) {
  if (!r.ok() && absl::IsFailedPrecondition(r.status())) GTEST_SKIP() << r.status();
  ASSERT_TRUE(r.ok()) << r.status();
  SCOPED_TRACE(r->ToText());
  EXPECT_EQ(r->bisects, bisects);
  EXPECT_EQ(r->correct, bisects);
  EXPECT_EQ(r->wrong, 0);
  EXPECT_EQ(r->unfinished, 0);
  EXPECT_GT(r->results_sent, 0);
  EXPECT_EQ(r->results_lost, 0);
  EXPECT_EQ(r->results_counted_twice, 0);
  EXPECT_EQ(r->duplicate_task_ids, 0);
  EXPECT_EQ(r->broken_streams, 0);
  EXPECT_TRUE(r->ok());
}

// Removes the repositories and database when the test ends.
struct Cleanup {
  std::string dir;
  ~Cleanup() { farm::testing::Sh("rm -rf " + farm::testing::Quote(dir)); }
};

TEST(LoadSmokeTest, CoordinatorAsChildProcess) {
  LoadOptions o = Small();
  Cleanup cleanup{o.work_dir};
  o.coordinator_binary = farm::testing::Bin("farm-coordinator");
  Expect(RunLoad(o), 20);
}

TEST(LoadSmokeTest, CoordinatorInProcessWithSharedConnections) {
  LoadOptions o = Small();
  Cleanup cleanup{o.work_dir};
  o.mode = LoadOptions::Mode::kInProcess;
  o.agents_per_channel = 10;
  absl::StatusOr<LoadReport> r = RunLoad(o);
  Expect(r, 20);
  if (r.ok()) {
    EXPECT_FALSE(r->assign_delivery.ms.empty());
  }
}

// A coordinator that dies is a failed run, never a SKIPPED one (only a missing tool skips).
TEST(LoadSmokeTest, CoordinatorCrashAtStartFails) {
  LoadOptions o = Small();
  Cleanup cleanup{o.work_dir};
  o.repos = 1;
  o.commits = 20;
  o.bisects_per_repo = 1;
  o.coordinator_binary = o.work_dir + "/crashing-coordinator";
  farm::testing::WriteScript(o.coordinator_binary, "#!/bin/sh\nkill -SEGV $$\n");
  absl::StatusOr<LoadReport> r = RunLoad(o);
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(absl::IsFailedPrecondition(r.status())) << r.status();
  EXPECT_THAT(std::string(r.status().message()), ::testing::HasSubstr("killed by signal 11"));
}

}  // namespace
}  // namespace farm::load
