// A job's own test and tree, with the real binaries: what `git bisect run` accepts the farm runs
// the same way (a script without #!, a superproject with a submodule), and a test that cannot
// start is the job's error (the job fails at once, saying why), never an infrastructure error
// that quarantines the agents that tried it.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "tests/integration/test_farm.h"
#include "tests/lib/test_util.h"

namespace farm::testing {
namespace {

// `farm submit`/`farm bisect` arguments for `repo`'s range.
std::string Range(const Repo& repo) {
  return absl::StrCat("--repo ", Quote(repo.path), " --good ", repo.root, " --bad ", repo.bad);
}

// An executable script without a #! line: execve refuses it (ENOEXEC), git's shell runs it with
// /bin/sh, and so must the agents.
TEST(TaskInput, ScriptWithoutShebangBisectsLikeGit) {
  std::string dir = MakeTempDir("noshebang");
  Repo repo = MakeRepo(dir + "/repo", "--shape merges --commits 60 --seed 19");
  WriteScript(dir + "/test.sh", "test -f bug && exit 1\nexit 0\n");
  std::string git_out;
  BisectAnswer expected =
      GitBisectRun(repo.path, repo.bad, {repo.root}, dir + "/test.sh", &git_out);
  ASSERT_EQ(expected.first_bad, repo.culprit) << git_out;
  CommandResult farm = Sh(absl::StrCat(Farm(), " bisect ", Range(repo), " --agents 2 --workdir ",
                                       Quote(dir + "/state"), " -- ", Quote(dir + "/test.sh")));
  EXPECT_EQ(farm.exit_code, 0) << farm.output;
  EXPECT_EQ(ParseAnswer(farm.output).first_bad, expected.first_bad) << farm.output;
}

// A script whose interpreter no agent has. Each job fails at its first task with a message that
// names the interpreter; no agent is quarantined, however many such jobs run (three infrastructure
// errors in a row would quarantine an agent), and the agents go on to serve a good job.
TEST(TaskInput, MissingInterpreterFailsTheJobAndQuarantinesNoAgent) {
  std::string dir = MakeTempDir("nointerp");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 40 --seed 23");
  TestFarm farm(dir);
  ASSERT_TRUE(farm.started()) << farm.coordinator().Output();
  const std::vector<std::string> agents = {"host-a", "host-b", "host-c"};
  for (const std::string& id : agents) farm.AddAgent(id, dir + "/" + id);
  ASSERT_TRUE(farm.WaitForAgents()) << farm.Agents();
  WriteScript(dir + "/test.py", "#!/nonexistent/farm-python9\nprint('never')\n");
  for (int i = 0; i < 4; ++i) {
    std::string job = farm.Submit(absl::StrCat(Range(repo), " -- ", Quote(dir + "/test.py")));
    ASSERT_FALSE(job.empty());
    CommandResult watch = farm.Watch(job);
    EXPECT_NE(watch.exit_code, 0) << watch.output;
    EXPECT_TRUE(absl::StrContains(watch.output, "the test cannot run")) << watch.output;
    EXPECT_TRUE(absl::StrContains(watch.output, "interpreter '/nonexistent/farm-python9'"))
        << watch.output;
    EXPECT_FALSE(absl::StrContains(watch.output, "is the first bad commit")) << watch.output;
    for (const std::string& id : agents) {
      ASSERT_FALSE(absl::StrContains(farm.AgentLine(id), "quarantined"))
          << "after job " << job << ":\n"
          << farm.Agents();
    }
  }
  WriteScript(dir + "/test.sh", "#!/bin/sh\ntest -f bug && exit 1\nexit 0\n");
  std::string job = farm.Submit(absl::StrCat(Range(repo), " -- ", Quote(dir + "/test.sh")));
  ASSERT_FALSE(job.empty());
  CommandResult watch = farm.Watch(job);
  EXPECT_EQ(watch.exit_code, 0) << watch.output;
  EXPECT_EQ(ParseAnswer(watch.output).first_bad, repo.culprit) << watch.output;
}

// A superproject whose culprit bumps a submodule to a broken commit. `git bisect run` finds it
// when its test runs `git submodule update`; the farm's agents check the submodule out at the
// commit each superproject commit records (mirrored like the superproject, its url relative to
// the superproject's), so the same test without the update finds the same culprit.
TEST(TaskInput, SubmoduleBumpIsFoundAsGitFindsIt) {
  std::string dir = MakeTempDir("submodule");
  const std::string git =
      "git -c user.name=Farm -c user.email=farm@example.com -c protocol.file.allow=always";
  CommandResult made = Sh(absl::StrCat(
      "set -e; cd ", Quote(dir), "; mkdir lib super; cd lib; git init -q -b main;",
      "for i in 1 2 3 4 5 6; do echo $i > lib.txt; if [ $i -ge 4 ]; then echo $i > bug; fi;", git,
      " add -A; ", git, " commit -qm \"lib $i\"; git tag t$i; done;",
      "cd ../super; git init -q -b main; echo 0 > main.txt; ", git, " add -A; ", git,
      " commit -qm root; ", git, " submodule add -q ../lib lib; git -C lib checkout -q t1; ", git,
      " add -A; ", git, " commit -qm 'add lib at t1';",
      "for i in $(seq 1 20); do echo $i > main.txt; msg=\"step $i\";",
      "case $i in 5) t=t2;; 12) t=t4;; 16) t=t6;; *) t=;; esac;",
      "if [ -n \"$t\" ]; then git -C lib checkout -q $t; msg=\"$msg: lib to $t\"; fi;", git,
      " add -A; ", git, " commit -qm \"$msg\"; done"));
  ASSERT_EQ(made.exit_code, 0) << made.output;
  const std::string super = dir + "/super";
  auto rev = [&](const std::string& args) {
    return std::string(
        absl::StripAsciiWhitespace(Sh(absl::StrCat("git -C ", Quote(super), " ", args)).output));
  };
  const std::string root = rev("rev-list --max-parents=0 HEAD");
  const std::string bad = rev("rev-parse HEAD");
  const std::string culprit = rev("log --format=%H --grep='lib to t4'");
  ASSERT_EQ(culprit.size(), 40u) << culprit;

  WriteScript(dir + "/git-test.sh", absl::StrCat("#!/bin/sh\n", git,
                                                 " submodule update --init -q || exit 125\n"
                                                 "test -f lib/bug && exit 1\nexit 0\n"));
  std::string git_out;
  BisectAnswer expected = GitBisectRun(super, bad, {root}, dir + "/git-test.sh", &git_out);
  ASSERT_EQ(expected.first_bad, culprit) << git_out;

  WriteScript(dir + "/test.sh", "#!/bin/sh\ntest -f lib/bug && exit 1\nexit 0\n");
  CommandResult farm = Sh(absl::StrCat(Farm(), " bisect --repo ", Quote(super), " --good ", root,
                                       " --bad ", bad, " --agents 2 --workdir ",
                                       Quote(dir + "/state"), " -- ", Quote(dir + "/test.sh")));
  EXPECT_EQ(farm.exit_code, 0) << farm.output;
  EXPECT_EQ(ParseAnswer(farm.output).first_bad, culprit) << farm.output;
}

}  // namespace
}  // namespace farm::testing
