#include "common/rpc/listen_check.h"

#include <dirent.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace farm {
namespace {

// Inodes of the sockets listening on `port` in one of /proc/net/tcp, /proc/net/tcp6.
void ListeningInodes(const char* table, int port, std::set<std::string>* inodes) {
  std::ifstream f(table);
  std::string line;
  std::getline(f, line);  // header
  while (std::getline(f, line)) {
    std::vector<std::string> cols = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (cols.size() < 10 || cols[3] != "0A") continue;  // 0A: TCP_LISTEN
    size_t colon = cols[1].rfind(':');
    int local_port = 0;
    if (colon == std::string::npos ||
        !absl::SimpleHexAtoi(cols[1].substr(colon + 1), &local_port) || local_port != port) {
      continue;
    }
    inodes->insert(cols[9]);
  }
}

}  // namespace

std::optional<PortListener> FindPortListener(int port) {
  std::set<std::string> inodes;
  ListeningInodes("/proc/net/tcp", port, &inodes);
  ListeningInodes("/proc/net/tcp6", port, &inodes);
  if (inodes.empty()) return std::nullopt;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return std::nullopt;
  std::optional<PortListener> found;
  while (dirent* e = readdir(proc)) {
    pid_t pid = 0;
    if (!absl::SimpleAtoi(e->d_name, &pid) || pid <= 0) continue;
    const std::string fd_dir = absl::StrCat("/proc/", pid, "/fd");
    DIR* fds = opendir(fd_dir.c_str());
    if (fds == nullptr) continue;  // gone, or not ours to look at
    while (dirent* fd = readdir(fds)) {
      char target[64];
      ssize_t n = readlink(absl::StrCat(fd_dir, "/", fd->d_name).c_str(), target, sizeof(target));
      if (n <= 0 || n == static_cast<ssize_t>(sizeof(target))) continue;
      absl::string_view link(target, n);
      if (!absl::ConsumePrefix(&link, "socket:[") || !absl::ConsumeSuffix(&link, "]")) continue;
      if (inodes.count(std::string(link)) == 0) continue;
      // argv[0]'s base name: /proc/PID/comm is cut at 15 bytes ("farm-coordinato").
      std::ifstream cmdline(absl::StrCat("/proc/", pid, "/cmdline"));
      std::string command;
      std::getline(cmdline, command, '\0');
      command = command.substr(command.rfind('/') + 1);
      if (command.empty()) {
        std::ifstream comm(absl::StrCat("/proc/", pid, "/comm"));
        std::getline(comm, command);
      }
      found = PortListener{pid, command};
      break;
    }
    closedir(fds);
    if (found) break;
  }
  closedir(proc);
  return found;
}

absl::Status CheckPortFree(const std::string& listen) {
  if (absl::StartsWith(listen, "unix:")) return absl::OkStatus();
  size_t colon = listen.rfind(':');
  int port = 0;
  // gRPC binds a port it cannot parse (e.g. 99999) to one the kernel picks, and agents configured
  // with the address the user meant would never find the server.
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot listen on '", listen,
                     "': not HOST:PORT with a port from 0 to 65535 (0 lets the kernel pick one), "
                     "nor unix:/path"));
  }
  if (port == 0) return absl::OkStatus();
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* addrs = nullptr;
  const std::string service = std::to_string(port);
  if (getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &addrs) != 0) {
    return absl::OkStatus();
  }
  bool in_use = false;
  for (addrinfo* a = addrs; a != nullptr && !in_use; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 && errno == EADDRINUSE) in_use = true;
    close(fd);
  }
  freeaddrinfo(addrs);
  if (!in_use) return absl::OkStatus();
  std::string who = "another process";
  if (std::optional<PortListener> l = FindPortListener(port)) {
    who = absl::StrCat("pid ", l->pid, " (", l->command, ")");
  }
  return absl::UnavailableError(
      absl::StrCat("cannot listen on '", listen, "': port ", port, " is in use by ", who,
                   ": stop it, or give another port with --listen HOST:PORT"));
}

}  // namespace farm
