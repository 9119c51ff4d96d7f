// Is the disk full? A build, checkout or test that fails because the agent's disk is full says
// nothing about the commit: the agent must report an infrastructure error (retried on another
// agent) instead of a skip or a bad verdict. Two honest signs: statvfs of the filesystems the
// task writes to, and ENOSPC's message ("No space left on device") in what the step printed.
#ifndef FARM_AGENT_WORKSPACE_DISK_SPACE_H_
#define FARM_AGENT_WORKSPACE_DISK_SPACE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace farm {

// A filesystem with less than this available counts as full: a build cannot do much with it.
inline constexpr uint64_t kDiskFullBelowBytes = 1 << 20;

// strerror(ENOSPC), as tools print it ("dd: error writing 'x': No space left on device").
inline constexpr std::string_view kNoSpaceMessage = "No space left on device";

// What statvfs says of the filesystem holding a path.
struct DiskSpace {
  std::string path;        // the path asked about
  uint64_t available = 0;  // bytes an unprivileged process may still write
  uint64_t total = 0;      // bytes
  uint64_t inodes_available = 0;
  uint64_t inodes_total = 0;  // 0: the filesystem reports no inode limit
  // Fewer than kDiskFullBelowBytes available, or no inode left.
  bool full() const;
  // "0 bytes free of 4.0 MiB", or "no free inode (of 512)" when out of inodes.
  std::string Describe() const;
};

// Measures the filesystem holding `path` (its nearest existing ancestor when it does not exist).
// Errors: INTERNAL when statvfs fails even for "/".
absl::StatusOr<DiskSpace> MeasureDiskSpace(const std::string& path);

// Whether `text` holds kNoSpaceMessage.
bool SaysNoSpace(std::string_view text);

// Looks for kNoSpaceMessage in output that arrives in chunks of any size (a message split across
// two chunks is found). Not thread-safe.
class NoSpaceScanner {
 public:
  void Feed(std::string_view chunk);
  bool seen() const { return seen_; }

 private:
  std::string carry_;  // the last bytes of the previous chunk, shorter than the message
  bool seen_ = false;
};

// After `what` failed (e.g. "build failed (exit 1)"): RESOURCE_EXHAUSTED when the filesystem
// holding one of `dirs` is full, or when `said_no_space` (the step printed kNoSpaceMessage); the
// message names the filesystem's directory, its free space and what to do. OK when neither holds
// (a directory that cannot be measured is ignored). Thread-safe.
absl::Status DiskFullError(const std::vector<std::string>& dirs, bool said_no_space,
                           std::string_view what);

}  // namespace farm

#endif  // FARM_AGENT_WORKSPACE_DISK_SPACE_H_
