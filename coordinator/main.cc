// farm-coordinator: owns jobs, the frontier, scheduling and the store; serves Farm and AgentLink.
//
// Exit codes: cli/exit_codes.h (the farm's one table). Each failure's message names its cause.
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cli/exit_codes.h"
#include "common/log/grpc_log.h"
#include "common/log/log.h"
#include "common/rpc/credentials.h"
#include "common/signals.h"
#include "coordinator/health/health_checks.h"
#include "coordinator/power/power.h"
#include "coordinator/service/service.h"
#include "coordinator/store/backup.h"
#include "coordinator/web/dashboard.h"
#include "httplib.h"

namespace {

using farm::kExitAddressInUse;
using farm::kExitDatabaseDamaged;
using farm::kExitDatabaseInUse;
using farm::kExitFailed;
constexpr int kExitUsage = farm::kExitBadInput;

int ExitCodeFor(const absl::Status& st) {
  switch (st.code()) {
    case absl::StatusCode::kInvalidArgument:
      return kExitUsage;
    case absl::StatusCode::kUnavailable:
      return kExitAddressInUse;
    case absl::StatusCode::kAlreadyExists:
      return kExitDatabaseInUse;
    case absl::StatusCode::kDataLoss:
      return kExitDatabaseDamaged;
    default:
      return kExitFailed;
  }
}

}  // namespace

int main(int argc, char** argv) {
  farm::log::SetProgramName("farm-coordinator");
  CLI::App app{"farm-coordinator: the bisect farm's coordinator"};
  std::string listen = "127.0.0.1:7411";
  farm::CoordinatorOptions opts;
  opts.db_path = "farm.db";
  int lease_s = 30, heartbeat_s = 5;
  double retention_days = 30;
  farm::ServerSecurity security;
  std::string tokens_file;
  app.add_option("--listen", listen, "address to serve on (HOST:PORT or unix:PATH)")
      ->capture_default_str();
  app.add_option("--db", opts.db_path, "SQLite database file")->capture_default_str();
  app.add_option("--cache-dir", opts.cache_dir,
                 "mirrors of remote repositories (default: next to the database)");
  app.add_option("--lease", lease_s,
                 "seconds an agent may stay silent before its tasks are "
                 "requeued")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  app.add_option("--heartbeat", heartbeat_s, "seconds between agent heartbeats")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  app.add_option("--retention-days", retention_days,
                 "delete ended jobs, their tasks and output after this many days (0: never)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 36500.0));
  app.add_option("--tls-cert", security.tls.cert, "serve TLS with this certificate (PEM)");
  app.add_option("--tls-key", security.tls.key, "private key of --tls-cert (PEM)");
  app.add_option("--tls-client-ca", security.tls.ca,
                 "CA that signs agents' client certificates: agents must present one (mTLS)");
  app.add_option("--tokens", tokens_file,
                 "file of users' bearer tokens, `TOKEN USER [admin]` per line: clients must "
                 "present one (a line with only a token is user token-N, an admin)");
  app.add_option("--max-slots-per-user", opts.max_slots_per_user,
                 "at most this many tasks of one user's jobs run at once (0: no cap)")
      ->capture_default_str();
  std::string metrics_listen;
  app.add_option("--http-listen,--metrics-listen", metrics_listen,
                 "serve Prometheus metrics (/metrics), the dashboard (/) and its JSON API "
                 "(/api/v1) at http://HOST:PORT (default: off)");
  bool public_dashboard = false;
  app.add_flag("--public-dashboard", public_dashboard,
               "let visitors without a token read the dashboard and its API (never cancel)");
  bool http_tls = false;
  app.add_flag("--http-tls", http_tls,
               "serve --http-listen over HTTPS with --tls-cert/--tls-key (tokens are otherwise "
               "accepted over HTTP only from this host)");
  std::string backup_file;
  app.add_option("--backup", backup_file,
                 "copy the database (--db) into FILE as one consistent snapshot, even while a "
                 "coordinator runs on it, and exit");
  app.add_option("--sendmail", opts.sendmail,
                 "program that sends branch monitors' reports (`PROGRAM -t -i`, message on stdin)")
      ->capture_default_str();
  app.add_option("--report-from", opts.report_from,
                 "From: and Reported-by: of reports (default: bisect farm "
                 "<bisect-farm@HOSTNAME>)");
  app.add_option("--public-url", opts.public_url,
                 "base URL of the links in reports (a dashboard; default: `farm status` commands)");
  std::string power_file;
  app.add_option("--power-commands", power_file,
                 "YAML file of the command that power-cycles each kexec agent's machine "
                 "(agents: {AGENT_ID: COMMAND}); run when one is not back from a kexec in time");
  int max_boot_deadline_s = 600;
  app.add_option("--max-boot-deadline", max_boot_deadline_s,
                 "the longest a kexec agent may take to reboot before it is power-cycled, seconds")
      ->capture_default_str()
      ->check(CLI::Range(10, 86400));
  std::vector<std::string> health_flags;
  app.add_option("--health-check", health_flags,
                 "LABEL=SCRIPT[,every=DURATION][,tasks=N][,retry=DURATION][,timeout=DURATION]: "
                 "agents with label LABEL (key=value, or * for all) run SCRIPT when they connect, "
                 "every DURATION and every N tasks; one that fails it is bad (no work) until it "
                 "passes, checked again every retry (default 5m). Repeatable; the first that "
                 "matches an agent applies")
      ->allow_extra_args(false);
  std::string log_level;
  app.add_option("--log-level", log_level,
                 "lowest level logged: debug, info, warning, error or off (default: info, or "
                 "FARM_LOG_LEVEL)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11's own codes (e.g. 104 for a bad number) are not in the farm's table.
    return app.exit(e) == 0 ? 0 : farm::kExitBadInput;
  }
  if (!log_level.empty()) {
    absl::StatusOr<farm::log::Level> level = farm::log::ParseLevel(log_level);
    if (!level.ok()) {
      FARM_LOG(Error) << "--log-level: " << level.status().message();
      return kExitUsage;
    }
    farm::log::SetLevel(*level);
  }
  farm::log::RouteGrpcLogs();
  if (!backup_file.empty()) {
    absl::Status st = farm::BackupDatabase(opts.db_path, backup_file);
    if (!st.ok()) {
      std::fprintf(stderr, "farm-coordinator --backup: %s\n", std::string(st.message()).c_str());
      return st.code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitFailed;
    }
    std::printf("copied %s to %s\n", opts.db_path.c_str(), backup_file.c_str());
    return 0;
  }
  std::string metrics_host;
  int metrics_port = 0;
  if (!metrics_listen.empty()) {
    size_t colon = metrics_listen.rfind(':');
    if (colon == std::string::npos || colon == 0 ||
        !absl::SimpleAtoi(metrics_listen.substr(colon + 1), &metrics_port) || metrics_port < 0 ||
        metrics_port > 65535) {
      FARM_LOG(Error) << "--http-listen '" << metrics_listen
                      << "' is not HOST:PORT (e.g. 0.0.0.0:9411, or 127.0.0.1:0 for any free "
                         "port)";
      return kExitUsage;
    }
    metrics_host = metrics_listen.substr(0, colon);
    if (metrics_host.size() > 2 && metrics_host.front() == '[') {
      metrics_host = metrics_host.substr(1, metrics_host.size() - 2);
    }
  }
  if (public_dashboard && metrics_listen.empty()) {
    FARM_LOG(Error) << "--public-dashboard opens the dashboard of --http-listen HOST:PORT: give "
                       "that too";
    return kExitUsage;
  }
  if (http_tls && (security.tls.cert.empty() || metrics_listen.empty())) {
    FARM_LOG(Error) << "--http-tls serves --http-listen with --tls-cert/--tls-key: give all three";
    return kExitUsage;
  }
  if (!tokens_file.empty()) {
    std::string warning = farm::PermissionWarning(tokens_file);
    if (!warning.empty()) {
      FARM_LOG(Warning) << warning;
    }
    absl::StatusOr<farm::TokenTable> tokens = farm::ReadTokens(tokens_file);
    if (!tokens.ok()) {
      FARM_LOG(Error) << tokens.status().message();
      return kExitUsage;
    }
    security.tokens = *tokens;
  }
  opts.retention = absl::Hours(24) * retention_days;
  opts.max_boot_deadline = absl::Seconds(max_boot_deadline_s);
  if (!power_file.empty()) {
    absl::StatusOr<std::map<std::string, std::string>> commands =
        farm::LoadPowerCommands(power_file);
    if (!commands.ok()) {
      FARM_LOG(Error) << "--power-commands: " << commands.status().message();
      return kExitUsage;
    }
    opts.power = std::make_shared<farm::PowerCommands>(std::move(*commands));
  }
  for (const std::string& flag : health_flags) {
    absl::StatusOr<farm::HealthCheckConfig> check = farm::ParseHealthCheckFlag(flag);
    if (!check.ok()) {
      FARM_LOG(Error) << check.status().message();
      return kExitUsage;
    }
    opts.health_checks.push_back(std::move(*check));
  }
  std::atomic<farm::CoordinatorServer*> stop_target{nullptr};
  farm::HandleTerminationSignals([&stop_target](int) {
    if (farm::CoordinatorServer* s = stop_target.load()) s->Shutdown();
  });
  if (heartbeat_s >= lease_s) {
    FARM_LOG(Error) << "--heartbeat (" << heartbeat_s << ") must be shorter than --lease ("
                    << lease_s << ")";
    return kExitUsage;
  }
  opts.lease = absl::Seconds(lease_s);
  opts.heartbeat = absl::Seconds(heartbeat_s);
  if (opts.cache_dir.empty()) {
    opts.cache_dir =
        (std::filesystem::absolute(opts.db_path).parent_path() / "farm-mirrors").string();
  }
  absl::StatusOr<std::unique_ptr<farm::CoordinatorServer>> server =
      farm::CoordinatorServer::Start(opts, listen, security);
  if (!server.ok()) {
    FARM_LOG(Error) << server.status().message();
    return ExitCodeFor(server.status());
  }
  stop_target.store(server->get());
  // The HTTP port: Prometheus metrics, the dashboard and its JSON API (coordinator/web).
  std::unique_ptr<farm::web::Dashboard> dashboard;
  if (!metrics_listen.empty()) {
    farm::web::DashboardOptions web;
    web.host = metrics_host;
    web.port = metrics_port;
    web.tokens = security.tokens;
    web.public_read = public_dashboard;
    web.monitors = (*server)->monitors();
    if (http_tls) web.tls = security.tls;
    absl::StatusOr<std::unique_ptr<farm::web::Dashboard>> started =
        farm::web::Dashboard::Start((*server)->core(), std::move(web));
    if (!started.ok()) {
      FARM_LOG(Error) << "--http-listen: " << started.status().message();
      return ExitCodeFor(started.status());
    }
    dashboard = std::move(*started);
  }
  std::printf("farm-coordinator listening on %s (database %s, %s%s%s)\n",
              (*server)->address().c_str(), opts.db_path.c_str(),
              security.tls.cert.empty() ? "plaintext" : "TLS",
              security.tls.ca.empty() ? "" : ", agents need client certificates",
              security.tokens.empty() ? "" : ", clients need tokens");
  if (dashboard) {
    // Tests and the load harness read these two lines for the addresses.
    std::printf("farm-coordinator metrics at %s://%s/metrics\n", dashboard->scheme(),
                dashboard->address().c_str());
    std::printf("farm-coordinator dashboard at %s://%s/\n", dashboard->scheme(),
                dashboard->address().c_str());
  }
  std::fflush(stdout);
  (*server)->Wait();
  dashboard.reset();
  return 0;
}
