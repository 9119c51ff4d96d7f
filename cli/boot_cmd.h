// `farm boot`: one kernel, one boot, one verdict. Builds the initramfs (the farm's init + the
// test), boots the kernel in qemu, streams the console and prints the verdict in words with its
// timing.
//
// Exit codes follow `git bisect run`, so `git bisect run farm boot ...` works:
//   0    good: the test passed
//   1    bad: the test failed, or a boot failure listed with --bad-on
//   125  skip: the test said so (125), or the kernel panicked/oopsed/hung/never reached init
//        before the test's result and --bad-on does not list it
//   2    bad input (a missing file, a payload that does not compile): the message says what to do
//   255  infrastructure error (qemu failed, KVM asked for but unusable, the test was killed by a
//        signal): not a verdict; `git bisect run` stops instead of recording a wrong answer
//   130  interrupted (SIGINT/SIGTERM)
#ifndef FARM_CLI_BOOT_CMD_H_
#define FARM_CLI_BOOT_CMD_H_

#include <cstdint>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"

namespace farm {

struct BootFlags {
  std::string kernel;  // --kernel: bzImage
  std::string test;    // --test: the payload (script, C file or static binary)
  std::string kind;    // --kind: sh, c, binary (default: from the content and extension)
  std::string accel = "auto";
  uint32_t memory_mb = 512;
  uint32_t cpus = 1;
  std::string append;      // extra kernel command line
  uint32_t timeout = 300;  // test timeout, seconds
  uint32_t boot_timeout = 60;
  std::string disk;                    // disk image, opened copy-on-write
  std::string share;                   // 9p shared directory
  std::string result_file;             // in --share: holds the test's exit code
  std::vector<std::string> bad_on;     // panic, oops, bug, hang, no-init
  std::vector<std::string> qemu_args;  // appended to qemu's command line
  std::vector<std::string> modules;    // modules insmod'ed before the test: names or .ko paths
  std::string modules_dir;             // the kernel's /lib/modules/<version>, to resolve names
  std::string console_file;            // console to this file instead of stdout
  std::string work_dir;                // caches (initramfs archives, compiled tests)
  bool gzip = false;                   // gzip the initramfs
  bool no_pvh = false;                 // boot a bzImage as it is, not its ELF through PVH
};

// Registers the flags of `farm boot` on `cmd`.
void AddBootFlags(CLI::App* cmd, BootFlags& f);

// Runs `farm boot` and returns the process exit code (see above). Installs SIGINT/SIGTERM
// handling that stops qemu.
int RunBoot(const BootFlags& f);

}  // namespace farm

#endif  // FARM_CLI_BOOT_CMD_H_
