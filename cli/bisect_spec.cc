#include "cli/bisect_spec.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "agent/build/config_flag.h"
#include "cli/host_revisions.h"
#include "cli/matrix_cells.h"
#include "common/jobfile/jobfile.h"
#include "common/spec/spec.h"
#include "common/status_macros.h"

namespace farm {

namespace fs = std::filesystem;

namespace {

// Checks the test command the way a user expects: it exists and is executable. A script given
// by path is shipped with the job so that every agent, on any host, runs the same script.
absl::Status ResolveTestCommand(const std::vector<std::string>& command, v1::Recipe* recipe) {
  if (command.empty()) {
    return absl::InvalidArgumentError(
        "no test command: give it after `--`, e.g. farm bisect --good v1 --bad main -- ./test.sh");
  }
  for (const std::string& a : command) recipe->add_test_argv(a);
  const std::string& prog = command[0];
  if (prog.find('/') == std::string::npos) {
    // A command from PATH (e.g. `make check`, `sh -c ...`).
    const char* path = std::getenv("PATH");
    for (absl::string_view dir : absl::StrSplit(path ? path : "/usr/bin:/bin", ':')) {
      std::string cand = absl::StrCat(dir.empty() ? "." : dir, "/", prog);
      if (access(cand.c_str(), X_OK) == 0) return absl::OkStatus();
    }
    std::string hint = access(prog.c_str(), F_OK) == 0 ? absl::StrCat(" (there is a file './", prog,
                                                                      "' here: use ./", prog, ")")
                                                       : "";
    return absl::InvalidArgumentError(
        absl::StrCat("test command '", prog, "' is not found in PATH", hint));
  }
  struct stat st;
  if (stat(prog.c_str(), &st) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "test command '", prog, "' does not exist (paths are relative to the current directory, ",
        fs::current_path().string(), ")"));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("test command '", prog, "' is not a file"));
  }
  if (access(prog.c_str(), X_OK) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("test command '", prog, "' is not executable: run `chmod +x ", prog, "`"));
  }
  if (static_cast<uint64_t>(st.st_size) > spec::kMaxTestScriptBytes) {
    // Shipping is what makes remote agents run the same bytes: a test too large to ship is
    // refused rather than run from a path that only this machine has.
    return absl::InvalidArgumentError(absl::StrFormat(
        "test command '%s' is %.1f MiB; a test given by path is shipped with the job and may be "
        "at most %d MiB: install it on every agent and name it without a path (found through "
        "PATH), or keep it in the repository and run it from the worktree, e.g. -- sh -c "
        "./tests/check.sh",
        prog, st.st_size / 1048576.0, static_cast<int>(spec::kMaxTestScriptBytes >> 20)));
  }
  std::ifstream f(prog, std::ios::binary);
  std::string content((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (!f.good() && !f.eof()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read the test command '", prog, "'"));
  }
  recipe->set_test_script(content);
  return absl::OkStatus();
}

// git's rules for --term-old/--term-new (builtin/bisect.c, check_term_format): a subcommand of
// git bisect cannot be a term, and "bad"/"new" and "good"/"old" keep their meaning.
// Flag combinations the coordinator would accept but not do what the user meant.
absl::Status CheckSpec(const v1::BisectSpec& spec) {
  if (!spec.term_old().empty()) FARM_RETURN_IF_ERROR(spec::CheckTerm(spec.term_old(), false));
  if (!spec.term_new().empty()) FARM_RETURN_IF_ERROR(spec::CheckTerm(spec.term_new(), true));
  if (spec.flaky().empty() && (spec.confidence() > 0 || spec.max_runs() > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        spec.confidence() > 0 ? "--confidence" : "--max-runs",
        " only applies to flaky mode: add --flaky FP,FF (e.g. 0.3,0) or --flaky learn, or drop "
        "it"));
  }
  return absl::OkStatus();
}

}  // namespace

void AddBisectFlags(CLI::App* cmd, BisectFlags& f) {
  cmd->add_option("--repo", f.repo, "git repository (path; a URL with --coordinator)")
      ->capture_default_str();
  cmd->add_option("--good,--old", f.good, "known-good revision (repeatable)")->take_all();
  cmd->add_option("--bad,--new", f.bad, "known-bad revision");
  cmd->add_option("--skip", f.skip, "revision known to be untestable (repeatable)");
  cmd->add_flag("--first-parent", f.first_parent, "follow only the first parent of merges");
  cmd->add_option("--build", f.build,
                  "build command run with sh -c in the worktree before the test; "
                  "a failed build makes the commit a skip");
  cmd->add_option("--timeout", f.timeout, "seconds per build and per test (default 3600)")
      ->check(CLI::Range(1, 7 * 86400));
  cmd->add_option("--term-old", f.term_old, "word for good commits, e.g. old or fast");
  cmd->add_option("--term-new", f.term_new, "word for bad commits, e.g. new or slow");
  cmd->add_option("--max-parallel", f.max_parallel, "at most this many tasks at once")
      ->check(CLI::Range(0, 100000));
  cmd->add_option("--priority", f.priority,
                  "0..100, higher served first when the farm is busy (default 50)")
      ->check(CLI::Range(0, 100));
  cmd->add_option("--log", f.log_file, "write the bisect log (git bisect replay format) here");
  cmd->add_option("--description", f.description, "free text shown in listings");
  cmd->add_option("--flaky", f.flaky,
                  "the test is flaky: FP,FF false-pass/false-fail rates (e.g. 0.3,0), or learn; "
                  "bisect on a Bayesian posterior and repeat where it pays");
  cmd->add_option("--confidence", f.confidence, "flaky mode: stop at this confidence (0.95)")
      ->check(CLI::Range(0.5, 0.999999));
  cmd->add_option("--max-runs", f.max_runs, "flaky mode: give up after this many runs")
      ->check(CLI::Range(0, 100000));
  cmd->add_flag("--descend", f.descend,
                "when the first bad commit is a merge, bisect the branch it merged");
  cmd->add_flag(absl::StrCat("--verify{", spec::kDefaultVerifyRuns, "}"), f.verify,
                "--verify[=N]: once the culprit is found, retest it, its parent and the bad "
                "commit with it reverted N times each (default 3) and say whether it is verified")
      ->check(CLI::Range(0, static_cast<int>(spec::kMaxVerifyRuns)));
  cmd->add_flag("--no-reuse", f.no_reuse,
                "retest commits whose tree was already tested under the same recipe");
  cmd->add_option("--require", f.require,
                  "KEY=VALUE an agent must have (its --label, or a capability such as "
                  "accel=kvm); repeatable");
  cmd->add_option("--job", f.job_file,
                  "a job file (YAML, docs/jobfile.md) describing everything the flags do");
  cmd->add_option("--host-kernel", f.host_kernel,
                  "run every task under this host kernel: an image path on the agents, which "
                  "must be kexec agents (farm-agent --kexec); one that does not boot is a skip, "
                  "or bad with --bad-on host-boot");
  cmd->add_option("--host-kernel-initrd", f.host_kernel_initrd,
                  "initrd of --host-kernel (default: the agent's --kexec-initrd)");
  cmd->add_option("--host-kernel-cmdline", f.host_kernel_cmdline,
                  "appended to the command line --host-kernel boots with");
  AddKernelFlags(cmd, f.kernel);
  AddHostGuestFlags(cmd, f);
  cmd->add_option("command", f.command, "the test command and its arguments (after --)");
}

void AddHostGuestFlags(CLI::App* cmd, BisectFlags& f) {
  cmd->add_option("--host-kernels", f.host_kernels,
                  f.matrix ? "prebuilt host kernel images, or with --host-repo revisions built "
                             "with --kernel --config: each cell's agent kexecs into its host"
                           : "two-dimensional bisect: prebuilt host kernel images, oldest (good) "
                             "first; with --guest-kernels")
      ->take_all();
  cmd->add_option("--host-repo", f.host_repo,
                  f.matrix ? "host kernels are revisions of this kernel repository (--host-kernels "
                             "REV...), built by the kexec agents with --kernel --config"
                           : "two-dimensional bisect over host kernels built from this kernel "
                             "repository (--host-good/--host-bad, with --kernel --config)");
  if (!f.matrix) {
    cmd->add_option("--host-good", f.host_good, "with --host-repo: the good (older) host revision");
    cmd->add_option("--host-bad", f.host_bad, "with --host-repo: the bad (newer) host revision");
  }
  cmd->add_option("--guest-kernels", f.guest_kernels,
                  f.matrix ? "prebuilt guest kernel images booted on each host (none: host-only)"
                           : "two-dimensional bisect: prebuilt guest kernel images, oldest (good) "
                             "first; with --host-kernels")
      ->take_all();
}

absl::Status CheckWritable(const std::string& path, const std::string& flag) {
  bool existed = access(path.c_str(), F_OK) == 0;
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, ": cannot write there (",
                                                   std::strerror(errno),
                                                   "): give a path in a writable directory"));
  }
  close(fd);
  if (!existed) unlink(path.c_str());
  return absl::OkStatus();
}

namespace {

// A repository the client makes under $XDG_CACHE_HOME/farm/<kind>/, named by the files it is
// made of.
std::string CacheRepoDir(const std::string& kind,
                         const std::vector<const std::vector<std::string>*>& lists) {
  const char* cache = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  std::string base = cache ? cache : home ? absl::StrCat(home, "/.cache") : "/tmp";
  std::string key;
  for (const std::vector<std::string>* list : lists) {
    for (const auto& k : *list) absl::StrAppend(&key, fs::absolute(k).string(), "\n");
    key += "--\n";
  }
  return absl::StrFormat("%s/farm/%s/%016x.git", base, kind, std::hash<std::string>{}(key));
}

// The host kernels of a host x guest job: prebuilt images (--host-kernels FILE...), or
// revisions of --host-repo built with the --kernel --config recipe (--host-kernels REV... on farm
// matrix, --host-good..--host-bad on farm bisect).
absl::StatusOr<std::vector<v1::HostKernel>> HostKernelsOf(const BisectFlags& f) {
  if (f.host_repo.empty()) return PrebuiltHostKernels(f.host_kernels);
  if (!f.kernel.kernel || f.kernel.config.empty()) {
    return absl::InvalidArgumentError(
        "--host-repo builds each host kernel from source: add --kernel --config CONFIG (e.g. "
        "--config defconfig+kvm_guest), the recipe the kexec agents build it with");
  }
  v1::KernelBuild build;
  FARM_RETURN_IF_ERROR(ParseKernelConfigFlag(f.kernel.config, &build));
  build.set_modules(f.kernel.modules);
  build.set_ccache_remote_storage(f.kernel.ccache_remote);
  build.set_jobs(f.kernel.jobs);
  if (f.matrix) {
    if (f.host_kernels.empty()) {
      return absl::InvalidArgumentError(
          "farm matrix --host-repo needs --host-kernels REV...: the host revisions to build");
    }
    return HostKernelsAtRevisions(f.host_repo, f.host_kernels, build);
  }
  if (!f.host_kernels.empty()) {
    return absl::InvalidArgumentError(
        "give the host kernels as --host-kernels IMAGE... or as --host-repo REPO --host-good G "
        "--host-bad B, not both");
  }
  if (f.host_good.empty() || f.host_bad.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--host-repo needs --host-good and --host-bad: the host range to bisect (missing ",
        f.host_good.empty() ? "--host-good" : "--host-bad", ")"));
  }
  return HostKernelsInRange(f.host_repo, f.host_good, f.host_bad, build);
}

// Host x guest jobs: the cells repository replaces --repo/--good/--bad (MatrixSpec says how).
absl::Status PrepareCells(BisectFlags& f, v1::BisectSpec* spec) {
  const char* what = f.matrix ? "farm matrix" : "a two-dimensional bisect";
  const bool from_source = !f.host_repo.empty();
  if (!from_source && (!f.host_good.empty() || !f.host_bad.empty())) {
    return absl::InvalidArgumentError(
        "--host-good/--host-bad are revisions of a kernel repository: add --host-repo REPO");
  }
  if (f.host_kernels.empty() && !from_source) {
    return absl::InvalidArgumentError(absl::StrCat(
        what,
        " needs --host-kernels: the prebuilt host kernel images (oldest first), or --host-repo "
        "with ",
        f.matrix ? "--host-kernels REV..." : "--host-good/--host-bad", " and --kernel --config"));
  }
  if (!f.matrix && !from_source && f.host_kernels.size() < 2) {
    return absl::InvalidArgumentError(
        "a two-dimensional bisect needs at least two --host-kernels and two --guest-kernels "
        "(oldest, good, first; newest, bad, last); to test every pair use farm matrix");
  }
  if (!f.matrix && f.guest_kernels.size() < 2) {
    return absl::InvalidArgumentError(
        "a two-dimensional bisect needs at least two --guest-kernels (prebuilt guest images, "
        "oldest, good, first; newest, bad, last); to test every pair use farm matrix");
  }
  // From source, --kernel --config is the host kernels' recipe.
  if (!f.good.empty() || !f.bad.empty() || (f.kernel.kernel && !from_source) ||
      !f.kernel.kernels.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " takes its kernels from --host-kernels (or --host-repo) and --guest-kernels: ",
        "drop --good/--bad/--kernels", from_source ? "" : "/--kernel"));
  }
  if (f.command.empty() && f.kernel.test.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what,
        " needs a test: --test FILE (run inside each guest kernel, or on the host kernel "
        "when there are no guests), or a command after -- (run in the cell's worktree, which "
        "holds bzImage and host-kernel)"));
  }
  FARM_ASSIGN_OR_RETURN(std::vector<v1::HostKernel> hosts, HostKernelsOf(f));
  std::vector<std::string> host_keys;
  for (const v1::HostKernel& k : hosts) host_keys.push_back(k.key());
  FARM_ASSIGN_OR_RETURN(
      MatrixCells made,
      MakeMatrixCells(hosts, f.guest_kernels,
                      CacheRepoDir("matrix-cells", {&host_keys, &f.guest_kernels})));
  made.matrix.set_bisect(!f.matrix);
  *spec->mutable_matrix() = std::move(made.matrix);
  f.repo = made.path;
  f.good = {made.root};
  f.bad = made.last;
  return absl::OkStatus();
}

// The spec of the flags (or of the job file), before the labels and the schema's check.
absl::StatusOr<v1::BisectSpec> BuildSpec(BisectFlags f, bool repo_must_be_local) {
  v1::BisectSpec spec;
  if (!f.job_file.empty()) {
    // A job file (docs/jobfile.md) describes the whole job; flags may not also describe it.
    if (!f.good.empty() || !f.bad.empty() || !f.command.empty() || f.kernel.any()) {
      return absl::InvalidArgumentError(
          "--job describes the whole job: give --good/--bad/--kernel/the test in the file, not "
          "as flags too");
    }
    absl::StatusOr<v1::BisectSpec> loaded = LoadJobFile(f.job_file);
    if (!loaded.ok()) return loaded.status();
    if (!loaded->repo().empty() && loaded->repo().find("://") == std::string::npos &&
        !fs::exists(loaded->repo())) {
      return absl::NotFoundError(
          absl::StrCat(f.job_file, ": repo: '", loaded->repo(), "' does not exist"));
    }
    FARM_RETURN_IF_ERROR(CheckSpec(*loaded));
    return *loaded;
  }
  const bool cells = !f.host_kernels.empty() || !f.guest_kernels.empty() || f.matrix ||
                     !f.host_repo.empty() || !f.host_good.empty() || !f.host_bad.empty();
  if (cells) FARM_RETURN_IF_ERROR(PrepareCells(f, &spec));
  if (!f.kernel.kernels.empty() && !cells) {
    // Prebuilt images: bisect a repository with one commit per image, made here.
    if (!f.good.empty() || !f.bad.empty()) {
      return absl::InvalidArgumentError(
          "--kernels replaces --good/--bad: the first image is the good one, the last the bad");
    }
    absl::StatusOr<KernelListRepo> list =
        MakeKernelListRepo(f.kernel.kernels, CacheRepoDir("kernel-lists", {&f.kernel.kernels}));
    if (!list.ok()) return list.status();
    f.repo = list->path;
    f.good = {list->first};
    f.bad = list->last;
  }
  bool looks_remote = f.repo.find("://") != std::string::npos;
  if (!looks_remote || repo_must_be_local) {
    if (!fs::exists(f.repo)) {
      return absl::NotFoundError(absl::StrCat("repository path '", f.repo, "' does not exist"));
    }
    spec.set_repo(fs::absolute(f.repo).lexically_normal().string());
    if (spec.repo().size() > 1 && spec.repo().back() == '/') spec.mutable_repo()->pop_back();
  } else {
    spec.set_repo(f.repo);
  }
  if (f.bad.empty()) return absl::InvalidArgumentError("--bad is required: the known-bad revision");
  if (f.good.empty()) {
    return absl::InvalidArgumentError("--good is required: at least one known-good revision");
  }
  for (const auto& g : f.good) spec.add_good(g);
  spec.set_bad(f.bad);
  for (const auto& s : f.skip) spec.add_skip(s);
  spec.set_first_parent(f.first_parent);
  spec.set_term_old(f.term_old);
  spec.set_term_new(f.term_new);
  spec.set_max_parallel(f.max_parallel);
  spec.set_description(f.description);
  spec.set_descend(f.descend);
  spec.set_no_reuse(f.no_reuse);
  spec.set_flaky(f.flaky);
  spec.set_confidence(f.confidence);
  spec.set_max_runs(f.max_runs);
  spec.set_verify(f.verify);
  FARM_RETURN_IF_ERROR(CheckSpec(spec));
  v1::Recipe* r = spec.mutable_recipe();
  r->set_build_command(f.build);
  r->set_timeout_seconds(f.timeout);
  if (cells && f.command.empty()) {
    // A host-only matrix runs its --test on the host kernel itself.
    if (f.guest_kernels.empty()) {
      FARM_RETURN_IF_ERROR(ResolveTestCommand({f.kernel.test}, r));
      return spec;
    }
    KernelFlags guests = f.kernel;
    guests.kernel = false;             // with --host-repo, --kernel is the host kernels' recipe
    guests.kernels = f.guest_kernels;  // each cell's worktree holds its guest as bzImage
    FARM_RETURN_IF_ERROR(ApplyKernelFlags(guests, r));
    return spec;
  }
  if (cells) {
    if (!f.kernel.test.empty()) {
      return absl::InvalidArgumentError(
          "give the test with --test FILE or as a command after --, not both");
    }
    FARM_RETURN_IF_ERROR(ResolveTestCommand(f.command, r));
    return spec;
  }
  if (f.kernel.any()) {
    if (!f.command.empty()) {
      return absl::InvalidArgumentError(
          "a kernel bisect runs its test inside the booted kernel: give it with --test FILE, "
          "not after --");
    }
    FARM_RETURN_IF_ERROR(ApplyKernelFlags(f.kernel, r));
    return spec;
  }
  if (!f.kernel.test.empty()) {
    return absl::InvalidArgumentError(
        "--test is the payload of a kernel bisect: add --kernel (or --kernels), or give a host "
        "test command after --");
  }
  FARM_RETURN_IF_ERROR(ResolveTestCommand(f.command, r));
  return spec;
}

}  // namespace

absl::StatusOr<v1::BisectSpec> MakeSpec(const BisectFlags& f, bool repo_must_be_local) {
  FARM_ASSIGN_OR_RETURN(v1::BisectSpec spec, BuildSpec(f, repo_must_be_local));
  for (const std::string& r : f.require) {
    // The key's syntax is the schema's to judge (below), in the words every entry point uses.
    size_t eq = r.find('=');
    if (eq == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--require '", r, "': expected KEY=VALUE (e.g. gpu=a100)"));
    }
    (*spec.mutable_require())[r.substr(0, eq)] = r.substr(eq + 1);
  }
  if (f.priority >= 0) spec.set_priority(static_cast<uint32_t>(f.priority));
  // The declared owner; a coordinator with tokens replaces it with the token's user.
  if (const char* user = std::getenv("USER"); user != nullptr && spec.owner().empty()) {
    spec.set_owner(user);
  }
  const bool bad_on_host_boot = std::find(f.kernel.bad_on.begin(), f.kernel.bad_on.end(),
                                          "host-boot") != f.kernel.bad_on.end();
  if (f.host_kernel.empty() &&
      (bad_on_host_boot || !f.host_kernel_initrd.empty() || !f.host_kernel_cmdline.empty())) {
    return absl::InvalidArgumentError(
        "--bad-on host-boot, --host-kernel-initrd and --host-kernel-cmdline need --host-kernel "
        "IMAGE (the host kernel the tasks run under)");
  }
  if (!f.host_kernel.empty()) {
    v1::HostKernel* k = spec.mutable_host_kernel();
    k->set_image(f.host_kernel);
    k->set_initrd(f.host_kernel_initrd);
    k->set_cmdline(f.host_kernel_cmdline);
    k->set_label(f.host_kernel.substr(f.host_kernel.rfind('/') + 1));
    k->set_bad_on_host_boot(bad_on_host_boot);
  }
  FARM_RETURN_IF_ERROR(ValidateBisectSpec(spec));
  return spec;
}

}  // namespace farm
