// TaskRunner on a full disk: the agent's work directory is a small tmpfs that the checkout, the
// build or the test fills. A failure caused by the full disk is an infrastructure error that says
// where the disk is full, never a skip or a bad verdict; a real build failure or test verdict on a
// disk with room stays what it is. Skips (saying why) when a tmpfs cannot be mounted (not root).
#include "agent/runner/task_runner.h"

#include <sys/utsname.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "agent/workspace/disk_space.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/lib/tmpfs.h"
#include "tests/unit/agent/test_repo.h"

namespace farm {
namespace {

namespace v1 = farm::v1;
using ::farm::testing_util::FreshTempDir;
using ::farm::testing_util::TestRepo;
using ::testing::HasSubstr;

constexpr uint64_t kTmpfsBytes = 4 << 20;
// Twice the tmpfs: whatever writes it cannot fit.
constexpr char kWriteTooMuch[] = "head -c 8388608 /dev/zero > \"$FARM_BUILD_DIR/blob\"";

class TaskRunnerDiskFullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing_util::HaveGit()) GTEST_SKIP() << "the git CLI is not installed";
    root_ = FreshTempDir("runner") + "/agent";
    tmpfs_ = std::make_unique<testing::TmpfsMount>(root_, kTmpfsBytes);
    if (!tmpfs_->ok()) GTEST_SKIP() << "no small filesystem to fill: " << tmpfs_->error();
    repo_ = std::make_unique<TestRepo>("origin");
    repo_->Write("src.c", "int main(void) { return 0; }\n");
    commit_ = repo_->Commit("one small commit");
    auto ws = Workspace::Open(root_);
    ASSERT_TRUE(ws.ok()) << ws.status();
    ws_ = std::move(*ws);
    runner_ = std::make_unique<TaskRunner>(ws_.get(), root_);
  }

  v1::Assign Task(const std::string& build, const std::string& test) {
    v1::Assign a;
    a.set_task_id("1.1");
    a.set_job_id("1");
    a.set_repo(repo_->path());
    a.set_commit(commit_);
    a.mutable_recipe()->set_build_command(build);
    a.mutable_recipe()->add_test_argv("/bin/sh");
    a.mutable_recipe()->add_test_argv("-c");
    a.mutable_recipe()->add_test_argv(test);
    a.mutable_recipe()->set_timeout_seconds(60);
    return a;
  }

  v1::TaskResult Run(const v1::Assign& task, int jobs = 0) {
    TaskControl control;
    output_.clear();
    return runner_->Run(
        task, 0, &control, [](v1::Phase) {},
        [this](std::string_view d) { output_.append(d.data(), d.size()); }, jobs);
  }

  std::string root_;
  std::unique_ptr<testing::TmpfsMount> tmpfs_;
  std::unique_ptr<TestRepo> repo_;
  std::string commit_;
  std::unique_ptr<Workspace> ws_;
  std::unique_ptr<TaskRunner> runner_;
  std::string output_;
};

TEST_F(TaskRunnerDiskFullTest, BuildThatFillsTheDiskIsAnInfrastructureError) {
  v1::TaskResult r = Run(Task(kWriteTooMuch, "exit 0"));
  EXPECT_EQ(r.verdict(), v1::VERDICT_UNSPECIFIED) << output_;
  EXPECT_THAT(r.infra_error(), HasSubstr("the disk is full")) << output_;
  EXPECT_THAT(r.infra_error(), HasSubstr("No space left on device"));
  EXPECT_THAT(r.infra_error(), HasSubstr(root_)) << "it must say where";
  EXPECT_THAT(r.infra_error(), HasSubstr("--workdir on a larger disk")) << "and what to do";
  EXPECT_FALSE(r.retried_pristine()) << "a full disk is not stale state";
  EXPECT_THAT(output_, HasSubstr("farm: the disk is full"));
}

// Nothing in the output says so: statvfs does.
TEST_F(TaskRunnerDiskFullTest, SilentBuildOnAFullDiskIsAnInfrastructureError) {
  v1::TaskResult r =
      Run(Task("cat /dev/zero > \"$FARM_BUILD_DIR/blob\" 2>/dev/null; exit 2", "exit 0"));
  EXPECT_EQ(r.verdict(), v1::VERDICT_UNSPECIFIED) << output_;
  EXPECT_THAT(r.infra_error(), HasSubstr("the disk is full: build failed (exit 2)")) << output_;
  EXPECT_THAT(r.infra_error(), HasSubstr(absl::StrCat("'", root_, "/slots/0/build' has ")));
  EXPECT_THAT(r.infra_error(), HasSubstr("free of 4.0 MiB"));
}

// What the full build left is removed with the slot's build directory, so the agent's next task
// builds and gives its verdict instead of failing the same way until the agent is quarantined.
TEST_F(TaskRunnerDiskFullTest, NextTaskBuildsAfterTheFullBuildDirectoryIsEmptied) {
  v1::TaskResult full =
      Run(Task("cat /dev/zero > \"$FARM_BUILD_DIR/blob\" 2>/dev/null; exit 2", "exit 0"));
  EXPECT_THAT(full.infra_error(), HasSubstr("the disk is full")) << output_;
  EXPECT_THAT(full.infra_error(), HasSubstr("the slot's build directory was emptied: ")) << output_;
  EXPECT_FALSE(std::filesystem::exists(ws_->build_path(0) + "/blob"));
  EXPECT_TRUE(std::filesystem::is_directory(ws_->build_path(0)));
  // The next build writes 1 MiB, which fits once the blob is gone.
  v1::TaskResult next = Run(Task("head -c 1048576 /dev/zero > \"$FARM_BUILD_DIR/object\"",
                                 "test -s \"$FARM_BUILD_DIR/object\""));
  EXPECT_EQ(next.infra_error(), "") << output_;
  EXPECT_EQ(next.verdict(), v1::GOOD) << output_;
}

// The control: a build that fails on a disk with room is the commit's problem, a skip (after the
// pristine retry), as before.
TEST_F(TaskRunnerDiskFullTest, FailedBuildWithRoomLeftIsStillASkip) {
  v1::TaskResult r = Run(Task("echo 'src.c:1: error: expected ;'; exit 2", "exit 0"));
  EXPECT_EQ(r.verdict(), v1::SKIP) << r.infra_error() << output_;
  EXPECT_EQ(r.infra_error(), "");
  EXPECT_TRUE(r.retried_pristine());
}

// ENOSPC on another filesystem (/tmp, say): the work directory has room, the build said so.
TEST_F(TaskRunnerDiskFullTest, BuildSayingNoSpaceElsewhereIsAnInfrastructureError) {
  v1::TaskResult r = Run(
      Task("echo 'cc1: fatal error: /tmp/ccX.s: No space left on device' >&2; exit 1", "exit 0"));
  EXPECT_EQ(r.verdict(), v1::VERDICT_UNSPECIFIED) << output_;
  EXPECT_THAT(r.infra_error(), HasSubstr("the disk is full")) << output_;
  EXPECT_THAT(r.infra_error(), HasSubstr("another filesystem the task writes to"));
}

TEST_F(TaskRunnerDiskFullTest, CheckoutThatDoesNotFitIsAnInfrastructureError) {
  repo_->Write("data.bin", std::string(6 << 20, 'x'));
  commit_ = repo_->Commit("a file larger than the agent's disk");
  v1::TaskResult r = Run(Task("", "exit 0"));
  EXPECT_EQ(r.verdict(), v1::VERDICT_UNSPECIFIED) << output_;
  EXPECT_THAT(r.infra_error(), HasSubstr("the disk is full: checkout of " + commit_)) << output_;
  EXPECT_THAT(r.infra_error(), HasSubstr(root_));
}

TEST_F(TaskRunnerDiskFullTest, TestFailingOnAFullDiskIsNotBad) {
  v1::TaskResult r = Run(Task("", "cat /dev/zero > big 2>/dev/null; exit 1"));
  EXPECT_EQ(r.verdict(), v1::VERDICT_UNSPECIFIED) << output_;
  EXPECT_THAT(r.infra_error(), HasSubstr("the disk is full: the test said bad (exit 1)"))
      << output_;
}

// A test that passes passed, full disk or not; and a test's own words are its business: one that
// prints ENOSPC's message and says bad on a disk with room is bad.
TEST_F(TaskRunnerDiskFullTest, TestVerdictsStandWhenTheDiskIsNotTheCause) {
  v1::TaskResult passed = Run(Task("", "cat /dev/zero > big 2>/dev/null; exit 0"));
  EXPECT_EQ(passed.verdict(), v1::GOOD) << passed.infra_error() << output_;
  ASSERT_EQ(std::remove((ws_->worktree_path(0) + "/big").c_str()), 0);
  v1::TaskResult bad = Run(Task("", "echo 'write: No space left on device'; exit 1"));
  EXPECT_EQ(bad.verdict(), v1::BAD) << bad.infra_error() << output_;
}

// The agent's own write: the shipped test script does not fit. An error that says where, and the
// runner carries on.
TEST_F(TaskRunnerDiskFullTest, TestScriptThatCannotBeWrittenIsAnInfrastructureError) {
  ASSERT_GT(testing::FillDisk(root_ + "/filler"), 0u);
  v1::Assign task = Task("", "exit 0");
  task.mutable_recipe()->set_test_script("#!/bin/sh\n# " + std::string(64 << 10, 'x') +
                                         "\nexit 0\n");
  v1::TaskResult r = Run(task);
  EXPECT_EQ(r.verdict(), v1::VERDICT_UNSPECIFIED);
  EXPECT_THAT(r.infra_error(), HasSubstr("the disk is full: cannot write the test script"));
  EXPECT_THAT(r.infra_error(), HasSubstr(root_));
  ASSERT_EQ(std::remove((root_ + "/filler").c_str()), 0);
  v1::TaskResult after = Run(task);
  EXPECT_EQ(after.verdict(), v1::GOOD) << after.infra_error() << output_;
}

// The build and the test see which job they belong to (FARM_JOB) and whether this is the retry
// in a pristine worktree (FARM_PRISTINE), as the README promises. A build that fails unless
// pristine makes the runner retry, so both values of FARM_PRISTINE are seen.
TEST_F(TaskRunnerDiskFullTest, BuildAndTestSeeFarmJobAndFarmPristine) {
  v1::Assign task = Task(
      "echo \"build job=$FARM_JOB pristine=$FARM_PRISTINE\"; "
      "[ \"$FARM_PRISTINE\" = 1 ]",
      "echo \"test job=$FARM_JOB pristine=$FARM_PRISTINE\"");
  task.set_job_id("42");
  v1::TaskResult r = Run(task);
  EXPECT_EQ(r.verdict(), v1::GOOD) << r.infra_error() << output_;
  EXPECT_TRUE(r.retried_pristine()) << output_;
  EXPECT_THAT(output_, HasSubstr("build job=42 pristine=0")) << output_;
  EXPECT_THAT(output_, HasSubstr("build job=42 pristine=1")) << output_;
  EXPECT_THAT(output_, HasSubstr("test job=42 pristine=1")) << output_;
}

// The build and the test learn how many cores they were given (FARM_JOBS): what the agent
// passes, or every core of the machine when it passes nothing.
TEST_F(TaskRunnerDiskFullTest, BuildAndTestSeeFarmJobs) {
  v1::Assign task = Task("echo \"build jobs=$FARM_JOBS\"", "echo \"test jobs=$FARM_JOBS\"");
  v1::TaskResult r = Run(task, 3);
  EXPECT_EQ(r.verdict(), v1::GOOD) << r.infra_error() << output_;
  EXPECT_THAT(output_, HasSubstr("build jobs=3\n")) << output_;
  EXPECT_THAT(output_, HasSubstr("test jobs=3\n")) << output_;
  r = Run(task);
  EXPECT_EQ(r.verdict(), v1::GOOD) << r.infra_error() << output_;
  EXPECT_THAT(output_,
              HasSubstr(absl::StrCat("build jobs=", std::thread::hardware_concurrency(), "\n")))
      << output_;
}

TEST(NoSpaceScanner, FindsTheMessageAcrossChunks) {
  std::string text = "ld: final link failed: No space left on device\n";
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    NoSpaceScanner s;
    s.Feed(text.substr(0, cut));
    s.Feed(text.substr(cut));
    EXPECT_TRUE(s.seen()) << cut;
  }
  NoSpaceScanner byte_by_byte;
  for (char c : text) byte_by_byte.Feed(std::string_view(&c, 1));
  EXPECT_TRUE(byte_by_byte.seen());
  NoSpaceScanner none;
  none.Feed("No space left on");
  none.Feed(" the bus\n");
  EXPECT_FALSE(none.seen());
}

TEST(DiskSpace, MeasuresTheNearestExistingAncestor) {
  absl::StatusOr<DiskSpace> d = MeasureDiskSpace(FreshTempDir("ds") + "/not/yet/there");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_GT(d->total, 0u);
  EXPECT_THAT(d->Describe(), HasSubstr(" free of "));
}

// DiskFullError on a filesystem with room, then on the same one filled: the only change is the
// free space, so the error can only come from it.
TEST(DiskSpace, DiskFullErrorSaysFullOnlyWhenItIs) {
  const std::string dir = FreshTempDir("ds2") + "/small";
  testing::TmpfsMount tmpfs(dir, kTmpfsBytes);
  if (!tmpfs.ok()) GTEST_SKIP() << "no small filesystem to fill: " << tmpfs.error();
  EXPECT_TRUE(DiskFullError({dir}, false, "build failed (exit 1)").ok());
  absl::Status said = DiskFullError({dir}, true, "build failed (exit 1)");
  EXPECT_TRUE(absl::IsResourceExhausted(said)) << said;
  ASSERT_GT(testing::FillDisk(dir + "/filler"), 0u);
  absl::StatusOr<DiskSpace> d = MeasureDiskSpace(dir);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->full()) << d->Describe();
  absl::Status full = DiskFullError({dir}, false, "build failed (exit 1)");
  EXPECT_TRUE(absl::IsResourceExhausted(full)) << full;
  EXPECT_THAT(full.message(), HasSubstr(dir));
  EXPECT_THAT(full.message(), HasSubstr("build failed (exit 1)"));
}

// Runs a boot task of `spec` (the worktree's bzImage, a test that passes) at a commit whose tree
// holds `file`, with an agent whose work directory is `root`. Returns the task's log; `image`
// receives the path of the bzImage it booted.
std::string RunBootTask(const std::string& root, const std::string& file,
                        const std::string& content, v1::BootSpec spec, std::string* image) {
  TestRepo repo("origin");
  repo.Write(file, content);
  const std::string commit = repo.Commit("one file");
  auto ws = Workspace::Open(root);
  if (!ws.ok()) return std::string(ws.status().message());
  TaskRunner runner(ws->get(), root);
  v1::Assign a;
  a.set_task_id("1.1");
  a.set_job_id("1");
  a.set_repo(repo.path());
  a.set_commit(commit);
  a.mutable_recipe()->set_timeout_seconds(60);
  spec.set_kernel_image("bzImage");
  spec.set_payload("#!/bin/sh\nexit 0\n");
  *a.mutable_recipe()->mutable_boot() = std::move(spec);
  TaskControl control;
  std::string output;
  runner.Run(
      a, 0, &control, [](v1::Phase) {},
      [&output](std::string_view d) { output.append(d.data(), d.size()); }, 0);
  *image = (*ws)->worktree_path(0) + "/bzImage";
  return output;
}

// A boot task's log names the host kernel the guest runs under (on a kexec agent, the cell's host
// dimension), before the boot itself, which here fails for want of the image.
TEST(TaskRunnerBootTest, BootLogNamesTheHostKernel) {
  if (!testing_util::HaveGit()) GTEST_SKIP() << "the git CLI is not installed";
  std::string image;
  const std::string output = RunBootTask(FreshTempDir("runner-boot") + "/agent", "README",
                                         "no kernel here\n", v1::BootSpec(), &image);
  struct utsname host;
  ASSERT_EQ(uname(&host), 0);
  EXPECT_THAT(output, HasSubstr(absl::StrCat("farm: boot: guest kernel ", image,
                                             " under host kernel ", host.release, "\n")));
}

// The guest's command line names the host kernel too (farm.host_kernel=, for a guest test that
// depends on it): a stand-in qemu first on PATH prints the arguments it was given to the console.
TEST(TaskRunnerBootTest, GuestCommandLineNamesTheHostKernel) {
  if (!testing_util::HaveGit()) GTEST_SKIP() << "the git CLI is not installed";
  if (std::system("command -v busybox >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "busybox is not installed (apt-get install busybox-static)";
  }
  const std::string dir = FreshTempDir("runner-cmdline");
  const std::string fake_bin = dir + "/bin";
  std::filesystem::create_directories(fake_bin);
  {
    std::ofstream qemu(fake_bin + "/qemu-system-x86_64");
    qemu << "#!/bin/sh\necho \"stand-in qemu: $*\"\nexit 1\n";
  }
  std::filesystem::permissions(fake_bin + "/qemu-system-x86_64", std::filesystem::perms::owner_all);
  const char* old_path = std::getenv("PATH");
  const std::string saved = old_path ? old_path : "/usr/bin:/bin";
  setenv("PATH", (fake_bin + ":" + saved).c_str(), 1);
  v1::BootSpec spec;
  spec.set_accel("tcg");
  spec.set_kernel_cmdline("quiet -- init-arg");
  std::string image;
  const std::string output = RunBootTask(
      dir + "/agent", "bzImage", "not a kernel: the stand-in qemu does not care\n", spec, &image);
  setenv("PATH", saved.c_str(), 1);
  struct utsname host;
  ASSERT_EQ(uname(&host), 0);
  EXPECT_THAT(output, HasSubstr("stand-in qemu: "));
  // Before the job's own line, whose "--" hands what follows to init (the farm's own init
  // parameters go before that "--" too).
  EXPECT_THAT(output,
              HasSubstr(absl::StrCat(" farm.host_kernel=", host.release, " quiet rdinit=/init")));
  EXPECT_THAT(output, HasSubstr(" -- init-arg\n"));
}

}  // namespace
}  // namespace farm
