// libgit2 helpers: RAII handles, libgit2 errors as absl::Status, commit lookups, `git show`-style
// descriptions, and a cache of bare mirrors of remote repositories.
//
// libgit2 objects are not thread-safe: use a git_repository (and everything looked up through it)
// from one thread at a time. Different repository handles, even of the same path, may be used
// concurrently.
#ifndef FARM_COMMON_GIT_GIT_H_
#define FARM_COMMON_GIT_GIT_H_

#include <git2.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace farm {

// Initialises libgit2 once per process (git_libgit2_init) and never shuts it down, so handles may
// safely outlive static destruction. Every function in this header calls Ensure(); call it yourself
// before using libgit2 directly. Thread-safe; cheap after the first call.
class GitLibrary {
 public:
  static void Ensure();
};

namespace git_internal {
template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const {
    if (p != nullptr) Free(p);
  }
};
}  // namespace git_internal

// Owning handles for libgit2 objects (nullptr allowed). Free them before their repository.
using GitRepository =
    std::unique_ptr<git_repository, git_internal::Deleter<git_repository, git_repository_free>>;
using GitCommit = std::unique_ptr<git_commit, git_internal::Deleter<git_commit, git_commit_free>>;
using GitTree = std::unique_ptr<git_tree, git_internal::Deleter<git_tree, git_tree_free>>;
using GitObject = std::unique_ptr<git_object, git_internal::Deleter<git_object, git_object_free>>;
using GitDiff = std::unique_ptr<git_diff, git_internal::Deleter<git_diff, git_diff_free>>;
using GitDiffStats =
    std::unique_ptr<git_diff_stats, git_internal::Deleter<git_diff_stats, git_diff_stats_free>>;
using GitIndex = std::unique_ptr<git_index, git_internal::Deleter<git_index, git_index_free>>;
using GitRemote = std::unique_ptr<git_remote, git_internal::Deleter<git_remote, git_remote_free>>;
using GitStatusList =
    std::unique_ptr<git_status_list, git_internal::Deleter<git_status_list, git_status_list_free>>;

// Converts a failed libgit2 call (its return code `rc` and this thread's git_error_last()) into a
// status "what: <git's message>". Codes: GIT_ENOTFOUND -> NOT_FOUND, GIT_EEXISTS -> ALREADY_EXISTS,
// GIT_EINVALIDSPEC/GIT_EAMBIGUOUS/GIT_EINVALID -> INVALID_ARGUMENT, GIT_EAUTH/GIT_ECERTIFICATE ->
// PERMISSION_DENIED, GIT_ELOCKED and network/SSL errors -> UNAVAILABLE (worth retrying),
// GIT_EUSER -> CANCELLED, GIT_ECONFLICT/GIT_EBAREREPO/GIT_EUNBORNBRANCH -> FAILED_PRECONDITION,
// anything else -> INTERNAL. rc >= 0 gives OK.
absl::Status GitError(int rc, std::string_view what);

// Opens the repository at `path` exactly (a work tree, its .git directory, or a bare repository;
// parent directories are not searched).
// Errors: NOT_FOUND "repository path '/x' does not exist"; INVALID_ARGUMENT if the path is not a
// git repository; other libgit2 failures via GitError.
absl::StatusOr<GitRepository> OpenRepository(const std::string& path);

// Resolves `rev` (a sha, abbreviated sha, branch, tag, "HEAD~3", ...) to the commit it names,
// peeling tags.
// Errors: NOT_FOUND "unknown revision 'x': not a commit in <repo path>"; INVALID_ARGUMENT if `rev`
// is ambiguous or names something that is not a commit (a tree or blob).
absl::StatusOr<git_oid> ResolveCommit(git_repository* repo, const std::string& rev);

// True if `ancestor` is reachable from `descendant`, including when they are the same commit (as
// `git merge-base --is-ancestor`; unlike git_graph_descendant_of).
// Errors: NOT_FOUND if either commit is missing from the repository.
absl::StatusOr<bool> IsAncestor(git_repository* repo, const git_oid& ancestor,
                                const git_oid& descendant);

// Writes into `repo` a commit on top of `head` that reverts `culprit` (as `git revert`), with a
// fixed author ("farm", at `head`'s time) and message, so that the same inputs give the same commit
// id in any repository holding both commits: the coordinator makes it to name the probe, an agent
// whose mirror of a remote lacks it makes the same one. Errors: FAILED_PRECONDITION saying why it
// cannot be made (a merge or root culprit, a revert that conflicts); NOT_FOUND for an unknown
// commit; libgit2 failures.
absl::StatusOr<git_oid> MakeRevertCommit(git_repository* repo, const git_oid& culprit,
                                         const git_oid& head);

struct CommitInfo {
  std::string sha;      // 40 hex digits.
  std::string subject;  // First paragraph of the message, on one line.
  std::string author_name;
  std::string author_email;
  std::string message;     // The full message.
  int64_t time = 0;        // Author time, seconds since the epoch.
  int offset_minutes = 0;  // Author's UTC offset.
};

// Describes commit `oid`. Errors: NOT_FOUND if it is not a commit in `repo`.
absl::StatusOr<CommitInfo> GetCommitInfo(git_repository* repo, const git_oid& oid);

// What `git show --stat --summary` prints for commit `oid` (as git bisect does for the first bad
// commit): "commit <sha>\n", "Merge: <p1> <p2>\n" for merges, "Author: Name <email>\n",
// "Date:   Wed Nov 5 07:13:02 2026 +0000\n" (author time in the author's offset), a blank line, the
// message indented by 4, then, if the commit changes files, a blank line and the diffstat against
// the first parent (the empty tree for a root commit), 80 columns wide, with rename detection and
// the --summary lines (create/delete/rename/mode change). The one known difference from git: the
// similarity percentage of a rename with edits comes from libgit2's metric, which can differ from
// git's by a few percent.
// Errors: NOT_FOUND if `oid` is not a commit in `repo`; libgit2 failures.
absl::StatusOr<std::string> ShowCommit(git_repository* repo, const git_oid& oid);

// Formats a git timestamp as git's default date format: "Wed Nov 5 07:13:02 2026 +0100".
std::string FormatGitDate(int64_t time, int offset_minutes);

// Makes repositories named by URL available locally, keeping a bare mirror of each remote one.
//
// Thread-safe. Calls for the same URL are serialised (no double clones); different URLs proceed in
// parallel. Mirrors are created in a temporary directory and renamed into place, so a crash never
// leaves a half-cloned mirror behind.
class RepoCache {
 public:
  // Mirrors live in `cache_dir` (created when first needed).
  explicit RepoCache(std::string cache_dir);

  // Returns a path that git_repository_open accepts and whose object database has the objects of
  // `url`:
  //  - `url` is an existing local directory holding a git repository: its git (common) directory,
  //    used in place; nothing is copied or fetched.
  //  - otherwise (any URL libgit2 can fetch, including file://): a bare mirror at
  //    <cache_dir>/<sha1 of url>.git with all branches and tags, cloned on first use; when
  //    `want_sha` is given and missing, all branches and tags are fetched again.
  // `want_sha` may be any revision ResolveCommit accepts; empty: no check.
  // Errors (all naming the url): INVALID_ARGUMENT if `url` is a local directory that is not a git
  // repository; NOT_FOUND if `want_sha` is not a commit of the repository (after fetching);
  // FAILED_PRECONDITION for clone and fetch failures (an unknown host, a refused connection, no
  // repository there), PERMISSION_DENIED for a refused login, each with libgit2's message and what
  // to check; INTERNAL for disk errors.
  absl::StatusOr<std::string> Prepare(const std::string& url, const std::string& want_sha = "");

  // Where the mirror of `url` is (or would be) kept.
  std::string MirrorPath(const std::string& url) const;

  // Replaces the mirror of `url` with a fresh clone: for a mirror whose object store turned out
  // incomplete (a damaged disk, an interrupted copy). The old mirror is moved aside first and
  // removed once the clone is done, whether or not it succeeded (readers that still have its files
  // open keep them). `damaged_inode` is the inode of the mirror directory found damaged: when the
  // mirror is another directory by now (a concurrent caller cloned it again), nothing is done.
  // Errors: INVALID_ARGUMENT if `url` is a local directory (used in place, never mirrored); clone
  // failures as Prepare's; INTERNAL for disk errors.
  absl::Status Reclone(const std::string& url, ino_t damaged_inode);

 private:
  absl::Mutex* UrlMutex(const std::string& url);

  const std::string cache_dir_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<absl::Mutex>> url_mutexes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace farm

#endif  // FARM_COMMON_GIT_GIT_H_
