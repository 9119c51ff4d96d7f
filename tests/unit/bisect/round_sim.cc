#include "tests/unit/bisect/round_sim.h"

#include <algorithm>
#include <utility>

#include "coordinator/frontier/frontier.h"
#include "coordinator/planner/planner.h"

namespace farm::bisect_testing {

RoundSimResult SimulateRounds(std::shared_ptr<const CommitGraph> graph,
                              const std::function<bool(CommitId)>& is_bad, size_t agents,
                              PlannerKind planner, Arrival arrival, int max_rounds) {
  Frontier f(std::move(graph));
  auto plan = [&](const std::vector<CommitId>& running) {
    const PlanRequest req{running, agents - running.size()};
    return planner == PlannerKind::kKSection ? PlanKSection(f, req) : PlanNext(f, req);
  };
  auto useless = [&f](CommitId c) { return !f.IsCandidate(c) || c == f.bad(); };
  auto apply = [&](CommitId c) { f.Apply(c, is_bad(c) ? Verdict::kBad : Verdict::kGood); };
  RoundSimResult result;
  std::vector<CommitId> running;  // started in an earlier round, still useful
  while (!f.Done() && result.rounds < max_rounds) {
    Plan start = plan(running);
    result.tests += start.start.size();
    running.insert(running.end(), start.start.begin(), start.start.end());
    if (running.empty()) break;  // nothing testable (not expected without skips)
    ++result.rounds;
    std::vector<CommitId> finishing;
    finishing.swap(running);
    if (arrival == Arrival::kTogether) {
      for (CommitId c : finishing) {
        if (!useless(c)) apply(c);
      }
      result.left.push_back(f.num_candidates());
      continue;
    }
    for (size_t i = 0; i < finishing.size() && !f.Done(); ++i) {
      if (useless(finishing[i])) continue;  // cancelled by an earlier verdict of this round
      apply(finishing[i]);
      running.erase(std::remove_if(running.begin(), running.end(), useless), running.end());
      std::vector<CommitId> busy(finishing.begin() + i + 1, finishing.end());
      busy.erase(std::remove_if(busy.begin(), busy.end(), useless), busy.end());
      busy.insert(busy.end(), running.begin(), running.end());
      Plan more = plan(busy);
      result.tests += more.start.size();
      running.insert(running.end(), more.start.begin(), more.start.end());
    }
    running.erase(std::remove_if(running.begin(), running.end(), useless), running.end());
    result.left.push_back(f.num_candidates());
  }
  result.answer = f.Candidates();
  return result;
}

}  // namespace farm::bisect_testing
