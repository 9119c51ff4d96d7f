// PVH boot of a bzImage: qemu loads the kernel's ELF (the bzImage's payload, unpacked on the host)
// and enters it at its PVH entry point, the XEN_ELFNOTE_PHYS32_ENTRY note that kernels built with
// CONFIG_PVH carry. That skips the bzImage's real-mode setup and its decompressor, which under TCG
// is a tenth of a tinyconfig boot (bench/README.md, "boot-to-verdict"). The kernel that runs is
// the same code; what differs is the way in: no decompressor, no KASLR, boot_params built from the
// PVH start info instead of the bzImage's setup header. A bisect of that early path boots the
// bzImage itself (BootSpec.no_pvh, `--no-pvh`).
#ifndef FARM_AGENT_BOOT_PVH_H_
#define FARM_AGENT_BOOT_PVH_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace farm::boot {

struct PvhKernel {
  std::string path;  // what qemu's -kernel gets
  bool pvh = false;  // path is an ELF with a PVH entry
  // Why the kernel is booted as given (empty when pvh): "no PVH entry (the kernel lacks
  // CONFIG_PVH)", "lz4 is not installed", ...
  std::string note;
};

// What to boot for `kernel` (a bzImage or an ELF vmlinux). An ELF with a PVH entry: itself. A
// bzImage in a kernel build directory (DIR/arch/x86/boot/bzImage) whose DIR/vmlinux has a PVH entry
// and is not newer: that vmlinux (no unpacking: what the agent's kernel builds give). Another
// bzImage whose payload is such an ELF: that ELF, unpacked into `cache_dir` once per image (named
// by the image's path and identity; a kernel without a PVH entry is remembered too), the newest
// kMaxCachedPvhKernels kept. Anything else, or any failure: `kernel` itself, with the reason in
// note. gzip payloads are unpacked with zlib; xz, lzma, lz4, zstd, bzip2 and lzo with their
// command-line tools when installed. Thread- and process-safe on a shared cache_dir.
inline constexpr int kMaxCachedPvhKernels = 8;
PvhKernel PreparePvhKernel(const std::string& kernel, const std::string& cache_dir);

// Whether `elf` is an x86-64 ELF image with a PVH entry note (Xen note type 18).
bool HasPvhEntry(std::string_view elf);

// The compressed kernel inside a bzImage (boot protocol 2.08 or later) and its format ("gzip",
// "xz", "lzma", "lz4", "zstd", "bzip2", "lzo"). INVALID_ARGUMENT when `image` is not a bzImage or
// its payload is of no known format.
struct BzImagePayload {
  std::string_view data;
  std::string format;
};
absl::StatusOr<BzImagePayload> PayloadOfBzImage(std::string_view image);

}  // namespace farm::boot

#endif  // FARM_AGENT_BOOT_PVH_H_
