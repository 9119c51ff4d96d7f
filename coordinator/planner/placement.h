// Placement: which free agent tests which planned commit.
//
// An agent keeps a worktree (and a build directory) at the commit it tested last; moving it to a
// commit whose tree differs in few files makes for a short incremental build. Given the commits
// PlanNext chose and where the free agents are, PlaceTasks pairs them so that the total cost of
// the moves is smallest.
#ifndef FARM_COORDINATOR_PLANNER_PLACEMENT_H_
#define FARM_COORDINATOR_PLANNER_PLACEMENT_H_

#include <git2.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/graph/commit_graph.h"

namespace farm {

// The cost of moving an agent's worktree from `from` (nullopt: an empty worktree, i.e. a fresh
// checkout and a full build) to `to`. Must be finite and >= 0.
using MoveCost = std::function<double(std::optional<CommitId> from, CommitId to)>;

// Returns, for each of `commits` (most useful first, as Plan::start), the index into
// `agent_positions` of the free agent that should test it, or -1 when there are more commits
// than agents (the least useful ones are left out). Each agent gets at most one commit. The
// assignment minimises the total cost over the min(commits, agents) most useful commits: exact
// (Hungarian algorithm) when commits^2 * agents <= 5e7, otherwise greedy by cheapest pair.
// `cost` is called exactly once per (placed commit, agent) pair; ties keep the given orders.
// Thread safety: pure, apart from what `cost` does.
std::vector<int> PlaceTasks(const std::vector<CommitId>& commits,
                            const std::vector<std::optional<CommitId>>& agent_positions,
                            const MoveCost& cost);

// The number of paths whose entries differ between the trees of commits `from` and `to`
// (`git diff --name-only from to | wc -l`; no rename detection, file contents are not read).
// Errors: NOT_FOUND if either commit is missing; other libgit2 failures (see GitError).
// Uses `repo` from the calling thread only.
absl::StatusOr<size_t> ChangedFileCount(git_repository* repo, const git_oid& from,
                                        const git_oid& to);

// A MoveCost for commits of `graph` in `repo`: ChangedFileCount between the two commits (0 for
// the same commit), and for an empty worktree the number of files in the target's tree. Results
// are memoised inside the returned function; a commit that cannot be read costs
// `unknown_cost`. The function keeps `graph` alive but not `repo`, which must outlive it; use it
// from one thread at a time.
MoveCost TreeDiffCost(git_repository* repo, std::shared_ptr<const CommitGraph> graph,
                      double unknown_cost = 1e9);

}  // namespace farm

#endif  // FARM_COORDINATOR_PLANNER_PLACEMENT_H_
