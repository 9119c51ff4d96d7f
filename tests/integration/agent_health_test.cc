// Agent states with a real coordinator, a real agent and the farm command: an admin's
// maintenance takes an agent out of service, survives a coordinator restart, and `good` brings
// it back.
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

}  // namespace
}  // namespace farm::testing
