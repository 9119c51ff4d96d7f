// CellGrid: the cells of a host x guest job (MatrixSpec) as commits of the job's graph, for the
// matrix and the two-dimensional engines. Each cell is one commit of the cells repository the
// client made (farm.proto, MatrixSpec), so the dispatcher, the store, reuse by tree and `farm log`
// treat cells as commits; the grid adds which host and guest a commit stands for.
//
// Thread safety: immutable after Create.
#ifndef FARM_COORDINATOR_ENGINE_CELL_GRID_H_
#define FARM_COORDINATOR_ENGINE_CELL_GRID_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "coordinator/engine/engine.h"
#include "coordinator/graph/commit_graph.h"
#include "farm/v1/farm.pb.h"

namespace farm {

struct Cell {
  int host = 0;
  int guest = 0;  // 0 in a host-only matrix
  bool operator==(const Cell& o) const { return host == o.host && guest == o.guest; }
};

class CellGrid {
 public:
  // INVALID_ARGUMENT when a cell's commit is not in `graph` (the spec does not describe the
  // repository it names).
  static absl::StatusOr<CellGrid> Create(const farm::v1::MatrixSpec& spec,
                                         const CommitGraph& graph);

  int hosts() const { return static_cast<int>(spec_.hosts_size()); }
  // Guest columns: at least 1 (a host-only matrix has one column without a guest).
  int guests() const { return std::max(1, spec_.guests_size()); }
  bool has_guests() const { return spec_.guests_size() > 0; }
  size_t size() const { return commits_.size(); }

  CommitId At(Cell c) const { return commits_[Index(c)]; }
  size_t Index(Cell c) const { return static_cast<size_t>(c.host * guests() + c.guest); }
  Cell CellAt(size_t index) const {
    return Cell{static_cast<int>(index) / guests(), static_cast<int>(index) % guests()};
  }
  // The cell `commit` stands for; nullopt for a commit that is no cell (the empty root).
  std::optional<Cell> CellOf(CommitId commit) const;

  // Records `verdict` for the cell of `commit` in `verdicts` (by Index, size() entries). Returns
  // the cell, or nullopt when `commit` is no cell or its cell was already decided.
  std::optional<Cell> Record(std::vector<std::optional<Verdict>>& verdicts, CommitId commit,
                             Verdict verdict) const;

  const farm::v1::HostKernel& Host(int h) const { return spec_.hosts(h); }
  // The host kernel of the cell `commit` stands for; null for a commit that is no cell.
  const farm::v1::HostKernel* HostOf(CommitId commit) const;
  // People's names: the HostKernel's label (else its image's file name), the guest's name.
  std::string HostName(int h) const;
  std::string GuestName(int g) const;

 private:
  farm::v1::MatrixSpec spec_;
  std::vector<CommitId> commits_;  // by Index
  absl::flat_hash_map<CommitId, size_t> index_of_;
};

// The verdicts of `job`'s finished tasks as a table, hosts down and guests across ("-" for a cell
// not tested), then one line per tested cell with its commit, for `farm log JOB COMMIT`.
std::string CellTable(const CellGrid& grid, const CommitGraph& graph, const JobText& job);

// The job's log: its verdicts in order, as comments (`git bisect replay` cannot express cells).
std::string CellLog(const JobText& job, const std::string& kind);

}  // namespace farm

#endif  // FARM_COORDINATOR_ENGINE_CELL_GRID_H_
