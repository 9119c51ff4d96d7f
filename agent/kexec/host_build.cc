#include "agent/kexec/host_build.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/build/kernel_build.h"
#include "agent/workspace/workspace.h"
#include "common/status_macros.h"
#include "common/task_control/task_control.h"

namespace farm::kexec {

namespace fs = std::filesystem;

WorkspaceHostKernelBuilder::WorkspaceHostKernelBuilder(Workspace* workspace, int slot,
                                                       std::string ccache_dir,
                                                       std::string images_dir)
    : workspace_(workspace),
      slot_(slot),
      ccache_dir_(std::move(ccache_dir)),
      images_dir_(std::move(images_dir)) {}

std::string WorkspaceHostKernelBuilder::KeptImage(const std::string& key) const {
  return absl::StrCat(images_dir_, "/", key, "/bzImage");
}

absl::StatusOr<HostKernelBuild> WorkspaceHostKernelBuilder::Build(
    const farm::v1::HostKernel& kernel, const std::function<void(std::string_view)>& on_output,
    TaskControl* control) {
  auto say = [&](const std::string& line) {
    if (on_output) on_output(line);
  };
  HostKernelBuild out;
  const std::string kept = kernel.key().empty() ? "" : KeptImage(kernel.key());
  if (!kept.empty() && fs::is_regular_file(kept)) {
    say(absl::StrCat("farm: host kernel ", kernel.label(), " (", kernel.commit(), "): kept image ",
                     kept, "\n"));
    out.built = out.kept = true;
    out.image = kept;
    return out;
  }
  absl::StatusOr<KernelBuildResult> built;
  for (bool pristine : {false, true}) {
    absl::StatusOr<CheckoutResult> checkout =
        workspace_->Checkout(slot_, kernel.repo(), kernel.commit(), pristine);
    if (!checkout.ok()) {
      return absl::Status(checkout.status().code(),
                          absl::StrCat("host kernel checkout: ", checkout.status().message()));
    }
    say(absl::StrCat("farm: building host kernel ", kernel.label(), " (", kernel.commit(), ")",
                     pristine ? " again in a pristine worktree" : "", "\n"));
    KernelBuildPaths paths;
    paths.source_dir = checkout->worktree;
    paths.build_dir = checkout->build_dir;
    paths.ccache_dir = ccache_dir_;
    if (!ccache_dir_.empty()) {
      // <root>/slots/<n>/src -> <root>, as the task runner's base: hits cross slots.
      paths.ccache_base_dir = CommonAncestor(
          fs::path(checkout->worktree).parent_path().parent_path().parent_path(), ccache_dir_);
    }
    built = BuildKernel(kernel.build(), paths, on_output, control);
    if (!built.ok()) {
      return absl::Status(built.status().code(),
                          absl::StrCat("host kernel build: ", built.status().message()));
    }
    say(absl::StrFormat("farm: host kernel build: %s in %.1fs (ccache %d hits, %d misses)\n",
                        built->built ? "ok" : "FAILED", absl::ToDoubleSeconds(built->elapsed),
                        built->ccache_hits, built->ccache_misses));
    out.retried_pristine = pristine;
    if (built->built) break;
  }
  if (!built->built) {
    out.failure = built->failure_excerpt;
    if (!out.failure.empty()) say(absl::StrCat("farm: the build's errors:\n", out.failure, "\n"));
    return out;
  }
  out.built = true;
  if (kept.empty()) {
    out.image = built->image;
    return out;
  }
  // Copied, then renamed: a crash leaves the kept image whole or absent.
  std::error_code ec;
  fs::create_directories(fs::path(kept).parent_path(), ec);
  const std::string tmp = kept + ".tmp";
  fs::copy_file(built->image, tmp, fs::copy_options::overwrite_existing, ec);
  if (!ec) fs::rename(tmp, kept, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot keep the host kernel image as ", kept, ": ", ec.message()));
  }
  out.image = kept;
  return out;
}

}  // namespace farm::kexec
