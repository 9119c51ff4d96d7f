#include "coordinator/engine/matrix_engine.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "coordinator/engine/report_text.h"

namespace farm {

MatrixEngine::MatrixEngine(CellGrid grid, std::shared_ptr<const CommitGraph> graph)
    : grid_(std::move(grid)), graph_(std::move(graph)), verdicts_(grid_.size()) {}

bool MatrixEngine::Observe(CommitId commit, Verdict verdict) {
  std::optional<Cell> cell = grid_.Record(verdicts_, commit, verdict);
  if (!cell) return false;
  ++tested_;
  last_host_ = cell->host;
  return true;
}

std::vector<CommitId> MatrixEngine::Plan(size_t k, const std::vector<CommitId>& in_flight) {
  std::set<size_t> running;
  std::vector<int> running_per_host(grid_.hosts(), 0);
  for (CommitId c : in_flight) {
    if (std::optional<Cell> cell = grid_.CellOf(c)) {
      running.insert(grid_.Index(*cell));
      ++running_per_host[cell->host];
    }
  }
  // Cells left to start, per host.
  std::vector<std::vector<size_t>> left(grid_.hosts());
  for (size_t i = 0; i < grid_.size(); ++i) {
    if (!verdicts_[i].has_value() && !running.count(i)) left[grid_.CellAt(i).host].push_back(i);
  }
  // Host order: the one whose agent just became free, then hosts nobody runs (most cells left
  // first: a long group is worth an agent of its own), then hosts already running elsewhere.
  std::vector<int> order;
  for (int h = 0; h < grid_.hosts(); ++h) {
    if (h != last_host_ && !left[h].empty()) order.push_back(h);
  }
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    bool ra = running_per_host[a] > 0, rb = running_per_host[b] > 0;
    if (ra != rb) return !ra;
    return left[a].size() > left[b].size();
  });
  if (last_host_ >= 0 && !left[last_host_].empty()) order.insert(order.begin(), last_host_);
  // One cell of each host first, so that k free agents take k different hosts, then the rest.
  std::vector<CommitId> plan;
  for (size_t round = 0; plan.size() < k; ++round) {
    bool any = false;
    for (int h : order) {
      if (round < left[h].size() && plan.size() < k) {
        plan.push_back(grid_.At(grid_.CellAt(left[h][round])));
        any = true;
      }
    }
    if (!any) break;
  }
  return plan;
}

std::optional<CancelReason> MatrixEngine::ShouldCancel(CommitId commit) const {
  std::optional<Cell> cell = grid_.CellOf(commit);
  if (cell && verdicts_[grid_.Index(*cell)].has_value()) return CancelReason::kRuledOut;
  return std::nullopt;
}

EngineAnswer MatrixEngine::Answer() const {
  EngineAnswer a;
  if (Done()) a.state = farm::v1::COMPLETE;
  return a;
}

EngineProgress MatrixEngine::Progress(size_t k) const {
  EngineProgress p;
  p.candidates = grid_.size() - tested_;
  p.testable = p.candidates;
  size_t per_round = std::max<size_t>(k, 1);
  p.rounds_left = static_cast<int>((p.candidates + per_round - 1) / per_round);
  return p;
}

std::string MatrixEngine::BisectLog(const JobText& job) const { return CellLog(job, "matrix"); }

std::string MatrixEngine::Report(const JobText& job) const {
  std::string report;
  if (job.state != farm::v1::COMPLETE) report = EndedWithoutAnswer(job);
  absl::StrAppend(&report, "matrix of ", grid_.hosts(), " host",
                  grid_.has_guests() ? absl::StrCat(" x ", grid_.guests(), " guest") : "",
                  " kernels: ", tested_, " of ", grid_.size(), " cells tested\n\n");
  absl::StrAppend(&report, CellTable(grid_, *graph_, job));
  AppendTaskNotes(job, &report);
  return report;
}

}  // namespace farm
