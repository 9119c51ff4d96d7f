// For the integration tests of agents that fail infrastructure-wise: a coordinator with agents
// started in environments of the test's choosing, the `farm` commands that watch them, and
// stand-ins for a qemu that is missing or crashes.
#ifndef FARM_TESTS_INTEGRATION_TEST_FARM_H_
#define FARM_TESTS_INTEGRATION_TEST_FARM_H_

#include <memory>
#include <string>
#include <vector>

#include "tests/lib/test_util.h"

namespace farm::testing {

// The farm CLI, quoted for Sh().
std::string Farm();

// A farm-coordinator on a free port of 127.0.0.1 (database in `dir`) and the farm-agents that dial
// it. Everything is killed when it goes.
class TestFarm {
 public:
  // `coordinator_args` are added to farm-coordinator's command line.
  explicit TestFarm(const std::string& dir, const std::vector<std::string>& coordinator_args = {});
  bool started() const { return started_; }  // the coordinator listens
  const std::string& listen() const { return listen_; }
  Background& coordinator() { return *coordinator_; }

  // Starts farm-agent `id` working in `workdir` (log: <dir>/<id>.log), with `env` (NAME=VALUE,
  // e.g. a PATH without qemu) added to its environment and `args` (e.g. --label k=v) to its
  // command line.
  Background& AddAgent(const std::string& id, const std::string& workdir,
                       const std::vector<std::string>& env = {},
                       const std::vector<std::string>& args = {});
  // Waits until every agent started is connected (and none is quarantined yet).
  bool WaitForAgents() const;

  // `farm agents`, and the line of agent `id` in it (empty when it is not listed).
  std::string Agents() const;
  std::string AgentLine(const std::string& id) const;
  // `farm submit ARGS`; returns the job id (empty, with a test failure, when it is refused).
  std::string Submit(const std::string& args) const;
  // `farm watch JOB` until the job ends; `farm status JOB`.
  CommandResult Watch(const std::string& job) const;
  std::string Status(const std::string& job) const;
  // `farm log JOB COMMIT`: the output of every task of the job at that commit.
  std::string Log(const std::string& job, const std::string& commit) const;

 private:
  std::string dir_;
  std::string listen_;
  std::unique_ptr<Background> coordinator_;
  bool started_ = false;
  std::vector<std::unique_ptr<Background>> agents_;
};

// Adds a test failure for every verdict (good, bad or skip) in `status` (a `farm status JOB`)
// that `agent` gave.
void ExpectNoVerdictFrom(const std::string& status, const std::string& agent);

// Checks the log of every commit of `job` that `agent` failed infrastructure-wise: each must
// contain `says` (a test failure otherwise). Returns how many there were. Unlike `farm watch`,
// which shows only what happens after it attached, the logs hold every attempt.
int ExpectInfrastructureErrorsSay(const TestFarm& farm, const std::string& job,
                                  const std::string& agent, const std::string& says);

// A directory holding an executable `qemu-system-x86_64` with `body`, at <dir>/<name>; returns
// "PATH=<that directory>:$PATH", for TestFarm::AddAgent.
std::string PathWithFakeQemu(const std::string& dir, const std::string& name,
                             const std::string& body);
// "PATH=<an empty directory under dir>": no qemu to be found.
std::string PathWithoutQemu(const std::string& dir);
// A qemu that refuses to start (exit 1), as qemu does when it cannot get the guest's memory.
extern const char kQemuExits1[];

// Two agents whose qemu fails, working in <dir>/<id>: "no-qemu-host" has none on its PATH,
// "segv-qemu-host" has one that dies of SIGSEGV as it starts.
void AddAgentsWithBrokenQemu(TestFarm& farm, const std::string& dir);
// After `job` ran on those agents and one whose qemu works: their tasks were infrastructure
// errors that say what qemu did, none a verdict, and both agents are quarantined with that reason.
void ExpectBrokenQemuWasInfrastructure(const TestFarm& farm, const std::string& job);

// The commit of `farm bisect --kernels` whose image is named `image` (its subject), in the
// repository the CLI made under $XDG_CACHE_HOME=`cache`/farm/kernel-lists/.
std::string KernelListCommit(const std::string& cache, const std::string& image);

}  // namespace farm::testing

#endif  // FARM_TESTS_INTEGRATION_TEST_FARM_H_
