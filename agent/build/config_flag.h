// The user's words for a kernel configuration (`farm bisect --kernel --config ...`, the job file's
// `config:`) turned into a KernelBuild, on the machine where the user typed them: files are read
// there and shipped as content, so agents need no copy.
#ifndef FARM_AGENT_BUILD_CONFIG_FLAG_H_
#define FARM_AGENT_BUILD_CONFIG_FLAG_H_

#include <string>

#include "absl/status/status.h"
#include "farm/v1/farm.pb.h"

namespace farm {

// Parses `flag`, one of:
//   FILE                     a whole .config (an existing file)      -> spec.config
//   TARGET                   a make target: tinyconfig, defconfig, x86_64_defconfig, ...
//   BASE+FRAGMENT[+...]      BASE a FILE or a TARGET; each FRAGMENT either a path to a fragment
//                            file (it contains '/' or ends in ".config" and exists; its content is
//                            shipped) or the name of one the kernel tree provides ("kvm_guest",
//                            looked up at each commit in arch/x86/configs/ and kernel/configs/)
// and sets config, config_target and fragments of `spec` (other fields are left alone).
// Errors: INVALID_ARGUMENT for an empty flag, an empty part ("tinyconfig+"), or a word that is
// neither an existing file nor a plausible target/fragment name; NOT_FOUND for a path (it has a
// '/') that does not exist. Messages name the flag and say what is accepted.
absl::Status ParseKernelConfigFlag(const std::string& flag, farm::v1::KernelBuild* spec);

}  // namespace farm

#endif  // FARM_AGENT_BUILD_CONFIG_FLAG_H_
