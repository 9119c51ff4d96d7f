// `farm`: the global flags, the subcommands (one file each: commands.h) and the dispatch.
#include "cli/cli.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "cli/boot_cmd.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/next_cmd.h"

namespace farm {
namespace {

// CLI11 lets "--" end a list option's values and drops it ("--good A B -- sh -c x"), after which
// the test command's own options would be parsed as farm's. Such a "--" is given twice, so that
// one is left to mark the command.
std::vector<std::string> KeepCommandMark(CLI::App& app, int argc, char** argv) {
  std::vector<std::string> out(argv, argv + argc);
  CLI::App* cmd = nullptr;
  const CLI::Option* last = nullptr;  // the last option whose values follow it as words
  for (size_t i = 1; i < out.size(); ++i) {
    const std::string& word = out[i];
    if (word == "--") {
      if (last != nullptr && last->get_items_expected_max() > 1 && out[i - 1][0] != '-') {
        out.insert(out.begin() + static_cast<std::ptrdiff_t>(i), "--");
      }
      break;
    }
    if (word.size() > 1 && word[0] == '-') {
      CLI::App* scope = cmd != nullptr ? cmd : &app;
      last = word.find('=') == std::string::npos ? scope->get_option_no_throw(word) : nullptr;
    } else if (cmd == nullptr && last == nullptr) {
      for (CLI::App* sub : app.get_subcommands({})) {
        if (sub->get_name() == word) cmd = sub;
      }
    } else if (last != nullptr && last->get_items_expected_max() <= 1) {
      last = nullptr;  // its one value: later words are positional
    }
  }
  return out;
}

}  // namespace

int FarmMain(int argc, char** argv) {
  CLI::App app{"farm: find the commit that broke something, on many machines at once"};
  app.require_subcommand(1);
  ClientFlags client;
  if (const char* env = std::getenv("FARM_COORDINATOR")) client.coordinator = env;
  if (const char* ca = std::getenv("FARM_TLS_CA")) client.tls.ca = ca;
  app.add_option("--tls-ca", client.tls.ca,
                 "CA that signed the coordinator's certificate (env FARM_TLS_CA)");
  app.add_option("--tls-cert", client.tls.cert,
                 "client certificate, when the coordinator wants one");
  app.add_option("--tls-key", client.tls.key, "private key of --tls-cert");
  app.add_option("--token-file", client.token_file, "file holding your token (or set FARM_TOKEN)");
  app.add_option("--connect-timeout", client.connect_timeout,
                 "seconds to keep retrying an unreachable coordinator before exiting with 5")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--reconnect-timeout", client.reconnect_timeout,
                 "seconds a watch keeps reconnecting after the coordinator went away before "
                 "exiting with 5")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 86400.0));

  BisectCommand bisect_cmd;
  CLI::App* bisect = AddBisectCommand(app, bisect_cmd, client);
  BisectCommand submit_cmd;
  submit_cmd.submit = true;
  CLI::App* submit = AddSubmitCommand(app, submit_cmd, client);
  BisectCommand matrix_cmd;
  CLI::App* matrix = AddMatrixCommand(app, matrix_cmd, client);
  WatchCommand watch_cmd;
  CLI::App* watch = AddWatchCommand(app, watch_cmd, client);
  CancelCommand cancel_cmd;
  CLI::App* cancel = AddCancelCommand(app, cancel_cmd, client);
  StatusCommand status_cmd;
  CLI::App* status = AddStatusCommand(app, status_cmd, client);
  LogCommand log_cmd;
  CLI::App* log = AddLogCommand(app, log_cmd, client);

  NextFlags next_flags;
  CLI::App* next = app.add_subcommand(
      "next",
      "print the commits the farm would test next, best first (like git rev-list "
      "--bisect-all), with --timing how long loading and planning took");
  AddNextFlags(next, next_flags);

  BootFlags boot_flags;
  CLI::App* boot = app.add_subcommand("boot", "boot one kernel with a test and print the verdict");
  AddBootFlags(boot, boot_flags);

  CLI::App* agents = AddAgentsCommand(app, client);
  DrainCommand drain;
  AddDrainCommands(app, drain, client);
  AgentStateCommand agent_state_cmd;
  CLI::App* agent_state = AddAgentStateCommand(app, agent_state_cmd, client);
  MonitorCommands monitor_cmds;
  AddMonitorCommands(app, monitor_cmds, client);

  std::vector<std::string> args = KeepCommandMark(app, argc, argv);
  std::vector<char*> arg_ptrs;
  for (std::string& a : args) arg_ptrs.push_back(a.data());
  try {
    app.parse(static_cast<int>(arg_ptrs.size()), arg_ptrs.data());
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitBadInput;
  }

  if (boot->parsed()) return RunBoot(boot_flags);
  if (next->parsed()) return RunNext(next_flags);
  if (bisect->parsed()) return RunBisect(bisect_cmd, client);
  if (submit->parsed()) return RunBisect(submit_cmd, client);
  if (matrix->parsed()) return RunBisect(matrix_cmd, client);
  if (watch->parsed()) return RunWatch(watch_cmd, client);
  if (cancel->parsed()) return RunCancel(cancel_cmd, client);
  if (status->parsed()) return RunStatus(status_cmd, client);
  if (log->parsed()) return RunLog(log_cmd, client);
  if (agents->parsed()) return RunAgents(client);
  if (drain.parsed()) return RunDrain(drain, client);
  if (agent_state->parsed()) return RunAgentState(agent_state_cmd, client);
  if (monitor_cmds.parsed()) return RunMonitorCommand(monitor_cmds, client);
  return kExitBadInput;
}

}  // namespace farm
