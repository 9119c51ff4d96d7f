// The agent's persistent work areas: one git worktree and one build directory per slot, reused
// between tasks so that builds stay incremental.
#ifndef FARM_AGENT_WORKSPACE_WORKSPACE_H_
#define FARM_AGENT_WORKSPACE_WORKSPACE_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/workspace/checkout_filters.h"
#include "common/git/git.h"

namespace farm {

struct CheckoutResult {
  std::string worktree;      // Absolute path of the slot's checked-out source tree.
  std::string build_dir;     // Absolute path of the slot's build directory (exists).
  size_t files_written = 0;  // Tracked files created or rewritten.
  size_t files_removed = 0;  // Tracked files deleted, plus untracked/ignored ones when pristine.
  // The mirror lacked an object the commit needs and was cloned again first: what was missing.
  std::string mirror_repaired;
  absl::Duration elapsed;
};

// Layout under `root`:
//   root/mirrors/           bare mirrors of remote repositories (RepoCache)
//   root/slots/<n>/src      slot n's worktree: a non-bare repository whose
//                           .git/objects/info/alternates points at the object directory of the
//                           repository RepoCache prepared, so no object is copied
//   root/slots/<n>/build    slot n's build directory, kept between tasks
//
// Thread safety: Checkout() may run concurrently for different slots (and the same or different
// urls); one slot must be used by one thread at a time, and `root` by one process.
class Workspace {
 public:
  // Creates root (and its subdirectories) if missing.
  // Errors: INVALID_ARGUMENT for an empty root; INTERNAL / PERMISSION_DENIED if it cannot be
  // created.
  static absl::StatusOr<std::unique_ptr<Workspace>> Open(const std::string& root);

  // Checks out commit `sha` (a sha, or any revision of the repository) of repository `url` in
  // slot `slot`'s worktree, detaching HEAD there. Only files whose content differs from what is
  // checked out now are written (unchanged files keep their mtimes, so incremental builds stay
  // incremental); files that the commit does not have are removed, as are directories left empty;
  // tracked files modified since the last checkout (e.g. by a build) are restored. Untracked and
  // ignored files (build outputs) are kept, unless `pristine`: then every untracked and ignored
  // file and directory is removed from the worktree and the build dir is emptied (a fresh build).
  // A slot's worktree that is missing or corrupt is recreated. A slot that last held a different
  // url starts from scratch (new worktree, empty build dir).
  // Errors: INVALID_ARGUMENT for a negative slot; the url cannot be prepared (see
  // RepoCache::Prepare); NOT_FOUND if `sha` is not a commit of it, or if an object the commit
  // needs is missing from the repository (or mirror), the message saying how to repair it;
  // libgit2 failures (GitError); INTERNAL for disk errors.
  // Submodules: every gitlink of the commit that .gitmodules names is checked out at its recorded
  // commit (recursively, as `git submodule update --init --recursive` would), its repository
  // prepared like the superproject's (mirrored, or used in place when local) from the url in
  // .gitmodules, resolved relative to `url` as git does (ResolveSubmoduleUrl). Errors there
  // name the submodule.
  // With `cancelled`, a slot whose worktree holds no commit yet (a task's first checkout, or one
  // cut short) is written as SeedWorktree does, asking `cancelled` between files: CANCELLED when
  // it said so, and the next Checkout or SeedWorktree of any commit keeps the files written that
  // its commit has unchanged. (A whole tree can take seconds; a cancelled task frees its slot at
  // once instead of finishing it.)
  absl::StatusOr<CheckoutResult> Checkout(int slot, const std::string& url, const std::string& sha,
                                          bool pristine,
                                          const std::function<bool()>& cancelled = nullptr);

  // Makes sure commit `sha` of `url` exists where Checkout looks for it, when it is the revert of
  // `culprit` on top of `head` that a verification asked for (Assign.revert_culprit/revert_head):
  // a mirror of a remote repository lacks it, and gets the same commit (MakeRevertCommit) written
  // into it. Does nothing when `sha` is already there. Errors: FAILED_PRECONDITION when the
  // commit made here is not `sha` (the coordinator and agent disagree on the revert), or the
  // revert cannot be made; otherwise as Checkout. Thread safety: as Checkout.
  absl::Status MakeRevert(const std::string& url, const std::string& sha,
                          const std::string& culprit, const std::string& head);

  // Whether slot `slot`'s worktree holds a checked-out commit of `url` (its next Checkout writes
  // only what differs). Thread safety: as Checkout.
  bool HasWorktree(int slot, const std::string& url);

  // Makes slot `slot`'s worktree hold commit `sha` of `url` if it holds no checked-out commit of
  // `url` yet (otherwise does nothing), so that its first Checkout writes only a diff: for local
  // agents started together, which would otherwise all check out a whole tree at once. Writes
  // the tree itself (unless line-ending or ident filters apply, then as Checkout does), asking
  // `cancelled` between files; submodules are left to Checkout. Every file is the slot's own:
  // nothing is shared with another worktree. Returns whether it wrote a tree.
  // Errors: CANCELLED when `cancelled` said so (the partial worktree is resumed by the next
  // SeedWorktree, or Checkout with `cancelled`, of any commit: the files written that this commit
  // has unchanged are kept, the others removed; a Checkout without `cancelled` recreates it);
  // otherwise as Checkout.
  absl::StatusOr<bool> SeedWorktree(int slot, const std::string& url, const std::string& sha,
                                    const std::function<bool()>& cancelled);

  // Absolute paths of slot `slot`'s worktree and build directory (they may not exist yet).
  std::string worktree_path(int slot) const;
  std::string build_path(int slot) const;

  // Removes everything in slot `slot`'s build directory: the next build there starts afresh.
  // For the slot's own runner, between tasks. Errors: INVALID_ARGUMENT for a negative slot;
  // INTERNAL for disk errors.
  absl::Status EmptyBuildDirectory(int slot);

  // The mirrors this workspace keeps (thread-safe).
  RepoCache& repo_cache() { return cache_; }

 private:
  explicit Workspace(std::string root);
  struct ResolvedCommit {
    std::string source_path;  // the repository RepoCache prepared (a mirror, or the local one)
    git_oid oid;
  };
  // Prepares `url` (RepoCache::Prepare) and resolves `sha` there. Errors: as Checkout.
  absl::StatusOr<ResolvedCommit> Resolve(const std::string& url, const std::string& sha);
  // The submodules of commit `oid`, checked out in the worktree at `src` (see Checkout); adds
  // the files it writes and removes to `result`. `depth`: how deep in nested submodules.
  absl::Status CheckoutSubmodules(const std::string& src, const std::string& url,
                                  const git_oid& oid, bool pristine, int depth,
                                  CheckoutResult& result);

  const std::string root_;
  RepoCache cache_;
  CheckoutFilters filters_;  // whether a checkout can skip libgit2's attribute lookups
};

// The url of a submodule whose .gitmodules url is `url`, in a superproject at `super_url`, as
// git resolves it: "./x" and "../x" are relative to the superproject's url (each "../" drops one
// path component of it; "host:path" urls keep their host); anything else is `url` itself.
std::string ResolveSubmoduleUrl(const std::string& super_url, const std::string& url);

}  // namespace farm

#endif  // FARM_AGENT_WORKSPACE_WORKSPACE_H_
