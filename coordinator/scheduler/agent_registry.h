// AgentRegistry: the connected agents (sessions), their free slots, and their health
// (consecutive infrastructure errors, quarantine). Time is passed in by the caller.
//
// Thread safety: none; the coordinator holds its lock around every call.
#ifndef FARM_COORDINATOR_SCHEDULER_AGENT_REGISTRY_H_
#define FARM_COORDINATOR_SCHEDULER_AGENT_REGISTRY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "coordinator/graph/commit_graph.h"
#include "farm/v1/farm.pb.h"

namespace farm {

// The coordinator's handle on one connected agent stream.
class AgentChannel {
 public:
  virtual ~AgentChannel() = default;
  // Queues a message for the agent. Thread-safe, never blocks; dropped if the stream is gone.
  virtual void Send(const farm::v1::CoordinatorMessage& msg) = 0;
};

// One connection of an agent. A session whose stream broke stays (connected == false) while its
// tasks may still be re-adopted.
struct Session {
  uint64_t id = 0;
  farm::v1::Hello hello;
  std::shared_ptr<AgentChannel> channel;
  std::set<std::string> tasks;  // task ids holding a slot (running, or cancelled but unconfirmed)
  absl::Time last_seen;
  bool connected = true;
  bool draining = false;  // finishes its tasks, takes no new ones
  // Where its worktree is: the last commit given to it (placement prefers the nearest agent).
  int64_t last_job = 0;
  std::optional<CommitId> last_commit;
  // HostKernel.key of the host kernel its machine runs now (kexec): from its Hello, then the
  // last host kernel assigned to it.
  std::string host_key;
  // The labels the scheduler matches against a job's requirements: Hello.labels and the
  // capabilities (accel, qemu, cores, memory_mb), as key -> value.
  std::map<std::string, std::string> labels;
};

// What the coordinator remembers of an agent across its connections.
struct AgentHealth {
  int consecutive_infra_errors = 0;
  absl::Time quarantined_until = absl::InfinitePast();
  std::string reason;
};

class AgentRegistry {
 public:
  // An agent with `quarantine_after` infrastructure errors in a row is quarantined for
  // `quarantine`.
  AgentRegistry(int quarantine_after, absl::Duration quarantine)
      : quarantine_after_(quarantine_after), quarantine_(quarantine) {}

  // A new session for `hello` (validated by the caller), seen at `now`. Older connected
  // sessions of the same agent are disconnected first (an agent that reconnects replaces them).
  Session& Connect(const farm::v1::Hello& hello, std::shared_ptr<AgentChannel> channel,
                   absl::Time now);
  // The session, or nullptr.
  Session* Find(uint64_t session);
  // Marks the session's stream gone; its tasks stay until ForgetIfIdle or Erase.
  void SetDisconnected(Session& s);
  // Keeps the set of sessions with a free slot right after s.tasks, connected or draining
  // changed.
  void RefreshFree(Session& s);
  // Drain (true) or undrain (false) every session of `agent_id`, remembered across its
  // reconnections. False (nothing changed) when no connected session has that id.
  bool SetDraining(const std::string& agent_id, bool draining);

  // An admin's state for `agent_id`: AGENT_MAINTENANCE or AGENT_RETIRED drain it (now and on
  // every later connection), AGENT_GOOD ends that and any drain. Works for an agent not
  // connected (a state restored from the store at start).
  void SetAdminState(const std::string& agent_id, farm::v1::AgentState state,
                     const std::string& reason);
  // Whether an admin set `agent_id` to maintenance or retired.
  bool SetAside(const std::string& agent_id) const { return admin_states_.count(agent_id) > 0; }
  // Whether a session of `agent_id` exists (connected or not).
  bool Known(const std::string& agent_id) const;

  // Whether `agent_id` is quarantined at `now`.
  bool Quarantined(const std::string& agent_id, absl::Time now) const;
  // Counts an infrastructure error of `agent_id`; true when this one quarantined it (until
  // now + quarantine, with `error` as the reason).
  bool RecordInfraError(const std::string& agent_id, const std::string& error, absl::Time now);
  // Quarantines `agent_id` now, whatever its count (a machine that did not come back from a
  // kexec even after a power cycle).
  void Quarantine(const std::string& agent_id, const std::string& reason, absl::Time now);
  // A verdict resets the count of errors in a row.
  void RecordVerdict(const std::string& agent_id);
  // Lifts quarantines that ran out by `now`; true when any did.
  bool EndQuarantines(absl::Time now);
  const AgentHealth* Health(const std::string& agent_id) const;

  // "waiting: ..." when no connected agent can take work at `now` (none connected, or all
  // quarantined, with who and why); "" otherwise.
  std::string WaitingNote(absl::Time now) const;
  // farm.proto's AgentInfo for every session.
  std::vector<farm::v1::AgentInfo> List(absl::Time now) const;

  std::map<uint64_t, Session>& sessions() { return sessions_; }
  const std::map<uint64_t, Session>& sessions() const { return sessions_; }
  // Connected sessions with a free slot that are not draining (quarantine not considered).
  const std::set<uint64_t>& free_sessions() const { return free_sessions_; }
  size_t connected_agents() const { return connected_agents_; }
  size_t connected_slots() const { return connected_slots_; }
  absl::Duration quarantine() const { return quarantine_; }

 private:
  const int quarantine_after_;
  const absl::Duration quarantine_;
  std::map<uint64_t, Session> sessions_;
  std::map<std::string, AgentHealth> health_;
  size_t quarantined_ = 0;  // entries of health_ with a quarantine set
  std::set<uint64_t> free_sessions_;
  std::set<std::string> drained_;  // agent ids: a drained agent stays drained when it reconnects
  struct AdminState {
    farm::v1::AgentState state;
    std::string reason;
  };
  std::map<std::string, AdminState> admin_states_;  // maintenance or retired
  size_t connected_agents_ = 0;
  size_t connected_slots_ = 0;
  uint64_t next_session_ = 1;
};

// The labels of an agent: its Hello's labels and capabilities as key -> value.
std::map<std::string, std::string> AgentLabels(const farm::v1::Hello& hello);

}  // namespace farm

#endif  // FARM_COORDINATOR_SCHEDULER_AGENT_REGISTRY_H_
