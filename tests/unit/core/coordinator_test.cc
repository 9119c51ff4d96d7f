// Coordinator core without gRPC: fake agent channels that record what the coordinator sends,
// real repositories, a real SQLite file.
#include "coordinator/scheduler/coordinator.h"

#include <deque>
#include <map>
#include <mutex>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "cli/matrix_cells.h"
#include "common/spec/spec.h"
#include "coordinator/clock/clock.h"
#include "coordinator/store/store.h"
#include "gtest/gtest.h"
#include "tests/lib/test_util.h"

namespace farm {
namespace {

namespace v1 = farm::v1;
using ::farm::testing::MakeRepo;
using ::farm::testing::MakeTempDir;
using ::farm::testing::Quote;
using ::farm::testing::Repo;
using ::farm::testing::Sh;

class FakeChannel : public AgentChannel {
 public:
  void Send(const v1::CoordinatorMessage& msg) override {
    std::lock_guard<std::mutex> lock(mu_);
    sent_.push_back(msg);
  }
  std::vector<v1::CoordinatorMessage> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<v1::CoordinatorMessage> out(sent_.begin(), sent_.end());
    sent_.clear();
    return out;
  }

 private:
  std::mutex mu_;
  std::deque<v1::CoordinatorMessage> sent_;
};

// An agent driven by the test: answers each assignment with the verdict the repository says.
struct FakeAgent {
  std::shared_ptr<FakeChannel> channel = std::make_shared<FakeChannel>();
  uint64_t session = 0;
  std::map<std::string, std::string> running;  // task id -> commit
  std::vector<std::string> cancelled;
  int drains = 0, undrains = 0;

  void Connect(Coordinator& c, const std::string& id, int slots = 1,
               const std::map<std::string, std::string>& labels = {}) {
    v1::Hello h;
    h.set_agent_id(id);
    h.set_slots(slots);
    for (const auto& [k, v] : labels) (*h.mutable_labels())[k] = v;
    auto s = c.Connect(h, channel);
    ASSERT_TRUE(s.ok()) << s.status();
    session = *s;
  }
  void Drain() {
    for (const auto& m : channel->Take()) {
      if (m.has_assign()) running[m.assign().task_id()] = m.assign().commit();
      if (m.has_cancel()) {
        cancelled.push_back(m.cancel().task_id());
      }
      drains += m.has_drain();
      undrains += m.has_undrain();
    }
  }
  void Report(Coordinator& c, const std::string& task, v1::Verdict v) {
    v1::AgentMessage m;
    m.mutable_result()->set_task_id(task);
    m.mutable_result()->set_verdict(v);
    c.OnAgentMessage(session, m);
    running.erase(task);
  }
};

class CoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("coordinator");
    repo_ = MakeRepo(dir_ + "/repo", "--shape merges --commits 120 --seed 9");
  }
  CoordinatorOptions Options() {
    CoordinatorOptions o;
    o.db_path = dir_ + "/farm.db";
    o.cache_dir = dir_ + "/cache";
    return o;
  }
  v1::BisectSpec Spec() {
    v1::BisectSpec s;
    s.set_repo(repo_.path);
    s.add_good(repo_.root);
    s.set_bad(repo_.bad);
    s.mutable_recipe()->add_test_argv("true");
    return s;
  }
  v1::Verdict Truth(const std::string& commit) {
    return Sh(absl::StrCat("git -C ", Quote(repo_.path), " cat-file -e ", commit, ":bug"))
                       .exit_code == 0
               ? v1::BAD
               : v1::GOOD;
  }
  // Answers every running task of `agents` until the job ends or nothing runs.
  v1::JobStatus Finish(Coordinator& c, const std::string& job, std::vector<FakeAgent*> agents) {
    for (int guard = 0; guard < 1000; ++guard) {
      bool any = false;
      for (FakeAgent* a : agents) {
        a->Drain();
        for (const std::string& t : a->cancelled) {
          a->running.erase(t);
          v1::AgentMessage m;
          m.mutable_result()->set_task_id(t);
          m.mutable_result()->set_cancelled(true);
          c.OnAgentMessage(a->session, m);
        }
        a->cancelled.clear();
        if (!a->running.empty()) {
          auto [task, commit] = *a->running.begin();
          a->Report(c, task, Truth(commit));
          any = true;
        }
      }
      auto st = c.GetJob(job);
      EXPECT_TRUE(st.ok());
      if (st->state() != v1::RUNNING || !any) return *st;
    }
    return *c.GetJob(job);
  }

  // Connects each agent (1 slot) under its id, submits Spec() and delivers the assignments.
  std::string SubmitTo(Coordinator& c,
                       const std::vector<std::pair<FakeAgent*, std::string>>& agents) {
    for (auto& [agent, id] : agents) agent->Connect(c, id);
    auto job = c.SubmitBisect(Spec());
    EXPECT_TRUE(job.ok()) << job.status();
    for (auto& [agent, id] : agents) agent->Drain();
    return job.ok() ? job->job_id() : "";
  }
  // Whether `tasks` has `commit` on `agent`.
  static bool Has(const google::protobuf::RepeatedPtrField<v1::TaskSummary>& tasks,
                  const std::string& commit, const std::string& agent) {
    for (const auto& t : tasks) {
      if (t.commit() == commit && t.agent() == agent) return true;
    }
    return false;
  }

  std::string dir_;
  Repo repo_;
};

TEST_F(CoordinatorTest, FindsCulpritWithSeveralAgentsAndCancelsPointlessWork) {
  auto c = Coordinator::Create(Options());
  ASSERT_TRUE(c.ok()) << c.status();
  FakeAgent a1, a2, a3, a4;
  a1.Connect(**c, "a1");
  a2.Connect(**c, "a2");
  a3.Connect(**c, "a3");
  a4.Connect(**c, "a4");
  auto job = (*c)->SubmitBisect(Spec());
  ASSERT_TRUE(job.ok()) << job.status();
  // All four agents are busy at once, on four different commits.
  std::set<std::string> commits;
  for (FakeAgent* a : {&a1, &a2, &a3, &a4}) {
    a->Drain();
    ASSERT_EQ(a->running.size(), 1u);
    commits.insert(a->running.begin()->second);
  }
  EXPECT_EQ(commits.size(), 4u);
  // Answer only the first agent's task (the root midpoint): some speculative task elsewhere
  // becomes pointless and is cancelled at once.
  auto [task, commit] = *a1.running.begin();
  a1.Report(**c, task, Truth(commit));
  size_t cancels = 0;
  for (FakeAgent* a : {&a2, &a3, &a4}) {
    a->Drain();
    cancels += a->cancelled.size();
  }
  EXPECT_GE(cancels, 1u);
  v1::JobStatus st = Finish(**c, job->job_id(), {&a1, &a2, &a3, &a4});
  ASSERT_EQ(st.state(), v1::FOUND) << st.DebugString();
  EXPECT_EQ(st.first_bad(0), repo_.culprit);
  EXPECT_NE(st.report().find(repo_.culprit + " is the first bad commit"), std::string::npos);
}

TEST_F(CoordinatorTest, SilentAgentsTaskIsRequeuedAndALateResultIsCountedOnce) {
  CoordinatorOptions o = Options();
  o.lease = absl::Milliseconds(200);
  auto c = Coordinator::Create(o);
  ASSERT_TRUE(c.ok());
  FakeAgent dead;
  dead.Connect(**c, "dead");
  auto job = (*c)->SubmitBisect(Spec());
  ASSERT_TRUE(job.ok());
  dead.Drain();
  ASSERT_EQ(dead.running.size(), 1u);
  // Named copies, not a structured binding: the lambda below captures them (clang 14 refuses
  // to capture a binding).
  const std::string task = dead.running.begin()->first;
  const std::string commit = dead.running.begin()->second;
  (*c)->Disconnect(dead.session);
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        (*c)->ExpireLeases();
        auto st = (*c)->GetJob(job->job_id());
        for (const auto& t : st->finished()) {
          if (t.state() == v1::TASK_LOST && t.commit() == commit) return true;
        }
        return false;
      },
      absl::Seconds(10)));
  FakeAgent live;
  live.Connect(**c, "live");
  live.Drain();
  ASSERT_EQ(live.running.size(), 1u);
  EXPECT_EQ(live.running.begin()->second, commit) << "the lost commit is requeued first";
  // The dead agent comes back with its result: counted once, the duplicate is ignored.
  FakeAgent back;
  back.channel = std::make_shared<FakeChannel>();
  v1::Hello h;
  h.set_agent_id("dead");
  h.set_slots(1);
  auto s = (*c)->Connect(h, back.channel);
  ASSERT_TRUE(s.ok());
  back.session = *s;
  back.Report(**c, task, Truth(commit));
  auto live_task = live.running.begin()->first;
  live.Report(**c, live_task, Truth(commit));
  auto st = (*c)->GetJob(job->job_id());
  ASSERT_TRUE(st.ok());
  int applied = 0;
  for (const auto& t : st->finished()) applied += t.commit() == commit && t.applied();
  EXPECT_EQ(applied, 1) << st->DebugString();
  v1::JobStatus done = Finish(**c, job->job_id(), {&live});
  EXPECT_EQ(done.state(), v1::FOUND);
  EXPECT_EQ(done.first_bad(0), repo_.culprit);
}

TEST_F(CoordinatorTest, RestartOnTheSameDatabaseResumesTheJob) {
  std::string job_id;
  uint32_t candidates_before = 0;
  CoordinatorOptions o = Options();
  o.lease = absl::Seconds(2);
  {
    auto c = Coordinator::Create(o);
    ASSERT_TRUE(c.ok());
    FakeAgent a;
    a.Connect(**c, "a");
    auto job = (*c)->SubmitBisect(Spec());
    ASSERT_TRUE(job.ok());
    job_id = job->job_id();
    // Two verdicts, then the coordinator "dies" with a task running.
    for (int i = 0; i < 2; ++i) {
      a.Drain();
      auto [task, commit] = *a.running.begin();
      a.Report(**c, task, Truth(commit));
    }
    a.Drain();
    ASSERT_EQ(a.running.size(), 1u);
    candidates_before = (*c)->GetJob(job_id)->candidates();
  }
  auto c = Coordinator::Create(o);
  ASSERT_TRUE(c.ok()) << c.status();
  auto st = (*c)->GetJob(job_id);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->state(), v1::RUNNING);
  EXPECT_EQ(st->candidates(), candidates_before);
  int verdicts = 0;
  for (const auto& t : st->finished()) verdicts += t.state() == v1::TASK_DONE;
  EXPECT_EQ(verdicts, 2);
  FakeAgent b;
  b.Connect(**c, "b");
  // The task that was running when it died is still leased; it is requeued when the lease ends.
  v1::JobStatus done = Finish(**c, job_id, {&b});
  if (done.state() == v1::RUNNING) {
    ASSERT_TRUE(testing::WaitFor(
        [&] {
          (*c)->ExpireLeases();
          b.Drain();
          return !b.running.empty();
        },
        absl::Seconds(30)));
    done = Finish(**c, job_id, {&b});
  }
  EXPECT_EQ(done.state(), v1::FOUND) << done.DebugString();
  EXPECT_EQ(done.first_bad(0), repo_.culprit);
}

// When every connected agent is quarantined, a job with nothing running does not wait in silence:
// its watchers are told why, once, with the agent and the reason. The job is not failed (its
// commits did not fail; there is no agent to try them on) and resumes when an agent can work.
TEST_F(CoordinatorTest, JobSaysItWaitsWhenEveryAgentIsQuarantined) {
  CoordinatorOptions o = Options();
  o.quarantine_after = 1;
  o.max_infra_attempts = 3;
  auto c = Coordinator::Create(o);
  ASSERT_TRUE(c.ok()) << c.status();
  FakeAgent a;
  a.Connect(**c, "only-agent");
  auto job = (*c)->SubmitBisect(Spec());
  ASSERT_TRUE(job.ok()) << job.status();
  std::vector<std::string> messages;
  auto watch =
      (*c)->Watch(job->job_id(), [&](const v1::JobEvent& ev) { messages.push_back(ev.message()); });
  ASSERT_TRUE(watch.ok());
  a.Drain();
  ASSERT_EQ(a.running.size(), 1u);
  v1::AgentMessage m;
  m.mutable_result()->set_task_id(a.running.begin()->first);
  m.mutable_result()->set_infra_error("qemu-system-x86_64: not found");
  (*c)->OnAgentMessage(a.session, m);
  a.running.clear();
  a.Drain();
  EXPECT_TRUE(a.running.empty()) << "a quarantined agent got a task";
  (*c)->ExpireLeases();
  (*c)->ExpireLeases();  // said once, not every second
  int notes = 0;
  for (const std::string& msg : messages) {
    if (absl::StrContains(msg, "waiting: every connected agent is quarantined")) {
      ++notes;
      EXPECT_TRUE(absl::StrContains(msg, "only-agent")) << msg;
      EXPECT_TRUE(absl::StrContains(msg, "qemu-system-x86_64: not found")) << msg;
    }
  }
  EXPECT_EQ(notes, 1) << absl::StrJoin(messages, "\n");
  auto st = (*c)->GetJob(job->job_id());
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->state(), v1::RUNNING);
  // A healthy agent arrives: the job goes on.
  FakeAgent b;
  b.Connect(**c, "healthy-agent");
  b.Drain();
  EXPECT_EQ(b.running.size(), 1u);
  (*c)->Unwatch(*watch);
}

// The /metrics page counts what happened: every Assign, every verdict by kind, every
// cancellation, the ended job; each Assign has one latency observation.
TEST_F(CoordinatorTest, MetricsCountWhatHappened) {
  auto c = Coordinator::Create(Options());
  ASSERT_TRUE(c.ok()) << c.status();
  FakeAgent a1, a2, a3;
  a1.Connect(**c, "a1");
  a2.Connect(**c, "a2");
  a3.Connect(**c, "a3");
  auto job = (*c)->SubmitBisect(Spec());
  ASSERT_TRUE(job.ok()) << job.status();
  v1::JobStatus st = Finish(**c, job->job_id(), {&a1, &a2, &a3});
  ASSERT_EQ(st.state(), v1::FOUND) << st.DebugString();
  int done = 0, good = 0, bad = 0, cancelled = 0;
  for (const v1::TaskSummary& t : st.finished()) {
    done += t.state() == v1::TASK_DONE;
    good += t.state() == v1::TASK_DONE && t.verdict() == v1::GOOD;
    bad += t.state() == v1::TASK_DONE && t.verdict() == v1::BAD;
    cancelled += t.state() == v1::TASK_CANCELLED;
  }
  const int assigns = st.finished_size();  // nothing was reused or lost
  ASSERT_GT(cancelled, 0) << "three agents speculate: some task must have been cut short";
  const std::string page = (*c)->MetricsText();
  auto value = [&page](const std::string& series) {
    size_t at = page.find("\n" + series + " ");
    EXPECT_NE(at, std::string::npos) << series << " missing from\n" << page;
    if (at == std::string::npos) return -1.0;
    return std::stod(page.substr(at + series.size() + 2));
  };
  EXPECT_EQ(value("farm_assigns_total"), assigns);
  EXPECT_EQ(value("farm_verdicts_total{verdict=\"good\"}"), good);
  EXPECT_EQ(value("farm_verdicts_total{verdict=\"bad\"}"), bad);
  EXPECT_EQ(value("farm_verdicts_total{verdict=\"skip\"}"), done - good - bad);
  EXPECT_EQ(value("farm_tasks_cancelled_total"), cancelled);
  EXPECT_EQ(value("farm_jobs_ended_total{state=\"found\"}"), 1);
  EXPECT_EQ(value("farm_jobs_running"), 0);
  EXPECT_EQ(value("farm_agents_connected"), 3);
  EXPECT_EQ(value("farm_slots"), 3);
  double observed = 0;
  for (const char* trigger :
       {"agent_message", "connect", "disconnect", "submit", "cancel", "lease_check", "resume"}) {
    observed += value(absl::StrCat("farm_assign_latency_seconds_count{trigger=\"", trigger, "\"}"));
  }
  EXPECT_EQ(observed, assigns);
  // The submission started the first tasks, the agents' results all the others.
  EXPECT_EQ(value("farm_assign_latency_seconds_count{trigger=\"submit\"}"), 3);
}

// Leases on a fake clock: nothing expires while the agent heartbeats or before the lease is
// over; one tick past it the task is LOST and its commit goes to the next agent. No sleeps.
TEST_F(CoordinatorTest, LeaseExpiresOnVirtualTime) {
  auto clock = std::make_shared<FakeClock>();
  CoordinatorOptions o = Options();
  o.clock = clock;
  o.lease = absl::Seconds(30);
  auto c = Coordinator::Create(o);
  ASSERT_TRUE(c.ok()) << c.status();
  FakeAgent a;
  a.Connect(**c, "silent");
  auto job = (*c)->SubmitBisect(Spec());
  ASSERT_TRUE(job.ok()) << job.status();
  a.Drain();
  ASSERT_EQ(a.running.size(), 1u);
  const std::string task = a.running.begin()->first;  // captured below: no structured binding
  const std::string commit = a.running.begin()->second;
  auto lost = [&] {
    auto st = (*c)->GetJob(job->job_id());
    EXPECT_TRUE(st.ok());
    for (const auto& t : st->finished()) {
      if (t.state() == v1::TASK_LOST && t.commit() == commit) return true;
    }
    return false;
  };
  // A heartbeat at 20 s renews the lease to 50 s.
  clock->Advance(absl::Seconds(20));
  v1::AgentMessage hb;
  hb.mutable_heartbeat()->add_running(task);
  (*c)->OnAgentMessage(a.session, hb);
  clock->Advance(absl::Seconds(29));  // 49 s: still leased
  (*c)->ExpireLeases();
  EXPECT_FALSE(lost());
  clock->Advance(absl::Seconds(2));  // 51 s: silent for 31 s
  (*c)->ExpireLeases();
  EXPECT_TRUE(lost());
  a.Drain();
  EXPECT_EQ(a.cancelled, std::vector<std::string>{task}) << "the stuck agent is told to stop";
  // The slot stays busy until the agent confirms; another agent gets the commit.
  FakeAgent b;
  b.Connect(**c, "b");
  b.Drain();
  ASSERT_EQ(b.running.size(), 1u);
  EXPECT_EQ(b.running.begin()->second, commit);
}

// Quarantine on a fake clock: an agent that fails gets no task for the quarantine's length, and
// gets one again as soon as it is over.
TEST_F(CoordinatorTest, QuarantineEndsOnVirtualTime) {
  auto clock = std::make_shared<FakeClock>();
  CoordinatorOptions o = Options();
  o.clock = clock;
  o.quarantine_after = 2;
  o.quarantine = absl::Minutes(10);
  o.lease = absl::Hours(1);
  auto c = Coordinator::Create(o);
  ASSERT_TRUE(c.ok()) << c.status();
  FakeAgent a;
  a.Connect(**c, "flaky-host");
  auto job = (*c)->SubmitBisect(Spec());
  ASSERT_TRUE(job.ok()) << job.status();
  auto fail = [&] {
    a.Drain();
    ASSERT_EQ(a.running.size(), 1u);
    v1::AgentMessage m;
    m.mutable_result()->set_task_id(a.running.begin()->first);
    m.mutable_result()->set_infra_error("disk on fire");
    (*c)->OnAgentMessage(a.session, m);
    a.running.clear();
  };
  fail();
  fail();  // the second error in a row quarantines it
  a.Drain();
  EXPECT_TRUE(a.running.empty()) << "a quarantined agent got a task";
  auto agents = (*c)->ListAgents();
  ASSERT_EQ(agents.size(), 1u);
  EXPECT_TRUE(agents[0].quarantined());
  EXPECT_DOUBLE_EQ(agents[0].quarantined_for_seconds(), 600);
  clock->Advance(absl::Minutes(10) - absl::Seconds(1));
  (*c)->ExpireLeases();
  a.Drain();
  EXPECT_TRUE(a.running.empty()) << "quarantine ended a second early";
  clock->Advance(absl::Seconds(1));
  (*c)->ExpireLeases();
  a.Drain();
  EXPECT_EQ(a.running.size(), 1u) << "the agent works again once the quarantine is over";
  EXPECT_FALSE((*c)->ListAgents()[0].quarantined());
}

// Drain: the agent is told, its running task finishes and counts, it gets nothing new until
// undrained (also after it reconnects).
TEST_F(CoordinatorTest, DrainedAgentFinishesItsTaskAndGetsNoNewOne) {
  auto c = Coordinator::Create(Options());
  ASSERT_TRUE(c.ok()) << c.status();
  FakeAgent a;
  a.Connect(**c, "a");
  auto job = (*c)->SubmitBisect(Spec());
  ASSERT_TRUE(job.ok()) << job.status();
  a.Drain();
  ASSERT_EQ(a.running.size(), 1u);
  EXPECT_EQ((*c)->DrainAgent("nobody", true).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE((*c)->DrainAgent("a", true).ok());
  a.Drain();
  EXPECT_EQ(a.drains, 1);
  EXPECT_TRUE(a.cancelled.empty()) << "drain must not cancel running tasks";
  auto [task, commit] = *a.running.begin();
  a.Report(**c, task, Truth(commit));
  a.Drain();
  EXPECT_TRUE(a.running.empty()) << "a drained agent got a new task";
  auto st = (*c)->GetJob(job->job_id());
  int verdicts = 0;
  for (const auto& t : st->finished()) verdicts += t.state() == v1::TASK_DONE;
  EXPECT_EQ(verdicts, 1) << "the running task's verdict counts";
  EXPECT_TRUE((*c)->ListAgents()[0].draining());
  // Reconnecting does not undrain it.
  a.Connect(**c, "a");
  a.Drain();
  EXPECT_EQ(a.drains, 2);
  EXPECT_TRUE(a.running.empty());
  ASSERT_TRUE((*c)->DrainAgent("a", false).ok());
  a.Drain();
  EXPECT_EQ(a.undrains, 1);
  EXPECT_EQ(a.running.size(), 1u) << "an undrained agent takes tasks again";
}

// Labels: a job that requires gpu=a100 runs only on the agent that has it; with no such agent
// connected its watchers are told, once, what it needs.
TEST_F(CoordinatorTest, RequiredLabelsChooseTheAgentOrSayWhatIsMissing) {
  auto c = Coordinator::Create(Options());
  ASSERT_TRUE(c.ok()) << c.status();
  FakeAgent plain;
  plain.Connect(**c, "plain", 2, {{"gpu", "none"}});
  v1::BisectSpec spec = Spec();
  (*spec.mutable_require())["gpu"] = "a100";
  auto job = (*c)->SubmitBisect(spec);
  ASSERT_TRUE(job.ok()) << job.status();
  std::vector<std::string> messages;
  auto watch =
      (*c)->Watch(job->job_id(), [&](const v1::JobEvent& ev) { messages.push_back(ev.message()); });
  ASSERT_TRUE(watch.ok());
  (*c)->ExpireLeases();
  (*c)->ExpireLeases();
  plain.Drain();
  EXPECT_TRUE(plain.running.empty()) << "an agent without the label got a task";
  int notes = 0;
  for (const std::string& m : messages) {
    if (absl::StrContains(m, "no connected agent has the labels this job requires (gpu=a100)")) {
      ++notes;
    }
  }
  EXPECT_EQ(notes, 1) << absl::StrJoin(messages, "\n");
  FakeAgent gpu;
  gpu.Connect(**c, "gpu-host", 1, {{"gpu", "a100"}});
  v1::JobStatus st = Finish(**c, job->job_id(), {&plain, &gpu});
  ASSERT_EQ(st.state(), v1::FOUND) << st.DebugString();
  EXPECT_EQ(st.first_bad(0), repo_.culprit);
  for (const auto& t : st.finished()) EXPECT_EQ(t.agent(), "gpu-host") << t.DebugString();
  (*c)->Unwatch(*watch);
}

TEST_F(CoordinatorTest, BadSubmissionsAreRejectedAndNotStored) {
  auto c = Coordinator::Create(Options());
  ASSERT_TRUE(c.ok());
  v1::BisectSpec s = Spec();
  s.set_bad("no-such-revision");
  auto r = (*c)->SubmitBisect(s);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound) << r.status();
  s = Spec();
  s.mutable_recipe()->clear_test_argv();
  r = (*c)->SubmitBisect(s);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("test_argv"), std::string::npos);
  s = Spec();
  s.set_good(0, repo_.bad);
  s.set_bad(repo_.root);
  r = (*c)->SubmitBisect(s);
  EXPECT_NE(r.status().message().find("did you swap them?"), std::string::npos) << r.status();
  s = Spec();
  s.set_term_old("same");
  s.set_term_new("same");
  r = (*c)->SubmitBisect(s);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  auto jobs = (*c)->ListJobs(10);
  ASSERT_TRUE(jobs.ok());
  EXPECT_TRUE(jobs->empty());
}

// Whether the goods are ancestors of bad comes from loading the graph (no walk of its own): a good
// on another branch is still refused, in the names the user gave; a good hidden behind another
// good (not on the range's boundary, so the load cannot tell) is still accepted.
TEST_F(CoordinatorTest, GoodsThatAreNotAncestorsOfBadAreRefusedByName) {
  auto c = Coordinator::Create(Options());
  ASSERT_TRUE(c.ok());
  const std::string git = absl::StrCat("git -C ", Quote(repo_.path), " ");
  farm::testing::CommandResult side =
      Sh(git + "commit-tree -p " + repo_.root + " -m side " + repo_.root + "^{tree}");
  ASSERT_EQ(side.exit_code, 0) << side.output;
  const std::string side_sha(absl::StripTrailingAsciiWhitespace(side.output));
  ASSERT_EQ(Sh(git + "update-ref refs/heads/side " + side_sha).exit_code, 0);
  v1::BisectSpec s = Spec();
  s.set_good(0, "side");
  auto r = (*c)->SubmitBisect(s);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(), "good commit side ("));
  EXPECT_TRUE(absl::StrContains(r.status().message(), "diverging branches")) << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(), "git merge-base side ")) << r.status();

  farm::testing::CommandResult mid = Sh(git + "rev-list --first-parent --skip 3 -1 " + repo_.bad);
  ASSERT_EQ(mid.exit_code, 0) << mid.output;
  s = Spec();
  s.add_good(std::string(absl::StripTrailingAsciiWhitespace(mid.output)));  // root is behind it
  r = (*c)->SubmitBisect(s);
  EXPECT_TRUE(r.ok()) << r.status();
}

// Only the agent a task was given to may report it: a result from another agent counts nothing,
// ends nothing and frees no slot; the owner's own result then counts.
TEST_F(CoordinatorTest, ResultFromTheWrongAgentIsIgnored) {
  auto c = Coordinator::Create(Options());
  ASSERT_TRUE(c.ok()) << c.status();
  FakeAgent owner, other;
  const std::string job = SubmitTo(**c, {{&owner, "owner"}, {&other, "other"}});
  ASSERT_EQ(owner.running.size(), 1u);
  auto [task, commit] = *owner.running.begin();
  // `other` lies about the owner's task, with the opposite of the truth.
  v1::AgentMessage forged;
  forged.mutable_result()->set_task_id(task);
  forged.mutable_result()->set_verdict(Truth(commit) == v1::BAD ? v1::GOOD : v1::BAD);
  (*c)->OnAgentMessage(other.session, forged);
  auto st = (*c)->GetJob(job);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->finished_size(), 0) << st->DebugString();
  EXPECT_TRUE(Has(st->running(), commit, "owner")) << st->DebugString();
  owner.Drain();
  EXPECT_EQ(owner.running.size(), 1u) << "the owner's slot was not freed by another's result";
  owner.Report(**c, task, Truth(commit));
  st = (*c)->GetJob(job);
  ASSERT_TRUE(st.ok());
  int counted = 0;
  for (const auto& t : st->finished()) {
    counted += t.commit() == commit && t.agent() == "owner" && t.state() == v1::TASK_DONE;
  }
  EXPECT_EQ(counted, 1) << st->DebugString();
  v1::JobStatus end = Finish(**c, job, {&owner, &other});
  ASSERT_EQ(end.state(), v1::FOUND) << end.DebugString();
  EXPECT_EQ(end.first_bad(0), repo_.culprit);
}

// An agent whose stream broke comes back listing the task it still runs: the coordinator keeps
// that task on it (no Cancel, no second agent on the commit) and counts its result.
TEST_F(CoordinatorTest, ReconnectingAgentKeepsItsRunningTask) {
  auto c = Coordinator::Create(Options());
  ASSERT_TRUE(c.ok()) << c.status();
  FakeAgent a;
  const std::string job = SubmitTo(**c, {{&a, "a"}});
  ASSERT_EQ(a.running.size(), 1u);
  auto [task, commit] = *a.running.begin();
  (*c)->Disconnect(a.session);
  v1::Hello again;
  again.set_agent_id("a");
  again.set_slots(1);
  again.add_running(task);
  auto s = (*c)->Connect(again, a.channel);
  ASSERT_TRUE(s.ok()) << s.status();
  a.session = *s;
  // A second agent must not be given the re-adopted commit.
  FakeAgent b;
  b.Connect(**c, "b");
  b.Drain();
  for (const auto& [t, cm] : b.running) EXPECT_NE(cm, commit) << "re-adopted commit given twice";
  a.Drain();
  EXPECT_TRUE(a.cancelled.empty()) << "the re-adopted task was cancelled";
  EXPECT_EQ(a.running.size(), 1u) << "a 1-slot agent got a second task";
  auto st = (*c)->GetJob(job);
  ASSERT_TRUE(st.ok());
  EXPECT_TRUE(Has(st->running(), commit, "a")) << st->DebugString();
  a.Report(**c, task, Truth(commit));
  st = (*c)->GetJob(job);
  ASSERT_TRUE(st.ok());
  EXPECT_TRUE(Has(st->finished(), commit, "a")) << st->DebugString();
}

// Two jobs and two 1-slot agents: the second job gets a slot as soon as one frees, instead of
// waiting for the first job to end (max-min fair share).
TEST_F(CoordinatorTest, SecondJobGetsItsShareOfTheAgents) {
  auto c = Coordinator::Create(Options());
  ASSERT_TRUE(c.ok()) << c.status();
  FakeAgent a1, a2;
  const std::string first = SubmitTo(**c, {{&a1, "a1"}, {&a2, "a2"}});
  ASSERT_EQ(a1.running.size() + a2.running.size(), 2u) << "the first job takes both idle agents";
  auto second = (*c)->SubmitBisect(Spec());
  ASSERT_TRUE(second.ok()) << second.status();
  // a1 finishes its task: the freed slot goes to the second job, which has none.
  auto [task, commit] = *a1.running.begin();
  a1.Report(**c, task, Truth(commit));
  a1.Drain();
  a2.Drain();
  auto st = (*c)->GetJob(second->job_id());
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->running_size(), 1) << st->DebugString();
  v1::JobStatus end1 = Finish(**c, first, {&a1, &a2});
  v1::JobStatus end2 = Finish(**c, second->job_id(), {&a1, &a2});
  EXPECT_EQ(end1.state(), v1::FOUND);
  EXPECT_EQ(end2.state(), v1::FOUND);
}

// --retention-days: an ended job is kept for the retention, then deleted (the store and the
// coordinator forget it); a running job is never deleted.
TEST_F(CoordinatorTest, RetentionDeletesEndedJobsAfterItsTime) {
  // Starts at the real time: the store stamps a job's end with SQLite's clock, not the injected
  // one.
  auto clock = std::make_shared<FakeClock>(absl::Now());
  CoordinatorOptions o = Options();
  o.clock = clock;
  o.retention = absl::Hours(24 * 2);
  auto c = Coordinator::Create(o);
  ASSERT_TRUE(c.ok()) << c.status();
  auto ended = (*c)->SubmitBisect(Spec());
  ASSERT_TRUE(ended.ok()) << ended.status();
  ASSERT_TRUE((*c)->CancelJob(ended->job_id()).ok());
  auto running = (*c)->SubmitBisect(Spec());
  ASSERT_TRUE(running.ok()) << running.status();
  clock->Advance(absl::Hours(24 * 2) - absl::Hours(2));
  (*c)->ExpireLeases();
  EXPECT_TRUE((*c)->GetJob(ended->job_id()).ok()) << "deleted before its retention ended";
  clock->Advance(absl::Hours(3));
  (*c)->ExpireLeases();
  EXPECT_TRUE(absl::IsNotFound((*c)->GetJob(ended->job_id()).status()))
      << "kept after its retention ended";
  auto st = (*c)->GetJob(running->job_id());
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->state(), v1::RUNNING);
  // A restart on the same database does not bring it back.
  c->reset();
  auto again = Coordinator::Create(o);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(absl::IsNotFound((*again)->GetJob(ended->job_id()).status()));
  EXPECT_TRUE((*again)->GetJob(running->job_id()).ok());
}

// A job's end is stamped with the coordinator's clock, as its creation is, so retention (and any
// duration between the two) uses one clock: with a clock 25 years behind SQLite's, the ended job
// is still deleted once its retention has passed on that clock, and the store holds the end time
// the clock gave.
TEST_F(CoordinatorTest, AJobsEndIsStampedWithTheCoordinatorsClock) {
  const absl::Time start = absl::FromUnixSeconds(1000000000);  // September 2001
  auto clock = std::make_shared<FakeClock>(start);
  CoordinatorOptions o = Options();
  o.clock = clock;
  o.retention = absl::Hours(24);
  auto c = Coordinator::Create(o);
  ASSERT_TRUE(c.ok()) << c.status();
  auto job = (*c)->SubmitBisect(Spec());
  ASSERT_TRUE(job.ok()) << job.status();
  clock->Advance(absl::Minutes(5));
  ASSERT_TRUE((*c)->CancelJob(job->job_id()).ok());
  {
    auto store = Store::Open(o.db_path);
    ASSERT_TRUE(store.ok()) << store.status();
    auto rows = (*store)->LoadJobs(false);
    ASSERT_TRUE(rows.ok()) << rows.status();
    ASSERT_EQ(rows->size(), 1u);
    EXPECT_EQ((*rows)[0].created_unix, absl::ToUnixSeconds(start));
    EXPECT_EQ((*rows)[0].ended_unix, absl::ToUnixSeconds(start + absl::Minutes(5)));
  }
  clock->Advance(absl::Hours(23));
  (*c)->ExpireLeases();
  EXPECT_TRUE((*c)->GetJob(job->job_id()).ok()) << "deleted before its retention ended";
  clock->Advance(absl::Hours(2));
  (*c)->ExpireLeases();
  EXPECT_TRUE(absl::IsNotFound((*c)->GetJob(job->job_id()).status()))
      << "kept after its retention ended";
}

// A coordinator on a new database in `dir`.
std::unique_ptr<Coordinator> MatrixCoordinator(const std::string& dir) {
  CoordinatorOptions o;
  o.db_path = dir + "/farm.db";
  o.cache_dir = dir + "/cache";
  auto c = Coordinator::Create(o);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? std::move(*c) : nullptr;
}

// Connects a 1-slot kexec agent `id` (with `capabilities` besides kexec=1); its session id.
uint64_t ConnectKexecAgent(Coordinator& c, const std::string& id,
                           std::shared_ptr<FakeChannel> channel,
                           const std::map<std::string, std::string>& capabilities = {}) {
  v1::Hello h;
  h.set_agent_id(id);
  h.set_slots(1);
  (*h.mutable_capabilities())["kexec"] = "1";
  for (const auto& [k, v] : capabilities) (*h.mutable_capabilities())[k] = v;
  auto s = c.Connect(h, std::move(channel));
  EXPECT_TRUE(s.ok()) << s.status();
  return s.value_or(0);
}

// The matrix job of `cells`, testing with `true`.
v1::BisectSpec MatrixJob(const MatrixCells& cells) {
  v1::BisectSpec spec;
  spec.set_repo(cells.path);
  spec.add_good(cells.root);
  spec.set_bad(cells.last);
  spec.mutable_recipe()->add_test_argv("true");
  *spec.mutable_matrix() = cells.matrix;
  return spec;
}

// A matrix job: every Assign carries the host kernel of its cell (for the kexec agent), no agent
// is sent back to a host kernel it left, and the job ends COMPLETE with the table.
TEST(MatrixDispatch, AssignsCarryTheHostKernelAndAgentsStayOnTheirHost) {
  std::string dir = MakeTempDir("matrix-dispatch");
  std::vector<std::string> hosts, guests;
  for (int i = 0; i < 3; ++i) {
    hosts.push_back(absl::StrCat(dir, "/host-", i));
    ::farm::testing::WriteScript(hosts.back(), absl::StrCat("host ", i, "\n"));
    guests.push_back(absl::StrCat(dir, "/guest-", i));
    ::farm::testing::WriteScript(guests.back(), absl::StrCat("guest ", i, "\n"));
  }
  absl::StatusOr<MatrixCells> cells = MakeMatrixCells(hosts, guests, dir + "/cells.git");
  ASSERT_TRUE(cells.ok()) << cells.status();
  std::map<std::string, int> host_of;  // cell commit -> host index
  for (int i = 0; i < cells->matrix.cells_size(); ++i) host_of[cells->matrix.cells(i)] = i / 3;

  std::unique_ptr<Coordinator> c = MatrixCoordinator(dir);
  ASSERT_NE(c, nullptr);
  std::map<std::string, std::shared_ptr<FakeChannel>> channels;
  std::map<std::string, uint64_t> sessions;
  for (const std::string id : {"a", "b"}) {
    channels[id] = std::make_shared<FakeChannel>();
    sessions[id] = ConnectKexecAgent(*c, id, channels[id]);
  }
  auto job = c->SubmitBisect(MatrixJob(*cells));
  ASSERT_TRUE(job.ok()) << job.status();

  std::map<std::string, std::vector<int>> hosts_run;  // agent -> host index of each Assign
  int assigns = 0;
  for (int guard = 0; guard < 100; ++guard) {
    bool any = false;
    for (const std::string id : {"a", "b"}) {
      for (const v1::CoordinatorMessage& m : channels[id]->Take()) {
        if (!m.has_assign()) continue;
        ++assigns;
        any = true;
        const v1::Assign& a = m.assign();
        ASSERT_TRUE(host_of.count(a.commit())) << a.commit();
        int h = host_of[a.commit()];
        EXPECT_EQ(a.host_kernel().key(), cells->matrix.hosts(h).key()) << a.DebugString();
        EXPECT_EQ(a.host_kernel().image(), cells->matrix.hosts(h).image());
        hosts_run[id].push_back(h);
        v1::AgentMessage r;
        r.mutable_result()->set_task_id(a.task_id());
        r.mutable_result()->set_verdict(h == 2 ? v1::BAD : v1::GOOD);
        c->OnAgentMessage(sessions[id], r);
      }
    }
    if (!any) break;
  }
  EXPECT_EQ(assigns, 9);
  int kexecs = 0, distinct = 0;
  for (const auto& [agent, seq] : hosts_run) {
    std::set<int> seen;
    for (size_t i = 0; i < seq.size(); ++i) {
      if (i > 0 && seq[i] == seq[i - 1]) continue;
      ++kexecs;
      EXPECT_TRUE(seen.insert(seq[i]).second) << agent << " was sent back to host " << seq[i];
    }
    distinct += static_cast<int>(seen.size());
  }
  EXPECT_EQ(kexecs, distinct);
  EXPECT_LE(kexecs, 4) << "3 host kernels on 2 agents";
  auto st = c->GetJob(job->job_id());
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->state(), v1::COMPLETE) << st->DebugString();
  EXPECT_TRUE(absl::StrContains(st->report(), "host-2        bad      bad      bad\n"))
      << st->report();
}

// A kexec agent's Hello names the host kernel its machine runs (after a reconnect, or a
// coordinator restart, the coordinator has not assigned it one): that kernel's cells go to it,
// whichever of the two hosts it is (without the Hello's key, one of the two would go wrong).
TEST(MatrixDispatch, HelloNamesTheHostKernelTheAgentRuns) {
  for (int on : {0, 1}) {
    SCOPED_TRACE(absl::StrCat("the agent runs host ", on));
    std::string dir = MakeTempDir(absl::StrCat("matrix-hello-", on));
    std::vector<std::string> hosts;
    for (int i = 0; i < 2; ++i) {
      hosts.push_back(absl::StrCat(dir, "/host-", i));
      ::farm::testing::WriteScript(hosts.back(), absl::StrCat("host ", i, "\n"));
    }
    absl::StatusOr<MatrixCells> cells = MakeMatrixCells(hosts, {}, dir + "/cells.git");
    ASSERT_TRUE(cells.ok()) << cells.status();
    std::unique_ptr<Coordinator> c = MatrixCoordinator(dir);
    ASSERT_NE(c, nullptr);
    // "fresh" connects first and runs its default kernel; "on" already runs host `on`.
    std::map<std::string, std::shared_ptr<FakeChannel>> channels = {
        {"fresh", std::make_shared<FakeChannel>()}, {"on", std::make_shared<FakeChannel>()}};
    ConnectKexecAgent(*c, "fresh", channels["fresh"]);
    ConnectKexecAgent(*c, "on", channels["on"],
                      {{spec::kHostKernelKeyCapability, cells->matrix.hosts(on).key()}});
    ASSERT_TRUE(c->SubmitBisect(MatrixJob(*cells)).ok());
    for (const auto& [id, want] : {std::pair<std::string, int>{"on", on}, {"fresh", 1 - on}}) {
      std::vector<v1::Assign> got;
      for (const v1::CoordinatorMessage& m : channels[id]->Take()) {
        if (m.has_assign()) got.push_back(m.assign());
      }
      ASSERT_EQ(got.size(), 1u) << id;
      EXPECT_EQ(got[0].host_kernel().key(), cells->matrix.hosts(want).key())
          << id << " got the cell of another host kernel than the one it runs";
    }
  }
}

}  // namespace
}  // namespace farm
