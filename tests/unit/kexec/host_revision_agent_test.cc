// A two-dimensional bisect whose host kernels are a range of revisions, end to end in one process:
// `farm bisect`'s spec (MakeSpec with --host-repo/--host-good/--host-bad, --kernel --config), a
// real coordinator on loopback, and a real kexec agent on a fake machine that "reboots" by
// starting the agent again on the same work directory. The agent builds each cell's host kernel
// from the FakeKernelRepo, stages the image it built, kexecs, finds its task in the journal after
// the boot, runs the test there and reports; the report names the first bad host commit.
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/kexec/host_machine.h"
#include "agent/link/agent.h"
#include "cli/bisect_spec.h"
#include "cli/client.h"
#include "cli/local_state.h"
#include "coordinator/service/service.h"
#include "gtest/gtest.h"
#include "tests/lib/test_util.h"
#include "tests/unit/kexec/fake_kernel_repo.h"

namespace farm {
namespace {

namespace v1 = farm::v1;

// A machine whose kexec takes effect when the test boots it (Boot), as a new agent process would
// find it. Thread-safe: the agent's task thread stages and executes, the test boots.
class RebootingMachine : public kexec::HostMachine {
 public:
  std::string BootId() override {
    std::lock_guard<std::mutex> lock(mu_);
    return absl::StrCat("boot-", boots_);
  }
  std::string Release() override {
    std::lock_guard<std::mutex> lock(mu_);
    return release_;
  }
  std::string Cmdline() override {
    std::lock_guard<std::mutex> lock(mu_);
    return cmdline_;
  }
  absl::Status Load(const std::string& image, const std::string&,
                    const std::string& cmdline) override {
    absl::StatusOr<std::string> release = kexec::BzImageRelease(image);
    if (!release.ok()) return absl::FailedPreconditionError(release.status().message());
    std::lock_guard<std::mutex> lock(mu_);
    staged_release_ = *release;
    staged_cmdline_ = cmdline;
    staged_images_.push_back(image);
    return absl::OkStatus();
  }
  absl::Status Execute() override {
    std::lock_guard<std::mutex> lock(mu_);
    executing_ = true;
    cv_.notify_all();
    return absl::OkStatus();  // as systemctl kexec: the process is stopped afterwards
  }
  // Waits until a kexec was executed (true) or `done` holds or 60 s passed (false).
  bool AwaitExecute(const std::atomic<bool>& done) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(60), [&] { return executing_ || done.load(); });
    return executing_;
  }
  void NotifyDone() {
    std::lock_guard<std::mutex> lock(mu_);
    cv_.notify_all();
  }
  // The staged kernel runs now.
  void Boot() {
    std::lock_guard<std::mutex> lock(mu_);
    executing_ = false;
    ++boots_;
    release_ = staged_release_;
    cmdline_ = staged_cmdline_;
  }
  std::vector<std::string> staged_images() {
    std::lock_guard<std::mutex> lock(mu_);
    return staged_images_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool executing_ = false;
  int boots_ = 0;
  std::string release_ = "6.1.0-default", cmdline_ = "console=ttyS0";
  std::string staged_release_, staged_cmdline_;
  std::vector<std::string> staged_images_;
};

TEST(HostRevisionAgent, TwoDimensionalBisectOverAHostRangeBuiltByTheKexecAgent) {
  std::string dir = farm::testing::MakeTempDir("host-revision-agent");
  farm::testing::FakeKernelRepo linux_repo(dir + "/linux");
  std::vector<std::string> commits;
  for (int i = 0; i < 7; ++i) commits.push_back(linux_repo.Commit(absl::StrCat("6.1.", i)));
  const int culprit = 4;  // host kernels from commits[4] on make the test fail
  farm::testing::WriteScript(dir + "/guest-0", "guest 0\n");
  farm::testing::WriteScript(dir + "/guest-1", "guest 1\n");
  // Runs under the host kernel, in the cell's worktree: bad from the culprit's release on.
  farm::testing::WriteScript(dir + "/host-test.sh",
                             "#!/bin/sh\ncat host-kernel >> " + dir + "/tested\ncase $(cat " + dir +
                                 "/running) in 6.1.[4-9]) exit 1;; esac\nexit 0\n");

  BisectFlags f;
  f.host_repo = linux_repo.path();
  f.host_good = commits.front();
  f.host_bad = commits.back();
  f.kernel.kernel = true;
  f.kernel.config = "tinyconfig";
  f.guest_kernels = {dir + "/guest-0", dir + "/guest-1"};
  f.command = {dir + "/host-test.sh"};
  setenv("XDG_CACHE_HOME", (dir + "/cache").c_str(), 1);
  absl::StatusOr<v1::BisectSpec> spec = MakeSpec(f, /*repo_must_be_local=*/true);
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_EQ(spec->matrix().hosts_size(), 7);

  std::filesystem::create_directories(dir + "/state");
  absl::StatusOr<std::unique_ptr<CoordinatorServer>> server =
      CoordinatorServer::Start(LocalCoordinatorOptions(dir + "/state"), "127.0.0.1:0");
  ASSERT_TRUE(server.ok()) << server.status();
  auto machine = std::make_shared<RebootingMachine>();
  AgentOptions options;
  options.coordinator = (*server)->address();
  options.workdir = dir + "/agent";
  options.agent_id = "bare-metal-1";
  options.kexec = true;
  options.kexec_initrd = dir + "/initrd.img";
  options.kexec_boot_deadline = absl::Seconds(60);
  options.host_machine = machine;

  FarmClient client((*server)->address(), nullptr);
  absl::StatusOr<v1::SubmitBisectResponse> submitted = client.Submit(*spec);
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  const std::string job_id = submitted->job_id();

  // One agent process per boot: a kexec ends it, the next boot starts another on the same
  // work directory (the test script reads the running release from `running`).
  std::atomic<bool> done{false};
  int boots = 0;
  std::thread machine_thread([&] {
    while (!done.load()) {
      std::ofstream(dir + "/running") << machine->Release();
      absl::StatusOr<std::unique_ptr<Agent>> agent = Agent::Create(options);
      if (!agent.ok()) {
        ADD_FAILURE() << agent.status();
        client.Cancel(job_id).IgnoreError();
        return;
      }
      std::thread run([a = agent->get()] { a->Run(); });
      const bool kexec = machine->AwaitExecute(done);
      (*agent)->Stop();
      run.join();
      agent->reset();
      if (kexec) {
        machine->Boot();
        ++boots;
      }
    }
  });
  absl::StatusOr<v1::JobStatus> final = client.WatchUntilDone(job_id, {});
  done = true;
  machine->NotifyDone();
  machine_thread.join();
  (*server)->Shutdown(absl::Milliseconds(200));
  ASSERT_TRUE(final.ok()) << final.status();
  EXPECT_EQ(final->state(), v1::FOUND) << final->DebugString();
  EXPECT_TRUE(absl::StrContains(final->report(),
                                absl::StrCat(commits[culprit], " is the first bad host commit")))
      << final->report();
  EXPECT_TRUE(absl::StrContains(final->report(), "the change is in the host range"))
      << final->report();
  // Every staged image is one the agent built and kept under its host kernel's key, each host
  // kernel built once whatever the number of its cells, and fewer than all of them (a bisect).
  std::set<std::string> kept;
  for (const std::string& image : machine->staged_images()) {
    EXPECT_TRUE(absl::StartsWith(image, dir + "/agent/kexec/images/")) << image;
    kept.insert(image);
  }
  EXPECT_EQ(linux_repo.Builds(), static_cast<int>(kept.size()));
  EXPECT_LT(linux_repo.Builds(), 7);
  EXPECT_GE(boots, 2);
}

}  // namespace
}  // namespace farm
