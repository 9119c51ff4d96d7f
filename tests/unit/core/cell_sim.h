// A simulated farm for host x guest engines (matrix, two-dimensional bisect): agents that kexec
// into a cell's host kernel when they are not already on it, tests of fixed durations, verdicts
// from a function of the cell. The dispatcher's host-kernel preference is reproduced (a free
// agent takes a planned cell of the host it runs when there is one). Used by the engine tests and
// bench/matrix_sim.
#ifndef FARM_TESTS_UNIT_CORE_CELL_SIM_H_
#define FARM_TESTS_UNIT_CORE_CELL_SIM_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/engine/cell_grid.h"
#include "coordinator/engine/engine.h"

namespace farm::cell_sim {

// A graph of `hosts * max(1, guests) + 1` commits (a root and one per cell) and the MatrixSpec
// whose cells are its commits, host-major.
struct Grid {
  std::shared_ptr<const CommitGraph> graph;
  farm::v1::MatrixSpec spec;
};
Grid MakeGrid(int hosts, int guests, bool bisect);

struct Options {
  int agents = 2;
  double test_seconds = 30;   // one cell's test
  double kexec_seconds = 16;  // switching an agent's host kernel
  // false: the naive order (cells guest-major, each free agent takes the next one, no host
  // preference) instead of the engine's plan; only for a matrix.
  bool engine_order = true;
};

struct Result {
  bool done = false;
  int tests = 0;  // cells started (cancelled ones included)
  int cancelled = 0;
  int kexecs = 0;                    // host kernel switches, over all agents
  int distinct_hosts_per_agent = 0;  // sum over agents of the distinct host kernels each ran
  double wall_seconds = 0;
};

// Commit texts for a report over a simulated grid: no subjects, no `git show`.
class NoTexts : public CommitTexts {
 public:
  const std::string& Subject(CommitId) override { return empty_; }
  std::optional<std::string> Show(CommitId) override { return std::nullopt; }

 private:
  std::string empty_;
};

// Runs `engine` (made over `grid`) until it is done or nothing is left to start.
Result Run(BisectEngine& engine, const CellGrid& grid, const std::function<Verdict(Cell)>& truth,
           const Options& options);

}  // namespace farm::cell_sim

#endif  // FARM_TESTS_UNIT_CORE_CELL_SIM_H_
