#include "agent/workspace/disk_space.h"

#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace farm {
namespace {

std::string Bytes(uint64_t n) {
  if (n < 1024) return absl::StrCat(n, n == 1 ? " byte" : " bytes");
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n) / 1024;
  int u = 0;
  while (v >= 1024 && u < 3) {
    v /= 1024;
    ++u;
  }
  return absl::StrFormat("%.1f %s", v, units[u]);
}

}  // namespace

bool DiskSpace::full() const {
  return available < kDiskFullBelowBytes || (inodes_total > 0 && inodes_available == 0);
}

std::string DiskSpace::Describe() const {
  if (inodes_total > 0 && inodes_available == 0) {
    return absl::StrCat("no free inode (of ", inodes_total, ")");
  }
  return absl::StrCat(Bytes(available), " free of ", Bytes(total));
}

absl::StatusOr<DiskSpace> MeasureDiskSpace(const std::string& path) {
  // A directory the failed step never created (a build dir after a failed checkout) is measured
  // where it would have been.
  std::filesystem::path p = path.empty() ? std::filesystem::path("/") : std::filesystem::path(path);
  while (true) {
    struct statvfs st;
    if (statvfs(p.c_str(), &st) == 0) {
      DiskSpace d;
      d.path = path;
      d.available = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
      d.total = static_cast<uint64_t>(st.f_blocks) * st.f_frsize;
      d.inodes_available = st.f_favail;
      d.inodes_total = st.f_files;
      return d;
    }
    if ((errno != ENOENT && errno != ENOTDIR) || !p.has_relative_path()) {
      return absl::InternalError(absl::StrCat("cannot measure the free space at '", p.string(),
                                              "': ", std::strerror(errno)));
    }
    p = p.parent_path();
  }
}

bool SaysNoSpace(std::string_view text) {
  return text.find(kNoSpaceMessage) != std::string_view::npos;
}

void NoSpaceScanner::Feed(std::string_view chunk) {
  if (seen_ || chunk.empty()) return;
  const size_t keep = kNoSpaceMessage.size() - 1;
  // The message may start in the carried bytes and end in this chunk.
  std::string joined = carry_;
  joined.append(chunk.substr(0, std::min(keep, chunk.size())));
  if (SaysNoSpace(joined) || SaysNoSpace(chunk)) {
    seen_ = true;
    carry_.clear();
    return;
  }
  if (chunk.size() >= keep) {
    carry_.assign(chunk.substr(chunk.size() - keep));
  } else {
    carry_.append(chunk);
    if (carry_.size() > keep) carry_.erase(0, carry_.size() - keep);
  }
}

absl::Status DiskFullError(const std::vector<std::string>& dirs, bool said_no_space,
                           std::string_view what_view) {
  const std::string what(what_view);
  // "... with \"No space left on device\"", unless `what` says so already.
  const std::string with_no_space =
      said_no_space && !SaysNoSpace(what) ? " with \"No space left on device\"" : "";
  constexpr char kWhatToDo[] = "free space there or give the agent a --workdir on a larger disk";
  const DiskSpace* measured = nullptr;
  std::vector<DiskSpace> spaces;
  spaces.reserve(dirs.size());
  for (const std::string& dir : dirs) {
    absl::StatusOr<DiskSpace> d = MeasureDiskSpace(dir);
    if (!d.ok()) continue;
    spaces.push_back(*d);
    if (d->full()) {
      return absl::ResourceExhaustedError(absl::StrCat("the disk is full: ", what, with_no_space,
                                                       " and the filesystem holding '", d->path,
                                                       "' has ", d->Describe(), ": ", kWhatToDo));
    }
  }
  if (!said_no_space) return absl::OkStatus();
  if (!spaces.empty()) measured = &spaces.front();
  return absl::ResourceExhaustedError(absl::StrCat(
      "the disk is full: ", what, with_no_space,
      measured == nullptr ? std::string()
                          : absl::StrCat(", though the filesystem holding '", measured->path,
                                         "' has ", measured->Describe()),
      ": another filesystem the task writes to (such as /tmp) may be full; free space on this "
      "agent"));
}

}  // namespace farm
