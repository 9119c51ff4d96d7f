// Fuzz target: the AgentLink handlers. An input is a script of agent events fed to a fresh
// Coordinator (in-memory store, a small real repository made once): Connect with fuzzed or
// well-formed Hellos, arbitrary AgentMessages (also on sessions that never said Hello or have
// disconnected), results for tasks of this agent or of another one, duplicates, unknown task ids,
// huge logs, disconnects, lease expiry, job submissions and cancellations, and a final phase in
// which every agent answers truthfully so that the jobs end.
//
// Input format: byte 0 configures the run (bit 0: 1 ms lease instead of 1 h; bits 1-2: jobs
// submitted at the start; bit 3: finish every job at the end). Then records of
// [op][arg][len][len bytes], see the Op enum.
//
// Properties (besides no crash, leak or hang): an agent never holds more tasks than its slots; a
// task id is assigned once; when every good/bad verdict sent was the truth, a FOUND job names the
// real first bad commit and an AMBIGUOUS one lists it; GetJob works for every job.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "coordinator/scheduler/coordinator.h"
#include "tests/fuzz/fuzz_env.h"

namespace {

namespace v1 = farm::v1;
using farm::fuzz::Finding;

constexpr int kAgents = 4;

enum Op : uint8_t {
  kConnect = 0,  // arg: agent (low 2 bits), slots (bits 2-3), re-list running (bit 7);
                 // payload: a Hello when it parses and is not empty
  kRawMessage,   // payload: an AgentMessage, on the agent's session (bit 7: a bogus session)
  kResult,       // payload: [which task, index, verdict, flags]
  kDisconnect,
  kExpireLeases,
  kHugeLog,  // (arg+1) KiB, payload[0] % 8 + 1 times
  kJobOp,    // arg % 4: submit / cancel / read everything / GetTaskLog
  kHeartbeat,
  kProgress,
  kAnswerAll,  // every agent answers every task truthfully, once
  kSleep,      // arg % 4 milliseconds (lets a 1 ms lease run out)
  kNumOps,
};

struct Recorder : public farm::AgentChannel {
  void Send(const v1::CoordinatorMessage& msg) override {
    std::lock_guard<std::mutex> lock(mu);
    queue.push_back(msg);
  }
  std::deque<v1::CoordinatorMessage> Take() {
    std::lock_guard<std::mutex> lock(mu);
    std::deque<v1::CoordinatorMessage> out;
    out.swap(queue);
    return out;
  }
  std::mutex mu;
  std::deque<v1::CoordinatorMessage> queue;
};

struct Agent : farm::fuzz::AgentView {
  uint64_t session = 0;
  std::shared_ptr<Recorder> channel;
};

const farm::fuzz::SharedRepo& GetShared() {
  return farm::fuzz::GetSharedRepo("agent", "--shape merges --commits 40 --skip 2 --seed 5");
}

class Run {
 public:
  Run(const uint8_t* data, size_t size) : data_(data), size_(size), sh_(GetShared()) {}

  void Go() {
    if (size_ == 0) return;
    const uint8_t config = data_[0];
    farm::CoordinatorOptions o;
    o.db_path = ":memory:";
    o.cache_dir = sh_.dir + "/mirrors";
    short_lease_ = config & 1;
    o.lease = short_lease_ ? absl::Milliseconds(1) : absl::Hours(1);
    o.heartbeat = absl::Milliseconds(1);
    absl::StatusOr<std::unique_ptr<farm::Coordinator>> c = farm::Coordinator::Create(o);
    if (!c.ok()) {
      std::fprintf(stderr, "Coordinator::Create: %s\n", c.status().ToString().c_str());
      std::abort();
    }
    core_ = std::move(*c);
    for (int i = 0; i < kAgents; ++i) agents_[i].id = absl::StrCat("agent-", i);
    for (int j = 0; j < ((config >> 1) & 3); ++j) Submit(j);
    size_t at = 1;
    while (at + 3 <= size_) {
      uint8_t op = data_[at] % kNumOps, arg = data_[at + 1], len = data_[at + 2];
      at += 3;
      std::string payload(reinterpret_cast<const char*>(data_ + at),
                          std::min<size_t>(len, size_ - at));
      at += payload.size();
      Step(static_cast<Op>(op), arg, payload);
      Drain();
    }
    if (config & 8) {
      for (int round = 0; round < 200 && AnyRunningJob(); ++round) {
        // Agents that are not connected come back, listing what they still run.
        for (int i = 0; i < kAgents; ++i) {
          if (agents_[i].session == 0) Step(kConnect, static_cast<uint8_t>(i | 0x80), "");
        }
        Step(kAnswerAll, 0, "");
        Drain();
      }
    }
    Check();
    core_.reset();
  }

 private:
  uint8_t Byte(const std::string& p, size_t i) const {
    return i < p.size() ? static_cast<uint8_t>(p[i]) : 0;
  }

  void Submit(int variant) {
    v1::BisectSpec spec;
    spec.set_repo(sh_.repo.path);
    spec.add_good("good");
    spec.set_bad("bad");
    spec.mutable_recipe()->add_test_argv("./test.sh");
    switch (variant % 4) {
      case 1:
        spec.set_first_parent(true);
        break;
      case 2:
        spec.set_max_parallel(1);
        break;
      case 3:
        spec.add_skip(sh_.repo.commits[5]);
        spec.set_term_old("old");
        spec.set_term_new("new");
        break;
      default:
        break;
    }
    absl::StatusOr<v1::JobStatus> st = core_->SubmitBisect(spec);
    if (!st.ok()) {
      std::fprintf(stderr, "SubmitBisect of a valid spec: %s\n", st.status().ToString().c_str());
      std::abort();
    }
    jobs_[st->job_id()] = spec;
  }

  void Send(Agent& a, uint64_t session, const v1::AgentMessage& m) {
    core_->OnAgentMessage(session, m);
  }

  void Result(Agent& from, const std::string& task_id, const std::string& commit, int verdict_mode,
              uint8_t flags) {
    v1::AgentMessage m;
    v1::TaskResult* r = m.mutable_result();
    r->set_task_id(task_id);
    bool lie = false;
    r->set_verdict(farm::fuzz::FuzzedVerdict(sh_.repo, commit, verdict_mode, &lie));
    if (lie && !(flags & 3)) truthful_ = false;
    if (flags & 1) r->set_infra_error("fuzzed infrastructure error");
    if (flags & 2) r->set_cancelled(true);
    Send(from, from.session, m);
    if (flags & 4) Send(from, from.session, m);
    if (from.running.erase(task_id)) from.cancelled.erase(task_id);
  }

  void Step(Op op, uint8_t arg, const std::string& payload) {
    Agent& a = agents_[arg % kAgents];
    switch (op) {
      case kConnect: {
        v1::Hello h;
        if (payload.empty() || !h.ParseFromString(payload)) {
          h.Clear();
          h.set_agent_id(a.id);
          h.set_slots(1 + ((arg >> 2) & 3));
          if (arg & 0x80) {
            for (auto& [tid, commit] : a.running) h.add_running(tid);
          }
        }
        auto channel = std::make_shared<Recorder>();
        absl::StatusOr<uint64_t> sid = core_->Connect(h, channel);
        if (!sid.ok()) break;
        // The agent with this id is now this session; what the Hello listed is what it runs.
        Agent& who = AgentById(h.agent_id(), a);
        who.Connected(h);
        who.session = *sid;
        who.channel = channel;
        break;
      }
      case kRawMessage: {
        v1::AgentMessage m;
        if (!m.ParseFromString(payload)) break;
        Send(a, (arg & 0x80) ? arg : a.session, m);
        break;
      }
      case kResult: {
        // Which task: this agent's (bit 0 clear) or any task ever assigned (bit 0 set).
        std::vector<std::pair<std::string, std::string>> pool;
        if (Byte(payload, 0) & 1) {
          for (auto& [tid, commit] : ledger_.assigned()) pool.emplace_back(tid, commit);
        } else {
          for (auto& [tid, commit] : a.running) pool.emplace_back(tid, commit);
        }
        if (pool.empty()) break;
        auto [tid, commit] = pool[Byte(payload, 1) % pool.size()];
        if (!a.running.count(tid)) {
          // Reporting a task this agent does not run; its owner keeps running it.
          cross_agent_results_++;
        }
        Result(a, tid, commit, Byte(payload, 2), Byte(payload, 3));
        break;
      }
      case kDisconnect:
        if (a.session != 0) core_->Disconnect(a.session);
        a.session = 0;
        break;
      case kExpireLeases:
        core_->ExpireLeases();
        break;
      case kHugeLog: {
        v1::AgentMessage m;
        std::string tid = a.running.empty() ? "no-such-task" : a.running.begin()->first;
        m.mutable_log()->set_task_id(tid);
        m.mutable_log()->set_data(std::string((arg + 1) * 1024, 'x'));
        for (int i = 0; i < Byte(payload, 0) % 8 + 1; ++i) {
          m.mutable_log()->set_offset(i * m.log().data().size());
          Send(a, a.session, m);
        }
        break;
      }
      case kJobOp:
        switch (arg % 4) {
          case 0:
            if (jobs_.size() < 8) Submit(Byte(payload, 0));
            break;
          case 1:
            (void)core_->CancelJob(absl::StrCat(1 + (arg >> 2) % 8));
            break;
          case 2:
            ReadEverything();
            break;
          default:
            if (!ledger_.assigned().empty()) {
              auto it = ledger_.assigned().begin();
              std::advance(it, Byte(payload, 0) % ledger_.assigned().size());
              (void)core_->GetTaskLog(absl::StrCat(1 + (arg >> 2) % 8), it->second);
            }
            break;
        }
        break;
      case kHeartbeat: {
        v1::AgentMessage m;
        for (auto& [tid, commit] : a.running) m.mutable_heartbeat()->add_running(tid);
        if (arg & 0x80) m.mutable_heartbeat()->add_running(payload);
        Send(a, a.session, m);
        break;
      }
      case kProgress: {
        v1::AgentMessage m;
        m.mutable_progress()->set_task_id(a.running.empty() ? payload : a.running.begin()->first);
        m.mutable_progress()->set_phase(static_cast<v1::Phase>(arg % 5));
        Send(a, a.session, m);
        break;
      }
      case kAnswerAll:
        for (Agent& ag : agents_) {
          if (ag.session == 0) continue;
          std::map<std::string, std::string> tasks = ag.running;
          for (auto& [tid, commit] : tasks) {
            Result(ag, tid, commit, 0, ag.cancelled.count(tid) ? 2 : 0);
          }
        }
        break;
      case kSleep:
        std::this_thread::sleep_for(std::chrono::milliseconds(arg % 4));
        break;
      default:
        break;
    }
  }

  Agent& AgentById(const std::string& id, Agent& fallback) {
    for (Agent& a : agents_) {
      if (a.id == id) return a;
    }
    // A fuzzed id: it takes over the fallback's place.
    if (fallback.session != 0) core_->Disconnect(fallback.session);
    fallback = Agent();
    fallback.id = id;
    return fallback;
  }

  // Delivers what the coordinator sent, checking the per-agent properties.
  void Drain() {
    for (Agent& a : agents_) {
      if (!a.channel) continue;
      for (const v1::CoordinatorMessage& m : a.channel->Take()) {
        // Named by what the input did, so that each cause is reported on its own.
        ledger_.OnMessage(a, m,
                          absl::StrCat(short_lease_ ? "-short-lease" : "",
                                       cross_agent_results_ ? "-foreign-result" : ""),
                          cross_agent_results_
                              ? " (after a result sent by an agent that did not run the task)"
                              : "",
                          data_, size_);
      }
    }
  }

  void ReadEverything() {
    for (auto& [id, spec] : jobs_) {
      if (!core_->GetJob(id).ok()) {
        std::fprintf(stderr, "GetJob(%s) failed for a submitted job\n", id.c_str());
        std::abort();
      }
    }
    (void)core_->ListJobs(100);
    (void)core_->ListAgents();
  }

  bool AnyRunningJob() {
    for (auto& [id, spec] : jobs_) {
      absl::StatusOr<v1::JobStatus> st = core_->GetJob(id);
      if (st.ok() && st->state() == v1::RUNNING) return true;
    }
    return false;
  }

  void Check() {
    for (auto& [id, spec] : jobs_) {
      absl::StatusOr<v1::JobStatus> st = core_->GetJob(id);
      if (!st.ok()) {
        std::fprintf(stderr, "GetJob(%s) failed for a submitted job: %s\n", id.c_str(),
                     st.status().ToString().c_str());
        std::abort();
      }
      farm::fuzz::CheckOutcome(sh_.repo, spec, *st, truthful_, data_, size_);
    }
  }

  const uint8_t* data_;
  size_t size_;
  const farm::fuzz::SharedRepo& sh_;
  std::unique_ptr<farm::Coordinator> core_;
  Agent agents_[kAgents];
  std::map<std::string, v1::BisectSpec> jobs_;
  farm::fuzz::AssignLedger ledger_;
  bool truthful_ = true;
  bool short_lease_ = false;
  int cross_agent_results_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  GetShared();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Run(data, size).Go();
  return 0;
}
