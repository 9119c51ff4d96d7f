// Job files: a bisect described in YAML, for everything the `farm bisect` flags do not cover.
//
// Schema (docs/jobfile.md has the long form with examples). Keys not listed here are errors.
//
//   repo: ~/linux              # required. A path (relative to the job file, ~/ allowed) or a URL
//   good: v6.1                 # required. One revision, or a list of revisions
//   bad: HEAD                  # required. One revision
//   skip: [abc123, v6.2-rc3]   # revisions known to be untestable
//   first_parent: false        # follow only the first parent of merges
//   terms: {old: fast, new: slow}   # words for good/bad (both, different)
//   max_parallel: 4            # at most this many tasks of the job at once (0: no limit)
//   description: text          # shown in listings
//   build: make -j8            # shell command run in the worktree before the test
//   timeout: 10m               # per step: seconds (600) or 90s / 10m / 2h; 1s..7d
//   env: {CC: gcc-12}          # environment for build and test; FARM_* is reserved
//   require: {gpu: a100}       # labels an agent must have (its --label and capabilities)
//   test:                      # the test (exit 0 good, 125 skip, 1..127 bad), one of:
//     command: [./t.sh, --x]   #   an argv list, or a string run by /bin/sh -c
//     script: t.sh             #   a file (relative to the job file) shipped to every agent;
//                              #   with both, command[0] must name the script
//                              # (`test: "cmd"` and `test: [argv]` are short for test.command)
//   kernel:                    # build a kernel at every commit
//     config: tinyconfig       # a make target (…config) or a .config file (path with a '/');
//                              # "tinyconfig+kvm_guest" adds fragments
//     fragments: [kvm_guest, ./extra.config]  # kernel fragment names, or files (with a '/')
//     modules: false
//     ccache_remote_storage: redis://cache:6379   # file:, http://, redis://, rediss://
//     jobs: 8                  # make -j (0: the number of CPUs); 0..1024
//   boot:                      # boot the kernel in qemu; the payload is the test
//     payload: listen-test.c   # file (relative to the job file), at most 32 MiB
//     payload_kind: c          # shell | c | binary (default: from the extension, else guessed)
//     kernel_image: /boot/vmlinuz-6.1   # prebuilt image on the agent (needed without kernel:)
//     cmdline: "quiet"
//     qemu_args: [-device, virtio-rng-pci]
//     memory_mb: 512           # 64..65536
//     cpus: 1                  # 1..256
//     disk_image: /srv/img.qcow2        # opened with -snapshot; its own init may run the test
//     shared_dir: /srv/share   # 9p, mount tag "farm"
//     result_file: test_result # in shared_dir: holds the test's exit code (needs shared_dir)
//     boot_timeout: 60         # seconds or 90s / 10m / 2h; 1s..1d
//     test_timeout: 300
//     bad_failures: [panic, oops, bug, hang, no_init]   # boot failures that count as bad
//     accel: auto              # auto | kvm | tcg
//
// Required: repo, good, bad, and a test: `test`, or `boot` with a payload (or a disk_image whose
// own init runs the test). `test` and `boot` exclude each other. `boot` without `kernel` needs
// boot.kernel_image.
//
// Thread safety: the functions are reentrant (no shared state).
#ifndef FARM_COMMON_JOBFILE_JOBFILE_H_
#define FARM_COMMON_JOBFILE_JOBFILE_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/spec/spec.h"
#include "farm/v1/farm.pb.h"

namespace farm {

// Limits on what a job file may hold or name: the request schema's (common/spec/spec.h), and
// the size of the YAML text itself.
inline constexpr size_t kMaxJobFileBytes = 1 << 20;
inline constexpr size_t kMaxTestScriptBytes = spec::kMaxTestScriptBytes;
inline constexpr size_t kMaxPayloadBytes = spec::kMaxPayloadBytes;
inline constexpr size_t kMaxKernelConfigBytes = spec::kMaxKernelConfigBytes;

// Parses a job file into the spec SubmitBisect takes. Files the job names (test.script,
// boot.payload, kernel.config, fragment files) are read now, relative to `base_dir` (usually the
// job file's directory; empty: the current directory), and shipped in the spec; so is a relative
// repo path made absolute. Paths the agent opens (boot.kernel_image, disk_image, shared_dir) are
// passed on untouched.
//
// Errors: INVALID_ARGUMENT for everything wrong with the job file, including a named file that
// cannot be read. The message lists every problem found (one per line, at most 20), each naming
// the field and what is allowed, with its line and column:
//   boot.memory_mb: expected a whole number of megabytes (64..65536), got "lots" (line 12, column
//   14) unknown key 'tset' in job file; did you mean 'test'? (line 4, column 1)
// A YAML syntax error gives its line and column. A spec that translates but breaks the request
// schema gets ValidateBisectSpec's message (common/spec). No exceptions escape.
absl::StatusOr<farm::v1::BisectSpec> ParseJobFile(std::string_view yaml_text,
                                                  const std::string& base_dir);

// Reads `path` and parses it with base_dir = its directory; messages start with the path.
// Errors: as ParseJobFile; NOT_FOUND / PERMISSION_DENIED / INVALID_ARGUMENT when `path` itself
// cannot be read, is not a regular file, or is over kMaxJobFileBytes.
absl::StatusOr<farm::v1::BisectSpec> LoadJobFile(const std::string& path);

// The edit distance (insertions, deletions, substitutions, adjacent transpositions) between
// two words; used for "did you mean" suggestions. Exposed for tests.
size_t EditDistance(std::string_view a, std::string_view b);

}  // namespace farm

#endif  // FARM_COMMON_JOBFILE_JOBFILE_H_
