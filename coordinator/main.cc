// farm-coordinator: owns jobs, the frontier, scheduling and the store; serves Farm and AgentLink.
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "common/signals.h"

#include "CLI/CLI.hpp"
#include "common/rpc/credentials.h"
#include "coordinator/service/service.h"

int main(int argc, char** argv) {
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
  app.add_option("--lease", lease_s, "seconds an agent may stay silent before its tasks are "
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
  CLI11_PARSE(app, argc, argv);
  if (!tokens_file.empty()) {
    absl::StatusOr<std::set<std::string>> tokens = farm::ReadTokens(tokens_file);
    if (!tokens.ok()) {
      std::fprintf(stderr, "farm-coordinator: %s\n", std::string(tokens.status().message()).c_str());
      return 2;
    }
    security.tokens = *tokens;
  }
  opts.retention = absl::Hours(24) * retention_days;
  std::atomic<farm::CoordinatorServer*> stop_target{nullptr};
  farm::HandleTerminationSignals([&stop_target](int) {
    if (farm::CoordinatorServer* s = stop_target.load()) s->Shutdown();
  });
  if (heartbeat_s >= lease_s) {
    std::fprintf(stderr, "farm-coordinator: --heartbeat (%d) must be shorter than --lease (%d)\n",
                 heartbeat_s, lease_s);
    return 2;
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
    std::fprintf(stderr, "farm-coordinator: %s\n", std::string(server.status().message()).c_str());
    return 2;
  }
  stop_target.store(server->get());
  std::printf("farm-coordinator listening on %s (database %s, %s%s%s)\n",
              (*server)->address().c_str(), opts.db_path.c_str(),
              security.tls.cert.empty() ? "plaintext" : "TLS",
              security.tls.ca.empty() ? "" : ", agents need client certificates",
              security.tokens.empty() ? "" : ", clients need tokens");
  std::fflush(stdout);
  (*server)->Wait();
  return 0;
}
