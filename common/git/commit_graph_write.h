// Keeping git's commit-graph file in the mirrors the farm clones and fetches, so that loading a
// bisect range of a big history (CommitGraph::Load) reads parent lists from one memory-mapped
// file instead of decompressing every commit object.
#ifndef FARM_COMMON_GIT_COMMIT_GRAPH_WRITE_H_
#define FARM_COMMON_GIT_COMMIT_GRAPH_WRITE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace farm {

// Runs `git --git-dir=GIT_DIR commit-graph write --reachable --split` (libgit2 cannot write the
// file): every commit reachable from a ref, as a chain of layers that a later call after a fetch
// extends with a small new layer instead of rewriting the whole file.
// Errors: NOT_FOUND if the git CLI is not installed; DEADLINE_EXCEEDED after `timeout`;
// INTERNAL with git's output if it fails. Any of them only costs speed: readers fall back to the
// objects for commits the file lacks.
// Thread safety: git locks the file itself; callers serialise per repository anyway (RepoCache).
absl::Status WriteCommitGraph(const std::string& git_dir,
                              absl::Duration timeout = absl::Minutes(10));

}  // namespace farm

#endif  // FARM_COMMON_GIT_COMMIT_GRAPH_WRITE_H_
