// What verifying a culprit needs from the job's repository: facts about the commit and a revert.
#ifndef FARM_COORDINATOR_ENGINE_CULPRIT_REPO_H_
#define FARM_COORDINATOR_ENGINE_CULPRIT_REPO_H_

#include <git2.h>

#include <memory>
#include <optional>

#include "absl/status/statusor.h"

namespace farm {

// What makes a culprit suspicious before anything runs.
struct CulpritFacts {
  std::optional<git_oid> parent;  // the first parent; nullopt for a root commit
  bool is_merge = false;
  bool same_tree_as_parent = false;  // an empty commit: it cannot change a test's result
};

// Thread safety: none (libgit2 objects); the coordinator calls it under its lock.
class CulpritRepo {
 public:
  virtual ~CulpritRepo() = default;

  // Errors: NOT_FOUND when `culprit` is not a commit of the repository.
  virtual absl::StatusOr<CulpritFacts> Facts(const git_oid& culprit) = 0;

  // Writes a commit on top of `head` that reverts `culprit` (MakeRevertCommit: the same inputs
  // give the same commit id, so an agent whose mirror lacks it makes the same one from the
  // Assign's revert_culprit/revert_head). Errors: FAILED_PRECONDITION saying why it was not made
  // (a merge or root culprit, a revert that conflicts); NOT_FOUND for an unknown commit; libgit2
  // failures.
  virtual absl::StatusOr<git_oid> Revert(const git_oid& culprit, const git_oid& head) = 0;
};

// Over `repo` (not owned; it must outlive the result): a local repository agents use in place, or
// the coordinator's mirror of a remote one.
std::unique_ptr<CulpritRepo> NewGitCulpritRepo(git_repository* repo);

}  // namespace farm

#endif  // FARM_COORDINATOR_ENGINE_CULPRIT_REPO_H_
