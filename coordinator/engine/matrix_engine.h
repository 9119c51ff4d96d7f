// MatrixEngine: every cell of host kernels x guest kernels, once (issue 11, "Matrix jobs").
#ifndef FARM_COORDINATOR_ENGINE_MATRIX_ENGINE_H_
#define FARM_COORDINATOR_ENGINE_MATRIX_ENGINE_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/engine/cell_grid.h"
#include "coordinator/engine/engine.h"

namespace farm {

// Tests each cell once and ends COMPLETE with the table in its report. Plans cells grouped by
// host kernel, so that an agent that switched its machine to a host kernel (kexec) stays on it:
// first the cells of the host whose cell finished last (its agent is the one now free), then those
// of hosts no agent runs (the host with most cells left first), then the rest. The dispatcher
// adds the other half: it gives a cell to a free agent already running its host kernel.
class MatrixEngine : public BisectEngine {
 public:
  MatrixEngine(CellGrid grid, std::shared_ptr<const CommitGraph> graph);

  bool Observe(CommitId commit, Verdict verdict) override;
  std::vector<CommitId> Plan(size_t k, const std::vector<CommitId>& in_flight) override;
  std::optional<CancelReason> ShouldCancel(CommitId commit) const override;
  bool Done() const override { return tested_ == grid_.size(); }
  EngineAnswer Answer() const override;
  double Confidence() const override { return 0; }
  EngineProgress Progress(size_t k) const override;
  bool ReusesVerdicts() const override { return true; }
  std::string BisectLog(const JobText& job) const override;
  std::string Report(const JobText& job) const override;
  const farm::v1::HostKernel* HostKernelOf(CommitId commit) const override {
    return grid_.HostOf(commit);
  }

 private:
  CellGrid grid_;
  std::shared_ptr<const CommitGraph> graph_;
  std::vector<std::optional<Verdict>> verdicts_;  // by cell index
  size_t tested_ = 0;
  int last_host_ = -1;  // host of the cell whose verdict came last
};

}  // namespace farm

#endif  // FARM_COORDINATOR_ENGINE_MATRIX_ENGINE_H_
