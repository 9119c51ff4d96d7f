#include "common/subprocess/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <fstream>
#include <optional>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

extern char** environ;

namespace farm {
namespace {

// After SIGKILLing what is left of the group when the leader exits, how long to keep reading for
// EOF. Only processes that left the group (setsid) can hold the pipe open that long.
constexpr absl::Duration kDrainGrace = absl::Seconds(2);
// Without pidfd support, how often to check whether the leader exited.
constexpr absl::Duration kExitPollInterval = absl::Milliseconds(20);

// What the child writes into the CLOEXEC error pipe when it cannot exec. Nothing arrives (EOF) when
// exec succeeded.
struct ChildError {
  enum Stage : int { kSetup, kChdir, kExec } stage;
  int err;
  int candidate;  // Index into the exec candidates, or -1.
};

std::string ErrnoText(int err) { return std::generic_category().message(err); }

constexpr char kProgramErrorUrl[] = "farm.subprocess/program-error";

// Marks a Start() error as the program's own (IsProgramError).
absl::Status ProgramError(absl::Status status) {
  status.SetPayload(kProgramErrorUrl, absl::Cord("1"));
  return status;
}

// The interpreter named by the #! line of `path`, or "" when it has none (or cannot be read).
std::string ShebangInterpreter(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string line;
  if (!in || !std::getline(in, line) || !absl::StartsWith(line, "#!")) return "";
  absl::string_view rest = absl::StripLeadingAsciiWhitespace(absl::string_view(line).substr(2));
  return std::string(rest.substr(0, rest.find_first_of(" \t\r")));
}

// ENOENT from execve for a file that exists: what is missing is its #! interpreter (or, for a
// binary, its dynamic loader). The message names it.
std::optional<absl::Status> MissingInterpreter(const std::string& prog,
                                               const std::vector<std::string>& candidates) {
  for (const std::string& c : candidates) {
    struct stat st;
    if (stat(c.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    std::string interpreter = ShebangInterpreter(c);
    if (!interpreter.empty()) {
      return absl::NotFoundError(absl::StrCat(
          "cannot run '", prog, "': its interpreter '", interpreter,
          "' (the script's #! line) does not exist: install it, or change the #! line"));
    }
    return absl::NotFoundError(absl::StrCat(
        "cannot run '", prog,
        "': the file exists but its dynamic loader or interpreter does not (built for another "
        "system?)"));
  }
  return std::nullopt;
}

void CloseFd(int& fd) {
  if (fd >= 0) {
    close(fd);
    fd = -1;
  }
}

// Moves fd to a number >= 3 so that dup2() onto 0/1/2 in the child never clobbers it.
int AboveStdio(int fd) {
  if (fd < 0 || fd > 2) return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  close(fd);
  return moved;
}

[[noreturn]] void ReportAndExit(int err_fd, ChildError::Stage stage, int err, int candidate) {
  ChildError e{stage, err, candidate};
  ssize_t unused = write(err_fd, &e, sizeof(e));
  (void)unused;
  _exit(127);
}

struct ChildPlan {
  std::vector<std::string> candidates;  // Paths to try with execve, in order.
  std::vector<char*> argv;
  // {"/bin/sh", <the candidate>, argv[1]...}: how a file without #! is run (execvp's and git's
  // rule). The child fills in the candidate.
  std::vector<char*> sh_argv;
  std::vector<char*> envp;
  const char* cwd = nullptr;  // nullptr: inherit.
  int devnull_fd = -1;
  int output_fd = -1;  // Write end of the output pipe.
  int error_fd = -1;   // Write end of the CLOEXEC error pipe.
  int cgroup_fd = -1;  // The container's cgroup.procs, or -1.
};

// Runs in the child between clone() and exec, on a stack of its own but in the parent's memory
// (the calling thread waits): async-signal-safe calls only (no malloc, no locks), and nothing
// written that the parent still uses.
[[noreturn]] void RunChild(ChildPlan& plan) {
  setpgid(0, 0);
  // Handlers installed by the parent must not run here; ignored signals must not stay ignored.
  // All signals are blocked (by the parent, around the clone) while we do this.
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigaction(sig, &sa, nullptr);  // Fails harmlessly for the signals glibc reserves.
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);

  // Into the task's cgroup before anything runs ("0" is the writing process). Should the kernel
  // refuse, the process group and the container's cookie still hold it.
  if (plan.cgroup_fd >= 0) {
    ssize_t joined = write(plan.cgroup_fd, "0", 1);
    (void)joined;
  }
  if (dup2(plan.devnull_fd, 0) < 0 || dup2(plan.output_fd, 1) < 0 || dup2(plan.output_fd, 2) < 0) {
    ReportAndExit(plan.error_fd, ChildError::kSetup, errno, -1);
  }
  // Descriptors other threads opened without O_CLOEXEC must not leak into the child. Marking them
  // CLOEXEC (rather than closing) keeps the error pipe usable until exec. Needs Linux >= 5.11;
  // without it we rely on O_CLOEXEC discipline.
#if defined(SYS_close_range)
  syscall(SYS_close_range, 3u, ~0u, 4u /* CLOSE_RANGE_CLOEXEC */);
#endif
  if (plan.cwd != nullptr && chdir(plan.cwd) < 0) {
    ReportAndExit(plan.error_fd, ChildError::kChdir, errno, -1);
  }
  // execvp's rules: skip candidates that do not exist, remember the first EACCES.
  int eacces_candidate = -1;
  for (size_t i = 0; i < plan.candidates.size(); ++i) {
    execve(plan.candidates[i].c_str(), plan.argv.data(), plan.envp.data());
    int err = errno;
    if (err == ENOEXEC) {
      // No #! line and not a binary: a shell script, as execvp and `git bisect run` take it.
      plan.sh_argv[1] = plan.candidates[i].data();
      execve(plan.sh_argv[0], plan.sh_argv.data(), plan.envp.data());
    }
    if (err == EACCES) {
      if (eacces_candidate < 0) eacces_candidate = static_cast<int>(i);
    } else if (err != ENOENT && err != ENOTDIR && err != ESTALE && err != ENAMETOOLONG) {
      ReportAndExit(plan.error_fd, ChildError::kExec, err, static_cast<int>(i));
    }
  }
  if (eacces_candidate >= 0) {
    ReportAndExit(plan.error_fd, ChildError::kExec, EACCES, eacces_candidate);
  }
  ReportAndExit(plan.error_fd, ChildError::kExec, ENOENT, -1);
}

int ChildMain(void* plan) { RunChild(*static_cast<ChildPlan*>(plan)); }

// The child's stack while it shares the parent's memory (RunChild needs a few kilobytes).
constexpr size_t kChildStackBytes = 256 * 1024;

absl::Status ChildErrorToStatus(const ChildError& e, const SubprocessOptions& opts,
                                const std::vector<std::string>& candidates,
                                const std::string& path_env) {
  const std::string& prog = opts.argv[0];
  const std::string where = (e.candidate >= 0 && e.candidate < static_cast<int>(candidates.size()))
                                ? candidates[e.candidate]
                                : prog;
  switch (e.stage) {
    case ChildError::kSetup:
      return absl::InternalError(
          absl::StrCat("cannot run '", prog, "': setting up the child failed: ", ErrnoText(e.err)));
    case ChildError::kChdir:
      if (e.err == ENOENT || e.err == ENOTDIR) {
        return absl::NotFoundError(absl::StrCat("cannot run '", prog, "': working directory '",
                                                opts.cwd, "' does not exist"));
      }
      if (e.err == EACCES) {
        return absl::PermissionDeniedError(absl::StrCat(
            "cannot run '", prog, "': working directory '", opts.cwd, "' is not accessible"));
      }
      return absl::InternalError(absl::StrCat("cannot run '", prog, "': chdir to '", opts.cwd,
                                              "' failed: ", ErrnoText(e.err)));
    case ChildError::kExec:
      break;
  }
  switch (e.err) {
    case ENOENT:
      if (std::optional<absl::Status> missing = MissingInterpreter(prog, candidates)) {
        return ProgramError(*missing);
      }
      if (prog.find('/') != std::string::npos) {
        return ProgramError(
            absl::NotFoundError(absl::StrCat("cannot run '", prog, "': no such file")));
      }
      return ProgramError(absl::NotFoundError(
          absl::StrCat("cannot run '", prog, "': not found in PATH (", path_env, ")")));
    case EACCES:
      return ProgramError(absl::PermissionDeniedError(
          absl::StrCat("cannot run '", where, "': permission denied (is it executable?)")));
    case ENOEXEC:
      return ProgramError(absl::FailedPreconditionError(
          absl::StrCat("cannot run '", where, "': not an executable format, even for /bin/sh")));
    case E2BIG:
    case ELOOP:
    case ENAMETOOLONG:
      return ProgramError(
          absl::InvalidArgumentError(absl::StrCat("cannot run '", where, "': ", ErrnoText(e.err))));
    default:
      return absl::InternalError(absl::StrCat("cannot run '", where, "': ", ErrnoText(e.err)));
  }
}

// Leader exited (is a zombie or gone)? Does not reap, so the pid (= process group id) stays ours.
bool LeaderExited(pid_t pid) {
  siginfo_t info;
  memset(&info, 0, sizeof(info));
  if (waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) < 0) {
    return errno == ECHILD;  // Reaped behind our back (SIGCHLD ignored): it is gone.
  }
  return info.si_pid == pid;
}

int PollTimeoutMs(absl::Time now, absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) return -1;
  if (deadline <= now) return 0;
  absl::Duration left = deadline - now;
  int64_t ms = absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1)));
  return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

std::string FormatDurationForHumans(absl::Duration d) {
  if (d < absl::Seconds(1)) return absl::StrCat(absl::ToInt64Milliseconds(d), "ms");
  if (d < absl::Seconds(10)) return absl::StrFormat("%.1fs", absl::ToDoubleSeconds(d));
  return absl::StrFormat("%.0fs", absl::ToDoubleSeconds(d));
}

}  // namespace

bool IsProgramError(const absl::Status& status) {
  return status.GetPayload(kProgramErrorUrl).has_value();
}

std::string SubprocessResult::Describe() const {
  switch (kind) {
    case Kind::kExited:
      return absl::StrCat("exit ", exit_code);
    case Kind::kSignaled: {
      const char* name = sigdescr_np(signal);
      return absl::StrCat("killed by signal ", signal, " (", name ? name : "unknown", ")");
    }
    case Kind::kTimedOut:
      return absl::StrCat("timed out after ", FormatDurationForHumans(elapsed));
    case Kind::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(SubprocessOptions opts) {
  if (opts.argv.empty() || opts.argv[0].empty()) {
    return absl::InvalidArgumentError("cannot run a subprocess: argv is empty");
  }

  // Everything that allocates happens before the clone.
  std::vector<std::string> env_strings;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    std::string_view name = entry.substr(0, entry.find('='));
    bool overridden = false;
    for (const auto& [k, v] : opts.env) overridden |= (k == name);
    if (!overridden) env_strings.emplace_back(entry);
  }
  if (opts.container != nullptr) opts.env.push_back(opts.container->cookie());
  std::string path_env = "/usr/local/bin:/usr/bin:/bin";
  if (const char* p = getenv("PATH")) path_env = p;
  for (const auto& [k, v] : opts.env) {
    env_strings.push_back(absl::StrCat(k, "=", v));
    if (k == "PATH") path_env = v;
  }

  ChildPlan plan;
  const std::string& prog = opts.argv[0];
  if (prog.find('/') != std::string::npos) {
    plan.candidates.push_back(prog);
  } else {
    for (absl::string_view dir : absl::StrSplit(path_env, ':')) {
      plan.candidates.push_back(absl::StrCat(dir.empty() ? "." : dir, "/", prog));
    }
  }
  for (std::string& a : opts.argv) plan.argv.push_back(a.data());
  plan.argv.push_back(nullptr);
  static char kShell[] = "/bin/sh";
  plan.sh_argv = {kShell, nullptr};
  plan.sh_argv.insert(plan.sh_argv.end(), plan.argv.begin() + 1, plan.argv.end());
  for (std::string& e : env_strings) plan.envp.push_back(e.data());
  plan.envp.push_back(nullptr);
  if (!opts.cwd.empty()) plan.cwd = opts.cwd.c_str();

  int out_pipe[2] = {-1, -1};
  int err_pipe[2] = {-1, -1};
  int devnull = -1;
  int wake = -1;
  auto close_all = [&] {
    CloseFd(out_pipe[0]);
    CloseFd(out_pipe[1]);
    CloseFd(err_pipe[0]);
    CloseFd(err_pipe[1]);
    CloseFd(devnull);
    CloseFd(wake);
  };
  if (pipe2(out_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0) {
    int err = errno;
    close_all();
    return absl::InternalError(absl::StrCat("cannot run '", prog, "': pipe: ", ErrnoText(err)));
  }
  devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (devnull < 0 || wake < 0) {
    int err = errno;
    close_all();
    return absl::InternalError(
        absl::StrCat("cannot run '", prog, "': /dev/null or eventfd: ", ErrnoText(err)));
  }
  out_pipe[1] = AboveStdio(out_pipe[1]);
  err_pipe[1] = AboveStdio(err_pipe[1]);
  devnull = AboveStdio(devnull);
  plan.devnull_fd = devnull;
  plan.output_fd = out_pipe[1];
  plan.error_fd = err_pipe[1];
  if (opts.container != nullptr) plan.cgroup_fd = opts.container->procs_fd();

  // The child borrows the parent's memory until it execs (CLONE_VM | CLONE_VFORK, as
  // posix_spawn does; RunChild only writes its own stack and the error pipe). fork() would copy
  // the page tables of a process that may hold a coordinator and k agents, and every page the
  // parent's threads wrote afterwards would take a copy-on-write fault: that was a measurable
  // part of each test's start in `farm bisect --agents k`.
  void* stack = mmap(nullptr, kChildStackBytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) {
    int err = errno;
    close_all();
    return absl::InternalError(
        absl::StrCat("cannot run '", prog, "': no memory for the child's stack: ", ErrnoText(err)));
  }
  // Block every signal across the clone so no parent handler runs in the child before it resets
  // them.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  const absl::Time start = absl::Now();
  pid_t pid = clone(ChildMain, static_cast<char*>(stack) + kChildStackBytes,
                    CLONE_VM | CLONE_VFORK | SIGCHLD, &plan);
  int fork_errno = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  munmap(stack, kChildStackBytes);
  CloseFd(out_pipe[1]);
  CloseFd(err_pipe[1]);
  CloseFd(devnull);
  if (pid < 0) {
    close_all();
    return absl::InternalError(
        absl::StrCat("cannot run '", prog, "': clone: ", ErrnoText(fork_errno)));
  }
  // Also from the parent, so the group exists whoever runs first (EACCES once the child exec'd).
  setpgid(pid, pid);

  ChildError child_error;
  ssize_t n;
  do {
    n = read(err_pipe[0], &child_error, sizeof(child_error));
  } while (n < 0 && errno == EINTR);
  CloseFd(err_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof(child_error))) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    close_all();
    return ChildErrorToStatus(child_error, opts, plan.candidates, path_env);
  }

  int pid_fd = -1;
#if defined(SYS_pidfd_open)
  pid_fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pid_fd >= 0) fcntl(pid_fd, F_SETFD, FD_CLOEXEC);
#endif
  fcntl(out_pipe[0], F_SETFL, fcntl(out_pipe[0], F_GETFL) | O_NONBLOCK);
  int output_fd = out_pipe[0];
  out_pipe[0] = -1;
  return std::unique_ptr<Subprocess>(
      new Subprocess(pid, output_fd, wake, pid_fd, start, std::move(opts)));
}

Subprocess::Subprocess(pid_t pid, int output_fd, int wake_fd, int pid_fd, absl::Time start,
                       SubprocessOptions opts)
    : pid_(pid),
      output_fd_(output_fd),
      wake_fd_(wake_fd),
      pid_fd_(pid_fd),
      start_(start),
      opts_(std::move(opts)) {}

Subprocess::~Subprocess() {
  bool reaped;
  {
    absl::MutexLock lock(&mu_);
    reaped = reaped_;
  }
  if (!reaped) {
    KillGroup();
    Reap();
  }
  CloseFd(output_fd_);
  CloseFd(pid_fd_);
  close(wake_fd_);
}

void Subprocess::KillGroup() {
  absl::MutexLock lock(&mu_);
  // While the leader is unreaped (even a zombie) its pid, and so the group id, cannot be reused.
  if (!reaped_) kill(-pid_, SIGKILL);
}

int Subprocess::Reap() {
  absl::MutexLock lock(&mu_);
  int status = -1;
  while (waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) {
      status = -1;  // ECHILD: someone else reaped it (SIGCHLD ignored); the status is lost.
      break;
    }
  }
  reaped_ = true;
  return status;
}

void Subprocess::Cancel() {
  cancelled_.store(true);
  KillGroup();
  uint64_t one = 1;
  ssize_t unused = write(wake_fd_, &one, sizeof(one));
  (void)unused;
}

SubprocessResult Subprocess::Wait() {
  if (result_.has_value()) return *result_;

  const absl::Time deadline =
      opts_.timeout == absl::InfiniteDuration() ? absl::InfiniteFuture() : start_ + opts_.timeout;
  char buf[65536];
  // Reads what is in the pipe now; returns false at EOF (or a read error), closing it.
  auto read_available = [&]() -> bool {
    while (output_fd_ >= 0) {
      ssize_t n = read(output_fd_, buf, sizeof(buf));
      if (n > 0) {
        if (opts_.on_output) opts_.on_output(std::string_view(buf, static_cast<size_t>(n)));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      CloseFd(output_fd_);
    }
    return false;
  };

  bool leader_exited = false;
  bool timed_out = false;
  std::vector<std::string> outlived;
  absl::Time drain_deadline = absl::InfiniteFuture();
  while (true) {
    if (cancelled_.load()) break;
    absl::Time now = absl::Now();
    if (leader_exited) {
      if (output_fd_ < 0 || now >= drain_deadline) break;
    } else if (now >= deadline) {
      timed_out = true;
      break;
    }

    pollfd fds[3];
    int nfds = 0;
    int out_idx = -1, pid_idx = -1;
    fds[nfds] = {wake_fd_, POLLIN, 0};
    ++nfds;
    if (output_fd_ >= 0) {
      out_idx = nfds;
      fds[nfds++] = {output_fd_, POLLIN, 0};
    }
    if (!leader_exited && pid_fd_ >= 0) {
      pid_idx = nfds;
      fds[nfds++] = {pid_fd_, POLLIN, 0};
    }
    absl::Time wake_at = leader_exited ? drain_deadline : deadline;
    if (!leader_exited && pid_fd_ < 0) wake_at = std::min(wake_at, now + kExitPollInterval);
    int rc = poll(fds, nfds, PollTimeoutMs(now, wake_at));
    if (rc < 0 && errno != EINTR) break;  // Cannot happen with valid fds; avoid spinning.
    if (rc > 0 && fds[0].revents != 0) {
      uint64_t count;
      ssize_t unused = read(wake_fd_, &count, sizeof(count));
      (void)unused;
    }
    if (out_idx >= 0 && fds[out_idx].revents != 0) read_available();
    bool check_exit = pid_fd_ < 0 || (pid_idx >= 0 && fds[pid_idx].revents != 0);
    if (!leader_exited && check_exit && LeaderExited(pid_)) {
      leader_exited = true;
      // Whatever the leader left running would otherwise hold the pipe open forever: its group,
      // and what left the group but not the container.
      if (opts_.container != nullptr) outlived = opts_.container->KillAll();
      KillGroup();
      drain_deadline = absl::Now() + kDrainGrace;
    }
  }

  SubprocessResult result;
  if (cancelled_.load() || timed_out) {
    KillGroup();
    if (opts_.container != nullptr) opts_.container->KillAll();
  }
  read_available();  // What was already written, without waiting for EOF.
  int status = Reap();
  result.elapsed = absl::Now() - start_;
  result.outlived = std::move(outlived);
  if (cancelled_.load()) {
    result.kind = SubprocessResult::Kind::kCancelled;
  } else if (timed_out) {
    result.kind = SubprocessResult::Kind::kTimedOut;
  } else if (status != -1 && WIFSIGNALED(status)) {
    result.kind = SubprocessResult::Kind::kSignaled;
    result.signal = WTERMSIG(status);
  } else {
    result.kind = SubprocessResult::Kind::kExited;
    result.exit_code = status == -1 ? -1 : WEXITSTATUS(status);
  }
  result_ = result;
  return result;
}

}  // namespace farm
