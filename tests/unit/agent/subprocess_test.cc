#include "common/subprocess/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/lib/test_util.h"

namespace farm {
namespace {

using ::testing::HasSubstr;
using Kind = SubprocessResult::Kind;

constexpr absl::Duration kPatience = absl::Seconds(20);

// A fresh directory each time (not one named by the pid, which a later run may reuse).
std::string TestDir(const std::string& name) {
  return farm::testing::MakeTempDir("subprocess_test_" + name);
}

SubprocessOptions Args(std::vector<std::string> argv) {
  SubprocessOptions opts;
  opts.argv = std::move(argv);
  return opts;
}

// Runs argv to completion and returns its result and merged output.
struct RunOutcome {
  SubprocessResult result;
  std::string output;
};
RunOutcome RunToEnd(SubprocessOptions opts) {
  RunOutcome run;
  opts.on_output = [&run](std::string_view chunk) { run.output.append(chunk); };
  auto sp = Subprocess::Start(std::move(opts));
  EXPECT_TRUE(sp.ok()) << sp.status();
  if (!sp.ok()) return run;
  run.result = (*sp)->Wait();
  return run;
}

// Makes this process the reaper of orphaned descendants, so a test can observe (and reap) a
// grandchild the subprocess left behind instead of losing it to pid 1.
void BecomeSubreaper() { ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0); }

// Waits, with a deadline, for an orphaned descendant `pid` (reparented to us as subreaper) to
// die, reaps it and returns its wait status; -1 if it is still alive at the deadline.
int ReapOrphan(pid_t pid) {
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) {
    pollfd p = {pidfd, POLLIN, 0};
    int rc = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(kPatience)));
    close(pidfd);
    if (rc != 1) return -1;
  }
  int status = 0;
  pid_t r = waitpid(pid, &status, pidfd >= 0 ? WNOHANG : 0);
  return r == pid ? status : -1;
}

bool ProcessGone(pid_t pid) { return kill(pid, 0) == -1 && errno == ESRCH; }

// Reads a pid that a script wrote into `path`.
pid_t ReadPid(const std::string& path) {
  std::ifstream in(path);
  std::string text;
  std::getline(in, text);
  int pid = 0;
  EXPECT_TRUE(absl::SimpleAtoi(text, &pid)) << "pidfile '" << path << "': '" << text << "'";
  return pid;
}

TEST(SubprocessTest, ExitCodes) {
  RunOutcome ok = RunToEnd(Args({"true"}));
  EXPECT_EQ(ok.result.kind, Kind::kExited);
  EXPECT_EQ(ok.result.exit_code, 0);
  EXPECT_EQ(ok.result.Describe(), "exit 0");

  RunOutcome three = RunToEnd(Args({"sh", "-c", "exit 3"}));
  EXPECT_EQ(three.result.kind, Kind::kExited);
  EXPECT_EQ(three.result.exit_code, 3);
  EXPECT_EQ(three.result.Describe(), "exit 3");
}

// Minor page faults this thread took so far.
long MinorFaults() {
  struct rusage u;
  EXPECT_EQ(getrusage(RUSAGE_THREAD, &u), 0);
  return u.ru_minflt;
}

// A child starts in the parent's memory and execs (as posix_spawn), instead of fork()'s copy of
// every page table: the parent's pages stay writable, so writing them again after a start costs
// no copy-on-write fault. (With fork, each of the pages below took one.)
TEST(SubprocessTest, StartingAChildLeavesTheParentsPagesWritable) {
  constexpr size_t kPages = 4096;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void* mem =
      mmap(nullptr, kPages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  madvise(mem, kPages * page, MADV_NOHUGEPAGE);  // one fault per page, not per huge page
  volatile char* bytes = static_cast<char*>(mem);
  auto touch = [&] {
    for (size_t i = 0; i < kPages; ++i) bytes[i * page] = static_cast<char>(i);
  };
  touch();
  RunOutcome run = RunToEnd(Args({"true"}));
  EXPECT_EQ(run.result.kind, Kind::kExited);
  const long before = MinorFaults();
  touch();
  const long faults = MinorFaults() - before;
  EXPECT_LT(faults, static_cast<long>(kPages / 4))
      << faults << " page faults writing " << kPages << " pages after a child started";
  munmap(mem, kPages * page);
}

TEST(SubprocessTest, KilledBySignal) {
  RunOutcome run = RunToEnd(Args({"sh", "-c", "kill -KILL $$"}));
  EXPECT_EQ(run.result.kind, Kind::kSignaled);
  EXPECT_EQ(run.result.signal, SIGKILL);
  EXPECT_EQ(run.result.Describe(), "killed by signal 9 (Killed)");

  run = RunToEnd(Args({"sh", "-c", "kill -TERM $$"}));
  EXPECT_EQ(run.result.kind, Kind::kSignaled);
  EXPECT_EQ(run.result.signal, SIGTERM);
  EXPECT_EQ(run.result.Describe(), "killed by signal 15 (Terminated)");
}

TEST(SubprocessTest, MergesStdoutAndStderrInOrder) {
  RunOutcome run = RunToEnd(Args({"sh", "-c", "echo out; echo err >&2; printf tail"}));
  EXPECT_EQ(run.result.exit_code, 0);
  EXPECT_EQ(run.output, "out\nerr\ntail");
}

TEST(SubprocessTest, StdinIsDevNull) {
  RunOutcome run = RunToEnd(Args({"sh", "-c", "cat; echo done"}));
  EXPECT_EQ(run.result.exit_code, 0);
  EXPECT_EQ(run.output, "done\n");
}

TEST(SubprocessTest, EnvAndCwd) {
  std::string dir = TestDir("cwd");
  SubprocessOptions opts = Args({"sh", "-c", "pwd; echo \"$FARM_A $FARM_B\""});
  opts.cwd = dir;
  opts.env = {{"FARM_A", "a"}, {"FARM_B", "b c"}};
  RunOutcome run = RunToEnd(std::move(opts));
  EXPECT_EQ(run.result.exit_code, 0);
  char real[PATH_MAX];
  ASSERT_NE(realpath(dir.c_str(), real), nullptr);
  EXPECT_EQ(run.output, absl::StrCat(real, "\na b c\n"));
}

TEST(SubprocessTest, EnvOverridesParentAndPathLookupUsesChildPath) {
  setenv("FARM_SUBPROCESS_TEST_VAR", "parent", 1);
  SubprocessOptions opts = Args({"sh", "-c", "echo $FARM_SUBPROCESS_TEST_VAR"});
  opts.env = {{"FARM_SUBPROCESS_TEST_VAR", "child"}};
  RunOutcome run = RunToEnd(std::move(opts));
  EXPECT_EQ(run.output, "child\n");

  // A program only in the child's PATH is found.
  std::string dir = TestDir("path");
  std::string tool = dir + "/farm-only-here";
  {
    std::ofstream out(tool);
    out << "#!/bin/sh\necho found me\n";
  }
  chmod(tool.c_str(), 0755);
  opts = Args({"farm-only-here"});
  opts.env = {{"PATH", absl::StrCat(dir, ":", getenv("PATH"))}};
  run = RunToEnd(std::move(opts));
  EXPECT_EQ(run.result.exit_code, 0);
  EXPECT_EQ(run.output, "found me\n");
}

TEST(SubprocessTest, OutputIsStreamedWhileTheChildRuns) {
  // The child prints, then blocks until the test answers through a fifo; the answer is only sent
  // once the first line has reached on_output, which proves it was delivered before exit.
  std::string dir = TestDir("stream");
  std::string fifo = dir + "/fifo";
  unlink(fifo.c_str());
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  std::string output;
  bool answered = false;
  SubprocessOptions opts;
  opts.argv = {"sh", "-c", "echo first; read x < fifo; echo \"second $x\""};
  opts.cwd = dir;
  opts.timeout = kPatience;
  opts.on_output = [&](std::string_view chunk) {
    output.append(chunk);
    if (!answered && absl::StrContains(output, "first\n")) {
      answered = true;
      std::ofstream(fifo) << "go" << std::endl;
    }
  };
  auto sp = Subprocess::Start(std::move(opts));
  ASSERT_TRUE(sp.ok()) << sp.status();
  SubprocessResult result = (*sp)->Wait();
  EXPECT_EQ(result.kind, Kind::kExited);
  EXPECT_EQ(output, "first\nsecond go\n");
}

TEST(SubprocessTest, LargeOutputIsComplete) {
  RunOutcome run = RunToEnd(Args({"sh", "-c", "head -c 1000000 /dev/zero"}));
  EXPECT_EQ(run.result.exit_code, 0);
  EXPECT_EQ(run.output.size(), 1000000u);
}

TEST(SubprocessTest, TimeoutKillsTheGroup) {
  BecomeSubreaper();
  // The check needs the timeout to fire after the script started its background sleep: a run
  // whose timeout came first (a loaded machine) proves nothing, so it is run again with twice
  // the timeout, until the pidfile is there.
  std::string dir;
  RunOutcome run;
  absl::Duration timeout = absl::Milliseconds(300);
  for (int attempt = 0;; ++attempt) {
    dir = TestDir(absl::StrCat("timeout", attempt));
    SubprocessOptions opts;
    opts.argv = {"sh", "-c", "sleep 1000 & echo $! > pidfile.tmp && mv pidfile.tmp pidfile; wait"};
    opts.cwd = dir;
    opts.timeout = timeout;
    run = RunToEnd(std::move(opts));
    EXPECT_EQ(run.result.kind, Kind::kTimedOut);
    EXPECT_GE(run.result.elapsed, timeout);
    if (access((dir + "/pidfile").c_str(), F_OK) == 0) break;
    ASSERT_LT(timeout, kPatience) << "the script never wrote its pidfile before the timeout";
    timeout *= 2;
  }
  EXPECT_LT(run.result.elapsed, timeout + kPatience);
  EXPECT_THAT(run.result.Describe(), HasSubstr("timed out after "));
  pid_t sleeper = ReadPid(dir + "/pidfile");
  ASSERT_GT(sleeper, 0);
  int status = ReapOrphan(sleeper);
  ASSERT_NE(status, -1) << "background sleep " << sleeper << " survived the timeout";
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

TEST(SubprocessTest, DescribeTimeout) {
  SubprocessResult r;
  r.kind = Kind::kTimedOut;
  r.elapsed = absl::Seconds(60) + absl::Milliseconds(12);
  EXPECT_EQ(r.Describe(), "timed out after 60s");
  r.elapsed = absl::Milliseconds(250);
  EXPECT_EQ(r.Describe(), "timed out after 250ms");
  r.kind = Kind::kCancelled;
  EXPECT_EQ(r.Describe(), "cancelled");
}

// Starts `sh -c 'sleep 1000 & echo $! > pidfile; echo started; <tail>'` and returns once the
// script said "started", with the pid of the background sleep.
struct TreeRun {
  std::unique_ptr<Subprocess> sp;
  std::thread waiter;
  SubprocessResult result;
  pid_t sleeper = 0;
};
void StartTree(const std::string& dir, const std::string& tail, TreeRun& run) {
  auto started = std::make_shared<absl::Notification>();
  auto seen = std::make_shared<std::string>();
  SubprocessOptions opts;
  opts.argv = {"sh", "-c", "sleep 1000 & echo $! > pidfile; echo started; " + tail};
  opts.cwd = dir;
  opts.timeout = kPatience * 2;  // A safety net; the tests end it much sooner.
  opts.on_output = [started, seen](std::string_view chunk) {
    seen->append(chunk);
    if (!started->HasBeenNotified() && absl::StrContains(*seen, "started\n")) started->Notify();
  };
  auto sp = Subprocess::Start(std::move(opts));
  ASSERT_TRUE(sp.ok()) << sp.status();
  run.sp = std::move(*sp);
  run.waiter = std::thread([&run] { run.result = run.sp->Wait(); });
  ASSERT_TRUE(started->WaitForNotificationWithTimeout(kPatience));
  run.sleeper = ReadPid(dir + "/pidfile");
  ASSERT_GT(run.sleeper, 0);
}

TEST(SubprocessTest, CancelFromAnotherThreadKillsTheTree) {
  BecomeSubreaper();
  std::string dir = TestDir("cancel");
  TreeRun run;
  StartTree(dir, "wait", run);
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  pid_t leader = run.sp->pid();
  absl::Time before = absl::Now();
  run.sp->Cancel();
  run.waiter.join();
  EXPECT_EQ(run.result.kind, Kind::kCancelled);
  EXPECT_EQ(run.result.Describe(), "cancelled");
  EXPECT_LT(absl::Now() - before, kPatience);
  EXPECT_TRUE(ProcessGone(leader)) << "leader " << leader;
  int status = ReapOrphan(run.sleeper);
  ASSERT_NE(status, -1) << "background sleep " << run.sleeper << " survived Cancel()";
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_TRUE(ProcessGone(run.sleeper));
  run.sp->Cancel();  // After Wait(): harmless.
}

TEST(SubprocessTest, LeaderExitKillsBackgroundChildren) {
  BecomeSubreaper();
  std::string dir = TestDir("orphan");
  TreeRun run;
  StartTree(dir, "exit 4", run);
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  run.waiter.join();
  EXPECT_EQ(run.result.kind, Kind::kExited);
  EXPECT_EQ(run.result.exit_code, 4);
  EXPECT_LT(run.result.elapsed, kPatience);
  int status = ReapOrphan(run.sleeper);
  ASSERT_NE(status, -1) << "background sleep " << run.sleeper << " survived its leader";
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

TEST(SubprocessTest, CancelBeforeWait) {
  auto sp = Subprocess::Start(Args({"sleep", "1000"}));
  ASSERT_TRUE(sp.ok()) << sp.status();
  (*sp)->Cancel();
  SubprocessResult result = (*sp)->Wait();
  EXPECT_EQ(result.kind, Kind::kCancelled);
  EXPECT_LT(result.elapsed, kPatience);
  EXPECT_TRUE(ProcessGone((*sp)->pid()));
}

TEST(SubprocessTest, DestructorKillsAndReaps) {
  pid_t pid;
  {
    auto sp = Subprocess::Start(Args({"sleep", "1000"}));
    ASSERT_TRUE(sp.ok()) << sp.status();
    pid = (*sp)->pid();
    EXPECT_FALSE(ProcessGone(pid));
  }
  EXPECT_TRUE(ProcessGone(pid));
}

TEST(SubprocessTest, WaitTwiceReturnsTheSameResult) {
  auto sp = Subprocess::Start(Args({"sh", "-c", "exit 7"}));
  ASSERT_TRUE(sp.ok()) << sp.status();
  EXPECT_EQ((*sp)->Wait().exit_code, 7);
  EXPECT_EQ((*sp)->Wait().exit_code, 7);
}

TEST(SubprocessTest, MissingProgram) {
  auto sp = Subprocess::Start(Args({"farm-no-such-program-xyz"}));
  ASSERT_FALSE(sp.ok());
  EXPECT_EQ(sp.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(sp.status().message(), HasSubstr("farm-no-such-program-xyz"));
  EXPECT_THAT(sp.status().message(), HasSubstr("not found in PATH"));

  sp = Subprocess::Start(Args({"/nonexistent/dir/prog"}));
  ASSERT_FALSE(sp.ok());
  EXPECT_EQ(sp.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(sp.status().message(), HasSubstr("/nonexistent/dir/prog"));
}

TEST(SubprocessTest, MissingWorkingDirectory) {
  SubprocessOptions opts = Args({"true"});
  opts.cwd = "/nonexistent/farm/dir";
  auto sp = Subprocess::Start(std::move(opts));
  ASSERT_FALSE(sp.ok());
  EXPECT_EQ(sp.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(sp.status().message(), HasSubstr("/nonexistent/farm/dir"));
}

TEST(SubprocessTest, NotExecutable) {
  std::string dir = TestDir("noexec");
  std::string script = dir + "/script.sh";
  {
    std::ofstream out(script);
    out << "#!/bin/sh\necho hi\n";
  }
  ASSERT_EQ(chmod(script.c_str(), 0644), 0);
  auto sp = Subprocess::Start(Args({script}));
  ASSERT_FALSE(sp.ok());
  EXPECT_EQ(sp.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(sp.status().message(), HasSubstr(script));
  EXPECT_THAT(sp.status().message(), HasSubstr("is it executable?"));
}

// Writes `body` to <dir>/<name> with `mode` and returns the path.
std::string WriteFile(const std::string& dir, const std::string& name, const std::string& body,
                      mode_t mode) {
  std::string path = dir + "/" + name;
  {
    std::ofstream out(path);
    out << body;
  }
  EXPECT_EQ(chmod(path.c_str(), mode), 0);
  return path;
}

// execve refuses a script without a #! line (ENOEXEC); execvp and `git bisect run` run it with
// /bin/sh, and so does Start, with the arguments.
TEST(SubprocessTest, ScriptWithoutShebangRunsWithSh) {
  std::string script =
      WriteFile(TestDir("noshebang"), "test.sh", "echo \"args: $1 $2\"\nexit 3\n", 0755);
  RunOutcome run = RunToEnd(Args({script, "one", "two"}));
  EXPECT_EQ(run.result.kind, Kind::kExited);
  EXPECT_EQ(run.result.exit_code, 3) << run.output;
  EXPECT_EQ(run.output, "args: one two\n");
}

// A script whose #! interpreter does not exist: the message names the interpreter (execve says
// only ENOENT, as if the script were missing), and it is the program's error.
TEST(SubprocessTest, MissingInterpreterIsNamed) {
  std::string script =
      WriteFile(TestDir("nointerp"), "test.py", "#!/nonexistent/farm-python9 -u\nprint(1)\n", 0755);
  auto sp = Subprocess::Start(Args({script}));
  ASSERT_FALSE(sp.ok());
  EXPECT_EQ(sp.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(sp.status().message(), HasSubstr("interpreter '/nonexistent/farm-python9'"));
  EXPECT_THAT(sp.status().message(), HasSubstr(script));
  EXPECT_TRUE(IsProgramError(sp.status())) << sp.status();
}

// What the program is at fault for is told apart from what the machine is.
TEST(SubprocessTest, ProgramErrorsAreToldApart) {
  EXPECT_TRUE(IsProgramError(Subprocess::Start(Args({"farm-no-such-program-xyz"})).status()));
  EXPECT_TRUE(IsProgramError(Subprocess::Start(Args({"/nonexistent/dir/prog"})).status()));
  std::string dir = TestDir("program_errors");
  std::string noexec = WriteFile(dir, "noexec.sh", "#!/bin/sh\n", 0644);
  EXPECT_TRUE(IsProgramError(Subprocess::Start(Args({noexec})).status()));
  SubprocessOptions opts = Args({"true"});
  opts.cwd = "/nonexistent/farm/dir";
  absl::Status cwd = Subprocess::Start(std::move(opts)).status();
  ASSERT_FALSE(cwd.ok());
  EXPECT_FALSE(IsProgramError(cwd)) << cwd;
}

// How a container is asked to contain, and whether that needs a cgroup.
struct ContainmentCase {
  const char* name;
  ContainmentOptions options;
  bool needs_cgroup;
};

void PrintTo(const ContainmentCase& c, std::ostream* os) { *os << c.name; }

class ContainmentTest : public ::testing::TestWithParam<ContainmentCase> {};

// A process that leaves the process group (`setsid`) outlives the leader unless a container holds
// it: the container kills it when the leader exits and the result names it.
TEST_P(ContainmentTest, ProcessThatLeftTheGroupIsKilledAndReported) {
  BecomeSubreaper();
  std::unique_ptr<ProcessContainer> container =
      ProcessContainer::Create("subprocess_test", GetParam().options);
  if (GetParam().needs_cgroup && !container->is_cgroup()) {
    GTEST_SKIP() << "no cgroup can be created here: " << container->fallback_reason();
  }
  EXPECT_EQ(container->is_cgroup(), GetParam().needs_cgroup) << container->fallback_reason();
  std::string dir = TestDir(absl::StrCat("contain_", GetParam().name));
  std::string fifo = dir + "/fifo";
  unlink(fifo.c_str());
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  // The daemon tells its pid through the fifo once it is in its own session; the leader exits
  // as soon as it has read it.
  SubprocessOptions opts =
      Args({"sh", "-c",
            absl::StrCat("setsid sh -c 'echo $$ > ", fifo, "; exec sleep 775' & read pid < ", fifo,
                         "; echo $pid")});
  opts.container = container.get();
  RunOutcome run = RunToEnd(std::move(opts));
  EXPECT_EQ(run.result.exit_code, 0) << run.output;
  int pid = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(run.output), &pid)) << run.output;
  ASSERT_EQ(run.result.outlived.size(), 1u) << absl::StrJoin(run.result.outlived, ", ");
  EXPECT_THAT(run.result.outlived[0], HasSubstr(absl::StrCat("pid ", pid, " (")));
  int status = ReapOrphan(pid);
  ASSERT_NE(status, -1) << "pid " << pid << " (setsid sleep 775) outlived the subprocess";
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  EXPECT_TRUE(container->Members().empty()) << absl::StrJoin(container->Members(), ", ");
}

INSTANTIATE_TEST_SUITE_P(Ways, ContainmentTest,
                         ::testing::Values(ContainmentCase{"cgroup_kill", {true, true}, true},
                                           ContainmentCase{"cgroup_procs", {true, false}, true},
                                           ContainmentCase{
                                               "process_group_and_cookie", {false, false}, false}),
                         [](const auto& info) { return std::string(info.param.name); });

// An agent killed mid-task leaves its task's cgroup, with the task's processes running in it. The
// next agent to start finds it (its agent's pid is dead), kills what runs there and removes it.
TEST(ContainmentOrphans, CgroupOfADeadAgentIsCleanedUp) {
  std::unique_ptr<ProcessContainer> probe = ProcessContainer::Create("probe");
  if (!probe->is_cgroup()) {
    GTEST_SKIP() << "no cgroup can be created here: " << probe->fallback_reason();
  }
  pid_t dead = fork();  // a pid that is certainly no agent's: exited and reaped
  if (dead == 0) _exit(0);
  ASSERT_EQ(waitpid(dead, nullptr, 0), dead);
  const std::string orphan = absl::StrCat(
      std::filesystem::path(probe->cgroup()).parent_path().string(), "/farm-1.2-", dead, "-0");
  ASSERT_EQ(mkdir(orphan.c_str(), 0755), 0) << orphan;
  auto sp = Subprocess::Start(Args({"sleep", "775"}));
  ASSERT_TRUE(sp.ok()) << sp.status();
  {
    std::ofstream procs(orphan + "/cgroup.procs");
    procs << (*sp)->pid();
  }
  std::vector<std::string> killed = ProcessContainer::KillOrphans();
  EXPECT_THAT(killed, ::testing::Contains(absl::StrCat("pid ", (*sp)->pid(), " (sleep)")));
  SubprocessResult r = (*sp)->Wait();
  EXPECT_EQ(r.kind, Kind::kSignaled);
  EXPECT_EQ(r.signal, SIGKILL);
  EXPECT_FALSE(std::filesystem::exists(orphan));
  EXPECT_TRUE(std::filesystem::exists(probe->cgroup())) << "a live agent's cgroup is left alone";
}

TEST(SubprocessTest, EmptyArgv) {
  auto sp = Subprocess::Start(SubprocessOptions());
  ASSERT_FALSE(sp.ok());
  EXPECT_EQ(sp.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace farm
