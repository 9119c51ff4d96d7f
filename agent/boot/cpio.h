// Writing newc ("070701") cpio archives, the format the kernel unpacks into its initramfs
// (Documentation/driver-api/early-userspace/buffer-format.rst), in memory. Device nodes and
// ownership are written as data, so no privileges are needed.
#ifndef FARM_AGENT_BOOT_CPIO_H_
#define FARM_AGENT_BOOT_CPIO_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace farm::boot {

// Builds one archive. Paths are relative to the root ("bin/busybox"); a leading '/' is dropped.
// Parent directories are not created implicitly: add them first. Every entry is owned by root
// with mtime 0, so equal inputs give byte-identical archives.
// Not thread-safe.
class CpioWriter {
 public:
  // Inode numbers start at `first_inode`; give archives that will be concatenated disjoint ranges.
  explicit CpioWriter(uint32_t first_inode = 1) : next_inode_(first_inode) {}

  void AddDirectory(std::string_view path, uint32_t mode = 0755);
  void AddFile(std::string_view path, std::string_view data, uint32_t mode = 0644);
  void AddSymlink(std::string_view path, std::string_view target);
  void AddCharDevice(std::string_view path, uint32_t major, uint32_t minor, uint32_t mode = 0600);

  // Appends the trailer and returns the archive; the writer is empty afterwards.
  std::string Finish();

 private:
  void AddEntry(std::string_view path, uint32_t mode, uint32_t nlink, uint32_t rdev_major,
                uint32_t rdev_minor, std::string_view data);

  std::string out_;
  uint32_t next_inode_;
};

// gzip (RFC 1952) of `data`, as the kernel's CONFIG_RD_GZIP unpacks it. Archives compressed
// separately may be concatenated: the kernel unpacks one after the other.
// Errors: INTERNAL if zlib fails.
absl::StatusOr<std::string> Gzip(std::string_view data, int level = 6);

}  // namespace farm::boot

#endif  // FARM_AGENT_BOOT_CPIO_H_
