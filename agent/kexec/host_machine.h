// HostMachine: what a kexec agent asks of the machine it runs on (its boot id, kernel release and
// command line) and how it switches kernels (kexec_file_load, then systemctl kexec or kexec -e).
// An interface so that the journal's state machine (kexec_task.h) is tested with a fake machine.
#ifndef FARM_AGENT_KEXEC_HOST_MACHINE_H_
#define FARM_AGENT_KEXEC_HOST_MACHINE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace farm::kexec {

class HostMachine {
 public:
  virtual ~HostMachine() = default;
  // /proc/sys/kernel/random/boot_id: changes at every boot, kexec included.
  virtual std::string BootId() = 0;
  // `uname -r`.
  virtual std::string Release() = 0;
  // /proc/cmdline.
  virtual std::string Cmdline() = 0;
  // Stages `image` (with `initrd` when not empty) and `cmdline` for the next kexec.
  // Errors: FAILED_PRECONDITION with kexec's output when it refuses (a corrupt image, no
  // kexec_file_load); NOT_FOUND when kexec-tools is missing.
  virtual absl::Status Load(const std::string& image, const std::string& initrd,
                            const std::string& cmdline) = 0;
  // Reboots into the staged kernel. Returns only when that failed, or (systemctl kexec) after
  // systemd accepted the job: the process is then stopped by systemd.
  virtual absl::Status Execute() = 0;
};

// The machine this process runs on. Thread-compatible.
class RealHostMachine : public HostMachine {
 public:
  std::string BootId() override;
  std::string Release() override;
  std::string Cmdline() override;
  absl::Status Load(const std::string& image, const std::string& initrd,
                    const std::string& cmdline) override;
  absl::Status Execute() override;
};

// The kernel release (`uname -r`) a bzImage announces in its setup header (the kernel_version
// field, boot protocol >= 2.00): "6.1.0-57-cloud-amd64". Errors: the file cannot be read, or is
// not a bzImage (INVALID_ARGUMENT, saying so).
absl::StatusOr<std::string> BzImageRelease(const std::string& path);

// The command line a task's host kernel boots with: `base` without earlier farm.* parameters,
// then `farm.task=<task_id>`, `panic=<panic_seconds>` (a dead kernel reboots by itself) and
// `extra` (HostKernel.cmdline, last so that it may override). An empty `task_id` and a
// `panic_seconds` of 0 leave those out (the default kernel's command line).
std::string KexecCmdline(const std::string& base, const std::string& task_id, int panic_seconds,
                         const std::string& extra);

// Marks where HostKernel.cmdline starts on a host kernel's command line.
inline constexpr char kExtraMarker[] = "farm.extra=1";

// The HostKernel.cmdline part of a host kernel's command line (after kExtraMarker), with single
// spaces; "" without the marker.
std::string CmdlineExtra(const std::string& cmdline);

// The value of `farm.task=` on a command line, or "".
std::string TaskOnCmdline(const std::string& cmdline);

}  // namespace farm::kexec

#endif  // FARM_AGENT_KEXEC_HOST_MACHINE_H_
