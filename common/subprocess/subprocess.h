// Running child processes for the agent: build and test commands, with merged output streamed to
// a callback, a timeout, cancellation from any thread, and no orphans left behind.
#ifndef FARM_COMMON_SUBPROCESS_SUBPROCESS_H_
#define FARM_COMMON_SUBPROCESS_SUBPROCESS_H_

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/subprocess/containment.h"

namespace farm {

struct SubprocessOptions {
  // The program and its arguments. argv[0] is looked up in PATH (the child's PATH, i.e. after
  // `env` is applied) if it contains no '/'; otherwise it is a path, relative to `cwd`.
  std::vector<std::string> argv;
  // Working directory of the child; empty: inherit the parent's.
  std::string cwd;
  // Variables added to, or overriding, the parent's environment.
  std::vector<std::pair<std::string, std::string>> env;
  // Measured from Start(); when it passes, the whole process group is killed with SIGKILL.
  absl::Duration timeout = absl::InfiniteDuration();
  // Called with chunks of the merged stdout+stderr, in order, from the thread that calls Wait().
  // Chunk boundaries are arbitrary (not lines). May be empty: output is discarded.
  std::function<void(std::string_view)> on_output;
  // The container the child joins before it runs (common/subprocess/containment.h), so that
  // processes that leave its process group (setsid) are still found: when the leader exits, on
  // timeout and on cancel, everything in it is killed with the group. Not owned; must outlive
  // the Subprocess. nullptr: the process group only.
  ProcessContainer* container = nullptr;
};

struct SubprocessResult {
  enum class Kind { kExited, kSignaled, kTimedOut, kCancelled };
  Kind kind = Kind::kExited;
  int exit_code = -1;      // kExited only.
  int signal = 0;          // kSignaled only.
  absl::Duration elapsed;  // From Start() until the child was reaped.
  // With a container: the processes still in it when the leader exited ("pid 123 (sleep)"),
  // which were then killed.
  std::vector<std::string> outlived;

  // "exit 3", "killed by signal 9 (Killed)", "timed out after 60s", "cancelled".
  std::string Describe() const;
};

// Whether a Subprocess::Start error is the program's own fault (it does not exist, is not
// executable, its #! interpreter is missing, its arguments are too long), as opposed to the
// machine's (a working directory missing, clone or pipe failing).
bool IsProgramError(const absl::Status& status);

// One child process (the leader of its own process group) and everything it starts in that group.
//
// Thread safety: Wait() must be called from one thread, at most once (a second call returns the
// first result). Cancel() and pid() may be called from any thread at any time. Destruction must
// not race with Wait() or Cancel().
class Subprocess {
 public:
  // Starts the child in its own new process group, stdin from /dev/null, stdout and stderr into one
  // pipe. All signals are unblocked and at their default disposition in the child; descriptors of
  // the parent are not inherited (except 0, 1, 2).
  // Errors (known synchronously, before this returns):
  //   INVALID_ARGUMENT  argv is empty.
  //   NOT_FOUND         the program does not exist (or is not in PATH), or `cwd` does not exist.
  //   PERMISSION_DENIED the program cannot be executed ("is it executable?") or `cwd` is not
  //                     accessible.
  //   NOT_FOUND         also when the program's #! interpreter does not exist (the message
  //                     names it).
  //   FAILED_PRECONDITION the file is in no executable format even for /bin/sh. (A file that
  //                     execve refuses with ENOEXEC, i.e. a script without a #! line, is run by
  //                     /bin/sh, as execvp and `git bisect run` do.)
  //   INTERNAL          pipe/clone failures.
  // IsProgramError tells the errors that concern the program itself from the others.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(SubprocessOptions opts);

  // Pumps output to on_output until the child exits, the timeout passes, or Cancel() is called.
  // On timeout/cancel the whole process group gets SIGKILL. When the leader exits, any remaining
  // members of its process group (e.g. `sleep 1000 &` left by a script) are SIGKILLed too, so
  // nothing keeps the pipe open; the output still buffered in the pipe is delivered. Reaps the
  // leader. If Cancel() was called before Wait() returns, the result is kCancelled.
  SubprocessResult Wait();

  // Kills the process group with SIGKILL and makes a running (or later) Wait() return kCancelled.
  // Thread-safe; callable from any thread, before, during or after Wait(); idempotent; a no-op once
  // the child has been reaped.
  void Cancel();

  // The child's pid, which is also its process group id.
  pid_t pid() const { return pid_; }

  // Kills the process group and reaps the leader if Wait() has not done so.
  ~Subprocess();

  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

 private:
  Subprocess(pid_t pid, int output_fd, int wake_fd, int pid_fd, absl::Time start,
             SubprocessOptions opts);

  // Kills the process group unless the leader has been reaped. Takes mu_.
  void KillGroup();
  // Reaps the leader (blocking) and records its wait status. Takes mu_.
  int Reap();

  const pid_t pid_;
  int output_fd_;      // Read end of the merged stdout+stderr pipe; -1 once closed.
  const int wake_fd_;  // eventfd written by Cancel() to wake poll().
  int pid_fd_;         // pidfd of the leader (readable when it exits); -1 if unsupported.
  const absl::Time start_;
  const SubprocessOptions opts_;

  std::atomic<bool> cancelled_{false};
  absl::Mutex mu_;
  // Once true the pid may be recycled: never signal the group again.
  bool reaped_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<SubprocessResult> result_;  // Set by Wait().
};

}  // namespace farm

#endif  // FARM_COMMON_SUBPROCESS_SUBPROCESS_H_
