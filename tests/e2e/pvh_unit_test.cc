// PVH entry detection and bzImage unpacking (agent/boot/pvh.h) on synthetic images: an ELF with or
// without the Xen PVH note, wrapped in a bzImage whose payload is gzip (zlib) or xz (the tool).
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "agent/boot/cpio.h"
#include "agent/boot/pvh.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/lib/test_util.h"

namespace farm::boot {
namespace {

using ::farm::testing::MakeTempDir;
using ::farm::testing::Quote;
using ::farm::testing::Sh;
using ::testing::HasSubstr;

void Put(std::string& s, size_t off, uint64_t v, int bytes) {
  if (s.size() < off + bytes) s.resize(off + bytes, '\0');
  for (int i = 0; i < bytes; ++i) s[off + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

// An x86-64 ELF64 with one PT_NOTE holding a "Xen" note of `note_type` (18: the PVH entry).
std::string Elf(uint32_t note_type, std::string tail = "kernel text") {
  std::string e(64, '\0');
  e.replace(0, 4,
            "\x7f"
            "ELF");
  e[4] = 2;  // ELFCLASS64
  e[5] = 1;  // little-endian
  e[6] = 1;
  Put(e, 16, 2, 2);        // ET_EXEC
  Put(e, 18, 62, 2);       // EM_X86_64
  Put(e, 32, 64, 8);       // e_phoff
  Put(e, 54, 56, 2);       // e_phentsize
  Put(e, 56, 1, 2);        // e_phnum
  Put(e, 64, 4, 4);        // PT_NOTE
  Put(e, 64 + 8, 120, 8);  // p_offset
  Put(e, 64 + 32, 20, 8);  // p_filesz
  Put(e, 120, 4, 4);       // namesz
  Put(e, 124, 4, 4);       // descsz
  Put(e, 128, note_type, 4);
  e.replace(132, 4, std::string("Xen\0", 4));
  Put(e, 136, 0x1000000, 4);  // the entry address
  return e + tail;
}

// A bzImage (boot protocol 2.15) whose payload is `compressed` plus the size the kernel appends.
std::string BzImage(const std::string& compressed, uint32_t uncompressed_size) {
  std::string b(1024, '\0');
  b[0x1f1] = 1;  // one setup sector: the payload area starts at 2 * 512
  b.replace(0x202, 4, "HdrS");
  Put(b, 0x206, 0x020f, 2);
  Put(b, 0x248, 0, 4);
  Put(b, 0x24c, compressed.size() + 4, 4);
  b += compressed;
  Put(b, b.size(), uncompressed_size, 4);
  return b;
}

std::string GzipBzImage(const std::string& elf) {
  absl::StatusOr<std::string> gz = Gzip(elf);
  EXPECT_TRUE(gz.ok()) << gz.status();
  return BzImage(gz.ok() ? *gz : "", static_cast<uint32_t>(elf.size()));
}

void WriteFile(const std::string& path, const std::string& data) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << data;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int CountEntries(const std::string& dir) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.path().filename().string().rfind("pvh-", 0) == 0) ++n;
  }
  return n;
}

TEST(PvhTest, FindsTheXenPvhNote) {
  EXPECT_TRUE(HasPvhEntry(Elf(18)));
  EXPECT_FALSE(HasPvhEntry(Elf(17)));                 // another Xen note
  EXPECT_FALSE(HasPvhEntry(Elf(18).substr(0, 100)));  // the note cut off
  std::string other_machine = Elf(18);
  Put(other_machine, 18, 3, 2);  // EM_386
  EXPECT_FALSE(HasPvhEntry(other_machine));
  EXPECT_FALSE(HasPvhEntry("#!/bin/sh\n"));
}

TEST(PvhTest, FindsTheBzImagePayloadAndItsFormat) {
  absl::StatusOr<BzImagePayload> p = PayloadOfBzImage(GzipBzImage(Elf(18)));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->format, "gzip");
  EXPECT_EQ(p->data.substr(0, 2), "\x1f\x8b");
  EXPECT_FALSE(PayloadOfBzImage(Elf(18)).ok());  // not a bzImage
  std::string outside = GzipBzImage(Elf(18));
  Put(outside, 0x24c, 1u << 30, 4);  // a payload longer than the file
  EXPECT_THAT(std::string(PayloadOfBzImage(outside).status().message()), HasSubstr("outside"));
}

TEST(PvhTest, UnpacksAGzipBzImageOnceAndBootsItsElf) {
  const std::string dir = MakeTempDir("pvh");
  const std::string elf = Elf(18);
  WriteFile(dir + "/bzImage", GzipBzImage(elf));
  PvhKernel k = PreparePvhKernel(dir + "/bzImage", dir + "/cache");
  ASSERT_TRUE(k.pvh) << k.note;
  EXPECT_EQ(k.path.rfind(dir + "/cache/pvh-", 0), 0u) << k.path;
  EXPECT_EQ(ReadFile(k.path), elf);
  // The second boot of the same image finds the ELF: mark the cached copy and see it kept.
  WriteFile(k.path, elf + "cached");
  PvhKernel again = PreparePvhKernel(dir + "/bzImage", dir + "/cache");
  EXPECT_EQ(again.path, k.path);
  EXPECT_EQ(ReadFile(again.path), elf + "cached");
  // A rewritten image (a new build at the same path) is unpacked again.
  WriteFile(dir + "/bzImage", GzipBzImage(Elf(18, "a newer kernel")));
  PvhKernel rebuilt = PreparePvhKernel(dir + "/bzImage", dir + "/cache");
  ASSERT_TRUE(rebuilt.pvh) << rebuilt.note;
  EXPECT_NE(rebuilt.path, k.path);
  EXPECT_EQ(ReadFile(rebuilt.path), Elf(18, "a newer kernel"));
  Sh("rm -rf " + Quote(dir));
}

TEST(PvhTest, KernelWithoutPvhIsBootedAsGivenAndRemembered) {
  const std::string dir = MakeTempDir("pvh");
  WriteFile(dir + "/bzImage", GzipBzImage(Elf(17)));
  PvhKernel k = PreparePvhKernel(dir + "/bzImage", dir + "/cache");
  EXPECT_FALSE(k.pvh);
  EXPECT_EQ(k.path, dir + "/bzImage");
  EXPECT_THAT(k.note, HasSubstr("CONFIG_PVH"));
  EXPECT_EQ(CountEntries(dir + "/cache"), 1) << "the answer is remembered";
  PvhKernel again = PreparePvhKernel(dir + "/bzImage", dir + "/cache");
  EXPECT_FALSE(again.pvh);
  EXPECT_EQ(again.note, k.note);
  // Not a bzImage at all (a raw file): booted as given.
  WriteFile(dir + "/raw", "not a kernel");
  PvhKernel raw = PreparePvhKernel(dir + "/raw", dir + "/cache");
  EXPECT_FALSE(raw.pvh);
  EXPECT_EQ(raw.path, dir + "/raw");
  EXPECT_THAT(raw.note, HasSubstr("not a bzImage"));
  // An ELF is booted as given, through PVH when it has the note.
  WriteFile(dir + "/vmlinux", Elf(18));
  PvhKernel elf = PreparePvhKernel(dir + "/vmlinux", "");
  EXPECT_TRUE(elf.pvh);
  EXPECT_EQ(elf.path, dir + "/vmlinux");
  Sh("rm -rf " + Quote(dir));
}

TEST(PvhTest, BuildDirectoryVmlinuxIsUsedWhenNotNewerThanTheBzImage) {
  const std::string dir = MakeTempDir("pvh");
  const std::string image = dir + "/build/arch/x86/boot/bzImage";
  WriteFile(dir + "/build/vmlinux", Elf(18, "the build's vmlinux"));
  WriteFile(image, GzipBzImage(Elf(18, "the bzImage's payload")));
  // make writes vmlinux, then the bzImage: the image is the newer file.
  ASSERT_EQ(Sh("touch -d '2 seconds ago' " + Quote(dir + "/build/vmlinux")).exit_code, 0);
  PvhKernel k = PreparePvhKernel(image, dir + "/cache");
  ASSERT_TRUE(k.pvh) << k.note;
  EXPECT_EQ(k.path, dir + "/build/vmlinux");
  EXPECT_EQ(CountEntries(dir + "/cache"), 0) << "nothing unpacked";
  // vmlinux rebuilt after the bzImage (make vmlinux): it is not what the image holds.
  ASSERT_EQ(Sh("touch " + Quote(dir + "/build/vmlinux")).exit_code, 0);
  ASSERT_EQ(Sh("touch -d '2 seconds ago' " + Quote(image)).exit_code, 0);
  PvhKernel stale = PreparePvhKernel(image, dir + "/cache");
  ASSERT_TRUE(stale.pvh) << stale.note;
  EXPECT_NE(stale.path, dir + "/build/vmlinux");
  EXPECT_EQ(ReadFile(stale.path), Elf(18, "the bzImage's payload"));
  Sh("rm -rf " + Quote(dir));
}

TEST(PvhTest, XzPayloadIsUnpackedWithTheTool) {
  if (Sh("command -v xz").exit_code != 0)
    GTEST_SKIP() << "xz is not installed (apt-get install xz-utils)";
  const std::string dir = MakeTempDir("pvh");
  const std::string elf = Elf(18, "compressed with xz");
  WriteFile(dir + "/vmlinux.bin", elf);
  // As the kernel's build does: xz with the x86 BCJ filter and a CRC32 check.
  ASSERT_EQ(Sh("xz --check=crc32 --x86 --lzma2=dict=32MiB -c " + Quote(dir + "/vmlinux.bin") +
               " > " + Quote(dir + "/payload.xz"))
                .exit_code,
            0);
  WriteFile(dir + "/bzImage", BzImage(ReadFile(dir + "/payload.xz"), elf.size()));
  absl::StatusOr<BzImagePayload> p = PayloadOfBzImage(ReadFile(dir + "/bzImage"));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->format, "xz");
  PvhKernel k = PreparePvhKernel(dir + "/bzImage", dir + "/cache");
  ASSERT_TRUE(k.pvh) << k.note;
  EXPECT_EQ(ReadFile(k.path), elf);
  Sh("rm -rf " + Quote(dir));
}

TEST(PvhTest, CacheKeepsTheNewestEntries) {
  const std::string dir = MakeTempDir("pvh");
  for (int i = 0; i < kMaxCachedPvhKernels + 3; ++i) {
    const std::string image = absl::StrCat(dir, "/img-", i);
    WriteFile(image, GzipBzImage(Elf(18, absl::StrCat("kernel ", i))));
    PvhKernel k = PreparePvhKernel(image, dir + "/cache");
    ASSERT_TRUE(k.pvh) << k.note;
    ASSERT_TRUE(std::filesystem::exists(k.path)) << "the newest entry is never pruned";
  }
  EXPECT_EQ(CountEntries(dir + "/cache"), kMaxCachedPvhKernels);
  Sh("rm -rf " + Quote(dir));
}

}  // namespace
}  // namespace farm::boot
