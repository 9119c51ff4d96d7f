// Power control of kexec agents' machines (as LAVA's device dictionary): the command that
// power-cycles each agent's machine (IPMI, a PDU, or in tests a script that restarts a VM), run
// by the coordinator when a machine does not come back from a kexec by its boot deadline.
#ifndef FARM_COORDINATOR_POWER_POWER_H_
#define FARM_COORDINATOR_POWER_POWER_H_

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace farm {

// Power-cycles agents' machines. Implementations are thread-safe and never block the caller.
class PowerControl {
 public:
  virtual ~PowerControl() = default;
  // Whether there is a way to power-cycle `agent_id`'s machine.
  virtual bool Has(const std::string& agent_id) const = 0;
  // Starts power-cycling `agent_id`'s machine and returns at once (the outcome is logged).
  virtual void Cycle(const std::string& agent_id) = 0;
};

// The power-command file (`farm-coordinator --power-commands FILE`), YAML:
//   agents:
//     "host1:/var/lib/farm-agent": ipmitool -H host1-bmc -U admin -f /etc/farm/ipmi.pw power cycle
//     "host2:/var/lib/farm-agent": /usr/local/bin/pdu-cycle 7
// Each command runs with /bin/sh -c, FARM_AGENT_ID set to the agent's id, bounded to 5 minutes.
// Errors: the file cannot be read, is not YAML, or is not a map of agent id to command
// (INVALID_ARGUMENT, saying which entry and what the file should look like).
absl::StatusOr<std::map<std::string, std::string>> LoadPowerCommands(const std::string& path);

// Runs configured shell commands, each in its own thread; the destructor waits for them.
class PowerCommands : public PowerControl {
 public:
  explicit PowerCommands(std::map<std::string, std::string> commands)
      : commands_(std::move(commands)) {}
  ~PowerCommands() override;
  bool Has(const std::string& agent_id) const override { return commands_.count(agent_id) > 0; }
  void Cycle(const std::string& agent_id) override;

 private:
  const std::map<std::string, std::string> commands_;
  absl::Mutex mu_;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
};

}  // namespace farm

#endif  // FARM_COORDINATOR_POWER_POWER_H_
