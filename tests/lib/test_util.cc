#include "tests/lib/test_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"

extern char** environ;

namespace farm::testing {

std::string MakeTempDir(const std::string& name) {
  std::string base = ::testing::TempDir();
  if (!base.empty() && base.back() != '/') base += '/';
  std::string tmpl = absl::StrCat(base, "farm-", name, "-XXXXXX");
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  char* dir = mkdtemp(buf.data());
  if (dir == nullptr) ADD_FAILURE() << "mkdtemp " << tmpl;
  return dir ? dir : "";
}

std::string Bin(const std::string& name) {
  const char* d = std::getenv("FARM_BIN_DIR");
  return absl::StrCat(d ? d : FARM_DEFAULT_BIN_DIR, "/", name);
}

std::string Source(const std::string& relative) {
  const char* d = std::getenv("FARM_SOURCE_DIR");
  return absl::StrCat(d ? d : FARM_DEFAULT_SOURCE_DIR, "/", relative);
}

Repo MakeRepo(const std::string& dir, const std::string& args) {
  CommandResult r = Sh(absl::StrCat("python3 ", Quote(Source("tests/lib/make_repo.py")), " ",
                                    Quote(dir), " ", args));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  Repo repo;
  repo.path = JsonString(r.output, "path");
  repo.commits = JsonList(r.output, "commits");
  repo.root = JsonString(r.output, "root");
  repo.bad = JsonString(r.output, "bad");
  repo.culprit = JsonString(r.output, "culprit");
  repo.skipped = JsonList(r.output, "skipped");
  repo.broken = JsonList(r.output, "broken");
  return repo;
}

void WriteScript(const std::string& path, const std::string& body) {
  {
    std::ofstream f(path, std::ios::trunc);
    f << body;
  }
  chmod(path.c_str(), 0755);
}

BisectAnswer ParseAnswer(const std::string& output) {
  BisectAnswer a;
  bool listing = false;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    if (absl::EndsWith(line, " is the first bad commit") && line.size() >= 40) {
      a.first_bad = std::string(line.substr(0, 40));
    }
    if (absl::StrContains(line, "could be any of:")) {
      listing = true;
      continue;
    }
    if (listing) {
      std::string s(absl::StripAsciiWhitespace(line));
      if (s.size() == 40 && s.find_first_not_of("0123456789abcdef") == std::string::npos) {
        a.candidates.insert(s);
      } else {
        listing = false;
      }
    }
  }
  return a;
}

std::string Describe(const BisectAnswer& a) {
  if (!a.first_bad.empty()) return absl::StrCat("first bad ", a.first_bad);
  return absl::StrCat("candidates {", absl::StrJoin(a.candidates, ", "), "}");
}

BisectAnswer GitBisectRun(const std::string& repo, const std::string& bad,
                          const std::vector<std::string>& goods, const std::string& script,
                          std::string* output) {
  std::string clone = MakeTempDir("git-bisect");
  std::string goods_q;
  for (const auto& g : goods) absl::StrAppend(&goods_q, " ", g);
  CommandResult r = Sh(absl::StrCat("git clone -q ", Quote(repo), " ", Quote(clone + "/w"),
                                    " && cd ", Quote(clone + "/w"), " && git bisect start ", bad,
                                    goods_q, " >/dev/null && git bisect run ", Quote(script)));
  if (output) *output = r.output;
  return ParseAnswer(r.output);
}

Background::Background(const std::vector<std::string>& argv, const std::string& log_path)
    : log_(log_path) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  if (posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ) != 0) pid_ = -1;
  posix_spawn_file_actions_destroy(&fa);
  EXPECT_GT(pid_, 0) << "cannot start " << argv[0];
}

Background::~Background() {
  if (pid_ > 0 && !reaped_) {
    kill(pid_, SIGKILL);
    Wait();
  }
}

std::string Background::Output() const {
  std::ifstream f(log_);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool Background::WaitForOutput(const std::string& text, absl::Duration timeout) {
  return WaitFor(
             [&] {
               if (absl::StrContains(Output(), text)) return true;
               int st;
               return !reaped_ && waitpid(pid_, &st, WNOHANG) == pid_ ? (reaped_ = true, false)
                                                                      : false;
             },
             timeout) &&
         absl::StrContains(Output(), text);
}

void Background::Kill(int sig) {
  if (pid_ > 0 && !reaped_) kill(pid_, sig);
}

bool Background::Alive() {
  if (reaped_ || pid_ <= 0) return false;
  int st = 0;
  if (waitpid(pid_, &st, WNOHANG) != pid_) return true;
  reaped_ = true;
  return false;
}

int Background::Wait() {
  if (reaped_ || pid_ <= 0) return -1;
  int st = 0;
  waitpid(pid_, &st, 0);
  reaped_ = true;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

namespace {
int Listen(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 64) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}
}  // namespace

// One thread accepts; two threads per connection copy bytes with blocking I/O. Cut() shuts every
// connected socket down (which wakes the copying threads) and stops listening.
TcpProxy::TcpProxy(int target_port) : target_port_(target_port) {
  int lfd = Listen(0);
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  if (lfd >= 0 && getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port_ = ntohs(addr.sin_port);
  } else {
    ADD_FAILURE() << "TcpProxy cannot listen on 127.0.0.1: " << strerror(errno);
  }
  acceptor_ = std::thread([this, lfd] { AcceptLoop(lfd); });
}

TcpProxy::~TcpProxy() {
  stop_ = true;
  Cut();
  acceptor_.join();
  std::vector<std::thread> pumps;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pumps.swap(pumps_);
  }
  for (auto& t : pumps) t.join();
  for (int fd : open_) close(fd);
}

void TcpProxy::Cut() {
  // Under the lock that AcceptLoop holds from its last look at cut_ to registering a new
  // connection: no connection accepted just before the cut can slip through it.
  std::lock_guard<std::mutex> lock(mu_);
  cut_ = true;
  for (int fd : open_) shutdown(fd, SHUT_RDWR);
}

void TcpProxy::Restore() { cut_ = false; }

void TcpProxy::Pump(int from, int to) {
  char buf[65536];
  while (true) {
    ssize_t n = read(from, buf, sizeof(buf));
    if (n <= 0) break;
    ssize_t off = 0;
    while (off < n) {
      ssize_t w = write(to, buf + off, n - off);
      if (w <= 0) break;
      off += w;
    }
    if (off < n) break;
  }
  shutdown(from, SHUT_RDWR);
  shutdown(to, SHUT_RDWR);
}

void TcpProxy::AcceptLoop(int lfd) {
  // The listening socket stays open for the proxy's whole life (a cut closes what it accepts), so
  // its port is never given up and bound again.
  while (!stop_ && lfd >= 0) {
    pollfd pfd{lfd, POLLIN, 0};
    if (poll(&pfd, 1, 50) <= 0) continue;
    int c = accept(lfd, nullptr, nullptr);
    if (c < 0) continue;
    if (cut_) {
      close(c);
      continue;
    }
    int t = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(target_port_);
    if (cut_ || connect(t, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      close(c);
      close(t);
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (cut_) {
      close(c);
      close(t);
      continue;
    }
    open_.push_back(c);
    open_.push_back(t);
    pumps_.emplace_back([this, c, t] { Pump(c, t); });
    pumps_.emplace_back([this, c, t] { Pump(t, c); });
  }
  if (lfd >= 0) close(lfd);
}

std::string WaitForListenAddress(Background& process, absl::Duration timeout) {
  const std::string kSays = "listening on ";
  std::string address;
  WaitFor(
      [&] {
        const std::string out = process.Output();
        const size_t at = out.find(kSays);
        const size_t eol = at == std::string::npos ? at : out.find('\n', at);
        if (eol != std::string::npos) {
          const std::string rest = out.substr(at + kSays.size(), eol - at - kSays.size());
          address = rest.substr(0, rest.find(' '));
          return true;
        }
        return !process.Alive();
      },
      timeout);
  return address;
}

bool WaitFor(const std::function<bool()>& pred, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (pred()) return true;
    // Polling interval of a condition check with a deadline.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

}  // namespace farm::testing
