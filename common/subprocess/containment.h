// ProcessContainer: every process a task starts, including those that leave its process group
// (`setsid sleep 775 &`, daemons), so that none outlives the task.
//
// Two ways, chosen when the container is made:
//   * cgroup: a cgroup v2 child of the agent's own cgroup, when the cgroup2 hierarchy is mounted
//     (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid systems) and the agent may create one
//     there. A process cannot leave it. Killed with cgroup.kill where the kernel has it (5.14),
//     else by SIGKILLing every pid in cgroup.procs until it is empty.
//   * process group fallback: the processes are those whose environment carries the container's
//     cookie (FARM_CONTAINER=<random>), as Jenkins' ProcessTreeKiller finds a build's processes:
//     a daemon that left the process group still has it, unless it cleared its environment.
#ifndef FARM_COMMON_SUBPROCESS_CONTAINMENT_H_
#define FARM_COMMON_SUBPROCESS_CONTAINMENT_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace farm {

struct ContainmentOptions {
  // false: always the process group fallback (for tests, and hosts where cgroups misbehave).
  bool allow_cgroup = true;
  // false: never cgroup.kill, kill the pids in cgroup.procs (tests the older kernels' path).
  bool use_cgroup_kill = true;
};

// Thread-safe: Members, KillAll and the accessors may be called from any thread.
class ProcessContainer {
 public:
  // Makes a container named after `name` (e.g. a task id). Never fails: without a cgroup it is
  // the fallback, and fallback_reason() says why.
  static std::unique_ptr<ProcessContainer> Create(const std::string& name,
                                                  ContainmentOptions options = {});

  // Kills whatever is left in it and removes its cgroup.
  ~ProcessContainer();
  ProcessContainer(const ProcessContainer&) = delete;
  ProcessContainer& operator=(const ProcessContainer&) = delete;

  bool is_cgroup() const { return !cgroup_.empty(); }
  // The cgroup's directory ("" in the fallback).
  const std::string& cgroup() const { return cgroup_; }
  // Why there is no cgroup ("" when there is one), e.g. "/sys/fs/cgroup is not cgroup2".
  const std::string& fallback_reason() const { return fallback_reason_; }

  // For Subprocess::Start. The variable every process of the container gets in its environment.
  const std::pair<std::string, std::string>& cookie() const { return cookie_; }
  // Write end of the cgroup's cgroup.procs (O_CLOEXEC): a child writes "0" into it before exec
  // to join. -1 in the fallback.
  int procs_fd() const { return procs_fd_; }

  // The processes in it now, as "pid 123 (sleep)".
  std::vector<std::string> Members() const;
  // SIGKILLs every process in it and waits (bounded, ~5 s) until none is left.
  // Returns the processes it found, as Members() does.
  std::vector<std::string> KillAll();

 private:
  ProcessContainer() = default;
  std::vector<pid_t> Pids() const;

  std::string cgroup_;
  std::string cgroup_rel_;  // its path under the cgroup2 mount, as /proc/<pid>/cgroup says it
  std::string fallback_reason_;
  bool use_cgroup_kill_ = true;
  int procs_fd_ = -1;
  std::pair<std::string, std::string> cookie_;
};

}  // namespace farm

#endif  // FARM_COMMON_SUBPROCESS_CONTAINMENT_H_
