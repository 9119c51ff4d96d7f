// farm-agent: one per test host. Dials the coordinator and runs the tasks it is given.
#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "agent/boot/qemu_boot.h"
#include "agent/link/agent.h"
#include "cli/exit_codes.h"
#include "common/log/grpc_log.h"
#include "common/log/log.h"
#include "common/signals.h"
#include "common/spec/spec.h"

int main(int argc, char** argv) {
  CLI::App app{"farm-agent: runs bisect tasks for a farm coordinator"};
  farm::AgentOptions opts;
  app.add_option("--coordinator", opts.coordinator, "coordinator address, HOST:PORT or unix:PATH")
      ->required();
  app.add_option("--workdir", opts.workdir, "directory for mirrors, worktrees and build dirs")
      ->required();
  app.add_option("--ccache-dir", opts.ccache_dir,
                 "ccache for kernel builds (default: WORKDIR/ccache); agents on one host may "
                 "share one");
  app.add_option("--slots", opts.slots, "tasks run at once (one worktree each)")
      ->capture_default_str();
  app.add_option("--id", opts.agent_id, "stable agent id (default: HOSTNAME:WORKDIR)");
  app.add_option("--tls-ca", opts.tls.ca, "CA that signed the coordinator's certificate (TLS)");
  app.add_option("--tls-cert", opts.tls.cert, "this agent's client certificate (mTLS)");
  app.add_option("--tls-key", opts.tls.key, "private key of --tls-cert");
  std::vector<std::string> labels;
  app.add_option("--label", labels,
                 "KEY=VALUE this agent offers (repeatable); a job that requires labels (farm "
                 "bisect --require) runs only on agents that have them all");
  app.add_flag("--kexec", opts.kexec,
               "bare-metal kexec agent: run tasks that name a host kernel by rebooting this "
               "machine into it (kexec-tools; --slots 1; the task survives the reboot in WORKDIR)");
  app.add_option("--kexec-initrd", opts.kexec_initrd,
                 "initrd for host kernels that come without one");
  app.add_option("--kexec-cmdline", opts.kexec_cmdline,
                 "command line of the host kernels (default: this boot's /proc/cmdline)");
  int boot_deadline = 300;
  app.add_option("--kexec-boot-deadline", boot_deadline,
                 "seconds a reboot into a host kernel may take before the coordinator "
                 "power-cycles the machine")
      ->check(CLI::Range(10, 3600))
      ->capture_default_str();
  app.add_option("--kexec-default-kernel", opts.kexec_default_kernel,
                 "this machine's default kernel image, which an idle agent kexecs back into "
                 "(see --idle-return; with --kexec-default-initrd, else --kexec-initrd)");
  app.add_option("--kexec-default-initrd", opts.kexec_default_initrd,
                 "initrd of --kexec-default-kernel");
  std::string idle_return = "10m";
  app.add_option("--idle-return", idle_return,
                 "how long an idle kexec agent stays in a task's host kernel (waiting for more "
                 "tasks for it) before it kexecs back into --kexec-default-kernel, e.g. 90s, "
                 "10m; 0: never")
      ->check([](const std::string& text) {
        absl::Duration d;
        return absl::ParseDuration(text, &d) && d >= absl::ZeroDuration()
                   ? std::string()
                   : "--idle-return " + text + ": give a duration such as 90s or 10m (0: never)";
      })
      ->capture_default_str();
  std::string probe_kernel = farm::boot::DefaultProbeKernel();
  app.add_option("--kvm-probe-kernel", probe_kernel,
                 "a kernel known to boot, booted once under KVM at start-up to tell whether KVM "
                 "works here (env FARM_KVM_PROBE_KERNEL; default /boot/vmlinuz-$(uname -r))")
      ->capture_default_str();
  std::string log_level = "info";
  CLI::Option* log_level_flag =
      app.add_option("--log-level", log_level,
                     "least severe messages logged: debug, info, warning or error (env "
                     "FARM_LOG_LEVEL)")
          ->check([](const std::string& text) {
            absl::StatusOr<farm::log::Level> level = farm::log::ParseLevel(text);
            return level.ok() ? std::string() : std::string(level.status().message());
          });
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11's own codes (e.g. 104 for a bad number) are not in the farm's table.
    return app.exit(e) == 0 ? 0 : farm::kExitBadInput;
  }
  farm::log::SetProgramName("farm-agent");
  opts.kexec_boot_deadline = absl::Seconds(boot_deadline);
  absl::ParseDuration(idle_return, &opts.kexec_idle_return);
  if (log_level_flag->count() > 0) farm::log::SetLevel(*farm::log::ParseLevel(log_level));
  farm::log::RouteGrpcLogs();
  for (const std::string& label : labels) {
    std::string key, value;
    absl::Status st = farm::spec::ParseLabel(label, "--label", &key, &value);
    if (!st.ok()) {
      FARM_LOG(Error) << st.message();
      return farm::kExitBadInput;
    }
    opts.labels[key] = value;
  }
  // Before the first Hello, which carries the result: at most ~10 s, about 3 s where KVM guests
  // hang, nothing without /dev/kvm. Tasks use the same (per-process) result.
  if (!probe_kernel.empty()) setenv("FARM_KVM_PROBE_KERNEL", probe_kernel.c_str(), 1);
  const absl::Time probe_start = absl::Now();
  for (auto& [k, v] : farm::boot::ProbeBootCapabilities()) opts.capabilities[k] = v;
  // "farm-agent: accel ..." is what deployments and the kernel e2e test look for.
  FARM_LOG(Info) << absl::StrFormat(
      "farm-agent: accel %s%s%s (%.1fs)", opts.capabilities["accel"],
      opts.capabilities.count("accel_note") ? ": " : "",
      opts.capabilities.count("accel_note") ? opts.capabilities["accel_note"] : "",
      absl::ToDoubleSeconds(absl::Now() - probe_start));
  farm::Agent* agent_ptr = nullptr;
  std::atomic<farm::Agent*> stop_target{nullptr};
  farm::HandleTerminationSignals([&stop_target](int) {
    if (farm::Agent* a = stop_target.load()) a->Stop();
  });

  absl::StatusOr<std::unique_ptr<farm::Agent>> agent = farm::Agent::Create(opts);
  if (!agent.ok()) {
    FARM_LOG(Error) << agent.status().message();
    return farm::kExitBadInput;
  }
  agent_ptr = agent->get();
  stop_target.store(agent_ptr);
  FARM_LOG(Info) << "agent " << (*agent)->id() << ": " << opts.slots << " slot(s), coordinator "
                 << opts.coordinator;
  (*agent)->Run();
  return 0;
}
