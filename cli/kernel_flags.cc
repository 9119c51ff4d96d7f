#include "cli/kernel_flags.h"

#include <git2.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/build/config_flag.h"
#include "common/git/git.h"
#include "common/spec/spec.h"
#include "common/status_macros.h"

namespace farm {
namespace {

namespace v1 = farm::v1;
namespace fs = std::filesystem;

absl::StatusOr<std::string> Slurp(const std::string& path, const char* flag, size_t limit) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read '", path, "'"));
  }
  std::stringstream ss;
  ss << f.rdbuf();
  if (ss.str().size() > limit) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": '", path, "' is larger than ", limit >> 20, " MiB"));
  }
  return ss.str();
}

}  // namespace

void AddKernelFlags(CLI::App* cmd, KernelFlags& f) {
  cmd->add_flag("--kernel", f.kernel, "kernel bisect: build a kernel at each commit and boot it");
  cmd->add_option("--kernels", f.kernels,
                  "bisect these prebuilt kernel images instead of a git range (oldest, good, "
                  "first)")
      ->take_all();
  cmd->add_option("--config", f.config,
                  "kernel configuration: a .config FILE, or TARGET[+FRAGMENT...] such as "
                  "tinyconfig+kvm_guest (a fragment is a kernel-provided name or a file)");
  cmd->add_flag("--modules", f.modules, "also build modules");
  cmd->add_option("--ccache-remote", f.ccache_remote,
                  "ccache remote storage shared by the lab (redis://HOST:PORT or http://...)");
  cmd->add_option("--jobs", f.jobs, "make -j (default: the agent's CPUs)")
      ->check(CLI::Range(0u, spec::kMaxMakeJobs));
  cmd->add_option("--test", f.test,
                  "the test run inside the booted kernel: a shell script, a C file (compiled "
                  "statically) or a static binary; exit codes as git bisect run");
  cmd->add_option("--append", f.append, "extra kernel command line");
  cmd->add_option("--qemu-arg", f.qemu_args, "extra qemu argument (repeatable)");
  cmd->add_option("--memory", f.memory_mb, "guest memory in MiB (default 512)")
      ->check(CLI::Range(spec::kMinMemoryMb, spec::kMaxMemoryMb));
  cmd->add_option("--cpus", f.cpus, "guest CPUs (default 1)")
      ->check(CLI::Range(spec::kMinCpus, spec::kMaxCpus));
  cmd->add_option("--disk", f.disk, "disk image attached with -snapshot (never modified)");
  cmd->add_option("--share", f.share, "host directory shared with the guest over 9p");
  cmd->add_option("--result-file", f.result_file,
                  "read the verdict (an exit code) from this file in --share");
  cmd->add_option("--boot-timeout", f.boot_timeout, "seconds until init runs (default 60)")
      ->check(CLI::Range(1u, spec::kMaxBootTimeoutSeconds));
  cmd->add_option("--test-timeout", f.test_timeout, "seconds for the test (default 300)")
      ->check(CLI::Range(1u, spec::kMaxTestTimeoutSeconds));
  cmd->add_option("--bad-on", f.bad_on,
                  "boot failures that count as bad: panic, oops, bug, hang, no_init, and "
                  "host-boot (a --host-kernel that does not boot) (default: none; they are "
                  "skips)")
      ->delimiter(',');
  cmd->add_option("--accel", f.accel, "auto (probe KVM, fall back to TCG), kvm or tcg")
      ->check(CLI::IsMember({"auto", "kvm", "tcg"}));
  cmd->add_flag("--no-pvh", f.no_pvh,
                "boot each bzImage through its own setup and decompressor (default: its ELF "
                "through the kernel's PVH entry when it has one, faster under TCG)");
}

absl::Status ApplyKernelFlags(const KernelFlags& f, v1::Recipe* recipe) {
  if (f.test.empty()) {
    return absl::InvalidArgumentError(
        "--test is required for a kernel bisect: the script, C file or static binary to run "
        "inside the booted kernel");
  }
  if (f.kernel && !f.kernels.empty()) {
    return absl::InvalidArgumentError(
        "give --kernel (build at each commit) or --kernels "
        "(prebuilt images), not both");
  }
  if (f.kernel) {
    v1::KernelBuild* k = recipe->mutable_kernel();
    FARM_RETURN_IF_ERROR(ParseKernelConfigFlag(f.config.empty() ? "tinyconfig" : f.config, k));
    k->set_modules(f.modules);
    k->set_ccache_remote_storage(f.ccache_remote);
    k->set_jobs(f.jobs);
  }
  v1::BootSpec* b = recipe->mutable_boot();
  FARM_ASSIGN_OR_RETURN(std::string payload, Slurp(f.test, "--test", spec::kMaxPayloadBytes));
  b->set_payload(payload);
  if (absl::EndsWith(f.test, ".c")) b->set_payload_kind(v1::BootSpec::C_SOURCE);
  if (!f.kernels.empty()) b->set_kernel_image("bzImage");  // in the worktree of the image list
  b->set_kernel_cmdline(f.append);
  for (const auto& a : f.qemu_args) b->add_qemu_args(a);
  b->set_memory_mb(f.memory_mb);
  b->set_cpus(f.cpus);
  if (!f.disk.empty()) {
    if (!fs::exists(f.disk)) {
      return absl::InvalidArgumentError(absl::StrCat("--disk '", f.disk, "' does not exist"));
    }
    b->set_disk_image(fs::absolute(f.disk).string());
  }
  if (!f.share.empty()) {
    if (!fs::is_directory(f.share)) {
      return absl::InvalidArgumentError(absl::StrCat("--share '", f.share, "' is not a directory"));
    }
    b->set_shared_dir(fs::absolute(f.share).string());
  }
  if (!f.result_file.empty() && f.share.empty()) {
    return absl::InvalidArgumentError(
        "--result-file needs --share (the directory it is read from)");
  }
  b->set_result_file(f.result_file);
  b->set_boot_timeout_seconds(f.boot_timeout);
  b->set_test_timeout_seconds(f.test_timeout);
  b->set_accel(f.accel.empty() ? "auto" : f.accel);
  b->set_no_pvh(f.no_pvh);
  for (const std::string& name : f.bad_on) {
    if (name == "host-boot") continue;  // about the host kernel (MakeSpec), not the guest boot
    v1::BootFailure bf;
    std::string upper;
    for (char c : name) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (!v1::BootFailure_Parse(upper, &bf) || bf == v1::BOOT_FAILURE_UNSPECIFIED) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--bad-on '", name, "': give panic, oops, bug, hang or no_init (comma-separated)"));
    }
    b->add_bad_failures(bf);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> WriteCommitChain(const std::string& dir,
                                                          const std::vector<ChainCommit>& commits) {
  GitLibrary::Ensure();
  fs::remove_all(dir);
  git_repository* raw = nullptr;
  if (int rc = git_repository_init(&raw, dir.c_str(), /*is_bare=*/1)) {
    return GitError(rc, absl::StrCat("cannot create ", dir));
  }
  GitRepository repo(raw);
  git_signature* sig = nullptr;
  git_signature_new(&sig, "farm", "farm@localhost", 1700000000, 0);
  std::vector<std::string> out;
  git_oid parent;
  bool has_parent = false;
  for (const ChainCommit& c : commits) {
    git_oid tree;
    git_treebuilder* tb = nullptr;
    int rc = git_treebuilder_new(&tb, repo.get(), nullptr);
    for (const ChainFile& f : c.files) {
      git_oid blob;
      if (!rc && !f.disk_path.empty()) {
        rc = git_blob_create_from_disk(&blob, repo.get(), f.disk_path.c_str());
      } else if (!rc) {
        rc = git_blob_create_from_buffer(&blob, repo.get(), f.content.data(), f.content.size());
      }
      if (!rc) rc = git_treebuilder_insert(nullptr, tb, f.name.c_str(), &blob, GIT_FILEMODE_BLOB);
    }
    if (!rc) rc = git_treebuilder_write(&tree, tb);
    git_treebuilder_free(tb);
    git_tree* t = nullptr;
    git_commit* p = nullptr;
    if (!rc) rc = git_tree_lookup(&t, repo.get(), &tree);
    if (!rc && has_parent) rc = git_commit_lookup(&p, repo.get(), &parent);
    const git_commit* parents[] = {p};
    git_oid commit;
    if (!rc) {
      rc = git_commit_create(&commit, repo.get(), "refs/heads/main", sig, sig, nullptr,
                             c.message.c_str(), t, has_parent ? 1 : 0, parents);
    }
    git_tree_free(t);
    git_commit_free(p);
    if (rc) {
      git_signature_free(sig);
      return GitError(rc, absl::StrCat("cannot record ", c.message.substr(0, c.message.find('\n')),
                                       " in ", dir));
    }
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), &commit);
    out.push_back(hex);
    parent = commit;
    has_parent = true;
  }
  git_signature_free(sig);
  return out;
}

absl::StatusOr<KernelListRepo> MakeKernelListRepo(const std::vector<std::string>& images,
                                                  const std::string& dir) {
  if (images.size() < 2) {
    return absl::InvalidArgumentError(
        "--kernels needs at least two images: the oldest (good) first, the newest (bad) last");
  }
  std::vector<ChainCommit> commits;
  for (const auto& img : images) {
    if (!fs::is_regular_file(img)) {
      return absl::InvalidArgumentError(absl::StrCat("--kernels: '", img, "' is not a file"));
    }
    std::string name = fs::absolute(img).string();
    commits.push_back({{{"bzImage", name, ""}, {"image-path", "", name}},
                       absl::StrCat(fs::path(img).filename().string(), "\n\n", name, "\n")});
  }
  FARM_ASSIGN_OR_RETURN(std::vector<std::string> ids, WriteCommitChain(dir, commits));
  return KernelListRepo{dir, ids.front(), ids.back()};
}

}  // namespace farm
