// Kernel modules for the initramfs of a distribution kernel, whose virtio, block and 9p drivers
// are modules: names resolved in the kernel's module tree, dependencies first.
#ifndef FARM_AGENT_BOOT_MODULES_H_
#define FARM_AGENT_BOOT_MODULES_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace farm::boot {

// The .ko files to insmod, in order, so that `names` ("virtio_blk", "9pnet_virtio"; '-' and '_'
// are the same) and everything they depend on (the "depends=" of each module's .modinfo) load.
// `modules_dir` is a kernel's /lib/modules/<version> tree (from its package, dpkg -x); modules
// listed in its modules.builtin are skipped. Uncompressed modules only.
// Errors: NOT_FOUND a module is neither in the tree nor built in;
//         INVALID_ARGUMENT a module is compressed or not an ELF module; INTERNAL unreadable tree.
absl::StatusOr<std::vector<std::string>> ResolveModules(const std::string& modules_dir,
                                                        const std::vector<std::string>& names);

// The "depends=" list of a module's .modinfo section (exposed for tests).
absl::StatusOr<std::vector<std::string>> ModuleDependencies(std::string_view ko);

}  // namespace farm::boot

#endif  // FARM_AGENT_BOOT_MODULES_H_
