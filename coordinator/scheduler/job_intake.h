// Job intake: what a submission needs before it touches the job table. Nothing here takes the
// coordinator's lock; resolving revisions and loading a large graph can take seconds.
#ifndef FARM_COORDINATOR_SCHEDULER_JOB_INTAKE_H_
#define FARM_COORDINATOR_SCHEDULER_JOB_INTAKE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/git/git.h"
#include "coordinator/engine/engine.h"
#include "coordinator/planner/placement.h"
#include "coordinator/scheduler/job.h"
#include "farm/v1/farm.pb.h"

namespace farm {

// Validates `spec` (common/spec: a coordinator trusts no client), then resolves its revisions to
// full commit ids in the repository (mirrored into `cache` when remote) and checks that every
// good commit is an ancestor of the bad one. A zero recipe timeout becomes `default_timeout`.
// Errors: INVALID_ARGUMENT with what to change (a swapped pair, diverging branches, a revision
// that searches commit messages, ...); NOT_FOUND for an unknown revision; the repository's
// errors (see RepoCache::Prepare).
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

// Opens the repository of a resolved spec, loads the graph good..bad, and creates the engine
// for the job's kind. Errors: the repository's; INVALID_ARGUMENT for an empty range or options
// the engine rejects.
absl::StatusOr<LoadedJob> LoadJob(const farm::v1::BisectSpec& spec, RepoCache& cache);

// Moves what was loaded into the job's record.
void AttachLoaded(LoadedJob loaded, Job& job);

}  // namespace farm

#endif  // FARM_COORDINATOR_SCHEDULER_JOB_INTAKE_H_
