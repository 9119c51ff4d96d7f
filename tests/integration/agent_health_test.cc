// Agent states with a real coordinator, a real agent and the farm command: an admin's
// maintenance takes an agent out of service, survives a coordinator restart, and `good` brings
// it back; a failing health check makes an agent bad until a check passes.
#include <unistd.h>

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "tests/integration/test_farm.h"
#include "tests/lib/test_util.h"

namespace farm::testing {
namespace {

CommandResult AgentState(const TestFarm& farm, const std::string& args) {
  return Sh(absl::StrCat(Farm(), " agent-state --coordinator ", farm.listen(), " ", args));
}

bool AnyRunning(const std::string& status) {
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    if (absl::StartsWith(absl::StripLeadingAsciiWhitespace(line), "running ")) return true;
  }
  return false;
}

TEST(AgentHealth, MaintenanceTakesTheAgentOutAndSurvivesARestart) {
  std::string dir = MakeTempDir("maintenance");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 20 --seed 21");
  WriteScript(dir + "/test.sh", "#!/bin/sh\n! test -e bug\n");
  const std::string submit = absl::StrCat("--repo ", Quote(repo.path), " --good ", repo.root,
                                          " --bad ", repo.bad, " -- ", Quote(dir + "/test.sh"));
  std::string job;
  {
    TestFarm farm(dir);
    ASSERT_TRUE(farm.started()) << farm.coordinator().Output();
    farm.AddAgent("a", dir + "/a");
    ASSERT_TRUE(farm.WaitForAgents()) << farm.Agents();
    CommandResult set = AgentState(farm, "a maintenance --reason 'new disk'");
    ASSERT_EQ(set.exit_code, 0) << set.output;
    EXPECT_EQ(set.output, "a: maintenance, 0 task(s) running\n");
    const std::string line = farm.AgentLine("a");
    EXPECT_TRUE(absl::StrContains(line, " maintenance ")) << farm.Agents();
    EXPECT_TRUE(absl::StrContains(line, "(new disk)")) << farm.Agents();
    CommandResult bad_state = AgentState(farm, "a broken");
    EXPECT_EQ(bad_state.exit_code, 2) << bad_state.output;
    EXPECT_TRUE(absl::StrContains(bad_state.output, "give good, maintenance or retired"))
        << bad_state.output;
    CommandResult unknown = AgentState(farm, "nobody maintenance");
    EXPECT_EQ(unknown.exit_code, 2) << unknown.output;
    EXPECT_TRUE(absl::StrContains(unknown.output, "no agent 'nobody' has connected"))
        << unknown.output;
    // The submission is dealt before the call returns: the agent in maintenance got nothing.
    job = farm.Submit(submit);
    ASSERT_FALSE(job.empty());
    EXPECT_FALSE(AnyRunning(farm.Status(job))) << farm.Status(job);
  }
  // A new coordinator on the same database; the agent connects to it afresh.
  TestFarm farm(dir);
  ASSERT_TRUE(farm.started()) << farm.coordinator().Output();
  farm.AddAgent("a", dir + "/a2");
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(farm.AgentLine("a"), " maintenance "); },
                      absl::Seconds(30)))
      << farm.Agents() << farm.coordinator().Output();
  const std::string status = farm.Status(job);
  EXPECT_TRUE(absl::StrContains(status, "job " + job + ": running")) << status;
  EXPECT_FALSE(AnyRunning(status)) << status;

  CommandResult good = AgentState(farm, "a good");
  ASSERT_EQ(good.exit_code, 0) << good.output;
  EXPECT_TRUE(absl::StrContains(farm.AgentLine("a"), " connected ")) << farm.Agents();
  CommandResult watch = farm.Watch(job);
  EXPECT_EQ(watch.exit_code, 0) << watch.output;
  EXPECT_EQ(ParseAnswer(watch.output).first_bad, repo.culprit) << watch.output;
}

// The line of `farm agents` about agent `id`'s health check ("" when it has none).
std::string HealthLine(const TestFarm& farm, const std::string& id) {
  bool mine = false;
  for (absl::string_view line : absl::StrSplit(farm.Agents(), '\n')) {
    if (absl::StartsWith(line, "  health check ")) {
      if (mine) return std::string(line);
      continue;
    }
    mine = absl::StartsWith(line, id + " ");
  }
  return "";
}

// Bisects `repo` with `test` on `farm` until the job ends, expects its culprit, and returns
// `farm status` of the job.
std::string BisectStatus(const TestFarm& farm, const Repo& repo, const std::string& test) {
  const std::string job =
      farm.Submit(absl::StrCat("--repo ", Quote(repo.path), " --good ", repo.root, " --bad ",
                               repo.bad, " -- ", Quote(test)));
  if (job.empty()) return "";
  CommandResult watch = farm.Watch(job);
  EXPECT_EQ(watch.exit_code, 0) << watch.output;
  EXPECT_EQ(ParseAnswer(watch.output).first_bad, repo.culprit) << watch.output;
  return farm.Status(job);
}

TEST(AgentHealth, AFailingCheckTakesTheAgentOutUntilItPasses) {
  std::string dir = MakeTempDir("checks");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 40 --seed 7");
  WriteScript(dir + "/test.sh", "#!/bin/sh\n! test -e bug\n");
  WriteScript(dir + "/test2.sh",
              "#!/bin/sh\n# the same test, another recipe: no reuse\n! test -e bug\n");
  // Agent b's bench is broken while <dir>/broken exists; every other agent runs check.sh.
  WriteScript(dir + "/check-b.sh",
              absl::StrCat("#!/bin/sh\necho checking the bench\ntest \"$FARM_HEALTH_CHECK\" = 1 && "
                           "test ! -e ",
                           Quote(dir + "/broken"), "\n"));
  WriteScript(dir + "/check.sh", "#!/bin/sh\necho all fine\n");
  WriteScript(dir + "/broken", "");
  TestFarm farm(dir, {"--health-check", "bench=b=" + dir + "/check-b.sh,retry=1s", "--health-check",
                      "*=" + dir + "/check.sh,every=1h"});
  ASSERT_TRUE(farm.started()) << farm.coordinator().Output();
  farm.AddAgent("a", dir + "/a");
  farm.AddAgent("b", dir + "/b", {}, {"--label", "bench=b"});
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(HealthLine(farm, "a"), " passed at "); },
                      absl::Seconds(30)))
      << farm.Agents() << farm.coordinator().Output();
  ASSERT_TRUE(
      WaitFor([&] { return absl::StrContains(farm.AgentLine("b"), " bad "); }, absl::Seconds(30)))
      << farm.Agents() << farm.coordinator().Output();
  const std::string failed = HealthLine(farm, "b");
  EXPECT_TRUE(absl::StrContains(failed, "(bench=b) failed at ")) << farm.Agents();
  EXPECT_TRUE(absl::StrContains(failed, "the check said BAD")) << farm.Agents();
  EXPECT_TRUE(absl::StrContains(failed, ", log /api/v1/health-checks/health-")) << farm.Agents();
  EXPECT_TRUE(absl::StrContains(farm.AgentLine("b"), "(health check failed: ")) << farm.Agents();

  // An admin's `good` does not bypass the check: b is checked again, and stays bad.
  CommandResult good = AgentState(farm, "b good");
  ASSERT_EQ(good.exit_code, 0) << good.output;
  EXPECT_TRUE(absl::StartsWith(good.output, "b: bad")) << good.output;

  // The job's tasks all go to a; no health check is among them.
  std::string status = BisectStatus(farm, repo, dir + "/test.sh");
  ExpectNoVerdictFrom(status, "b");
  EXPECT_TRUE(absl::StrContains(status, " on a ")) << status;
  EXPECT_FALSE(absl::StrContains(status, "health-")) << status;
  EXPECT_TRUE(absl::StrContains(farm.AgentLine("b"), " bad ")) << farm.Agents();

  // The bench is mended: the next retry passes and b takes work again.
  ASSERT_EQ(unlink((dir + "/broken").c_str()), 0);
  ASSERT_TRUE(WaitFor(
      [&] {
        return absl::StrContains(farm.AgentLine("b"), " connected ") &&
               absl::StrContains(HealthLine(farm, "b"), " passed at ");
      },
      absl::Seconds(30)))
      << farm.Agents() << farm.coordinator().Output();
  status = BisectStatus(farm, repo, dir + "/test2.sh");
  EXPECT_TRUE(absl::StrContains(status, " on b ")) << status;
  EXPECT_FALSE(absl::StrContains(status, "health-")) << status;
}

TEST(AgentHealth, AJobSaysWhenEveryAgentFailedItsCheck) {
  std::string dir = MakeTempDir("all-bad");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 10 --seed 3");
  WriteScript(dir + "/test.sh", "#!/bin/sh\n! test -e bug\n");
  WriteScript(dir + "/check.sh", "#!/bin/sh\necho the bench is down\nexit 1\n");
  TestFarm farm(dir, {"--health-check", "*=" + dir + "/check.sh"});
  ASSERT_TRUE(farm.started()) << farm.coordinator().Output();
  farm.AddAgent("a", dir + "/a");
  ASSERT_TRUE(
      WaitFor([&] { return absl::StrContains(farm.AgentLine("a"), " bad "); }, absl::Seconds(30)))
      << farm.Agents() << farm.coordinator().Output();
  const std::string job =
      farm.Submit(absl::StrCat("--repo ", Quote(repo.path), " --good ", repo.root, " --bad ",
                               repo.bad, " -- ", Quote(dir + "/test.sh")));
  ASSERT_FALSE(job.empty());
  const std::string status = farm.Status(job);
  EXPECT_TRUE(absl::StrContains(status, "every connected agent failed its health check")) << status;
  EXPECT_FALSE(AnyRunning(status)) << status;
}

}  // namespace
}  // namespace farm::testing
