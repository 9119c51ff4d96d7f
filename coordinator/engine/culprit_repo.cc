#include "coordinator/engine/culprit_repo.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/git/git.h"
#include "common/status_macros.h"
#include "coordinator/engine/report_text.h"

namespace farm {

namespace {

using GitSignature =
    std::unique_ptr<git_signature, git_internal::Deleter<git_signature, git_signature_free>>;

absl::StatusOr<GitCommit> LookupCommit(git_repository* repo, const git_oid& oid) {
  git_commit* raw = nullptr;
  int rc = git_commit_lookup(&raw, repo, &oid);
  if (rc != 0) return GitError(rc, absl::StrCat("commit ", OidHex(oid)));
  return GitCommit(raw);
}

class GitCulpritRepo : public CulpritRepo {
 public:
  GitCulpritRepo(git_repository* repo, bool agents_share_objects)
      : repo_(repo), agents_share_objects_(agents_share_objects) {}

  absl::StatusOr<CulpritFacts> Facts(const git_oid& culprit) override {
    GitLibrary::Ensure();
    FARM_ASSIGN_OR_RETURN(GitCommit commit, LookupCommit(repo_, culprit));
    CulpritFacts facts;
    const unsigned parents = git_commit_parentcount(commit.get());
    facts.is_merge = parents > 1;
    if (parents == 0) return facts;
    facts.parent = *git_commit_parent_id(commit.get(), 0);
    FARM_ASSIGN_OR_RETURN(GitCommit parent, LookupCommit(repo_, *facts.parent));
    facts.same_tree_as_parent =
        git_oid_equal(git_commit_tree_id(commit.get()), git_commit_tree_id(parent.get()));
    return facts;
  }

  absl::StatusOr<git_oid> Revert(const git_oid& culprit, const git_oid& head) override {
    GitLibrary::Ensure();
    if (!agents_share_objects_) {
      return absl::FailedPreconditionError(
          "the repository is remote and agents fetch it from there, not from the coordinator");
    }
    FARM_ASSIGN_OR_RETURN(GitCommit commit, LookupCommit(repo_, culprit));
    FARM_ASSIGN_OR_RETURN(GitCommit top, LookupCommit(repo_, head));
    const unsigned parents = git_commit_parentcount(commit.get());
    if (parents != 1) {
      return absl::FailedPreconditionError(parents == 0 ? "the culprit is a root commit"
                                                        : "the culprit is a merge");
    }
    git_index* raw_index = nullptr;
    int rc = git_revert_commit(&raw_index, repo_, commit.get(), top.get(), 0, nullptr);
    if (rc != 0) return GitError(rc, "reverting the culprit");
    GitIndex index(raw_index);
    if (git_index_has_conflicts(index.get())) {
      return absl::FailedPreconditionError("the revert does not apply cleanly (it conflicts)");
    }
    git_oid tree_oid;
    rc = git_index_write_tree_to(&tree_oid, index.get(), repo_);
    if (rc != 0) return GitError(rc, "writing the reverted tree");
    git_tree* raw_tree = nullptr;
    rc = git_tree_lookup(&raw_tree, repo_, &tree_oid);
    if (rc != 0) return GitError(rc, "reading the reverted tree");
    GitTree tree(raw_tree);
    // The head's time and a fixed name: the same revert is the same commit after a restart.
    git_signature* raw_sig = nullptr;
    rc = git_signature_new(&raw_sig, "farm", "farm@localhost", git_commit_time(top.get()),
                           git_commit_time_offset(top.get()));
    if (rc != 0) return GitError(rc, "making the revert's signature");
    GitSignature sig(raw_sig);
    const char* summary = git_commit_summary(commit.get());
    const std::string message = absl::StrCat("Revert \"", summary ? summary : "", "\"\n\n",
                                             "This reverts commit ", OidHex(culprit), ".\n");
    const git_commit* parent = top.get();
    git_oid out;
    rc = git_commit_create(&out, repo_, nullptr, sig.get(), sig.get(), nullptr, message.c_str(),
                           tree.get(), 1, &parent);
    if (rc != 0) return GitError(rc, "writing the revert commit");
    return out;
  }

 private:
  git_repository* repo_;
  bool agents_share_objects_;
};

}  // namespace

std::unique_ptr<CulpritRepo> NewGitCulpritRepo(git_repository* repo, bool agents_share_objects) {
  return std::make_unique<GitCulpritRepo>(repo, agents_share_objects);
}

}  // namespace farm
