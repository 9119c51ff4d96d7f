// Host kernels given as git revisions (farm matrix --host-repo R --host-kernels REV...,
// farm bisect --host-repo R --host-good G --host-bad B): HostKernels that name a commit of a
// repository and the kernel recipe (--kernel --config) the kexec agents build it with.
#ifndef FARM_CLI_HOST_REVISIONS_H_
#define FARM_CLI_HOST_REVISIONS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "farm/v1/farm.pb.h"

namespace farm {

// HostKernel.key of a kernel built from a commit whose tree id is `tree_hex` with `build`: the
// sha256 of the tree id and the recipe, so commits with the same tree share it and another
// recipe makes another kernel.
std::string SourceHostKernelKey(const std::string& tree_hex, const farm::v1::KernelBuild& build);

// One HostKernel per revision of the repository at `repo` (a local path), in the given order,
// labelled with the revision as typed. Errors (INVALID_ARGUMENT, NOT_FOUND) name the flag and
// the revision that is not a commit there.
absl::StatusOr<std::vector<farm::v1::HostKernel>> HostKernelsAtRevisions(
    const std::string& repo, const std::vector<std::string>& revisions,
    const farm::v1::KernelBuild& build);

// The host range of a two-dimensional bisect: `good`, then the commits of `bad --not good` on
// bad's first-parent line, oldest first (as `git bisect --first-parent`), `bad` last. Errors
// say what is wrong and what to do: an unknown revision, good and bad the same commit, good a
// descendant of bad (swapped), good not an ancestor of bad (diverging branches).
absl::StatusOr<std::vector<farm::v1::HostKernel>> HostKernelsInRange(
    const std::string& repo, const std::string& good, const std::string& bad,
    const farm::v1::KernelBuild& build);

}  // namespace farm

#endif  // FARM_CLI_HOST_REVISIONS_H_
