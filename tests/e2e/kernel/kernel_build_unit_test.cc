// BuildKernel's parts that need no kernel tree: fragments, environment, failure excerpts, ccache
// statistics, configuration checks; and its errors, with a fake `make` standing in for the
// kernel's.
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "agent/build/config_flag.h"
#include "agent/build/kernel_build.h"
#include "common/task_control/task_control.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/lib/test_util.h"

namespace farm {
namespace {

namespace fs = std::filesystem;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

void WriteFile(const std::string& path, const std::string& content) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

std::string Env(const std::vector<std::pair<std::string, std::string>>& env,
                const std::string& name) {
  for (const auto& [k, v] : env) {
    if (k == name) return v;
  }
  return "<unset>";
}

TEST(FragmentTest, ContentOrName) {
  EXPECT_TRUE(IsFragmentContent("CONFIG_NET=y"));
  EXPECT_TRUE(IsFragmentContent("CONFIG_NET=y\nCONFIG_INET=y\n"));
  EXPECT_TRUE(IsFragmentContent("# CONFIG_NET is not set\n"));
  EXPECT_FALSE(IsFragmentContent("kvm_guest"));
  EXPECT_FALSE(IsFragmentContent("kvm_guest.config"));
}

TEST(FragmentTest, NamedFragmentsArchFirstThenKernel) {
  std::string src = testing::MakeTempDir("frag");
  WriteFile(src + "/arch/x86/configs/kvm_guest.config", "CONFIG_KVM_GUEST=y\n");
  WriteFile(src + "/kernel/configs/kvm_guest.config", "CONFIG_OTHER=y\n");
  WriteFile(src + "/kernel/configs/debug.config", "CONFIG_DEBUG_KERNEL=y\n");
  EXPECT_EQ(FindNamedFragment(src, "kvm_guest").value(), "arch/x86/configs/kvm_guest.config");
  EXPECT_EQ(FindNamedFragment(src, "kvm_guest.config").value(),
            "arch/x86/configs/kvm_guest.config");
  EXPECT_EQ(FindNamedFragment(src, "debug").value(), "kernel/configs/debug.config");
  absl::StatusOr<std::string> missing = FindNamedFragment(src, "nosuch");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(absl::IsNotFound(missing.status()));
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("arch/x86/configs/nosuch.config and kernel/configs/nosuch.config"));
  // A name is never a path out of the configs directories.
  EXPECT_FALSE(FindNamedFragment(src, "../configs/debug").ok());
}

TEST(EnvTest, FixedIdentityCcacheAndPaths) {
  v1::KernelBuild spec;
  spec.set_ccache_remote_storage("redis://cache.lab:6379");
  KernelBuildPaths paths{"/w/slots/0/src", "/w/slots/0/build", "/w/ccache", ""};
  auto env = KernelBuildEnv(spec, paths, "/w/ccache/farm-masquerade", "/w/slots/0/build/.farm/s",
                            "/usr/bin:/bin", "-O2");
  EXPECT_EQ(Env(env, "KBUILD_BUILD_TIMESTAMP"), "Sun Jan  1 00:00:00 UTC 2023");
  EXPECT_EQ(Env(env, "KBUILD_BUILD_USER"), "farm");
  EXPECT_EQ(Env(env, "KBUILD_BUILD_HOST"), "farm");
  EXPECT_EQ(Env(env, "KBUILD_BUILD_VERSION"), "1");
  EXPECT_EQ(Env(env, "LOCALVERSION"), "");
  EXPECT_EQ(Env(env, "KCFLAGS"), "-O2 -fdebug-prefix-map=/w/slots/0/build=.");
  EXPECT_EQ(Env(env, "CCACHE_DIR"), "/w/ccache");
  // Default base dir: the slot's directory, so every slot's paths become "../src/...".
  EXPECT_EQ(Env(env, "CCACHE_BASEDIR"), "/w/slots/0");
  EXPECT_EQ(Env(env, "CCACHE_COMPILERCHECK"), "content");
  EXPECT_THAT(Env(env, "CCACHE_SLOPPINESS"), HasSubstr("time_macros"));
  EXPECT_EQ(Env(env, "CCACHE_STATSLOG"), "/w/slots/0/build/.farm/s");
  EXPECT_EQ(Env(env, "CCACHE_REMOTE_STORAGE"), "redis://cache.lab:6379");
  EXPECT_EQ(Env(env, "PATH"), "/w/ccache/farm-masquerade:/usr/bin:/bin");

  paths.ccache_base_dir = "/w";
  EXPECT_EQ(Env(KernelBuildEnv(spec, paths, "m", "s", "", ""), "CCACHE_BASEDIR"), "/w");
  // Never "/".
  KernelBuildPaths apart{"/src", "/build", "/w/ccache", ""};
  EXPECT_EQ(Env(KernelBuildEnv(spec, apart, "m", "s", "", ""), "CCACHE_BASEDIR"), "<unset>");
}

// The lab's shared cache: two agents, each with its own local ccache, compile the same file in
// their own slot directories with the environment BuildKernel gives make, and the remote storage
// is a real redis-server on loopback. The second agent's compile is a hit from redis (its local
// cache is empty), counted as a hit in its per-build stats log as farm status shows it; a file
// neither compiled before is a miss for both.
TEST(RemoteStorageTest, SecondAgentHitsWhatTheFirstStoredInRedis) {
  testing::CommandResult server = testing::Sh("command -v redis-server");
  if (server.exit_code != 0 || testing::Sh("command -v ccache && command -v gcc").exit_code != 0) {
    GTEST_SKIP() << "redis-server, ccache or gcc is not installed "
                    "(apt-get install redis-server ccache gcc)";
  }
  const std::string dir = testing::MakeTempDir("ccache-redis");
  const int port = testing::FreePort();
  testing::Background redis({std::string(absl::StripAsciiWhitespace(server.output)), "--port", std::to_string(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", dir},
                            dir + "/redis.log");
  ASSERT_TRUE(redis.WaitForOutput("Ready to accept connections", absl::Seconds(30)))
      << redis.Output();
  v1::KernelBuild spec;
  spec.set_ccache_remote_storage(absl::StrCat("redis://127.0.0.1:", port));

  // Compiles `file` (written into the agent's slot worktree) as a kernel build step would, in
  // the slot's build directory; returns the counts of that build's stats log.
  auto compile = [&](const std::string& agent, const std::string& file) {
    const std::string slot = absl::StrCat(dir, "/", agent, "/slots/0");
    KernelBuildPaths paths{slot + "/src", slot + "/build", dir + "/" + agent + "/ccache", ""};
    fs::create_directories(paths.source_dir);
    fs::create_directories(paths.build_dir + "/.farm");
    std::ofstream(paths.source_dir + "/" + file)
        << "int " << file.substr(0, file.find('.')) << "(int x) { return x * 3 + 1; }\n";
    const std::string stats = paths.build_dir + "/.farm/stats";
    std::string cmd = "cd " + testing::Quote(paths.build_dir) + " && env";
    for (const auto& [k, v] : KernelBuildEnv(spec, paths, "", stats, "/usr/bin:/bin", "-O2")) {
      absl::StrAppend(&cmd, " ", testing::Quote(absl::StrCat(k, "=", v)));
    }
    absl::StrAppend(&cmd, " ccache gcc -O2 -c ", testing::Quote(paths.source_dir + "/" + file),
                    " -o ", testing::Quote(file + ".o"));
    testing::CommandResult r = testing::Sh(cmd);
    EXPECT_EQ(r.exit_code, 0) << cmd << "\n" << r.output;
    std::ifstream in(stats);
    std::stringstream log;
    log << in.rdbuf();
    fs::remove(stats);
    return ParseCcacheStatsLog(log.str());
  };
  CcacheCounts first = compile("agent-a", "sys.c");
  EXPECT_EQ(first.misses, 1);
  EXPECT_EQ(first.hits, 0);
  CcacheCounts second = compile("agent-b", "sys.c");
  EXPECT_EQ(second.hits, 1) << "agent-b's local cache is empty: the hit came from redis";
  EXPECT_EQ(second.misses, 0);
  CcacheCounts other = compile("agent-b", "fork.c");
  EXPECT_EQ(other.misses, 1);
  testing::CommandResult keys = testing::Sh(absl::StrCat("redis-cli -p ", port, " dbsize"));
  EXPECT_EQ(keys.exit_code, 0) << keys.output;
  EXPECT_NE(absl::StripAsciiWhitespace(keys.output), "0") << "nothing was stored in redis";
  if (!HasFailure()) fs::remove_all(dir);
}

TEST(EnvTest, CommonAncestor) {
  EXPECT_EQ(CommonAncestor("/w/slots/0/src", "/w/slots/0/build"), "/w/slots/0");
  EXPECT_EQ(CommonAncestor("/w/slots/0/src/", "/w/slots/1/build"), "/w/slots");
  EXPECT_EQ(CommonAncestor("/w/a/../b/src", "/w/b/build"), "/w/b");
  EXPECT_EQ(CommonAncestor("/src", "/build"), "/");
}

TEST(EnvTest, WithoutCcacheNoCcacheVariables) {
  v1::KernelBuild spec;
  spec.set_ccache_remote_storage("redis://cache.lab:6379");
  KernelBuildPaths paths{"/w/slots/0/src", "/w/slots/0/build", "", ""};
  auto env = KernelBuildEnv(spec, paths, "", "", "/usr/bin", "");
  EXPECT_EQ(Env(env, "CCACHE_DIR"), "<unset>");
  EXPECT_EQ(Env(env, "CCACHE_REMOTE_STORAGE"), "<unset>");
  EXPECT_EQ(Env(env, "PATH"), "<unset>");
  EXPECT_EQ(Env(env, "KCFLAGS"), "-fdebug-prefix-map=/w/slots/0/build=.");
}

TEST(ExcerptTest, CompilerErrorWithContextAndMakeErrors) {
  std::string out =
      "  CC      kernel/fork.o\n"
      "  CC      kernel/sys.o\n"
      "kernel/sys.c: In function '__do_sys_sethostname':\n"
      "kernel/sys.c:1375:13: error: 'lenx' undeclared (first use in this function)\n"
      " 1375 |         if (lenx < 0)\n"
      "      |             ^~~~\n"
      "  CC      kernel/exit.o\n"
      "  CC      kernel/fork.o\n"
      "  CC      kernel/panic.o\n"
      "  CC      kernel/cpu.o\n"
      "make[2]: *** [scripts/Makefile.build:250: kernel/sys.o] Error 1\n"
      "make[1]: *** [scripts/Makefile.build:500: kernel] Error 2\n"
      "  CC      mm/mmap.o\n"
      "make: *** [Makefile:2012: .] Error 2\n";
  std::string e = ExtractFailureExcerpt(out);
  EXPECT_THAT(e, HasSubstr("kernel/sys.c: In function '__do_sys_sethostname':\n"
                           "kernel/sys.c:1375:13: error: 'lenx' undeclared"));
  EXPECT_THAT(e, HasSubstr("make[2]: *** [scripts/Makefile.build:250: kernel/sys.o] Error 1"));
  EXPECT_THAT(e, HasSubstr(" 1375 |         if (lenx < 0)\n      |             ^~~~\n"));
  EXPECT_THAT(e, HasSubstr("make: *** [Makefile:2012: .] Error 2"));
  EXPECT_THAT(e, Not(HasSubstr("kernel/exit.o")));  // beyond the context
  EXPECT_THAT(e, HasSubstr("...\n"));               // gaps are marked
}

TEST(ExcerptTest, LinkerErrors) {
  std::string out =
      "  LD      vmlinux.o\n"
      "ld: kernel/sys.o: in function `foo':\n"
      "sys.c:(.text+0x1): undefined reference to `bar'\n"
      "make[1]: *** [scripts/Makefile.vmlinux_o:61: vmlinux.o] Error 1\n";
  EXPECT_THAT(ExtractFailureExcerpt(out), HasSubstr("undefined reference to `bar'"));
}

TEST(ExcerptTest, NothingMatchesAndBounded) {
  EXPECT_EQ(ExtractFailureExcerpt("  CC foo.o\n  LD vmlinux\n"), "");
  std::string many;
  for (int i = 0; i < 500; ++i) many += absl::StrCat("f", i, ".c:1:1: error: bad\n");
  std::string e = ExtractFailureExcerpt(many, 2, 60);
  EXPECT_THAT(e, HasSubstr("[440 more lines left out]"));
  EXPECT_LT(e.size(), 2000u);
}

TEST(CcacheStatsTest, ParsesStatsLog) {
  std::string log =
      "# /w/slots/0/src/kernel/fork.c\n"
      "direct_cache_hit\n"
      "# /w/slots/0/src/kernel/sys.c\n"
      "cache_miss\n"
      "# /w/slots/0/src/mm/mmap.c\n"
      "preprocessed_cache_hit\n"
      "# conftest\n"
      "called_for_link\n"
      "# x\n"
      "direct_cache_hit\n";
  CcacheCounts c = ParseCcacheStatsLog(log);
  EXPECT_EQ(c.hits, 3);
  EXPECT_EQ(c.misses, 1);
}

TEST(ConfigFlagTest, TargetAndFragments) {
  std::string dir = testing::MakeTempDir("cfgflag");
  WriteFile(dir + "/farm-tiny.config", "CONFIG_TTY=y\n");
  v1::KernelBuild spec;
  ASSERT_TRUE(ParseKernelConfigFlag("tinyconfig", &spec).ok());
  EXPECT_EQ(spec.config_target(), "tinyconfig");
  EXPECT_EQ(spec.fragments_size(), 0);

  ASSERT_TRUE(
      ParseKernelConfigFlag("tinyconfig+kvm_guest+" + dir + "/farm-tiny.config", &spec).ok());
  EXPECT_EQ(spec.config_target(), "tinyconfig");
  ASSERT_EQ(spec.fragments_size(), 2);
  EXPECT_EQ(spec.fragments(0), "kvm_guest");
  EXPECT_EQ(spec.fragments(1), "CONFIG_TTY=y\n");  // shipped as content
  EXPECT_TRUE(IsFragmentContent(spec.fragments(1)));
  EXPECT_FALSE(IsFragmentContent(spec.fragments(0)));
}

TEST(ConfigFlagTest, WholeConfigFile) {
  std::string dir = testing::MakeTempDir("cfgflag");
  WriteFile(dir + "/my.config", "CONFIG_64BIT=y\n");
  v1::KernelBuild spec;
  spec.set_config_target("stale");
  ASSERT_TRUE(ParseKernelConfigFlag(dir + "/my.config+kvm_guest", &spec).ok());
  EXPECT_EQ(spec.config(), "CONFIG_64BIT=y\n");
  EXPECT_EQ(spec.config_target(), "");
  EXPECT_EQ(spec.fragments_size(), 1);
}

TEST(ConfigFlagTest, Errors) {
  v1::KernelBuild spec;
  EXPECT_TRUE(absl::IsInvalidArgument(ParseKernelConfigFlag("", &spec)));
  EXPECT_TRUE(absl::IsInvalidArgument(ParseKernelConfigFlag("tinyconfig+", &spec)));
  EXPECT_TRUE(absl::IsInvalidArgument(ParseKernelConfigFlag("tiny config", &spec)));
  absl::Status missing = ParseKernelConfigFlag("tinyconfig+./nosuch.config", &spec);
  EXPECT_TRUE(absl::IsNotFound(missing)) << missing;
  EXPECT_THAT(std::string(missing.message()), HasSubstr("./nosuch.config"));
  EXPECT_TRUE(absl::IsNotFound(ParseKernelConfigFlag("/nosuch/.config", &spec)));
}

TEST(ConfigTest, MismatchesOfFragments) {
  std::string config =
      "CONFIG_64BIT=y\n"
      "# CONFIG_TMPFS is not set\n"
      "CONFIG_LOG_BUF_SHIFT=17\n"
      "CONFIG_CMDLINE=\"console=ttyS0\"\n";
  std::vector<std::string> fragments = {
      "CONFIG_64BIT=y\nCONFIG_TMPFS=y\n# CONFIG_NET is not set\n",
      "CONFIG_LOG_BUF_SHIFT=14\nCONFIG_NOSUCH=y\nCONFIG_CMDLINE=\"console=ttyS0\"\n"};
  EXPECT_THAT(ConfigMismatches(fragments, config),
              ElementsAre("CONFIG_LOG_BUF_SHIFT: wanted 14, got 17",
                          "CONFIG_NOSUCH: wanted y, got unset", "CONFIG_TMPFS: wanted y, got n"));
  EXPECT_THAT(ConfigMismatches({"CONFIG_64BIT=y\n"}, config), IsEmpty());
}

TEST(ClassifyTest, InfrastructureNotTheCommit) {
  EXPECT_TRUE(ClassifyInfrastructureFailure("kernel/sys.c:1:1: error: x\n").ok());
  absl::Status disk = ClassifyInfrastructureFailure(
      "kernel/sys.o: fatal error: error writing to /tmp/ccX.s: No space left on device\n");
  EXPECT_TRUE(absl::IsResourceExhausted(disk)) << disk;
  absl::Status bison = ClassifyInfrastructureFailure("/bin/sh: 1: bison: not found\n");
  EXPECT_TRUE(absl::IsFailedPrecondition(bison)) << bison;
  EXPECT_THAT(std::string(bison.message()), HasSubstr("apt-get install bison"));
  absl::Status elf = ClassifyInfrastructureFailure(
      "tools/objtool/include/objtool/elf.h:10:10: fatal error: gelf.h: No such file or "
      "directory\n");
  EXPECT_THAT(std::string(elf.message()), HasSubstr("libelf-dev"));
  EXPECT_TRUE(absl::IsResourceExhausted(
      ClassifyInfrastructureFailure("gcc: fatal error: Killed signal terminated program cc1\n")));
}

// BuildKernel with a fake `make` (first in PATH) that plays the kernel's: it records its
// arguments and environment, writes a .config for a config target, and fails or succeeds as told.
class FakeMakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = testing::MakeTempDir("kbuild");
    src_ = root_ + "/slots/0/src";
    build_ = root_ + "/slots/0/build";
    WriteFile(src_ + "/Makefile", "# fake\n");
    WriteFile(src_ + "/Kconfig", "# fake\n");
    WriteFile(src_ + "/arch/x86/configs/kvm_guest.config", "CONFIG_KVM_GUEST=y\n");
    // merge_config.sh -m -O <out> <base> <fragments...>: appends the fragments.
    WriteFile(src_ + "/scripts/kconfig/merge_config.sh",
              "shift; shift; out=$1; shift; base=$1; shift\n"
              "echo \"merge $*\" >> " +
                  root_ +
                  "/calls\n"
                  "cat \"$@\" >> \"$out/.config\"\n");
    bin_ = root_ + "/bin";
    fs::create_directories(bin_);
    testing::WriteScript(bin_ + "/make", R"(#!/bin/sh
log=")" + root_ + R"(/calls"
echo "make $*" >> "$log"
for a in "$@"; do case $a in O=*) out=${a#O=};; esac; done
case " $* " in
  *" tinyconfig "*) echo "CONFIG_TINY=y" > "$out/.config";;
  *" olddefconfig "*) [ -f "$FAKE_FAIL_CONFIG" ] && { echo "Kconfig:3: syntax error"; exit 1; }
                      mkdir -p "$out/include/config"
                      printf 'deps_config := \\\n\tKconfig\n' > "$out/include/config/auto.conf.cmd";;
  *" bzImage "*)
    env | grep -E '^(KBUILD_|CCACHE_|LOCALVERSION|KCFLAGS)' | sort > ")" +
                                             root_ + R"(/env"
    if [ -n "$FAKE_OUTPUT" ]; then cat "$FAKE_OUTPUT"; exit 2; fi
    touch "$out/include/config/auto.conf.cmd"
    mkdir -p "$out/arch/x86/boot"; printf 'kernel' > "$out/arch/x86/boot/bzImage";;
esac
exit 0
)");
    old_path_ = getenv("PATH");
    setenv("PATH", (bin_ + ":" + old_path_).c_str(), 1);
  }
  void TearDown() override {
    setenv("PATH", old_path_.c_str(), 1);
    unsetenv("FAKE_OUTPUT");
    unsetenv("FAKE_FAIL_CONFIG");
  }
  KernelBuildPaths Paths() { return {src_, build_, root_ + "/ccache", ""}; }
  std::vector<std::string> Calls() {
    std::vector<std::string> out;
    std::istringstream in(ReadFile(root_ + "/calls"));
    for (std::string line; std::getline(in, line);) out.push_back(line);
    fs::remove(root_ + "/calls");
    return out;
  }

  std::string root_, src_, build_, bin_, old_path_;
};

TEST_F(FakeMakeTest, ConfigTargetFragmentsOlddefconfigBuild) {
  v1::KernelBuild spec;
  spec.set_config_target("tinyconfig");
  spec.add_fragments("kvm_guest");
  spec.add_fragments("CONFIG_TTY=y");
  spec.set_jobs(3);
  std::string log;
  TaskControl control;
  absl::StatusOr<KernelBuildResult> r = BuildKernel(
      spec, Paths(), [&](std::string_view s) { log.append(s); }, &control);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->built) << log;
  EXPECT_EQ(r->image, build_ + "/arch/x86/boot/bzImage");
  EXPECT_EQ(testing::Sh("printf kernel | sha256sum | cut -d' ' -f1").output,
            r->image_sha256 + "\n");
  EXPECT_EQ(r->ccache_hits, 0);  // no compiler ran
  EXPECT_EQ(r->ccache_misses, 0);
  std::vector<std::string> calls = Calls();
  ASSERT_EQ(calls.size(), 4u) << log;
  EXPECT_EQ(calls[0], "make O=" + build_ + " tinyconfig");
  EXPECT_THAT(calls[1], HasSubstr("merge " + src_ + "/arch/x86/configs/kvm_guest.config " + build_ +
                                  "/.farm/fragment-1.config"));
  EXPECT_EQ(calls[2], "make O=" + build_ + " olddefconfig");
  EXPECT_EQ(calls[3], "make O=" + build_ + " -j3 bzImage");
  EXPECT_THAT(r->config_mismatches, IsEmpty());
  std::string env = ReadFile(root_ + "/env");
  EXPECT_THAT(env, HasSubstr("KBUILD_BUILD_TIMESTAMP=Sun Jan  1 00:00:00 UTC 2023"));
  EXPECT_THAT(env, HasSubstr("CCACHE_BASEDIR=" + root_ + "/slots/0\n"));
  EXPECT_THAT(env, HasSubstr("KCFLAGS=-fdebug-prefix-map=" + build_ + "=."));
  EXPECT_TRUE(fs::is_symlink(root_ + "/ccache/farm-masquerade/gcc"));

  // Second build, nothing changed (spec, Kconfig files, .config): olddefconfig would write the
  // same .config, so only the build runs.
  r = BuildKernel(spec, Paths(), nullptr, &control);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(Calls(), ElementsAre("make O=" + build_ + " -j3 bzImage"));

  // .config changed behind our back: the saved base is put back (no tinyconfig, no merge) and
  // olddefconfig runs.
  WriteFile(build_ + "/.config", "CONFIG_EDITED=y\n");
  r = BuildKernel(spec, Paths(), nullptr, &control);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(Calls(), ElementsAre("make O=" + build_ + " olddefconfig",
                                   "make O=" + build_ + " -j3 bzImage"));
  EXPECT_THAT(ReadFile(build_ + "/.config"), HasSubstr("CONFIG_TINY=y"));

  // A Kconfig file changed: the base is made again.
  WriteFile(src_ + "/Kconfig", "# changed\n");
  r = BuildKernel(spec, Paths(), nullptr, &control);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(Calls(), Contains("make O=" + build_ + " tinyconfig"));

  // So is it when the spec changes.
  spec.add_fragments("CONFIG_PRINTK=y");
  r = BuildKernel(spec, Paths(), nullptr, &control);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(Calls(), Contains("make O=" + build_ + " tinyconfig"));
}

TEST_F(FakeMakeTest, FullConfigIsWrittenAsDotConfig) {
  v1::KernelBuild spec;
  spec.set_config("CONFIG_A=y\n");
  absl::StatusOr<KernelBuildResult> r = BuildKernel(spec, Paths(), nullptr, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->built);
  EXPECT_EQ(ReadFile(build_ + "/.config"), "CONFIG_A=y\n");
  std::vector<std::string> calls = Calls();
  EXPECT_THAT(calls, Not(Contains(HasSubstr("defconfig O="))));
  EXPECT_EQ(calls.front(), "make O=" + build_ + " olddefconfig");
}

TEST_F(FakeMakeTest, CompileErrorIsNotBuiltWithExcerpt) {
  WriteFile(root_ + "/out",
            "  CC      kernel/sys.o\nkernel/sys.c:3:1: error: expected ';'\n"
            "make[2]: *** [scripts/Makefile.build:250: kernel/sys.o] Error 1\n");
  setenv("FAKE_OUTPUT", (root_ + "/out").c_str(), 1);
  v1::KernelBuild spec;
  spec.set_config_target("tinyconfig");
  absl::StatusOr<KernelBuildResult> r = BuildKernel(spec, Paths(), nullptr, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->built);
  EXPECT_THAT(r->failure_excerpt, HasSubstr("kernel build failed (exit 2)"));
  EXPECT_THAT(r->failure_excerpt, HasSubstr("kernel/sys.c:3:1: error: expected ';'"));
  EXPECT_TRUE(r->image.empty());
}

TEST_F(FakeMakeTest, ConfigurationErrorIsNotBuilt) {
  WriteFile(root_ + "/fail", "");
  setenv("FAKE_FAIL_CONFIG", (root_ + "/fail").c_str(), 1);
  v1::KernelBuild spec;
  spec.set_config_target("tinyconfig");
  absl::StatusOr<KernelBuildResult> r = BuildKernel(spec, Paths(), nullptr, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->built);
  EXPECT_THAT(r->failure_excerpt, HasSubstr("olddefconfig"));
  EXPECT_THAT(r->failure_excerpt, HasSubstr("Kconfig:3: syntax error"));
}

TEST_F(FakeMakeTest, MissingNamedFragmentIsNotBuilt) {
  v1::KernelBuild spec;
  spec.set_config_target("tinyconfig");
  spec.add_fragments("nosuch");
  absl::StatusOr<KernelBuildResult> r = BuildKernel(spec, Paths(), nullptr, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->built);
  EXPECT_THAT(r->failure_excerpt, HasSubstr("config fragment \"nosuch\" is not in this tree"));
}

TEST_F(FakeMakeTest, DiskFullIsAnError) {
  WriteFile(root_ + "/out", "kernel/sys.c: fatal error: error writing: No space left on device\n");
  setenv("FAKE_OUTPUT", (root_ + "/out").c_str(), 1);
  v1::KernelBuild spec;
  spec.set_config_target("tinyconfig");
  absl::StatusOr<KernelBuildResult> r = BuildKernel(spec, Paths(), nullptr, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::IsResourceExhausted(r.status())) << r.status();
}

TEST_F(FakeMakeTest, CancelledBeforeStartIsAnError) {
  TaskControl control;
  control.Cancel();
  v1::KernelBuild spec;
  spec.set_config_target("tinyconfig");
  absl::StatusOr<KernelBuildResult> r = BuildKernel(spec, Paths(), nullptr, &control);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::IsCancelled(r.status())) << r.status();
}

TEST_F(FakeMakeTest, TimeoutIsAnError) {
  testing::WriteScript(bin_ + "/make", "#!/bin/sh\nexec sleep 30\n");
  v1::KernelBuild spec;
  spec.set_config_target("tinyconfig");
  absl::StatusOr<KernelBuildResult> r =
      BuildKernel(spec, Paths(), nullptr, nullptr, absl::Milliseconds(300));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::IsDeadlineExceeded(r.status())) << r.status();
}

TEST(BuildKernelTest, ArgumentErrors) {
  v1::KernelBuild spec;
  EXPECT_TRUE(absl::IsInvalidArgument(BuildKernel(spec, {}, nullptr, nullptr).status()));
  std::string dir = testing::MakeTempDir("notkernel");
  EXPECT_TRUE(absl::IsNotFound(
      BuildKernel(spec, {dir, dir + "/build", "", ""}, nullptr, nullptr).status()));
  spec.set_config("CONFIG_A=y\n");
  spec.set_config_target("tinyconfig");
  EXPECT_TRUE(absl::IsInvalidArgument(
      BuildKernel(spec, {dir, dir + "/build", "", ""}, nullptr, nullptr).status()));
}

}  // namespace
}  // namespace farm
