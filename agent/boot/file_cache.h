// Files of the boot caches (initramfs archives, compiled tests, kernels unpacked for a PVH boot):
// written atomically, named by a digest of their inputs, pruned to the newest N. Shared by the
// agent's slots: every function is safe to call from several threads and processes at once.
#ifndef FARM_AGENT_BOOT_FILE_CACHE_H_
#define FARM_AGENT_BOOT_FILE_CACHE_H_

#include <sys/types.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace farm::boot {

// 128 bits of FNV-1a (two seeds) as 32 hex digits: a name for a local content cache, not a
// cryptographic digest.
std::string CacheDigest(std::string_view data);

// "size mtime inode" of a file, or "-": changes when the file is replaced or rewritten.
std::string FileIdentity(const std::string& path);

// NOT_FOUND when the file cannot be opened, INTERNAL when reading fails.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path);

// Writes through a temporary file (PATH.tmp.PID.N) and rename(), so that concurrent writers and
// readers of the same entry only ever see a complete file.
absl::Status WriteFileAtomic(const std::string& path, std::string_view data, mode_t mode);

absl::Status MakeDirs(const std::string& dir);

// Marks a cache entry as just used (its modification time), so that pruning keeps it.
void TouchCacheEntry(const std::string& path);

// Deletes the regular files in `dir` whose names start with `prefix` (temporary files excluded),
// oldest modification time first, until `keep` are left; a file named like a deleted one plus
// `companion_suffix` (when not empty) goes with it. Returns how many entries it deleted. An entry
// in use stays readable by whoever opened it; a deleted one is made again on its next use.
int PruneCacheEntries(const std::string& dir, std::string_view prefix, int keep,
                      std::string_view companion_suffix = {});

}  // namespace farm::boot

#endif  // FARM_AGENT_BOOT_FILE_CACHE_H_
