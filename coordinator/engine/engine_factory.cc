#include "coordinator/engine/engine_factory.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/engine/flaky_engine.h"
#include "coordinator/engine/git_engine.h"
#include "coordinator/engine/matrix_engine.h"
#include "coordinator/engine/probe_engine.h"
#include "coordinator/engine/two_dim_engine.h"
#include "coordinator/engine/verifying_engine.h"

namespace farm {

namespace {

absl::StatusOr<std::unique_ptr<BisectEngine>> CreateFlakyEngine(
    const farm::v1::BisectSpec& spec, std::shared_ptr<const CommitGraph> graph,
    const std::vector<CommitId>& skipped) {
  FlakyOptions fo;
  absl::Status st = ParseFlakyFlag(spec.flaky(), fo);
  if (!st.ok()) return absl::InvalidArgumentError(absl::StrCat("spec.flaky: ", st.message()));
  if (spec.confidence() != 0) fo.confidence = spec.confidence();
  fo.max_probes = spec.max_runs();
  FARM_RETURN_IF_ERROR(ValidateFlakyOptions(fo, graph.get()));
  FARM_ASSIGN_OR_RETURN(FlakyBisect bisect, FlakyBisect::Create(graph, fo));
  return std::make_unique<FlakyEngine>(std::move(bisect), std::move(graph), skipped,
                                       spec.flaky().rfind("learn", 0) == 0);
}

}  // namespace

absl::StatusOr<std::unique_ptr<BisectEngine>> CreateEngine(
    const farm::v1::BisectSpec& spec, std::shared_ptr<const CommitGraph> graph,
    const std::vector<CommitId>& skipped, std::unique_ptr<CulpritRepo> culprit_repo) {
  std::unique_ptr<BisectEngine> engine;
  // One line per job kind; the first whose spec field is set wins.
  if (spec.probe()) return std::make_unique<ProbeEngine>(std::move(graph));
  if (spec.has_matrix()) {
    FARM_ASSIGN_OR_RETURN(CellGrid grid, CellGrid::Create(spec.matrix(), *graph));
    if (spec.matrix().bisect()) return std::make_unique<TwoDimEngine>(std::move(grid), graph);
    return std::make_unique<MatrixEngine>(std::move(grid), std::move(graph));
  }
  if (!spec.flaky().empty()) {
    FARM_ASSIGN_OR_RETURN(engine, CreateFlakyEngine(spec, graph, skipped));
  } else {
    engine = std::make_unique<GitEngine>(graph, skipped);
  }
  // Decorators, each adding one concern around the kind's engine.
  if (spec.verify() > 0) {
    engine =
        std::make_unique<VerifyingEngine>(std::move(engine), std::move(graph),
                                          static_cast<int>(spec.verify()), std::move(culprit_repo));
  }
  return engine;
}

}  // namespace farm
