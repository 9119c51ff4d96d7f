#include "agent/link/agent.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log/log.h"
#include "common/rpc/channel.h"
#include "common/spec/spec.h"
#include "common/status_macros.h"
#include "common/subprocess/containment.h"

namespace farm {
namespace {

namespace v1 = farm::v1;

std::string Hostname() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  return buf;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Agent>> Agent::Create(AgentOptions options) {
  if (options.coordinator.empty()) {
    return absl::InvalidArgumentError("--coordinator is empty: give the coordinator's HOST:PORT");
  }
  if (options.workdir.empty()) {
    return absl::InvalidArgumentError("--workdir is empty: give a directory for worktrees");
  }
  if (options.slots < 1 || options.slots > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("--slots is ", options.slots, ": give 1 to 256"));
  }
  std::error_code ec;
  std::filesystem::create_directories(options.workdir, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot create work directory '", options.workdir, "': ", ec.message()));
  }
  options.workdir = std::filesystem::absolute(options.workdir).lexically_normal().string();
  if (!options.ccache_dir.empty()) {
    options.ccache_dir = std::filesystem::absolute(options.ccache_dir).lexically_normal().string();
  }
  if (options.agent_id.empty()) options.agent_id = absl::StrCat(Hostname(), ":", options.workdir);
  if (options.core_share == nullptr) {
    options.core_share = std::make_shared<CoreShare>(CoreShare::MachineCores());
  }
  struct utsname u;
  if (uname(&u) == 0) options.capabilities.emplace("arch", u.machine);
  // What a job may require besides the operator's labels (BisectSpec.require).
  options.capabilities.emplace("cores", absl::StrCat(std::thread::hardware_concurrency()));
  if (long pages = sysconf(_SC_PHYS_PAGES); pages > 0) {
    options.capabilities.emplace(
        "memory_mb", absl::StrCat(static_cast<int64_t>(pages) * sysconf(_SC_PAGESIZE) >> 20));
  }
  if (options.kexec) {
    if (options.slots != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--kexec with --slots ", options.slots,
                       ": a kexec agent reboots its whole machine for a task, give --slots 1"));
    }
    if (!options.host_machine) options.host_machine = std::make_shared<kexec::RealHostMachine>();
    // A label jobs with a host kernel require, and the kernel this boot runs (the dispatcher
    // prefers an agent already in the wanted kernel).
    options.capabilities["kexec"] = "1";
    options.capabilities["host_kernel"] = options.host_machine->Release();
  }
  FARM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> creds,
                        MakeChannelCredentials(options.tls, ""));
  FARM_ASSIGN_OR_RETURN(std::unique_ptr<Workspace> ws, Workspace::Open(options.workdir));
  if (std::vector<std::string> killed = ProcessContainer::KillOrphans(); !killed.empty()) {
    FARM_LOG(Warning) << "killed " << absl::StrJoin(killed, ", ")
                      << ": left running by a farm-agent that died in the middle of a task";
  }
  return std::unique_ptr<Agent>(new Agent(std::move(options), std::move(ws), std::move(creds)));
}

Agent::Agent(AgentOptions options, std::unique_ptr<Workspace> ws,
             std::shared_ptr<grpc::ChannelCredentials> creds)
    : options_(std::move(options)), workspace_(std::move(ws)) {
  runner_ = std::make_unique<TaskRunner>(workspace_.get(), options_.workdir, options_.ccache_dir);
  channel_ = MakeCoordinatorChannel(options_.coordinator, std::move(creds));
  stub_ = v1::AgentLink::NewStub(channel_);
  slot_busy_.assign(options_.slots, false);
  if (options_.kexec) {
    machine_ = options_.host_machine;
    kexec::KexecOptions ko;
    ko.journal_path = options_.workdir + "/kexec/task";
    ko.host_path = options_.workdir + "/kexec/host";
    ko.default_kernel = options_.kexec_default_kernel;
    ko.default_kernel_initrd = options_.kexec_default_initrd;
    ko.default_initrd = options_.kexec_initrd;
    ko.base_cmdline = options_.kexec_cmdline;
    // Host kernels given as revisions are built in a slot of their own (the task runners use
    // slots 0..slots-1), so that the guest kernels' build directory stays incremental.
    host_builder_ = std::make_unique<kexec::WorkspaceHostKernelBuilder>(
        workspace_.get(), options_.slots,
        options_.ccache_dir.empty() ? options_.workdir + "/ccache" : options_.ccache_dir,
        options_.workdir + "/kexec/images");
    ko.builder = host_builder_.get();
    kexec_ = std::make_unique<kexec::KexecTask>(machine_.get(), std::move(ko));
  }
}

Agent::~Agent() {
  Stop();
  // Cancelled tasks end promptly (their process groups are killed); each moves itself from
  // running_ to finished_ as its last step.
  std::vector<std::unique_ptr<Running>> done;
  {
    absl::MutexLock lock(&mu_);
    auto idle = [this] {
      mu_.AssertHeld();
      return running_.empty();
    };
    mu_.Await(absl::Condition(&idle));
    done.swap(finished_);
  }
  for (auto& r : done) {
    if (r->thread.joinable()) r->thread.join();
  }
}

void Agent::Stop() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
  for (auto& [id, r] : running_) r->control.Cancel();
  if (context_ != nullptr) context_->TryCancel();
}

void Agent::Run() {
  if (kexec_) ResumeKexecTask();
  absl::Duration backoff = absl::Milliseconds(100);
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    bool welcomed = Session();
    backoff = welcomed ? absl::Milliseconds(100) : std::min(backoff * 2, options_.max_backoff);
    absl::MutexLock lock(&mu_);
    // Wait out the backoff, or until Stop().
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), backoff);
  }
}

std::vector<std::string> Agent::RunningIds() {
  std::vector<std::string> ids;
  for (auto& [id, r] : running_) ids.push_back(id);
  return ids;
}

bool Agent::Session() {
  grpc::ClientContext ctx;
  std::unique_ptr<Stream> stream = stub_->Connect(&ctx);
  v1::AgentMessage hello;
  {
    absl::MutexLock w(&write_mu_);
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      ctx.TryCancel();
      stream->Finish().ok();
      return false;
    }
    context_ = &ctx;
    stream_ = stream.get();
    welcomed_ = false;
    v1::Hello* h = hello.mutable_hello();
    h->set_agent_id(options_.agent_id);
    h->set_hostname(Hostname());
    h->set_slots(options_.slots);
    for (const auto& [k, v] : options_.capabilities) (*h->mutable_capabilities())[k] = v;
    if (kexec_) {
      if (std::string key = kexec_->RunningHostKey(); !key.empty()) {
        (*h->mutable_capabilities())[spec::kHostKernelKeyCapability] = key;
      }
    }
    for (const auto& [k, v] : options_.labels) (*h->mutable_labels())[k] = v;
    for (const std::string& id : RunningIds()) h->add_running(id);
  }
  bool ok;
  {
    absl::MutexLock w(&write_mu_);
    ok = stream->Write(hello);
  }
  // Results the previous connection could not deliver.
  std::deque<v1::AgentMessage> pending;
  {
    absl::MutexLock lock(&mu_);
    pending.swap(undelivered_);
  }
  for (const v1::AgentMessage& m : pending) Send(m);

  std::thread heartbeat([this, s = stream.get()] {
    absl::MutexLock lock(&mu_);
    while (true) {
      auto gone = [this, s] {
        mu_.AssertHeld();
        return stopping_ || stream_ != s;
      };
      mu_.AwaitWithTimeout(absl::Condition(&gone), heartbeat_);
      if (gone()) return;
      MaybeReturnToDefault();
      v1::AgentMessage hb;
      for (const std::string& id : RunningIds()) hb.mutable_heartbeat()->add_running(id);
      mu_.Unlock();
      Send(hb);
      mu_.Lock();
    }
  });

  v1::CoordinatorMessage msg;
  bool welcomed = false;
  while (ok && stream->Read(&msg)) {
    if (msg.has_welcome()) {
      welcomed = true;
      absl::MutexLock lock(&mu_);
      welcomed_ = true;
      if (msg.welcome().heartbeat_seconds() > 0) {
        heartbeat_ = absl::Seconds(msg.welcome().heartbeat_seconds());
      }
      continue;
    }
    OnMessage(msg);
  }
  {
    absl::MutexLock w(&write_mu_);
    absl::MutexLock lock(&mu_);
    stream_ = nullptr;
    context_ = nullptr;
  }
  heartbeat.join();
  grpc::Status st = stream->Finish();
  absl::MutexLock lock(&mu_);
  if (!stopping_) {
    FARM_LOG(Warning) << "agent " << options_.agent_id << ": connection to " << options_.coordinator
                      << " lost (" << st.error_message() << "); reconnecting";
  }
  return welcomed;
}

// Output chunks kept for the next connection at most (results are always kept).
constexpr size_t kMaxUndeliveredMessages = 256;

bool Agent::Send(const v1::AgentMessage& msg) {
  absl::MutexLock w(&write_mu_);
  Stream* s;
  {
    absl::MutexLock lock(&mu_);
    s = stream_;
  }
  if (s != nullptr && s->Write(msg)) return true;
  absl::MutexLock lock(&mu_);
  if (msg.has_result()) {
    undelivered_.push_back(msg);
  } else if (msg.has_log() && undelivered_.size() < kMaxUndeliveredMessages) {
    // Output written while no stream is up (a kexec task resumed at start, before the first
    // connection; a reconnect) goes out with the next connection, after its Hello.
    undelivered_.push_back(msg);
  }
  return false;
}

void Agent::OnMessage(const v1::CoordinatorMessage& msg) {
  switch (msg.kind_case()) {
    case v1::CoordinatorMessage::kAssign: {
      FARM_LOG(Debug) << options_.agent_id << ": assign " << msg.assign().task_id() << " received";
      StartTask(msg.assign());
      // A refused Assign's result (drained, no host kernel, no slot) goes out now, not with the
      // next connection: the coordinator would otherwise show the task running until its lease.
      std::deque<v1::AgentMessage> refused;
      {
        absl::MutexLock lock(&mu_);
        refused.swap(undelivered_);
      }
      for (const v1::AgentMessage& m : refused) Send(m);
      break;
    }
    case v1::CoordinatorMessage::kCancel: {
      FARM_LOG(Debug) << options_.agent_id << ": cancel " << msg.cancel().task_id() << " received";
      bool known = false;
      {
        absl::MutexLock lock(&mu_);
        auto it = running_.find(msg.cancel().task_id());
        if (it != running_.end()) {
          known = true;
          it->second->control.Cancel();
        }
      }
      if (!known) {
        // Already finished here (its result is on the way or was delivered): confirm the slot.
        v1::AgentMessage r;
        r.mutable_result()->set_task_id(msg.cancel().task_id());
        r.mutable_result()->set_cancelled(true);
        Send(r);
      }
      break;
    }
    case v1::CoordinatorMessage::kDrain: {
      // As farm.proto says: running tasks finish, no new ones start; the stream stays.
      absl::MutexLock lock(&mu_);
      draining_ = true;
      break;
    }
    case v1::CoordinatorMessage::kUndrain: {
      absl::MutexLock lock(&mu_);
      draining_ = false;
      break;
    }
    case v1::CoordinatorMessage::kKexecAck: {
      absl::MutexLock lock(&mu_);
      kexec_acked_.insert(msg.kexec_ack().task_id());
      break;
    }
    default:
      break;
  }
}

void Agent::ReapFinished() {
  std::vector<std::unique_ptr<Running>> done;
  {
    absl::MutexLock lock(&mu_);
    done.swap(finished_);
  }
  for (auto& r : done) {
    if (r->thread.joinable()) r->thread.join();
  }
}

void Agent::StartTask(const v1::Assign& assign) {
  ReapFinished();
  absl::MutexLock lock(&mu_);
  if (stopping_ || running_.count(assign.task_id())) return;
  auto refuse = [&](const std::string& error) {
    mu_.AssertHeld();
    v1::AgentMessage r;
    r.mutable_result()->set_task_id(assign.task_id());
    r.mutable_result()->set_infra_error(error);
    undelivered_.push_back(r);
  };
  if (assign.has_host_kernel() && !kexec_) {
    return refuse(
        "the task needs a host kernel and this agent does not kexec (start it with --kexec)");
  }
  if (draining_) {
    return refuse("agent is drained: it takes no new tasks (`farm undrain AGENT` to resume)");
  }
  if (returning_) return refuse("agent is rebooting into its default kernel");
  int slot = -1;
  for (int i = 0; i < options_.slots; ++i) {
    if (!slot_busy_[i]) {
      slot = i;
      break;
    }
  }
  if (slot < 0) return refuse("agent has no free slot (coordinator and agent disagree)");
  slot_busy_[slot] = true;
  auto run = std::make_unique<Running>();
  run->assign = assign;
  run->slot = slot;
  // The machine's cores shared by the tasks running now, this one included (those of the other
  // agents sharing core_share too): a probe alone on the machine (the last of its round) builds
  // with every core; speculative probes started together share them. A task keeps what it got
  // when others start or end (make -j cannot change).
  run->jobs = options_.core_share->Start();
  Running* r = run.get();
  running_[assign.task_id()] = std::move(run);
  r->thread = std::thread(&Agent::TaskThread, this, r);
}

void Agent::MaybeReturnToDefault() {
  if (!kexec_ || returning_ || !running_.empty() || options_.kexec_default_kernel.empty() ||
      options_.kexec_idle_return <= absl::ZeroDuration() ||
      absl::Now() - idle_since_ < options_.kexec_idle_return) {
    return;
  }
  const std::string key = kexec_->RunningHostKey();
  if (key.empty()) return;  // already in the default kernel
  returning_ = true;
  FARM_LOG(Info) << "kexec: idle for "
                 << absl::FormatDuration(absl::Trunc(absl::Now() - idle_since_, absl::Seconds(1)))
                 << " in host kernel " << machine_->Release() << " (" << key.substr(0, 12)
                 << "): returning to the default kernel " << options_.kexec_default_kernel;
  mu_.Unlock();
  absl::Status st = kexec_->ReturnToDefault();
  mu_.Lock();
  // Returns only on failure: try again after another idle period.
  FARM_LOG(Warning) << "kexec: cannot return to the default kernel: " << st.message();
  returning_ = false;
  idle_since_ = absl::Now();
}

void Agent::ResumeKexecTask() {
  std::optional<kexec::KexecStep> step = kexec_->Resume();
  if (!step) return;
  FARM_LOG(Info) << "kexec: resuming task " << step->assign.task_id() << " under "
                 << machine_->Release();
  absl::MutexLock lock(&mu_);
  slot_busy_[0] = true;
  auto run = std::make_unique<Running>();
  run->assign = step->assign;
  run->resumed = std::move(step);
  run->jobs = options_.core_share->Start();
  Running* r = run.get();
  running_[r->assign.task_id()] = std::move(run);
  r->thread = std::thread(&Agent::TaskThread, this, r);
}

std::optional<v1::TaskResult> Agent::KexecTaskSteps(Running* r, const RunFn& run,
                                                    const LogFn& log) {
  const std::string& id = r->assign.task_id();
  kexec::KexecStep step = r->resumed ? *r->resumed : kexec_->Begin(r->assign);
  if (step.kind == kexec::KexecStep::Kind::kBuild) {
    FARM_LOG(Info) << "kexec: task " << id << ": building host kernel "
                   << step.assign.host_kernel().label() << " ("
                   << step.assign.host_kernel().commit() << ")";
    v1::AgentMessage m;
    m.mutable_progress()->set_task_id(id);
    m.mutable_progress()->set_phase(v1::BUILD);
    Send(m);
    step = kexec_->Build(log, &r->control);
    if (step.result.task_id().empty()) step.result.set_task_id(id);
  }
  if (step.kind == kexec::KexecStep::Kind::kRun) {
    v1::TaskResult result = run(step.assign);
    result.set_host_kernel_release(machine_->Release());
    kexec_->Finished(result);
    return result;
  }
  if (step.kind == kexec::KexecStep::Kind::kReport) {
    FARM_LOG(Info) << "kexec: task " << id << " ends under " << machine_->Release() << ": "
                   << (step.result.has_infra_error() ? step.result.infra_error()
                                                     : step.result.detail());
    return step.result;
  }
  // kSwitch: the coordinator must know before the stream breaks, or it would requeue the task.
  v1::AgentMessage announce;
  announce.mutable_kexec()->set_task_id(id);
  announce.mutable_kexec()->set_host_kernel_release(step.release);
  announce.mutable_kexec()->set_boot_deadline_seconds(
      static_cast<uint32_t>(absl::ToInt64Seconds(options_.kexec_boot_deadline)));
  Send(announce);
  {
    absl::MutexLock lock(&mu_);
    auto acked = [this, &id] {
      mu_.AssertHeld();
      return stopping_ || kexec_acked_.count(id) > 0;
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&acked), absl::Seconds(10))) {
      FARM_LOG(Warning) << "kexec: the coordinator did not acknowledge task " << id
                        << " within 10s; rebooting anyway (it may requeue the task)";
    }
    kexec_acked_.erase(id);
    if (stopping_) return std::nullopt;  // the journal resumes it at the next start
  }
  FARM_LOG(Info) << "kexec: task " << id << ": rebooting into " << step.release;
  absl::Status st = kexec_->Switch();
  if (!st.ok()) {
    kexec_->Delivered();
    v1::TaskResult result;
    result.set_task_id(id);
    result.set_infra_error(absl::StrCat("kexec into ", step.release, " failed: ", st.message()));
    return result;
  }
  // systemd stops this process, or the kernel is replaced: no result from this boot.
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&stopping_));
  return std::nullopt;
}

void Agent::TaskThread(Running* r) {
  const std::string id = r->assign.task_id();
  uint64_t offset = 0;
  LogFn log = [&](std::string_view data) {
    v1::AgentMessage m;
    m.mutable_log()->set_task_id(id);
    m.mutable_log()->set_offset(offset);
    m.mutable_log()->set_data(std::string(data));
    offset += data.size();
    Send(m);
  };
  RunFn run = [&](const v1::Assign& assign) {
    return runner_->Run(
        assign, r->slot, &r->control,
        [&](v1::Phase phase) {
          v1::AgentMessage m;
          m.mutable_progress()->set_task_id(id);
          m.mutable_progress()->set_phase(phase);
          Send(m);
        },
        log, r->jobs);
  };
  const bool kexec_task = kexec_ && (r->resumed || r->assign.has_host_kernel());
  std::optional<v1::TaskResult> result =
      kexec_task ? KexecTaskSteps(r, run, log) : std::optional<v1::TaskResult>(run(r->assign));
  v1::AgentMessage m;
  if (result) *m.mutable_result() = std::move(*result);
  {
    // Leave the running set first, so a reconnect in between does not list the task as running
    // while its result waits in undelivered_.
    absl::MutexLock lock(&mu_);
    slot_busy_[r->slot] = false;
    options_.core_share->End();
    auto it = running_.find(id);
    finished_.push_back(std::move(it->second));
    running_.erase(it);
    idle_since_ = absl::Now();
  }
  if (!result) return;
  FARM_LOG(Debug) << options_.agent_id << ": result of " << id << " sent";
  if (Send(m) && kexec_task) kexec_->Delivered();
}

}  // namespace farm
