#include "coordinator/web/dashboard.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "coordinator/web/api.h"
#include "httplib.h"

namespace farm::web {

// Generated from coordinator/web/static by agent/boot/embed_file.cmake.
std::string_view IndexHtml();
std::string_view IndexHtmlDigest();
std::string_view AppJs();
std::string_view AppJsDigest();
std::string_view StyleCss();
std::string_view StyleCssDigest();

namespace {

constexpr absl::string_view kBearer = "Bearer ";

bool IsLoopback(const std::string& addr) {
  return addr == "::1" || absl::StartsWith(addr, "127.") || absl::StartsWith(addr, "::ffff:127.");
}

void Security(httplib::Response& res) {
  // Everything the pages use comes from this server: the policy makes the browser refuse the rest.
  res.set_header("Content-Security-Policy",
                 "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Referrer-Policy", "no-referrer");
}

void Json(httplib::Response& res, const ApiReply& reply) {
  Security(res);
  res.status = reply.http_status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(reply.json, "application/json; charset=utf-8");
}

void Asset(const httplib::Request& req, httplib::Response& res, std::string_view body,
           std::string_view digest, const char* type) {
  Security(res);
  std::string etag = "\"" + std::string(digest.substr(0, 16)) + "\"";
  res.set_header("ETag", etag);
  res.set_header("Cache-Control", "no-cache");
  if (req.get_header_value("If-None-Match") == etag) {
    res.status = 304;
    return;
  }
  res.set_content(std::string(body), type);
}

}  // namespace

Caller Authenticate(const DashboardOptions& options, const std::string& authorization,
                    bool loopback, bool tls, std::string* why, CallerIdentity* who) {
  if (authorization.empty()) {
    if (options.public_read) return Caller::kAnonymous;
    *why = options.tokens.empty()
               ? "this dashboard is not public and the coordinator has no tokens: start "
                 "farm-coordinator with --public-dashboard (read-only for everyone) or with "
                 "--tokens FILE and log in with one"
               : "log in with your farm token (the one `farm` uses: --token-file or FARM_TOKEN); "
                 "anonymous access needs farm-coordinator --public-dashboard";
    return Caller::kRefused;
  }
  if (!absl::StartsWith(authorization, kBearer) || authorization.size() == kBearer.size()) {
    *why = "the Authorization header must be 'Bearer <token>'";
    return Caller::kRefused;
  }
  auto token = options.tokens.find(authorization.substr(kBearer.size()));
  if (token == options.tokens.end()) {
    *why = options.tokens.empty()
               ? "this coordinator has no tokens (farm-coordinator --tokens FILE): log out"
               : "that token is not one of this farm's: check it (`farm` uses the same one) or ask "
                 "the farm's admin";
    return Caller::kRefused;
  }
  if (!tls && !loopback) {
    *why =
        "tokens are accepted over plain HTTP only from this host: serve the dashboard with "
        "farm-coordinator --http-tls, or reach it through a TLS proxy or `ssh -L`";
    return Caller::kRefused;
  }
  if (who != nullptr) *who = token->second;
  return Caller::kUser;
}

Dashboard::Dashboard(Coordinator* core, DashboardOptions options)
    : core_(core), options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<Dashboard>> Dashboard::Start(Coordinator* core,
                                                            DashboardOptions options) {
  std::unique_ptr<Dashboard> d(new Dashboard(core, std::move(options)));
  const DashboardOptions& o = d->options_;
  if (!o.tls.cert.empty()) {
    auto ssl = std::make_unique<httplib::SSLServer>(o.tls.cert.c_str(), o.tls.key.c_str());
    if (!ssl->is_valid()) {
      return absl::InvalidArgumentError(absl::StrCat("cannot serve HTTPS with --tls-cert ",
                                                     o.tls.cert, " and --tls-key ", o.tls.key,
                                                     ": check that both are readable PEM files"));
    }
    d->server_ = std::move(ssl);
  } else {
    d->server_ = std::make_unique<httplib::Server>();
  }
  // cpp-httplib sets SO_REUSEPORT by default: a second coordinator would then share the port
  // and answer half of the requests. SO_REUSEADDR alone still allows a quick restart.
  d->server_->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  d->Routes();
  int port = o.port == 0 ? d->server_->bind_to_any_port(o.host)
                         : (d->server_->bind_to_port(o.host, o.port) ? o.port : -1);
  if (port < 0) {
    return absl::UnavailableError(absl::StrCat("cannot serve HTTP on ", o.host, ":", o.port, ": ",
                                               std::strerror(errno),
                                               " (is the port in use? try another, or :0)"));
  }
  d->address_ =
      absl::StrCat(o.host.find(':') != std::string::npos ? "[" + o.host + "]" : o.host, ":", port);
  d->thread_ = std::thread([s = d->server_.get()] { s->listen_after_bind(); });
  return d;
}

Dashboard::~Dashboard() {
  if (thread_.joinable()) {
    server_->stop();
    thread_.join();
  }
}

void Dashboard::Routes() {
  httplib::Server& s = *server_;
  Coordinator* core = core_;
  s.Get("/metrics", [core](const httplib::Request&, httplib::Response& res) {
    res.set_content(core->MetricsText(), "text/plain; version=0.0.4; charset=utf-8");
  });
  s.Get("/", [](const httplib::Request& req, httplib::Response& res) {
    Asset(req, res, IndexHtml(), IndexHtmlDigest(), "text/html; charset=utf-8");
  });
  s.Get("/app.js", [](const httplib::Request& req, httplib::Response& res) {
    Asset(req, res, AppJs(), AppJsDigest(), "text/javascript; charset=utf-8");
  });
  s.Get("/style.css", [](const httplib::Request& req, httplib::Response& res) {
    Asset(req, res, StyleCss(), StyleCssDigest(), "text/css; charset=utf-8");
  });
  const bool tls = !options_.tls.cert.empty();
  auto api = [this, core, tls](const httplib::Request& req, httplib::Response& res) {
    std::string why;
    CallerIdentity who;
    Caller caller = Authenticate(options_, req.get_header_value("Authorization"),
                                 IsLoopback(req.remote_addr), tls, &why, &who);
    if (caller == Caller::kRefused) {
      res.set_header("WWW-Authenticate", "Bearer realm=\"farm\"");
      Json(res, ErrorReply(absl::UnauthenticatedError(why)));
      return;
    }
    ApiRequest ar;
    ar.method = req.method;
    ar.path = req.path.substr(std::string_view("/api/v1").size());
    ar.caller = who;
    for (const auto& [k, v] : req.params) ar.params[k] = v;
    if (ar.path == "/session") {
      Json(res, ApiReply{200, absl::StrCat(R"({"caller":")",
                                           caller == Caller::kUser ? "user" : "anonymous",
                                           R"(","can_cancel":)",
                                           caller == Caller::kUser ? "true" : "false", "}")});
      return;
    }
    if (req.method == "POST" && caller != Caller::kUser) {
      Json(res, ErrorReply(absl::UnauthenticatedError(
                    "anonymous visitors may only read: log in with a farm token to cancel")));
      return;
    }
    if (req.method == "POST") {
      FARM_LOG(Info) << "dashboard: " << req.path << " from " << req.remote_addr;
    }
    Json(res, HandleApi(*core, options_.monitors, ar));
  };
  s.Get(R"(/api/v1/.*)", api);
  s.Post(R"(/api/v1/.*)", api);
}

}  // namespace farm::web
