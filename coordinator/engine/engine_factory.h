// Which engine a job gets.
#ifndef FARM_COORDINATOR_ENGINE_ENGINE_FACTORY_H_
#define FARM_COORDINATOR_ENGINE_ENGINE_FACTORY_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/engine/culprit_repo.h"
#include "coordinator/engine/engine.h"

namespace farm {

// The engine for a resolved `spec` over `graph`, with `skipped` (the spec's skip revisions found
// in the graph) already marked. Errors: INVALID_ARGUMENT naming the spec field for options the
// engine rejects (e.g. "spec.flaky: ..."). With spec.verify, the engine is wrapped in a
// VerifyingEngine that uses `culprit_repo` (may be null: then no revert is tested).
absl::StatusOr<std::unique_ptr<BisectEngine>> CreateEngine(
    const farm::v1::BisectSpec& spec, std::shared_ptr<const CommitGraph> graph,
    const std::vector<CommitId>& skipped, std::unique_ptr<CulpritRepo> culprit_repo = nullptr);

}  // namespace farm

#endif  // FARM_COORDINATOR_ENGINE_ENGINE_FACTORY_H_
