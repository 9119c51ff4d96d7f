// The `farm` command as a user meets it: signals, local state after an interruption, exit codes,
// what it prints of others' text, and the checks made before a job starts. Real binaries, real
// repositories, real process groups; job state is read back through the CLI (the Farm API).
#include <signal.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "tests/lib/test_util.h"

namespace farm::testing {
namespace {

std::string Farm() { return Quote(Bin("farm")); }

std::string ReadAll(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<pid_t> ReadPids(const std::string& path) {
  std::vector<pid_t> pids;
  for (absl::string_view line : absl::StrSplit(ReadAll(path), '\n', absl::SkipEmpty())) {
    int pid = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &pid) && pid > 0) pids.push_back(pid);
  }
  return pids;
}

// `farm bisect` of repo's whole range with `script` (and `flags` before the `--`).
CommandResult Bisect(const Repo& repo, const std::string& script, const std::string& flags = "") {
  return Sh(absl::StrCat(Farm(), " bisect --repo ", Quote(repo.path), " --good ", repo.root,
                         " --bad ", repo.bad, " ", flags, " -- ", Quote(script)));
}

// Alive and not a zombie.
bool Running(pid_t pid) {
  std::string stat = ReadAll(absl::StrCat("/proc/", pid, "/stat"));
  if (stat.empty()) return false;
  size_t paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] != 'Z';
}

// A test that writes its pids (the shell, then a background child), then waits forever.
void WriteHangingTest(const std::string& path, const std::string& pid_file) {
  WriteScript(path, absl::StrCat("#!/bin/sh\n"
                                 "sleep 1000 &\n"
                                 "echo $! >> ",
                                 Quote(pid_file),
                                 "\n"
                                 "echo $$ >> ",
                                 Quote(pid_file),
                                 "\n"
                                 "exec sleep 999\n"));
}

void KillAll(const std::vector<pid_t>& pids) {
  for (pid_t p : pids) kill(p, SIGKILL);
}

// `farm bisect` on `repo` with the hanging test, in the background, once both tests run.
struct HangingBisect {
  std::string pid_file;
  std::unique_ptr<Background> farm;
};
HangingBisect StartHangingBisect(const std::string& dir, const Repo& repo) {
  HangingBisect h;
  h.pid_file = dir + "/pids";
  WriteHangingTest(dir + "/hang.sh", h.pid_file);
  h.farm = std::make_unique<Background>(
      std::vector<std::string>{Bin("farm"), "bisect", "--repo", repo.path, "--good", repo.root,
                               "--bad", repo.bad, "--agents", "2", "--", dir + "/hang.sh"},
      dir + "/farm.out");
  // Two tests, two pids each.
  EXPECT_TRUE(WaitFor([&] { return ReadPids(h.pid_file).size() >= 4; }, absl::Seconds(90)))
      << h.farm->Output();
  return h;
}

// Waits (bounded) until `b` has exited and returns its exit code (128+N for signal N); -1 if it
// is still running after `timeout`. Running() is false for a zombie, so the status is not lost.
int WaitExitCode(Background& b, absl::Duration timeout) {
  if (!WaitFor([&] { return !Running(b.pid()); }, timeout)) return -1;
  return b.Wait();
}

class Interrupt : public ::testing::TestWithParam<int> {};

// Ctrl-C, SIGTERM (timeout, CI runners) and SIGHUP (a closed terminal) kill every test's process
// group, end the job as cancelled, and exit as shells report the signal.
TEST_P(Interrupt, KillsEveryTestAndCancelsTheJob) {
  const int sig = GetParam();
  std::string dir = MakeTempDir("interrupt");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 12");
  HangingBisect h = StartHangingBisect(dir, repo);
  std::vector<pid_t> pids = ReadPids(h.pid_file);
  ASSERT_GE(pids.size(), 4u);
  for (pid_t p : pids) EXPECT_TRUE(Running(p)) << p;
  h.farm->Kill(sig);
  int code = WaitExitCode(*h.farm, absl::Seconds(60));
  std::string out = h.farm->Output();
  EXPECT_EQ(code, 128 + sig) << out;
  EXPECT_TRUE(absl::StrContains(out, "interrupted")) << out;
  bool all_gone = WaitFor(
      [&] {
        for (pid_t p : pids) {
          if (Running(p)) return false;
        }
        return true;
      },
      absl::Seconds(10));
  std::vector<pid_t> left;
  for (pid_t p : pids) {
    if (Running(p)) left.push_back(p);
  }
  KillAll(left);
  EXPECT_TRUE(all_gone) << left.size() << " test processes outlived farm bisect\n" << out;
  // The job's state, through the API (no coordinator: the local state of the repository).
  CommandResult st = Sh(absl::StrCat("cd / && ", Farm(), " status 1 --repo ", Quote(repo.path)));
  EXPECT_EQ(st.exit_code, 0) << st.output;
  EXPECT_TRUE(absl::StrContains(st.output, "job 1: cancelled")) << st.output << "\n" << out;
}

INSTANTIATE_TEST_SUITE_P(Signals, Interrupt, ::testing::Values(SIGINT, SIGTERM, SIGHUP),
                         [](const auto& info) {
                           return std::string(info.param == SIGINT    ? "SIGINT"
                                              : info.param == SIGTERM ? "SIGTERM"
                                                                      : "SIGHUP");
                         });

constexpr char kQuickTest[] =
    "#!/bin/sh\n"
    "test -f bug && exit 1\n"
    "exit 0\n";

// A bisect killed outright (SIGKILL: nothing can clean up) leaves its job "running" in the
// repository's state. status/log/cancel read it without --coordinator; the next bisect ends it,
// saying so, instead of resuming it behind its own tests.
TEST(LocalState, InterruptedJobIsEndedNotResumed) {
  std::string dir = MakeTempDir("stale");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 12");
  HangingBisect h = StartHangingBisect(dir, repo);
  h.farm->Kill(SIGKILL);
  h.farm->Wait();
  KillAll(ReadPids(h.pid_file));

  CommandResult st = Sh(absl::StrCat("cd / && ", Farm(), " status --repo ", Quote(repo.path)));
  EXPECT_EQ(st.exit_code, 0) << st.output;
  EXPECT_TRUE(absl::StrContains(st.output, "running")) << st.output;
  EXPECT_TRUE(absl::StrContains(st.output, "job 1 was interrupted")) << st.output;

  WriteScript(dir + "/test.sh", kQuickTest);
  CommandResult second =
      Sh(absl::StrCat("timeout 120 ", Farm(), " bisect --repo ", Quote(repo.path), " --good ",
                      repo.root, " --bad ", repo.bad, " -- ", Quote(dir + "/test.sh")));
  EXPECT_EQ(second.exit_code, 0) << second.output;
  EXPECT_TRUE(absl::StrContains(second.output,
                                "job 1 was left running by an interrupted farm "
                                "bisect; cancelled it"))
      << second.output;
  EXPECT_EQ(ParseAnswer(second.output).first_bad, repo.culprit) << second.output;

  CommandResult one =
      Sh(absl::StrCat("cd / && ", Farm(), " status --repo ", Quote(repo.path), " 1"));
  EXPECT_EQ(one.exit_code, 0) << one.output;
  EXPECT_TRUE(absl::StrContains(one.output, "job 1: cancelled")) << one.output;
  CommandResult two =
      Sh(absl::StrCat("cd / && ", Farm(), " status --repo ", Quote(repo.path), " 2"));
  EXPECT_TRUE(absl::StrContains(two.output, "job 2: found")) << two.output;
  // Cancelling an ended job is a no-op that says its state.
  CommandResult cancel =
      Sh(absl::StrCat("cd / && ", Farm(), " cancel --repo ", Quote(repo.path), " 2"));
  EXPECT_EQ(cancel.exit_code, 0) << cancel.output;
  EXPECT_TRUE(absl::StrContains(cancel.output, "job 2: found")) << cancel.output;
  // The culprit's log, by a revision of the repository rather than an id.
  int back = static_cast<int>(repo.commits.size()) - 1;
  for (int i = 0; i < static_cast<int>(repo.commits.size()); ++i) {
    if (repo.commits[i] == repo.culprit) back = static_cast<int>(repo.commits.size()) - 1 - i;
  }
  CommandResult log =
      Sh(absl::StrCat("cd / && ", Farm(), " log --repo ", Quote(repo.path), " 2 main~", back));
  EXPECT_EQ(log.exit_code, 0) << log.output;
  EXPECT_TRUE(absl::StrContains(log.output, absl::StrCat("commit ", repo.culprit))) << log.output;
}

// `farm cancel` of a running local bisect (no --coordinator): the bisect sees its job end,
// kills its tests, and exits 4 (cancelled).
TEST(LocalState, CancelOfARunningLocalBisect) {
  std::string dir = MakeTempDir("cancel-live");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 12");
  HangingBisect h = StartHangingBisect(dir, repo);
  std::vector<pid_t> pids = ReadPids(h.pid_file);
  CommandResult cancel =
      Sh(absl::StrCat("cd / && ", Farm(), " cancel --repo ", Quote(repo.path), " 1"));
  EXPECT_EQ(cancel.exit_code, 0) << cancel.output;
  EXPECT_TRUE(absl::StrContains(cancel.output, "job 1: cancelled")) << cancel.output;
  int code = WaitExitCode(*h.farm, absl::Seconds(60));
  KillAll(pids);
  EXPECT_EQ(code, 4) << h.farm->Output();
  EXPECT_TRUE(absl::StrContains(h.farm->Output(), "cancelled")) << h.farm->Output();
}

TEST(ExitCodes, OnlySkippedCommitsExit3) {
  std::string dir = MakeTempDir("code3");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 6");
  WriteScript(dir + "/skip.sh", "#!/bin/sh\nexit 125\n");
  CommandResult r = Bisect(repo, dir + "/skip.sh");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "could be any of")) << r.output;
}

TEST(ExitCodes, UnreachableCoordinatorExits5) {
  // Port 1 on loopback: nothing listens there, connections are refused at once.
  for (const std::string cmd : {"status", "status 1", "cancel 1", "agents", "log 1 abcd"}) {
    CommandResult r =
        Sh(absl::StrCat(Farm(), " --connect-timeout 0.3 ", cmd, " --coordinator 127.0.0.1:1"));
    EXPECT_EQ(r.exit_code, 5) << cmd << ": " << r.output;
    EXPECT_TRUE(absl::StrContains(r.output, "unreachable")) << cmd << ": " << r.output;
  }
}

// An unknown job is bad input (2) for every command that names one, watch included.
TEST(ExitCodes, UnknownJobExits2Everywhere) {
  std::string dir = MakeTempDir("unknown-job");
  Background coordinator(
      {Bin("farm-coordinator"), "--listen", "127.0.0.1:0", "--db", dir + "/farm.db"},
      dir + "/coordinator.log");
  ASSERT_TRUE(coordinator.WaitForOutput("listening on ", absl::Seconds(60)))
      << coordinator.Output();
  std::string out = coordinator.Output();
  size_t at = out.find("listening on ") + 13;
  std::string address = out.substr(at, out.find(' ', at) - at);
  for (const std::string cmd : {"watch 999", "status 999", "cancel 999", "log 999 abcd"}) {
    CommandResult r = Sh(absl::StrCat(Farm(), " ", cmd, " --coordinator ", address));
    EXPECT_EQ(r.exit_code, 2) << cmd << ": " << r.output;
  }
}

TEST(ExitCodes, UsageErrorsOfEveryCommandExit2) {
  CommandResult agent = Sh(absl::StrCat(Quote(Bin("farm-agent")),
                                        " --coordinator 127.0.0.1:1 --workdir /tmp --slots abc"));
  EXPECT_EQ(agent.exit_code, 2) << agent.output;
  CommandResult coordinator = Sh(absl::StrCat(Quote(Bin("farm-coordinator")), " --lease abc"));
  EXPECT_EQ(coordinator.exit_code, 2) << coordinator.output;
  CommandResult farm = Sh(absl::StrCat(Farm(), " status --no-such-flag"));
  EXPECT_EQ(farm.exit_code, 2) << farm.output;
  for (const std::string& help :
       {Farm(), Quote(Bin("farm-agent")), Quote(Bin("farm-coordinator"))}) {
    EXPECT_EQ(Sh(help + " --help").exit_code, 0) << help;
  }
}

bool HasControlBytes(const std::string& s) {
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\n' && c != '\t') || u == 0x7f) return true;
  }
  return false;
}

// A description, a commit subject and a test's output holding terminal escapes are shown
// escaped by status, bisect and log; `farm log --raw` gives the bytes as they were.
TEST(Output, TerminalEscapesFromOthersAreShownNotInterpreted) {
  std::string dir = MakeTempDir("escapes");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 8");
  ASSERT_EQ(Sh(absl::StrCat("git -C ", Quote(repo.path),
                            " -c user.name=t -c user.email=t@example.com commit -q --allow-empty "
                            "-m \"$(printf 'evil \\033]0;owned\\007\\033[2J subject')\""))
                .exit_code,
            0);
  WriteScript(dir + "/test.sh",
              "#!/bin/sh\nprintf '\\033[31mred\\033[0m\\n'\ntest -f bug && exit 1\nexit 0\n");
  CommandResult bisect = Sh(absl::StrCat(
      Farm(), " bisect --repo ", Quote(repo.path), " --good ", repo.root,
      " --bad HEAD --description \"$(printf 'mine \\033]2;title\\007\\033[1A\\302\\233x')\" -- ",
      Quote(dir + "/test.sh")));
  ASSERT_EQ(bisect.exit_code, 0) << bisect.output;
  EXPECT_FALSE(HasControlBytes(bisect.output)) << bisect.output;
  CommandResult list = Sh(absl::StrCat(Farm(), " status --repo ", Quote(repo.path)));
  EXPECT_EQ(list.exit_code, 0) << list.output;
  EXPECT_FALSE(HasControlBytes(list.output)) << list.output;
  EXPECT_FALSE(absl::StrContains(list.output, "\xc2\x9b")) << "a C1 CSI got through";
  EXPECT_TRUE(absl::StrContains(list.output, "mine \\x1b]2;title\\x07\\x1b[1A\\xc2\\x9bx"))
      << list.output;
  CommandResult one = Sh(absl::StrCat(Farm(), " status 1 --repo ", Quote(repo.path)));
  EXPECT_FALSE(HasControlBytes(one.output)) << one.output;
  CommandResult log =
      Sh(absl::StrCat(Farm(), " log 1 ", repo.culprit, " --repo ", Quote(repo.path)));
  EXPECT_EQ(log.exit_code, 0) << log.output;
  EXPECT_TRUE(absl::StrContains(log.output, "\\x1b[31mred")) << log.output;
  EXPECT_FALSE(HasControlBytes(log.output)) << log.output;
  CommandResult raw =
      Sh(absl::StrCat(Farm(), " log --raw 1 ", repo.culprit, " --repo ", Quote(repo.path)));
  EXPECT_TRUE(absl::StrContains(raw.output, "\x1b[31mred")) << raw.output;
}

// Mistakes refused before anything runs: exit 2, the reason, and no job in the state.
struct Refusal {
  std::string name;
  std::string args;    // after --repo R --good ROOT --bad BAD; @DIR@ replaced
  std::string expect;  // part of the message
};
void PrintTo(const Refusal& r, std::ostream* os) { *os << r.name; }
class Refused : public ::testing::TestWithParam<Refusal> {};

TEST_P(Refused, BeforeTheBisectStarts) {
  const Refusal& c = GetParam();
  std::string dir = MakeTempDir("refused");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 6");
  WriteScript(dir + "/test.sh", kQuickTest);
  // Over 1 MiB: shell comments after a real test.
  WriteScript(dir + "/big.sh",
              absl::StrCat(kQuickTest, "#", std::string((1 << 20) + 10, 'x'), "\n"));
  std::string args = c.args;
  std::string expect = c.expect;
  for (std::string* s : {&args, &expect}) {
    for (size_t at; (at = s->find("@DIR@")) != std::string::npos;) s->replace(at, 5, dir);
  }
  CommandResult r = Sh(absl::StrCat(Farm(), " bisect --repo ", Quote(repo.path), " --workdir ",
                                    Quote(dir + "/state"), " --good ", repo.root, " --bad ",
                                    repo.bad, " ", args));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, expect)) << "expected '" << expect << "' in:\n"
                                                   << r.output;
  EXPECT_FALSE(absl::StrContains(r.output, "bisecting")) << r.output;
  EXPECT_FALSE(std::ifstream(dir + "/state/farm.db").good()) << "a coordinator was started";
}

INSTANTIATE_TEST_SUITE_P(
    Checks, Refused,
    ::testing::Values(Refusal{"ScriptOverOneMiB", "-- @DIR@/big.sh", "at most 1 MiB"},
                      Refusal{"SwappedTerms", "--term-old bad --term-new good -- @DIR@/test.sh",
                              "can't change the meaning of term 'bad'"},
                      Refusal{"TermIsACommand",
                              "--term-old skip --term-new broken -- @DIR@/test.sh",
                              "builtin command 'skip'"},
                      Refusal{"UnwritableLog",
                              "--log @DIR@/no/such/dir/bisect.log -- @DIR@/test.sh",
                              "--log @DIR@/no/such/dir/bisect.log: cannot write there"},
                      Refusal{"ConfidenceWithoutFlaky", "--confidence 0.9 -- @DIR@/test.sh",
                              "--confidence only applies to flaky mode"},
                      Refusal{"MaxRunsWithoutFlaky", "--max-runs 5 -- @DIR@/test.sh",
                              "--max-runs only applies to flaky mode"},
                      Refusal{"VerifyTooManyRetests", "--verify=25 -- @DIR@/test.sh",
                              "--verify: Value 25 not in range 0 to 20"}),
    [](const auto& info) { return info.param.name; });

// The "see farm log JOB COMMIT" hint of a local job works from any directory.
TEST(Output, LocalLogHintWorksOutsideTheRepository) {
  std::string dir = MakeTempDir("hint");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 6");
  WriteScript(dir + "/infra.sh", "#!/bin/sh\necho marker-of-the-test\nexit 200\n");
  CommandResult r = Bisect(repo, dir + "/infra.sh");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  size_t at = r.output.find("`farm log ");
  ASSERT_NE(at, std::string::npos) << r.output;
  size_t end = r.output.find('`', at + 1);
  ASSERT_NE(end, std::string::npos) << r.output;
  std::string hint = r.output.substr(at + 1, end - at - 1);
  CommandResult log = Sh(absl::StrCat("cd / && ", Farm(), hint.substr(4)));
  EXPECT_EQ(log.exit_code, 0) << hint << "\n" << log.output;
  EXPECT_TRUE(absl::StrContains(log.output, "marker-of-the-test")) << hint << "\n" << log.output;
}

// Flaky mode's log lists runs that conflict: the report must not promise git bisect replay.
TEST(Output, FlakyReportDoesNotPromiseReplay) {
  std::string dir = MakeTempDir("flaky-log");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 6");
  WriteScript(dir + "/test.sh", kQuickTest);
  CommandResult r = Bisect(repo, dir + "/test.sh",
                           "--flaky 0.05,0.05 --confidence 0.9 --log " + Quote(dir + "/runs.log"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(absl::StrContains(r.output, "git bisect replay accepts it")) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "not a log for git bisect replay")) << r.output;
}

// World-readable token files get ssh's warning; private ones do not.
TEST(Tokens, WorldReadableTokenFileWarns) {
  std::string dir = MakeTempDir("token");
  std::string token = dir + "/token";
  std::ofstream(token) << "0123456789abcdef0123456789abcdef\n";
  auto run = [&] {
    return Sh(absl::StrCat(Farm(), " --connect-timeout 0 --token-file ", Quote(token),
                           " status --coordinator 127.0.0.1:1"));
  };
  chmod(token.c_str(), 0644);
  CommandResult open = run();
  EXPECT_TRUE(absl::StrContains(open.output, "warning: " + token + " is accessible by others"))
      << open.output;
  EXPECT_TRUE(absl::StrContains(open.output, "chmod 600")) << open.output;
  chmod(token.c_str(), 0600);
  CommandResult closed = run();
  EXPECT_FALSE(absl::StrContains(closed.output, "warning")) << closed.output;
}

}  // namespace
}  // namespace farm::testing
