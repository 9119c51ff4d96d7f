#include "coordinator/scheduler/job_intake.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <openssl/sha.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/spec/spec.h"
#include "common/status_macros.h"
#include "coordinator/engine/engine_factory.h"
#include "coordinator/engine/report_text.h"

namespace farm {

absl::StatusOr<v1::BisectSpec> ResolveSpec(v1::BisectSpec spec, RepoCache& cache,
                                           uint32_t default_timeout) {
  FARM_RETURN_IF_ERROR(ValidateBisectSpec(spec));
  FARM_ASSIGN_OR_RETURN(std::string git_dir, cache.Prepare(spec.repo(), ""));
  FARM_ASSIGN_OR_RETURN(GitRepository repo, OpenRepository(git_dir));
  auto resolve = [&](const std::string& rev, const char* what) -> absl::StatusOr<std::string> {
    absl::StatusOr<git_oid> oid = ResolveCommit(repo.get(), rev);
    if (!oid.ok()) {
      return absl::Status(oid.status().code(),
                          absl::StrCat(what, " revision: ", oid.status().message()));
    }
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), &*oid);
    return std::string(hex);
  };
  auto regex_rev = [](const std::string& r) {
    return r.find(":/") != std::string::npos || r.find("^{/") != std::string::npos;
  };
  std::vector<std::string> revs(spec.good().begin(), spec.good().end());
  revs.push_back(spec.bad());
  revs.insert(revs.end(), spec.skip().begin(), spec.skip().end());
  for (const std::string& r : revs) {
    if (regex_rev(r)) {
      return absl::InvalidArgumentError(
          absl::StrCat("revision '", r,
                       "' searches commit messages (:/ or ^{/...}): give a commit id, a "
                       "branch or a tag instead"));
    }
  }
  std::string bad_name = spec.bad();
  FARM_ASSIGN_OR_RETURN(std::string bad, resolve(spec.bad(), "bad"));
  spec.set_bad(bad);
  for (int i = 0; i < spec.good_size(); ++i) {
    std::string good_name = spec.good(i);
    FARM_ASSIGN_OR_RETURN(std::string good, resolve(good_name, "good"));
    if (good == bad) {
      return absl::InvalidArgumentError(
          absl::StrCat("good revision '", good_name, "' and bad revision '", bad_name,
                       "' are the same commit ", ShortSha(bad), ": there is nothing to bisect"));
    }
    spec.set_good(i, good);
  }
  for (int i = 0; i < spec.skip_size(); ++i) {
    FARM_ASSIGN_OR_RETURN(std::string s, resolve(spec.skip(i), "skip"));
    spec.set_skip(i, s);
  }
  // Cells switch their agent's machine to a host kernel: only kexec agents (Hello capability
  // kexec=1) can run them, and the labels machinery says so to a job no agent can serve.
  if (spec.has_matrix()) (*spec.mutable_require())["kexec"] = "1";
  if (spec.recipe().timeout_seconds() == 0) {
    spec.mutable_recipe()->set_timeout_seconds(default_timeout);
  }
  return spec;
}

namespace {

// Every good commit must be an ancestor of bad. The graph's load usually tells at no cost (`info`);
// otherwise, and to say what is wrong, libgit2 walks the history.
absl::Status CheckGoodsAreAncestors(git_repository* repo, const v1::BisectSpec& spec,
                                    const git_oid& bad_oid, const std::vector<git_oid>& goods,
                                    const GraphLoadInfo& info, const RevisionNames& names) {
  const std::string& bad = spec.bad();
  const std::string& bad_name = names.bad.empty() ? bad : names.bad;
  for (size_t i = 0; i < goods.size(); ++i) {
    if (info.good_is_ancestor.size() == goods.size() && info.good_is_ancestor[i]) continue;
    const std::string& good = spec.good(static_cast<int>(i));
    const std::string& good_name = i < names.good.size() ? names.good[i] : good;
    FARM_ASSIGN_OR_RETURN(bool ancestor, IsAncestor(repo, goods[i], bad_oid));
    if (ancestor) continue;
    FARM_ASSIGN_OR_RETURN(bool reversed, IsAncestor(repo, bad_oid, goods[i]));
    if (reversed) {
      return absl::InvalidArgumentError(
          absl::StrCat("good commit ", good_name, " (", ShortSha(good),
                       ") is not an ancestor of bad commit ", bad_name, " (", ShortSha(bad),
                       "), it is a descendant: did you swap them? "
                       "(use --good/--bad, or --term-old/--term-new when looking for a fix)"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("good commit ", good_name, " (", ShortSha(good),
                     ") is not an ancestor of bad commit ", bad_name, " (", ShortSha(bad),
                     "): they are on diverging branches; give a good commit "
                     "that bad contains, for example their merge base (git merge-base ",
                     good_name, " ", bad_name, "), or check that they are not swapped"));
  }
  return absl::OkStatus();
}

// The recipe, and the host kernel when the job has one: a verdict under one host kernel says
// nothing about another (without one, the digest is the recipe's alone, as before).
std::string RecipeDigest(const v1::BisectSpec& spec) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream raw(&bytes);
    google::protobuf::io::CodedOutputStream out(&raw);
    out.SetSerializationDeterministic(true);
    spec.recipe().SerializeToCodedStream(&out);
    if (spec.has_host_kernel()) spec.host_kernel().SerializeToCodedStream(&out);
    out.Trim();
  }
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), md);
  std::string digest;
  for (unsigned char c : md) absl::StrAppendFormat(&digest, "%02x", c);
  return digest;
}

}  // namespace

absl::StatusOr<LoadedJob> LoadJob(const v1::BisectSpec& spec, RepoCache& cache,
                                  const RevisionNames* check_ancestry) {
  LoadedJob job;
  FARM_ASSIGN_OR_RETURN(std::string git_dir, cache.Prepare(spec.repo(), spec.bad()));
  FARM_ASSIGN_OR_RETURN(job.repo, OpenRepository(git_dir));
  FARM_ASSIGN_OR_RETURN(git_oid bad, ResolveCommit(job.repo.get(), spec.bad()));
  std::vector<git_oid> goods;
  for (const std::string& g : spec.good()) {
    FARM_ASSIGN_OR_RETURN(git_oid oid, ResolveCommit(job.repo.get(), g));
    goods.push_back(oid);
  }
  GraphLoadInfo info;
  FARM_ASSIGN_OR_RETURN(job.graph,
                        CommitGraph::Load(job.repo.get(), bad, goods, spec.first_parent(),
                                          GraphLoadOptions(), &info));
  if (check_ancestry != nullptr) {
    FARM_RETURN_IF_ERROR(
        CheckGoodsAreAncestors(job.repo.get(), spec, bad, goods, info, *check_ancestry));
  }
  if (job.graph->size() == 0) {
    return absl::InvalidArgumentError("the range good..bad is empty: nothing to bisect");
  }
  std::vector<CommitId> skipped;
  for (const std::string& s : spec.skip()) {
    FARM_ASSIGN_OR_RETURN(git_oid oid, ResolveCommit(job.repo.get(), s));
    if (std::optional<CommitId> id = job.graph->Find(oid)) skipped.push_back(*id);
  }
  // A revert commit the verification writes reaches the agents in place for a local repository
  // (RepoCache uses it as it is); agents of a remote one make the same commit in their mirrors
  // from the Assign's revert_culprit/revert_head.
  FARM_ASSIGN_OR_RETURN(job.engine,
                        CreateEngine(spec, job.graph, skipped, NewGitCulpritRepo(job.repo.get())));
  job.move_cost = TreeDiffCost(job.repo.get(), job.graph);
  if (spec.verify() > 0) {
    // Probes beyond the graph (a verification's parent or revert): no cost known, any slot.
    job.move_cost = [cost = std::move(job.move_cost), size = job.graph->size()](
                        std::optional<CommitId> from, CommitId to) {
      return (from && *from >= size) || to >= size ? 0.0 : cost(from, to);
    };
  }
  job.recipe_digest = RecipeDigest(spec);
  return job;
}

void AttachLoaded(LoadedJob loaded, Job& job) {
  job.repo = std::move(loaded.repo);
  job.graph = std::move(loaded.graph);
  job.engine = std::move(loaded.engine);
  job.move_cost = std::move(loaded.move_cost);
  job.recipe_digest = std::move(loaded.recipe_digest);
}

}  // namespace farm
