// The initramfs a kernel under test boots into: static busybox, the user's test at /farm/test and
// the farm's /init, which runs the test once, prints its exit code on the console and powers off.
#ifndef FARM_AGENT_BOOT_INITRAMFS_H_
#define FARM_AGENT_BOOT_INITRAMFS_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "farm/v1/farm.pb.h"

namespace farm::boot {

// Kernel command line the initramfs needs: the kernel runs `/bin/sh /init`, so kernels without
// CONFIG_BINFMT_SCRIPT (tinyconfig) boot it too. Must come last on the command line: the words
// after "--" are init's arguments.
inline constexpr std::string_view kInitCmdline = "rdinit=/bin/sh -- /init";

struct InitramfsOptions {
  // A static busybox; empty: /bin/busybox, else `busybox` in PATH.
  std::string busybox;
  // gzip the archive (the kernel needs CONFIG_RD_GZIP). Off by default: an uncompressed archive
  // is a little larger but unpacks faster in the guest, which matters under TCG.
  bool compress = false;
  // Kernel modules (.ko files on this machine) loaded with insmod in this order before the test
  // runs: for distribution kernels whose virtio or 9p drivers are modules. The guest's kernel must
  // be the one they were built for.
  std::vector<std::string> modules;
};

// Writes the initramfs for `spec` (payload, payload_kind, test_timeout_seconds, shared_dir,
// result_file) under `work_dir` and returns its path: a newc cpio archive, gzipped when
// options.compress. `work_dir` is a cache shared by calls: the busybox part is built once per
// busybox binary, compiled C payloads are kept by content, and the archive's name is a digest of
// its content (equal specs give the same file; nothing is deleted, the caller may).
//
// A C payload (C_SOURCE, or UNSPECIFIED and neither "#!" nor ELF) is compiled with
// `gcc -static -O2`. Thread-safe: concurrent calls may share `work_dir`.
// Errors: INVALID_ARGUMENT the payload is empty, does not compile (gcc's messages included), or is
//                          a dynamically linked binary;
//         FAILED_PRECONDITION busybox, gcc or the static libc (libc6-dev) is missing, or busybox
//                          is not statically linked;
//         INTERNAL         files cannot be written.
absl::StatusOr<std::string> BuildInitramfs(const farm::v1::BootSpec& spec,
                                           const std::string& work_dir,
                                           const InitramfsOptions& options = {});

// The payload kind after guessing: "#!" -> SHELL, "\x7fELF" -> BINARY, else C_SOURCE.
farm::v1::BootSpec::PayloadKind ResolvePayloadKind(const farm::v1::BootSpec& spec);

// The /init script for `spec` (exposed for tests). `modules` are the guest paths to insmod.
std::string InitScript(const farm::v1::BootSpec& spec, const std::vector<std::string>& modules);

// Compiles `source` with `gcc -static -O2`, cached in `cache_dir` by content; returns the binary's
// path. Errors as BuildInitramfs.
absl::StatusOr<std::string> CompileStaticC(std::string_view source, const std::string& cache_dir);

// Effective defaults of a BootSpec.
inline uint32_t TestTimeoutSeconds(const farm::v1::BootSpec& s) {
  return s.test_timeout_seconds() ? s.test_timeout_seconds() : 300;
}
inline uint32_t BootTimeoutSeconds(const farm::v1::BootSpec& s) {
  return s.boot_timeout_seconds() ? s.boot_timeout_seconds() : 60;
}

}  // namespace farm::boot

#endif  // FARM_AGENT_BOOT_INITRAMFS_H_
