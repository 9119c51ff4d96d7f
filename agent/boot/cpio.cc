#include "agent/boot/cpio.h"

#include <sys/stat.h>
#include <zlib.h>

#include <cstdio>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace farm::boot {
namespace {

void Pad4(std::string& out) {
  while (out.size() % 4 != 0) out.push_back('\0');
}

}  // namespace

void CpioWriter::AddEntry(std::string_view path, uint32_t mode, uint32_t nlink, uint32_t rdev_major,
                          uint32_t rdev_minor, std::string_view data) {
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  char header[111];
  // Fields: magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
  // rdevminor, namesize (with the NUL), check.
  std::snprintf(header, sizeof(header),
                "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", next_inode_++, mode,
                0u, 0u, nlink, 0u, static_cast<uint32_t>(data.size()), 0u, 0u, rdev_major,
                rdev_minor, static_cast<uint32_t>(path.size() + 1), 0u);
  out_.append(header, 110);
  out_.append(path);
  out_.push_back('\0');
  Pad4(out_);
  out_.append(data);
  Pad4(out_);
}

void CpioWriter::AddDirectory(std::string_view path, uint32_t mode) {
  AddEntry(path, S_IFDIR | (mode & 07777), 2, 0, 0, {});
}

void CpioWriter::AddFile(std::string_view path, std::string_view data, uint32_t mode) {
  AddEntry(path, S_IFREG | (mode & 07777), 1, 0, 0, data);
}

void CpioWriter::AddSymlink(std::string_view path, std::string_view target) {
  AddEntry(path, S_IFLNK | 0777, 1, 0, 0, target);
}

void CpioWriter::AddCharDevice(std::string_view path, uint32_t major, uint32_t minor,
                               uint32_t mode) {
  AddEntry(path, S_IFCHR | (mode & 07777), 1, major, minor, {});
}

std::string CpioWriter::Finish() {
  // The trailer's inode and nlink are what GNU cpio writes; the kernel only looks at the name.
  const uint32_t saved = next_inode_;
  next_inode_ = 0;
  AddEntry("TRAILER!!!", 0, 1, 0, 0, {});
  next_inode_ = saved;
  std::string result;
  result.swap(out_);
  return result;
}

absl::StatusOr<std::string> Gzip(std::string_view data, int level) {
  z_stream zs{};
  // windowBits 15 + 16: a gzip header and trailer instead of zlib's.
  if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return absl::InternalError("zlib deflateInit2 failed");
  }
  std::string out;
  out.resize(deflateBound(&zs, data.size()) + 32);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&zs, Z_FINISH);
  const size_t written = zs.total_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return absl::InternalError(absl::StrCat("zlib deflate failed: ", rc));
  out.resize(written);
  return out;
}

}  // namespace farm::boot
