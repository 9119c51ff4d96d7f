// OutputLimiter and TaskRunner against real worktrees and real processes.
#include "agent/runner/task_runner.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/lib/test_util.h"

namespace farm {
namespace {

namespace v1 = farm::v1;
using ::farm::testing::MakeRepo;
using ::farm::testing::MakeTempDir;
using ::farm::testing::WriteScript;

// Whether process `pid` is gone (or a zombie, reparented and waiting for init) within 10 s.
bool DiesSoon(int pid) {
  return testing::WaitFor(
      [&] {
        std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
        std::string s;
        std::getline(stat, s);
        return !stat.good() || absl::StrContains(s, ") Z ");
      },
      absl::Seconds(10));
}

TEST(OutputLimiter, KeepsHeadAndTailAndSaysWhatWasElided) {
  std::string got;
  OutputLimiter lim([&](std::string_view d) { got.append(d); }, /*head=*/10, /*tail=*/5);
  lim.Write("0123456789abc");
  lim.Write("defghijklmnop");
  lim.Finish();
  EXPECT_TRUE(absl::StartsWith(got, "0123456789")) << got;
  EXPECT_TRUE(absl::EndsWith(got, "lmnop")) << got;
  EXPECT_TRUE(absl::StrContains(got, "11 bytes of output elided")) << got;
  EXPECT_EQ(lim.total(), 26u);
}

TEST(OutputLimiter, ShortOutputPassesUnchanged) {
  std::string got;
  OutputLimiter lim([&](std::string_view d) { got.append(d); }, 100, 10);
  lim.Write("hello\n");
  lim.Finish();
  EXPECT_EQ(got, "hello\n");
}

TEST(OutputLimiter, GigabytesStayBounded) {
  size_t kept = 0;
  OutputLimiter lim([&](std::string_view d) { kept += d.size(); }, 1 << 20, 1 << 20);
  std::string block(1 << 20, 'x');
  for (int i = 0; i < 1024; ++i) lim.Write(block);  // 1 GiB without a newline
  lim.Finish();
  EXPECT_LT(kept, 3u << 20);
  EXPECT_EQ(lim.total(), 1ull << 30);
}

class TaskRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("runner");
    repo_ = MakeRepo(dir_ + "/repo", "--shape stale --commits 6");
    auto ws = Workspace::Open(dir_ + "/agent");
    ASSERT_TRUE(ws.ok()) << ws.status();
    ws_ = std::move(*ws);
    runner_ = std::make_unique<TaskRunner>(ws_.get(), dir_ + "/agent");
  }
  v1::Assign Task(const std::string& commit, const std::string& script) {
    v1::Assign a;
    a.set_task_id(absl::StrCat("t-", ++n_));
    a.set_job_id("1");
    a.set_repo(repo_.path);
    a.set_commit(commit);
    a.mutable_recipe()->add_test_argv("./test.sh");
    a.mutable_recipe()->set_test_script(script);
    a.mutable_recipe()->set_timeout_seconds(60);
    return a;
  }
  v1::TaskResult Run(const v1::Assign& a, TaskControl* control = nullptr) {
    TaskControl local;
    output_.clear();
    return runner_->Run(a, 0, control ? control : &local, [](v1::Phase) {},
                        [&](std::string_view d) { output_.append(d); });
  }

  std::string dir_;
  testing::Repo repo_;
  std::unique_ptr<Workspace> ws_;
  std::unique_ptr<TaskRunner> runner_;
  std::string output_;
  int n_ = 0;
};

TEST_F(TaskRunnerTest, ExitCodesFollowGitBisectRun) {
  struct {
    int code;
    v1::Verdict verdict;
  } cases[] = {{0, v1::GOOD}, {1, v1::BAD}, {127, v1::BAD}, {125, v1::SKIP}};
  for (auto c : cases) {
    v1::TaskResult r = Run(Task(repo_.bad, absl::StrCat("#!/bin/sh\nexit ", c.code, "\n")));
    EXPECT_EQ(r.verdict(), c.verdict) << c.code << " " << r.DebugString();
    EXPECT_TRUE(r.infra_error().empty()) << r.DebugString();
    EXPECT_EQ(r.retried_pristine(), c.code == 125);
  }
  v1::TaskResult r = Run(Task(repo_.bad, "#!/bin/sh\nexit 130\n"));
  EXPECT_FALSE(r.infra_error().empty()) << "exit 130 is not a verdict";
  r = Run(Task(repo_.bad, "#!/bin/sh\nkill -9 $$\n"));
  EXPECT_FALSE(r.infra_error().empty()) << "a signal is not a verdict";
  v1::Assign slow = Task(repo_.bad, "#!/bin/sh\nsleep 100\n");
  slow.mutable_recipe()->set_timeout_seconds(1);
  r = Run(slow);
  EXPECT_TRUE(absl::StrContains(r.infra_error(), "timed out")) << r.DebugString();
}

TEST_F(TaskRunnerTest, FailedBuildIsRetriedPristineThenASkip) {
  v1::Assign a = Task(repo_.commits[2], "#!/bin/sh\nexit 0\n");
  a.mutable_recipe()->set_build_command("sh build.sh");
  // First build at commit 2 generates config.stamp; at commit 4 it is stale.
  ASSERT_EQ(Run(a).verdict(), v1::GOOD);
  a.set_commit(repo_.commits[4]);
  v1::TaskResult r = Run(a);
  EXPECT_EQ(r.verdict(), v1::GOOD) << output_;
  EXPECT_TRUE(r.retried_pristine());
  EXPECT_EQ(r.retry_reason(), "build failed (exit 2)");
  // A build that fails in a pristine worktree too is a skip.
  a.mutable_recipe()->set_build_command("exit 3");
  r = Run(a);
  EXPECT_EQ(r.verdict(), v1::SKIP);
  EXPECT_TRUE(r.retried_pristine());
  EXPECT_EQ(r.detail(), "build failed (exit 3)");
}

// A test script without a #! line runs through /bin/sh, as `git bisect run` runs it.
TEST_F(TaskRunnerTest, ScriptWithoutShebangRunsAsGitRunsIt) {
  v1::TaskResult r = Run(Task(repo_.bad, "test -n \"$FARM_COMMIT\" || exit 0\nexit 1\n"));
  EXPECT_EQ(r.outcome_case(), v1::TaskResult::kVerdict) << r.DebugString() << output_;
  EXPECT_EQ(r.verdict(), v1::BAD) << r.DebugString() << output_;
  r = Run(Task(repo_.bad, "exit 0\n"));
  EXPECT_EQ(r.verdict(), v1::GOOD) << r.DebugString() << output_;
}

// A test that cannot start because of what the job gave (its #! interpreter is missing, the
// program does not exist): the job's error, saying why, never the agent's infrastructure error.
TEST_F(TaskRunnerTest, TestThatCannotStartIsTheJobsError) {
  v1::TaskResult r = Run(Task(repo_.bad, "#!/nonexistent/farm-python9\nexit 0\n"));
  EXPECT_EQ(r.outcome_case(), v1::TaskResult::kJobError) << r.DebugString();
  EXPECT_TRUE(absl::StrContains(r.job_error(), "interpreter '/nonexistent/farm-python9'"))
      << r.DebugString();
  EXPECT_TRUE(r.infra_error().empty()) << r.DebugString();
  EXPECT_FALSE(r.retried_pristine()) << "a job error is not retried";
  EXPECT_TRUE(absl::StrContains(output_, "the test cannot start")) << output_;

  v1::Assign missing = Task(repo_.bad, "");
  missing.mutable_recipe()->clear_test_script();
  missing.mutable_recipe()->set_test_argv(0, "./no-such-test.sh");
  r = Run(missing);
  EXPECT_EQ(r.outcome_case(), v1::TaskResult::kJobError) << r.DebugString();
  EXPECT_TRUE(absl::StrContains(r.job_error(), "no-such-test.sh")) << r.DebugString();
}

TEST_F(TaskRunnerTest, CancelKillsTheWholeProcessGroup) {
  std::string pidfile = dir_ + "/pid";
  v1::Assign a = Task(repo_.bad, absl::StrCat("#!/bin/sh\nsleep 1000 &\necho $! > ", pidfile,
                                              ".tmp\nmv ", pidfile, ".tmp ", pidfile, "\nwait\n"));
  TaskControl control;
  v1::TaskResult result;
  std::thread t([&] { result = Run(a, &control); });
  ASSERT_TRUE(testing::WaitFor([&] { return std::ifstream(pidfile).good(); }, absl::Seconds(20)));
  int pid = 0;
  std::ifstream(pidfile) >> pid;
  ASSERT_GT(pid, 0);
  control.Cancel();
  t.join();
  EXPECT_TRUE(result.cancelled());
  EXPECT_TRUE(result.infra_error().empty());
  // The backgrounded sleep (a grandchild) is gone too, not just the script. It was reparented,
  // so it may linger as a zombie only until init reaps it.
  EXPECT_TRUE(DiesSoon(pid)) << "pid " << pid << " survived the cancel";
}

// A test that daemonizes (`setsid sleep 775 &`) leaves its process group; the task's container
// (a cgroup, or the process group and an environment cookie where no cgroup can be made) still
// holds it: it is killed when the test ends and the task's log says so.
class TaskContainmentTest : public TaskRunnerTest, public ::testing::WithParamInterface<bool> {};

TEST_P(TaskContainmentTest, DaemonOfTheTestDiesWithTheTask) {
  const bool cgroup = GetParam();
  if (cgroup && !ProcessContainer::Create("probe")->is_cgroup()) {
    GTEST_SKIP() << "no cgroup can be created here: "
                 << ProcessContainer::Create("probe")->fallback_reason();
  }
  ContainmentOptions options;
  options.allow_cgroup = cgroup;
  runner_->set_containment(options);
  std::string fifo = dir_ + "/fifo";
  unlink(fifo.c_str());
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  std::string pidfile = dir_ + "/daemon.pid";
  v1::TaskResult r = Run(Task(repo_.bad, absl::StrCat("#!/bin/sh\nsetsid sh -c 'echo $$ > ", fifo,
                                                      "; exec sleep 775' &\nread pid < ", fifo,
                                                      "\necho $pid > ", pidfile, "\nexit 0\n")));
  EXPECT_EQ(r.verdict(), v1::GOOD) << r.DebugString() << output_;
  int pid = 0;
  std::ifstream(pidfile) >> pid;
  ASSERT_GT(pid, 0) << output_;
  EXPECT_TRUE(absl::StrContains(
      output_, absl::StrCat("1 process outlived the test and was killed: pid ", pid, " (")))
      << output_;
  EXPECT_TRUE(DiesSoon(pid)) << "pid " << pid << " (setsid sleep 775) outlived its task";
}

INSTANTIATE_TEST_SUITE_P(Ways, TaskContainmentTest, ::testing::Bool(), [](const auto& info) {
  return info.param ? "Cgroup" : "ProcessGroupFallback";
});

}  // namespace
}  // namespace farm
