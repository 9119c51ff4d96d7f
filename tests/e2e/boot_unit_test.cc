// agent/boot without a kernel: the cpio writer (read back by GNU cpio), the initramfs, the KTAP
// parser, the console classifier on recorded console output, the outcome classification, the
// verdict mapping and qemu's command line.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agent/boot/boot_verdict.h"
#include "agent/boot/console.h"
#include "agent/boot/cpio.h"
#include "agent/boot/initramfs.h"
#include "agent/boot/ktap.h"
#include "agent/boot/modules.h"
#include "agent/boot/qemu_boot.h"
#include "agent/boot/text.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/lib/test_util.h"

namespace farm::boot {
namespace {

namespace v1 = farm::v1;
using ::farm::testing::MakeTempDir;
using ::farm::testing::Quote;
using ::farm::testing::Sh;
using ::testing::HasSubstr;
using ::testing::Not;

// "static" for a 64-bit little-endian ELF executable without a program interpreter (PT_INTERP),
// "dynamic" with one, or what is wrong with the file. The header, read directly: `file` may not
// be installed.
std::string ElfLinkage(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::string d((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  using boot::text::LittleEndian;
  if (d.size() < 64 ||
      d.compare(0, 4,
                "\x7f"
                "ELF") != 0 ||
      d[4] != 2 || d[5] != 1) {
    return "not a 64-bit little-endian ELF file";
  }
  const uint64_t phoff = LittleEndian(d, 0x20, 8);
  const uint64_t phentsize = LittleEndian(d, 0x36, 2);
  const uint64_t phnum = LittleEndian(d, 0x38, 2);
  if (phnum == 0 || phentsize < 4 || phoff + phnum * phentsize > d.size()) {
    return "no program headers";
  }
  constexpr uint64_t kPtInterp = 3;
  for (uint64_t i = 0; i < phnum; ++i) {
    if (LittleEndian(d, phoff + i * phentsize, 4) == kPtInterp) return "dynamic";
  }
  return "static";
}

bool HaveTool(const std::string& name) {
  return Sh(absl::StrCat("command -v ", name, " >/dev/null")).exit_code == 0;
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << data;
}

// Removes a test's directory when the test passed (initramfs archives are megabytes).
struct RemoveOnSuccess {
  std::string dir;
  ~RemoveOnSuccess() {
    if (!::testing::Test::HasFailure()) Sh("rm -rf " + Quote(dir));
  }
};

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// ---------------------------------------------------------------------------------------------
// cpio

TEST(CpioTest, GnuCpioListsEveryEntry) {
  if (!HaveTool("cpio")) GTEST_SKIP() << "cpio is not installed (apt-get install cpio)";
  CpioWriter w;
  w.AddDirectory("bin");
  w.AddFile("bin/hello", "#!/bin/sh\necho hello\n", 0755);
  w.AddSymlink("bin/sh", "/bin/busybox");
  w.AddCharDevice("/dev/console", 5, 1);
  w.AddFile("odd-size", std::string(13, 'x'));  // exercises the 4-byte padding
  const std::string dir = MakeTempDir("cpio");
  RemoveOnSuccess cleanup{dir};
  WriteFile(dir + "/a.cpio", w.Finish());
  auto list = Sh("cpio -itv < " + Quote(dir + "/a.cpio"));
  ASSERT_EQ(list.exit_code, 0) << list.output;
  EXPECT_THAT(list.output, HasSubstr("bin/hello"));
  EXPECT_THAT(list.output, HasSubstr("bin/sh -> /bin/busybox"));
  EXPECT_THAT(list.output, HasSubstr("crw-------"));
  EXPECT_THAT(list.output, HasSubstr("dev/console"));
  EXPECT_THAT(list.output, HasSubstr("odd-size"));
  auto content = Sh("cd " + Quote(dir) + " && cpio -i --quiet --to-stdout bin/hello < a.cpio");
  EXPECT_EQ(content.output, "#!/bin/sh\necho hello\n");
  auto odd = Sh("cd " + Quote(dir) + " && cpio -i --quiet --to-stdout odd-size < a.cpio");
  EXPECT_EQ(odd.output, std::string(13, 'x'));
}

TEST(CpioTest, GzipRoundTrips) {
  if (!HaveTool("cpio") || !HaveTool("gzip")) GTEST_SKIP() << "cpio or gzip is not installed";
  CpioWriter w;
  w.AddFile("f", std::string(100000, 'a'));
  absl::StatusOr<std::string> gz = Gzip(w.Finish());
  ASSERT_TRUE(gz.ok()) << gz.status();
  EXPECT_LT(gz->size(), 10000u);
  const std::string dir = MakeTempDir("cpio-gz");
  RemoveOnSuccess cleanup{dir};
  WriteFile(dir + "/a.cpio.gz", *gz);
  auto list = Sh("gzip -dc " + Quote(dir + "/a.cpio.gz") + " | cpio -it");
  ASSERT_EQ(list.exit_code, 0) << list.output;
  EXPECT_THAT(list.output, HasSubstr("f"));
}

// ---------------------------------------------------------------------------------------------
// initramfs

bool HaveStaticGcc() {
  return Sh("printf 'int main(){return 0;}' | gcc -static -x c -o /dev/null - 2>/dev/null")
             .exit_code == 0;
}

v1::BootSpec ShellSpec(const std::string& script) {
  v1::BootSpec spec;
  spec.set_payload(script);
  return spec;
}

// A file of concatenated newc archives, split into its parts: the first `known` parts end at
// their trailer (none of their files contains the word), the rest (busybox, whose binary does) is
// the last part. GNU cpio stops at the first trailer, so each part is listed on its own.
struct Parts {
  std::vector<std::string> files;  // one .cpio per part
  std::set<std::string> entries;   // of every part
};
Parts SplitParts(const std::string& work, const std::string& archive, int known) {
  Parts p;
  size_t start = 0;
  for (int i = 0; start < archive.size(); ++i) {
    size_t end = archive.size();
    if (i < known) {
      size_t trailer = archive.find("TRAILER!!!", start);
      if (trailer != std::string::npos) end = std::min(archive.find("070701", trailer), end);
    }
    p.files.push_back(absl::StrCat(work, "/part", i, ".cpio"));
    WriteFile(p.files.back(), archive.substr(start, end - start));
    auto list = Sh("cpio -it --quiet < " + Quote(p.files.back()));
    EXPECT_EQ(list.exit_code, 0) << list.output;
    for (absl::string_view line : absl::StrSplit(list.output, '\n', absl::SkipEmpty())) {
      p.entries.insert(std::string(line));
    }
    start = end;
  }
  return p;
}

// The content of `name` in whichever part has it.
std::string Extract(const Parts& p, const std::string& name) {
  for (const std::string& f : p.files) {
    auto r = Sh("cd / && cpio -i --quiet --to-stdout " + Quote(name) + " < " + Quote(f));
    if (r.exit_code == 0 && !r.output.empty()) return r.output;
  }
  return "";
}

TEST(InitramfsTest, ShellTestGetsBusyboxInitAndItsConfig) {
  if (access("/bin/busybox", X_OK) != 0)
    GTEST_SKIP() << "no /bin/busybox (apt-get install busybox-static)";
  if (!HaveTool("cpio")) GTEST_SKIP() << "cpio is not installed (apt-get install cpio)";
  const std::string work = MakeTempDir("initramfs");
  RemoveOnSuccess cleanup{work};
  v1::BootSpec spec = ShellSpec("#!/bin/sh\nexit 0\n");
  spec.set_test_timeout_seconds(7);

  absl::Time t0 = absl::Now();
  absl::StatusOr<std::string> cold = BuildInitramfs(spec, work);
  absl::Duration cold_time = absl::Now() - t0;
  ASSERT_TRUE(cold.ok()) << cold.status();
  v1::BootSpec other = ShellSpec("#!/bin/sh\nexit 1\n");
  t0 = absl::Now();
  absl::StatusOr<std::string> warm = BuildInitramfs(other, work);
  absl::Duration warm_time = absl::Now() - t0;
  ASSERT_TRUE(warm.ok()) << warm.status();
  std::printf("[ measure ] initramfs build: %.1f ms cold (busybox part built), %.1f ms warm\n",
              absl::ToDoubleMilliseconds(cold_time), absl::ToDoubleMilliseconds(warm_time));
  EXPECT_NE(*cold, *warm);
  absl::StatusOr<std::string> again = BuildInitramfs(spec, work);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *cold) << "equal specs give the same file";

  // Three archives, one after the other: the skeleton and init, the task's part, busybox's.
  Parts parts = SplitParts(work, ReadFileOrEmpty(*cold), 2);
  EXPECT_EQ(parts.files.size(), 3u);
  for (const char* entry : {"init", "farm/test", "farm/init.conf", "bin/busybox", "bin/sh",
                            "bin/bash", "dev/console", "proc", "sys", "farm/shared"}) {
    EXPECT_EQ(parts.entries.count(entry), 1u) << entry;
  }
  EXPECT_TRUE(Extract(parts, "init") == FarmInitBinary()) << "/init is the embedded farm_init";
  const std::string conf = Extract(parts, "farm/init.conf");
  EXPECT_EQ(conf, InitConfig(spec, {}));
  EXPECT_THAT(conf, HasSubstr("\ntimeout 7\n"));
  EXPECT_THAT(conf, HasSubstr("\narg /bin/sh\narg /farm/test\n"));
}

TEST(InitramfsTest, CompiledTestNeedsNoBusybox) {
  if (!HaveTool("cpio")) GTEST_SKIP() << "cpio is not installed (apt-get install cpio)";
  if (!HaveStaticGcc()) GTEST_SKIP() << "gcc -static does not work (apt-get install gcc libc6-dev)";
  const std::string work = MakeTempDir("initramfs-bin");
  RemoveOnSuccess cleanup{work};
  InitramfsOptions no_busybox;
  no_busybox.busybox = work + "/no-such-busybox";
  // A C test that runs no shell.
  v1::BootSpec spec;
  spec.set_payload("int main(void) { return 0; }\n");
  absl::StatusOr<std::string> path = BuildInitramfs(spec, work, no_busybox);
  ASSERT_TRUE(path.ok()) << path.status();
  const std::string archive = ReadFileOrEmpty(*path);
  Parts parts = SplitParts(work, archive, 2);
  EXPECT_EQ(parts.files.size(), 2u);
  for (const char* entry : {"init", "farm/test", "farm/init.conf", "dev/console"}) {
    EXPECT_EQ(parts.entries.count(entry), 1u) << entry;
  }
  EXPECT_EQ(parts.entries.count("bin/busybox"), 0u);
  EXPECT_LT(archive.size(), FarmInitBinary().size() + (2 << 20)) << "init, the test, a few dirs";

  // A binary that runs a shell (system(), popen()) gets busybox, and says so when there is none.
  v1::BootSpec shell_user;
  shell_user.set_payload(std::string(FarmInitBinary()) + "/bin/sh");
  absl::Status st = BuildInitramfs(shell_user, work, no_busybox).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(st)) << st;
  EXPECT_TRUE(NeedsBusybox(v1::BootSpec::BINARY, "...system(\"/bin/sh -c\")..."));
  EXPECT_FALSE(NeedsBusybox(v1::BootSpec::BINARY,
                            "\x7f"
                            "ELF...puts...exit"));
  EXPECT_TRUE(NeedsBusybox(v1::BootSpec::SHELL, "exit 0"));
}

TEST(InitramfsTest, GzippedArchiveUnpacks) {
  if (access("/bin/busybox", X_OK) != 0)
    GTEST_SKIP() << "no /bin/busybox (apt-get install busybox-static)";
  if (!HaveTool("cpio") || !HaveTool("gzip")) GTEST_SKIP() << "cpio or gzip is not installed";
  const std::string work = MakeTempDir("initramfs-gz");
  RemoveOnSuccess cleanup{work};
  InitramfsOptions opts;
  opts.compress = true;
  absl::StatusOr<std::string> path = BuildInitramfs(ShellSpec("#!/bin/sh\nexit 0\n"), work, opts);
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_TRUE(absl::EndsWith(*path, ".cpio.gz"));
  // gzip -dc decompresses concatenated members as one stream, as the kernel unpacks them.
  auto raw = Sh("gzip -dc " + Quote(*path));
  ASSERT_EQ(raw.exit_code, 0);
  Parts parts = SplitParts(work, raw.output, 2);
  EXPECT_EQ(parts.entries.count("bin/busybox"), 1u);
  EXPECT_EQ(parts.entries.count("init"), 1u);
}

TEST(InitramfsTest, ScriptWithoutShebangGetsOne) {
  if (access("/bin/busybox", X_OK) != 0)
    GTEST_SKIP() << "no /bin/busybox (apt-get install busybox-static)";
  if (!HaveTool("cpio")) GTEST_SKIP() << "cpio is not installed";
  const std::string work = MakeTempDir("initramfs-sh");
  RemoveOnSuccess cleanup{work};
  v1::BootSpec spec = ShellSpec("echo hi\n");
  spec.set_payload_kind(v1::BootSpec::SHELL);
  absl::StatusOr<std::string> path = BuildInitramfs(spec, work);
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_THAT(ReadFileOrEmpty(*path), HasSubstr("#!/bin/sh\necho hi\n"));
}

TEST(InitramfsTest, InitConfigRunsShellTestsThroughSh) {
  // Kernels without CONFIG_BINFMT_SCRIPT (tinyconfig) cannot exec "#!" files.
  EXPECT_THAT(InitConfig(ShellSpec("#!/bin/bash\nexit 0\n"), {}),
              HasSubstr("\narg /bin/sh\narg /farm/test\n"));
  EXPECT_THAT(InitConfig(ShellSpec("#!/usr/bin/env sh\nexit 0\n"), {}),
              HasSubstr("\narg /bin/sh\narg /farm/test\n"));
  v1::BootSpec bin;
  bin.set_payload(std::string("\x7f"
                              "ELF",
                              4) +
                  std::string(60, '\0'));
  std::string conf = InitConfig(bin, {});
  EXPECT_THAT(conf, HasSubstr("\narg /farm/test\n"));
  EXPECT_THAT(conf, Not(HasSubstr("arg /bin/sh")));
  EXPECT_THAT(conf, Not(HasSubstr("share")));
  EXPECT_THAT(conf, HasSubstr("\ntimeout 300\n"));
}

TEST(InitramfsTest, SharedDirectoryAndResultFile) {
  v1::BootSpec spec = ShellSpec("#!/bin/sh\nexit 0\n");
  spec.set_shared_dir("/host/dir");
  spec.set_result_file("test_result");
  std::string conf = InitConfig(spec, {"/farm/modules/00-9p.ko", "/farm/modules/01-x.ko"});
  EXPECT_THAT(conf, HasSubstr("\nshare farm\n"));
  EXPECT_THAT(conf, HasSubstr("\nresult_file test_result\n"));
  EXPECT_THAT(conf, HasSubstr("\nmodule /farm/modules/00-9p.ko\nmodule /farm/modules/01-x.ko\n"));
  spec.clear_shared_dir();
  EXPECT_THAT(InitConfig(spec, {}), Not(HasSubstr("result_file")));
}

TEST(InitramfsTest, ArchiveNameFollowsItsInputs) {
  if (access("/bin/busybox", X_OK) != 0)
    GTEST_SKIP() << "no /bin/busybox (apt-get install busybox-static)";
  const std::string work = MakeTempDir("initramfs-inputs");
  RemoveOnSuccess cleanup{work};
  const std::string module = work + "/m.ko";
  WriteFile(module, "a");
  InitramfsOptions options;
  options.modules = {module};
  v1::BootSpec spec = ShellSpec("#!/bin/sh\nexit 0\n");
  absl::StatusOr<std::string> first = BuildInitramfs(spec, work, options);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*BuildInitramfs(spec, work, options), *first);
  WriteFile(module, "bb");  // a rebuilt module
  absl::StatusOr<std::string> rebuilt = BuildInitramfs(spec, work, options);
  ASSERT_TRUE(rebuilt.ok());
  EXPECT_NE(*rebuilt, *first);
  EXPECT_THAT(ReadFileOrEmpty(*rebuilt), HasSubstr("farm/modules/00-m.ko"));
  spec.set_test_timeout_seconds(9);
  EXPECT_NE(*BuildInitramfs(spec, work, options), *rebuilt);
}

TEST(InitramfsTest, PruningKeepsTheNewestArchives) {
  const std::string work = MakeTempDir("initramfs-prune");
  RemoveOnSuccess cleanup{work};
  for (int i = 0; i < 5; ++i) {
    const std::string path = absl::StrCat(work, "/initramfs-", i, ".cpio");
    WriteFile(path, "x");
    struct timespec times[2] = {{1000 + i, 0}, {1000 + i, 0}};
    ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
  }
  WriteFile(work + "/busybox-1.cpio", "x");  // not an initramfs: kept
  EXPECT_EQ(PruneInitramfsCache(work, 2), 3);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(access(absl::StrCat(work, "/initramfs-", i, ".cpio").c_str(), F_OK) == 0, i >= 3)
        << i;
  }
  EXPECT_EQ(access((work + "/busybox-1.cpio").c_str(), F_OK), 0);
  EXPECT_EQ(PruneInitramfsCache(work, 2), 0);
}

// ---------------------------------------------------------------------------------------------
// farm_init outside a kernel: not pid 1, it only runs the test under its timeout and prints the
// markers, which the console scanner must read.

class FarmInitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("farm-init");
    cleanup_.dir = dir_;
    init_ = dir_ + "/init";
    WriteFile(init_, std::string(FarmInitBinary()));
    chmod(init_.c_str(), 0755);
  }
  // Runs init with `config`; returns its output, fed to `console`.
  ::farm::testing::CommandResult Run(const std::string& config, ConsoleScanner& console) {
    WriteFile(dir_ + "/init.conf", config);
    auto r = Sh(Quote(init_) + " " + Quote(dir_ + "/init.conf") + " 2>&1");
    console.Feed(r.output);
    console.Finish();
    return r;
  }
  std::string dir_, init_;
  RemoveOnSuccess cleanup_;
};

TEST_F(FarmInitTest, ReportsTheExitStatus) {
  ConsoleScanner console;
  auto r = Run("timeout 30\narg /bin/sh\narg -c\narg echo from the test; exit 3\n", console);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(console.init_started()) << r.output;
  EXPECT_EQ(console.exit_code(), 3) << r.output;
  EXPECT_THAT(r.output, HasSubstr("from the test"));
  const std::string result = std::string(kResultMarker) + "3\n";
  EXPECT_THAT(r.output, HasSubstr(result + result)) << "twice";
  EXPECT_LT(r.output.find(std::string(kInitStartedMarker)), r.output.find("from the test"));
}

TEST_F(FarmInitTest, SignalIsStatusAbove128) {
  ConsoleScanner console;
  auto r = Run("arg /bin/sh\narg -c\narg kill -TERM $$\n", console);
  EXPECT_EQ(console.exit_code(), 128 + 15) << r.output;
}

TEST_F(FarmInitTest, TimeoutKillsTheTestAndWhatItStarted) {
  ConsoleScanner console;
  // The background subshell keeps init's output open: Sh() returns once every process that could
  // still print is gone, and one that escaped the kill would print SURVIVED first.
  auto r =
      Run("timeout 1\narg /bin/sh\narg -c\narg (sleep 3; echo SURVIVED) & sleep 100\n", console);
  EXPECT_TRUE(console.test_timed_out()) << r.output;
  EXPECT_THAT(r.output, HasSubstr("the test ran longer than 1s"));
  EXPECT_EQ(console.exit_code(), 128 + 9) << r.output;
  EXPECT_THAT(r.output, Not(HasSubstr("SURVIVED"))) << "the test's process group is killed";
}

TEST_F(FarmInitTest, TestThatCannotRunIs127) {
  ConsoleScanner console;
  auto r = Run("arg /no/such/test\n", console);
  EXPECT_EQ(console.exit_code(), 127) << r.output;
  EXPECT_THAT(r.output, HasSubstr("cannot run /no/such/test"));
}

TEST_F(FarmInitTest, BadConfigurationSaysWhy) {
  ConsoleScanner console;
  auto r = Run("timeout 5\n", console);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("names no test"));
  EXPECT_FALSE(console.init_started());
}

TEST(InitramfsTest, RejectsBadInput) {
  if (access("/bin/busybox", X_OK) != 0)
    GTEST_SKIP() << "no /bin/busybox (apt-get install busybox-static)";
  const std::string work = MakeTempDir("initramfs-bad");
  RemoveOnSuccess cleanup{work};
  v1::BootSpec empty;
  EXPECT_TRUE(absl::IsInvalidArgument(BuildInitramfs(empty, work).status()));
  v1::BootSpec escape = ShellSpec("#!/bin/sh\n");
  escape.set_shared_dir("/tmp");
  escape.set_result_file("../etc/passwd");
  EXPECT_TRUE(absl::IsInvalidArgument(BuildInitramfs(escape, work).status()));
  // A dynamically linked binary cannot run in an initramfs without its loader.
  v1::BootSpec dynamic;
  dynamic.set_payload(ReadFileOrEmpty("/bin/true"));
  dynamic.set_payload_kind(v1::BootSpec::BINARY);
  absl::Status st = BuildInitramfs(dynamic, work).status();
  EXPECT_TRUE(absl::IsInvalidArgument(st)) << st;
  EXPECT_THAT(std::string(st.message()), HasSubstr("-static"));
}

TEST(InitramfsTest, CompilesCStaticallyAndCachesIt) {
  if (!HaveStaticGcc()) GTEST_SKIP() << "gcc -static does not work (apt-get install gcc libc6-dev)";
  const std::string cache = MakeTempDir("cc-cache");
  RemoveOnSuccess cleanup{cache};
  const std::string source = "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 3; }\n";
  absl::Time t0 = absl::Now();
  absl::StatusOr<std::string> bin = CompileStaticC(source, cache);
  absl::Duration cold = absl::Now() - t0;
  ASSERT_TRUE(bin.ok()) << bin.status();
  t0 = absl::Now();
  absl::StatusOr<std::string> again = CompileStaticC(source, cache);
  absl::Duration warm = absl::Now() - t0;
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*bin, *again);
  std::printf("[ measure ] C payload: compiled in %.0f ms, cache hit in %.2f ms\n",
              absl::ToDoubleMilliseconds(cold), absl::ToDoubleMilliseconds(warm));
  EXPECT_EQ(ElfLinkage(*bin), "static") << "no PT_INTERP: the guest has no dynamic loader";
  EXPECT_EQ(ElfLinkage("/bin/sh"), "dynamic") << "the check tells them apart";
  EXPECT_EQ(Sh(Quote(*bin)).exit_code, 3);

  absl::Status broken = CompileStaticC("int main( { return 0; }\n", cache).status();
  EXPECT_TRUE(absl::IsInvalidArgument(broken)) << broken;
  EXPECT_THAT(std::string(broken.message()), HasSubstr("error"));
}

TEST(InitramfsTest, GuessesPayloadKinds) {
  EXPECT_EQ(ResolvePayloadKind(ShellSpec("#!/bin/sh\n")), v1::BootSpec::SHELL);
  EXPECT_EQ(ResolvePayloadKind(ShellSpec(std::string("\x7f"
                                                     "ELF\x02",
                                                     5))),
            v1::BootSpec::BINARY);
  EXPECT_EQ(ResolvePayloadKind(ShellSpec("int main() { return 0; }")), v1::BootSpec::C_SOURCE);
  v1::BootSpec forced = ShellSpec("int main() { return 0; }");
  forced.set_payload_kind(v1::BootSpec::SHELL);
  EXPECT_EQ(ResolvePayloadKind(forced), v1::BootSpec::SHELL);
}

// ---------------------------------------------------------------------------------------------
// KTAP

TEST(KtapTest, AllPass) {
  KtapSummary s = ParseKtap("KTAP version 1\n1..2\nok 1 first\nok 2 second\n");
  EXPECT_TRUE(s.found);
  EXPECT_EQ(s.passed, 2);
  EXPECT_EQ(s.failed, 0);
  EXPECT_EQ(s.total, 2);
  EXPECT_TRUE(s.complete) << s.incomplete_reason;
}

TEST(KtapTest, NotOkAndSkip) {
  KtapSummary s = ParseKtap(
      "TAP version 13\n1..4\nok 1 a\nnot ok 2 b # exit=1\nok 3 c # SKIP no device\n"
      "not ok 4 d # skip not supported\n");
  EXPECT_EQ(s.passed, 1);
  EXPECT_EQ(s.failed, 1);
  EXPECT_EQ(s.skipped, 2);
  EXPECT_EQ(s.total, 4);
  EXPECT_EQ(s.first_failure, "b");
  EXPECT_TRUE(s.complete);
}

TEST(KtapTest, SpecExampleWithNesting) {
  // Documentation/dev-tools/ktap.rst, "Example KTAP output".
  KtapSummary s = ParseKtap(R"TXT(KTAP version 1
1..1
  KTAP version 1
  1..3
    KTAP version 1
    1..1
    # test_1: initializing test_1
    ok 1 test_1
  ok 1 example_test_1
    KTAP version 1
    1..2
    ok 1 test_1 # SKIP test_1 skipped
    ok 2 test_2
  ok 2 example_test_2
    KTAP version 1
    1..3
    ok 1 test_1
    # test_2: FAIL
    not ok 2 test_2
    ok 3 test_3 # SKIP test_3 skipped
  not ok 3 example_test_3
not ok 1 main_test
)TXT");
  EXPECT_EQ(s.passed, 3);
  EXPECT_EQ(s.failed, 1);
  EXPECT_EQ(s.skipped, 2);
  EXPECT_EQ(s.total, 6) << "leaves only: parents are counted through their subtests";
  EXPECT_EQ(s.first_failure, "test_2");
  EXPECT_TRUE(s.complete) << s.incomplete_reason;
}

TEST(KtapTest, KunitConsoleWithTimestamps) {
  KtapSummary s = ParseKtap(R"TXT([    0.512345] KTAP version 1
[    0.512346] 1..1
[    0.512400]     KTAP version 1
[    0.512401]     # Subtest: example
[    0.512402]     1..3
[    0.512500]     ok 1 example_simple_test
[    0.512600] random kernel message in between
[    0.512700]     ok 2 example_skip_test # SKIP this test should be skipped
[    0.512800]     not ok 3 example_fail_test
[    0.512900] # example: pass:1 fail:1 skip:1 total:3
[    0.513000] not ok 1 example
)TXT");
  EXPECT_EQ(s.passed, 1);
  EXPECT_EQ(s.failed, 1);
  EXPECT_EQ(s.skipped, 1);
  EXPECT_EQ(s.first_failure, "example.example_fail_test");
  EXPECT_TRUE(s.complete) << s.incomplete_reason;
}

TEST(KtapTest, KselftestNestedOutputIsDiagnostic) {
  KtapSummary s = ParseKtap(R"TXT(TAP version 13
1..2
# selftests: net: reuseport_bpf
# TAP version 13
# 1..1
# not ok 1 inner failure that the runner reports through its own result
ok 1 selftests: net: reuseport_bpf
# selftests: net: so_txtime
not ok 2 selftests: net: so_txtime # exit=1
)TXT");
  EXPECT_EQ(s.passed, 1);
  EXPECT_EQ(s.failed, 1);
  EXPECT_EQ(s.first_failure, "selftests: net: so_txtime");
  EXPECT_TRUE(s.complete);
}

TEST(KtapTest, TruncatedStreamIsIncomplete) {
  KtapSummary s = ParseKtap("KTAP version 1\n1..3\nok 1 a\nok 2 b\n");
  EXPECT_EQ(s.passed, 2);
  EXPECT_FALSE(s.complete);
  EXPECT_THAT(s.incomplete_reason, HasSubstr("2 of 3"));
}

TEST(KtapTest, TruncatedInsideASubtest) {
  KtapSummary s = ParseKtap(
      "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: suite\n    1..3\n    ok 1 a\n");
  EXPECT_FALSE(s.complete);
  EXPECT_THAT(s.incomplete_reason, HasSubstr("suite"));
}

TEST(KtapTest, SubtestWithoutParentResultIsIncomplete) {
  KtapSummary s = ParseKtap(
      "KTAP version 1\n1..2\n  KTAP version 1\n  1..1\n  ok 1 a\n  KTAP version 1\n  1..1\n"
      "  ok 1 b\nok 2 second\n");
  EXPECT_FALSE(s.complete);
}

TEST(KtapTest, BailOut) {
  KtapSummary s = ParseKtap("TAP version 13\n1..3\nok 1 a\nBail out! no network\n");
  EXPECT_TRUE(s.bailed_out);
  EXPECT_FALSE(s.complete);
}

TEST(KtapTest, NoKtapAtAll) {
  KtapSummary s = ParseKtap("hello\nok 1 not tap without a version line\n");
  EXPECT_FALSE(s.found);
  EXPECT_EQ(s.total, 0);
}

TEST(KtapTest, PlanZeroAndTodo) {
  EXPECT_TRUE(ParseKtap("KTAP version 1\n1..0 # SKIP nothing to do\n").complete);
  KtapSummary s = ParseKtap("TAP version 13\n1..1\nnot ok 1 later # TODO not yet\n");
  EXPECT_EQ(s.failed, 0);
  EXPECT_EQ(s.skipped, 1);
}

TEST(KtapTest, TwoProgramsOneAfterTheOther) {
  KtapSummary s =
      ParseKtap("TAP version 13\n1..1\nok 1 a\nTAP version 13\n1..2\nok 1 b\nnot ok 2 c\n");
  EXPECT_EQ(s.passed, 2);
  EXPECT_EQ(s.failed, 1);
  EXPECT_TRUE(s.complete);
}

TEST(KtapTest, FailingParentWithoutFailingChildrenCounts) {
  KtapSummary s = ParseKtap(
      "KTAP version 1\n1..1\n  KTAP version 1\n  1..1\n  ok 1 a\nnot ok 1 suite_exit_failed\n");
  EXPECT_EQ(s.failed, 1);
  EXPECT_EQ(s.passed, 1);
}

TEST(KtapTest, StripsPrintkPrefixes) {
  EXPECT_EQ(StripPrintkPrefix("[    1.234567] hello\r"), "hello");
  EXPECT_EQ(StripPrintkPrefix("[    1.234567][    T1] hello"), "hello");
  EXPECT_EQ(StripPrintkPrefix("[x] not a stamp"), "[x] not a stamp");
  EXPECT_EQ(StripPrintkPrefix("[    1.234567]     indented"), "    indented");
}

// ---------------------------------------------------------------------------------------------
// Console

// Recorded from Debian's 6.1 cloud kernel under qemu (tests/e2e: `echo c > /proc/sysrq-trigger`).
constexpr char kSysrqPanic[] = R"TXT([    1.702637] Run /bin/sh as init process
FARM-INIT-STARTED
about to crash
[    1.906976] sysrq: Trigger a crash
[    1.907216] Kernel panic - not syncing: sysrq triggered crash
[    1.907463] CPU: 0 PID: 84 Comm: sh Not tainted 6.1.0-56-cloud-amd64 #1  Debian 6.1.192-2
[    1.907657] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[    1.907887] Call Trace:
[    1.908391]  <TASK>
[    1.908538]  dump_stack_lvl+0x44/0x5c
[    1.908806]  panic+0x118/0x2f4
[    1.908946]  sysrq_handle_crash+0x16/0x20
[    1.912047] Kernel Offset: 0x3400000 from 0xffffffff81000000 (relocation range: 0xffffffff80000000-0xffffffffbfffffff)
)TXT";

// The shape x86 prints for a NULL dereference in a system call, after which the task is killed.
constexpr char kNullDerefOops[] = R"TXT(FARM-INIT-STARTED
[    3.100000] BUG: kernel NULL pointer dereference, address: 0000000000000008
[    3.100001] #PF: supervisor write access in kernel mode
[    3.100002] #PF: error_code(0x0002) - not-present page
[    3.100003] PGD 0 P4D 0
[    3.100004] Oops: 0002 [#1] PREEMPT SMP NOPTI
[    3.100005] CPU: 0 PID: 85 Comm: test Not tainted 6.1.0 #1
[    3.100006] RIP: 0010:inet_listen+0x42/0x120
[    3.100007] ---[ end trace 0000000000000000 ]---
Killed
FARM-RESULT: 137
)TXT";

constexpr char kBugOn[] = R"TXT(FARM-INIT-STARTED
[    4.000000] ------------[ cut here ]------------
[    4.000001] kernel BUG at mm/slub.c:429!
[    4.000002] invalid opcode: 0000 [#1] PREEMPT SMP NOPTI
[    4.000003] RIP: 0010:__slab_free+0x1e4/0x2f0
)TXT";

constexpr char kVfsNoInit[] =
    R"TXT([    1.500000] VFS: Cannot open root device "(null)" or unknown-block(0,0): error -6
[    1.500001] Please append a correct "root=" boot option; here are the available partitions:
[    1.500002] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)
[    1.500003] CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.1.0 #1
)TXT";

constexpr char kNoWorkingInit[] = R"TXT([    1.600000] Run /bin/sh as init process
[    1.600001] Failed to execute /bin/sh (error -8)
[    1.600002] Kernel panic - not syncing: No working init found.  Try passing init= option to kernel. See Linux Documentation/admin-guide/init.rst for guidance.
)TXT";

ConsoleScanner Scan(std::string_view text) {
  ConsoleScanner s;
  s.Feed(text);
  s.Finish();
  return s;
}

TEST(ConsoleTest, ClassifiesLines) {
  EXPECT_EQ(ClassifyLine("[    1.9] Kernel panic - not syncing: sysrq triggered crash"),
            CrashKind::kPanic);
  EXPECT_EQ(ClassifyLine("[ 3.1] BUG: kernel NULL pointer dereference, address: 0000000000000008"),
            CrashKind::kOops);
  EXPECT_EQ(ClassifyLine("BUG: unable to handle page fault for address: ffff8880"),
            CrashKind::kOops);
  EXPECT_EQ(ClassifyLine("general protection fault, probably for non-canonical address 0xdead: "
                         "0000 [#1] SMP"),
            CrashKind::kOops);
  EXPECT_EQ(ClassifyLine("Oops: 0002 [#1] PREEMPT SMP NOPTI"), CrashKind::kOops);
  EXPECT_EQ(ClassifyLine("kernel BUG at mm/slub.c:429!"), CrashKind::kBug);
  EXPECT_EQ(ClassifyLine("BUG: sleeping function called from invalid context at kernel/locking/"
                         "mutex.c:580"),
            CrashKind::kBug);
  EXPECT_EQ(ClassifyLine("BUG: KASAN: use-after-free in tcp_v4_rcv+0x12/0x30"), CrashKind::kBug);
  EXPECT_EQ(ClassifyLine("WARNING: CPU: 0 PID: 1 at net/core/dev.c:1234 foo+0x12/0x30"),
            CrashKind::kWarning);
  EXPECT_EQ(ClassifyLine("[    2.0] Freeing unused kernel image"), CrashKind::kNone);
  // A user process's faults are the test's business.
  EXPECT_EQ(ClassifyLine("[ 3.0] traps: test[86] general protection fault ip:401136 sp:7ffd "
                         "error:0 in test[401000+94000]"),
            CrashKind::kNone);
  EXPECT_EQ(ClassifyLine("[ 3.0] test[85]: segfault at 0 ip 0000000000401136 sp 00007ffd8 error 6"),
            CrashKind::kNone);
}

TEST(ConsoleTest, RecordedPanic) {
  ConsoleScanner s = Scan(kSysrqPanic);
  EXPECT_TRUE(s.init_started());
  EXPECT_TRUE(s.panicked());
  EXPECT_FALSE(s.no_init());
  EXPECT_EQ(s.first_crash(), CrashKind::kPanic);
  EXPECT_EQ(s.first_crash_line(), "Kernel panic - not syncing: sysrq triggered crash");
  EXPECT_FALSE(s.exit_code().has_value());
  // The report: the lines before the crash line and the trace after it.
  EXPECT_THAT(s.CrashReport(), HasSubstr("sysrq: Trigger a crash"));
  EXPECT_THAT(s.CrashReport(), HasSubstr("sysrq_handle_crash"));
}

TEST(ConsoleTest, OopsThenKilledTest) {
  ConsoleScanner s = Scan(kNullDerefOops);
  EXPECT_EQ(s.first_crash(), CrashKind::kOops);
  EXPECT_EQ(s.worst_crash(), CrashKind::kOops);
  EXPECT_THAT(s.first_crash_line(), HasSubstr("NULL pointer dereference"));
  EXPECT_EQ(s.exit_code(), 137);
  EXPECT_THAT(s.CrashReport(), HasSubstr("RIP: 0010:inet_listen"));
}

TEST(ConsoleTest, BugOn) {
  ConsoleScanner s = Scan(kBugOn);
  EXPECT_EQ(s.first_crash(), CrashKind::kBug);
  EXPECT_TRUE(s.saw(CrashKind::kOops)) << "the invalid opcode header that follows";
}

TEST(ConsoleTest, NoInit) {
  ConsoleScanner vfs = Scan(kVfsNoInit);
  EXPECT_TRUE(vfs.no_init());
  EXPECT_TRUE(vfs.panicked());
  EXPECT_FALSE(vfs.init_started());
  ConsoleScanner exec = Scan(kNoWorkingInit);
  EXPECT_TRUE(exec.no_init());
}

TEST(ConsoleTest, MarkersSplitAcrossChunksAreFound) {
  const std::string text = absl::StrCat(kSysrqPanic, "\r\n");
  // Every chunk boundary: one byte at a time.
  ConsoleScanner s;
  bool saw_init = false, saw_panic = false;
  for (char c : text) {
    ConsoleScanner::Events ev = s.Feed(std::string_view(&c, 1));
    saw_init |= ev.init_started;
    saw_panic |= ev.panic;
  }
  EXPECT_TRUE(saw_init);
  EXPECT_TRUE(saw_panic);
  // And a result marker split in the middle of its number, with CRLF line ends.
  ConsoleScanner r;
  EXPECT_FALSE(r.Feed("FARM-INIT-STARTED\r\nFARM-RES").result);
  EXPECT_FALSE(r.Feed("ULT: 1").result) << "the number may go on";
  EXPECT_TRUE(r.Feed("2\r\n").result);
  EXPECT_EQ(r.exit_code(), 12);
}

TEST(ConsoleTest, KernelLinesInsideInitsLinesAreTakenOut) {
  // Recorded: the kernel's console output lands in the middle of what init writes.
  ConsoleScanner a = Scan(
      "FARM-INIT-STARTED\nFARM-RESULT: 0[    1.985281] farm-noise 2467: the kernel prints\n\n");
  EXPECT_EQ(a.exit_code(), 0);
  EXPECT_THAT(a.Tail(), HasSubstr("farm-noise 2467"));
  ConsoleScanner b =
      Scan("FARM-INIT-STARTED\nFARM-RESU[    1.985281] noise 1\n[    1.985300] noise 2\nLT: 125\n");
  EXPECT_EQ(b.exit_code(), 125);
  ConsoleScanner c = Scan("FARM-INIT-STARTED\nFARM-RESULT: 12[    1.9] noise\n5\n");
  EXPECT_EQ(c.exit_code(), 125) << "not 12";
  ConsoleScanner d = Scan(
      "FARM-INIT-ST[    0.9] noise\nARTED\nabout to cr[    1.9] Kernel panic - "
      "not syncing: sysrq triggered crash\nash\n");
  EXPECT_TRUE(d.init_started());
  EXPECT_TRUE(d.panicked());
  EXPECT_EQ(d.first_crash_line(), "Kernel panic - not syncing: sysrq triggered crash");
}

TEST(ConsoleTest, ResultCutWithoutTimestampIsNotMisread) {
  // A kernel without CONFIG_PRINTK_TIME: the cut cannot be undone, so the number is not taken...
  ConsoleScanner s;
  s.Feed("FARM-INIT-STARTED\nFARM-RESULT: 12random kernel message\n5\n");
  EXPECT_FALSE(s.exit_code().has_value());
  // ... and init's second print decides.
  s.Feed("FARM-RESULT: 125\n");
  EXPECT_EQ(s.exit_code(), 125);
  EXPECT_EQ(Scan("FARM-RESULT: 3 \n").exit_code(), 3) << "trailing blanks are fine";
  EXPECT_TRUE(Scan("FARM-RESULT: 3\n").init_started()) << "a result implies init ran";
}

TEST(ConsoleTest, FinalLineWithoutNewline) {
  ConsoleScanner s;
  s.Feed("FARM-INIT-STARTED\nFARM-RESULT: 0");
  EXPECT_FALSE(s.exit_code().has_value());
  EXPECT_TRUE(s.Finish().result);
  EXPECT_EQ(s.exit_code(), 0);
}

TEST(ConsoleTest, CrashAfterTheResultDoesNotCount) {
  ConsoleScanner s = Scan(
      "FARM-INIT-STARTED\nFARM-RESULT: 0\n[ 2.0] Kernel panic - not syncing: Attempted to kill "
      "init! exitcode=0x00000000\n");
  EXPECT_EQ(s.exit_code(), 0);
  EXPECT_EQ(s.first_crash(), CrashKind::kNone);
}

TEST(ConsoleTest, TimeoutMarkerAndWarnings) {
  ConsoleScanner s = Scan(
      "FARM-INIT-STARTED\n[ 2.0] WARNING: CPU: 0 PID: 1 at net/core/dev.c:1 f+0x1/0x2\n"
      "FARM-TEST-TIMEOUT: the test ran longer than 5s\n");
  EXPECT_TRUE(s.test_timed_out());
  ASSERT_EQ(s.warnings().size(), 1u);
  EXPECT_THAT(s.warnings()[0], HasSubstr("net/core/dev.c"));
  EXPECT_EQ(s.first_crash(), CrashKind::kNone);
}

TEST(ConsoleTest, LongLinesStayBounded) {
  ConsoleScanner s;
  s.Feed(std::string(1 << 20, 'x'));
  s.Feed("\nFARM-RESULT: 3\n");
  EXPECT_EQ(s.exit_code(), 3);
}

// ---------------------------------------------------------------------------------------------
// Outcome classification and verdicts

BootResult Classify(std::string_view console, BootFacts facts = {}) {
  BootResult r;
  ClassifyBoot(Scan(console), facts, r);
  return r;
}

TEST(ClassifyTest, TestVerdicts) {
  EXPECT_EQ(Classify("FARM-INIT-STARTED\nFARM-RESULT: 0\n").outcome, BootOutcome::kPassed);
  EXPECT_EQ(Classify("FARM-INIT-STARTED\nFARM-RESULT: 1\n").outcome, BootOutcome::kFailed);
  EXPECT_EQ(Classify("FARM-INIT-STARTED\nFARM-RESULT: 125\n").outcome, BootOutcome::kSkipped);
  EXPECT_EQ(Classify("FARM-INIT-STARTED\nFARM-RESULT: 139\n").outcome, BootOutcome::kTestError);
}

TEST(ClassifyTest, KtapDecidesWhenTheTestExitsZero) {
  BootResult failed =
      Classify("FARM-INIT-STARTED\nKTAP version 1\n1..2\nok 1 a\nnot ok 2 b\nFARM-RESULT: 0\n");
  EXPECT_EQ(failed.outcome, BootOutcome::kFailed);
  EXPECT_EQ(failed.ktap.failed, 1);
  EXPECT_THAT(failed.detail, HasSubstr("KTAP"));
  BootResult truncated =
      Classify("FARM-INIT-STARTED\nKTAP version 1\n1..3\nok 1 a\nFARM-RESULT: 0\n");
  EXPECT_EQ(truncated.outcome, BootOutcome::kFailed);
  EXPECT_THAT(truncated.detail, HasSubstr("truncated"));
  EXPECT_EQ(Classify("FARM-INIT-STARTED\nKTAP version 1\n1..1\nok 1 a\nFARM-RESULT: 0\n").outcome,
            BootOutcome::kPassed);
}

TEST(ClassifyTest, Crashes) {
  BootResult panic = Classify(kSysrqPanic);
  EXPECT_EQ(panic.outcome, BootOutcome::kPanic);
  EXPECT_THAT(panic.detail, HasSubstr("sysrq triggered crash"));
  EXPECT_THAT(panic.detail, HasSubstr("sysrq_handle_crash"));
  BootResult oops = Classify(kNullDerefOops);
  EXPECT_EQ(oops.outcome, BootOutcome::kOops) << "the test died of the oops: not its verdict";
  EXPECT_EQ(oops.exit_code, 137);
  BootFacts stopped;
  stopped.stop = StopReason::kFatalCrash;
  BootResult bug = Classify(kBugOn, stopped);
  EXPECT_EQ(bug.outcome, BootOutcome::kBug) << "the oops header that follows BUG() is still a BUG";
  EXPECT_EQ(bug.first_crash, CrashKind::kBug);
  EXPECT_EQ(bug.crashes, (std::vector<v1::BootFailure>{v1::OOPS, v1::BUG}));
  // An oops that ends in a panic (oops=panic, or in an interrupt) is a panic.
  BootResult fatal = Classify(
      "FARM-INIT-STARTED\n[ 3.0] Oops: 0002 [#1] SMP\n[ 3.1] Kernel panic"
      " - not syncing: Fatal exception in interrupt\n");
  EXPECT_EQ(fatal.outcome, BootOutcome::kPanic);
  EXPECT_EQ(fatal.first_crash, CrashKind::kOops);
}

TEST(ClassifyTest, OopsButTheTestStillGaveAVerdict) {
  BootResult r = Classify("FARM-INIT-STARTED\n[ 3.0] Oops: 0002 [#1] SMP\nFARM-RESULT: 1\n");
  EXPECT_EQ(r.outcome, BootOutcome::kFailed);
  EXPECT_EQ(r.crashes, std::vector<v1::BootFailure>{v1::OOPS});
}

TEST(ClassifyTest, NoInit) {
  EXPECT_EQ(Classify(kVfsNoInit).outcome, BootOutcome::kNoInit);
  EXPECT_EQ(Classify(kNoWorkingInit).outcome, BootOutcome::kNoInit);
  BootFacts timeout;
  timeout.stop = StopReason::kBootTimeout;
  BootResult r = Classify("[    0.0] Linux version 6.1\n[    1.0] still booting\n", timeout);
  EXPECT_EQ(r.outcome, BootOutcome::kNoInit);
  EXPECT_THAT(r.detail, HasSubstr("still booting"));
}

TEST(ClassifyTest, Hangs) {
  EXPECT_EQ(Classify("FARM-INIT-STARTED\nFARM-TEST-TIMEOUT: longer than 5s\n").outcome,
            BootOutcome::kHang);
  BootFacts host_timeout;
  host_timeout.stop = StopReason::kTestTimeout;
  EXPECT_EQ(Classify("FARM-INIT-STARTED\n", host_timeout).outcome, BootOutcome::kHang);
  BootFacts silent;
  silent.stop = StopReason::kSilence;
  EXPECT_EQ(Classify("FARM-INIT-STARTED\n", silent).outcome, BootOutcome::kHang);
}

TEST(ClassifyTest, QemuErrorsAndGuestStops) {
  BootFacts failed;
  failed.qemu_failed = true;
  failed.qemu_status = "exit 1";
  BootResult r = Classify("qemu-system-x86_64: -drive file=x: Could not open 'x'\n", failed);
  EXPECT_EQ(r.outcome, BootOutcome::kQemuError);
  EXPECT_THAT(r.detail, HasSubstr("Could not open"));
  EXPECT_EQ(Classify("FARM-INIT-STARTED\n[ 2.0] reboot: Power down\n").outcome,
            BootOutcome::kNoResult);
}

TEST(ClassifyTest, ResultFileWins) {
  BootFacts facts;
  facts.result_file_code = 1;
  BootResult r = Classify("FARM-INIT-STARTED\nFARM-RESULT: 0\n", facts);
  EXPECT_EQ(r.outcome, BootOutcome::kFailed);
  EXPECT_EQ(r.exit_code_source, "result file");
}

TEST(VerdictTest, DefaultsAndBadFailures) {
  v1::BootSpec spec;
  EXPECT_EQ(DecideVerdict(Classify("FARM-INIT-STARTED\nFARM-RESULT: 0\n"), spec).verdict, v1::GOOD);
  EXPECT_EQ(DecideVerdict(Classify("FARM-INIT-STARTED\nFARM-RESULT: 1\n"), spec).verdict, v1::BAD);
  EXPECT_EQ(DecideVerdict(Classify("FARM-INIT-STARTED\nFARM-RESULT: 125\n"), spec).verdict,
            v1::SKIP);
  BootVerdict killed = DecideVerdict(Classify("FARM-INIT-STARTED\nFARM-RESULT: 139\n"), spec);
  EXPECT_FALSE(killed.verdict.has_value());
  EXPECT_THAT(killed.infra_error, HasSubstr("139"));

  // A panic before the result: skip by default, bad when the job lists it.
  EXPECT_EQ(DecideVerdict(Classify(kSysrqPanic), spec).verdict, v1::SKIP);
  v1::BootSpec panic_is_bad;
  panic_is_bad.add_bad_failures(v1::PANIC);
  EXPECT_EQ(DecideVerdict(Classify(kSysrqPanic), panic_is_bad).verdict, v1::BAD);

  // An oops the job counts as bad wins over a passing test.
  v1::BootSpec oops_is_bad;
  oops_is_bad.add_bad_failures(v1::OOPS);
  BootResult passed_after_oops =
      Classify("FARM-INIT-STARTED\n[ 3.0] Oops: 0002 [#1] SMP\nFARM-RESULT: 0\n");
  EXPECT_EQ(DecideVerdict(passed_after_oops, spec).verdict, v1::GOOD);
  EXPECT_EQ(DecideVerdict(passed_after_oops, oops_is_bad).verdict, v1::BAD);

  BootResult hang = Classify("FARM-INIT-STARTED\nFARM-TEST-TIMEOUT\n");
  EXPECT_EQ(DecideVerdict(hang, spec).verdict, v1::SKIP);
  v1::BootSpec hang_is_bad;
  hang_is_bad.add_bad_failures(v1::HANG);
  EXPECT_EQ(DecideVerdict(hang, hang_is_bad).verdict, v1::BAD);

  EXPECT_EQ(DecideVerdict(Classify(kVfsNoInit), spec).verdict, v1::SKIP);
  v1::BootSpec no_init_is_bad;
  no_init_is_bad.add_bad_failures(v1::NO_INIT);
  EXPECT_EQ(DecideVerdict(Classify(kVfsNoInit), no_init_is_bad).verdict, v1::BAD);

  BootResult qemu;
  qemu.outcome = BootOutcome::kQemuError;
  qemu.detail = "cannot open the disk";
  BootVerdict infra = DecideVerdict(qemu, panic_is_bad);
  EXPECT_FALSE(infra.verdict.has_value());
  EXPECT_THAT(infra.infra_error, HasSubstr("cannot open the disk"));
}

// ---------------------------------------------------------------------------------------------
// qemu's command line

bool HasArgs(const std::vector<std::string>& argv, const std::string& flag,
             const std::string& value) {
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == flag && argv[i + 1] == value) return true;
  }
  return false;
}

TEST(QemuCommandTest, DirectKernelBootOnTheSerialConsole) {
  BootRequest req;
  req.kernel = "/k/bzImage";
  req.initramfs = "/w/initramfs.cpio";
  req.spec.set_kernel_cmdline("loglevel=7");
  req.spec.set_memory_mb(1024);
  req.spec.set_cpus(2);
  req.spec.add_qemu_args("-device");
  req.spec.add_qemu_args("virtio-rng-pci");
  std::vector<std::string> argv = QemuCommand(req, "tcg");
  const std::string all = absl::StrJoin(argv, " ");
  EXPECT_EQ(argv[0], "qemu-system-x86_64");
  for (const char* flag : {"-nodefaults", "-no-user-config", "-no-reboot"}) {
    EXPECT_THAT(argv, ::testing::Contains(flag));
  }
  EXPECT_TRUE(HasArgs(argv, "-accel", "tcg"));
  EXPECT_TRUE(HasArgs(argv, "-serial", "stdio"));
  EXPECT_TRUE(HasArgs(argv, "-kernel", "/k/bzImage"));
  EXPECT_TRUE(HasArgs(argv, "-initrd", "/w/initramfs.cpio"));
  EXPECT_TRUE(HasArgs(argv, "-m", "1024"));
  EXPECT_TRUE(HasArgs(argv, "-smp", "2"));
  EXPECT_TRUE(
      HasArgs(argv, "-append", "console=ttyS0 panic=-1 cryptomgr.notests loglevel=7 rdinit=/init"))
      << all;
  EXPECT_TRUE(absl::EndsWith(all, "-device virtio-rng-pci")) << "the job's arguments come last";
  EXPECT_THAT(argv, Not(::testing::Contains("-cpu")));
  EXPECT_THAT(QemuCommand(req, "kvm"), ::testing::Contains("host"));
}

TEST(QemuCommandTest, DiskIsCopyOnWriteAndShareIs9p) {
  const std::string dir = MakeTempDir("qemu-cmd");
  RemoveOnSuccess cleanup{dir};
  const std::string disk = dir + "/a,b.qcow2";
  WriteFile(disk, std::string("QFI\xfb", 4) + std::string(100, '\0'));
  BootRequest req;
  req.kernel = "/k";
  req.spec.set_disk_image(disk);
  req.spec.set_shared_dir(dir);
  std::vector<std::string> argv = QemuCommand(req, "tcg");
  EXPECT_TRUE(
      HasArgs(argv, "-drive",
              absl::StrCat("file=", dir, "/a,,b.qcow2,if=virtio,format=qcow2,snapshot=on")));
  EXPECT_TRUE(
      HasArgs(argv, "-virtfs",
              absl::StrCat("local,path=", dir, ",mount_tag=farm,security_model=none,id=farm")));
  // No initramfs: the kernel boots its own root; no rdinit.
  EXPECT_TRUE(HasArgs(argv, "-append", std::string(kFarmCmdline)));
  EXPECT_THAT(argv, Not(::testing::Contains("-initrd")));
}

TEST(QemuCommandTest, OneCpuTcgBootOfTheFarmsInitKeepsLockPrefixes) {
  BootRequest req;
  req.kernel = "/k";
  req.initramfs = "/w/initramfs.cpio";
  auto append = [&](std::string_view accel) {
    std::vector<std::string> argv = QemuCommand(req, accel);
    auto it = std::find(argv.begin(), argv.end(), "-append");
    return it == argv.end() || it + 1 == argv.end() ? std::string() : *(it + 1);
  };
  EXPECT_THAT(append("tcg"), HasSubstr(std::string(kTcgUpCmdline)));
  EXPECT_THAT(append("kvm"), Not(HasSubstr(std::string(kTcgUpCmdline))));
  req.spec.set_cpus(2);  // no UP patching to avoid
  EXPECT_THAT(append("tcg"), Not(HasSubstr(std::string(kTcgUpCmdline))));
}

TEST(QemuCommandTest, FirmwareIsQbootUnlessTheJobNamesItsOwn) {
  BootRequest req;
  req.kernel = "/k";
  req.firmware = "/fw/qboot.rom";
  EXPECT_TRUE(HasArgs(QemuCommand(req, "tcg"), "-bios", "/fw/qboot.rom"));
  // The job's -bios (e.g. SeaBIOS's bios-256k.bin) is the only one.
  req.spec.add_qemu_args("-bios");
  req.spec.add_qemu_args("bios-256k.bin");
  std::vector<std::string> argv = QemuCommand(req, "tcg");
  EXPECT_EQ(std::count(argv.begin(), argv.end(), "-bios"), 1) << absl::StrJoin(argv, " ");
  EXPECT_TRUE(HasArgs(argv, "-bios", "bios-256k.bin"));
  // Not installed: qemu's own firmware.
  req.spec.clear_qemu_args();
  req.firmware.clear();
  EXPECT_THAT(QemuCommand(req, "tcg"), Not(::testing::Contains("-bios")));
}

// ---------------------------------------------------------------------------------------------
// Modules

TEST(ModulesTest, ResolvesDependenciesFirstAndSkipsBuiltins) {
  if (Sh("command -v gcc").exit_code != 0) GTEST_SKIP() << "gcc is not installed";
  const std::string dir = MakeTempDir("modules");
  RemoveOnSuccess cleanup{dir};
  // Objects with a .modinfo section are what the resolver reads of a .ko.
  auto make = [&](const std::string& path, const std::string& depends) {
    Sh("mkdir -p " + Quote(dir + "/" + path.substr(0, path.rfind('/'))));
    WriteFile(dir + "/m.c",
              absl::StrCat(
                  "__attribute__((section(\".modinfo\"), used)) static const char a[] = "
                  "\"license=GPL\";\n"
                  "__attribute__((section(\".modinfo\"), used)) static const char b[] = \"depends=",
                  depends, "\";\n"));
    auto cc = Sh("gcc -c -o " + Quote(dir + "/" + path) + " " + Quote(dir + "/m.c"));
    ASSERT_EQ(cc.exit_code, 0) << cc.output;
  };
  make("kernel/fs/9p/9p.ko", "9pnet,fscache");
  make("kernel/net/9p/9pnet.ko", "");
  make("kernel/net/9p/9pnet_virtio.ko", "virtio,9pnet,virtio_ring");
  make("kernel/drivers/virtio/virtio.ko", "");
  make("kernel/drivers/virtio/virtio_ring.ko", "");
  make("kernel/drivers/virtio/virtio-mmio.ko", "virtio");
  WriteFile(dir + "/modules.builtin", "kernel/fs/fscache/fscache.ko\n");

  absl::StatusOr<std::vector<std::string>> order =
      ResolveModules(dir, {"9p", "9pnet_virtio", "virtio_mmio"});
  ASSERT_TRUE(order.ok()) << order.status();
  std::vector<std::string> names;
  for (const std::string& p : *order) names.push_back(p.substr(p.rfind('/') + 1));
  EXPECT_EQ(names, (std::vector<std::string>{"9pnet.ko", "9p.ko", "virtio.ko", "virtio_ring.ko",
                                             "9pnet_virtio.ko", "virtio-mmio.ko"}));
  EXPECT_TRUE(absl::IsNotFound(ResolveModules(dir, {"no_such_module"}).status()));
  EXPECT_TRUE(ResolveModules(dir, {"fscache"}).ok()) << "built in: nothing to load";
}

// ---------------------------------------------------------------------------------------------
// KVM probe, with a fake qemu (the real one has its own e2e test)

class KvmProbeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) GTEST_SKIP() << "/dev/kvm cannot be opened here: the probe stops before qemu";
    close(fd);
    dir_ = MakeTempDir("fake-qemu");
    cleanup_.dir = dir_;
    WriteFile(dir_ + "/bzImage", "not really a kernel");
  }
  KvmProbe Probe(const std::string& script) {
    const std::string qemu = dir_ + "/qemu";
    WriteFile(qemu, "#!/bin/sh\n" + script);
    chmod(qemu.c_str(), 0755);
    KvmProbe p = RunKvmProbe(dir_ + "/bzImage", qemu);
    std::printf("[ probe ] %s in %.2fs: %s\n", p.usable ? "usable" : "not usable",
                absl::ToDoubleSeconds(p.elapsed), p.reason.c_str());
    return p;
  }
  std::string dir_;
  RemoveOnSuccess cleanup_;
};

TEST_F(KvmProbeTest, GuestThatPrintsNothingIsNoticedInSeconds) {
  // What this machine's KVM does with the default CPU model: the BIOS, then nothing.
  KvmProbe p =
      Probe("echo 'SeaBIOS (version 1.16.2)'\necho 'Booting from ROM..'\nexec sleep 100\n");
  EXPECT_TRUE(p.probed);
  EXPECT_FALSE(p.usable);
  EXPECT_THAT(p.reason, HasSubstr("printed nothing"));
  EXPECT_GE(p.elapsed, absl::Seconds(2.9));
  EXPECT_LT(p.elapsed, absl::Seconds(60)) << "gave up at its deadline, not after qemu's sleep 100";
}

TEST_F(KvmProbeTest, GuestThatBootsIsUsable) {
  KvmProbe p = Probe(
      "echo '[    0.000000] Linux version 6.1.0'\necho '[    0.300000] Run /init as init process'\n"
      "exec sleep 100\n");
  EXPECT_TRUE(p.usable) << p.reason;
  EXPECT_THAT(p.reason, HasSubstr("booted")) << "decided by the kernel's line, not a deadline";
}

TEST_F(KvmProbeTest, QemuThatFailsIsNotUsable) {
  KvmProbe p =
      Probe("echo 'qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69'\nkill -ABRT $$\n");
  EXPECT_FALSE(p.usable);
  EXPECT_THAT(p.reason, HasSubstr("failed to set MSR"));
  EXPECT_THAT(p.reason, Not(HasSubstr("printed nothing"))) << "decided by qemu's exit";
}

TEST_F(KvmProbeTest, GuestStuckMidBootIsNotUsable) {
  KvmProbe p = Probe("echo '[    0.000000] Linux version 6.1.0'\nexec sleep 100\n");
  EXPECT_FALSE(p.usable);
  EXPECT_THAT(p.reason, HasSubstr("did not finish booting"));
}

// ---------------------------------------------------------------------------------------------
// What an agent says about booting (Hello.capabilities)

TEST(BootCapabilitiesTest, SaysWhichAcceleratorAndWhy) {
  KvmProbe works{true, true, "a kernel booted under KVM in 0.40s", absl::Seconds(0.4)};
  auto caps = BootCapabilities(std::string("7.2.22"), &works);
  EXPECT_EQ(caps["accel"], "kvm");
  EXPECT_EQ(caps["qemu"], "7.2.22");
  EXPECT_EQ(caps.count("accel_note"), 0u);

  KvmProbe hangs{false, true, "a KVM guest printed nothing within 3.00s", absl::Seconds(3)};
  caps = BootCapabilities(std::string("7.2.22"), &hangs);
  EXPECT_EQ(caps["accel"], "tcg");
  EXPECT_THAT(caps["accel_note"], HasSubstr("printed nothing"));

  KvmProbe unprobed{false, false, "KVM not probed: no kernel to boot", absl::ZeroDuration()};
  caps = BootCapabilities(std::string("7.2.22"), &unprobed);
  EXPECT_EQ(caps["accel"], "unknown");
  EXPECT_THAT(caps["accel_note"], HasSubstr("no kernel"));

  caps = BootCapabilities(absl::NotFoundError("qemu-system-x86_64 is not installed"), nullptr);
  EXPECT_EQ(caps["accel"], "none (qemu-system-x86_64 missing)");
  EXPECT_EQ(caps.count("qemu"), 0u);
}

TEST(BootCapabilitiesTest, QemuVersionFromItsBanner) {
  const std::string dir = MakeTempDir("qemu-version");
  RemoveOnSuccess cleanup{dir};
  const std::string qemu = dir + "/qemu";
  WriteFile(qemu,
            "#!/bin/sh\necho 'QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)'\n"
            "echo 'Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers'\n");
  chmod(qemu.c_str(), 0755);
  absl::StatusOr<std::string> v = QemuVersion(qemu);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, "7.2.22");
  WriteFile(qemu, "#!/bin/sh\necho 'no such option' >&2\nexit 1\n");
  EXPECT_FALSE(QemuVersion(qemu).ok());
  absl::Status missing = QemuVersion(dir + "/no-such-qemu").status();
  EXPECT_TRUE(absl::IsNotFound(missing)) << missing;
}

}  // namespace
}  // namespace farm::boot
