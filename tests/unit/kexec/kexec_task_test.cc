// The kexec agent's journal (agent/kexec/kexec_task): a fake machine that "reboots" by changing
// its boot id, release and command line, and a real journal file. The task must resume or end
// with the right outcome whichever step a power cycle interrupts.
#include "agent/kexec/kexec_task.h"

#include <filesystem>
#include <fstream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "agent/kexec/host_machine.h"
#include "agent/workspace/workspace.h"
#include "common/task_control/task_control.h"
#include "gtest/gtest.h"
#include "tests/lib/test_util.h"
#include "tests/unit/kexec/fake_kernel_repo.h"

namespace farm::kexec {
namespace {

namespace v1 = farm::v1;
using Kind = KexecStep::Kind;

class FakeMachine : public HostMachine {
 public:
  std::string BootId() override { return absl::StrCat("boot-", boots); }
  std::string Release() override { return release; }
  std::string Cmdline() override { return cmdline; }
  absl::Status Load(const std::string& image, const std::string& initrd,
                    const std::string& line) override {
    if (!load_error.ok()) return load_error;
    staged_release = *BzImageRelease(image);
    staged_image = image;
    staged_cmdline = line;
    staged_initrd = initrd;
    return absl::OkStatus();
  }
  absl::Status Execute() override {
    ++executed;
    return absl::OkStatus();
  }
  // A kexec that worked: the staged kernel runs.
  void KexecBoots() {
    ++boots;
    release = staged_release;
    cmdline = staged_cmdline;
  }
  // A power cycle (or a panic that reset the machine): back in the default kernel.
  void PowerCycle() {
    ++boots;
    release = "6.1.0-56-cloud-amd64";
    cmdline = "console=ttyS0 farm.vm=1";
  }

  int boots = 0;
  int executed = 0;
  std::string release = "6.1.0-56-cloud-amd64";
  std::string cmdline = "console=ttyS0 farm.vm=1";
  std::string staged_release, staged_cmdline, staged_initrd, staged_image;
  absl::Status load_error;
};

// A file with just enough of a bzImage's setup header to name its release.
std::string WriteBzImage(const std::string& path, const std::string& release) {
  std::string data(0x5000, '\0');
  data.replace(0x202, 4, "HdrS");
  const uint16_t version_offset = 0x42c0;  // kernel_version, relative to 0x200 (as Debian's)
  data[0x20e] = static_cast<char>(version_offset & 0xff);
  data[0x20f] = static_cast<char>(version_offset >> 8);
  std::string version = release + " (debian-kernel@lists.debian.org) #1 SMP";
  data.replace(0x200 + version_offset, version.size(), version);
  std::ofstream(path, std::ios::binary) << data;
  return path;
}

class KexecTaskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = farm::testing::MakeTempDir("kexec");
    options_.journal_path = dir_ + "/kexec/task";
    options_.default_initrd = dir_ + "/initrd.img";
    assign_.set_task_id("7.3");
    assign_.set_commit("abc");
    assign_.mutable_host_kernel()->set_image(WriteBzImage(dir_ + "/vmlinuz-57", kWanted));
    assign_.mutable_host_kernel()->set_label("6.1.0-57");
  }
  // A new agent process on `machine_` (as after a boot): what it finds in the journal.
  std::optional<KexecStep> Restart() { return KexecTask(&machine_, options_).Resume(); }

  static constexpr char kWanted[] = "6.1.0-57-cloud-amd64";
  std::string dir_;
  KexecOptions options_;
  FakeMachine machine_;
  v1::Assign assign_;
};

TEST(BzImageReleaseTest, ReadsTheSetupHeaderAndRejectsOtherFiles) {
  std::string dir = farm::testing::MakeTempDir("bzimage");
  EXPECT_EQ(*BzImageRelease(WriteBzImage(dir + "/k", "6.1.0-9-amd64")), "6.1.0-9-amd64");
  std::ofstream(dir + "/junk") << std::string(4096, 'x');
  absl::StatusOr<std::string> junk = BzImageRelease(dir + "/junk");
  EXPECT_TRUE(absl::IsInvalidArgument(junk.status())) << junk.status();
  EXPECT_TRUE(absl::IsNotFound(BzImageRelease(dir + "/missing").status()));
}

TEST(KexecCmdlineTest, NamesTheTaskAndReplacesEarlierFarmParameters) {
  EXPECT_EQ(KexecCmdline("BOOT_IMAGE=/vmlinuz console=ttyS0 farm.task=1.1 panic=0 quiet", "2.5", 10,
                         "init=/bad"),
            "console=ttyS0 quiet farm.task=2.5 panic=10 farm.extra=1 init=/bad");
  // A later task's command line drops an earlier one's extra parameters.
  EXPECT_EQ(
      KexecCmdline("console=ttyS0 farm.task=2.5 panic=10 farm.extra=1 init=/bad", "2.6", 10, ""),
      "console=ttyS0 farm.task=2.6 panic=10");
  EXPECT_EQ(CmdlineExtra("console=ttyS0 farm.task=2.5 farm.extra=1 init=/bad  quiet"),
            "init=/bad quiet");
  EXPECT_EQ(TaskOnCmdline("console=ttyS0 farm.task=2.5 panic=10"), "2.5");
  EXPECT_EQ(TaskOnCmdline("console=ttyS0"), "");
}

// The host kernel a task kexecked into is what the agent's Hello names in that boot, across agent
// restarts, and no longer once the machine boots again (a power cycle: the default kernel).
TEST_F(KexecTaskTest, KnowsTheHostKernelItRunsUntilTheNextBoot) {
  options_.host_path = dir_ + "/kexec/host";
  assign_.mutable_host_kernel()->set_key("sha-57");
  KexecTask task(&machine_, options_);
  EXPECT_EQ(task.RunningHostKey(), "") << "the default kernel";
  ASSERT_EQ(task.Begin(assign_).kind, Kind::kSwitch);
  ASSERT_TRUE(task.Switch().ok());
  EXPECT_EQ(task.RunningHostKey(), "") << "not there yet";
  machine_.KexecBoots();
  ASSERT_EQ(Restart()->kind, Kind::kRun);
  EXPECT_EQ(KexecTask(&machine_, options_).RunningHostKey(), "sha-57");
  machine_.PowerCycle();
  EXPECT_EQ(KexecTask(&machine_, options_).RunningHostKey(), "");
}

// An idle agent's way back: its default kernel, with its own command line (no task, no panic=),
// never while a task is journaled, and not at all without a default kernel.
TEST_F(KexecTaskTest, ReturnsToTheDefaultKernel) {
  EXPECT_TRUE(absl::IsFailedPrecondition(KexecTask(&machine_, options_).ReturnToDefault()));
  options_.default_kernel = WriteBzImage(dir_ + "/vmlinuz-56", "6.1.0-56-cloud-amd64");
  KexecTask task(&machine_, options_);
  ASSERT_EQ(task.Begin(assign_).kind, Kind::kSwitch);
  ASSERT_TRUE(task.Switch().ok());
  machine_.KexecBoots();
  ASSERT_EQ(Restart()->kind, Kind::kRun);
  EXPECT_TRUE(absl::IsFailedPrecondition(task.ReturnToDefault())) << "a task is journaled";
  task.Delivered();
  ASSERT_TRUE(task.ReturnToDefault().ok());
  EXPECT_EQ(machine_.executed, 2);
  EXPECT_EQ(machine_.staged_release, "6.1.0-56-cloud-amd64");
  EXPECT_EQ(machine_.staged_initrd, options_.default_initrd);
  EXPECT_EQ(machine_.staged_cmdline, "console=ttyS0") << "neither the task nor panic=";
}

// The whole path: stage, switch, boot the wanted kernel, test, report, forget.
TEST_F(KexecTaskTest, SwitchesRunsAndReports) {
  KexecTask task(&machine_, options_);
  KexecStep step = task.Begin(assign_);
  ASSERT_EQ(step.kind, Kind::kSwitch) << step.result.DebugString();
  EXPECT_EQ(step.release, kWanted);
  EXPECT_EQ(machine_.staged_initrd, options_.default_initrd);
  EXPECT_EQ(TaskOnCmdline(machine_.staged_cmdline), "7.3");
  ASSERT_TRUE(task.Switch().ok());
  EXPECT_EQ(machine_.executed, 1);
  machine_.KexecBoots();
  std::optional<KexecStep> resumed = Restart();
  ASSERT_TRUE(resumed.has_value());
  ASSERT_EQ(resumed->kind, Kind::kRun);
  EXPECT_FALSE(resumed->assign.has_host_kernel()) << "the runner does not see the host kernel";
  EXPECT_EQ(resumed->assign.commit(), "abc");
  KexecTask after(&machine_, options_);
  v1::TaskResult result;
  result.set_task_id("7.3");
  result.set_verdict(v1::BAD);
  after.Finished(result);
  // Power cut before the report went out: the next boot sends the same result.
  machine_.PowerCycle();
  std::optional<KexecStep> report = Restart();
  ASSERT_TRUE(report.has_value());
  ASSERT_EQ(report->kind, Kind::kReport);
  EXPECT_EQ(report->result.verdict(), v1::BAD);
  EXPECT_EQ(report->result.host_kernel_release(), kWanted);
  KexecTask(&machine_, options_).Delivered();
  EXPECT_FALSE(Restart().has_value()) << "a delivered result is forgotten";
}

// A machine already running the wanted kernel does not reboot.
TEST_F(KexecTaskTest, RunsInPlaceWhenTheKernelIsAlreadyThere) {
  machine_.release = kWanted;
  KexecStep step = KexecTask(&machine_, options_).Begin(assign_);
  EXPECT_EQ(step.kind, Kind::kRun);
  EXPECT_EQ(machine_.executed, 0);
  // The same kernel with another command line (one that panics, say) is a reboot.
  assign_.set_task_id("7.4");
  assign_.mutable_host_kernel()->set_cmdline("rdinit=/nonexistent");
  EXPECT_EQ(KexecTask(&machine_, options_).Begin(assign_).kind, Kind::kSwitch);
}

// Power cycles before staging and after staging (before the kexec): staged again, not lost.
TEST_F(KexecTaskTest, PowerCycleBeforeTheKexecStagesAgain) {
  KexecTask task(&machine_, options_);
  ASSERT_EQ(task.Begin(assign_).kind, Kind::kSwitch);
  machine_.PowerCycle();  // after staging, before kexec -e
  machine_.staged_release.clear();
  std::optional<KexecStep> again = Restart();
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->kind, Kind::kSwitch);
  EXPECT_EQ(machine_.staged_release, kWanted) << "staged again after the power cycle";
  // Bounded: a machine that keeps restarting ends in an infrastructure error.
  for (int i = 0; i < 5; ++i) {
    machine_.PowerCycle();
    again = Restart();
    ASSERT_TRUE(again.has_value());
    if (again->kind == Kind::kReport) break;
  }
  EXPECT_EQ(again->kind, Kind::kReport);
  EXPECT_FALSE(again->result.infra_error().empty()) << again->result.DebugString();
}

// The kexec went to a kernel that never reached the agent; the machine came back in its default
// kernel (by panic=N or a power cycle): a verdict about the host kernel, SKIP or BAD.
TEST_F(KexecTaskTest, HostKernelThatDidNotBootIsAVerdict) {
  for (bool bad_on_host_boot : {false, true}) {
    assign_.mutable_host_kernel()->set_bad_on_host_boot(bad_on_host_boot);
    KexecTask task(&machine_, options_);
    ASSERT_EQ(task.Begin(assign_).kind, Kind::kSwitch);
    ASSERT_TRUE(task.Switch().ok());
    machine_.PowerCycle();
    std::optional<KexecStep> step = Restart();
    ASSERT_TRUE(step.has_value());
    ASSERT_EQ(step->kind, Kind::kReport);
    EXPECT_TRUE(step->result.host_boot_failed());
    EXPECT_EQ(step->result.verdict(), bad_on_host_boot ? v1::BAD : v1::SKIP);
    EXPECT_NE(step->result.detail().find("host kernel did not boot"), std::string::npos)
        << step->result.detail();
    EXPECT_EQ(step->result.host_kernel_release(), "6.1.0-56-cloud-amd64");
    KexecTask(&machine_, options_).Delivered();
  }
}

// A power cycle during the test under the host kernel: the kernel went down (a verdict about
// it); an agent restart in the same boot tests again.
TEST_F(KexecTaskTest, RebootDuringTheTest) {
  KexecTask task(&machine_, options_);
  ASSERT_EQ(task.Begin(assign_).kind, Kind::kSwitch);
  ASSERT_TRUE(task.Switch().ok());
  machine_.KexecBoots();
  ASSERT_EQ(Restart()->kind, Kind::kRun);
  EXPECT_EQ(Restart()->kind, Kind::kRun) << "same boot: the agent restarted, test again";
  machine_.PowerCycle();
  std::optional<KexecStep> step = Restart();
  ASSERT_TRUE(step.has_value());
  ASSERT_EQ(step->kind, Kind::kReport);
  EXPECT_TRUE(step->result.host_boot_failed());
  EXPECT_EQ(step->result.verdict(), v1::SKIP);
}

// kexec refuses the image (corrupt): a verdict at once; kexec-tools missing: infrastructure.
TEST_F(KexecTaskTest, RefusedImageAndMissingTool) {
  machine_.load_error = absl::FailedPreconditionError("kexec_file_load failed: Invalid argument");
  KexecStep refused = KexecTask(&machine_, options_).Begin(assign_);
  ASSERT_EQ(refused.kind, Kind::kReport);
  EXPECT_TRUE(refused.result.host_boot_failed());
  EXPECT_EQ(refused.result.verdict(), v1::SKIP);
  machine_.load_error = absl::NotFoundError("kexec is missing: install kexec-tools");
  KexecStep missing = KexecTask(&machine_, options_).Begin(assign_);
  ASSERT_EQ(missing.kind, Kind::kReport);
  EXPECT_NE(missing.result.infra_error().find("kexec-tools"), std::string::npos);
  assign_.mutable_host_kernel()->set_image(dir_ + "/no-such-image");
  KexecStep no_image = KexecTask(&machine_, options_).Begin(assign_);
  EXPECT_FALSE(no_image.result.infra_error().empty()) << no_image.result.DebugString();
}

// Host kernels given as revisions, built for real from a FakeKernelRepo.
class HostBuildTest : public KexecTaskTest {
 protected:
  void SetUp() override {
    KexecTaskTest::SetUp();
    repo_ = std::make_unique<farm::testing::FakeKernelRepo>(dir_ + "/linux");
    good_ = repo_->Commit("6.1.0-farm-good");
    culprit_ = repo_->Commit("6.1.0-farm-bad");
    broken_ = repo_->Commit("6.1.0-farm-broken", /*broken=*/true);
    ws_ = *Workspace::Open(dir_ + "/agent");
    builder_ = std::make_unique<WorkspaceHostKernelBuilder>(ws_.get(), 1, dir_ + "/ccache",
                                                            dir_ + "/agent/kexec/images");
    options_.builder = builder_.get();
  }
  // The task `id` with the host kernel at `commit`, keyed as the client keys it.
  v1::Assign Source(const std::string& id, const std::string& commit) {
    v1::Assign a = assign_;
    a.set_task_id(id);
    v1::HostKernel* k = a.mutable_host_kernel();
    k->Clear();
    k->set_repo(repo_->path());
    k->set_commit(commit);
    k->mutable_build()->set_config_target("tinyconfig");
    k->set_key("key-" + commit);
    k->set_label(commit.substr(0, 12));
    return a;
  }
  int Builds() { return repo_->Builds(); }

  std::unique_ptr<farm::testing::FakeKernelRepo> repo_;
  std::string good_, culprit_, broken_;
  std::unique_ptr<Workspace> ws_;
  std::unique_ptr<WorkspaceHostKernelBuilder> builder_;
  TaskControl control_;
};

// The agent builds the commit's kernel in its host slot (not the task slot), journals BUILDING
// first (a power cycle during the build builds again), and stages exactly the image it built.
TEST_F(HostBuildTest, BuildsTheCommitAndStagesThatImage) {
  KexecTask task(&machine_, options_);
  KexecStep step = task.Begin(Source("9.1", culprit_));
  ASSERT_EQ(step.kind, Kind::kBuild) << step.result.DebugString();
  machine_.PowerCycle();  // during the build
  std::optional<KexecStep> resumed = Restart();
  ASSERT_TRUE(resumed.has_value());
  ASSERT_EQ(resumed->kind, Kind::kBuild);
  std::string log;
  step =
      KexecTask(&machine_, options_).Build([&](std::string_view s) { log.append(s); }, &control_);
  ASSERT_EQ(step.kind, Kind::kSwitch) << step.result.DebugString() << log;
  EXPECT_EQ(step.release, "6.1.0-farm-bad");
  EXPECT_EQ(machine_.staged_release, "6.1.0-farm-bad");
  EXPECT_EQ(machine_.staged_image, builder_->KeptImage("key-" + culprit_));
  EXPECT_EQ(TaskOnCmdline(machine_.staged_cmdline), "9.1");
  EXPECT_TRUE(std::filesystem::exists(ws_->build_path(1) + "/arch/x86/boot/bzImage"));
  EXPECT_FALSE(std::filesystem::exists(ws_->build_path(0))) << "the task slot is left alone";
  EXPECT_EQ(Builds(), 1);
  EXPECT_NE(log.find("building host kernel"), std::string::npos) << log;
}

// A revision that does not build (also in a pristine worktree) is a skip about that host kernel,
// with the build's errors; nothing is staged.
TEST_F(HostBuildTest, AFailedBuildIsASkipWithTheBuildLog) {
  KexecTask task(&machine_, options_);
  ASSERT_EQ(task.Begin(Source("9.2", broken_)).kind, Kind::kBuild);
  std::string log;
  KexecStep step = task.Build([&](std::string_view s) { log.append(s); }, &control_);
  ASSERT_EQ(step.kind, Kind::kReport);
  EXPECT_EQ(step.result.verdict(), v1::SKIP) << step.result.DebugString();
  EXPECT_FALSE(step.result.has_infra_error());
  EXPECT_TRUE(step.result.retried_pristine());
  EXPECT_NE(step.result.detail().find("did not build"), std::string::npos);
  EXPECT_NE(step.result.detail().find("net.c:42:7: error: expected expression"), std::string::npos)
      << step.result.detail();
  EXPECT_NE(log.find("error: expected expression"), std::string::npos) << log;
  EXPECT_EQ(machine_.executed, 0);
  EXPECT_TRUE(machine_.staged_image.empty());
  // The journal holds the verdict until it is delivered.
  std::optional<KexecStep> again = Restart();
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->kind, Kind::kReport);
  EXPECT_EQ(again->result.verdict(), v1::SKIP);
}

// A second task on the same host kernel (same key) takes the kept image: no build, and, when the
// machine already runs that kernel, no kexec either.
TEST_F(HostBuildTest, TheSameHostKernelIsNotBuiltTwice) {
  KexecTask task(&machine_, options_);
  ASSERT_EQ(task.Begin(Source("9.3", good_)).kind, Kind::kBuild);
  ASSERT_EQ(task.Build({}, &control_).kind, Kind::kSwitch);
  ASSERT_TRUE(task.Switch().ok());
  machine_.KexecBoots();
  ASSERT_EQ(Restart()->kind, Kind::kRun);
  v1::TaskResult done;
  done.set_task_id("9.3");
  done.set_verdict(v1::GOOD);
  task.Finished(done);
  task.Delivered();
  ASSERT_EQ(Builds(), 1);
  KexecTask next(&machine_, options_);
  ASSERT_EQ(next.Begin(Source("9.4", good_)).kind, Kind::kBuild);
  std::string log;
  KexecStep step = next.Build([&](std::string_view s) { log.append(s); }, &control_);
  EXPECT_EQ(step.kind, Kind::kRun) << step.result.DebugString();
  EXPECT_EQ(Builds(), 1) << log;
  EXPECT_EQ(machine_.executed, 1);
  EXPECT_NE(log.find("kept image"), std::string::npos) << log;
}

}  // namespace
}  // namespace farm::kexec
