// The request schema: every limit a BisectSpec must respect, stated once, and the one check of a
// spec. Called by the CLI before it sends anything, by the job-file reader after it translated
// the YAML, and by the coordinator, which trusts no client; all three say the same thing.
//
// Thread safety: pure functions.
#ifndef FARM_COMMON_SPEC_SPEC_H_
#define FARM_COMMON_SPEC_SPEC_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "farm/v1/farm.pb.h"

namespace farm {
namespace spec {

// Sizes of what a spec carries. The whole request must fit in one gRPC message (64 MiB, see
// common/rpc/channel.cc and the coordinator's server), so the payload, script and kernel config
// together stay well below it.
inline constexpr size_t kMaxTestScriptBytes = 1 << 20;    // Recipe.test_script
inline constexpr size_t kMaxPayloadBytes = 32 << 20;      // BootSpec.payload
inline constexpr size_t kMaxKernelConfigBytes = 4 << 20;  // KernelBuild.config, each fragment
inline constexpr size_t kMaxDescriptionBytes = 4096;      // BisectSpec.description

// Ranges of numbers (inclusive). 0 means "the default" where the proto says so.
inline constexpr uint32_t kMinMemoryMb = 64, kMaxMemoryMb = 65536;  // BootSpec.memory_mb
inline constexpr uint32_t kMinCpus = 1, kMaxCpus = 256;             // BootSpec.cpus
inline constexpr uint32_t kMaxBootTimeoutSeconds = 86400;           // 1 day
inline constexpr uint32_t kMaxTestTimeoutSeconds = 86400;           // 1 day
inline constexpr uint32_t kMaxStepTimeoutSeconds = 7 * 86400;       // Recipe.timeout_seconds
inline constexpr uint32_t kMaxParallel = 65536;                     // BisectSpec.max_parallel
inline constexpr uint32_t kMaxMakeJobs = 1024;                      // KernelBuild.jobs
inline constexpr uint32_t kMaxPriority = 100;                       // BisectSpec.priority
inline constexpr uint32_t kDefaultPriority = 50;                    // when unset
inline constexpr uint32_t kMaxVerifyRuns = 20;                      // BisectSpec.verify
inline constexpr uint32_t kDefaultVerifyRuns = 3;    // --verify without a number, `verify: true`
inline constexpr int kMaxMatrixKernels = 256;        // MatrixSpec.hosts, MatrixSpec.guests, each
inline constexpr int kMaxBisectHostCommits = 20000;  // a two-dimensional bisect's host range

// Hello capability of a kexec agent whose machine runs a task's host kernel: its HostKernel.key
// (absent in the machine's default kernel). The dispatcher prefers it for that kernel's cells.
inline constexpr char kHostKernelKeyCapability[] = "host_kernel_key";

// A term's characters (spec.term_old / term_new): letters, digits, '-' and '_'. CheckTerm adds
// git's rules on which words.
bool ValidTerm(const std::string& term);

// git bisect's own rules for a term (bisect--helper's check_term_format): not one of its
// commands ("can't use the builtin command"), and "bad"/"new" only for the new term,
// "good"/"old" only for the old one ("can't change the meaning of term"). INVALID_ARGUMENT with
// git's words and what to do.
absl::Status CheckTerm(const std::string& term, bool is_new);
// One of git bisect's commands (help, start, skip, ...), which git refuses as a term.
bool IsBisectCommand(const std::string& word);

// A label key: letters, digits, '.', '-', '_', '/'.
bool ValidLabelKey(const std::string& key);

// Parses one label "key=value" (`farm-agent --label`, `farm bisect --require`, a job file's
// `require:`). Keys: letters, digits, '.', '-', '_', '/'; the value may be empty. `what` names
// the flag or field in the message, e.g. "--label 'gpu': expected KEY=VALUE (e.g. gpu=a100)".
absl::Status ParseLabel(const std::string& text, const std::string& what, std::string* key,
                        std::string* value);

// The job's priority: spec.priority when set, else kDefaultPriority.
uint32_t Priority(const farm::v1::BisectSpec& spec);

}  // namespace spec

// Checks everything about `spec` that needs no repository: required fields, the limits above,
// the terms. Returns the first problem as INVALID_ARGUMENT; the message names the field as
// `spec.<path>` and says what is allowed, e.g.
//   "spec.recipe.boot.memory_mb is 32: give 64..65536 (MiB), or 0 for the default (512)".
// Labels in spec.require must have keys ParseLabel accepts.
absl::Status ValidateBisectSpec(const farm::v1::BisectSpec& spec);

}  // namespace farm

#endif  // FARM_COMMON_SPEC_SPEC_H_
