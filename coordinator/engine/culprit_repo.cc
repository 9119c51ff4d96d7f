#include "coordinator/engine/culprit_repo.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/git/git.h"
#include "common/status_macros.h"
#include "coordinator/engine/report_text.h"

namespace farm {

namespace {

absl::StatusOr<GitCommit> LookupCommit(git_repository* repo, const git_oid& oid) {
  git_commit* raw = nullptr;
  int rc = git_commit_lookup(&raw, repo, &oid);
  if (rc != 0) return GitError(rc, absl::StrCat("commit ", OidHex(oid)));
  return GitCommit(raw);
}

class GitCulpritRepo : public CulpritRepo {
 public:
  explicit GitCulpritRepo(git_repository* repo) : repo_(repo) {}

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
    return MakeRevertCommit(repo_, culprit, head);
  }

 private:
  git_repository* repo_;
};

}  // namespace

std::unique_ptr<CulpritRepo> NewGitCulpritRepo(git_repository* repo) {
  return std::make_unique<GitCulpritRepo>(repo);
}

}  // namespace farm
