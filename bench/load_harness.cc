#include "bench/load_harness.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <queue>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/log/log.h"
#include "coordinator/metrics/metrics.h"
#include "coordinator/service/service.h"
#include "farm/v1/farm.grpc.pb.h"
#include "httplib.h"
#include "tests/fuzz/fuzz_env.h"

extern char** environ;

namespace farm::load {
namespace {

namespace v1 = farm::v1;
using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// ------------------------------------------------------------------------------------------------
// The coordinator: a child process (farm-coordinator) or a CoordinatorServer in this process.

struct ProcStats {
  double user_s = 0, sys_s = 0;
  int64_t rss_kb = 0, hwm_kb = 0;
  int threads = 0;
};

ProcStats ReadProc(pid_t pid) {
  ProcStats s;
  std::string base = pid == 0 ? "/proc/self" : absl::StrCat("/proc/", pid);
  std::ifstream status(base + "/status");
  std::string line;
  while (std::getline(status, line)) {
    auto field = [&](const char* name, int64_t* out) {
      if (absl::StartsWith(line, name)) {
        std::string v(absl::StripAsciiWhitespace(line.substr(strlen(name))));
        v = v.substr(0, v.find(' '));
        (void)absl::SimpleAtoi(v, out);
      }
    };
    int64_t threads = -1;
    field("VmRSS:", &s.rss_kb);
    field("VmHWM:", &s.hwm_kb);
    field("Threads:", &threads);
    if (threads >= 0) s.threads = static_cast<int>(threads);
  }
  std::ifstream stat(base + "/stat");
  std::string all((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  size_t paren = all.rfind(')');
  if (paren != std::string::npos) {
    std::vector<std::string> f = absl::StrSplit(all.substr(paren + 2), ' ');
    // Fields after "(comm) ": state is [0]; utime is field 14 overall -> [11], stime [12].
    if (f.size() > 12) {
      double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
      int64_t ut = 0, st = 0;
      (void)absl::SimpleAtoi(f[11], &ut);
      (void)absl::SimpleAtoi(f[12], &st);
      s.user_s = ut / tick;
      s.sys_s = st / tick;
    }
  }
  return s;
}

// "exited 3", "killed by signal 11 (Segmentation fault)".
std::string Describe(int wait_status) {
  if (WIFSIGNALED(wait_status)) {
    return absl::StrCat("killed by signal ", WTERMSIG(wait_status), " (",
                        strsignal(WTERMSIG(wait_status)), ")");
  }
  return absl::StrCat("exited ", WEXITSTATUS(wait_status));
}

class CoordinatorProcess {
 public:
  ~CoordinatorProcess() { Stop(); }

  absl::Status Start(const std::string& binary, const std::string& dir) {
    log_ = dir + "/coordinator.log";
    std::vector<std::string> args = {binary,        "--listen",          "127.0.0.1:0",
                                     "--db",        dir + "/farm.db",    "--metrics-listen",
                                     "127.0.0.1:0", "--public-dashboard"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    int rc = posix_spawn(&pid_, binary.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      pid_ = -1;
      return absl::FailedPreconditionError(
          absl::StrCat("cannot run ", binary, ": ", strerror(rc), " (build farm-coordinator)"));
    }
    for (int i = 0; i < 600; ++i) {
      std::ifstream in(log_);
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      size_t at = text.find("listening on ");
      if (at != std::string::npos && text.find('\n', at) != std::string::npos) {
        std::string rest = text.substr(at + strlen("listening on "));
        address_ = rest.substr(0, rest.find_first_of(" \n"));
        size_t m = text.find("metrics at http://");
        if (m == std::string::npos || text.find('\n', m) == std::string::npos) continue;
        std::string mrest = text.substr(m + strlen("metrics at http://"));
        metrics_address_ = mrest.substr(0, mrest.find('/'));
        return absl::OkStatus();
      }
      int st;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        // A coordinator that dies before it listens is a failure of the run, not a missing tool.
        return absl::InternalError(absl::StrCat("farm-coordinator ", Describe(st),
                                                " during start-up; its output: ", text));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return absl::DeadlineExceededError("farm-coordinator did not say where it listens in 30 s");
  }

  // SIGTERM, then the rusage of the whole life of the process. Returns how it ended when that was
  // not the clean exit SIGTERM asks for ("killed by signal 11", "exited 1 before it was asked
  // to stop"), empty otherwise.
  std::string Stop(struct rusage* usage = nullptr) {
    if (pid_ <= 0) return "";
    int st = 0;
    struct rusage ru {};
    std::string crash;
    if (wait4(pid_, &st, WNOHANG, &ru) == pid_) {
      crash = absl::StrCat(Describe(st), " before the harness stopped it");
    } else {
      kill(pid_, SIGTERM);
      for (int i = 0; i < 100; ++i) {
        pid_t r = wait4(pid_, &st, WNOHANG, &ru);
        if (r == pid_) break;
        if (i == 99) {
          kill(pid_, SIGKILL);
          wait4(pid_, &st, 0, &ru);
          crash = "ignored SIGTERM for 5 s (killed)";
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      if (crash.empty() && !(WIFEXITED(st) && WEXITSTATUS(st) == 0) &&
          !(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM)) {
        crash = absl::StrCat(Describe(st), " on SIGTERM");
      }
    }
    if (usage != nullptr) *usage = ru;
    pid_ = -1;
    return crash;
  }

  pid_t pid() const { return pid_; }
  const std::string& address() const { return address_; }
  const std::string& metrics_address() const { return metrics_address_; }
  const std::string& log() const { return log_; }

 private:
  pid_t pid_ = -1;
  std::string address_;
  std::string metrics_address_;
  std::string log_;
};

// ------------------------------------------------------------------------------------------------
// Shared state of a run.

struct SentResult {
  std::string task_id;
  std::string job_id;
  v1::Verdict verdict;
};

class Harness;

// A simulated agent: one AgentLink.Connect stream on the callback API. Writes are queued and go
// out one at a time; a hold keeps the stream alive for writes started by the timer thread.
class SimAgent : public grpc::ClientBidiReactor<v1::AgentMessage, v1::CoordinatorMessage> {
 public:
  SimAgent(Harness* h, int index, std::string id, uint32_t slots)
      : h_(h), index_(index), id_(std::move(id)), slots_(slots), rng_(index * 7919 + 1) {}

  void Start(v1::AgentLink::Stub* stub);
  // Ends the stream (TryCancel); OnDone follows.
  void Close() { ctx_.TryCancel(); }
  // Sends the result of `task_id` unless it was cancelled meanwhile. Called by the timer thread.
  void Finish(const std::string& task_id);
  void Heartbeat();

  bool welcomed() const { return welcomed_.load(); }
  bool done() const { return done_.load(); }
  const grpc::Status& final_status() const { return final_status_; }
  bool closed_by_harness() const { return closed_by_harness_.load(); }
  void set_closed_by_harness() { closed_by_harness_ = true; }
  const std::string& id() const { return id_; }
  int heartbeat_seconds() const { return heartbeat_seconds_.load(); }

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone(const grpc::Status& s) override;

 private:
  struct Running {
    std::string job_id;
    std::string commit;
    std::string repo;
  };
  void Enqueue(v1::AgentMessage msg);  // takes mu_
  void MaybeWriteLocked();
  void ReleaseHoldLocked();

  Harness* const h_;
  const int index_;
  const std::string id_;
  const uint32_t slots_;
  grpc::ClientContext ctx_;
  v1::CoordinatorMessage in_;

  std::mutex mu_;
  std::mt19937 rng_;
  std::deque<v1::AgentMessage> out_;
  bool writing_ = false;
  bool closing_ = false;
  bool hold_released_ = false;
  std::map<std::string, Running> running_;
  std::atomic<bool> welcomed_{false};
  std::atomic<bool> done_{false};
  std::atomic<bool> closed_by_harness_{false};
  std::atomic<int> heartbeat_seconds_{5};
  grpc::Status final_status_;
};

// Watches one job to its end.
class Watcher : public grpc::ClientReadReactor<v1::JobEvent> {
 public:
  Watcher(Harness* h, std::string job_id) : h_(h), job_id_(std::move(job_id)) {}
  void Start(v1::Farm::Stub* stub) {
    req_.set_job_id(job_id_);
    stub->async()->WatchJob(&ctx_, &req_, this);
    StartRead(&ev_);
    StartCall();
  }
  void Close() { ctx_.TryCancel(); }
  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& s) override;

  bool done() const { return done_.load(); }
  bool saw_terminal() const { return saw_terminal_.load(); }
  const grpc::Status& final_status() const { return final_status_; }
  const std::string& job_id() const { return job_id_; }

 private:
  Harness* const h_;
  const std::string job_id_;
  grpc::ClientContext ctx_;
  v1::WatchJobRequest req_;
  v1::JobEvent ev_;
  std::atomic<bool> done_{false};
  std::atomic<bool> saw_terminal_{false};
  grpc::Status final_status_;
};

class Harness {
 public:
  explicit Harness(const LoadOptions& o) : o_(o) {}
  ~Harness();

  absl::StatusOr<LoadReport> Run();

  // Called by agents and watchers (any thread).
  const farm::fuzz::TruthRepo* RepoByPath(const std::string& path) const {
    auto it = repo_by_path_.find(path);
    return it == repo_by_path_.end() ? nullptr : &repos_[it->second];
  }
  void OnAssign(const SimAgent& agent, const v1::Assign& a, Clock::time_point now);
  void OnResultSent(const SimAgent& agent, const std::string& task_id, const std::string& job_id,
                    const std::string& commit, v1::Verdict verdict, bool cancelled,
                    Clock::time_point now);
  void OnWatchEvent(const std::string& job_id, const v1::JobEvent& ev);
  // Under wait_mu_, so that a waiter between its check and its wait cannot miss the wake-up.
  void OnWatchDone() {
    std::lock_guard<std::mutex> lock(wait_mu_);
    watch_cv_.notify_all();
  }
  void OnWelcome() {
    std::lock_guard<std::mutex> lock(wait_mu_);
    welcome_cv_.notify_all();
  }
  void ScheduleFinish(SimAgent* agent, const std::string& task_id, Clock::duration after);
  absl::Duration RandomTestTime(std::mt19937& rng) const {
    int64_t lo = absl::ToInt64Microseconds(o_.test_min),
            hi = absl::ToInt64Microseconds(o_.test_max);
    if (hi <= lo) return o_.test_min;
    return absl::Microseconds(std::uniform_int_distribution<int64_t>(lo, hi)(rng));
  }

 private:
  struct Timer {
    Clock::time_point due;
    SimAgent* agent;
    std::string task_id;
    bool operator>(const Timer& o) const { return due > o.due; }
  };
  struct JobTrack {
    int repo = -1;
    std::vector<std::string> events;  // the watch stream's messages, in order
    v1::JobState state = v1::RUNNING;
  };

  absl::Status MakeRepos();
  absl::Status StartCoordinator();
  absl::Status ConnectAgents();
  void TimerLoop();
  void SubmitAll();
  // Reads the dashboard's job list and job pages until `stop`, as a browser polling them would.
  void ProbeDashboard(const std::atomic<bool>& stop);
  void Verify(LoadReport& r);
  void PairVerdictsWithAssigns(LoadReport& r);
  void SendHook(const std::string& job_id);

  const LoadOptions o_;
  std::string dir_;
  std::vector<farm::fuzz::TruthRepo> repos_;
  std::unordered_map<std::string, int> repo_by_path_;

  CoordinatorProcess child_;
  std::unique_ptr<CoordinatorServer> server_;
  std::string address_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<v1::AgentLink::Stub>> link_stubs_;
  std::shared_ptr<grpc::Channel> client_channel_;
  std::unique_ptr<v1::Farm::Stub> farm_stub_;
  std::vector<std::unique_ptr<SimAgent>> agents_;
  std::mutex watchers_mu_;
  std::vector<std::unique_ptr<Watcher>> watchers_;
  std::condition_variable watch_cv_;
  std::condition_variable welcome_cv_;
  std::mutex wait_mu_;

  std::mutex timer_mu_;
  std::condition_variable timer_cv_;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;
  bool timer_stop_ = false;
  std::thread timer_thread_;

  // Metrics, under mu_.
  std::mutex mu_;
  LoadReport report_;
  std::map<std::string, JobTrack> jobs_;  // by job id
  std::map<std::string, int> job_repo_;   // job id -> repository index
  std::set<std::string> assigned_ids_;
  std::vector<SentResult> sent_;
  std::unordered_map<std::string, Clock::time_point> refill_since_;  // agent id -> last result
  // "<job> <agent> <sha12>" -> when the agent sent its verdict / received the Assign.
  std::unordered_map<std::string, Clock::time_point> verdict_sent_at_;
  std::unordered_map<std::string, Clock::time_point> received_at_;
  // In-process: when the coordinator sent "testing <sha12> on <agent>".
  std::unordered_map<std::string, Clock::time_point> sent_at_;
  std::vector<uint64_t> hook_ids_;
};

// ------------------------------------------------------------------------------------------------
// SimAgent

void SimAgent::Start(v1::AgentLink::Stub* stub) {
  stub->async()->Connect(&ctx_, this);
  v1::AgentMessage hello;
  hello.mutable_hello()->set_agent_id(id_);
  hello.mutable_hello()->set_hostname(absl::StrCat("sim-", index_));
  hello.mutable_hello()->set_slots(slots_);
  (*hello.mutable_hello()->mutable_capabilities())["sim"] = "1";
  AddHold();
  {
    std::lock_guard<std::mutex> lock(mu_);
    out_.push_back(std::move(hello));
    writing_ = true;
    StartWrite(&out_.front());
  }
  StartRead(&in_);
  StartCall();
}

void SimAgent::Enqueue(v1::AgentMessage msg) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closing_) return;
  out_.push_back(std::move(msg));
  MaybeWriteLocked();
}

void SimAgent::MaybeWriteLocked() {
  if (writing_ || out_.empty() || closing_) return;
  writing_ = true;
  StartWrite(&out_.front());
}

void SimAgent::ReleaseHoldLocked() {
  closing_ = true;
  if (!hold_released_ && !writing_) {
    hold_released_ = true;
    RemoveHold();
  }
}

void SimAgent::OnWriteDone(bool ok) {
  std::lock_guard<std::mutex> lock(mu_);
  writing_ = false;
  out_.pop_front();
  if (!ok) closing_ = true;
  if (closing_) {
    ReleaseHoldLocked();
    return;
  }
  MaybeWriteLocked();
}

void SimAgent::OnReadDone(bool ok) {
  if (!ok) {
    std::lock_guard<std::mutex> lock(mu_);
    ReleaseHoldLocked();
    return;
  }
  const Clock::time_point now = Clock::now();
  switch (in_.kind_case()) {
    case v1::CoordinatorMessage::kWelcome:
      heartbeat_seconds_ = std::max<int>(1, in_.welcome().heartbeat_seconds());
      welcomed_ = true;
      h_->OnWelcome();
      break;
    case v1::CoordinatorMessage::kAssign: {
      const v1::Assign& a = in_.assign();
      h_->OnAssign(*this, a, now);
      absl::Duration test;
      {
        std::lock_guard<std::mutex> lock(mu_);
        running_[a.task_id()] = Running{a.job_id(), a.commit(), a.repo()};
        test = h_->RandomTestTime(rng_);
      }
      if (test <= absl::ZeroDuration()) {
        Finish(a.task_id());
      } else {
        h_->ScheduleFinish(this, a.task_id(), absl::ToChronoNanoseconds(test));
      }
      break;
    }
    case v1::CoordinatorMessage::kCancel: {
      std::string job_id;
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = running_.find(in_.cancel().task_id());
        if (it == running_.end()) break;  // already answered
        job_id = it->second.job_id;
        running_.erase(it);
      }
      v1::AgentMessage m;
      m.mutable_result()->set_task_id(in_.cancel().task_id());
      m.mutable_result()->set_cancelled(true);
      m.mutable_result()->set_detail("cancelled");
      h_->OnResultSent(*this, in_.cancel().task_id(), job_id, "", v1::VERDICT_UNSPECIFIED, true,
                       now);
      Enqueue(std::move(m));
      break;
    }
    default:
      break;
  }
  StartRead(&in_);
}

void SimAgent::Finish(const std::string& task_id) {
  Running r;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = running_.find(task_id);
    if (it == running_.end()) return;  // cancelled meanwhile
    r = it->second;
    running_.erase(it);
  }
  const farm::fuzz::TruthRepo* repo = h_->RepoByPath(r.repo);
  int truth = repo ? farm::fuzz::Truth(*repo, r.commit) : 125;
  v1::Verdict v = truth == 0 ? v1::GOOD : truth == 1 ? v1::BAD : v1::SKIP;
  v1::AgentMessage m;
  v1::TaskResult* res = m.mutable_result();
  res->set_task_id(task_id);
  res->set_verdict(v);
  res->set_detail(truth == 0 ? "exit 0" : truth == 1 ? "exit 1" : "exit 125");
  res->set_test_seconds(0.1);
  h_->OnResultSent(*this, task_id, r.job_id, r.commit, v, false, Clock::now());
  Enqueue(std::move(m));
}

void SimAgent::Heartbeat() {
  v1::AgentMessage m;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closing_) return;
    for (auto& [id, r] : running_) m.mutable_heartbeat()->add_running(id);
  }
  m.mutable_heartbeat();
  Enqueue(std::move(m));
}

void SimAgent::OnDone(const grpc::Status& s) {
  final_status_ = s;
  done_ = true;
  h_->OnWatchDone();
}

// ------------------------------------------------------------------------------------------------
// Watcher

void Watcher::OnReadDone(bool ok) {
  if (!ok) return;  // OnDone follows
  h_->OnWatchEvent(job_id_, ev_);
  if (ev_.status().state() != v1::RUNNING) saw_terminal_ = true;
  StartRead(&ev_);
}

void Watcher::OnDone(const grpc::Status& s) {
  final_status_ = s;
  done_ = true;
  h_->OnWatchDone();
}

// ------------------------------------------------------------------------------------------------
// Harness

Harness::~Harness() {
  {
    std::lock_guard<std::mutex> lock(timer_mu_);
    timer_stop_ = true;
  }
  timer_cv_.notify_all();
  if (timer_thread_.joinable()) timer_thread_.join();
  for (auto& a : agents_) {
    if (!a->done()) a->Close();
  }
  for (auto& w : watchers_) {
    if (!w->done()) w->Close();
  }
  for (int i = 0; i < 200; ++i) {
    bool all = true;
    for (auto& a : agents_) all &= a->done();
    for (auto& w : watchers_) all &= w->done();
    if (all) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (server_) server_->Shutdown(absl::Seconds(1));
}

void Harness::OnAssign(const SimAgent& agent, const v1::Assign& a, Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mu_);
  report_.assigns++;
  if (!assigned_ids_.insert(a.task_id()).second) {
    report_.duplicate_task_ids++;
    if (report_.problems.size() < 20) {
      report_.problems.push_back(absl::StrCat("task id ", a.task_id(), " assigned twice"));
    }
  }
  received_at_[absl::StrCat(a.job_id(), " ", agent.id(), " ", a.commit().substr(0, 12))] = now;
  auto r = refill_since_.find(agent.id());
  if (r != refill_since_.end()) {
    report_.result_to_refill.ms.push_back(Ms(now - r->second));
    refill_since_.erase(r);
  }
  if (o_.mode == LoadOptions::Mode::kInProcess) {
    auto s = sent_at_.find(absl::StrCat(agent.id(), " ", a.commit().substr(0, 12)));
    if (s != sent_at_.end()) {
      report_.assign_delivery.ms.push_back(Ms(now - s->second));
      sent_at_.erase(s);
    }
  }
}

void Harness::OnResultSent(const SimAgent& agent, const std::string& task_id,
                           const std::string& job_id, const std::string& commit,
                           v1::Verdict verdict, bool cancelled, Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mu_);
  refill_since_[agent.id()] = now;
  if (cancelled) {
    report_.cancel_confirmations++;
    return;
  }
  report_.results_sent++;
  sent_.push_back(SentResult{task_id, job_id, verdict});
  verdict_sent_at_[absl::StrCat(job_id, " ", agent.id(), " ", commit.substr(0, 12))] = now;
}

void Harness::OnWatchEvent(const std::string& job_id, const v1::JobEvent& ev) {
  std::lock_guard<std::mutex> lock(mu_);
  report_.watch_events++;
  JobTrack& job = jobs_[job_id];
  job.state = ev.status().state();
  if (!ev.message().empty()) job.events.push_back(ev.message());
}

// Pairs each verdict with the coordinator's reaction to it, from the order of the job's events:
// applying a verdict emits "<sha12> <term> in <t>s on <agent>", and the tasks the coordinator
// starts in the same step follow at once as "testing <sha12> on <agent>". The latency runs from
// the agent sending the verdict to an agent receiving that first new Assign.
void Harness::PairVerdictsWithAssigns(LoadReport& r) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [job_id, job] : jobs_) {
    for (size_t i = 0; i < job.events.size(); ++i) {
      std::vector<std::string> v = absl::StrSplit(job.events[i], ' ');
      // A verdict: sha12 term "in" secs "on" agent [...]
      if (v.size() < 6 || v[0].size() != 12 || v[2] != "in" || v[4] != "on") continue;
      auto sent = verdict_sent_at_.find(absl::StrCat(job_id, " ", v[5], " ", v[0]));
      if (sent == verdict_sent_at_.end()) continue;
      // Skip what the same step emits before it starts tasks (verdicts reused from the cache,
      // cancellations); stop at the next verdict of an agent or the end of the job.
      std::vector<std::string> next;
      for (size_t j = i + 1; j < job.events.size(); ++j) {
        std::vector<std::string> e = absl::StrSplit(job.events[j], ' ');
        if (e.size() == 4 && e[0] == "testing" && e[2] == "on") {
          next = std::move(e);
          break;
        }
        if (e.size() >= 2 && (e[0] == "cancelled" || e[1] == "reused")) continue;
        break;
      }
      if (next.empty()) {
        r.verdicts_without_next_assign++;
        continue;
      }
      auto got = received_at_.find(absl::StrCat(job_id, " ", next[3], " ", next[1]));
      if (got == received_at_.end()) continue;
      r.verdict_to_next_assign.ms.push_back(Ms(got->second - sent->second));
    }
  }
}

void Harness::ScheduleFinish(SimAgent* agent, const std::string& task_id, Clock::duration after) {
  {
    std::lock_guard<std::mutex> lock(timer_mu_);
    timers_.push(Timer{Clock::now() + after, agent, task_id});
  }
  timer_cv_.notify_one();
}

void Harness::TimerLoop() {
  Clock::time_point next_beat = Clock::now() + std::chrono::seconds(1);
  std::vector<Clock::time_point> last_beat(agents_.size(), Clock::now());
  std::unique_lock<std::mutex> lock(timer_mu_);
  while (!timer_stop_) {
    Clock::time_point wake = next_beat;
    if (!timers_.empty()) wake = std::min(wake, timers_.top().due);
    timer_cv_.wait_until(lock, wake);
    if (timer_stop_) break;
    Clock::time_point now = Clock::now();
    std::vector<Timer> due;
    while (!timers_.empty() && timers_.top().due <= now) {
      due.push_back(timers_.top());
      timers_.pop();
    }
    const bool beat = now >= next_beat;
    if (beat) next_beat = now + std::chrono::seconds(1);
    lock.unlock();
    for (Timer& t : due) t.agent->Finish(t.task_id);
    if (beat) {
      for (size_t i = 0; i < agents_.size(); ++i) {
        if (now - last_beat[i] >= std::chrono::seconds(agents_[i]->heartbeat_seconds())) {
          last_beat[i] = now;
          agents_[i]->Heartbeat();
        }
      }
    }
    lock.lock();
  }
}

absl::Status Harness::MakeRepos() {
  int code = 0;
  farm::fuzz::Run("command -v git >/dev/null && command -v python3 >/dev/null", &code);
  if (code != 0) return absl::FailedPreconditionError("git and python3 are needed");
  repos_.resize(o_.repos);
  std::vector<std::thread> threads;
  for (int i = 0; i < o_.repos; ++i) {
    threads.emplace_back([this, i] {
      // Culprits spread over the history so that the bisects differ.
      double culprit = 0.1 + 0.8 * ((i * 37) % 100) / 100.0;
      const std::string path = absl::StrCat(dir_, "/repo", i);
      int tagged = 1;
      farm::fuzz::Run(
          absl::StrCat("git -C ", path, " rev-parse -q --verify culprit >/dev/null 2>&1"), &tagged);
      if (tagged == 0 && o_.reuse_repos) {
        repos_[i] = farm::fuzz::OpenTruthRepo(path);
        return;
      }
      farm::fuzz::Run(absl::StrCat("rm -rf ", path));
      repos_[i] = farm::fuzz::MakeTruthRepo(
          absl::StrCat(dir_, "/repo", i),
          absl::StrFormat("--shape merges --commits %d --seed %d --culprit %.2f", o_.commits,
                          100 + i, culprit));
    });
    if (threads.size() == 2) {
      for (auto& t : threads) t.join();
      threads.clear();
    }
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < o_.repos; ++i) repo_by_path_[repos_[i].path] = i;
  return absl::OkStatus();
}

absl::Status Harness::StartCoordinator() {
  // A new database each run (the repositories may be kept).
  farm::fuzz::Run(absl::StrCat("rm -rf '", dir_, "/farm.db' '", dir_, "/farm.db-wal' '", dir_,
                               "/farm.db-shm' '", dir_, "/mirrors'"));
  if (o_.mode == LoadOptions::Mode::kChild) {
    std::string bin = o_.coordinator_binary;
    if (bin.empty()) {
      char self[4096];
      ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
      if (n <= 0) return absl::InternalError("cannot read /proc/self/exe");
      std::string s(self, n);
      bin = s.substr(0, s.rfind('/')) + "/farm-coordinator";
    }
    absl::Status st = child_.Start(bin, dir_);
    if (!st.ok()) return st;
    address_ = child_.address();
    ProcStats idle = ReadProc(child_.pid());
    report_.coordinator_idle_rss_kb = idle.rss_kb;
    return absl::OkStatus();
  }
  CoordinatorOptions opts;
  opts.db_path = dir_ + "/farm.db";
  opts.cache_dir = dir_ + "/mirrors";
  absl::StatusOr<std::unique_ptr<CoordinatorServer>> s =
      CoordinatorServer::Start(opts, "127.0.0.1:0");
  if (!s.ok()) return s.status();
  server_ = std::move(*s);
  address_ = server_->address();
  report_.coordinator_idle_rss_kb = ReadProc(0).rss_kb;
  return absl::OkStatus();
}

absl::Status Harness::ConnectAgents() {
  const int per = std::max(1, o_.agents_per_channel);
  for (int i = 0; i < o_.agents; i += per) {
    grpc::ChannelArguments args;
    // A channel of its own, not a subchannel shared with the others: one TCP connection each.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("farm.load.channel", i);
    channels_.push_back(
        grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), args));
    link_stubs_.push_back(v1::AgentLink::NewStub(channels_.back()));
  }
  for (int i = 0; i < o_.agents; ++i) {
    agents_.push_back(
        std::make_unique<SimAgent>(this, i, absl::StrCat("sim-agent-", i), o_.slots_per_agent));
  }
  Clock::time_point start = Clock::now();
  for (int i = 0; i < o_.agents; ++i) agents_[i]->Start(link_stubs_[i / per].get());
  std::unique_lock<std::mutex> lock(wait_mu_);
  bool all = welcome_cv_.wait_for(lock, std::chrono::seconds(120), [&] {
    for (auto& a : agents_) {
      if (!a->welcomed()) return false;
    }
    return true;
  });
  report_.connect_seconds = Ms(Clock::now() - start) / 1000;
  if (!all) {
    int n = 0;
    for (auto& a : agents_) n += a->welcomed();
    return absl::DeadlineExceededError(
        absl::StrCat("only ", n, " of ", o_.agents, " agents were welcomed in 120 s"));
  }
  return absl::OkStatus();
}

void Harness::SendHook(const std::string& job_id) {
  // In-process only: the coordinator's "testing <sha12> on <agent>" event is emitted right after
  // it queued the Assign on the agent's stream; its time is the send time. Runs under the
  // coordinator's lock: only records.
  absl::StatusOr<uint64_t> id = server_->core()->Watch(job_id, [this](const v1::JobEvent& ev) {
    const std::string& m = ev.message();
    if (!absl::StartsWith(m, "testing ")) return;
    std::vector<std::string> w = absl::StrSplit(m, ' ');
    if (w.size() < 4) return;
    Clock::time_point now = Clock::now();
    std::lock_guard<std::mutex> lock(mu_);
    sent_at_[absl::StrCat(w[3], " ", w[1])] = now;
  });
  if (id.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    hook_ids_.push_back(*id);
  }
}

void Harness::SubmitAll() {
  const int total = o_.repos * o_.bisects_per_repo;
  std::atomic<int> next{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < std::max(1, o_.submit_threads); ++t) {
    threads.emplace_back([&] {
      for (int i = next++; i < total; i = next++) {
        const farm::fuzz::TruthRepo& repo = repos_[i % o_.repos];
        v1::SubmitBisectRequest req;
        v1::BisectSpec* spec = req.mutable_spec();
        spec->set_repo(repo.path);
        spec->add_good("good");
        spec->set_bad("bad");
        spec->mutable_recipe()->add_test_argv("./test.sh");
        // A recipe of its own, so that no bisect reuses another's verdicts (the coordinator
        // caches verdicts by tree and recipe): 200 bisects do 200 bisects' work.
        if (!o_.share_recipes) {
          (*spec->mutable_recipe()->mutable_env())["LOAD_BISECT"] = absl::StrCat(i);
        }
        spec->set_description(absl::StrCat("load bisect ", i));
        v1::SubmitBisectResponse resp;
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
        Clock::time_point start = Clock::now();
        grpc::Status st = farm_stub_->SubmitBisect(&ctx, req, &resp);
        double ms = Ms(Clock::now() - start);
        {
          std::lock_guard<std::mutex> lock(mu_);
          report_.submit.ms.push_back(ms);
          if (!st.ok()) {
            report_.unfinished++;
            if (report_.problems.size() < 20) {
              report_.problems.push_back(
                  absl::StrCat("SubmitBisect ", i, " failed: ", st.error_message()));
            }
            continue;
          }
          job_repo_[resp.job_id()] = i % o_.repos;
          jobs_[resp.job_id()].repo = i % o_.repos;
          report_.bisects++;
        }
        if (o_.mode == LoadOptions::Mode::kInProcess) SendHook(resp.job_id());
        auto w = std::make_unique<Watcher>(this, resp.job_id());
        Watcher* raw = w.get();
        {
          std::lock_guard<std::mutex> wl(watchers_mu_);
          watchers_.push_back(std::move(w));
        }
        raw->Start(farm_stub_.get());
      }
    });
  }
  for (auto& t : threads) t.join();
}

void Harness::Verify(LoadReport& r) {
  // The final status of every job, and every task the coordinator counted.
  std::map<std::string, v1::TaskSummary> done;  // task id -> DONE summary
  std::set<std::string> cancelled_tasks;
  std::map<std::string, int> done_count;
  std::map<std::string, int> job_repo;
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_repo = job_repo_;
  }
  std::vector<std::pair<int64_t, double>> elapsed_by_id;
  for (auto& [job_id, repo_index] : job_repo) {
    v1::GetJobRequest req;
    req.set_job_id(job_id);
    v1::JobStatus st;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    grpc::Status s = farm_stub_->GetJob(&ctx, req, &st);
    if (!s.ok()) {
      r.unfinished++;
      r.problems.push_back(absl::StrCat("GetJob ", job_id, ": ", s.error_message()));
      continue;
    }
    const std::string& culprit = repos_[repo_index].culprit;
    if (st.state() != v1::RUNNING) {
      r.job_elapsed.ms.push_back(st.elapsed_seconds() * 1000);
      int64_t n = 0;
      (void)absl::SimpleAtoi(job_id, &n);
      elapsed_by_id.emplace_back(n, st.elapsed_seconds());
    }
    if (st.state() == v1::RUNNING) {
      r.unfinished++;
      if (r.problems.size() < 20) {
        r.problems.push_back(absl::StrCat("job ", job_id, " still running: ", st.candidates(),
                                          " candidates, ", st.running_size(), " tasks running"));
      }
    } else if (st.state() == v1::FOUND && st.first_bad_size() == 1 && st.first_bad(0) == culprit) {
      r.correct++;
    } else {
      r.wrong++;
      if (r.problems.size() < 20) {
        r.problems.push_back(absl::StrCat("job ", job_id, " ended ", v1::JobState_Name(st.state()),
                                          " with ",
                                          st.first_bad_size() ? st.first_bad(0) : "nothing", " (",
                                          st.error(), "); the culprit is ", culprit));
      }
    }
    for (const v1::TaskSummary& t : st.finished()) {
      if (t.state() == v1::TASK_DONE) {
        done[t.task_id()] = t;
        if (++done_count[t.task_id()] == 2) r.results_counted_twice++;
      } else if (t.state() == v1::TASK_CANCELLED || t.state() == v1::TASK_LOST) {
        cancelled_tasks.insert(t.task_id());
      }
    }
  }
  std::sort(elapsed_by_id.begin(), elapsed_by_id.end());
  auto median = [](std::vector<double> v) {
    if (v.empty()) return 0.0;
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return v[v.size() / 2];
  };
  std::vector<double> first, second;
  for (size_t i = 0; i < elapsed_by_id.size(); ++i) {
    (i < elapsed_by_id.size() / 2 ? first : second).push_back(elapsed_by_id[i].second);
  }
  r.first_half_median_s = median(first);
  r.second_half_median_s = median(second);
  std::lock_guard<std::mutex> lock(mu_);
  for (const SentResult& s : sent_) {
    auto it = done.find(s.task_id);
    if (it != done.end() && it->second.verdict() == s.verdict) continue;
    if (it == done.end() && cancelled_tasks.count(s.task_id)) continue;  // a cancel raced it
    r.results_lost++;
    if (r.problems.size() < 20) {
      r.problems.push_back(absl::StrCat(
          "result of task ", s.task_id, " (job ", s.job_id, ", ", v1::Verdict_Name(s.verdict), ") ",
          it == done.end()
              ? "is not among the job's tasks"
              : absl::StrCat("was counted as ", v1::Verdict_Name(it->second.verdict()))));
    }
  }
}

absl::StatusOr<LoadReport> Harness::Run() {
  Clock::time_point t0 = Clock::now();
  dir_ = o_.work_dir.empty() ? farm::fuzz::TempDir("load") : o_.work_dir;
  if (absl::Status st = MakeRepos(); !st.ok()) return st;
  report_.setup_seconds = Ms(Clock::now() - t0) / 1000;
  if (absl::Status st = StartCoordinator(); !st.ok()) return st;
  client_channel_ = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
  farm_stub_ = v1::Farm::NewStub(client_channel_);
  if (absl::Status st = ConnectAgents(); !st.ok()) return st;
  timer_thread_ = std::thread([this] { TimerLoop(); });

  const ProcStats before = ReadProc(o_.mode == LoadOptions::Mode::kChild ? child_.pid() : 0);
  struct rusage self_before {};
  getrusage(RUSAGE_SELF, &self_before);
  Clock::time_point load_start = Clock::now();
  std::thread progress;
  std::atomic<bool> stop_progress{false};
  if (o_.verbose) {
    progress = std::thread([&] {
      while (!stop_progress) {
        for (int i = 0; i < 50 && !stop_progress; ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        int ended = 0;
        size_t nw;
        {
          std::lock_guard<std::mutex> wl(watchers_mu_);
          nw = watchers_.size();
          for (auto& w : watchers_) ended += w->done();
        }
        std::lock_guard<std::mutex> lock(mu_);
        ProcStats p = ReadProc(o_.mode == LoadOptions::Mode::kChild ? child_.pid() : 0);
        FARM_LOG(Info) << absl::StrFormat(
            "[%6.1fs] submitted %zu, ended %d; assigns %lld, results %lld, cancels %lld; "
            "coordinator cpu %.1fs rss %lld MB",
            Ms(Clock::now() - load_start) / 1000, nw, ended,
            static_cast<long long>(report_.assigns), static_cast<long long>(report_.results_sent),
            static_cast<long long>(report_.cancel_confirmations),
            p.user_s + p.sys_s - before.user_s - before.sys_s,
            static_cast<long long>(p.rss_kb / 1024));
      }
    });
  }

  SubmitAll();
  std::atomic<bool> stop_probe{false};
  std::thread probe;
  if (o_.probe_dashboard && o_.mode == LoadOptions::Mode::kChild) {
    probe = std::thread([this, &stop_probe] { ProbeDashboard(stop_probe); });
  }
  {
    std::unique_lock<std::mutex> lock(wait_mu_);
    watch_cv_.wait_for(lock, absl::ToChronoNanoseconds(o_.timeout), [&] {
      std::lock_guard<std::mutex> wl(watchers_mu_);
      for (auto& w : watchers_) {
        if (!w->done()) return false;
      }
      return true;
    });
  }
  report_.load_seconds = Ms(Clock::now() - load_start) / 1000;
  stop_probe = true;
  if (probe.joinable()) probe.join();
  stop_progress = true;
  if (progress.joinable()) progress.join();

  const ProcStats after = ReadProc(o_.mode == LoadOptions::Mode::kChild ? child_.pid() : 0);
  struct rusage self_after {};
  getrusage(RUSAGE_SELF, &self_after);
  auto secs = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
  report_.harness_cpu_seconds = secs(self_after.ru_utime) + secs(self_after.ru_stime) -
                                secs(self_before.ru_utime) - secs(self_before.ru_stime);
  report_.coordinator_user_seconds = after.user_s - before.user_s;
  report_.coordinator_sys_seconds = after.sys_s - before.sys_s;
  report_.coordinator_peak_rss_kb = after.hwm_kb;
  report_.coordinator_end_rss_kb = after.rss_kb;
  report_.coordinator_threads = after.threads;
  {
    std::string page;
    if (o_.mode == LoadOptions::Mode::kChild) {
      const std::string& a = child_.metrics_address();
      httplib::Client http(a.substr(0, a.rfind(':')), std::stoi(a.substr(a.rfind(':') + 1)));
      if (httplib::Result res = http.Get("/metrics"); res && res->status == 200) page = res->body;
    } else {
      page = server_->core()->MetricsText();
    }
    absl::StatusOr<LatencyHistogram> h =
        LatencyHistogram::Parse(page, "farm_assign_latency_seconds", "trigger=\"agent_message\",");
    if (h.ok()) {
      report_.coordinator_assigns = h->count();
      report_.coordinator_assign_p50_ms = 1000 * h->QuantileUpperBound(0.5);
      report_.coordinator_assign_p99_ms = 1000 * h->QuantileUpperBound(0.99);
      report_.coordinator_assign_mean_ms = h->count() ? 1000 * h->sum() / h->count() : 0;
    } else {
      report_.problems.push_back(absl::StrCat("the coordinator's metrics: ", h.status().message()));
    }
  }

  {
    std::lock_guard<std::mutex> wl(watchers_mu_);
    for (auto& w : watchers_) {
      if (!w->saw_terminal() || !w->final_status().ok()) {
        std::lock_guard<std::mutex> lock(mu_);
        if (report_.problems.size() < 20) {
          report_.problems.push_back(
              absl::StrCat("watch of job ", w->job_id(), ": ", w->done() ? "ended" : "still open",
                           w->saw_terminal() ? "" : " without a terminal event", " (",
                           w->final_status().error_message(), ")"));
        }
      }
    }
  }
  LoadReport r;
  {
    std::lock_guard<std::mutex> lock(mu_);
    r = report_;
  }
  Verify(r);
  PairVerdictsWithAssigns(r);
  // Tasks finished per second of load.
  r.tasks_per_second = r.load_seconds > 0 ? r.results_sent / r.load_seconds : 0;

  // Close the agents; every stream must still have been open (none broken by the coordinator).
  for (auto& a : agents_) {
    if (a->done()) {
      r.broken_streams++;
      if (r.problems.size() < 20) {
        r.problems.push_back(absl::StrCat("stream of ", a->id(),
                                          " ended early: ", a->final_status().error_message()));
      }
    }
    a->set_closed_by_harness();
    a->Close();
  }
  if (o_.mode == LoadOptions::Mode::kInProcess) {
    std::vector<uint64_t> ids;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ids = hook_ids_;
    }
    for (uint64_t id : ids) server_->core()->Unwatch(id);
  }
  if (o_.mode == LoadOptions::Mode::kChild) {
    struct rusage ru {};
    r.coordinator_crash = child_.Stop(&ru);
    if (!r.coordinator_crash.empty()) {
      r.problems.push_back(absl::StrCat("farm-coordinator ", r.coordinator_crash));
    }
    r.coordinator_peak_rss_kb = std::max<int64_t>(r.coordinator_peak_rss_kb, ru.ru_maxrss);
  }
  return r;
}

}  // namespace

double Latency::Percentile(double p) const {
  if (ms.empty()) return 0;
  std::vector<double> v = ms;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * (v.size() - 1) + 0.5));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k];
}

std::string Latency::Summary() const {
  if (ms.empty()) return "no samples";
  return absl::StrFormat("n=%zu p50=%.2f p90=%.2f p99=%.2f max=%.2f ms", ms.size(), Percentile(50),
                         Percentile(90), Percentile(99), *std::max_element(ms.begin(), ms.end()));
}

void Harness::ProbeDashboard(const std::atomic<bool>& stop) {
  const std::string& a = child_.metrics_address();
  httplib::Client http(a.substr(0, a.rfind(':')), std::stoi(a.substr(a.rfind(':') + 1)));
  http.set_keep_alive(true);
  int64_t next_job = 1;
  while (!stop) {
    auto t0 = Clock::now();
    httplib::Result list = http.Get("/api/v1/jobs?limit=200");
    double list_ms = Ms(Clock::now() - t0);
    t0 = Clock::now();
    httplib::Result page = http.Get(absl::StrCat("/api/v1/jobs/", next_job).c_str());
    double page_ms = Ms(Clock::now() - t0);
    std::lock_guard<std::mutex> lock(mu_);
    if (!list || list->status != 200 || !page || page->status != 200) {
      if (report_.problems.size() < 20) {
        report_.problems.push_back("the dashboard's API did not answer 200 under load");
      }
      return;
    }
    report_.api_job_list.ms.push_back(list_ms);
    report_.api_job_page.ms.push_back(page_ms);
    next_job = next_job % std::max(1, o_.repos * o_.bisects_per_repo) + 1;
  }
}

std::string LoadReport::ToText() const {
  std::string s;
  absl::StrAppendFormat(&s, "bisects: %d, correct %d, wrong %d, unfinished %d -> %s\n", bisects,
                        correct, wrong, unfinished, ok() ? "OK" : "FAILED");
  absl::StrAppendFormat(
      &s,
      "results sent %lld, lost %lld, counted twice %lld; cancels confirmed %lld; assigns %lld "
      "(duplicate ids %lld); watch events %lld; streams broken %lld\n",
      static_cast<long long>(results_sent), static_cast<long long>(results_lost),
      static_cast<long long>(results_counted_twice), static_cast<long long>(cancel_confirmations),
      static_cast<long long>(assigns), static_cast<long long>(duplicate_task_ids),
      static_cast<long long>(watch_events), static_cast<long long>(broken_streams));
  absl::StrAppendFormat(&s, "assign delivery (coordinator send -> agent):  %s\n",
                        assign_delivery.Summary());
  absl::StrAppendFormat(&s, "verdict sent -> the Assign it caused arrives: %s\n",
                        verdict_to_next_assign.Summary());
  absl::StrAppendFormat(&s, "result -> same agent's next assign (refill):  %s\n",
                        result_to_refill.Summary());
  absl::StrAppendFormat(&s,
                        "coordinator's own assign latency (/metrics): n=%llu p50<=%.2f "
                        "p99<=%.2f mean=%.2f ms\n",
                        static_cast<unsigned long long>(coordinator_assigns),
                        coordinator_assign_p50_ms, coordinator_assign_p99_ms,
                        coordinator_assign_mean_ms);
  absl::StrAppendFormat(&s, "SubmitBisect round trip:                      %s\n", submit.Summary());
  if (!api_job_list.ms.empty()) {
    absl::StrAppendFormat(&s, "dashboard GET /api/v1/jobs?limit=200:         %s\n",
                          api_job_list.Summary());
    absl::StrAppendFormat(&s, "dashboard GET /api/v1/jobs/ID:                %s\n",
                          api_job_page.Summary());
  }
  absl::StrAppendFormat(&s,
                        "bisect duration: %s; median of the first half submitted %.1f s, of "
                        "the second half %.1f s\n",
                        job_elapsed.Summary(), first_half_median_s, second_half_median_s);
  absl::StrAppendFormat(&s, "verdicts that started no new task: %lld\n",
                        static_cast<long long>(verdicts_without_next_assign));
  absl::StrAppendFormat(
      &s,
      "coordinator: cpu %.1f s user + %.1f s sys over %.1f s of load (%.0f%% of a core), peak "
      "RSS %lld MB (idle %lld MB, after the load %lld MB), %d threads\n",
      coordinator_user_seconds, coordinator_sys_seconds, load_seconds,
      load_seconds > 0 ? 100 * (coordinator_user_seconds + coordinator_sys_seconds) / load_seconds
                       : 0,
      static_cast<long long>(coordinator_peak_rss_kb / 1024),
      static_cast<long long>(coordinator_idle_rss_kb / 1024),
      static_cast<long long>(coordinator_end_rss_kb / 1024), coordinator_threads);
  absl::StrAppendFormat(&s,
                        "harness: cpu %.1f s; set-up %.1f s, agents connected in %.2f s; %.0f "
                        "verdicts/s\n",
                        harness_cpu_seconds, setup_seconds, connect_seconds, tasks_per_second);
  for (const std::string& p : problems) absl::StrAppend(&s, "problem: ", p, "\n");
  return s;
}

absl::StatusOr<LoadReport> RunLoad(const LoadOptions& options) {
  // Many sockets: one per agent on each side when the coordinator runs in this process.
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  Harness h(options);
  return h.Run();
}

}  // namespace farm::load
