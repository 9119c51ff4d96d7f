// Helpers for integration tests: temp dirs, shell commands, generated repositories, and running
// `git bisect run` and the farm binaries side by side.
#ifndef FARM_TESTS_LIB_TEST_UTIL_H_
#define FARM_TESTS_LIB_TEST_UTIL_H_

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/lib/shell_json.h"  // Quote

namespace farm::testing {

// A fresh directory under the test's temp dir.
std::string MakeTempDir(const std::string& name);

// Path of a built binary (FARM_BIN_DIR) or a source file (FARM_SOURCE_DIR).
std::string Bin(const std::string& name);
std::string Source(const std::string& relative);

struct Repo {
  std::string path;
  std::vector<std::string> commits;  // creation order
  std::string root, bad, culprit;
  std::vector<std::string> skipped, broken;
};
// tests/lib/make_repo.py with the given arguments (see that file).
Repo MakeRepo(const std::string& dir, const std::string& args);

// Writes an executable script.
void WriteScript(const std::string& path, const std::string& body);

// The answer of a bisect, parsed from git's words (farm prints the same):
// "<sha> is the first bad commit", or the list after "could be any of:".
struct BisectAnswer {
  std::string first_bad;             // empty when ambiguous
  std::set<std::string> candidates;  // when ambiguous
  bool operator==(const BisectAnswer& o) const {
    return first_bad == o.first_bad && candidates == o.candidates;
  }
};
BisectAnswer ParseAnswer(const std::string& output);
std::string Describe(const BisectAnswer& a);

// Runs `git bisect run script` in a fresh clone of `repo`.
BisectAnswer GitBisectRun(const std::string& repo, const std::string& bad,
                          const std::vector<std::string>& goods, const std::string& script,
                          std::string* output = nullptr);

// A background process (coordinator, agent) whose output goes to a file.
class Background {
 public:
  Background(const std::vector<std::string>& argv, const std::string& log_path);
  ~Background();  // SIGKILL and reap
  // Waits until the log contains `text` or the process dies or `timeout` passes.
  bool WaitForOutput(const std::string& text, absl::Duration timeout);
  std::string Output() const;
  void Kill(int sig);
  int Wait();    // exit status
  bool Alive();  // not exited (reaps it when it has)
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  std::string log_;
  bool reaped_ = false;
};

// A TCP port on 127.0.0.1 that was free a moment ago. Racy (another process may take it before
// it is bound again): prefer listening on port 0 and reading the address back
// (WaitForListenAddress).
int FreePort();

// Waits until `process` (a farm-coordinator started with --listen 127.0.0.1:0) prints the
// complete line "... listening on ADDRESS ..."; returns ADDRESS ("127.0.0.1:41234"), or "" when
// the process died or `timeout` passed first.
std::string WaitForListenAddress(Background& process, absl::Duration timeout);

// A TCP proxy on 127.0.0.1 in front of `target_port`, whose link can be cut: Cut() drops every
// connection and closes new ones as soon as they are accepted, until Restore(). It listens from
// construction to destruction on a port the kernel chose (port()).
class TcpProxy {
 public:
  explicit TcpProxy(int target_port);
  ~TcpProxy();
  int port() const { return port_; }
  void Cut();
  void Restore();

 private:
  void AcceptLoop(int lfd);  // owns lfd, the listening socket
  void Pump(int from, int to);
  int target_port_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> cut_{false};
  std::mutex mu_;
  std::vector<int> open_;  // connected sockets, both sides
  std::vector<std::thread> pumps_;
  std::thread acceptor_;
};

// Waits (polling a condition, with a deadline) until `pred` holds.
bool WaitFor(const std::function<bool()>& pred, absl::Duration timeout);

}  // namespace farm::testing

#endif  // FARM_TESTS_LIB_TEST_UTIL_H_
