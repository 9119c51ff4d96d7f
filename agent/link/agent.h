// Agent: dials the coordinator, keeps one AgentLink stream open (reconnecting with exponential
// backoff), runs assigned tasks on its slots and streams their output and verdicts back.
//
// Results that could not be delivered (the stream broke) are kept and sent again after the
// reconnect; the coordinator counts each attempt once.
#ifndef FARM_AGENT_LINK_AGENT_H_
#define FARM_AGENT_LINK_AGENT_H_

#include <grpcpp/grpcpp.h>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/kexec/host_machine.h"
#include "agent/kexec/kexec_task.h"
#include "agent/link/core_share.h"
#include "agent/runner/task_runner.h"
#include "agent/workspace/workspace.h"
#include "common/rpc/credentials.h"
#include "farm/v1/farm.grpc.pb.h"

namespace farm {

struct AgentOptions {
  std::string coordinator;  // address: host:port or unix:/path
  std::string workdir;      // worktrees, build directories, mirrors
  std::string ccache_dir;   // kernel builds' ccache; empty: <workdir>/ccache
  std::string agent_id;     // empty: hostname:workdir
  int slots = 1;
  std::map<std::string, std::string> capabilities;
  // Operator's labels (`--label k=v`), sent in Hello.labels; jobs may require them.
  std::map<std::string, std::string> labels;
  absl::Duration max_backoff = absl::Seconds(5);
  TlsFiles tls;  // ca: verify the coordinator; cert/key: this agent's client certificate
  // Kexec agent (`--kexec`): runs tasks with a host kernel by rebooting into it (agent/kexec).
  bool kexec = false;
  std::string kexec_initrd;   // initrd for host kernels without their own
  std::string kexec_cmdline;  // host kernels' base command line; empty: this boot's
  absl::Duration kexec_boot_deadline = absl::Minutes(5);  // announced to the coordinator
  // An idle agent whose machine runs a task's host kernel kexecs back into this default kernel
  // (with kexec_default_initrd, or kexec_initrd) after kexec_idle_return without a task; empty
  // image or a zero duration: it stays.
  std::string kexec_default_kernel;
  std::string kexec_default_initrd;
  absl::Duration kexec_idle_return = absl::Minutes(10);
  // The machine kexec acts on; null: this one (tests pass a fake).
  std::shared_ptr<kexec::HostMachine> host_machine;
  // The machine's cores, shared with the other agents in this process that run on it (the
  // local agents of `farm bisect`); null: this agent's own share of every core.
  std::shared_ptr<CoreShare> core_share;
};

class Agent {
 public:
  // Errors: INVALID_ARGUMENT for bad options; the work directory cannot be created.
  static absl::StatusOr<std::unique_ptr<Agent>> Create(AgentOptions options);
  ~Agent();

  // Connects and serves until Stop(). Reconnects by itself when the stream breaks.
  void Run();
  // Thread-safe: stops running tasks (their process groups are killed), closes the stream and
  // makes Run() return.
  void Stop();

  const std::string& id() const { return options_.agent_id; }

 private:
  struct Running {
    farm::v1::Assign assign;
    int slot = 0;
    int jobs = 1;  // cores its build may use
    TaskControl control;
    std::thread thread;
    std::optional<kexec::KexecStep> resumed;  // a host-kernel task found in the journal
  };
  using RunFn = std::function<farm::v1::TaskResult(const farm::v1::Assign&)>;
  using LogFn = std::function<void(std::string_view)>;
  using Stream = grpc::ClientReaderWriter<farm::v1::AgentMessage, farm::v1::CoordinatorMessage>;

  Agent(AgentOptions options, std::unique_ptr<Workspace> ws,
        std::shared_ptr<grpc::ChannelCredentials> creds);
  // One connection: hello, then read until the stream breaks. Returns true if it got as far as
  // a Welcome (the backoff then starts again from its minimum).
  bool Session();
  void OnMessage(const farm::v1::CoordinatorMessage& msg);
  void StartTask(const farm::v1::Assign& assign);
  void TaskThread(Running* r);
  // A task with a host kernel (or resumed from the kexec journal): stage, announce, reboot, or
  // run it here. nullopt when the machine is rebooting (no result: the next boot reports).
  std::optional<farm::v1::TaskResult> KexecTaskSteps(Running* r, const RunFn& run,
                                                     const LogFn& log);
  // Finds the task the kexec journal holds (after a reboot) and starts it again.
  void ResumeKexecTask();
  // Called by the heartbeat loop: an agent idle for kexec_idle_return in a task's host kernel
  // kexecs back into its default kernel (Assigns that arrive meanwhile are refused, requeued).
  void MaybeReturnToDefault() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sends now if connected; true when written. Results are kept for resending when not.
  bool Send(const farm::v1::AgentMessage& msg);
  // The ids of the tasks running now.
  std::vector<std::string> RunningIds() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReapFinished();

  AgentOptions options_;
  std::unique_ptr<Workspace> workspace_;
  std::unique_ptr<TaskRunner> runner_;
  std::shared_ptr<kexec::HostMachine> machine_;             // kexec agents only
  std::unique_ptr<kexec::KexecTask> kexec_;                 // kexec agents only
  std::unique_ptr<kexec::HostKernelBuilder> host_builder_;  // kexec agents only
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<farm::v1::AgentLink::Stub> stub_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;  // the coordinator sent Drain: no new tasks
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  Stream* stream_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool welcomed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration heartbeat_ ABSL_GUARDED_BY(mu_) = absl::Seconds(5);
  std::map<std::string, std::unique_ptr<Running>> running_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Running>> finished_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> slot_busy_ ABSL_GUARDED_BY(mu_);
  std::deque<farm::v1::AgentMessage> undelivered_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> kexec_acked_ ABSL_GUARDED_BY(mu_);  // KexecAck received for these tasks
  // When the last task ended (or the agent started), and whether it is kexecking into the
  // default kernel (MaybeReturnToDefault).
  absl::Time idle_since_ ABSL_GUARDED_BY(mu_) = absl::Now();
  bool returning_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex write_mu_;  // taken before mu_: one Write at a time on the stream
};

}  // namespace farm

#endif  // FARM_AGENT_LINK_AGENT_H_
