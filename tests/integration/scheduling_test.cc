// The scheduler's promises with a real coordinator, real agents and the farm command: drain
// lets a running task finish and gives the agent nothing new; a job that requires a label runs
// only where the label is; a job no connected agent can serve says what it needs.
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "tests/integration/test_farm.h"
#include "tests/lib/test_util.h"

namespace farm::testing {
namespace {

// `farm status` lines of finished tasks that carry a verdict, and of running tasks.
int Verdicts(const std::string& status) {
  int n = 0;
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    absl::string_view l = absl::StripLeadingAsciiWhitespace(line);
    n +=
        absl::StartsWith(l, "good ") || absl::StartsWith(l, "bad ") || absl::StartsWith(l, "skip ");
  }
  return n;
}
int Running(const std::string& status) {
  int n = 0;
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    n += absl::StartsWith(absl::StripLeadingAsciiWhitespace(line), "running ");
  }
  return n;
}

std::string Range(const Repo& repo) {
  return absl::StrCat("--repo ", Quote(repo.path), " --good ", repo.root, " --bad ", repo.bad);
}

TEST(Scheduling, DrainLetsTheRunningTaskFinishAndGivesNoNewOne) {
  std::string dir = MakeTempDir("drain");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 30 --seed 5");
  // The test waits for a file the test creates: the task is running for as long as we want.
  WriteScript(dir + "/test.sh", absl::StrCat("#!/bin/sh\nwhile [ ! -e ", Quote(dir + "/go"),
                                             " ]; do sleep 0.05; done\n! test -e bug\n"));
  TestFarm farm(dir);
  ASSERT_TRUE(farm.started()) << farm.coordinator().Output();
  farm.AddAgent("a", dir + "/a");
  ASSERT_TRUE(farm.WaitForAgents()) << farm.Agents();
  std::string job = farm.Submit(absl::StrCat(Range(repo), " -- ", Quote(dir + "/test.sh")));
  ASSERT_FALSE(job.empty());
  ASSERT_TRUE(WaitFor([&] { return Running(farm.Status(job)) == 1; }, absl::Seconds(30)))
      << farm.Status(job);

  CommandResult drain = Sh(absl::StrCat(Farm(), " drain a --coordinator ", farm.listen()));
  ASSERT_EQ(drain.exit_code, 0) << drain.output;
  EXPECT_TRUE(absl::StrContains(drain.output, "a: draining (no new tasks), 1 task(s) running"))
      << drain.output;
  CommandResult unknown = Sh(absl::StrCat(Farm(), " drain nobody --coordinator ", farm.listen()));
  EXPECT_EQ(unknown.exit_code, 2) << unknown.output;
  EXPECT_TRUE(absl::StrContains(unknown.output, "no connected agent 'nobody'")) << unknown.output;

  std::ofstream(dir + "/go").close();
  // The running task finishes and counts; the coordinator assigns the next task in the same
  // step that records a verdict, so a status with the verdict would show it running.
  ASSERT_TRUE(WaitFor([&] { return Verdicts(farm.Status(job)) == 1; }, absl::Seconds(30)))
      << farm.Status(job);
  std::string status = farm.Status(job);
  EXPECT_EQ(Running(status), 0) << "a drained agent got a new task:\n" << status;
  EXPECT_TRUE(absl::StrContains(status, "job " + job + ": running")) << status;
  EXPECT_TRUE(farm.coordinator().Output().find("agent a drained") != std::string::npos)
      << farm.coordinator().Output();

  CommandResult undrain = Sh(absl::StrCat(Farm(), " undrain a --coordinator ", farm.listen()));
  ASSERT_EQ(undrain.exit_code, 0) << undrain.output;
  CommandResult watch = farm.Watch(job);
  EXPECT_EQ(watch.exit_code, 0) << watch.output;
  EXPECT_EQ(ParseAnswer(watch.output).first_bad, repo.culprit) << watch.output;
}

TEST(Scheduling, RequiredLabelRunsOnlyOnTheAgentWithIt) {
  std::string dir = MakeTempDir("labels");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 30 --seed 6");
  WriteScript(dir + "/test.sh", "#!/bin/sh\n! test -e bug\n");
  TestFarm farm(dir);
  ASSERT_TRUE(farm.started()) << farm.coordinator().Output();
  farm.AddAgent("plain", dir + "/plain", {}, {"--slots", "2", "--label", "gpu=none"});
  farm.AddAgent("gpu-host", dir + "/gpu-host", {}, {"--label", "gpu=a100", "--label", "rack=3"});
  ASSERT_TRUE(farm.WaitForAgents()) << farm.Agents();
  std::string job =
      farm.Submit(absl::StrCat(Range(repo), " --require gpu=a100 -- ", Quote(dir + "/test.sh")));
  ASSERT_FALSE(job.empty());
  CommandResult watch = farm.Watch(job);
  EXPECT_EQ(watch.exit_code, 0) << watch.output;
  EXPECT_EQ(ParseAnswer(watch.output).first_bad, repo.culprit) << watch.output;
  std::string status = farm.Status(job);
  EXPECT_GE(Verdicts(status), 1) << status;
  EXPECT_FALSE(absl::StrContains(status, " on plain ")) << status;
}

TEST(Scheduling, JobNoAgentCanServeIsToldWhatItNeeds) {
  std::string dir = MakeTempDir("unservable");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 10 --seed 7");
  TestFarm farm(dir);
  ASSERT_TRUE(farm.started()) << farm.coordinator().Output();
  farm.AddAgent("plain", dir + "/plain", {}, {"--label", "gpu=none"});
  ASSERT_TRUE(farm.WaitForAgents()) << farm.Agents();
  std::string job = farm.Submit(absl::StrCat(Range(repo), " --require gpu=h100 -- true"));
  ASSERT_FALSE(job.empty());
  Background watch({Bin("farm"), "watch", "--coordinator", farm.listen(), job}, dir + "/watch.log");
  const std::string note =
      "waiting: no connected agent has the labels this job requires (gpu=h100)";
  ASSERT_TRUE(watch.WaitForOutput(note, absl::Seconds(30))) << watch.Output();
  CommandResult cancel =
      Sh(absl::StrCat(Farm(), " cancel --coordinator ", farm.listen(), " ", job));
  EXPECT_EQ(cancel.exit_code, 0) << cancel.output;
  watch.Wait();
  const std::string out = watch.Output();
  size_t first = out.find(note);
  EXPECT_EQ(out.find(note, first + 1), std::string::npos) << "said more than once:\n" << out;
  EXPECT_EQ(Verdicts(farm.Status(job)), 0) << farm.Status(job);
}

}  // namespace
}  // namespace farm::testing
