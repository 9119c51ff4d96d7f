// `farm bisect --verify` end to end, with real agents and real repositories: the culprit, its
// parent and the bad commit with the culprit reverted are retested, and the report says whether
// the answer can be trusted (verified / unreliable, with why), as syzbot's bisections do.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "tests/integration/test_farm.h"
#include "tests/lib/test_util.h"

namespace farm::testing {
namespace {

constexpr char kTestScript[] =
    "#!/bin/sh\n"
    "test -f bug && exit 1\n"
    "exit 0\n";

CommandResult Bisect(const std::string& dir, const std::string& repo, const std::string& good,
                     const std::string& bad, const std::string& extra = "") {
  return Sh(absl::StrCat(Quote(Bin("farm")), " bisect --repo ", Quote(repo), " --good ", good,
                         " --bad ", bad, " --agents 2 --verify --workdir ", Quote(dir + "/state"),
                         " ", extra, " -- ", Quote(dir + "/test.sh")));
}

// Runs `script` (sh) in `repo` with fixed dates, so the commits are the same on every run.
std::string Git(const std::string& repo, const std::string& script) {
  CommandResult r = Sh(absl::StrCat(
      "cd ", Quote(repo),
      " && export GIT_AUTHOR_NAME=Dev GIT_AUTHOR_EMAIL=dev@example.com "
      "GIT_COMMITTER_NAME=Dev GIT_COMMITTER_EMAIL=dev@example.com "
      "GIT_AUTHOR_DATE='2026-01-01T00:00:00Z' GIT_COMMITTER_DATE='2026-01-01T00:00:00Z' && ",
      script));
  EXPECT_EQ(r.exit_code, 0) << script << "\n" << r.output;
  return std::string(absl::StripAsciiWhitespace(r.output));
}

TEST(Verify, ACleanRegressionIsVerifiedWithItsRevertPassing) {
  const std::string dir = MakeTempDir("verify-clean");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 24");
  WriteScript(dir + "/test.sh", kTestScript);
  CommandResult r = Bisect(dir, repo.path, repo.root, repo.bad,
                           absl::StrCat("--log ", Quote(dir + "/bisect.log")));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(ParseAnswer(r.output).first_bad, repo.culprit) << r.output;
  EXPECT_TRUE(absl::StrContains(
      r.output, "Verification: verified: culprit failed 3/3, parent passed 3/3, revert passed 3/3"))
      << r.output;
  // The revert commit was made and tested (it is not one of the repository's commits).
  EXPECT_TRUE(absl::StrContains(r.output, "  revert ")) << r.output;
  // The retests are not in the replayable part of the log: git replays it to the same culprit.
  CommandResult replay =
      Sh(absl::StrCat("git clone -q ", Quote(repo.path), " ", Quote(dir + "/clone"), " && cd ",
                      Quote(dir + "/clone"), " && git bisect replay ", Quote(dir + "/bisect.log")));
  EXPECT_EQ(replay.exit_code, 0) << replay.output;
  EXPECT_EQ(ParseAnswer(replay.output).first_bad, repo.culprit) << replay.output;

  // The same bisect again: the search may reuse verdicts by tree, the retests never do.
  CommandResult again = Bisect(dir, repo.path, repo.root, repo.bad);
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_TRUE(absl::StrContains(again.output, "Verification: verified: culprit failed 3/3"))
      << again.output;
  CommandResult status =
      Sh(absl::StrCat(Quote(Bin("farm")), " status 2 --workdir ", Quote(dir + "/state")));
  ASSERT_EQ(status.exit_code, 0) << status.output;
  EXPECT_TRUE(absl::StrContains(status.output, "verification: verified: ")) << status.output;
  int culprit_runs = 0;
  for (absl::string_view line : absl::StrSplit(status.output, '\n')) {
    culprit_runs += absl::StartsWith(absl::StripLeadingAsciiWhitespace(line), "bad") &&
                    absl::StrContains(line, repo.culprit.substr(0, 10)) &&
                    !absl::StrContains(line, "[reused");
  }
  EXPECT_GE(culprit_runs, 3) << "three fresh retests of the culprit:\n" << status.output;
}

// A repository the coordinator and agents each mirror from a URL: the revert commit the
// coordinator makes in its mirror is not in the agents' ones, and they make the same commit from
// the Assign's revert_culprit/revert_head (before, the revert was not tested for such jobs).
TEST(Verify, TheRevertIsTestedForARemoteRepository) {
  const std::string dir = MakeTempDir("verify-remote");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 24");
  WriteScript(dir + "/test.sh", kTestScript);
  TestFarm farm(dir);
  ASSERT_TRUE(farm.started()) << farm.coordinator().Output();
  farm.AddAgent("a1", dir + "/a1");
  farm.AddAgent("a2", dir + "/a2");
  ASSERT_TRUE(farm.WaitForAgents()) << farm.Agents();
  const std::string job =
      farm.Submit(absl::StrCat("--repo ", Quote("file://" + repo.path), " --good ", repo.root,
                               " --bad ", repo.bad, " --verify -- ", Quote(dir + "/test.sh")));
  ASSERT_FALSE(job.empty());
  CommandResult r = farm.Watch(job);
  EXPECT_EQ(ParseAnswer(r.output).first_bad, repo.culprit) << r.output;
  EXPECT_TRUE(absl::StrContains(
      r.output, "Verification: verified: culprit failed 3/3, parent passed 3/3, revert passed 3/3"))
      << r.output;
  EXPECT_FALSE(absl::StrContains(r.output, "revert not tested")) << r.output;
  // The agents made it in their own mirrors: nothing was written into the user's repository.
  CommandResult reverts = Sh(absl::StrCat("git -C ", Quote(repo.path),
                                          " log --all --format=%s | grep -c '^Revert' || true"));
  EXPECT_EQ(absl::StripAsciiWhitespace(reverts.output), "0") << reverts.output;
}

TEST(Verify, ATestThatFailsOneRunInThreeIsNotVerified) {
  const std::string dir = MakeTempDir("verify-flaky");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 24");
  // Without the bug, every third run fails, counted in a file (under a lock: two agents).
  WriteScript(dir + "/test.sh",
              absl::StrCat("#!/bin/sh\n"
                           "test -f bug && exit 1\n"
                           "exec 9>>",
                           Quote(dir + "/count.lock"),
                           "\n"
                           "flock 9\n"
                           "n=$(cat ",
                           Quote(dir + "/count"), " 2>/dev/null || echo 0)\n", "n=$((n + 1))\n",
                           "echo $n > ", Quote(dir + "/count"), "\n",
                           "test $((n % 3)) -eq 0 && exit 1\n"
                           "exit 0\n"));
  CommandResult r = Bisect(dir, repo.path, repo.root, repo.bad);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "Verification: unreliable: ")) << r.output;
  EXPECT_FALSE(absl::StrContains(r.output, "Verification: verified")) << r.output;
}

TEST(Verify, AMergeCulpritIsUnreliable) {
  const std::string dir = MakeTempDir("verify-merge");
  const std::string repo = dir + "/repo";
  ASSERT_EQ(Sh("git init -q -b main " + Quote(repo)).exit_code, 0);
  // Each branch alone is fine; together they break: the merge is the first bad commit.
  const std::string good = Git(repo,
                               "echo base > base && git add base && git commit -qm base && "
                               "git rev-parse HEAD");
  Git(repo,
      "git checkout -qb topic && echo t > topic-part && git add topic-part && "
      "git commit -qm 'topic part' && git checkout -q main && echo m > main-part && "
      "git add main-part && git commit -qm 'main part' && "
      "git merge -q --no-ff -m 'merge topic' topic && echo x > later && git add later && "
      "git commit -qm later");
  const std::string merge = Git(repo, "git rev-parse HEAD^");
  WriteScript(dir + "/test.sh",
              "#!/bin/sh\ntest -f main-part && test -f topic-part && exit 1\nexit 0\n");
  CommandResult r = Bisect(dir, repo, good, "main");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(ParseAnswer(r.output).first_bad, merge) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "Verification: unreliable: the culprit is a merge"))
      << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "revert not tested: the culprit is a merge")) << r.output;
}

TEST(Verify, AnEmptyCommitCulpritIsUnreliable) {
  const std::string dir = MakeTempDir("verify-empty");
  const std::string repo = dir + "/repo";
  ASSERT_EQ(Sh("git init -q -b main " + Quote(repo)).exit_code, 0);
  const std::string good = Git(repo,
                               "echo 0 > f && git add f && git commit -qm zero && "
                               "echo 1 > f && git commit -qam one && git rev-parse HEAD");
  const std::string empty =
      Git(repo, "git commit -q --allow-empty -m 'empty' && git rev-parse HEAD");
  const std::string after = Git(repo,
                                "echo 2 > f && git commit -qam two && echo 3 > f && "
                                "git commit -qam three && git rev-parse HEAD~1 HEAD");
  // A test that depends on something other than the tree (here the commit itself, as a test
  // reading the date or the network would): it fails from the empty commit on.
  WriteScript(dir + "/test.sh",
              absl::StrCat("#!/bin/sh\ncase \"$FARM_COMMIT\" in\n", empty, ")\n  exit 1;;\n",
                           absl::StrJoin(absl::StrSplit(after, '\n'), "|"),
                           ")\n  exit 1;;\nesac\nexit 0\n"));
  CommandResult r = Bisect(dir, repo, good, "main");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(ParseAnswer(r.output).first_bad, empty) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output,
                                "Verification: unreliable: the culprit's tree equals its parent's"))
      << r.output;
}

}  // namespace
}  // namespace farm::testing
