// The coordinator's HTTP port: /metrics, the dashboard's pages and its JSON API (/api/v1).
//
// One cpp-httplib server (its own thread pool) over a Coordinator it does not own. Pages and
// their script are embedded in the binary (coordinator/web/static): nothing is fetched from the
// network. Who may do what (docs/api.md):
//  - /metrics: everyone (counts and latencies, no job data), as before the dashboard.
//  - the pages themselves: everyone (they hold no data; they ask the API with the token the
//    login page stored).
//  - /api/v1 GET: a request whose "Authorization: Bearer <token>" carries one of the coordinator's
//    tokens; without a token only when `public_read` (--public-dashboard). A wrong token is
//    always refused (401), so a mistyped token is said, not silently read-only.
//  - /api/v1 POST (cancel): a valid token only; never anonymous.
//  - Over plain HTTP a token is accepted only from a loopback peer (a reverse proxy with TLS, or
//    `ssh -L`), so that it does not cross the network in clear; `tls` serves HTTPS instead.
//
// Thread safety: Start and the destructor from one thread; requests run on the server's pool.
#ifndef FARM_COORDINATOR_WEB_DASHBOARD_H_
#define FARM_COORDINATOR_WEB_DASHBOARD_H_

#include <memory>
#include <set>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/rpc/credentials.h"
#include "coordinator/monitor/monitors.h"
#include "coordinator/scheduler/coordinator.h"

namespace httplib {
class Server;
}

namespace farm::web {

struct DashboardOptions {
  std::string host = "127.0.0.1";
  int port = 0;              // 0: any free port
  TokenTable tokens;         // the coordinator's bearer tokens (empty: nobody can log in)
  bool public_read = false;  // --public-dashboard: anonymous visitors may read
  TlsFiles tls;              // cert/key set: serve HTTPS with them
  // The branch monitors shown by /api/v1/monitors (nullptr: none); must outlive the dashboard.
  Monitors* monitors = nullptr;
};

// Who a request comes from, as the dashboard decides it.
enum class Caller {
  kRefused,    // no access: wrong token, or anonymous without public_read
  kAnonymous,  // may read
  kUser,       // a valid token: may read and cancel
};

// Decides who `authorization` (the header's value, "" when absent) is. `loopback`: the peer is on
// this host; `tls`: the connection is encrypted. On kRefused, `*why` says what was wrong and what
// to do.
// On kUser, `who` (when given) is the token's identity (owner and admin rules of CancelJob).
Caller Authenticate(const DashboardOptions& options, const std::string& authorization,
                    bool loopback, bool tls, std::string* why, CallerIdentity* who = nullptr);

class Dashboard {
 public:
  // Binds host:port and starts serving. UNAVAILABLE (naming the address and the reason) when it
  // cannot be bound; INVALID_ARGUMENT when TLS files are given but unusable.
  static absl::StatusOr<std::unique_ptr<Dashboard>> Start(Coordinator* core,
                                                          DashboardOptions options);
  ~Dashboard();  // stops serving and waits for requests in progress

  // "HOST:PORT" as bound (the port chosen when 0 was asked).
  const std::string& address() const { return address_; }
  // "http" or "https".
  const char* scheme() const { return options_.tls.cert.empty() ? "http" : "https"; }

 private:
  Dashboard(Coordinator* core, DashboardOptions options);
  void Routes();

  Coordinator* core_;
  DashboardOptions options_;
  std::unique_ptr<httplib::Server> server_;
  std::string address_;
  std::thread thread_;
};

}  // namespace farm::web

#endif  // FARM_COORDINATOR_WEB_DASHBOARD_H_
