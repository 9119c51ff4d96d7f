// HealthChecks on a fake timeline: when checks fall due (connect, every, tasks, retry), what a
// result makes of the agent, and the store keeping the last check across a restart.
#include "coordinator/health/health_checks.h"

#include <string>

#include "coordinator/store/store.h"
#include "gtest/gtest.h"
#include "tests/lib/test_util.h"

namespace farm {
namespace {

namespace v1 = farm::v1;

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

HealthCheckConfig Check(const std::string& label, uint32_t tasks = 0,
                        absl::Duration every = absl::ZeroDuration()) {
  HealthCheckConfig c;
  c.label = label;
  c.script = "#!/bin/sh\ntrue\n";
  c.tasks = tasks;
  c.every = every;
  c.retry = absl::Minutes(5);
  return c;
}

v1::TaskResult Verdict(const std::string& task_id, v1::Verdict verdict) {
  v1::TaskResult r;
  r.set_task_id(task_id);
  r.set_verdict(verdict);
  return r;
}

TEST(HealthChecks, ParsesTheFlagAndSaysWhatIsWrong) {
  const std::string dir = testing::MakeTempDir("health-flag");
  testing::WriteScript(dir + "/c.sh", "#!/bin/sh\ntrue\n");
  absl::StatusOr<HealthCheckConfig> c =
      ParseHealthCheckFlag("board=rpi4=" + dir + "/c.sh,every=4h,tasks=50,retry=10m");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->label, "board=rpi4");
  EXPECT_EQ(c->script_path, dir + "/c.sh");
  EXPECT_EQ(c->every, absl::Hours(4));
  EXPECT_EQ(c->tasks, 50u);
  EXPECT_EQ(c->retry, absl::Minutes(10));
  EXPECT_EQ(c->script, "#!/bin/sh\ntrue\n");
  c = ParseHealthCheckFlag("*=" + dir + "/c.sh");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->label, "*");
  EXPECT_EQ(c->retry, absl::Minutes(5));
  EXPECT_EQ(ParseHealthCheckFlag("*=" + dir + "/c.sh,every=soon").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseHealthCheckFlag("*=" + dir + "/c.sh,often=1").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseHealthCheckFlag(dir + "/c.sh").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseHealthCheckFlag("*=" + dir + "/missing.sh").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(HealthChecks, ConnectTasksEveryAndRetry) {
  HealthChecks checks({Check("board=rpi4", 2), Check("*", 0, absl::Hours(1))});
  checks.OnConnect("pi", {{"board", "rpi4"}});
  checks.OnConnect("pc", {{"arch", "x86_64"}});
  // Due at connect; no work until a check passed.
  EXPECT_TRUE(checks.Due("pi", kT0));
  EXPECT_FALSE(checks.MayWork("pi", kT0));
  v1::Assign pi = checks.Start("pi", kT0, 1, 3600);
  EXPECT_TRUE(pi.health_check());
  EXPECT_TRUE(IsHealthCheckTask(pi.task_id()));
  EXPECT_EQ(pi.recipe().timeout_seconds(), 3600u);
  EXPECT_FALSE(checks.Due("pi", kT0));
  EXPECT_FALSE(checks.MayWork("pi", kT0));  // running
  v1::TaskResult good = Verdict(pi.task_id(), v1::GOOD);
  ASSERT_TRUE(checks.Finish("pi", pi.task_id(), &good, "", kT0).has_value());
  EXPECT_TRUE(checks.MayWork("pi", kT0));
  EXPECT_EQ(checks.Last("pi")->label(), "board=rpi4");
  // tasks=2: due again after two job tasks, whatever the time.
  checks.OnTaskDone("pi");
  EXPECT_TRUE(checks.MayWork("pi", kT0));
  checks.OnTaskDone("pi");
  EXPECT_TRUE(checks.Due("pi", kT0));
  EXPECT_FALSE(checks.MayWork("pi", kT0));
  // every=1h for the other agent; a failure makes it bad, retried every 5m.
  v1::Assign pc = checks.Start("pc", kT0, 1, 3600);
  v1::TaskResult infra;
  infra.set_task_id(pc.task_id());
  infra.set_infra_error("test timed out after 3600s");
  std::optional<v1::HealthCheck> failed =
      checks.Finish("pc", pc.task_id(), &infra, "", kT0 + absl::Seconds(1));
  ASSERT_TRUE(failed.has_value());
  EXPECT_FALSE(failed->passed());
  EXPECT_EQ(failed->detail(), "test timed out after 3600s");
  EXPECT_TRUE(checks.Bad("pc"));
  EXPECT_FALSE(checks.MayWork("pc", kT0 + absl::Hours(2)));
  EXPECT_FALSE(checks.Due("pc", kT0 + absl::Minutes(4)));
  EXPECT_TRUE(checks.Due("pc", kT0 + absl::Minutes(6)));
  v1::AgentInfo info;
  info.set_agent_id("pc");
  info.set_state(v1::AGENT_GOOD);
  checks.Describe(info);
  EXPECT_EQ(info.state(), v1::AGENT_BAD);
  EXPECT_EQ(info.health_check().task_id(), pc.task_id());
  // A passing retry brings it back; the next check is an hour later.
  const absl::Time t1 = kT0 + absl::Minutes(6);
  v1::Assign retry = checks.Start("pc", t1, 2, 3600);
  EXPECT_EQ(checks.Superseded("pc"), pc.task_id());
  v1::TaskResult passed = Verdict(retry.task_id(), v1::GOOD);
  ASSERT_TRUE(checks.Finish("pc", retry.task_id(), &passed, "", t1).has_value());
  EXPECT_FALSE(checks.Bad("pc"));
  EXPECT_TRUE(checks.MayWork("pc", t1 + absl::Minutes(59)));
  EXPECT_TRUE(checks.Due("pc", t1 + absl::Hours(1)));
}

TEST(HealthChecks, AFailedCheckSurvivesARestartThroughTheStore) {
  const std::string db = testing::MakeTempDir("health-store") + "/farm.db";
  v1::HealthCheck last;
  {
    HealthChecks checks({Check("*")});
    checks.OnConnect("a", {});
    v1::Assign a = checks.Start("a", kT0, 1, 60);
    v1::TaskResult bad = Verdict(a.task_id(), v1::BAD);
    last = *checks.Finish("a", a.task_id(), &bad, "", kT0);
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(db);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->PutHealthCheck("a", last).ok());
  }
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(db);
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<std::map<std::string, v1::HealthCheck>> rows = (*store)->LoadHealthChecks();
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->count("a"), 1u);
  EXPECT_EQ(rows->at("a").task_id(), last.task_id());
  HealthChecks checks({Check("*")});
  checks.Restore("a", rows->at("a"));
  checks.OnConnect("a", {});
  // Bad until a check passes, even though one is due at once.
  EXPECT_TRUE(checks.Bad("a"));
  EXPECT_TRUE(checks.Due("a", kT0));
  EXPECT_FALSE(checks.MayWork("a", kT0));
}

}  // namespace
}  // namespace farm
