#include "cli/host_revisions.h"

#include <git2.h>
#include <openssl/sha.h>

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/git/git.h"
#include "common/status_macros.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace farm {

namespace fs = std::filesystem;

namespace {

std::string Hex(const git_oid& oid) {
  char hex[GIT_OID_HEXSZ + 1];
  git_oid_tostr(hex, sizeof(hex), &oid);
  return hex;
}

struct HostRepo {
  std::string path;  // absolute: what the agents check out
  GitRepository repo;
};

absl::StatusOr<HostRepo> OpenHostRepo(const std::string& repo) {
  HostRepo out;
  out.path = fs::absolute(repo).lexically_normal().string();
  if (out.path.size() > 1 && out.path.back() == '/') out.path.pop_back();
  absl::StatusOr<GitRepository> opened = OpenRepository(out.path);
  if (!opened.ok()) {
    return absl::Status(opened.status().code(),
                        absl::StrCat("--host-repo: ", opened.status().message()));
  }
  out.repo = std::move(*opened);
  return out;
}

absl::StatusOr<git_oid> Resolve(git_repository* repo, const std::string& flag,
                                const std::string& rev) {
  absl::StatusOr<git_oid> oid = ResolveCommit(repo, rev);
  if (!oid.ok()) {
    return absl::Status(oid.status().code(),
                        absl::StrCat(flag, ": ", oid.status().message(),
                                     " (give a commit, tag or branch of --host-repo)"));
  }
  return oid;
}

absl::StatusOr<v1::HostKernel> HostKernelAt(const HostRepo& repo, const git_oid& oid,
                                            const std::string& label,
                                            const v1::KernelBuild& build) {
  git_commit* raw = nullptr;
  if (int rc = git_commit_lookup(&raw, repo.repo.get(), &oid)) {
    return GitError(rc, absl::StrCat("cannot read commit ", Hex(oid), " of ", repo.path));
  }
  GitCommit commit(raw);
  v1::HostKernel k;
  k.set_repo(repo.path);
  k.set_commit(Hex(oid));
  *k.mutable_build() = build;
  k.set_key(SourceHostKernelKey(Hex(*git_commit_tree_id(commit.get())), build));
  k.set_label(label);
  return k;
}

}  // namespace

std::string SourceHostKernelKey(const std::string& tree_hex, const v1::KernelBuild& build) {
  std::string bytes = absl::StrCat("tree ", tree_hex, "\n");
  {
    google::protobuf::io::StringOutputStream raw(&bytes);
    google::protobuf::io::CodedOutputStream out(&raw);
    out.SetSerializationDeterministic(true);
    build.SerializeToCodedStream(&out);
  }
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), md);
  std::string digest;
  for (unsigned char c : md) absl::StrAppendFormat(&digest, "%02x", c);
  return digest;
}

absl::StatusOr<std::vector<v1::HostKernel>> HostKernelsAtRevisions(
    const std::string& repo, const std::vector<std::string>& revisions,
    const v1::KernelBuild& build) {
  FARM_ASSIGN_OR_RETURN(HostRepo host, OpenHostRepo(repo));
  std::vector<v1::HostKernel> out;
  for (const std::string& rev : revisions) {
    FARM_ASSIGN_OR_RETURN(git_oid oid, Resolve(host.repo.get(), "--host-kernels", rev));
    FARM_ASSIGN_OR_RETURN(v1::HostKernel k, HostKernelAt(host, oid, rev, build));
    out.push_back(std::move(k));
  }
  return out;
}

absl::StatusOr<std::vector<v1::HostKernel>> HostKernelsInRange(const std::string& repo,
                                                               const std::string& good,
                                                               const std::string& bad,
                                                               const v1::KernelBuild& build) {
  FARM_ASSIGN_OR_RETURN(HostRepo host, OpenHostRepo(repo));
  git_repository* r = host.repo.get();
  FARM_ASSIGN_OR_RETURN(git_oid good_oid, Resolve(r, "--host-good", good));
  FARM_ASSIGN_OR_RETURN(git_oid bad_oid, Resolve(r, "--host-bad", bad));
  if (git_oid_equal(&good_oid, &bad_oid)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--host-good ", good, " and --host-bad ", bad, " are the same commit (",
        Hex(good_oid).substr(0, 12), "): give a good host revision older than the bad"));
  }
  FARM_ASSIGN_OR_RETURN(bool ancestor, IsAncestor(r, good_oid, bad_oid));
  if (!ancestor) {
    FARM_ASSIGN_OR_RETURN(bool swapped, IsAncestor(r, bad_oid, good_oid));
    if (swapped) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--host-good ", good, " is not an ancestor of --host-bad ", bad,
          ", it is a descendant: did you swap them? (the good host revision is the older one)"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("--host-good ", good, " is not an ancestor of --host-bad ", bad,
                     ": they are on diverging branches; give a good host revision that bad "
                     "contains, for example their merge base (git merge-base ",
                     good, " ", bad, ")"));
  }
  git_revwalk* raw = nullptr;
  int rc = git_revwalk_new(&raw, r);
  std::unique_ptr<git_revwalk, decltype(&git_revwalk_free)> walk(raw, git_revwalk_free);
  if (!rc) rc = git_revwalk_sorting(walk.get(), GIT_SORT_TOPOLOGICAL);
  if (!rc) rc = git_revwalk_simplify_first_parent(walk.get());
  if (!rc) rc = git_revwalk_push(walk.get(), &bad_oid);
  if (!rc) rc = git_revwalk_hide(walk.get(), &good_oid);
  if (rc) return GitError(rc, absl::StrCat("cannot walk ", good, "..", bad, " in ", host.path));
  std::vector<git_oid> range;  // newest first
  git_oid oid;
  while ((rc = git_revwalk_next(&oid, walk.get())) == 0) range.push_back(oid);
  if (rc != GIT_ITEROVER) {
    return GitError(rc, absl::StrCat("cannot walk ", good, "..", bad, " in ", host.path));
  }
  std::reverse(range.begin(), range.end());
  std::vector<v1::HostKernel> out;
  FARM_ASSIGN_OR_RETURN(v1::HostKernel first, HostKernelAt(host, good_oid, good, build));
  out.push_back(std::move(first));
  for (const git_oid& c : range) {
    const bool last = git_oid_equal(&c, &bad_oid);
    FARM_ASSIGN_OR_RETURN(v1::HostKernel k,
                          HostKernelAt(host, c, last ? bad : Hex(c).substr(0, 12), build));
    out.push_back(std::move(k));
  }
  return out;
}

}  // namespace farm
