// Leases that know about reboots (coordinator/scheduler/kexec_leases.cc), on a fake clock with a
// fake power switch: a task whose agent announced a kexec is not requeued before the boot
// deadline; then the machine is power-cycled once; then it is an infrastructure error and the
// agent is quarantined. An agent that comes back reports the task, nothing is lost.
#include <deque>
#include <mutex>

#include "absl/strings/match.h"
#include "coordinator/clock/clock.h"
#include "coordinator/scheduler/coordinator.h"
#include "gtest/gtest.h"
#include "tests/lib/test_util.h"

namespace farm {
namespace {

namespace v1 = farm::v1;

class RecordingChannel : public AgentChannel {
 public:
  void Send(const v1::CoordinatorMessage& msg) override {
    std::lock_guard<std::mutex> lock(mu_);
    sent.push_back(msg);
  }
  std::mutex mu_;
  std::vector<v1::CoordinatorMessage> sent;
};

class FakePower : public PowerControl {
 public:
  bool Has(const std::string& agent_id) const override { return agent_id == "metal"; }
  void Cycle(const std::string& agent_id) override { cycled.push_back(agent_id); }
  std::vector<std::string> cycled;
};

class KexecLeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = farm::testing::MakeTempDir("kexec_lease");
    repo_ = farm::testing::MakeRepo(dir_ + "/repo", "--commits 20 --seed 3");
    clock_ = std::make_shared<FakeClock>();
    power_ = std::make_shared<FakePower>();
    CoordinatorOptions o;
    o.db_path = dir_ + "/farm.db";
    o.cache_dir = dir_ + "/cache";
    o.clock = clock_;
    o.power = power_;
    o.lease = absl::Seconds(30);
    auto c = Coordinator::Create(o);
    ASSERT_TRUE(c.ok()) << c.status();
    coordinator_ = std::move(*c);
  }
  uint64_t Connect(std::shared_ptr<RecordingChannel> channel, const std::string& id,
                   const std::string& running = "") {
    v1::Hello h;
    h.set_agent_id(id);
    h.set_slots(1);
    (*h.mutable_capabilities())["kexec"] = "1";
    if (!running.empty()) h.add_running(running);
    auto s = coordinator_->Connect(h, channel);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *s : 0;
  }
  v1::JobStatus Submit(const std::string& image = "/boot/vmlinuz-test") {
    v1::BisectSpec s;
    s.set_repo(repo_.path);
    s.add_good(repo_.root);
    s.set_bad(repo_.bad);
    s.mutable_recipe()->add_test_argv("true");
    s.mutable_host_kernel()->set_image(image);
    s.set_max_parallel(1);
    auto job = coordinator_->SubmitBisect(s);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : v1::JobStatus();
  }
  // The first Assign sent on `channel` (it must carry a host kernel), or none.
  v1::Assign FirstAssign(RecordingChannel& channel) {
    for (const auto& m : channel.sent) {
      if (m.has_assign()) {
        EXPECT_FALSE(m.assign().host_kernel().image().empty());
        return m.assign();
      }
    }
    return v1::Assign();
  }
  std::string AssignedTask(RecordingChannel& channel) { return FirstAssign(channel).task_id(); }
  void Announce(uint64_t session, const std::string& task, uint32_t deadline_s) {
    v1::AgentMessage m;
    m.mutable_kexec()->set_task_id(task);
    m.mutable_kexec()->set_boot_deadline_seconds(deadline_s);
    m.mutable_kexec()->set_host_kernel_release("6.1.0-57-cloud-amd64");
    coordinator_->OnAgentMessage(session, m);
  }
  // The finished entry of `task`, or nullptr.
  std::optional<v1::TaskSummary> Finished(const std::string& job, const std::string& task) {
    auto st = coordinator_->GetJob(job);
    EXPECT_TRUE(st.ok());
    for (const auto& t : st->finished()) {
      if (t.task_id() == task) return t;
    }
    return std::nullopt;
  }

  std::string dir_;
  farm::testing::Repo repo_;
  std::shared_ptr<FakeClock> clock_;
  std::shared_ptr<FakePower> power_;
  std::unique_ptr<Coordinator> coordinator_;
};

TEST_F(KexecLeaseTest, OnlyKexecAgentsGetHostKernelTasks) {
  auto plain = std::make_shared<RecordingChannel>();
  v1::Hello h;
  h.set_agent_id("plain");
  h.set_slots(1);
  ASSERT_TRUE(coordinator_->Connect(h, plain).ok());
  Submit();
  EXPECT_EQ(AssignedTask(*plain), "") << "an agent without kexec got a host-kernel task";
  auto metal = std::make_shared<RecordingChannel>();
  Connect(metal, "metal");
  EXPECT_NE(AssignedTask(*metal), "");
}

// The machine does not come back: power-cycled at the deadline, then an infrastructure error
// and a quarantine one deadline later.
TEST_F(KexecLeaseTest, NotBackIsPowerCycledThenQuarantined) {
  auto channel = std::make_shared<RecordingChannel>();
  uint64_t sid = Connect(channel, "metal");
  v1::JobStatus job = Submit();
  const std::string task = AssignedTask(*channel);
  ASSERT_FALSE(task.empty());
  Announce(sid, task, 120);
  bool acked = false;
  for (const auto& m : channel->sent) acked |= m.kexec_ack().task_id() == task;
  EXPECT_TRUE(acked) << "the agent waits for this before it reboots";
  coordinator_->Disconnect(sid);        // the kexec breaks the stream
  clock_->Advance(absl::Seconds(100));  // far past the 30 s lease, within the boot deadline
  coordinator_->ExpireLeases();
  EXPECT_FALSE(Finished(job.job_id(), task).has_value()) << "requeued during an announced kexec";
  EXPECT_TRUE(power_->cycled.empty());
  clock_->Advance(absl::Seconds(21));
  coordinator_->ExpireLeases();
  EXPECT_EQ(power_->cycled, std::vector<std::string>{"metal"});
  EXPECT_FALSE(Finished(job.job_id(), task).has_value()) << "still waiting for the power cycle";
  clock_->Advance(absl::Seconds(121));
  coordinator_->ExpireLeases();
  EXPECT_EQ(power_->cycled.size(), 1u) << "power-cycled once";
  std::optional<v1::TaskSummary> t = Finished(job.job_id(), task);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->state(), v1::TASK_INFRA_ERROR);
  EXPECT_TRUE(absl::StrContains(t->detail(), "even after a power cycle")) << t->detail();
  bool quarantined = false;
  for (const v1::AgentInfo& a : coordinator_->ListAgents()) {
    quarantined |= a.agent_id() == "metal" && a.quarantined();
  }
  auto later = std::make_shared<RecordingChannel>();
  Connect(later, "metal");
  for (const v1::AgentInfo& a : coordinator_->ListAgents()) {
    quarantined |= a.agent_id() == "metal" && a.quarantined();
  }
  EXPECT_TRUE(quarantined);
  EXPECT_EQ(AssignedTask(*later), "") << "a quarantined agent got work";
}

// Power-cycled, the machine comes back in its default kernel; its agent re-attaches the task and
// reports "host kernel did not boot": a verdict, nothing lost, the agent healthy.
TEST_F(KexecLeaseTest, BackAfterPowerCycleReportsTheVerdict) {
  auto channel = std::make_shared<RecordingChannel>();
  uint64_t sid = Connect(channel, "metal");
  v1::JobStatus job = Submit();
  const std::string task = AssignedTask(*channel);
  Announce(sid, task, 60);
  coordinator_->Disconnect(sid);
  clock_->Advance(absl::Seconds(61));
  coordinator_->ExpireLeases();
  ASSERT_EQ(power_->cycled.size(), 1u);
  clock_->Advance(absl::Seconds(40));
  auto back = std::make_shared<RecordingChannel>();
  uint64_t sid2 = Connect(back, "metal", task);
  clock_->Advance(absl::Seconds(25));  // past the second deadline, within the normal lease again
  coordinator_->ExpireLeases();
  EXPECT_EQ(power_->cycled.size(), 1u);
  v1::AgentMessage hb;
  hb.mutable_heartbeat()->add_running(task);
  coordinator_->OnAgentMessage(sid2, hb);
  v1::AgentMessage r;
  r.mutable_result()->set_task_id(task);
  r.mutable_result()->set_verdict(v1::SKIP);
  r.mutable_result()->set_host_boot_failed(true);
  r.mutable_result()->set_detail("host kernel did not boot: 6.1.0-57");
  coordinator_->OnAgentMessage(sid2, r);
  std::optional<v1::TaskSummary> t = Finished(job.job_id(), task);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->state(), v1::TASK_DONE);
  EXPECT_EQ(t->verdict(), v1::SKIP);
  EXPECT_TRUE(absl::StrContains(t->detail(), "host kernel did not boot"));
  for (const v1::AgentInfo& a : coordinator_->ListAgents()) EXPECT_FALSE(a.quarantined());
}

// A verdict under one host kernel is not reused under another: the reuse key covers it.
TEST_F(KexecLeaseTest, VerdictsAreNotReusedAcrossHostKernels) {
  auto first = std::make_shared<RecordingChannel>();
  uint64_t sid = Connect(first, "metal");
  Submit("/boot/vmlinuz-a");
  const v1::Assign tested = FirstAssign(*first);
  ASSERT_FALSE(tested.task_id().empty());
  v1::AgentMessage r;
  r.mutable_result()->set_task_id(tested.task_id());
  r.mutable_result()->set_verdict(v1::BAD);
  coordinator_->OnAgentMessage(sid, r);
  v1::JobStatus other = Submit("/boot/vmlinuz-b");
  auto second = std::make_shared<RecordingChannel>();
  Connect(second, "metal2");
  const v1::Assign again = FirstAssign(*second);
  EXPECT_EQ(again.commit(), tested.commit()) << "the commit's verdict under host kernel a was "
                                                "reused for host kernel b";
  EXPECT_EQ(again.host_kernel().image(), "/boot/vmlinuz-b");
}

}  // namespace
}  // namespace farm
