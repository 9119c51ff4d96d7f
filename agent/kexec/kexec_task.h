// KexecTask: a kexec agent's task that needs a host kernel, as a state machine over a journal in
// the work directory (farm.proto's KexecJournal), so that a kexec, a crash or a power cycle at any
// step either resumes the task or reports how it ended:
//
//   Begin: a host kernel given as a revision: BUILDING -> Build (HostKernelBuilder) ->
//   STAGING -> kexec -s -l -> SWITCHING (with the boot id) -> announce -> Switch
//   after the reboot, Resume: the new boot runs the expected release with farm.task=<id>
//     -> TESTING -> the test -> Finished: REPORTING -> delivered: the journal is removed
//   a boot that is not the task's kernel (it panicked, hung and was power-cycled, or never
//   started): "host kernel did not boot", a verdict (SKIP, or BAD with bad_on_host_boot)
//
// Thread safety: none; one task at a time (a kexec agent has one slot).
#ifndef FARM_AGENT_KEXEC_KEXEC_TASK_H_
#define FARM_AGENT_KEXEC_KEXEC_TASK_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/kexec/host_build.h"
#include "agent/kexec/host_machine.h"
#include "farm/v1/farm.pb.h"

namespace farm::kexec {

struct KexecOptions {
  std::string journal_path;    // <workdir>/kexec/task
  std::string host_path;       // <workdir>/kexec/host: the boot id and key of the host kernel run
  std::string default_initrd;  // for a HostKernel without its own initrd
  std::string base_cmdline;    // the host kernels' command line; empty: this boot's /proc/cmdline
  int panic_seconds = 10;      // panic=N on the host kernel's command line
  uint32_t max_attempts = 3;   // kexecs of one task (restarted by crashes) before giving up
  // The machine's default kernel, which an idle agent returns to (ReturnToDefault); its initrd,
  // empty: default_initrd.
  std::string default_kernel;
  std::string default_kernel_initrd;
  // Builds host kernels given as revisions (HostKernel.commit); null: prebuilt images only. Not
  // owned.
  HostKernelBuilder* builder = nullptr;
};

// What the agent does next with the task.
struct KexecStep {
  enum class Kind {
    kBuild,   // the host kernel is a revision: call Build() (it may take long), then go on
    kRun,     // run `assign` (host_kernel already cleared) here, under the wanted kernel
    kSwitch,  // staged: announce `release` to the coordinator, then call Switch()
    kReport,  // send `result` (and call Delivered() once it is sent)
  };
  Kind kind = Kind::kReport;
  farm::v1::Assign assign;
  farm::v1::TaskResult result;
  std::string release;  // the host kernel's `uname -r`
};

class KexecTask {
 public:
  // `machine` is not owned and must outlive this.
  KexecTask(HostMachine* machine, KexecOptions options);

  // A new Assign with a host kernel. Runs it here when the machine already runs that kernel;
  // otherwise stages it (kSwitch). A kernel that kexec refuses is a "did not boot" verdict; an
  // image that is missing, kexec-tools missing or a journal that cannot be written, an
  // infrastructure error.
  KexecStep Begin(const farm::v1::Assign& assign);
  // After kBuild: builds the journal's host kernel (output to `on_output`, cancelled through
  // `control`) and stages the image as for a prebuilt one. A revision that does not build is a
  // verdict (SKIP, "host kernel ... did not build"); a build the agent could not run, an
  // infrastructure error.
  KexecStep Build(const std::function<void(std::string_view)>& on_output, TaskControl* control);
  // At start-up: the journal's task and what to do with it; nullopt when there is none.
  std::optional<KexecStep> Resume();
  // Reboots into the staged kernel. Returns only on failure (or after systemd took the job).
  absl::Status Switch();
  // The test ended: keeps the result until Delivered().
  void Finished(const farm::v1::TaskResult& result);
  // The result was sent: forgets the task.
  void Delivered();
  // HostKernel.key of the host kernel this boot runs, when a task kexecked into it (kept across
  // agent restarts within the boot); empty in any other boot, the default kernel's among them.
  std::string RunningHostKey();
  // Kexecs into the default kernel (no task: nothing is journaled, the next boot starts afresh).
  // Returns only on failure: FAILED_PRECONDITION without a default kernel or with a task in the
  // journal, or kexec's error.
  absl::Status ReturnToDefault();

 private:
  absl::Status Write(const farm::v1::KexecJournal& journal);
  // NOT_FOUND without a journal; DATA_LOSS when it cannot be parsed.
  absl::StatusOr<farm::v1::KexecJournal> Read();
  KexecStep Stage(farm::v1::KexecJournal journal);
  KexecStep Report(farm::v1::KexecJournal journal, farm::v1::TaskResult result);
  KexecStep Run(farm::v1::KexecJournal journal);

  HostMachine* machine_;
  const KexecOptions options_;
};

// The assign as the task runner sees it: the host kernel is the agent's business.
farm::v1::Assign WithoutHostKernel(farm::v1::Assign assign);

}  // namespace farm::kexec

#endif  // FARM_AGENT_KEXEC_KEXEC_TASK_H_
