// Flags of kernel bisects (`farm bisect --kernel`, `--kernels`), turned into a Recipe.
#ifndef FARM_CLI_KERNEL_FLAGS_H_
#define FARM_CLI_KERNEL_FLAGS_H_

#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "farm/v1/farm.pb.h"

namespace farm {

struct KernelFlags {
  bool kernel = false;               // build a kernel at each commit and boot it
  std::vector<std::string> kernels;  // or: bisect these prebuilt images, oldest (good) first
  std::string config;                // FILE, or TARGET[+FRAGMENT...]
  bool modules = false;
  std::string ccache_remote;
  int jobs = 0;
  std::string test;  // the payload: a shell script, a C file or a static binary
  std::string append;
  std::vector<std::string> qemu_args;
  int memory_mb = 0;
  int cpus = 0;
  std::string disk;
  std::string share;
  std::string result_file;
  int boot_timeout = 0;
  int test_timeout = 0;
  std::vector<std::string> bad_on;  // panic, oops, bug, hang, no_init
  std::string accel;
  bool no_pvh = false;
  bool any() const { return kernel || !kernels.empty(); }
};

void AddKernelFlags(CLI::App* cmd, KernelFlags& f);

// Fills recipe->kernel and recipe->boot. Errors name the flag and what is allowed.
absl::Status ApplyKernelFlags(const KernelFlags& f, farm::v1::Recipe* recipe);

// A file of a commit the CLI makes: `name` in the tree, its content read from `disk_path` when
// that is set, else `content`.
struct ChainFile {
  std::string name, disk_path, content;
};
struct ChainCommit {
  std::vector<ChainFile> files;
  std::string message;
};
// A new bare repository in `dir` (whatever was there is removed) whose main branch is `commits`,
// each the parent of the next. Returns their ids in order; libgit2's errors name `dir`.
absl::StatusOr<std::vector<std::string>> WriteCommitChain(const std::string& dir,
                                                          const std::vector<ChainCommit>& commits);

// `--kernels A B C`: a repository in `dir` with one commit per image (the file bzImage), oldest
// first, so that the ordinary machinery bisects them. Returns the first and last commit ids.
struct KernelListRepo {
  std::string path, first, last;
};
absl::StatusOr<KernelListRepo> MakeKernelListRepo(const std::vector<std::string>& images,
                                                  const std::string& dir);

}  // namespace farm

#endif  // FARM_CLI_KERNEL_FLAGS_H_
