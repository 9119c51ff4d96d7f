#include "coordinator/engine/cell_grid.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "coordinator/engine/report_text.h"

namespace farm {

absl::StatusOr<CellGrid> CellGrid::Create(const farm::v1::MatrixSpec& spec,
                                          const CommitGraph& graph) {
  CellGrid grid;
  grid.spec_ = spec;
  for (int i = 0; i < spec.cells_size(); ++i) {
    std::optional<CommitId> id = graph.FindHex(spec.cells(i));
    if (!id) {
      return absl::InvalidArgumentError(
          absl::StrCat("spec.matrix.cells[", i, "] (", spec.cells(i),
                       ") is not a commit of the job's range: the cells repository and the "
                       "spec disagree; make the job again with farm matrix or farm bisect"));
    }
    grid.index_of_[*id] = grid.commits_.size();
    grid.commits_.push_back(*id);
  }
  return grid;
}

std::optional<Cell> CellGrid::CellOf(CommitId commit) const {
  auto it = index_of_.find(commit);
  if (it == index_of_.end()) return std::nullopt;
  return CellAt(it->second);
}

std::optional<Cell> CellGrid::Record(std::vector<std::optional<Verdict>>& verdicts, CommitId commit,
                                     Verdict verdict) const {
  std::optional<Cell> cell = CellOf(commit);
  if (!cell || verdicts[Index(*cell)].has_value()) return std::nullopt;
  verdicts[Index(*cell)] = verdict;
  return cell;
}

const farm::v1::HostKernel* CellGrid::HostOf(CommitId commit) const {
  std::optional<Cell> cell = CellOf(commit);
  return cell ? &spec_.hosts(cell->host) : nullptr;
}

std::string CellGrid::HostName(int h) const {
  const farm::v1::HostKernel& k = spec_.hosts(h);
  if (!k.label().empty()) return k.label();
  size_t slash = k.image().rfind('/');
  return slash == std::string::npos ? k.image() : k.image().substr(slash + 1);
}

std::string CellGrid::GuestName(int g) const {
  return has_guests() ? spec_.guests(g) : std::string("-");
}

std::string CellLog(const JobText& job, const std::string& kind) {
  std::string log =
      absl::StrCat("# ", kind, ": cells of host x guest kernels. The verdicts, in order:\n");
  for (const farm::v1::TaskSummary& t : job.finished) {
    if (t.state() != farm::v1::TASK_DONE) continue;
    absl::StrAppend(&log, "# ",
                    t.verdict() == farm::v1::BAD    ? "bad "
                    : t.verdict() == farm::v1::GOOD ? "good"
                                                    : "skip",
                    " ", t.commit(), " ", t.subject(), "\n");
  }
  return log;
}

std::string CellTable(const CellGrid& grid, const CommitGraph& graph, const JobText& job) {
  std::vector<std::string> word(grid.size(), "-");
  std::vector<std::string> line(grid.size());
  for (const farm::v1::TaskSummary& t : job.finished) {
    if (t.state() != farm::v1::TASK_DONE) continue;
    std::optional<CommitId> id = graph.FindHex(t.commit());
    std::optional<Cell> cell = id ? grid.CellOf(*id) : std::nullopt;
    if (!cell) continue;
    size_t i = grid.Index(*cell);
    word[i] = t.verdict() == farm::v1::GOOD  ? TermOld(job.spec)
              : t.verdict() == farm::v1::BAD ? TermNew(job.spec)
                                             : std::string("skip");
    line[i] = absl::StrCat(
        "  ", ShortSha(t.commit()), "  host ", grid.HostName(cell->host),
        grid.has_guests() ? absl::StrCat(" x guest ", grid.GuestName(cell->guest)) : std::string(),
        ": ", word[i], t.reused() ? " (reused)" : "", " on ", t.agent(), "\n");
  }
  size_t first = std::string(grid.has_guests() ? "host \\ guest" : "host").size();
  for (int h = 0; h < grid.hosts(); ++h) first = std::max(first, grid.HostName(h).size());
  std::vector<size_t> width(grid.guests());
  for (int g = 0; g < grid.guests(); ++g) {
    width[g] = std::max<size_t>(grid.GuestName(g).size(), 4);
    for (int h = 0; h < grid.hosts(); ++h) {
      width[g] = std::max(width[g], word[grid.Index({h, g})].size());
    }
  }
  std::string out = absl::StrFormat("%-*s", first, grid.has_guests() ? "host \\ guest" : "host");
  for (int g = 0; g < grid.guests(); ++g) {
    absl::StrAppendFormat(&out, "  %-*s", width[g], grid.has_guests() ? grid.GuestName(g) : "");
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  out += "\n";
  for (int h = 0; h < grid.hosts(); ++h) {
    std::string row = absl::StrFormat("%-*s", first, grid.HostName(h));
    for (int g = 0; g < grid.guests(); ++g) {
      absl::StrAppendFormat(&row, "  %-*s", width[g], word[grid.Index({h, g})]);
    }
    while (!row.empty() && row.back() == ' ') row.pop_back();
    absl::StrAppend(&out, row, "\n");
  }
  std::string cells;
  for (const std::string& l : line) cells += l;
  if (!cells.empty()) {
    absl::StrAppend(&out, "\nCells (farm log JOB COMMIT shows a cell's output):\n", cells);
  }
  return out;
}

}  // namespace farm
