// PackCommits: the parent lists of the commits in a repository's pack files, read in one
// sequential pass over each pack (gitformat-pack(5)) instead of one object lookup per commit.
// Internal to CommitGraph::Load, for histories without a commit-graph file.
#ifndef FARM_COORDINATOR_GRAPH_PACK_COMMITS_H_
#define FARM_COORDINATOR_GRAPH_PACK_COMMITS_H_

#include <git2.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace farm {

// How far ParseCommitParents got.
enum class CommitParse {
  kDone,       // every parent line was read
  kNeedMore,   // `data` is a prefix of the object that ends inside the parent lines
  kMalformed,  // not "tree <hex>\n" first, or a parent line with a bad id
};

// Parses the parent lines of a raw commit object ("tree <40 hex>\nparent <40 hex>\n..."):
// appends the parents to `out`, first parent first. `whole` says `data` is the whole object;
// otherwise it is a prefix and kNeedMore asks for a longer one. Thread-safe.
CommitParse ParseCommitParents(absl::string_view data, bool whole, std::vector<git_oid>& out);

// The commits in the packs of one objects directory, with their parents: those stored whole
// (object type 1) and those stored as OFS_DELTA chains ending at a commit (rebuilt from their
// bases). A commit stored as a REF_DELTA, a loose commit, or one in a pack this reader skips
// is not here: callers read those by id (git_odb_read).
//
// Packs are skipped, with a Debug log saying why, when their index is not version 2, when
// they are promisor packs, or when either file is truncated or malformed. Alternates are not
// followed (logged). A commit in two packs is here twice.
// Thread safety: immutable after Scan.
class PackCommits {
 public:
  // Scans every <objects_dir>/pack/*.idx and its .pack with up to `threads` threads (>= 1).
  // Never fails: what cannot be read is left out.
  static PackCommits Scan(const std::string& objects_dir, int threads);

  // Number of commits found.
  size_t size() const { return oids_.size(); }
  // Object id of commit i (< size()).
  const git_oid& oid(size_t i) const { return oids_[i]; }
  // Parents of commit i (< size()), first parent first.
  absl::Span<const git_oid> parents(size_t i) const {
    return absl::MakeConstSpan(parents_.data() + begin_[i], begin_[i + 1] - begin_[i]);
  }
  // Flat views: all ids, all parent lists end to end, and where commit i's start (i <= size():
  // begin(size()) is the number of parent links).
  absl::Span<const git_oid> oids() const { return oids_; }
  absl::Span<const git_oid> all_parents() const { return parents_; }
  size_t begin(size_t i) const { return begin_[i]; }
  // Packs read and skipped.
  int packs_read() const { return packs_read_; }
  int packs_skipped() const { return packs_skipped_; }

 private:
  std::vector<git_oid> oids_;
  std::vector<size_t> begin_{0};  // parents of i: parents_[begin_[i], begin_[i + 1])
  std::vector<git_oid> parents_;
  int packs_read_ = 0;
  int packs_skipped_ = 0;
};

}  // namespace farm

#endif  // FARM_COORDINATOR_GRAPH_PACK_COMMITS_H_
