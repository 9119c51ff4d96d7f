// CommitGraph: the commits of one bisect range, with dense ids in topological order.
//
// A CommitGraph is immutable once built, so it is shared (std::shared_ptr<const CommitGraph>)
// between the Frontier, the planner and its hypothetical copies. It keeps no libgit2 objects:
// only object ids and a flat parent table (about 28 bytes per commit plus 4 per parent link).
#ifndef FARM_COORDINATOR_GRAPH_COMMIT_GRAPH_H_
#define FARM_COORDINATOR_GRAPH_COMMIT_GRAPH_H_

#include <git2.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace farm {

// Dense id of a commit inside one CommitGraph: an index, 0 <= id < size().
using CommitId = uint32_t;

class CommitGraphFile;

// How CommitGraph::Load reads the history.
struct GraphLoadOptions {
  // Read parents from git's commit-graph file (objects/info/commit-graph or a split chain)
  // when the repository has one and no grafts, replace refs or shallow boundary; commits the
  // file lacks (newer than it), or all of them when there is no file, are read straight from
  // the object database (about 60 bytes held per commit, libgit2's object cache bypassed).
  // Much faster than a libgit2 revision walk, with the same result. false: libgit2's revision
  // walk, as with grafts, replace refs or a shallow boundary (for comparisons).
  bool use_commit_graph_file = true;
  // Commits the file lacks are first read one by one by id; once this many have been, every
  // pack's commits are read in one sequential pass instead (PackCommits: ~10x faster a commit
  // on a big history, costs a pass over the packs on a small one). 0 scans at the first
  // commit the file lacks; SIZE_MAX never scans.
  size_t scan_packs_after = 4096;
};

// What CommitGraph::Load did (for `farm next --timing` and benchmarks).
struct GraphLoadInfo {
  bool used_commit_graph_file = false;
  // Commits read and parsed from the object database: by id, plus every commit a pass over
  // the packs found (reachable or not, see GraphLoadOptions::scan_packs_after).
  size_t commits_from_objects = 0;
  size_t commits_from_pack_scan = 0;  // of those, the ones from the pass over the packs
  // Which goods are ancestors of bad (as `git merge-base --is-ancestor good bad`), by index into
  // `good`, when Load could tell at no extra cost (always with the commit-graph file; with the
  // revision walk when every good is a parent of a commit in the range); empty otherwise.
  std::vector<bool> good_is_ancestor;
};

// The bisect range `git rev-list [--first-parent] bad --not good...` as a DAG.
//
// Ids are topological: every in-range parent of a commit has a smaller id than the commit, and
// the bad commit is the last id. Parents outside the range are dropped.
//
// Thread safety: immutable after construction; all methods are safe to call concurrently.
class CommitGraph {
 public:
  // Loads the commits reachable from `bad` and not reachable from any of `good`: exactly
  // `git rev-list bad --not good...`, or with `first_parent` exactly
  // `git rev-list --first-parent bad --not good...` (the goods still hide their whole ancestry,
  // as in git; only the first-parent link of each commit is kept).
  //
  // Goods need not be ancestors of bad (git bisect would test merge bases first; that check is
  // the caller's). When bad is reachable from a good the range is empty and an empty graph
  // (size() == 0) is returned: callers must check size() before using bad().
  //
  // Errors: any libgit2 failure (e.g. NOT_FOUND for a missing object, INTERNAL for a corrupt
  // repository) as an absl::Status carrying the git error message.
  // `repo` is only used during the call; libgit2 must be initialised by the caller.
  static absl::StatusOr<std::shared_ptr<const CommitGraph>> Load(git_repository* repo,
                                                                 const git_oid& bad,
                                                                 const std::vector<git_oid>& good,
                                                                 bool first_parent);

  // As above, with options; `info` (may be null) receives how it was loaded. Ids are in a
  // topological order either way, but which one may differ between the two ways of reading.
  static absl::StatusOr<std::shared_ptr<const CommitGraph>> Load(
      git_repository* repo, const git_oid& bad, const std::vector<git_oid>& good, bool first_parent,
      const GraphLoadOptions& options, GraphLoadInfo* info);

  // Builds a graph directly (for tests and benchmarks). `parents[i]` lists the in-range parents
  // of commit i, first parent first; each must be < i. `oids[i]` is the object id of commit i;
  // ids must be distinct. Aborts the process on malformed input (a programming error).
  static std::shared_ptr<const CommitGraph> FromParents(std::vector<git_oid> oids,
                                                        std::vector<std::vector<CommitId>> parents);

  CommitGraph(const CommitGraph&) = delete;
  CommitGraph& operator=(const CommitGraph&) = delete;

  // Number of commits in the range.
  size_t size() const { return oids_.size(); }

  // The object id of commit `id` (id < size()).
  const git_oid& oid(CommitId id) const { return oids_[id]; }

  // The 40-character lowercase hex sha of commit `id` (id < size()).
  std::string Hex(CommitId id) const;

  // The in-range parents of `id` (id < size()), first parent first. Every entry is < id.
  absl::Span<const CommitId> parents(CommitId id) const {
    return absl::MakeConstSpan(parent_ids_.data() + parent_offsets_[id],
                               parent_offsets_[id + 1] - parent_offsets_[id]);
  }

  // The id of the commit with object id `oid`, or nullopt when it is not in the range.
  // O(log size()).
  std::optional<CommitId> Find(const git_oid& oid) const;

  // As Find, from a full 40-character hex sha (either case). Abbreviated, malformed or
  // out-of-range shas give nullopt.
  std::optional<CommitId> FindHex(std::string_view sha) const;

  // The bad commit: the last id. Only meaningful when size() > 0.
  CommitId bad() const { return static_cast<CommitId>(size() - 1); }

 private:
  CommitGraph() = default;
  // Fills by_oid_ from oids_.
  void BuildIndex();
  // The two ways Load reads the history.
  static absl::StatusOr<std::shared_ptr<const CommitGraph>> LoadWithRevwalk(
      git_repository* repo, const git_oid& bad, const std::vector<git_oid>& good, bool first_parent,
      GraphLoadInfo* info);
  static absl::StatusOr<std::shared_ptr<const CommitGraph>> LoadWithFile(
      git_repository* repo, const CommitGraphFile& file, const git_oid& bad,
      const std::vector<git_oid>& good, bool first_parent, const GraphLoadOptions& options,
      GraphLoadInfo* info);

  std::vector<git_oid> oids_;             // by id
  std::vector<uint32_t> parent_offsets_;  // size() + 1 entries into parent_ids_
  std::vector<CommitId> parent_ids_;      // flat parent lists
  std::vector<CommitId> by_oid_;          // ids sorted by oid, for Find
};

}  // namespace farm

#endif  // FARM_COORDINATOR_GRAPH_COMMIT_GRAPH_H_
