#include "tests/unit/core/cell_sim.h"

#include <algorithm>
#include <limits>
#include <set>

#include "tests/unit/bisect/bisect_testing.h"

namespace farm::cell_sim {

Grid MakeGrid(int hosts, int guests, bool bisect) {
  Grid g;
  const int cells = hosts * std::max(1, guests);
  g.graph = bisect_testing::GraphOf(bisect_testing::LinearHistory(cells + 1));
  for (int h = 0; h < hosts; ++h) {
    farm::v1::HostKernel* k = g.spec.add_hosts();
    k->set_image("/boot/vmlinuz-h" + std::to_string(h));
    k->set_key("key-h" + std::to_string(h));
    k->set_label("h" + std::to_string(h));
  }
  for (int i = 0; i < guests; ++i) g.spec.add_guests("g" + std::to_string(i));
  // Commit 0 is the root; cell i is commit i + 1 (creation order).
  for (int i = 0; i < cells; ++i) {
    std::optional<CommitId> id = g.graph->Find(bisect_testing::OrderedOid(i + 1));
    g.spec.add_cells(g.graph->Hex(*id));
  }
  g.spec.set_bisect(bisect);
  return g;
}

namespace {

struct Running {
  CommitId commit;
  int agent;
  double ends;
};

}  // namespace

Result Run(BisectEngine& engine, const CellGrid& grid, const std::function<Verdict(Cell)>& truth,
           const Options& options) {
  Result r;
  std::vector<int> host_of(options.agents, -1);
  std::vector<std::set<int>> hosts_run(options.agents);
  std::vector<bool> busy(options.agents, false);
  std::vector<Running> running;
  std::vector<CommitId> naive;  // guest-major
  for (int g = grid.guests() - 1; g >= 0; --g) {
    for (int h = grid.hosts() - 1; h >= 0; --h) naive.push_back(grid.At({h, g}));
  }
  double now = 0;
  for (int guard = 0; guard < 100000; ++guard) {
    if (engine.Done()) break;
    std::vector<int> free;
    for (int a = 0; a < options.agents; ++a) {
      if (!busy[a]) free.push_back(a);
    }
    std::vector<CommitId> plan;
    if (!free.empty()) {
      if (options.engine_order) {
        std::vector<CommitId> in_flight;
        for (const Running& run : running) in_flight.push_back(run.commit);
        plan = engine.Plan(free.size(), in_flight);
      } else {
        while (plan.size() < free.size() && !naive.empty()) {
          plan.push_back(naive.back());
          naive.pop_back();
        }
      }
    }
    for (int a : free) {
      if (plan.empty()) break;
      size_t pick = 0;
      if (options.engine_order) {
        for (size_t i = 0; i < plan.size(); ++i) {
          if (grid.CellOf(plan[i])->host == host_of[a]) {
            pick = i;
            break;
          }
        }
      }
      CommitId c = plan[pick];
      plan.erase(plan.begin() + static_cast<long>(pick));
      int host = grid.CellOf(c)->host;
      double cost = options.test_seconds;
      if (host != host_of[a]) {
        ++r.kexecs;
        cost += options.kexec_seconds;
        host_of[a] = host;
        hosts_run[a].insert(host);
      }
      busy[a] = true;
      ++r.tests;
      running.push_back({c, a, now + cost});
    }
    if (running.empty()) break;
    auto first =
        std::min_element(running.begin(), running.end(),
                         [](const Running& x, const Running& y) { return x.ends < y.ends; });
    Running done = *first;
    running.erase(first);
    now = done.ends;
    busy[done.agent] = false;
    engine.Observe(done.commit, truth(*grid.CellOf(done.commit)));
    for (auto it = running.begin(); it != running.end();) {
      if (engine.ShouldCancel(it->commit)) {
        busy[it->agent] = false;
        ++r.cancelled;
        it = running.erase(it);
      } else {
        ++it;
      }
    }
  }
  r.done = engine.Done();
  r.wall_seconds = now;
  for (const auto& s : hosts_run) r.distinct_hosts_per_agent += static_cast<int>(s.size());
  return r;
}

}  // namespace farm::cell_sim
