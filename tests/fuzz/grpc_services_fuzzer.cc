// Fuzz target: the coordinator's gRPC services (Farm and AgentLink reactors) over an in-process
// channel to a real CoordinatorServer (in-memory store, a small real repository made once).
// Where agent_stream calls the Coordinator object directly, this one goes through the reactors:
// stream set-up and teardown, a first message that is not a Hello, writes after the server
// finished the stream, cancellation from the client side, watchers that go away mid-stream.
//
// Input format: byte 0 configures the run (bits 0-1: jobs submitted at the start; bit 2: finish
// every job at the end). Then records of [op][arg][len][len bytes], see the Op enum. Payloads are
// parsed as the request message when they parse; a repository in a fuzzed spec is replaced by the
// local one (a fuzzer must not clone from the network).
//
// Properties (besides no crash, leak or hang): every unary call answers before its deadline with
// a code farm.proto lists for it; an agent never holds more tasks than its slots; a task id is
// assigned once; when every good/bad verdict sent was the truth, a FOUND job names the real first
// bad commit and an AMBIGUOUS one lists it.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "coordinator/service/service.h"
#include "farm/v1/farm.grpc.pb.h"
#include "tests/fuzz/fuzz_env.h"

namespace {

namespace v1 = farm::v1;
using farm::fuzz::Finding;

constexpr int kAgents = 3;
// Generous: the property is "answers", not "answers fast", and ASan on a loaded machine is slow.
constexpr auto kCallDeadline = std::chrono::seconds(60);

enum Op : uint8_t {
  kOpen = 0,      // arg: agent (low 2 bits), slots (bits 2-3), re-list running (bit 7);
                  // payload: a Hello when it parses and is not empty
  kAgentMessage,  // payload: an AgentMessage on the agent's stream
  kResult,        // payload: [which task, verdict, flags]
  kClose,         // arg bit 0: WritesDone and wait for the server, else cancel
  kSubmit,        // payload: a SubmitBisectRequest
  kFarmCall,      // arg % 6: GetJob / ListJobs / CancelJob / ListAgents / GetTaskLog / WatchJob
  kPump,          // waits up to arg % 8 ms for messages to the agents
  kNumOps,
};

const farm::fuzz::SharedRepo& GetShared() {
  return farm::fuzz::GetSharedRepo("grpc", "--shape merges --commits 30 --skip 2 --seed 7");
}

// What the coordinator sent to the agents, from one reader thread per stream.
struct Inbox {
  std::mutex mu;
  std::condition_variable cv;
  // (agent, stream generation, message)
  std::deque<std::tuple<int, int, v1::CoordinatorMessage>> queue;
};

struct Agent : farm::fuzz::AgentView {
  int generation = 0;
  std::unique_ptr<grpc::ClientContext> ctx;
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::CoordinatorMessage>> stream;
  std::thread reader;
};

class Run {
 public:
  Run(const uint8_t* data, size_t size) : data_(data), size_(size), sh_(GetShared()) {}

  void Go() {
    if (size_ == 0) return;
    farm::CoordinatorOptions o;
    o.db_path = ":memory:";
    o.cache_dir = sh_.dir + "/mirrors";
    o.lease = absl::Hours(1);
    static int serial = 0;
    absl::StatusOr<std::unique_ptr<farm::CoordinatorServer>> server =
        farm::CoordinatorServer::Start(o, absl::StrCat("unix:", sh_.dir, "/sock-", ++serial));
    if (!server.ok()) {
      std::fprintf(stderr, "CoordinatorServer::Start: %s\n", server.status().ToString().c_str());
      std::abort();
    }
    server_ = std::move(*server);
    std::shared_ptr<grpc::Channel> channel = server_->InProcessChannel();
    farm_ = v1::Farm::NewStub(channel);
    link_ = v1::AgentLink::NewStub(channel);
    for (int i = 0; i < kAgents; ++i) agents_[i].id = absl::StrCat("agent-", i);

    const uint8_t config = data_[0];
    for (int j = 0; j < (config & 3); ++j) Submit(j, "");
    size_t at = 1;
    while (at + 3 <= size_) {
      uint8_t op = data_[at] % kNumOps, arg = data_[at + 1], len = data_[at + 2];
      at += 3;
      std::string payload(reinterpret_cast<const char*>(data_ + at),
                          std::min<size_t>(len, size_ - at));
      at += payload.size();
      Step(static_cast<Op>(op), arg, payload);
      Drain(std::chrono::milliseconds(0));
    }
    if (config & 4) FinishJobs();
    Check();
    for (Agent& a : agents_) Close(a, /*graceful=*/false);
    server_->Shutdown(absl::Seconds(5));
    server_.reset();
  }

 private:
  uint8_t Byte(const std::string& p, size_t i) const {
    return i < p.size() ? static_cast<uint8_t>(p[i]) : 0;
  }

  // An empty payload parses as an empty message; it stands for "a well-formed request" instead.
  template <typename Message>
  static bool Parse(const std::string& payload, Message* m) {
    return !payload.empty() && m->ParseFromString(payload);
  }

  std::unique_ptr<grpc::ClientContext> Context() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + kCallDeadline);
    return ctx;
  }

  // A unary call's status against the codes farm.proto documents for it.
  void CheckStatus(const char* method, const grpc::Status& st, std::set<grpc::StatusCode> allowed) {
    allowed.insert(grpc::StatusCode::OK);
    if (st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      Finding(absl::StrCat("hang-", method),
              absl::StrCat(method, " did not answer within ", kCallDeadline.count(), " s"), data_,
              size_);
    } else if (!allowed.count(st.error_code())) {
      Finding(absl::StrCat("undocumented-code-", method),
              absl::StrCat(method, " answered code ", st.error_code(), ": ", st.error_message()),
              data_, size_);
    } else if (!st.ok() && st.error_message().empty()) {
      Finding(absl::StrCat("no-message-", method),
              absl::StrCat(method, " failed with code ", st.error_code(), " and no message"), data_,
              size_);
    }
  }

  void Submit(int variant, const std::string& payload) {
    v1::SubmitBisectRequest req;
    if (!Parse(payload, &req)) {
      req.Clear();
      v1::BisectSpec* spec = req.mutable_spec();
      spec->add_good("good");
      spec->set_bad("bad");
      spec->mutable_recipe()->add_test_argv("./test.sh");
      if (variant % 3 == 1) spec->set_first_parent(true);
      if (variant % 3 == 2) spec->set_max_parallel(1);
    }
    req.mutable_spec()->set_repo(sh_.repo.path);
    v1::SubmitBisectResponse resp;
    auto ctx = Context();
    grpc::Status st = farm_->SubmitBisect(ctx.get(), req, &resp);
    CheckStatus("SubmitBisect", st,
                {grpc::StatusCode::INVALID_ARGUMENT, grpc::StatusCode::NOT_FOUND});
    if (st.ok()) jobs_[resp.job_id()] = req.spec();
  }

  void Open(Agent& a, uint8_t arg, const std::string& payload) {
    Close(a, /*graceful=*/false);
    v1::AgentMessage hello;
    if (!Parse(payload, hello.mutable_hello())) {
      hello.Clear();
      v1::Hello* h = hello.mutable_hello();
      if (a.id.empty()) a.id = absl::StrCat("agent-", &a - agents_);
      h->set_agent_id(a.id);
      h->set_slots(1 + ((arg >> 2) & 3));
      if (arg & 0x80) {
        for (auto& [tid, commit] : a.running) h->add_running(tid);
      }
    }
    // What the Hello lists is what this agent runs; a fuzzed id is an agent of its own, which
    // takes this one's place.
    if (hello.hello().agent_id() != a.id) {
      a.running.clear();
      a.id = hello.hello().agent_id();
    }
    a.Connected(hello.hello());
    a.ctx = std::make_unique<grpc::ClientContext>();
    a.stream = link_->Connect(a.ctx.get());
    const int index = static_cast<int>(&a - agents_);
    const int generation = ++a.generation;
    auto* stream = a.stream.get();
    a.reader = std::thread([this, index, generation, stream] {
      v1::CoordinatorMessage m;
      while (stream->Read(&m)) {
        std::lock_guard<std::mutex> lock(inbox_.mu);
        inbox_.queue.emplace_back(index, generation, m);
        inbox_.cv.notify_all();
      }
    });
    a.stream->Write(hello);
  }

  void Close(Agent& a, bool graceful) {
    if (!a.stream) return;
    if (graceful) {
      a.stream->WritesDone();
    } else {
      a.ctx->TryCancel();
    }
    a.reader.join();
    // The stream's status is the server's business (INVALID_ARGUMENT for a bad Hello, CANCELLED).
    (void)a.stream->Finish();
    a.stream.reset();
    a.ctx.reset();
    ++a.generation;  // messages still queued from this stream are dropped
  }

  void Write(Agent& a, const v1::AgentMessage& m) {
    // A write after the server ended the stream fails; the reader then ends too.
    if (a.stream) (void)a.stream->Write(m);
  }

  void Result(Agent& a, const std::string& task_id, const std::string& commit, int verdict_mode,
              uint8_t flags) {
    v1::AgentMessage m;
    v1::TaskResult* r = m.mutable_result();
    r->set_task_id(task_id);
    // A task only a fuzzed Hello named has no known commit: any good/bad answer may be a lie.
    auto known = ledger_.assigned().find(task_id);
    const std::string& tested =
        !commit.empty() || known == ledger_.assigned().end() ? commit : known->second;
    bool lie = false;
    r->set_verdict(farm::fuzz::FuzzedVerdict(sh_.repo, tested, verdict_mode, &lie));
    if (lie && !(flags & 3)) truthful_ = false;
    if (flags & 1) r->set_infra_error("fuzzed infrastructure error");
    if (flags & 2) r->set_cancelled(true);
    // Forget the task before the coordinator can free its slot, so that an Assign that follows
    // the result is never counted against it.
    if (a.running.erase(task_id)) a.cancelled.erase(task_id);
    Write(a, m);
    if (flags & 4) Write(a, m);
  }

  void FarmCall(uint8_t arg, const std::string& payload) {
    auto ctx = Context();
    std::string job = jobs_.empty() ? "1" : jobs_.rbegin()->first;
    switch (arg % 6) {
      case 0: {
        v1::GetJobRequest req;
        if (!Parse(payload, &req)) req.set_job_id(job);
        v1::JobStatus resp;
        CheckStatus("GetJob", farm_->GetJob(ctx.get(), req, &resp),
                    {grpc::StatusCode::NOT_FOUND, grpc::StatusCode::INVALID_ARGUMENT});
        break;
      }
      case 1: {
        v1::ListJobsRequest req;
        (void)req.ParseFromString(payload);
        v1::ListJobsResponse resp;
        CheckStatus("ListJobs", farm_->ListJobs(ctx.get(), req, &resp), {});
        break;
      }
      case 2: {
        v1::CancelJobRequest req;
        if (!Parse(payload, &req)) req.set_job_id(job);
        v1::CancelJobResponse resp;
        CheckStatus("CancelJob", farm_->CancelJob(ctx.get(), req, &resp),
                    {grpc::StatusCode::NOT_FOUND, grpc::StatusCode::INVALID_ARGUMENT});
        break;
      }
      case 3: {
        v1::ListAgentsResponse resp;
        CheckStatus("ListAgents", farm_->ListAgents(ctx.get(), v1::ListAgentsRequest(), &resp), {});
        break;
      }
      case 4: {
        v1::GetTaskLogRequest req;
        if (!Parse(payload, &req)) {
          req.set_job_id(job);
          if (!ledger_.assigned().empty()) req.set_commit(ledger_.assigned().begin()->second);
        }
        v1::GetTaskLogResponse resp;
        CheckStatus("GetTaskLog", farm_->GetTaskLog(ctx.get(), req, &resp),
                    {grpc::StatusCode::NOT_FOUND, grpc::StatusCode::INVALID_ARGUMENT});
        break;
      }
      default: {
        // A watcher that reads a few events, then leaves (or reads to the end of a finished job).
        v1::WatchJobRequest req;
        if (!Parse(payload, &req)) req.set_job_id(job);
        auto reader = farm_->WatchJob(ctx.get(), req);
        v1::JobEvent ev;
        for (int i = 0; i < 1 + (arg >> 3) % 4 && reader->Read(&ev); ++i) {
        }
        ctx->TryCancel();
        while (reader->Read(&ev)) {
        }
        (void)reader->Finish();
        break;
      }
    }
  }

  void Step(Op op, uint8_t arg, const std::string& payload) {
    Agent& a = agents_[arg % kAgents];
    switch (op) {
      case kOpen:
        Open(a, arg, payload);
        break;
      case kAgentMessage: {
        v1::AgentMessage m;
        if (Parse(payload, &m)) Write(a, m);
        break;
      }
      case kResult: {
        if (a.running.empty()) break;
        auto it = a.running.begin();
        std::advance(it, Byte(payload, 0) % a.running.size());
        auto [tid, commit] = *it;
        Result(a, tid, commit, Byte(payload, 1), Byte(payload, 2));
        break;
      }
      case kClose:
        Close(a, arg & 1);
        break;
      case kSubmit:
        if (jobs_.size() < 6) Submit(arg, payload);
        break;
      case kFarmCall:
        FarmCall(arg >> 2, payload);
        break;
      case kPump:
        Drain(std::chrono::milliseconds(arg % 8));
        break;
      default:
        break;
    }
  }

  // Delivers what the coordinator sent (waiting up to `wait` for a first message), checking the
  // per-agent properties. Returns whether anything arrived.
  bool Drain(std::chrono::milliseconds wait) {
    std::deque<std::tuple<int, int, v1::CoordinatorMessage>> got;
    {
      std::unique_lock<std::mutex> lock(inbox_.mu);
      inbox_.cv.wait_for(lock, wait, [&] { return !inbox_.queue.empty(); });
      got.swap(inbox_.queue);
    }
    for (auto& [index, generation, m] : got) {
      Agent& a = agents_[index];
      if (generation != a.generation) continue;
      ledger_.OnMessage(a, m, "", "", data_, size_);
    }
    return !got.empty();
  }

  absl::StatusOr<v1::JobStatus> GetJob(const std::string& id) {
    v1::GetJobRequest req;
    req.set_job_id(id);
    v1::JobStatus resp;
    auto ctx = Context();
    grpc::Status st = farm_->GetJob(ctx.get(), req, &resp);
    CheckStatus("GetJob", st, {});
    if (!st.ok()) return absl::UnknownError(st.error_message());
    return resp;
  }

  bool AnyRunningJob() {
    for (auto& [id, spec] : jobs_) {
      absl::StatusOr<v1::JobStatus> st = GetJob(id);
      if (st.ok() && st->state() == v1::RUNNING) return true;
    }
    return false;
  }

  // Every agent comes back (listing what it still runs) and answers truthfully until the jobs end.
  void FinishJobs() {
    for (int round = 0; round < 300 && AnyRunningJob(); ++round) {
      for (Agent& a : agents_) {
        if (!a.stream || a.slots == 0) {
          Open(a, static_cast<uint8_t>(0x80 | 0x4 | (&a - agents_)), "");
        }
        std::map<std::string, std::string> tasks = a.running;
        for (auto& [tid, commit] : tasks) {
          Result(a, tid, commit, 0, a.cancelled.count(tid) ? 2 : 0);
        }
      }
      Drain(std::chrono::milliseconds(200));
    }
  }

  void Check() {
    for (auto& [id, spec] : jobs_) {
      absl::StatusOr<v1::JobStatus> st = GetJob(id);
      if (!st.ok()) {
        Finding("job-lost",
                absl::StrCat("GetJob(", id, ") of a submitted job: ", st.status().ToString()),
                data_, size_);
        continue;
      }
      farm::fuzz::CheckOutcome(sh_.repo, spec, *st, truthful_, data_, size_);
    }
  }

  const uint8_t* data_;
  size_t size_;
  const farm::fuzz::SharedRepo& sh_;
  std::unique_ptr<farm::CoordinatorServer> server_;
  std::unique_ptr<v1::Farm::Stub> farm_;
  std::unique_ptr<v1::AgentLink::Stub> link_;
  Inbox inbox_;
  Agent agents_[kAgents];
  std::map<std::string, v1::BisectSpec> jobs_;
  farm::fuzz::AssignLedger ledger_;
  bool truthful_ = true;
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
