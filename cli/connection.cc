// How the commands reach a coordinator: --coordinator (with TLS and a token), or the local state.
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "cli/render.h"

namespace farm {

absl::StatusOr<Connection> Connect(const ClientFlags& flags, const LocalFlags* local) {
  Connection c;
  const absl::Duration retry_for = absl::Seconds(flags.connect_timeout);
  const absl::Duration reconnect_for = absl::Seconds(flags.reconnect_timeout);
  if (flags.coordinator.empty()) {
    if (local == nullptr) {
      return absl::InvalidArgumentError(
          "no coordinator: give --coordinator HOST:PORT or set FARM_COORDINATOR");
    }
    absl::StatusOr<std::string> dir = LocalStateDir(local->repo, local->workdir);
    if (!dir.ok()) return dir.status();
    absl::StatusOr<std::unique_ptr<LocalCoordinator>> lc = LocalCoordinator::Open(*dir);
    if (!lc.ok()) return lc.status();
    c.local = std::move(*lc);
    c.client = std::make_unique<FarmClient>(c.local->address(), nullptr, retry_for, reconnect_for);
    return c;
  }
  std::string token;
  if (const char* t = std::getenv("FARM_TOKEN")) token = t;
  if (!flags.token_file.empty()) {
    std::string warning = PermissionWarning(flags.token_file);
    if (!warning.empty()) std::fprintf(stderr, "farm: warning: %s\n", Printable(warning).c_str());
    absl::StatusOr<std::string> t = ReadToken(flags.token_file);
    if (!t.ok()) return t.status();
    token = *t;
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
      MakeChannelCredentials(flags.tls, token);
  if (!creds.ok()) return creds.status();
  c.client = std::make_unique<FarmClient>(flags.coordinator, *creds, retry_for, reconnect_for);
  return c;
}

void AddCoordinatorFlag(CLI::App* cmd, ClientFlags& flags, const std::string& extra_help) {
  cmd->add_option("--coordinator", flags.coordinator,
                  absl::StrCat("coordinator address (env FARM_COORDINATOR)", extra_help));
}

void AddLocalFlags(CLI::App* cmd, LocalFlags& local) {
  cmd->add_option("--repo", local.repo,
                  "without --coordinator: the repository of a local bisect, whose state is read")
      ->capture_default_str();
  cmd->add_option("--workdir", local.workdir,
                  "without --coordinator: the state directory of a local bisect run with "
                  "--workdir");
}

}  // namespace farm
