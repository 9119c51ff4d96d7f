// The initramfs a kernel under test boots into: the farm's /init (agent/boot/farm_init.c, a static
// C program), its configuration /farm/init.conf, the user's test at /farm/test and, when the test
// needs a shell, a static busybox. Init runs the test once, prints its exit code on the console and
// powers off.
#ifndef FARM_AGENT_BOOT_INITRAMFS_H_
#define FARM_AGENT_BOOT_INITRAMFS_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "farm/v1/farm.pb.h"

namespace farm::boot {

// Kernel command line the initramfs needs (the kernel's default, said explicitly so that a
// kernel_cmdline's rdinit= cannot replace the farm's init). Comes last on the command line, before
// a "--" and the arguments for init after it.
inline constexpr std::string_view kInitCmdline = "rdinit=/init";

// The static x86_64 executable packed as /init (agent/boot/farm_init.c, embedded at build time),
// and its SHA-256 (hex).
std::string_view FarmInitBinary();
std::string_view FarmInitBinaryDigest();

struct InitramfsOptions {
  // A static busybox, packed only for tests that need a shell (see NeedsBusybox); empty:
  // /bin/busybox, else `busybox` in PATH.
  std::string busybox;
  // gzip the archive (the kernel needs CONFIG_RD_GZIP). Off by default: an uncompressed archive
  // is a little larger but unpacks faster in the guest, which matters under TCG.
  bool compress = false;
  // Kernel modules (.ko files on this machine) loaded (finit_module) in this order before the test
  // runs: for distribution kernels whose virtio or 9p drivers are modules. The guest's kernel must
  // be the one they were built for.
  std::vector<std::string> modules;
};

// Writes the initramfs for `spec` (payload, payload_kind, test_timeout_seconds, shared_dir,
// result_file) under `work_dir` and returns its path: a newc cpio archive, gzipped when
// options.compress. `work_dir` is a cache shared by calls: the busybox part is built once per
// busybox binary, compiled C payloads are kept by content, and the archive's name is a digest of
// what it is made from (the spec's payload and fields, the modules' identities, busybox's, init's),
// so a second call with equal inputs only finds the file. Archives beyond the newest
// kMaxCachedInitramfs are deleted (see PruneInitramfsCache).
//
// A C payload (C_SOURCE, or UNSPECIFIED and neither "#!" nor ELF) is compiled with
// `gcc -static -O2`. Thread-safe: concurrent calls may share `work_dir`.
// Errors: INVALID_ARGUMENT the payload is empty, does not compile (gcc's messages included), or is
//                          a dynamically linked binary;
//         FAILED_PRECONDITION busybox (for a test that needs a shell), gcc or the static libc
//                          (libc6-dev) is missing, or busybox is not statically linked;
//         INTERNAL         files cannot be written.
absl::StatusOr<std::string> BuildInitramfs(const farm::v1::BootSpec& spec,
                                           const std::string& work_dir,
                                           const InitramfsOptions& options = {});

// The payload kind after guessing: "#!" -> SHELL, "\x7fELF" -> BINARY, else C_SOURCE.
farm::v1::BootSpec::PayloadKind ResolvePayloadKind(const farm::v1::BootSpec& spec);

// Does the test need busybox in the guest? A shell script does; so does a binary that mentions
// /bin/sh (system(), popen()) or busybox. `test` is what /farm/test will hold.
bool NeedsBusybox(farm::v1::BootSpec::PayloadKind kind, std::string_view test);

// /farm/init.conf for `spec` (exposed for tests; the format is in farm_init.c). `modules` are the
// guest paths to load, in order.
std::string InitConfig(const farm::v1::BootSpec& spec, const std::vector<std::string>& modules);

// Deletes the oldest initramfs archives in `work_dir` (by modification time; a cache hit touches
// its file) beyond the newest `keep`. Returns how many it deleted. Concurrent builders are safe:
// an archive being booted is open, and a deleted one is rebuilt on its next use.
inline constexpr int kMaxCachedInitramfs = 64;
int PruneInitramfsCache(const std::string& work_dir, int keep = kMaxCachedInitramfs);

// Compiles `source` with `gcc -static -O2`, cached in `cache_dir` by content; returns the binary's
// path. Binaries beyond the newest kMaxCachedPayloads (by last use) are deleted with their sources.
// Errors as BuildInitramfs.
inline constexpr int kMaxCachedPayloads = 64;
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
