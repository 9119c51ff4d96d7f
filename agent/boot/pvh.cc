#include "agent/boot/pvh.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "agent/boot/file_cache.h"
#include "agent/boot/text.h"
#include "common/status_macros.h"
#include "common/subprocess/subprocess.h"

namespace farm::boot {
namespace {

// Bump when what the cache holds changes meaning.
constexpr std::string_view kCacheVersion = "farm-pvh-1";
constexpr std::string_view kPrefix = "pvh-";
constexpr uint32_t kXenElfNotePhys32Entry = 18;
constexpr uint32_t kPtNote = 4;
constexpr uint16_t kEmX86_64 = 62;

// A gzip stream (the kernel appends its uncompressed size after it: inflate stops at the end).
absl::StatusOr<std::string> Gunzip(std::string_view in) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) return absl::InternalError("zlib inflateInit2 failed");
  std::string out;
  // The kernel appends the uncompressed size (32-bit little-endian) to every payload.
  if (in.size() >= 4)
    out.reserve(std::min<uint64_t>(text::LittleEndian(in, in.size() - 4, 4), 1u << 30));
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  char buf[1 << 16];
  int rc;
  do {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&zs);
      return absl::InvalidArgumentError(
          absl::StrCat("the gzip payload is damaged (zlib ", rc, ")"));
    }
    out.append(buf, sizeof(buf) - zs.avail_out);
  } while (rc != Z_STREAM_END && (zs.avail_in > 0 || zs.avail_out == 0));
  inflateEnd(&zs);
  if (rc != Z_STREAM_END) return absl::InvalidArgumentError("the gzip payload is truncated");
  return out;
}

// The payload through its command-line decompressor. The tools complain about the size the kernel
// appends after the stream, so their exit status says little: the caller checks the ELF.
absl::StatusOr<std::string> UnpackWithTool(std::string_view payload, const std::string& format,
                                           const std::string& cache_dir) {
  std::vector<std::string> tool;
  if (format == "xz") tool = {"xz", "-dc"};
  if (format == "lzma") tool = {"xz", "--format=lzma", "-dc"};
  if (format == "lz4") tool = {"lz4", "-dc"};
  if (format == "zstd") tool = {"zstd", "-dc"};
  if (format == "bzip2") tool = {"bzip2", "-dc"};
  if (format == "lzo") tool = {"lzop", "-dc"};
  if (tool.empty()) return absl::InvalidArgumentError(absl::StrCat("no tool for ", format));
  static std::atomic<uint64_t> counter{0};
  const std::string base = absl::StrCat(cache_dir, "/unpack.tmp.", getpid(), ".", counter++);
  const std::string in = base + ".in", out = base + ".out";
  FARM_RETURN_IF_ERROR(WriteFileAtomic(in, payload, 0600));
  SubprocessOptions opts;
  opts.argv = {"sh",
               "-c",
               "in=$1 out=$2; shift 2; command -v \"$1\" >/dev/null || exit 127; "
               "exec \"$@\" <\"$in\" >\"$out\" 2>/dev/null",
               "sh",
               in,
               out};
  opts.argv.insert(opts.argv.end(), tool.begin(), tool.end());
  opts.timeout = absl::Minutes(2);
  absl::StatusOr<std::unique_ptr<Subprocess>> proc = Subprocess::Start(std::move(opts));
  if (!proc.ok()) {
    unlink(in.c_str());
    return proc.status();
  }
  SubprocessResult r = (*proc)->Wait();
  unlink(in.c_str());
  absl::StatusOr<std::string> data = ReadWholeFile(out);
  unlink(out.c_str());
  if (r.kind == SubprocessResult::Kind::kExited && r.exit_code == 127) {
    return absl::FailedPreconditionError(
        absl::StrCat(tool[0], " is not installed (the payload is ", format, ")"));
  }
  if (r.kind != SubprocessResult::Kind::kExited) {
    return absl::InternalError(absl::StrCat(tool[0], ": ", r.Describe()));
  }
  return data;
}

// The cached answer for one image: the ELF, or a file that says why there is none.
std::string EntryPath(const std::string& cache_dir, const std::string& kernel) {
  char* real = realpath(kernel.c_str(), nullptr);
  std::string key = absl::StrCat(text::Av(kCacheVersion), "|", real != nullptr ? real : kernel, "|",
                                 FileIdentity(kernel));
  std::free(real);
  return absl::StrCat(cache_dir, "/", text::Av(kPrefix), CacheDigest(key));
}

}  // namespace

namespace {

// Looks for the PVH note through `read(offset, length)`, which returns fewer bytes at the end of
// the file: so a vmlinux of tens of MB is not read whole to find a note of a few bytes.
bool ScanForPvhEntry(const std::function<std::string(uint64_t, uint64_t)>& read) {
  const std::string eh = read(0, 64);
  if (eh.size() < 64 || eh.substr(0, 4) != std::string_view("\x7f"
                                                            "ELF",
                                                            4))
    return false;
  if (eh[4] != 2 || eh[5] != 1 || text::LittleEndian(eh, 18, 2) != kEmX86_64)
    return false;  // ELF64 LE x86-64
  const uint64_t phoff = text::LittleEndian(eh, 32, 8), phentsize = text::LittleEndian(eh, 54, 2),
                 phnum = text::LittleEndian(eh, 56, 2);
  if (phentsize < 56 || phnum > 256) return false;
  const std::string ph = read(phoff, phentsize * phnum);
  if (ph.size() < phentsize * phnum) return false;
  for (uint64_t i = 0; i < phnum; ++i) {
    const uint64_t h = i * phentsize;
    if (text::LittleEndian(ph, h, 4) != kPtNote) continue;
    const uint64_t size = text::LittleEndian(ph, h + 32, 8);
    if (size > (1u << 20)) continue;
    const std::string notes = read(text::LittleEndian(ph, h + 8, 8), size);
    for (uint64_t p = 0; p + 12 <= notes.size();) {
      const uint64_t namesz = text::LittleEndian(notes, p, 4),
                     descsz = text::LittleEndian(notes, p + 4, 4);
      const uint64_t type = text::LittleEndian(notes, p + 8, 4);
      if (namesz > notes.size() || descsz > notes.size()) break;
      const uint64_t name = p + 12, desc = name + ((namesz + 3) & ~3ull);
      const uint64_t next = desc + ((descsz + 3) & ~3ull);
      if (next > notes.size()) break;
      if (type == kXenElfNotePhys32Entry && namesz == 4 &&
          notes.compare(name, 4, std::string("Xen\0", 4)) == 0) {
        return true;
      }
      p = next;
    }
  }
  return false;
}

bool FileHasPvhEntry(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool found = ScanForPvhEntry([fd](uint64_t off, uint64_t len) {
    std::string out(len, '\0');
    ssize_t n = pread(fd, out.data(), len, static_cast<off_t>(off));
    out.resize(n > 0 ? static_cast<size_t>(n) : 0);
    return out;
  });
  close(fd);
  return found;
}

bool StartsWithElfMagic(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char magic[4] = {};
  ssize_t n = pread(fd, magic, 4, 0);
  close(fd);
  return n == 4 && std::string_view(magic, 4) == std::string_view(
                                                     "\x7f"
                                                     "ELF",
                                                     4);
}

}  // namespace

bool HasPvhEntry(std::string_view elf) {
  return ScanForPvhEntry([elf](uint64_t off, uint64_t len) {
    if (off >= elf.size()) return std::string();
    return std::string(elf.substr(off, len));
  });
}

absl::StatusOr<BzImagePayload> PayloadOfBzImage(std::string_view image) {
  if (image.size() < 0x260 || image.substr(0x202, 4) != "HdrS") {
    return absl::InvalidArgumentError("not a bzImage (no \"HdrS\" setup header)");
  }
  if (text::LittleEndian(image, 0x206, 2) < 0x208) {
    return absl::InvalidArgumentError("boot protocol older than 2.08: no payload fields");
  }
  uint64_t setup_sects = static_cast<uint8_t>(image[0x1f1]);
  if (setup_sects == 0) setup_sects = 4;
  const uint64_t start = (setup_sects + 1) * 512 + text::LittleEndian(image, 0x248, 4);
  const uint64_t length = text::LittleEndian(image, 0x24c, 4);
  if (start > image.size() || length > image.size() - start || length < 8) {
    return absl::InvalidArgumentError("the bzImage's payload lies outside the file");
  }
  BzImagePayload p{image.substr(start, length), ""};
  const std::string_view d = p.data;
  if (d.substr(0, 2) == "\x1f\x8b")
    p.format = "gzip";
  else if (d.substr(0, 6) == std::string_view("\xfd"
                                              "7zXZ\0",
                                              6))
    p.format = "xz";
  else if (d.substr(0, 4) == std::string_view("\x02\x21\x4c\x18", 4))
    p.format = "lz4";
  else if (d.substr(0, 4) == std::string_view("\x28\xb5\x2f\xfd", 4))
    p.format = "zstd";
  else if (d.substr(0, 3) == std::string_view("\x5d\0\0", 3))
    p.format = "lzma";
  else if (d.substr(0, 3) == "BZh")
    p.format = "bzip2";
  else if (d.substr(0, 4) == std::string_view("\x89LZO", 4))
    p.format = "lzo";
  else
    return absl::InvalidArgumentError("the bzImage's payload is in no known compression format");
  return p;
}

PvhKernel PreparePvhKernel(const std::string& kernel, const std::string& cache_dir) {
  PvhKernel k{kernel, false, ""};
  if (access(kernel.c_str(), R_OK) != 0) {
    k.note = absl::StrCat("cannot read ", kernel, ": ", std::strerror(errno));
    return k;
  }
  if (StartsWithElfMagic(kernel)) {
    k.pvh = FileHasPvhEntry(kernel);
    if (!k.pvh) k.note = "an ELF kernel without a PVH entry (the kernel lacks CONFIG_PVH)";
    return k;
  }
  // A bzImage in a kernel build directory (O=DIR: DIR/arch/x86/boot/bzImage) has the ELF it was
  // made from beside it: DIR/vmlinux, unless that was rebuilt after the bzImage (make vmlinux).
  if (std::string_view suffix = "/arch/x86/boot/bzImage";
      kernel.size() > suffix.size() && kernel.compare(kernel.size() - suffix.size(), suffix.size(),
                                                      suffix.data(), suffix.size()) == 0) {
    const std::string vmlinux =
        absl::StrCat(kernel.substr(0, kernel.size() - suffix.size()), "/vmlinux");
    struct stat image_st, elf_st;
    if (stat(kernel.c_str(), &image_st) == 0 && stat(vmlinux.c_str(), &elf_st) == 0 &&
        (elf_st.st_mtim.tv_sec < image_st.st_mtim.tv_sec ||
         (elf_st.st_mtim.tv_sec == image_st.st_mtim.tv_sec &&
          elf_st.st_mtim.tv_nsec <= image_st.st_mtim.tv_nsec)) &&
        FileHasPvhEntry(vmlinux)) {
      k.path = vmlinux;
      k.pvh = true;
      return k;
    }
  }
  if (cache_dir.empty()) {
    k.note = "no cache directory to unpack the bzImage into";
    return k;
  }
  const std::string entry = EntryPath(cache_dir, kernel);
  const std::string elf_path = entry + ".elf", none_path = entry + ".none";
  if (access(elf_path.c_str(), R_OK) == 0) {
    TouchCacheEntry(elf_path);
    k.path = elf_path;
    k.pvh = true;
    return k;
  }
  if (absl::StatusOr<std::string> why = ReadWholeFile(none_path); why.ok()) {
    TouchCacheEntry(none_path);
    k.note = *why;
    return k;
  }
  absl::StatusOr<std::string> image = ReadWholeFile(kernel);
  if (!image.ok()) {
    k.note = std::string(image.status().message());
    return k;
  }
  auto remember_none = [&](std::string why) {
    if (MakeDirs(cache_dir).ok()) {
      (void)WriteFileAtomic(none_path, why, 0644);
      PruneCacheEntries(cache_dir, kPrefix, kMaxCachedPvhKernels);
    }
    k.note = std::move(why);
    return k;
  };
  absl::StatusOr<BzImagePayload> payload = PayloadOfBzImage(*image);
  if (!payload.ok()) return remember_none(std::string(payload.status().message()));
  if (absl::Status s = MakeDirs(cache_dir); !s.ok()) {
    k.note = std::string(s.message());
    return k;
  }
  absl::StatusOr<std::string> elf = payload->format == "gzip"
                                        ? Gunzip(payload->data)
                                        : UnpackWithTool(payload->data, payload->format, cache_dir);
  if (!elf.ok()) {
    // A missing tool is not remembered: installing it should help at once.
    if (absl::IsFailedPrecondition(elf.status()) || absl::IsInternal(elf.status())) {
      k.note = std::string(elf.status().message());
      return k;
    }
    return remember_none(std::string(elf.status().message()));
  }
  if (!HasPvhEntry(*elf)) {
    return remember_none(elf->substr(0, 4) == std::string_view("\x7f"
                                                               "ELF",
                                                               4)
                             ? "no PVH entry (the kernel lacks CONFIG_PVH)"
                             : absl::StrCat("the ", payload->format, " payload is not an ELF"));
  }
  if (absl::Status s = WriteFileAtomic(elf_path, *elf, 0644); !s.ok()) {
    k.note = std::string(s.message());
    return k;
  }
  PruneCacheEntries(cache_dir, kPrefix, kMaxCachedPvhKernels);
  k.path = elf_path;
  k.pvh = true;
  return k;
}

}  // namespace farm::boot
