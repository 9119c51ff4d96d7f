// Job files: a full example, then every kind of error a user can make, each naming the field.
#include "common/jobfile/jobfile.h"

#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "common/spec/spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/lib/test_util.h"

namespace farm {
namespace {

namespace v1 = farm::v1;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

class JobFileTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::MakeTempDir("jobfile"); }

  void Write(const std::string& name, const std::string& content) {
    std::ofstream f(dir_ + "/" + name, std::ios::binary | std::ios::trunc);
    f << content;
  }
  absl::StatusOr<v1::BisectSpec> Parse(const std::string& yaml) { return ParseJobFile(yaml, dir_); }
  // The error message of a job file that must fail.
  // ParseJobFile in a child process that runs as nobody when this one is root (root reads any
  // file): "parsed", or the error's message.
  std::string ParseAsNobody(const std::string& yaml) {
    int fds[2];
    if (pipe(fds) != 0) return "pipe failed";
    pid_t pid = fork();
    if (pid == 0) {
      close(fds[0]);
      std::string out;
      if (geteuid() == 0 &&
          (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0)) {
        out = "cannot become nobody";
      } else {
        absl::StatusOr<v1::BisectSpec> spec = ParseJobFile(yaml, dir_);
        out = spec.ok() ? "parsed" : std::string(spec.status().message());
      }
      (void)!write(fds[1], out.data(), out.size());
      _exit(0);
    }
    close(fds[1]);
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof(buf))) > 0) out.append(buf, n);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return out;
  }

  std::string Error(const std::string& yaml) {
    absl::StatusOr<v1::BisectSpec> spec = Parse(yaml);
    EXPECT_FALSE(spec.ok()) << "parsed:\n" << yaml;
    if (spec.ok()) return "";
    EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument) << spec.status();
    return std::string(spec.status().message());
  }
  // A minimal valid job with `extra` appended (top-level keys).
  std::string Minimal(const std::string& extra = "") {
    return "repo: /srv/repo\ngood: v1\nbad: v2\ntest: ./t.sh\n" + extra;
  }

  std::string dir_;
};

TEST_F(JobFileTest, FullExampleFillsEverySpecField) {
  Write("t.sh", "#!/bin/sh\nexit 0\n");
  const std::string yaml = R"(# a user-space bisect
repo: repo
good: [v1.0, abc1234]
bad: HEAD
skip: [v1.1]
first_parent: yes
terms: {old: fast, new: slow}
max_parallel: 4
description: "listen backlog regression"
build: make -j8
timeout: 10m
env:
  CC: gcc-12
  EMPTY: ""
  N: 3
test:
  command: [t.sh, --quick]
  script: t.sh
)";
  absl::StatusOr<v1::BisectSpec> spec = Parse(yaml);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->repo(), dir_ + "/repo");
  EXPECT_THAT(spec->good(), ElementsAre("v1.0", "abc1234"));
  EXPECT_EQ(spec->bad(), "HEAD");
  EXPECT_THAT(spec->skip(), ElementsAre("v1.1"));
  EXPECT_TRUE(spec->first_parent());
  EXPECT_EQ(spec->term_old(), "fast");
  EXPECT_EQ(spec->term_new(), "slow");
  EXPECT_EQ(spec->max_parallel(), 4u);
  EXPECT_EQ(spec->description(), "listen backlog regression");
  const v1::Recipe& r = spec->recipe();
  EXPECT_EQ(r.build_command(), "make -j8");
  EXPECT_EQ(r.timeout_seconds(), 600u);
  EXPECT_EQ(r.env().at("CC"), "gcc-12");
  EXPECT_EQ(r.env().at("EMPTY"), "");
  EXPECT_EQ(r.env().at("N"), "3");
  EXPECT_THAT(r.test_argv(), ElementsAre("t.sh", "--quick"));
  EXPECT_EQ(r.test_script(), "#!/bin/sh\nexit 0\n");
  EXPECT_FALSE(r.has_kernel());
  EXPECT_FALSE(r.has_boot());
}

TEST_F(JobFileTest, FullKernelExample) {
  Write("listen-test.c", "int main(void) { return 0; }\n");
  Write("debug.config", "CONFIG_DEBUG_INFO=y\n# CONFIG_X is not set\n");
  const std::string yaml = R"(
repo: https://git.example.org/linux.git
good: v6.1
bad: v6.2
kernel:
  config: tinyconfig+kvm_guest
  fragments: [./debug.config, virtio.config, "CONFIG_NET=y\nCONFIG_INET=y\n"]
  modules: false
  ccache_remote_storage: redis://cache:6379
  jobs: 8
boot:
  payload: listen-test.c
  cmdline: quiet loglevel=3
  qemu_args: [-device, virtio-rng-pci]
  memory_mb: 1024
  cpus: 2
  disk_image: /srv/rootfs.qcow2
  shared_dir: /srv/share
  result_file: test_result/stdout
  boot_timeout: 90s
  test_timeout: 5m
  bad_failures: [panic, oops, bug, panic]
  accel: TCG
  pvh: false
)";
  absl::StatusOr<v1::BisectSpec> spec = Parse(yaml);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->repo(), "https://git.example.org/linux.git");
  const v1::KernelBuild& k = spec->recipe().kernel();
  EXPECT_EQ(k.config_target(), "tinyconfig");
  EXPECT_TRUE(k.config().empty());
  EXPECT_THAT(k.fragments(),
              ElementsAre("kvm_guest", "CONFIG_DEBUG_INFO=y\n# CONFIG_X is not set\n", "virtio",
                          "CONFIG_NET=y\nCONFIG_INET=y\n"));
  EXPECT_FALSE(k.modules());
  EXPECT_EQ(k.ccache_remote_storage(), "redis://cache:6379");
  EXPECT_EQ(k.jobs(), 8u);
  const v1::BootSpec& b = spec->recipe().boot();
  EXPECT_EQ(b.payload(), "int main(void) { return 0; }\n");
  EXPECT_EQ(b.payload_kind(), v1::BootSpec::C_SOURCE);  // from the extension
  EXPECT_EQ(b.kernel_cmdline(), "quiet loglevel=3");
  EXPECT_THAT(b.qemu_args(), ElementsAre("-device", "virtio-rng-pci"));
  EXPECT_EQ(b.memory_mb(), 1024u);
  EXPECT_EQ(b.cpus(), 2u);
  EXPECT_EQ(b.disk_image(), "/srv/rootfs.qcow2");
  EXPECT_EQ(b.shared_dir(), "/srv/share");
  EXPECT_EQ(b.result_file(), "test_result/stdout");
  EXPECT_EQ(b.boot_timeout_seconds(), 90u);
  EXPECT_EQ(b.test_timeout_seconds(), 300u);
  EXPECT_THAT(b.bad_failures(), ElementsAre(v1::PANIC, v1::OOPS, v1::BUG));
  EXPECT_EQ(b.accel(), "tcg");
  EXPECT_TRUE(b.no_pvh());
  EXPECT_TRUE(spec->recipe().test_argv().empty());
  // What the parser produces survives the wire (string fields are UTF-8).
  v1::BisectSpec back;
  ASSERT_TRUE(back.ParseFromString(spec->SerializeAsString()));
}

TEST_F(JobFileTest, ConfigFileAndPrebuiltKernel) {
  Write("my.config", "CONFIG_64BIT=y\n");
  Write("t.sh", "#!/bin/sh\necho ok\n");
  absl::StatusOr<v1::BisectSpec> spec = Parse(R"(
repo: /r
good: a
bad: b
kernel: {config: ./my.config}
boot: {payload: t.sh, kernel_image: /boot/vmlinuz}
)");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->recipe().kernel().config(), "CONFIG_64BIT=y\n");
  EXPECT_EQ(spec->recipe().boot().payload_kind(), v1::BootSpec::SHELL);

  spec = Parse("repo: /r\ngood: a\nbad: b\nboot: {payload: t.sh, kernel_image: /boot/vmlinuz}\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->recipe().boot().kernel_image(), "/boot/vmlinuz");
}

TEST_F(JobFileTest, TestShorthands) {
  absl::StatusOr<v1::BisectSpec> spec = Parse(Minimal());
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_THAT(spec->recipe().test_argv(), ElementsAre("/bin/sh", "-c", "./t.sh"));
  spec = Parse("repo: /r\ngood: a\nbad: b\ntest: [make, check]\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_THAT(spec->recipe().test_argv(), ElementsAre("make", "check"));
  spec = Parse("repo: /r\ngood: a\nbad: b\ntest: {command: 'grep -q x f && exit 1'}\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_THAT(spec->recipe().test_argv(), ElementsAre("/bin/sh", "-c", "grep -q x f && exit 1"));
  Write("check.sh", "#!/bin/sh\n");
  spec = Parse("repo: /r\ngood: a\nbad: b\ntest: {script: check.sh}\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_THAT(spec->recipe().test_argv(), ElementsAre("check.sh"));
  EXPECT_EQ(spec->recipe().test_script(), "#!/bin/sh\n");
}

TEST_F(JobFileTest, RepoPaths) {
  absl::StatusOr<v1::BisectSpec> spec = Parse("repo: ../x/./r/\ngood: a\nbad: b\ntest: t\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
  std::string parent = dir_.substr(0, dir_.rfind('/'));
  EXPECT_EQ(spec->repo(), parent + "/x/r");
  spec = Parse("repo: git@host:linux.git\ngood: a\nbad: b\ntest: t\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->repo(), "git@host:linux.git");
  setenv("HOME", "/home/someone", 1);
  spec = Parse("repo: ~/linux\ngood: a\nbad: b\ntest: t\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->repo(), "/home/someone/linux");
}

TEST_F(JobFileTest, YamlSyntaxErrorGivesLineAndColumn) {
  std::string msg = Error("repo: /r\ngood: [a, b\nbad: c\n");
  EXPECT_THAT(msg, HasSubstr("not valid YAML: line "));
  EXPECT_THAT(msg, HasSubstr("column"));
  msg = Error("repo: /r\n  good: a\n bad: x: y\n");
  EXPECT_THAT(msg, HasSubstr("not valid YAML: line 2, column"));
}

TEST_F(JobFileTest, UnknownKeysSuggestTheNearestOne) {
  EXPECT_THAT(Error("repo: /r\ngood: a\nbad: b\ntset: ./t.sh\n"),
              HasSubstr("unknown key 'tset' in job file; did you mean 'test'? (line 4, column 1)"));
  EXPECT_THAT(Error(Minimal("first-parent: true\n")),
              HasSubstr("unknown key 'first-parent' in job file; did you mean 'first_parent'?"));
  Write("p.sh", "#!/bin/sh\n");
  EXPECT_THAT(Error("repo: /r\ngood: a\nbad: b\nboot: {payload: p.sh, memroy_mb: 64, "
                    "kernel_image: /k}\n"),
              HasSubstr("unknown key 'memroy_mb' in boot; did you mean 'memory_mb'?"));
  // The right key at the wrong level.
  EXPECT_THAT(Error(Minimal("memory_mb: 512\n")),
              HasSubstr("unknown key 'memory_mb' in job file; did you mean 'boot.memory_mb'?"));
  // Nothing close: the allowed keys are listed.
  EXPECT_THAT(Error(Minimal("zzzzzz: 1\n")),
              HasSubstr("unknown key 'zzzzzz' in job file (allowed: repo, good, bad, skip"));
  EXPECT_THAT(Error(Minimal("[a]: 1\n")), HasSubstr("keys must be words, got a list"));
}

TEST_F(JobFileTest, WrongTypes) {
  EXPECT_THAT(Error("repo: /r\ngood: {x: 1}\nbad: b\ntest: t\n"),
              HasSubstr("good: expected a revision or a list of revisions, got a mapping"));
  EXPECT_THAT(Error("repo: /r\ngood: a\nbad: [b, c]\ntest: t\n"),
              HasSubstr("bad: expected one revision, got a list"));
  EXPECT_THAT(Error("repo: [/r]\ngood: a\nbad: b\ntest: t\n"),
              HasSubstr("repo: expected a repository path or URL, got a list (line 1, column 7)"));
  EXPECT_THAT(Error(Minimal("first_parent: maybe\n")),
              HasSubstr("first_parent: expected true or false, got \"maybe\""));
  EXPECT_THAT(Error(Minimal("terms: fast/slow\n")),
              HasSubstr("terms: expected {old: WORD, new: WORD}, got \"fast/slow\""));
  EXPECT_THAT(Error(Minimal("env: [A=1]\n")),
              HasSubstr("env: expected a mapping of NAME: value, got a list"));
  EXPECT_THAT(Error("repo: /r\ngood: a\nbad: b\ntest: {command: {a: b}}\n"),
              HasSubstr("test.command: expected a command: a list [program, args...] or a string "
                        "run by /bin/sh -c, got a mapping"));
  EXPECT_THAT(Error("repo: /r\ngood: a\nbad: b\nkernel: tinyconfig\nboot: {kernel_image: /k, "
                    "disk_image: /d, qemu_args: -enable-kvm}\n"),
              ::testing::AllOf(HasSubstr("kernel: expected a mapping"),
                               HasSubstr("boot.qemu_args: expected a list of arguments, e.g. "
                                         "[-device, virtio-rng-pci], got \"-enable-kvm\"")));
  EXPECT_THAT(Error("repo: /r\ngood: a\nbad: b\ntest: [make, [x]]\n"),
              HasSubstr("test[1]: expected an argument (a string), got a list"));
  EXPECT_THAT(Error("repo: /r\ngood: a\nbad: b\ntest: 3\nboot: 4\n"),
              HasSubstr("boot: expected a mapping {payload: FILE"));
}

TEST_F(JobFileTest, OutOfRangeNumbers) {
  const std::string base =
      "repo: /r\ngood: a\nbad: b\nboot:\n  disk_image: /d\n  kernel_image: /k\n";
  EXPECT_THAT(Error(base + "  memory_mb: lots\n"),
              HasSubstr("boot.memory_mb: expected a whole number of megabytes (64..65536), got "
                        "\"lots\" (line 7, column 14)"));
  EXPECT_THAT(Error(base + "  memory_mb: 32\n"),
              HasSubstr("boot.memory_mb: expected a whole number of megabytes (64..65536), got "
                        "\"32\""));
  EXPECT_THAT(Error(base + "  memory_mb: -512\n"), HasSubstr("boot.memory_mb: expected"));
  EXPECT_THAT(Error(base + "  memory_mb: 99999999999999999999999\n"),
              HasSubstr("boot.memory_mb: expected"));
  EXPECT_THAT(Error(base + "  cpus: 0\n"),
              HasSubstr("boot.cpus: expected a whole number of virtual CPUs (1..256), got \"0\""));
  EXPECT_THAT(Error(base + "  boot_timeout: 2d\n"),
              HasSubstr("boot.boot_timeout: expected a duration: whole seconds (600) or 90s, 10m, "
                        "2h (1s..1d), got \"2d\""));
  EXPECT_THAT(Error(Minimal("timeout: 10x\n")), HasSubstr("timeout: expected a duration"));
  EXPECT_THAT(Error(Minimal("timeout: 0\n")), HasSubstr("timeout: expected a duration"));
  EXPECT_THAT(Error(Minimal("max_parallel: 1.5\n")),
              HasSubstr("max_parallel: expected a whole number of tasks, 0 for no limit "
                        "(0..65536), got \"1.5\""));
  EXPECT_THAT(
      Error("repo: /r\ngood: a\nbad: b\ntest: t\nkernel: {config: defconfig, jobs: 5000}\n"),
      HasSubstr("kernel.jobs: expected a number of parallel make jobs, 0 for one per CPU "
                "(0..1024), got \"5000\""));
}

TEST_F(JobFileTest, VerifyTakesABooleanOrANumberOfRetests) {
  absl::StatusOr<v1::BisectSpec> on = Parse(Minimal("verify: true\n"));
  ASSERT_TRUE(on.ok()) << on.status();
  EXPECT_EQ(on->verify(), 3u);
  absl::StatusOr<v1::BisectSpec> five = Parse(Minimal("verify: 5\n"));
  ASSERT_TRUE(five.ok()) << five.status();
  EXPECT_EQ(five->verify(), 5u);
  absl::StatusOr<v1::BisectSpec> off = Parse(Minimal("verify: no\n"));
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_EQ(off->verify(), 0u);
  EXPECT_THAT(Error(Minimal("verify: 21\n")),
              HasSubstr("verify: expected true, false, or how many times to retest the culprit, "
                        "its parent and its revert (0..20), got \"21\""));
}

TEST_F(JobFileTest, EnumsSuggestTheNearestValue) {
  const std::string base =
      "repo: /r\ngood: a\nbad: b\nboot:\n  disk_image: /d\n  kernel_image: /k\n";
  EXPECT_THAT(Error(base + "  accel: kmv\n"),
              HasSubstr("boot.accel: expected one of auto, kvm, tcg, got \"kmv\"; did you mean "
                        "'kvm'?"));
  EXPECT_THAT(Error(base + "  bad_failures: [panic, opps]\n"),
              HasSubstr("boot.bad_failures[1]: expected one of panic, oops, bug, hang, no_init, "
                        "got \"opps\"; did you mean 'oops'?"));
  EXPECT_THAT(Error(base + "  bad_failures: panic\n"),
              HasSubstr("boot.bad_failures: expected a list of panic, oops"));
}

TEST_F(JobFileTest, MissingRequiredFields) {
  std::string msg = Error("description: nothing else\n");
  EXPECT_THAT(msg, HasSubstr("repo: missing"));
  EXPECT_THAT(msg, HasSubstr("good: missing"));
  EXPECT_THAT(msg, HasSubstr("bad: missing: give the known-bad revision"));
  EXPECT_THAT(msg, HasSubstr("test: missing: give test.command or test.script"));
  EXPECT_THAT(Error(""), HasSubstr("the job file is empty"));
  EXPECT_THAT(Error("# only a comment\n"), HasSubstr("the job file is empty"));
  EXPECT_THAT(Error("just words"),
              HasSubstr("the job file must be a mapping of keys (repo: ..., good: ..., bad: ..., "
                        "test: ...), got \"just words\""));
  EXPECT_THAT(Error("- a\n- b\n"), HasSubstr("must be a mapping of keys"));
  EXPECT_THAT(Error("repo:\ngood: a\nbad: b\ntest: t\n"),
              HasSubstr("repo: is empty; expected a repository path or URL"));
  EXPECT_THAT(Error("repo: /r\ngood: []\nbad: b\ntest: t\n"),
              HasSubstr("good: is an empty list; give at least one known-good revision"));
  EXPECT_THAT(Error("repo: /r\ngood: a\nbad: b\ntest: {}\n"),
              HasSubstr("test: is empty; give test.command or test.script"));
  EXPECT_THAT(Error("repo: /r\ngood: a\nbad: b\ntest: []\n"), HasSubstr("test: is an empty list"));
  EXPECT_THAT(Error("repo: /r\ngood: a\nbad: b\ntest: '  '\n"), HasSubstr("test: is blank"));
  EXPECT_THAT(Error("repo: /r\ngood: a\nbad: b\ntest: t\nkernel: {jobs: 2}\n"),
              HasSubstr("kernel.config: missing: give a make target (tinyconfig"));
  EXPECT_THAT(Error("repo: /r\ngood: a\nbad: b\nkernel: {config: tinyconfig}\nboot: {cpus: 2}\n"),
              HasSubstr("boot.payload: missing: give the test to run as init in the guest"));
  Write("p.sh", "#!/bin/sh\n");
  EXPECT_THAT(Error("repo: /r\ngood: a\nbad: b\nboot: {payload: p.sh}\n"),
              HasSubstr("boot.kernel_image: missing: without a kernel section"));
  EXPECT_THAT(Error("repo: /r\ngood: a\nbad: b\nterms: {old: fast}\ntest: t\n"),
              HasSubstr("terms.new: missing: give both terms.old and terms.new"));
}

TEST_F(JobFileTest, FilesThatCannotBeRead) {
  EXPECT_THAT(Error("repo: /r\ngood: a\nbad: b\ntest: {script: nope.sh}\n"),
              HasSubstr("test.script: cannot read the test script \"nope.sh\" (" + dir_ +
                        "/nope.sh): No such file or directory (line 4, column 16)"));
  mkdir((dir_ + "/sub").c_str(), 0755);
  EXPECT_THAT(Error("repo: /r\ngood: a\nbad: b\ntest: {script: sub}\n"),
              HasSubstr("test.script: cannot read the test script \"sub\" (" + dir_ +
                        "/sub): it is a directory"));
  // A device or FIFO must fail at once, neither hang nor fill memory.
  EXPECT_THAT(Error("repo: /r\ngood: a\nbad: b\ntest: {script: /dev/zero}\n"),
              HasSubstr("cannot read the test script \"/dev/zero\": it is not a regular file"));
  ASSERT_EQ(mkfifo((dir_ + "/fifo").c_str(), 0644), 0);
  EXPECT_THAT(Error("repo: /r\ngood: a\nbad: b\ntest: {script: fifo}\n"),
              HasSubstr("it is not a regular file"));
  // Too big (a sparse file, nothing is written).
  Write("big", "");
  ASSERT_EQ(truncate((dir_ + "/big").c_str(), kMaxPayloadBytes + 1), 0);
  EXPECT_THAT(
      Error("repo: /r\ngood: a\nbad: b\nkernel: {config: defconfig}\nboot: {payload: big}\n"),
      HasSubstr("boot.payload: cannot read the payload \"big\" (" + dir_ + "/big): it is " +
                std::to_string(kMaxPayloadBytes + 1) + " bytes; at most " +
                std::to_string(kMaxPayloadBytes) + " are allowed"));
  EXPECT_THAT(Error("repo: /r\ngood: a\nbad: b\ntest: {script: big}\n"),
              HasSubstr("at most 1048576 are allowed"));
  Write("empty.sh", "");
  EXPECT_THAT(Error("repo: /r\ngood: a\nbad: b\ntest: {script: empty.sh}\n"),
              HasSubstr("test.script: cannot read the test script \"empty.sh\" (" + dir_ +
                        "/empty.sh): it is empty"));
  EXPECT_THAT(Error("repo: /r\ngood: a\nbad: b\ntest: t\nkernel: {config: ./missing.config}\n"),
              HasSubstr("kernel.config: cannot read the kernel config \"./missing.config\""));
  Write("notes.txt", "hello\n");
  EXPECT_THAT(Error("repo: /r\ngood: a\nbad: b\ntest: t\nkernel: {config: ./notes.txt}\n"),
              HasSubstr("kernel.config: \"./notes.txt\" does not look like a kernel .config"));
  EXPECT_THAT(Error("repo: /r\ngood: a\nbad: b\ntest: t\nkernel: {config: defconfig, "
                    "fragments: [./notes.txt]}\n"),
              HasSubstr("kernel.fragments[0]: \"./notes.txt\" has no CONFIG_ lines"));
}

TEST_F(JobFileTest, KernelConfigValues) {
  const std::string base = "repo: /r\ngood: a\nbad: b\ntest: t\n";
  EXPECT_THAT(Error(base + "kernel: {config: menuconfig}\n"),
              HasSubstr("kernel.config: \"menuconfig\" is interactive or needs an existing "
                        ".config"));
  EXPECT_THAT(Error(base + "kernel: {config: tiny}\n"),
              HasSubstr("kernel.config: \"tiny\" is neither a make target (tinyconfig"));
  EXPECT_THAT(Error(base + "kernel: {config: tinyconfig+kvm guest}\n"),
              HasSubstr("kernel.config: \"kvm guest\" is not a kernel fragment name"));
  EXPECT_THAT(Error(base + "kernel: {config: defconfig, ccache_remote_storage: ftp://x}\n"),
              HasSubstr("kernel.ccache_remote_storage: expected ccache remote storage URLs"));
  absl::StatusOr<v1::BisectSpec> spec =
      Parse(base + "kernel: {config: x86_64_defconfig, modules: on}\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->recipe().kernel().config_target(), "x86_64_defconfig");
  EXPECT_TRUE(spec->recipe().kernel().modules());
}

TEST_F(JobFileTest, BootConsistency) {
  Write("p.sh", "#!/bin/sh\n");
  Write("bin",
        "\x7f"
        "ELF\x02\x01\x01");
  const std::string base = "repo: /r\ngood: a\nbad: b\nkernel: {config: tinyconfig}\n";
  EXPECT_THAT(Error(base + "boot: {payload: p.sh, payload_kind: binary}\n"),
              HasSubstr("boot.payload_kind: is binary, but \"p.sh\" is not an ELF executable"));
  EXPECT_THAT(Error(base + "boot: {payload: bin, payload_kind: c}\n"),
              HasSubstr("boot.payload_kind: is c, but \"bin\" is an ELF executable"));
  EXPECT_THAT(Error(base + "boot: {payload: p.sh, result_file: r}\n"),
              HasSubstr("boot.result_file: needs boot.shared_dir"));
  EXPECT_THAT(Error(base + "boot: {payload: p.sh, shared_dir: /s, result_file: ../etc/passwd}\n"),
              HasSubstr("boot.result_file: expected a file name inside boot.shared_dir"));
  EXPECT_THAT(Error(base + "test: t\nboot: {payload: p.sh}\n"),
              HasSubstr("test: cannot be used with boot"));
  absl::StatusOr<v1::BisectSpec> spec = Parse(base + "boot: {payload: bin}\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->recipe().boot().payload_kind(), v1::BootSpec::BINARY);
  // A disk image whose init runs the test needs no payload.
  spec = Parse(base + "boot: {disk_image: /d.qcow2, shared_dir: /s, result_file: test_result}\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
}

TEST_F(JobFileTest, TestCommandAndScriptTogether) {
  Write("t.sh", "#!/bin/sh\n");
  EXPECT_THAT(Error("repo: /r\ngood: a\nbad: b\ntest: {script: t.sh, command: 'sh t.sh'}\n"),
              HasSubstr("test.command: with test.script, give the command as a list whose first "
                        "word names the script"));
  EXPECT_THAT(Error("repo: /r\ngood: a\nbad: b\ntest: {script: t.sh, command: [bash, x]}\n"),
              HasSubstr("test.command: with test.script"));
}

TEST_F(JobFileTest, RevisionsTermsAndEnv) {
  EXPECT_THAT(Error("repo: /r\ngood: v1 v2\nbad: b\ntest: t\n"),
              HasSubstr("good: expected one revision (a commit id, tag or branch), got \"v1 v2\", "
                        "which has blanks"));
  EXPECT_THAT(Error("repo: /r\ngood: a\nbad: --output=/etc/x\ntest: t\n"),
              HasSubstr("bad: \"--output=/etc/x\" is not a revision: it starts with '-'"));
  EXPECT_THAT(Error("repo: /r\ngood: [a, '']\nbad: b\ntest: t\n"), HasSubstr("good[1]: is empty"));
  EXPECT_THAT(Error(Minimal("terms: {old: x, new: x}\n")),
              HasSubstr("terms: old and new are both \"x\""));
  EXPECT_THAT(Error(Minimal("terms: {old: bad, new: good}\n")),
              HasSubstr("terms.old: expected a word of letters"));
  EXPECT_THAT(Error(Minimal("terms: {old: run, new: b}\n")),
              HasSubstr("terms.old: expected a word"));
  EXPECT_THAT(Error(Minimal("env: {FARM_COMMIT: x}\n")),
              HasSubstr("env.FARM_COMMIT: FARM_* variables are set by the agent"));
  EXPECT_THAT(Error(Minimal("env: {1X: x}\n")), HasSubstr("env: \"1X\" is not a variable name"));
  EXPECT_THAT(Error(Minimal("env: {A: }\n")),
              HasSubstr("env.A: has no value; write \"\" for an empty one"));
  EXPECT_THAT(Error(Minimal("env: {A: [1]}\n")), HasSubstr("env.A: expected a value"));
}

TEST_F(JobFileTest, DuplicatesDocumentsAndEncoding) {
  EXPECT_THAT(Error("repo: /r\ngood: a\nbad: b\ntest: t\nbad: c\n"),
              HasSubstr("bad: given twice (first on line 3); keep one (line 5, column 1)"));
  EXPECT_THAT(Error(Minimal() + "---\nrepo: /x\n"),
              HasSubstr("the job file holds more than one YAML document (another starts on line "
                        "5); give one job per file"));
  EXPECT_THAT(Error(Minimal() + "...\nrepo: /x\n"), HasSubstr("more than one YAML document"));
  // Markers that do not start a second document.
  absl::StatusOr<v1::BisectSpec> spec = Parse("%YAML 1.2\n---\n" + Minimal() + "...\n# end\n");
  EXPECT_TRUE(spec.ok()) << spec.status();
  spec = Parse(Minimal("description: |\n  ---\n  not a marker\n"));
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->description(), "---\nnot a marker\n");
  EXPECT_THAT(Error(std::string("repo: /r\xff\ngood: a\nbad: b\ntest: t\n")),
              HasSubstr("the job file is not UTF-8 text: line 1, column 9 has byte 0xff"));
  // An escape that makes a lone surrogate, which is not UTF-8 either.
  EXPECT_THAT(Error("repo: \"/r\\ud800\"\ngood: a\nbad: b\ntest: t\n"),
              HasSubstr("the job file is not valid YAML: line 1, column 16: invalid unicode"));
  EXPECT_THAT(Error(std::string("repo: \"/r\\0x\"\ngood: a\nbad: b\ntest: t\n")),
              HasSubstr("repo: contains a NUL byte"));
  EXPECT_THAT(Error(std::string(kMaxJobFileBytes + 1, '#')),
              HasSubstr("the job file is 1048577 bytes; at most 1048576"));
}

// yaml-cpp 0.7's LoadAll never returns on these; the parser must answer at once.
TEST_F(JobFileTest, InputsThatHangYamlCpp) {
  EXPECT_THAT(Error(","), HasSubstr("the job file is empty"));
  EXPECT_THAT(Error("\n,\n"), HasSubstr("the job file is empty"));
  EXPECT_THAT(Error(std::string(",\0test}", 8)),
              HasSubstr("the job file has a control character (0x00) at line 1, column 2"));
  EXPECT_THAT(Error("{:"), HasSubstr("not valid YAML"));
  EXPECT_THAT(Error("[:"), HasSubstr("not valid YAML"));
}

TEST_F(JobFileTest, EveryProblemIsReportedAtOnce) {
  std::string msg = Error(
      "repo: /r\ngood: a\nbad: b\ntset: t\nmax_parallel: many\n"
      "first_parent: perhaps\n");
  EXPECT_THAT(msg, HasSubstr("did you mean 'test'"));
  EXPECT_THAT(msg, HasSubstr("max_parallel: expected"));
  EXPECT_THAT(msg, HasSubstr("first_parent: expected"));
  EXPECT_THAT(msg, HasSubstr("test: missing"));
  // Bounded.
  std::string many = "repo: /r\ngood: a\nbad: b\ntest: t\n";
  for (int i = 0; i < 50; ++i) many += "unknown" + std::to_string(i) + ": 1\n";
  msg = Error(many);
  EXPECT_THAT(msg, HasSubstr("... and 30 more"));
}

TEST_F(JobFileTest, LoadJobFileNamesTheFile) {
  Write("t.sh", "#!/bin/sh\n");
  Write("job.yaml", "repo: r\ngood: a\nbad: b\ntest: {script: t.sh}\n");
  absl::StatusOr<v1::BisectSpec> spec = LoadJobFile(dir_ + "/job.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->repo(), dir_ + "/r");
  EXPECT_EQ(spec->recipe().test_script(), "#!/bin/sh\n");
  Write("bad.yaml", "repo: r\ngood: a\nbad: b\nboot: {memory_mb: lots}\n");
  spec = LoadJobFile(dir_ + "/bad.yaml");
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(std::string(spec.status().message()),
              HasSubstr(dir_ + "/bad.yaml: boot.memory_mb: expected a whole number of megabytes "
                               "(64..65536), got \"lots\""));
  spec = LoadJobFile(dir_ + "/none.yaml");
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(spec.status().message()),
              HasSubstr("cannot read job file '" + dir_ + "/none.yaml': No such file"));
  EXPECT_EQ(LoadJobFile(dir_).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(EditDistanceTest, CountsTypos) {
  EXPECT_EQ(EditDistance("test", "test"), 0u);
  EXPECT_EQ(EditDistance("tset", "test"), 1u);  // a transposition is one edit
  EXPECT_EQ(EditDistance("tes", "test"), 1u);
  EXPECT_EQ(EditDistance("", "abc"), 3u);
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3u);
}

// Unprivileged, as a user runs `farm submit`: a script the user may not read is refused, saying
// why. A readable one next to it parses, so the refusal is the file's mode, not the directory's.
TEST_F(JobFileTest, UnreadableScriptSaysPermissionDenied) {
  ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);
  Write("readable.sh", "#!/bin/sh\n");
  Write("secret.sh", "#!/bin/sh\n");
  ASSERT_EQ(chmod((dir_ + "/readable.sh").c_str(), 0644), 0);
  ASSERT_EQ(chmod((dir_ + "/secret.sh").c_str(), 0), 0);
  EXPECT_EQ(ParseAsNobody("repo: /r\ngood: a\nbad: b\ntest: {script: readable.sh}\n"), "parsed");
  EXPECT_THAT(ParseAsNobody("repo: /r\ngood: a\nbad: b\ntest: {script: secret.sh}\n"),
              AllOf(HasSubstr("secret.sh"), HasSubstr("Permission denied")));
}

TEST_F(JobFileTest, PriorityIsZeroToHundredAndUnsetMeansDefault) {
  absl::StatusOr<v1::BisectSpec> urgent = Parse(Minimal("priority: 90\n"));
  ASSERT_TRUE(urgent.ok()) << urgent.status();
  EXPECT_EQ(spec::Priority(*urgent), 90u);
  absl::StatusOr<v1::BisectSpec> idle = Parse(Minimal("priority: 0\n"));
  ASSERT_TRUE(idle.ok()) << idle.status();
  EXPECT_EQ(spec::Priority(*idle), 0u);
  absl::StatusOr<v1::BisectSpec> plain = Parse(Minimal());
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(spec::Priority(*plain), spec::kDefaultPriority);
  EXPECT_THAT(Error(Minimal("priority: 101\n")),
              HasSubstr("priority: expected a whole number, higher served first (0..100), got "
                        "\"101\""));
}

}  // namespace
}  // namespace farm
