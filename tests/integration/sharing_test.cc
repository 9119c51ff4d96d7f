// Sharing the farm between users, with a real coordinator, real agents and the farm command: the
// slots are shared fairly between users (not jobs), priority comes first, a per-user cap holds,
// and only a job's owner or an admin may cancel it.
//
// Each job's test waits until the test releases that job (a file named after $FARM_JOB), so the
// test decides exactly when a slot frees.
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "tests/integration/test_farm.h"
#include "tests/lib/test_util.h"

namespace farm::testing {
namespace {

// A test that holds its slot until <dir>/go-<job> (or <dir>/go-all) exists.
std::string GatedTest(const std::string& dir) {
  std::string path = dir + "/test.sh";
  WriteScript(path,
              absl::StrCat("#!/bin/sh\nwhile [ ! -e ", Quote(dir), "/go-$FARM_JOB ] && [ ! -e ",
                           Quote(dir + "/go-all"), " ]; do sleep 0.05; done\n! test -e bug\n"));
  return path;
}

void Release(const std::string& dir, const std::string& job) {
  std::ofstream(absl::StrCat(dir, "/go-", job)).close();
}

// Running tasks in a `farm status JOB`.
int Running(const std::string& status) {
  int n = 0;
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    n += absl::StartsWith(absl::StripLeadingAsciiWhitespace(line), "running ");
  }
  return n;
}

class Sharing : public ::testing::Test {
 protected:
  void Start(const std::string& name, const std::vector<std::string>& coordinator_args,
             const std::string& slots) {
    dir_ = MakeTempDir(name);
    repo_ = MakeRepo(dir_ + "/repo", "--shape linear --commits 30 --seed 11");
    test_ = GatedTest(dir_);
    farm_ = std::make_unique<TestFarm>(dir_, coordinator_args);
    ASSERT_TRUE(farm_->started()) << farm_->coordinator().Output();
    farm_->AddAgent("a", dir_ + "/a", {}, {"--slots", slots});
    ASSERT_TRUE(farm_->WaitForAgents()) << farm_->Agents();
  }
  // `farm submit` as `user` (the declared owner: no tokens here); returns the job id.
  std::string Submit(const std::string& user, const std::string& flags) {
    CommandResult r =
        Sh(absl::StrCat("USER=", user, " ", Farm(), " submit --coordinator ", farm_->listen(),
                        " --repo ", Quote(repo_.path), " --good ", repo_.root, " --bad ", repo_.bad,
                        " ", flags, " -- ", Quote(test_)));
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return std::string(absl::StripAsciiWhitespace(r.output));
  }
  int RunningOf(const std::string& job) { return Running(farm_->Status(job)); }
  bool WaitRunning(const std::string& job) {
    return WaitFor([&] { return RunningOf(job) > 0; }, absl::Seconds(30));
  }
  void TearDown() override {
    if (!dir_.empty()) std::ofstream(dir_ + "/go-all").close();
  }

  std::string dir_;
  Repo repo_;
  std::string test_;
  std::unique_ptr<TestFarm> farm_;
};

TEST_F(Sharing, UserWithOneJobGetsTheNextSlotBeforeAUserWithSix) {
  Start("fair-users", {}, "2");
  std::vector<std::string> alice;
  for (int i = 0; i < 6; ++i) alice.push_back(Submit("alice", "--max-parallel 1"));
  ASSERT_TRUE(WaitRunning(alice[0]) && WaitRunning(alice[1])) << farm_->Status(alice[1]);
  const std::string waiting = farm_->Status(alice[5]);
  EXPECT_TRUE(absl::StrContains(waiting, "  owner:      alice, priority 50")) << waiting;
  EXPECT_TRUE(absl::StrContains(waiting, "  queued:     #4, waiting: 3 jobs ahead")) << waiting;

  const std::string bob = Submit("bob", "--max-parallel 1");
  // Bob has nothing running and alice two: bob's job is first in the queue.
  const std::string queued = farm_->Status(bob);
  EXPECT_TRUE(absl::StrContains(queued, "  queued:     #1, waiting for a free slot")) << queued;
  CommandResult list = Sh(absl::StrCat(Farm(), " status --coordinator ", farm_->listen()));
  EXPECT_TRUE(absl::StrContains(list.output, "queued #1  bob")) << list.output;

  // One of alice's tasks finishes: the freed slot goes to bob, not to alice's waiting jobs nor to
  // the job whose verdict just came in.
  Release(dir_, alice[0]);
  ASSERT_TRUE(WaitRunning(bob)) << farm_->Status(bob) << farm_->coordinator().Output();
  int alice_running = 0;
  for (const std::string& job : alice) alice_running += RunningOf(job);
  EXPECT_EQ(alice_running, 1);

  // Without tokens everyone is an admin: bob may cancel alice's job.
  CommandResult cancel = Sh(
      absl::StrCat("USER=bob ", Farm(), " cancel --coordinator ", farm_->listen(), " ", alice[5]));
  EXPECT_EQ(cancel.exit_code, 0) << cancel.output;
}

TEST_F(Sharing, HigherPriorityJobIsServedBeforeWaitingOnes) {
  Start("priority", {}, "1");
  const std::string first = Submit("alice", "--max-parallel 1");
  ASSERT_TRUE(WaitRunning(first)) << farm_->Status(first);
  const std::string second = Submit("alice", "--max-parallel 1");
  const std::string third = Submit("alice", "--max-parallel 1");
  const std::string urgent = Submit("alice", "--max-parallel 1 --priority 90");
  const std::string urgent_status = farm_->Status(urgent);
  EXPECT_TRUE(absl::StrContains(urgent_status, "  owner:      alice, priority 90"))
      << urgent_status;
  EXPECT_TRUE(absl::StrContains(urgent_status, "  queued:     #1")) << urgent_status;
  const std::string second_status = farm_->Status(second);
  EXPECT_TRUE(
      absl::StrContains(second_status, "  queued:     #2, waiting: 1 job of higher priority"))
      << second_status;

  Release(dir_, first);
  ASSERT_TRUE(WaitRunning(urgent)) << farm_->Status(urgent) << farm_->coordinator().Output();
  EXPECT_EQ(RunningOf(first), 0);
  EXPECT_EQ(RunningOf(second), 0);
  EXPECT_EQ(RunningOf(third), 0);
}

TEST_F(Sharing, PerUserCapHolds) {
  Start("user-cap", {"--max-slots-per-user", "1"}, "3");
  const std::string first = Submit("alice", "");
  const std::string second = Submit("alice", "");
  ASSERT_TRUE(WaitRunning(first)) << farm_->Status(first);
  // Bob's job runs on a slot alice may not take: the dispatcher had free slots and kept alice at
  // her cap.
  const std::string bob = Submit("bob", "");
  ASSERT_TRUE(WaitRunning(bob)) << farm_->Status(bob);
  EXPECT_EQ(RunningOf(first) + RunningOf(second), 1)
      << farm_->Status(first) << farm_->Status(second);
  const std::string capped = farm_->Status(second);
  EXPECT_TRUE(absl::StrContains(capped, "user cap 1 reached")) << capped;
}

TEST(SharingTokens, OnlyTheOwnerOrAnAdminMayCancel) {
  std::string dir = MakeTempDir("owners");
  CommandResult certs = MakeServerCertificates(
      dir,
      absl::StrCat(
          "echo aaaaaaaaaaaaaaaaaaaaaaaa > alice; echo bbbbbbbbbbbbbbbbbbbbbbbb > bob; ",
          "echo cccccccccccccccccccccccc > carol; ",
          "printf '# lab tokens\\naaaaaaaaaaaaaaaaaaaaaaaa alice\\nbbbbbbbbbbbbbbbbbbbbbbbb bob\\n",
          "cccccccccccccccccccccccc carol admin\\n' > tokens; chmod 600 alice bob carol tokens"));
  if (certs.exit_code != 0) GTEST_SKIP() << "openssl cannot make certificates: " << certs.output;
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 10 --seed 12");
  TestFarm farm(dir, {"--tls-cert", dir + "/server.pem", "--tls-key", dir + "/server.key",
                      "--tokens", dir + "/tokens"});
  ASSERT_TRUE(farm.started()) << farm.coordinator().Output();
  auto as = [&](const std::string& who, const std::string& command, const std::string& args) {
    // USER is mallory's: with tokens, the token says who the caller is.
    return Sh(absl::StrCat("USER=mallory ", Farm(), " --tls-ca ", Quote(dir + "/ca.pem"),
                           " --token-file ", Quote(dir + "/" + who), " ", command,
                           " --coordinator ", farm.listen(), " ", args));
  };
  // No agent: the jobs stay running, queued.
  const std::string submit =
      absl::StrCat("--repo ", Quote(repo.path), " --good ", repo.root, " --bad ", repo.bad);
  CommandResult sub = as("alice", "submit", submit + " --priority 70 -- true");
  ASSERT_EQ(sub.exit_code, 0) << sub.output;
  const std::string job(absl::StripAsciiWhitespace(sub.output));
  CommandResult status = as("bob", "status", job);
  EXPECT_TRUE(absl::StrContains(status.output, "  owner:      alice, priority 70"))
      << status.output;
  EXPECT_TRUE(absl::StrContains(status.output, "  queued:     #1, no agent connected"))
      << status.output;

  CommandResult refused = as("bob", "cancel", job);
  EXPECT_EQ(refused.exit_code, 2) << refused.output;
  EXPECT_TRUE(absl::StrContains(refused.output,
                                "job " + job +
                                    " belongs to alice: only its owner or an admin may cancel it "
                                    "(you are bob)"))
      << refused.output;
  EXPECT_TRUE(absl::StrContains(as("alice", "status", job).output, "job " + job + ": running"));

  CommandResult not_admin = as("bob", "agent-state", "some-agent maintenance");
  EXPECT_EQ(not_admin.exit_code, 2) << not_admin.output;
  EXPECT_TRUE(
      absl::StrContains(not_admin.output, "only an admin may set an agent's state (you are bob)"))
      << not_admin.output;

  CommandResult admin = as("carol", "cancel", job);
  EXPECT_EQ(admin.exit_code, 0) << admin.output;
  EXPECT_TRUE(absl::StrContains(admin.output, "cancelled")) << admin.output;

  CommandResult own = as("bob", "submit", submit + " -- true");
  ASSERT_EQ(own.exit_code, 0) << own.output;
  const std::string bobs(absl::StripAsciiWhitespace(own.output));
  CommandResult mine = as("bob", "cancel", bobs);
  EXPECT_EQ(mine.exit_code, 0) << mine.output;
}

}  // namespace
}  // namespace farm::testing
