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
#include "common/log/log.h"
#include "common/rpc/credentials.h"
#include "common/signals.h"
#include "coordinator/power/power.h"
#include "coordinator/service/service.h"
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
                 "file of users' bearer tokens, one per line: clients must present one");
  std::string metrics_listen;
  app.add_option("--metrics-listen", metrics_listen,
                 "serve Prometheus metrics at http://HOST:PORT/metrics (default: off)");
  std::string power_file;
  app.add_option("--power-commands", power_file,
                 "YAML file of the command that power-cycles each kexec agent's machine "
                 "(agents: {AGENT_ID: COMMAND}); run when one is not back from a kexec in time");
  int max_boot_deadline_s = 600;
  app.add_option("--max-boot-deadline", max_boot_deadline_s,
                 "the longest a kexec agent may take to reboot before it is power-cycled, seconds")
      ->capture_default_str()
      ->check(CLI::Range(10, 86400));
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
  std::string metrics_host;
  int metrics_port = 0;
  if (!metrics_listen.empty()) {
    size_t colon = metrics_listen.rfind(':');
    if (colon == std::string::npos || colon == 0 ||
        !absl::SimpleAtoi(metrics_listen.substr(colon + 1), &metrics_port) || metrics_port < 0 ||
        metrics_port > 65535) {
      FARM_LOG(Error) << "--metrics-listen '" << metrics_listen
                      << "' is not HOST:PORT (e.g. 0.0.0.0:9411, or 127.0.0.1:0 for any free "
                         "port)";
      return kExitUsage;
    }
    metrics_host = metrics_listen.substr(0, colon);
    if (metrics_host.size() > 2 && metrics_host.front() == '[') {
      metrics_host = metrics_host.substr(1, metrics_host.size() - 2);
    }
  }
  if (!tokens_file.empty()) {
    std::string warning = farm::PermissionWarning(tokens_file);
    if (!warning.empty()) {
      FARM_LOG(Warning) << warning;
    }
    absl::StatusOr<std::set<std::string>> tokens = farm::ReadTokens(tokens_file);
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
  // Prometheus metrics over plain HTTP (read-only, no job data: counts and latencies).
  httplib::Server metrics;
  std::thread metrics_thread;
  std::string metrics_address;
  if (!metrics_listen.empty()) {
    farm::Coordinator* core = (*server)->core();
    metrics.Get("/metrics", [core](const httplib::Request&, httplib::Response& res) {
      res.set_content(core->MetricsText(), "text/plain; version=0.0.4; charset=utf-8");
    });
    int port = metrics_port == 0
                   ? metrics.bind_to_any_port(metrics_host)
                   : (metrics.bind_to_port(metrics_host, metrics_port) ? metrics_port : -1);
    if (port < 0) {
      FARM_LOG(Error) << "cannot serve metrics on " << metrics_listen << ": "
                      << std::strerror(errno);
      return kExitAddressInUse;
    }
    metrics_address = absl::StrCat(metrics_host, ":", port);
    metrics_thread = std::thread([&metrics] { metrics.listen_after_bind(); });
  }
  std::printf("farm-coordinator listening on %s (database %s, %s%s%s)\n",
              (*server)->address().c_str(), opts.db_path.c_str(),
              security.tls.cert.empty() ? "plaintext" : "TLS",
              security.tls.ca.empty() ? "" : ", agents need client certificates",
              security.tokens.empty() ? "" : ", clients need tokens");
  if (!metrics_address.empty()) {
    std::printf("farm-coordinator metrics at http://%s/metrics\n", metrics_address.c_str());
  }
  std::fflush(stdout);
  (*server)->Wait();
  if (metrics_thread.joinable()) {
    metrics.stop();
    metrics_thread.join();
  }
  return 0;
}
