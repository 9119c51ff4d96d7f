// Job intake: what a submission needs before it touches the job table. Nothing here takes the
// coordinator's lock; resolving revisions and loading a large graph can take seconds.
#ifndef FARM_COORDINATOR_SCHEDULER_JOB_INTAKE_H_
#define FARM_COORDINATOR_SCHEDULER_JOB_INTAKE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/git/git.h"
#include "coordinator/engine/engine.h"
#include "coordinator/planner/placement.h"
#include "coordinator/scheduler/job.h"
#include "farm/v1/farm.pb.h"

namespace farm {

// Validates `spec` (common/spec: a coordinator trusts no client), then resolves its revisions to
// full commit ids in the repository (mirrored into `cache` when remote). A zero recipe timeout
// becomes `default_timeout`. That every good commit is an ancestor of the bad one is checked by
// LoadJob (with `check_ancestry`), which learns it from loading the graph. Errors:
// INVALID_ARGUMENT with what to change (good and bad the same commit, a revision that searches
// commit messages, ...); NOT_FOUND for an unknown revision; the repository's errors (see
// RepoCache::Prepare).
absl::StatusOr<farm::v1::BisectSpec> ResolveSpec(farm::v1::BisectSpec spec, RepoCache& cache,
                                                 uint32_t default_timeout);

// What a running job needs from its repository.
struct LoadedJob {
  GitRepository repo;
  std::shared_ptr<const CommitGraph> graph;
  std::unique_ptr<BisectEngine> engine;
  MoveCost move_cost;         // uses `repo`, which must outlive it
  std::string recipe_digest;  // SHA-256 of the deterministically serialized recipe, hex
};

// The revisions as the user named them (before ResolveSpec), for LoadJob's messages.
struct RevisionNames {
  std::string bad;
  std::vector<std::string> good;
};

// Opens the repository of a resolved spec, loads the graph good..bad, and creates the engine
// for the job's kind. With `check_ancestry` (a new submission), first checks that every good
// commit is an ancestor of the bad one. Errors: the repository's; INVALID_ARGUMENT for a good
// commit that is not an ancestor of bad (swapped, or diverging branches: says which, with the
// names given), an empty range or options the engine rejects.
absl::StatusOr<LoadedJob> LoadJob(const farm::v1::BisectSpec& spec, RepoCache& cache,
                                  const RevisionNames* check_ancestry = nullptr);

// Moves what was loaded into the job's record.
void AttachLoaded(LoadedJob loaded, Job& job);

}  // namespace farm

#endif  // FARM_COORDINATOR_SCHEDULER_JOB_INTAKE_H_
