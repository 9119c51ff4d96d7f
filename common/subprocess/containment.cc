#include "common/subprocess/containment.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace farm {
namespace {

constexpr absl::Duration kKillPatience = absl::Seconds(5);

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool WriteFile(const std::string& path, absl::string_view text) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  close(fd);
  return ok;
}

// Where the cgroup2 hierarchy is mounted ("" when it is not): /sys/fs/cgroup on unified
// systems, /sys/fs/cgroup/unified on hybrid ones.
std::string Cgroup2Mount() {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // "36 25 0:31 / /sys/fs/cgroup rw,... shared:9 - cgroup2 cgroup2 rw"
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::vector<std::string> after = absl::StrSplit(line.substr(dash + 3), ' ');
    std::vector<std::string> before = absl::StrSplit(line.substr(0, dash), ' ');
    if (!after.empty() && after[0] == "cgroup2" && before.size() > 4) return before[4];
  }
  return "";
}

// This process's cgroup v2 path, from its "0::/path" line ("" when it has none).
std::string OwnCgroup() {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "0::")) return line.substr(3);
  }
  return "";
}

std::string Describe(pid_t pid) {
  std::string comm(
      absl::StripTrailingAsciiWhitespace(ReadFile(absl::StrCat("/proc/", pid, "/comm"))));
  return absl::StrCat("pid ", pid, " (", comm.empty() ? "?" : comm, ")");
}

// Whether the environment of `pid` holds `entry` ("NAME=VALUE").
bool HasEnvEntry(pid_t pid, const std::string& entry) {
  std::string env = ReadFile(absl::StrCat("/proc/", pid, "/environ"));
  for (absl::string_view e : absl::StrSplit(env, '\0')) {
    if (e == entry) return true;
  }
  return false;
}

// Whether `pid` is in the cgroup whose path (under the cgroup2 mount) is `rel`.
bool InCgroup(pid_t pid, const std::string& rel) {
  std::string lines = ReadFile(absl::StrCat("/proc/", pid, "/cgroup"));
  for (absl::string_view line : absl::StrSplit(lines, '\n')) {
    if (absl::ConsumePrefix(&line, "0::")) return line == rel;
  }
  return false;
}

std::string Sanitize(const std::string& name) {
  std::string out;
  for (char c : name)
    out += (isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.') ? c : '_';
  return out.substr(0, 64);
}

std::string RandomHex() {
  std::random_device rd;
  return absl::StrFormat("%08x%08x", rd(), rd());
}

std::atomic<int> next_container{0};

}  // namespace

std::unique_ptr<ProcessContainer> ProcessContainer::Create(const std::string& name,
                                                           ContainmentOptions options) {
  std::unique_ptr<ProcessContainer> c(new ProcessContainer());
  c->cookie_ = {"FARM_CONTAINER", absl::StrCat(getpid(), "-", RandomHex())};
  if (!options.allow_cgroup) {
    c->fallback_reason_ = "cgroups are turned off";
    return c;
  }
  std::string mount = Cgroup2Mount();
  if (mount.empty()) {
    c->fallback_reason_ = "no cgroup2 filesystem is mounted (/sys/fs/cgroup is cgroup v1)";
    return c;
  }
  std::string own = OwnCgroup();
  if (own.empty()) {
    c->fallback_reason_ = "this process has no cgroup v2 path in /proc/self/cgroup";
    return c;
  }
  std::string parent = own == "/" ? mount : absl::StrCat(mount, own);
  std::string dir = absl::StrCat(parent, "/farm-", Sanitize(name), "-", getpid(), "-",
                                 next_container.fetch_add(1));
  if (mkdir(dir.c_str(), 0755) != 0) {
    c->fallback_reason_ =
        absl::StrCat("cannot create a cgroup in ", parent, ": ", std::strerror(errno));
    return c;
  }
  c->procs_fd_ = open(absl::StrCat(dir, "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
  if (c->procs_fd_ < 0) {
    c->fallback_reason_ =
        absl::StrCat("cannot open ", dir, "/cgroup.procs: ", std::strerror(errno));
    rmdir(dir.c_str());
    return c;
  }
  c->cgroup_ = dir;
  c->cgroup_rel_ = dir.substr(mount.size());
  struct stat st;
  c->use_cgroup_kill_ =
      options.use_cgroup_kill && stat(absl::StrCat(dir, "/cgroup.kill").c_str(), &st) == 0;
  return c;
}

ProcessContainer::~ProcessContainer() {
  KillAll();
  if (procs_fd_ >= 0) close(procs_fd_);
  if (!cgroup_.empty()) rmdir(cgroup_.c_str());
}

std::vector<pid_t> ProcessContainer::Pids() const {
  std::vector<pid_t> pids;
  if (is_cgroup()) {
    for (absl::string_view line : absl::StrSplit(ReadFile(absl::StrCat(cgroup_, "/cgroup.procs")),
                                                 '\n', absl::SkipEmpty())) {
      int pid;
      if (absl::SimpleAtoi(line, &pid)) pids.push_back(pid);
    }
    return pids;
  }
  const std::string entry = absl::StrCat(cookie_.first, "=", cookie_.second);
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return pids;
  const pid_t self = getpid();
  while (dirent* d = readdir(proc)) {
    int pid;
    if (!absl::SimpleAtoi(d->d_name, &pid) || pid == self) continue;
    if (HasEnvEntry(pid, entry)) pids.push_back(pid);
  }
  closedir(proc);
  return pids;
}

std::vector<std::string> ProcessContainer::Members() const {
  std::vector<std::string> out;
  for (pid_t pid : Pids()) out.push_back(Describe(pid));
  return out;
}

std::vector<std::string> ProcessContainer::KillAll() {
  std::vector<std::string> found;
  std::set<pid_t> seen;
  const std::string entry = absl::StrCat(cookie_.first, "=", cookie_.second);
  const absl::Time deadline = absl::Now() + kKillPatience;
  absl::Duration pause = absl::Milliseconds(1);
  while (true) {
    std::vector<pid_t> pids = Pids();
    if (pids.empty() || absl::Now() >= deadline) break;
    for (pid_t pid : pids) {
      if (seen.insert(pid).second) found.push_back(Describe(pid));
    }
    if (use_cgroup_kill_ && WriteFile(absl::StrCat(cgroup_, "/cgroup.kill"), "1")) {
      // The kernel kills every member, forks in flight included.
    } else {
      for (pid_t pid : pids) {
        // Signal through a pidfd, checked again after opening it, so that a pid that was
        // recycled meanwhile is not hit.
        int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
        if (fd < 0) continue;
        if (is_cgroup() ? InCgroup(pid, cgroup_rel_) : HasEnvEntry(pid, entry)) {
          syscall(SYS_pidfd_send_signal, fd, SIGKILL, nullptr, 0);
        }
        close(fd);
      }
    }
    // Killed processes leave the list once they have exited: wait for that, briefly.
    absl::SleepFor(pause);
    pause = std::min(pause * 2, absl::Milliseconds(50));
  }
  return found;
}

}  // namespace farm
