// End-to-end bisects with the real binaries: `farm bisect` (embedded coordinator and local
// agents over gRPC on loopback), farm-coordinator + farm-agent processes, compared with what
// `git bisect run` answers on the same repository with the same script.
#include <signal.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "coordinator/store/store.h"
#include "gtest/gtest.h"
#include "tests/lib/test_util.h"

namespace farm::testing {
namespace {

constexpr char kTestScript[] =
    "#!/bin/sh\n"
    "test -f skipme && exit 125\n"
    "test -f bug && exit 1\n"
    "exit 0\n";
// For git bisect run, the build is part of the script: a failed build says 125.
constexpr char kGitScriptWithBuild[] =
    "#!/bin/sh\n"
    "test -f broken && exit 125\n"
    "test -f skipme && exit 125\n"
    "test -f bug && exit 1\n"
    "exit 0\n";

struct FarmRun {
  CommandResult result;
  BisectAnswer answer;
};

FarmRun RunFarm(const std::string& args) {
  FarmRun run;
  run.result = Sh(absl::StrCat(Quote(Bin("farm")), " bisect ", args));
  run.answer = ParseAnswer(run.result.output);
  return run;
}

bool HasBug(const Repo& repo, const std::string& commit) {
  return Sh(absl::StrCat("git -C ", Quote(repo.path), " cat-file -e ", commit, ":bug")).exit_code ==
         0;
}

struct Case {
  std::string name;
  std::string repo_args;
  bool extra_good = false;  // a second good commit on a side branch
  bool build = false;       // a separate build step that fails on some commits
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class BisectMatchesGit : public ::testing::TestWithParam<std::tuple<Case, int>> {};

TEST_P(BisectMatchesGit, SameAnswerAsGitBisectRun) {
  const Case& c = std::get<0>(GetParam());
  const int agents = std::get<1>(GetParam());
  std::string dir = MakeTempDir(c.name);
  Repo repo = MakeRepo(dir + "/repo", c.repo_args);
  ASSERT_FALSE(repo.bad.empty());
  std::vector<std::string> goods = {repo.root};
  if (c.extra_good) {
    // A good commit that is not on the first-parent line: the newest bug-free non-root commit
    // that is not an ancestor of the culprit.
    for (auto it = repo.commits.rbegin(); it != repo.commits.rend(); ++it) {
      if (*it == repo.root || HasBug(repo, *it)) continue;
      if (Sh(absl::StrCat("git -C ", Quote(repo.path), " merge-base --is-ancestor ", *it, " ",
                          repo.culprit))
                  .exit_code != 0 &&
          Sh(absl::StrCat("git -C ", Quote(repo.path), " merge-base --is-ancestor ", *it, " ",
                          repo.bad))
                  .exit_code == 0) {
        goods.push_back(*it);
        break;
      }
    }
    ASSERT_EQ(goods.size(), 2u) << "no side-branch good commit in this repository";
  }
  WriteScript(dir + "/test.sh", kTestScript);
  WriteScript(dir + "/git-test.sh", kGitScriptWithBuild);

  std::string git_out;
  BisectAnswer expected = GitBisectRun(repo.path, repo.bad, goods, dir + "/git-test.sh", &git_out);
  ASSERT_TRUE(!expected.first_bad.empty() || !expected.candidates.empty()) << git_out;

  std::string args = absl::StrCat("--repo ", Quote(repo.path), " --bad ", repo.bad, " --agents ",
                                  agents, " --workdir ", Quote(dir + "/state"));
  for (const auto& g : goods) absl::StrAppend(&args, " --good ", g);
  if (c.build) absl::StrAppend(&args, " --build 'test ! -f broken'");
  absl::StrAppend(&args, " -- ", Quote(dir + "/test.sh"));
  FarmRun farm = RunFarm(args);
  EXPECT_EQ(farm.answer, expected) << "farm: " << Describe(farm.answer)
                                   << "\ngit: " << Describe(expected) << "\n--- farm output\n"
                                   << farm.result.output << "\n--- git output\n"
                                   << git_out;
  EXPECT_EQ(farm.result.exit_code, expected.first_bad.empty() ? 3 : 0) << farm.result.output;
  if (expected.candidates.empty()) {
    EXPECT_EQ(farm.answer.first_bad, repo.culprit);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Histories, BisectMatchesGit,
    ::testing::Combine(
        ::testing::Values(Case{"linear", "--shape linear --commits 64 --seed 3"},
                          Case{"merges", "--shape merges --commits 160 --seed 5"},
                          Case{"multigood", "--shape merges --commits 160 --seed 7", true},
                          Case{"skips", "--shape linear --commits 64 --skip 3 --skip-near-culprit"},
                          Case{"randomskips", "--shape merges --commits 120 --skip 6 --seed 11"},
                          Case{"buildfail", "--shape merges --commits 120 --broken 6 --seed 13",
                               false, true}),
        ::testing::Values(1, 2, 4)),
    [](const auto& info) {
      return absl::StrCat(std::get<0>(info.param).name, "_", std::get<1>(info.param), "agents");
    });

TEST(Bisect, LogIsAcceptedByGitBisectReplay) {
  std::string dir = MakeTempDir("replay");
  Repo repo = MakeRepo(dir + "/repo", "--shape merges --commits 100 --seed 21");
  WriteScript(dir + "/test.sh", kTestScript);
  FarmRun farm =
      RunFarm(absl::StrCat("--repo ", Quote(repo.path), " --good ", repo.root, " --bad ", repo.bad,
                           " --agents 2 --workdir ", Quote(dir + "/state"), " --log ",
                           Quote(dir + "/bisect.log"), " -- ", Quote(dir + "/test.sh")));
  ASSERT_EQ(farm.result.exit_code, 0) << farm.result.output;
  ASSERT_EQ(farm.answer.first_bad, repo.culprit);
  CommandResult replay =
      Sh(absl::StrCat("git clone -q ", Quote(repo.path), " ", Quote(dir + "/clone"), " && cd ",
                      Quote(dir + "/clone"), " && git bisect replay ", Quote(dir + "/bisect.log")));
  EXPECT_EQ(replay.exit_code, 0) << replay.output;
  EXPECT_EQ(ParseAnswer(replay.output).first_bad, repo.culprit)
      << replay.output << "\n--- log\n"
      << Sh("cat " + Quote(dir + "/bisect.log")).output;
}

TEST(Bisect, ReportSaysFirstBadCommitInGitsWords) {
  std::string dir = MakeTempDir("report");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 20");
  WriteScript(dir + "/test.sh", kTestScript);
  FarmRun farm =
      RunFarm(absl::StrCat("--repo ", Quote(repo.path), " --good ", repo.root, " --bad ", repo.bad,
                           " --workdir ", Quote(dir + "/state"), " -- ", Quote(dir + "/test.sh")));
  ASSERT_EQ(farm.result.exit_code, 0) << farm.result.output;
  const std::string& out = farm.result.output;
  EXPECT_TRUE(absl::StrContains(out, repo.culprit + " is the first bad commit")) << out;
  EXPECT_TRUE(absl::StrContains(out, "Author: Dev ")) << out;
  EXPECT_TRUE(absl::StrContains(out, "Date:   ")) << out;
  EXPECT_TRUE(absl::StrContains(out, ": the regression")) << out;
  EXPECT_TRUE(absl::StrContains(out, " bug ")) << "diffstat names the file: " << out;
  // Old/new vocabulary.
  FarmRun terms = RunFarm(absl::StrCat("--repo ", Quote(repo.path), " --old ", repo.root, " --new ",
                                       repo.bad, " --term-old old --term-new new", " --workdir ",
                                       Quote(dir + "/state"), " -- ", Quote(dir + "/test.sh")));
  EXPECT_EQ(terms.result.exit_code, 0) << terms.result.output;
  EXPECT_TRUE(absl::StrContains(terms.result.output, repo.culprit + " is the first new commit"))
      << terms.result.output;
}

// A second bisect over an overlapping range reuses the first one's verdicts (same trees, same
// recipe) and says so; --no-reuse tests again.
TEST(Bisect, SecondBisectReusesVerdictsOfIdenticalTrees) {
  std::string dir = MakeTempDir("reuse");
  Repo repo = MakeRepo(dir + "/repo", "--shape merges --commits 120 --seed 61");
  WriteScript(dir + "/test.sh", kTestScript);
  std::string common = absl::StrCat("--repo ", Quote(repo.path), " --bad ", repo.bad,
                                    " --agents 2 --workdir ", Quote(dir + "/state"));
  FarmRun first =
      RunFarm(absl::StrCat(common, " --good ", repo.root, " -- ", Quote(dir + "/test.sh")));
  ASSERT_EQ(first.answer.first_bad, repo.culprit) << first.result.output;
  EXPECT_FALSE(absl::StrContains(first.result.output, " reused"));
  FarmRun second =
      RunFarm(absl::StrCat(common, " --good ", repo.commits[5], " -- ", Quote(dir + "/test.sh")));
  EXPECT_EQ(second.answer.first_bad, repo.culprit) << second.result.output;
  EXPECT_TRUE(absl::StrContains(second.result.output, "Reused verdicts")) << second.result.output;
  EXPECT_TRUE(absl::StrContains(second.result.output, " reused")) << second.result.output;
  FarmRun fresh = RunFarm(
      absl::StrCat(common, " --no-reuse --good ", repo.root, " -- ", Quote(dir + "/test.sh")));
  EXPECT_EQ(fresh.answer.first_bad, repo.culprit);
  EXPECT_FALSE(absl::StrContains(fresh.result.output, " reused")) << fresh.result.output;
}

// With --first-parent a culprit on a merged topic branch makes the merge the first bad commit.
// The farm says so, and with --descend bisects the branch and names the real culprit.
TEST(Bisect, MergeBlamedThenDescendIntoItsBranch) {
  std::string dir = MakeTempDir("descend");
  Repo repo;
  for (int seed = 1; seed < 40; ++seed) {
    repo = MakeRepo(absl::StrCat(dir, "/repo", seed),
                    absl::StrCat("--shape merges --commits 150 --seed ", seed));
    CommandResult fp =
        Sh(absl::StrCat("git -C ", Quote(repo.path), " rev-list --first-parent ", repo.bad));
    if (!absl::StrContains(fp.output, repo.culprit)) break;
    repo = Repo();
  }
  ASSERT_FALSE(repo.path.empty()) << "no generated history has its culprit on a topic branch";
  WriteScript(dir + "/test.sh", kTestScript);
  std::string common =
      absl::StrCat("--repo ", Quote(repo.path), " --good ", repo.root, " --bad ", repo.bad,
                   " --agents 2 --first-parent --no-reuse --workdir ", Quote(dir + "/state"));
  FarmRun blamed = RunFarm(absl::StrCat(common, " -- ", Quote(dir + "/test.sh")));
  ASSERT_EQ(blamed.result.exit_code, 0) << blamed.result.output;
  EXPECT_NE(blamed.answer.first_bad, repo.culprit);
  EXPECT_TRUE(absl::StrContains(blamed.result.output, "is a merge")) << blamed.result.output;
  EXPECT_TRUE(absl::StrContains(blamed.result.output, "--descend")) << blamed.result.output;
  FarmRun descended = RunFarm(absl::StrCat(common, " --descend -- ", Quote(dir + "/test.sh")));
  EXPECT_EQ(descended.result.exit_code, 0) << descended.result.output;
  EXPECT_TRUE(absl::StrContains(descended.result.output, "descending into the branch"))
      << descended.result.output;
  // The last answer printed is the real culprit.
  std::string out = descended.result.output;
  EXPECT_EQ(ParseAnswer(out.substr(out.rfind("== job"))).first_bad, repo.culprit) << out;
}

// A flaky test: on a bad commit it passes 30% of the time. Plain bisection trusts each run; the
// flaky mode keeps a posterior, repeats where it pays, and names the culprit with a confidence.
// Each commit's outcomes follow a fixed pseudo-random sequence (the nth run of a commit), so the
// scenario is the same whatever order the agents run in.
TEST(Bisect, FlakyModeFindsTheCulpritWithAConfidence) {
  std::string dir = MakeTempDir("flaky");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 64 --seed 67 --culprit 0.4");
  Sh("mkdir -p " + Quote(dir + "/runs"));
  WriteScript(dir + "/test.sh", absl::StrCat(R"(#!/bin/sh
test -f bug || exit 0
# The nth run of this commit: a lock-free counter (mkdir is atomic).
n=0
while ! mkdir )",
                                             Quote(dir + "/runs/"),
                                             R"($FARM_COMMIT.$n 2>/dev/null; do n=$((n+1)); done
h=$(printf '%s' "$FARM_COMMIT.$n" | cksum | cut -d' ' -f1)
[ $((h % 10)) -lt 3 ] && exit 0
exit 1
)"));
  FarmRun farm =
      RunFarm(absl::StrCat("--repo ", Quote(repo.path), " --good ", repo.root, " --bad ", repo.bad,
                           " --agents 2 --flaky 0.3,0 ", "--confidence 0.999 --workdir ",
                           Quote(dir + "/state"), " -- ", Quote(dir + "/test.sh")));
  EXPECT_EQ(farm.result.exit_code, 0) << farm.result.output;
  EXPECT_EQ(farm.answer.first_bad, repo.culprit) << farm.result.output;
  EXPECT_TRUE(absl::StrContains(farm.result.output, "Flaky mode: confidence 0.99"))
      << farm.result.output;
}

// The same job from a job file, and a job file with a mistake: an error naming the field.
TEST(Bisect, JobFile) {
  std::string dir = MakeTempDir("jobfile");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 30 --seed 71");
  WriteScript(dir + "/check.sh", kTestScript);
  {
    std::ofstream f(dir + "/job.yaml");
    f << "repo: repo\ngood: " << repo.root << "\nbad: " << repo.bad
      << "\ntest:\n  script: check.sh\n";
  }
  CommandResult run =
      Sh(absl::StrCat(Quote(Bin("farm")), " bisect --job ", Quote(dir + "/job.yaml"), " --workdir ",
                      Quote(dir + "/state")));
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(ParseAnswer(run.output).first_bad, repo.culprit) << run.output;
  {
    std::ofstream f(dir + "/bad.yaml");
    f << "repo: repo\ngood: " << repo.root << "\nbad: " << repo.bad
      << "\ntset:\n  script: check.sh\n";
  }
  CommandResult bad =
      Sh(absl::StrCat(Quote(Bin("farm")), " bisect --job ", Quote(dir + "/bad.yaml"), " --workdir ",
                      Quote(dir + "/state")));
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_TRUE(absl::StrContains(bad.output, "tset")) << bad.output;
}

// A repository whose incremental build breaks on stale generated files: every build after one
// at another commit fails. git bisect run (no clean between steps) skips its way to a list of
// candidates; the farm retries such failures once in a pristine worktree and names the culprit.
TEST(Bisect, StaleGeneratedFilesDoNotHideTheCulprit) {
  std::string dir = MakeTempDir("stale");
  Repo repo = MakeRepo(dir + "/repo", "--shape stale --commits 40 --culprit 0.3");
  WriteScript(dir + "/test.sh", kTestScript);
  WriteScript(dir + "/git-test.sh",
              "#!/bin/sh\nsh build.sh || exit 125\ntest -f bug && exit 1\nexit 0\n");
  std::string git_out;
  BisectAnswer git = GitBisectRun(repo.path, repo.bad, {repo.root}, dir + "/git-test.sh", &git_out);
  EXPECT_NE(git.first_bad, repo.culprit) << "git bisect run was expected to miss it:\n" << git_out;
  EXPECT_GT(git.candidates.size(), 1u) << git_out;

  FarmRun farm = RunFarm(absl::StrCat("--repo ", Quote(repo.path), " --good ", repo.root, " --bad ",
                                      repo.bad, " --agents 2 --workdir ", Quote(dir + "/state"),
                                      " --build 'sh build.sh' -- ", Quote(dir + "/test.sh")));
  EXPECT_EQ(farm.result.exit_code, 0) << farm.result.output;
  EXPECT_EQ(farm.answer.first_bad, repo.culprit) << farm.result.output;
  EXPECT_TRUE(absl::StrContains(farm.result.output, "Retried in a pristine worktree"))
      << farm.result.output;
  EXPECT_TRUE(absl::StrContains(farm.result.output, "build failed (exit 2)")) << farm.result.output;
}

// With 4 agents the planner tests the root midpoint and, speculatively, both halves. When the
// root says bad, the upper half is pointless: its tasks must be cancelled at once, process group
// and all. Commits in the upper half hang (a backgrounded sleep) until killed; the other commits
// answer only once one of those is running, and commits in the lower half refuse to give a
// verdict (exit 200, an infrastructure error) while any of those sleeps is still alive, so a
// cancellation that does not kill the whole group fails the bisect.
TEST(Bisect, CancelledSpeculativeTasksReallyStop) {
  std::string dir = MakeTempDir("cancel");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 33 --culprit 0.15");
  std::string pids = dir + "/pids";
  WriteScript(dir + "/test.sh",
              absl::StrCat(R"(#!/bin/sh
i=$(ls f | sort -n | tail -1)
if [ "$i" -gt 20 ]; then
  sleep 1000 &
  echo $! >> )",
                           Quote(pids), R"(
  wait
  exit 0
fi
# Every other commit answers only once a speculative task in the upper half is running ...
n=0
while [ ! -s )",
                           Quote(pids), R"( ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done
# ... and the lower half only once those speculative processes are gone.
if [ "$i" -le 10 ]; then
  n=0
  while [ $n -lt 400 ]; do
    alive=0
    for p in $(cat )",
                           Quote(pids), R"( 2>/dev/null); do kill -0 $p 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.05
    n=$((n+1))
  done
  [ $alive = 1 ] && exit 200
fi
test -f bug && exit 1
exit 0
)"));
  FarmRun farm = RunFarm(absl::StrCat("--repo ", Quote(repo.path), " --good ", repo.root, " --bad ",
                                      repo.bad, " --agents 4 --workdir ", Quote(dir + "/state"),
                                      " -- ", Quote(dir + "/test.sh")));
  EXPECT_EQ(farm.result.exit_code, 0) << farm.result.output;
  EXPECT_EQ(farm.answer.first_bad, repo.culprit) << farm.result.output;
  EXPECT_TRUE(absl::StrContains(farm.result.output, "a newer verdict ruled this commit out") ||
              absl::StrContains(farm.result.output, "a newer verdict ruled these commits out"))
      << farm.result.output;
  std::ifstream f(pids);
  std::string line;
  int count = 0;
  while (std::getline(f, line)) {
    int pid = 0;
    if (!absl::SimpleAtoi(line, &pid)) continue;
    ++count;
    EXPECT_NE(kill(pid, 0), 0) << "speculative process " << pid << " is still alive";
  }
  EXPECT_GT(count, 0) << "no speculative task was started in the upper half\n"
                      << farm.result.output;
}

// Every bad input gives a clear error, exit code 2, and stores no job.
struct BadInput {
  std::string name;
  std::string args;    // after --repo R --workdir W; @ROOT@, @BAD@, @MID@ replaced
  std::string expect;  // part of the message
};

void PrintTo(const BadInput& b, std::ostream* os) { *os << b.name; }

class BadInputs : public ::testing::TestWithParam<BadInput> {};

TEST_P(BadInputs, ClearErrorAndNothingStored) {
  const BadInput& b = GetParam();
  std::string dir = MakeTempDir("badinput");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 10");
  WriteScript(dir + "/test.sh", kTestScript);
  WriteScript(dir + "/noexec.sh", kTestScript);
  Sh("chmod -x " + Quote(dir + "/noexec.sh"));
  Sh(absl::StrCat(
      "git -C ", Quote(repo.path), " checkout -q -b side ", repo.commits[3], " && git -C ",
      Quote(repo.path),
      " -c user.name=t -c user.email=t@example.com commit -q --allow-empty -m side && git -C ",
      Quote(repo.path), " checkout -q main"));
  std::string args = b.args;
  auto replace = [&](const std::string& from, const std::string& to) {
    for (size_t at; (at = args.find(from)) != std::string::npos;) args.replace(at, from.size(), to);
  };
  replace("@ROOT@", repo.root);
  replace("@BAD@", repo.bad);
  replace("@MID@", repo.commits[5]);
  replace("@DIR@", dir);
  std::string repo_arg = absl::StrContains(args, "--repo") ? "" : "--repo " + Quote(repo.path);
  CommandResult r = Sh(absl::StrCat("cd ", Quote(dir), " && ", Quote(Bin("farm")), " bisect ",
                                    repo_arg, " --workdir ", Quote(dir + "/state"), " ", args));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, b.expect)) << "expected '" << b.expect << "' in:\n"
                                                     << r.output;
  EXPECT_FALSE(absl::StrContains(r.output, "is the first bad commit")) << r.output;
  if (std::ifstream(dir + "/state/farm.db").good()) {
    auto store = Store::Open(dir + "/state/farm.db");
    ASSERT_TRUE(store.ok());
    auto jobs = (*store)->LoadJobs(false);
    ASSERT_TRUE(jobs.ok());
    EXPECT_TRUE(jobs->empty()) << "a job was stored for a bad request";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Errors, BadInputs,
    ::testing::Values(
        BadInput{"UnknownRevision", "--good @ROOT@ --bad nosuchrev -- ./test.sh", "nosuchrev"},
        BadInput{"GoodEqualsBad", "--good @BAD@ --bad main -- ./test.sh", "same commit"},
        BadInput{"Swapped", "--good @BAD@ --bad @ROOT@ -- ./test.sh", "did you swap them?"},
        BadInput{"Diverged", "--good side --bad main -- ./test.sh", "not an ancestor"},
        BadInput{"MissingRepo", "--repo @DIR@/nope --good a --bad b -- ./test.sh",
                 "does not exist"},
        BadInput{"NotARepo", "--repo @DIR@ --good a --bad b -- ./test.sh", "git"},
        BadInput{"MissingTest", "--good @ROOT@ --bad @BAD@ -- ./missing.sh", "does not exist"},
        BadInput{"NotExecutable", "--good @ROOT@ --bad @BAD@ -- ./noexec.sh", "not executable"},
        BadInput{"NotInPath", "--good @ROOT@ --bad @BAD@ -- no-such-program-xyz", "not found"},
        BadInput{"NoTestCommand", "--good @ROOT@ --bad @BAD@", "no test command"},
        BadInput{"NoGood", "--bad @BAD@ -- ./test.sh", "--good"}),
    [](const auto& info) { return info.param.name; });

// The same job, run distributed: a farm-coordinator process, two farm-agent processes and
// `farm submit --watch`. One agent is SIGKILLed in the middle of a task: its lease expires, the
// commit is requeued on the other agent and the bisect still names the culprit.
TEST(Distributed, SameAnswerAsLocalAndSurvivesAnAgentKilledMidTask) {
  std::string dir = MakeTempDir("distributed");
  Repo repo = MakeRepo(dir + "/repo", "--shape merges --commits 120 --seed 31");
  WriteScript(dir + "/test.sh", kTestScript);
  // The victim agent hangs in its first task (after saying so); the other agent is normal.
  WriteScript(
      dir + "/dist-test.sh",
      absl::StrCat("#!/bin/sh\ncase \"$FARM_WORKTREE\" in\n  */victim/*) echo $$ > ",
                   Quote(dir + "/victim.pid.tmp"), "; mv ", Quote(dir + "/victim.pid.tmp"), " ",
                   Quote(dir + "/victim.pid"), "; exec sleep 1000;;\nesac\n", kTestScript));
  FarmRun local = RunFarm(absl::StrCat("--repo ", Quote(repo.path), " --good ", repo.root,
                                       " --bad ", repo.bad, " --agents 2 --workdir ",
                                       Quote(dir + "/state"), " -- ", Quote(dir + "/test.sh")));
  ASSERT_EQ(local.answer.first_bad, repo.culprit) << local.result.output;

  Background coordinator({Bin("farm-coordinator"), "--listen", "127.0.0.1:0", "--db",
                          dir + "/coord.db", "--lease", "3", "--heartbeat", "1"},
                         dir + "/coordinator.log");
  ASSERT_TRUE(coordinator.WaitForOutput("listening on ", absl::Seconds(20)))
      << coordinator.Output();
  std::string out = coordinator.Output();
  std::string address = out.substr(out.find("listening on ") + 13);
  address = address.substr(0, address.find(' '));
  Background victim(
      {Bin("farm-agent"), "--coordinator", address, "--workdir", dir + "/victim", "--id", "victim"},
      dir + "/victim.log");
  ASSERT_TRUE(WaitFor(
      [&] {
        return Sh(absl::StrCat(Quote(Bin("farm")), " agents --coordinator ", address))
                   .output.find("victim") != std::string::npos;
      },
      absl::Seconds(20)));
  // Submit while only the victim is connected, so it gets the first task.
  CommandResult submit = Sh(absl::StrCat(
      Quote(Bin("farm")), " submit --coordinator ", address, " --repo ", Quote(repo.path),
      " --good ", repo.root, " --bad ", repo.bad, " -- ", Quote(dir + "/dist-test.sh")));
  ASSERT_EQ(submit.exit_code, 0) << submit.output;
  std::string job = std::string(absl::StripAsciiWhitespace(submit.output));
  ASSERT_TRUE(WaitFor([&] { return std::ifstream(dir + "/victim.pid").good(); }, absl::Seconds(30)))
      << victim.Output();
  victim.Kill(SIGKILL);
  victim.Wait();
  // The agent died with its test still running (nobody is left to kill it): end it here.
  int test_pid = 0;
  std::ifstream(dir + "/victim.pid") >> test_pid;
  if (test_pid > 0) kill(test_pid, SIGKILL);
  // Nothing else runs: the bisect can only go on once the lease (3 s) has expired.
  auto status = [&] {
    return Sh(absl::StrCat(Quote(Bin("farm")), " status --coordinator ", address, " ", job));
  };
  ASSERT_TRUE(
      WaitFor([&] { return absl::StrContains(status().output, "lost "); }, absl::Seconds(30)))
      << status().output;
  Background helper(
      {Bin("farm-agent"), "--coordinator", address, "--workdir", dir + "/helper", "--id", "helper"},
      dir + "/helper.log");
  CommandResult watch = Sh(absl::StrCat(Quote(Bin("farm")), " watch --coordinator ", address, " ",
                                        job, " --log ", Quote(dir + "/dist.log")));
  EXPECT_EQ(watch.exit_code, 0) << watch.output << coordinator.Output();
  EXPECT_EQ(ParseAnswer(watch.output), local.answer) << watch.output;
  // The lost commit was tested again, on the helper.
  CommandResult final_status = status();
  EXPECT_TRUE(absl::StrContains(final_status.output, "on helper")) << final_status.output;
  // The log of a tested commit is kept per task.
  CommandResult log = Sh(absl::StrCat(Quote(Bin("farm")), " log --coordinator ", address, " ", job,
                                      " ", repo.culprit.substr(0, 10)));
  EXPECT_EQ(log.exit_code, 0) << log.output;
  EXPECT_TRUE(absl::StrContains(log.output, "farm: test: exit 1")) << log.output;
}

}  // namespace
}  // namespace farm::testing
