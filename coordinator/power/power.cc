#include "coordinator/power/power.h"

#include <yaml-cpp/yaml.h>

#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "common/subprocess/subprocess.h"

namespace farm {
namespace {

constexpr char kExample[] =
    "write it as\n  agents:\n    \"AGENT_ID\": COMMAND THAT POWER-CYCLES ITS MACHINE";

}  // namespace

absl::StatusOr<std::map<std::string, std::string>> LoadPowerCommands(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read power-command file '", path, "': does it exist?"));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("power-command file '", path, "' is not YAML: ", e.what()));
  }
  YAML::Node agents = root["agents"];
  if (!root.IsMap() || !agents || !agents.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat("power-command file '", path, "' has no 'agents' map: ", kExample));
  }
  std::map<std::string, std::string> commands;
  for (const auto& entry : agents) {
    if (!entry.second.IsScalar() || entry.second.Scalar().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("power-command file '", path, "': the entry of agent '",
                       entry.first.Scalar(), "' is not a command: ", kExample));
    }
    commands[entry.first.Scalar()] = entry.second.Scalar();
  }
  return commands;
}

PowerCommands::~PowerCommands() {
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    threads.swap(threads_);
  }
  for (std::thread& t : threads) t.join();
}

void PowerCommands::Cycle(const std::string& agent_id) {
  auto it = commands_.find(agent_id);
  if (it == commands_.end()) return;
  const std::string command = it->second;
  absl::MutexLock lock(&mu_);
  threads_.emplace_back([agent_id, command] {
    FARM_LOG(Warning) << "power-cycling the machine of agent " << agent_id << ": " << command;
    SubprocessOptions opts;
    opts.argv = {"/bin/sh", "-c", command};
    opts.env = {{"FARM_AGENT_ID", agent_id}};
    opts.timeout = absl::Minutes(5);
    std::string output;
    opts.on_output = [&output](std::string_view data) {
      if (output.size() < 4096) output.append(data);
    };
    absl::StatusOr<std::unique_ptr<Subprocess>> p = Subprocess::Start(opts);
    if (!p.ok()) {
      FARM_LOG(Error) << "power command of agent " << agent_id
                      << " cannot start: " << p.status().message();
      return;
    }
    SubprocessResult r = (*p)->Wait();
    if (r.kind != SubprocessResult::Kind::kExited || r.exit_code != 0) {
      FARM_LOG(Error) << "power command of agent " << agent_id << " failed (" << r.Describe()
                      << "): " << output;
    }
  });
}

}  // namespace farm
