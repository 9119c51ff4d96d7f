// TwoDimEngine: a two-dimensional bisect over host kernels x guest kernels (issue 11).
#ifndef FARM_COORDINATOR_ENGINE_TWO_DIM_ENGINE_H_
#define FARM_COORDINATOR_ENGINE_TWO_DIM_ENGINE_H_

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "coordinator/engine/cell_grid.h"
#include "coordinator/engine/engine.h"

namespace farm {

// Where the change lies, as the corners tell it. With the oldest host/guest good and the newest
// both bad: host-only when the newest host is bad with the oldest guest (and the newest guest
// good with the oldest host), guest-only the other way round, both when both are bad, and an
// interaction when both are good (bad only when host and guest are both new enough).
enum class TwoDimShape {
  kUnknown,  // the corners are not known yet
  kHostOnly,
  kGuestOnly,
  kBoth,
  kInteraction,
  kUntestable,  // a corner that decides the shape was skipped
  kNoChange,    // the oldest pair is bad or the newest good: the range contradicts itself
};

// Tests the four corners (the two that decide the shape first), then bisects each dimension that
// matters with the other held fixed: host-only along the hosts on the oldest guest; guest-only
// along the guests on the oldest host; both: both of those; an interaction: the hosts on the
// newest guest and the guests on the newest host. The lines run at once, each k-sected over the
// probes in flight (the largest gap of untested cells is split first), and a verdict cancels the
// running probes of its line that it ruled out. FOUND names the culprit cell of each line (host
// line first); AMBIGUOUS when skips leave several on a line.
class TwoDimEngine : public BisectEngine {
 public:
  TwoDimEngine(CellGrid grid, std::shared_ptr<const CommitGraph> graph);

  bool Observe(CommitId commit, Verdict verdict) override;
  std::vector<CommitId> Plan(size_t k, const std::vector<CommitId>& in_flight) override;
  std::optional<CancelReason> ShouldCancel(CommitId commit) const override;
  bool Done() const override;
  EngineAnswer Answer() const override;
  double Confidence() const override { return 0; }
  EngineProgress Progress(size_t k) const override;
  bool ReusesVerdicts() const override { return true; }
  std::string BisectLog(const JobText& job) const override;
  std::string Report(const JobText& job) const override;
  const farm::v1::HostKernel* HostKernelOf(CommitId commit) const override {
    return grid_.HostOf(commit);
  }

  TwoDimShape shape() const { return shape_; }
  // The first bad host / guest index found (nullopt when that dimension was not bisected or is
  // ambiguous).
  std::optional<int> first_bad_host() const;
  std::optional<int> first_bad_guest() const;

 private:
  // One dimension bisected with the other fixed: cells (i, fixed) along the hosts, or
  // (fixed, i) along the guests; `lo` is known good, `hi` known bad.
  struct Line {
    bool along_host = true;
    int fixed = 0;
    int lo = 0, hi = 0;
    std::set<int> skipped;
    Cell At(int i) const { return along_host ? Cell{i, fixed} : Cell{fixed, i}; }
    // Where `c` is on this line, or -1.
    int IndexOf(Cell c) const;
    // Indices in (lo, hi) not skipped and not in `exclude`.
    std::vector<int> Open(const std::set<int>& exclude) const;
    bool Done() const { return Open({}).empty(); }
    bool Exact() const { return Done() && skipped.empty(); }
  };

  Cell HostNew() const { return {grid_.hosts() - 1, 0}; }
  Cell GuestNew() const { return {0, grid_.guests() - 1}; }
  Cell Newest() const { return {grid_.hosts() - 1, grid_.guests() - 1}; }
  std::vector<Cell> Corners() const { return {HostNew(), GuestNew(), {0, 0}, Newest()}; }
  bool IsCorner(Cell c) const;
  std::optional<Verdict> At(Cell c) const { return verdicts_[grid_.Index(c)]; }
  void Apply(Line& line, Cell c, Verdict v);
  void DecideShape();
  const Line* LineAlong(bool along_host) const;
  std::string Sentence() const;

  CellGrid grid_;
  std::shared_ptr<const CommitGraph> graph_;
  std::vector<std::optional<Verdict>> verdicts_;  // by cell index
  TwoDimShape shape_ = TwoDimShape::kUnknown;
  std::vector<Line> lines_;
};

}  // namespace farm

#endif  // FARM_COORDINATOR_ENGINE_TWO_DIM_ENGINE_H_
