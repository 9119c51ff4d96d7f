// HostKernelBuilder: a kexec task's host kernel given as a git revision (HostKernel.repo, .commit,
// .build) made into an image before it is staged with kexec -s -l.
#ifndef FARM_AGENT_KEXEC_HOST_BUILD_H_
#define FARM_AGENT_KEXEC_HOST_BUILD_H_

#include <functional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "farm/v1/farm.pb.h"

namespace farm {
class TaskControl;  // common/task_control/task_control.h
class Workspace;    // agent/workspace/workspace.h
}  // namespace farm

namespace farm::kexec {

struct HostKernelBuild {
  // False when the revision does not build (also in a pristine worktree): a verdict about that
  // host kernel (a skip), with `failure` saying why.
  bool built = false;
  std::string image;    // the kept image, when built
  bool kept = false;    // the image was already kept under the kernel's key: no build ran
  std::string failure;  // the build's error lines, when not built
  bool retried_pristine = false;
};

class HostKernelBuilder {
 public:
  virtual ~HostKernelBuilder() = default;
  // Builds `kernel` (commit of repo with build), or finds the image kept under its key. Build
  // output goes to `on_output` (may be empty). Errors are the agent's, not the kernel's (the
  // checkout fails, a build tool is missing, the disk is full, `control` was cancelled).
  virtual absl::StatusOr<HostKernelBuild> Build(
      const farm::v1::HostKernel& kernel, const std::function<void(std::string_view)>& on_output,
      TaskControl* control) = 0;
};

// The agent's builder: checks the commit out in slot `slot` of `workspace` (a slot no task runner
// uses, so that the guest kernels built in the task slots stay incremental and the host builds
// too), builds it there with agent/build's BuildKernel under ccache (`ccache_dir`, hits shared
// with the task slots' builds of the same files), retries once in a pristine worktree when it
// does not build, and keeps the image as <images_dir>/<key>/bzImage so that the next task on the
// same host kernel does not build again. Thread-compatible: one build at a time.
class WorkspaceHostKernelBuilder : public HostKernelBuilder {
 public:
  // `workspace` is not owned and must outlive this.
  WorkspaceHostKernelBuilder(Workspace* workspace, int slot, std::string ccache_dir,
                             std::string images_dir);
  absl::StatusOr<HostKernelBuild> Build(const farm::v1::HostKernel& kernel,
                                        const std::function<void(std::string_view)>& on_output,
                                        TaskControl* control) override;

  // Where the image of host kernel `key` is kept.
  std::string KeptImage(const std::string& key) const;

 private:
  Workspace* workspace_;
  const int slot_;
  const std::string ccache_dir_;
  const std::string images_dir_;
};

}  // namespace farm::kexec

#endif  // FARM_AGENT_KEXEC_HOST_BUILD_H_
