// farm-coordinator: owns jobs, the frontier, scheduling and the store; serves Farm and AgentLink.
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "common/signals.h"

#include "CLI/CLI.hpp"
#include "coordinator/service/service.h"

int main(int argc, char** argv) {
  CLI::App app{"farm-coordinator: the bisect farm's coordinator"};
  std::string listen = "127.0.0.1:7411";
  farm::CoordinatorOptions opts;
  opts.db_path = "farm.db";
  int lease_s = 30, heartbeat_s = 5;
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
  CLI11_PARSE(app, argc, argv);
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
      farm::CoordinatorServer::Start(opts, listen);
  if (!server.ok()) {
    std::fprintf(stderr, "farm-coordinator: %s\n", std::string(server.status().message()).c_str());
    return 2;
  }
  stop_target.store(server->get());
  std::printf("farm-coordinator listening on %s (database %s)\n", (*server)->address().c_str(),
              opts.db_path.c_str());
  std::fflush(stdout);
  (*server)->Wait();
  return 0;
}
