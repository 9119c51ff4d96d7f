#include "coordinator/engine/two_dim_engine.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "coordinator/engine/report_text.h"

namespace farm {

int TwoDimEngine::Line::IndexOf(Cell c) const {
  if (along_host) return c.guest == fixed ? c.host : -1;
  return c.host == fixed ? c.guest : -1;
}

std::vector<int> TwoDimEngine::Line::Open(const std::set<int>& exclude) const {
  std::vector<int> out;
  for (int i = lo + 1; i < hi; ++i) {
    if (!skipped.count(i) && !exclude.count(i)) out.push_back(i);
  }
  return out;
}

TwoDimEngine::TwoDimEngine(CellGrid grid, std::shared_ptr<const CommitGraph> graph)
    : grid_(std::move(grid)), graph_(std::move(graph)), verdicts_(grid_.size()) {}

bool TwoDimEngine::IsCorner(Cell c) const {
  for (Cell k : Corners()) {
    if (k == c) return true;
  }
  return false;
}

void TwoDimEngine::Apply(Line& line, Cell c, Verdict v) {
  int i = line.IndexOf(c);
  if (i <= line.lo || i >= line.hi) return;
  if (v == Verdict::kGood) {
    line.lo = i;
  } else if (v == Verdict::kBad) {
    line.hi = i;
  } else {
    line.skipped.insert(i);
  }
}

bool TwoDimEngine::Observe(CommitId commit, Verdict verdict) {
  std::optional<Cell> cell = grid_.Record(verdicts_, commit, verdict);
  if (!cell) return false;
  if (shape_ == TwoDimShape::kUnknown) {
    DecideShape();
  } else {
    for (Line& line : lines_) Apply(line, *cell, verdict);
  }
  // The ends of the range contradict it whenever they are known, whatever the shape.
  if ((At({0, 0}) == Verdict::kBad) || (At(Newest()) == Verdict::kGood)) {
    shape_ = TwoDimShape::kNoChange;
    lines_.clear();
  }
  return true;
}

void TwoDimEngine::DecideShape() {
  std::optional<Verdict> host_new = At(HostNew()), guest_new = At(GuestNew());
  if (!host_new || !guest_new) return;
  if (*host_new == Verdict::kSkip || *guest_new == Verdict::kSkip) {
    shape_ = TwoDimShape::kUntestable;
    return;
  }
  const bool host_bad = *host_new == Verdict::kBad, guest_bad = *guest_new == Verdict::kBad;
  const int hosts = grid_.hosts(), guests = grid_.guests();
  Line along_host{true, 0, 0, hosts - 1, {}};
  Line along_guest{false, 0, 0, guests - 1, {}};
  if (host_bad && !guest_bad) {
    shape_ = TwoDimShape::kHostOnly;
    lines_ = {along_host};
  } else if (guest_bad && !host_bad) {
    shape_ = TwoDimShape::kGuestOnly;
    lines_ = {along_guest};
  } else if (host_bad && guest_bad) {
    shape_ = TwoDimShape::kBoth;
    lines_ = {along_host, along_guest};
  } else {
    shape_ = TwoDimShape::kInteraction;
    along_host.fixed = guests - 1;  // the hosts on the newest guest
    along_guest.fixed = hosts - 1;  // the guests on the newest host
    lines_ = {along_host, along_guest};
  }
  // Verdicts that came before the shape was known (reused ones) count on their lines.
  for (Line& line : lines_) {
    for (size_t i = 0; i < grid_.size(); ++i) {
      if (verdicts_[i]) Apply(line, grid_.CellAt(i), *verdicts_[i]);
    }
  }
}

std::vector<CommitId> TwoDimEngine::Plan(size_t k, const std::vector<CommitId>& in_flight) {
  std::vector<CommitId> plan;
  if (Done()) return plan;
  std::set<size_t> running;
  for (CommitId c : in_flight) {
    if (std::optional<Cell> cell = grid_.CellOf(c)) running.insert(grid_.Index(*cell));
  }
  for (Cell c : Corners()) {
    size_t i = grid_.Index(c);
    if (plan.size() < k && !verdicts_[i] && !running.count(i)) {
      plan.push_back(grid_.At(c));
      running.insert(i);
    }
  }
  // Each line's probes, best first: split the gap (between known ends and probes in flight) with
  // the most open cells at its middle, again and again.
  std::vector<std::vector<Cell>> wanted(lines_.size());
  for (size_t l = 0; l < lines_.size(); ++l) {
    const Line& line = lines_[l];
    std::set<int> taken;
    for (size_t i : running) {
      int at = line.IndexOf(grid_.CellAt(i));
      if (at > line.lo && at < line.hi) taken.insert(at);
    }
    while (wanted[l].size() < k) {
      std::vector<int> points(taken.begin(), taken.end());
      points.insert(points.begin(), line.lo);
      points.push_back(line.hi);
      std::vector<int> best;
      for (size_t p = 0; p + 1 < points.size(); ++p) {
        std::vector<int> gap;
        for (int i : line.Open(taken)) {
          if (i > points[p] && i < points[p + 1]) gap.push_back(i);
        }
        if (gap.size() > best.size()) best = gap;
      }
      if (best.empty()) break;
      int pick = best[best.size() / 2];
      taken.insert(pick);
      wanted[l].push_back(line.At(pick));
    }
  }
  // Round-robin over the lines, so that both dimensions run at once on different agents.
  for (size_t round = 0; plan.size() < k; ++round) {
    bool any = false;
    for (const std::vector<Cell>& w : wanted) {
      if (round < w.size() && plan.size() < k) {
        plan.push_back(grid_.At(w[round]));
        any = true;
      }
    }
    if (!any) break;
  }
  return plan;
}

std::optional<CancelReason> TwoDimEngine::ShouldCancel(CommitId commit) const {
  std::optional<Cell> cell = grid_.CellOf(commit);
  if (!cell || IsCorner(*cell) || shape_ == TwoDimShape::kUnknown) return std::nullopt;
  for (const Line& line : lines_) {
    int i = line.IndexOf(*cell);
    if (i > line.lo && i < line.hi) return std::nullopt;
  }
  return CancelReason::kRuledOut;
}

bool TwoDimEngine::Done() const {
  if (shape_ == TwoDimShape::kNoChange) return true;
  if (shape_ == TwoDimShape::kUnknown) return false;
  for (Cell c : Corners()) {
    if (!At(c)) return false;
  }
  for (const Line& line : lines_) {
    if (!line.Done()) return false;
  }
  return true;
}

EngineAnswer TwoDimEngine::Answer() const {
  EngineAnswer a;
  if (!Done()) return a;
  if (shape_ == TwoDimShape::kNoChange) {
    a.state = farm::v1::FAILED;
    a.error = Sentence();
    return a;
  }
  a.state = shape_ == TwoDimShape::kUntestable ? farm::v1::AMBIGUOUS : farm::v1::FOUND;
  for (const Line& line : lines_) {
    if (!line.Exact()) a.state = farm::v1::AMBIGUOUS;
    for (int i : line.skipped) {
      if (i > line.lo && i < line.hi) a.commits.push_back(grid_.At(line.At(i)));
    }
    a.commits.push_back(grid_.At(line.At(line.hi)));
  }
  return a;
}

const TwoDimEngine::Line* TwoDimEngine::LineAlong(bool along_host) const {
  for (const Line& line : lines_) {
    if (line.along_host == along_host) return &line;
  }
  return nullptr;
}

std::optional<int> TwoDimEngine::first_bad_host() const {
  const Line* line = LineAlong(true);
  if (line == nullptr || !line->Exact()) return std::nullopt;
  return line->hi;
}

std::optional<int> TwoDimEngine::first_bad_guest() const {
  const Line* line = LineAlong(false);
  if (line == nullptr || !line->Exact()) return std::nullopt;
  return line->hi;
}

EngineProgress TwoDimEngine::Progress(size_t k) const {
  EngineProgress p;
  size_t widest = 0;
  if (shape_ == TwoDimShape::kUnknown) {
    p.candidates = grid_.hosts() + grid_.guests();
    widest = std::max(grid_.hosts(), grid_.guests());
  }
  for (const Line& line : lines_) {
    size_t open = line.Open({}).size();
    p.candidates += open + 1;
    p.testable += open;
    widest = std::max(widest, open + 1);
  }
  if (shape_ == TwoDimShape::kUnknown) p.testable = p.candidates;
  if (widest > 1) {
    p.rounds_left = static_cast<int>(
        std::ceil(std::log(static_cast<double>(widest)) / std::log(static_cast<double>(k + 1))));
  }
  return p;
}

std::string TwoDimEngine::BisectLog(const JobText& job) const {
  return CellLog(job, "two-dimensional bisect");
}

std::string TwoDimEngine::Sentence() const {
  std::optional<int> x = first_bad_host(), y = first_bad_guest();
  std::string host = x ? grid_.HostName(*x) : "?";
  std::string guest = y ? grid_.GuestName(*y) : "?";
  switch (shape_) {
    case TwoDimShape::kHostOnly:
      return absl::StrCat("bad with host >= ", host, " whatever the guest (the newest guest is ",
                          "good on the oldest host): the change is in the host range");
    case TwoDimShape::kGuestOnly:
      return absl::StrCat("bad with guest >= ", guest, " whatever the host (the newest host is ",
                          "good with the oldest guest): the change is in the guest range");
    case TwoDimShape::kBoth:
      return absl::StrCat("bad with host >= ", host, " (on the oldest guest) and, on its own, ",
                          "with guest >= ", guest,
                          " (on the oldest host): each range has a change");
    case TwoDimShape::kInteraction:
      return absl::StrCat("bad only with host >= ", host, " and guest >= ", guest,
                          " (an interaction: neither alone is bad)");
    case TwoDimShape::kUntestable:
      return "a corner that decides where the change lies was skipped: nothing can be said";
    case TwoDimShape::kNoChange:
      return At({0, 0}) == Verdict::kBad
                 ? "the oldest host with the oldest guest is already bad: give older kernels"
                 : "the newest host with the newest guest is good: give newer kernels";
    case TwoDimShape::kUnknown:
      break;
  }
  return "the corners are not known yet";
}

std::string TwoDimEngine::Report(const JobText& job) const {
  std::string report;
  if (job.state == farm::v1::CANCELLED ||
      (job.state == farm::v1::FAILED && shape_ != TwoDimShape::kNoChange)) {
    report = EndedWithoutAnswer(job);
  }
  size_t tested = 0;
  for (const auto& v : verdicts_) tested += v.has_value();
  absl::StrAppend(&report, "two-dimensional bisect of ", grid_.hosts(), " host x ", grid_.guests(),
                  " guest kernels: ", tested, " of ", grid_.size(), " cells tested\n", Sentence(),
                  "\n");
  for (const Line& line : lines_) {
    const char* dim = line.along_host ? "host" : "guest";
    std::string fixed = line.along_host ? absl::StrCat("guest ", grid_.GuestName(line.fixed))
                                        : absl::StrCat("host ", grid_.HostName(line.fixed));
    CommitId culprit = grid_.At(line.At(line.hi));
    if (line.Exact()) {
      absl::StrAppend(&report, "\n", dim, ": ", graph_->Hex(culprit), " is the first ",
                      TermNew(job.spec), " commit\n  ", job.commits.Subject(culprit), "\n  ",
                      line.along_host ? grid_.HostName(line.hi) : grid_.GuestName(line.hi),
                      " is the first ", TermNew(job.spec), " ", dim, " kernel (", fixed,
                      " held fixed)\n");
      if (const farm::v1::HostKernel& k = grid_.Host(line.hi);
          line.along_host && !k.commit().empty()) {
        // A host range built from source: the culprit in git's words, in the host repository.
        absl::StrAppend(&report, "  ", k.commit(), " is the first ", TermNew(job.spec),
                        " host commit (", k.repo(), ")\n");
      }
    } else if (line.Done()) {
      absl::StrAppend(&report, "\n", dim, ": there are only 'skip'ped kernels left to test (",
                      fixed, " held fixed); the first ", TermNew(job.spec),
                      " one could be any of:\n");
      for (int i : line.skipped) {
        if (i > line.lo && i < line.hi) {
          absl::StrAppend(&report, "  ", line.along_host ? grid_.HostName(i) : grid_.GuestName(i),
                          "\n");
        }
      }
      absl::StrAppend(&report, "  ",
                      line.along_host ? grid_.HostName(line.hi) : grid_.GuestName(line.hi), "\n");
    }
  }
  absl::StrAppend(&report, "\n", CellTable(grid_, *graph_, job));
  AppendTaskNotes(job, &report);
  return report;
}

}  // namespace farm
