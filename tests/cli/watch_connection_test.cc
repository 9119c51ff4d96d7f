// `farm watch` against a coordinator it cannot reach: it gives up within its budget, with exit code
// 5 and a message naming the address it tried and what to check, both when the coordinator was
// never reached (--connect-timeout) and when it went away mid-watch (--reconnect-timeout).
#include <signal.h>

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "tests/integration/test_farm.h"
#include "tests/lib/test_util.h"

namespace farm::testing {
namespace {

TEST(WatchConnection, AnUnreachableCoordinatorIsGivenUpOn) {
  // Port 1 on loopback: nothing listens there, connections are refused at once. `timeout` bounds
  // a watch that would retry forever, so that it fails here rather than at ctest's timeout.
  absl::Time start = absl::Now();
  CommandResult r = Sh(absl::StrCat("timeout 30 ", Farm(),
                                    " --connect-timeout 1 watch 7 --coordinator 127.0.0.1:1"));
  EXPECT_EQ(r.exit_code, 5) << r.output;
  EXPECT_LT(absl::Now() - start, absl::Seconds(20)) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "no answer from 127.0.0.1:1 within 1s")) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "--connect-timeout")) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "Check that farm-coordinator runs there")) << r.output;
}

TEST(WatchConnection, AWatchWhoseCoordinatorStaysAwayGivesUp) {
  std::string dir = MakeTempDir("watch-lost");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 200");
  // Runs pass (each a verdict the watch prints) until the test holds them: from then on they wait
  // for the gate (opened at the end, whatever happens), so that the job is still running when the
  // coordinator goes away. The bisect of 200 commits needs about 8 rounds: time enough to hold.
  const std::string hold = dir + "/hold";
  const std::string gate = dir + "/gate";
  WriteScript(dir + "/test.sh",
              absl::StrCat("#!/bin/sh\nif [ ! -e ", Quote(hold), " ]; then sleep 0.5; exit 0; fi\n",
                           "while [ ! -e ", Quote(gate), " ]; do sleep 0.1; done\n"));
  struct OpenGate {
    std::string path;
    ~OpenGate() { WriteScript(path, ""); }
  } open_gate{gate};
  TestFarm farm(dir);
  ASSERT_TRUE(farm.started()) << farm.coordinator().Output();
  farm.AddAgent("a1", dir + "/a1");
  ASSERT_TRUE(farm.WaitForAgents());
  std::string job = farm.Submit(absl::StrCat("--repo ", Quote(repo.path), " --good ", repo.root,
                                             " --bad ", repo.bad, " -- ", Quote(dir + "/test.sh")));
  ASSERT_FALSE(job.empty());
  const std::string listen = farm.listen();
  Background watcher(
      {Bin("farm"), "--reconnect-timeout", "2", "watch", "--coordinator", listen, job},
      dir + "/watch.log");
  ASSERT_TRUE(watcher.WaitForOutput(" left, ~", absl::Seconds(30))) << watcher.Output();
  WriteScript(hold, "");
  farm.coordinator().Kill(SIGKILL);
  farm.coordinator().Wait();
  // The message is the watch's last word: it exits right after (Wait() does not hang).
  if (!watcher.WaitForOutput("could not reattach within", absl::Seconds(30))) {
    watcher.Kill(SIGKILL);
    FAIL() << "the watch still runs 30 s after its coordinator went away:\n" << watcher.Output();
  }
  EXPECT_EQ(watcher.Wait(), 5) << watcher.Output();
  EXPECT_TRUE(absl::StrContains(watcher.Output(),
                                absl::StrCat("lost the stream of job ", job, " at ", listen,
                                             " and could not reattach within 2s")))
      << watcher.Output();
  EXPECT_TRUE(absl::StrContains(watcher.Output(), absl::StrCat("`farm watch ", job, "`")))
      << watcher.Output();
}

}  // namespace
}  // namespace farm::testing
