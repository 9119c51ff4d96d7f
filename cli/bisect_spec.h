// The flags of `farm bisect` and `farm submit`, and the BisectSpec they make: everything the
// client checks before a job is sent (the test command exists and is executable, a script fits
// the job, the terms are usable, flaky-only flags come with --flaky, the log can be written).
#ifndef FARM_CLI_BISECT_SPEC_H_
#define FARM_CLI_BISECT_SPEC_H_

#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cli/kernel_flags.h"
#include "farm/v1/farm.pb.h"

namespace farm {

// What the user typed for a bisect.
struct BisectFlags {
  std::string repo = ".";
  std::vector<std::string> good;
  std::string bad;
  std::vector<std::string> skip;
  bool first_parent = false;
  std::string build;
  int timeout = 0;
  std::string term_old, term_new;
  int agents = 0;
  int max_parallel = 0;
  int priority = -1;  // -1: not given (the job file's, else the default)
  std::string log_file;
  std::string workdir;
  std::string description;
  bool descend = false;
  bool no_reuse = false;
  std::string flaky;
  double confidence = 0;
  int max_runs = 0;
  int verify = 0;  // retests of the culprit, its parent and its revert; 0: none
  std::string job_file;
  std::vector<std::string> require;  // KEY=VALUE labels an agent must have
  // Every task runs under this host kernel (an image path on the kexec agents).
  std::string host_kernel, host_kernel_initrd, host_kernel_cmdline;
  KernelFlags kernel;
  std::vector<std::string> command;
  // Host x guest jobs (issue 11): prebuilt host and guest images, oldest first. On farm bisect
  // they make a two-dimensional bisect; `matrix` (farm matrix) tests every cell instead.
  std::vector<std::string> host_kernels;
  std::vector<std::string> guest_kernels;
  bool matrix = false;
  // Host kernels as revisions of this repository, built with --kernel --config: --host-kernels
  // then names revisions (farm matrix), or the range is --host-good..--host-bad (farm bisect).
  std::string host_repo, host_good, host_bad;
};

// Declares the flags shared by `farm bisect` and `farm submit` on `cmd`, bound to `f`.
void AddBisectFlags(CLI::App* cmd, BisectFlags& f);
// --host-kernels, --guest-kernels and --host-repo (with --host-good/--host-bad on farm bisect)
// (part of AddBisectFlags; farm matrix declares them alone).
void AddHostGuestFlags(CLI::App* cmd, BisectFlags& f);

// The job `f` describes, checked as far as the client can, and against the request schema
// (common/spec: the same words the coordinator and a job file would use). A repository path is made
// absolute; with `repo_must_be_local` it must be an existing path even if it looks like a URL. A
// test script given by path is read and carried in the spec. Errors (INVALID_ARGUMENT, NOT_FOUND)
// say what was wrong and what to do.
absl::StatusOr<farm::v1::BisectSpec> MakeSpec(const BisectFlags& f, bool repo_must_be_local);

// OK when `path` can be written (created if missing, then removed again), so that a bisect log
// is not found unwritable only at the end. INVALID_ARGUMENT names the path and the reason.
absl::Status CheckWritable(const std::string& path, const std::string& flag);

}  // namespace farm

#endif  // FARM_CLI_BISECT_SPEC_H_
