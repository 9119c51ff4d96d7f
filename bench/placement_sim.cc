// placement_sim: simulated bisections on a kernel-shaped history with k agents that keep their
// worktrees, with and without cost-aware placement (PlaceTasks), reporting time to culprit.
//
// Model (all times in simulated seconds):
//   changed files between commits a and b: F * (1 - (1 - m/F)^d), the expected number of distinct
//     files touched by d commits that each touch m of F files, where d = |anc(a) xor anc(b)| is
//     the number of commits one side has and the other lacks;
//   build: fixed + per_file * changed files, at most a full build; an empty worktree (an agent's
//     first task) is a full build;
//   then boot + test, fixed.
// Each run: a random culprit among the candidates (commit x is bad iff it contains the culprit);
// the coordinator loop of the farm: PlanNext for the free agents, then either the plan's i-th
// commit to the i-th free agent (as the scheduler does today) or PlaceTasks with the build cost;
// a verdict cancels the tasks it made useless (their agents are free at once, worktree moved).
//
// Usage: placement_sim [RUNS=200] [COMMITS=10000] [SEED=1]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <queue>
#include <random>
#include <vector>

#include "coordinator/frontier/frontier.h"
#include "coordinator/planner/placement.h"
#include "coordinator/planner/planner.h"
#include "tests/unit/bisect/bisect_testing.h"

namespace farm {
namespace {

struct CostModel {
  double files = 60000;         // F: files in the tree
  double files_per_commit = 4;  // m
  double fixed_build = 5;       // seconds: make's startup, link, image
  double per_file = 0.05;       // seconds per changed file (compile, with ccache misses)
  double full_build = 255;      // seconds: cold build (also an empty worktree)
  double boot_and_test = 15;    // seconds
};

// Ancestor-or-self sets as bitsets: 10,000 commits take 12.5 MB.
class Ancestry {
 public:
  explicit Ancestry(const bisect_testing::Dag& dag)
      : words_((dag.size() + 63) / 64), bits_(dag.size() * words_, 0) {
    for (size_t i = 0; i < dag.size(); ++i) {
      uint64_t* row = &bits_[i * words_];
      row[i / 64] |= uint64_t{1} << (i % 64);
      for (uint32_t p : dag[i]) {
        const uint64_t* parent = &bits_[p * words_];
        for (size_t w = 0; w < words_; ++w) row[w] |= parent[w];
      }
    }
  }
  bool Contains(size_t commit, size_t ancestor) const {
    return (bits_[commit * words_ + ancestor / 64] >> (ancestor % 64)) & 1;
  }
  size_t SymmetricDifference(size_t a, size_t b) const {
    size_t d = 0;
    for (size_t w = 0; w < words_; ++w) {
      d += static_cast<size_t>(__builtin_popcountll(bits_[a * words_ + w] ^ bits_[b * words_ + w]));
    }
    return d;
  }

 private:
  size_t words_;
  std::vector<uint64_t> bits_;
};

struct RunResult {
  double time = 0;      // to culprit
  int tasks = 0;        // started
  double building = 0;  // total build seconds of started tasks
};

RunResult Simulate(const std::shared_ptr<const CommitGraph>& graph, const Ancestry& anc,
                   const CostModel& model, CommitId culprit, size_t k, bool placement) {
  auto build_seconds = [&](std::optional<CommitId> from, CommitId to) {
    if (!from.has_value()) return model.full_build;
    if (*from == to) return 0.0;
    const double d = static_cast<double>(anc.SymmetricDifference(*from, to));
    const double changed =
        model.files * (1 - std::pow(1 - model.files_per_commit / model.files, d));
    return std::min(model.full_build, model.fixed_build + model.per_file * changed);
  };
  struct Agent {
    std::optional<CommitId> position;  // worktree
    std::optional<CommitId> task;      // running
    double done_at = 0;
    uint64_t generation = 0;  // invalidates queued completions of cancelled tasks
  };
  std::vector<Agent> agents(k);
  struct Event {
    double at;
    size_t agent;
    uint64_t generation;
    bool operator>(const Event& o) const { return at > o.at || (at == o.at && agent > o.agent); }
  };
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events;
  Frontier frontier(graph);
  RunResult result;
  double now = 0;
  while (true) {
    // Cancel what no longer matters, then fill the free agents.
    PlanRequest request;
    std::vector<size_t> busy;
    for (size_t a = 0; a < k; ++a) {
      if (agents[a].task) {
        request.in_flight.push_back(*agents[a].task);
        busy.push_back(a);
      }
    }
    std::vector<size_t> free;
    for (size_t a = 0; a < k; ++a) {
      if (!agents[a].task) free.push_back(a);
    }
    request.free_slots = free.size();
    Plan plan = PlanNext(frontier, request);
    for (CommitId c : plan.cancel) {
      for (size_t a : busy) {
        if (agents[a].task == c) {
          agents[a].task.reset();
          ++agents[a].generation;
          free.push_back(a);
        }
      }
    }
    if (!plan.cancel.empty()) {
      // Freed agents can take work too: plan again with them.
      request.in_flight.clear();
      for (size_t a = 0; a < k; ++a) {
        if (agents[a].task) request.in_flight.push_back(*agents[a].task);
      }
      request.free_slots = free.size();
      plan = PlanNext(frontier, request);
    }
    std::vector<int> where(plan.start.size(), -1);
    if (placement) {
      std::vector<std::optional<CommitId>> positions;
      for (size_t a : free) positions.push_back(agents[a].position);
      where = PlaceTasks(plan.start, positions, build_seconds);
    } else {
      for (size_t i = 0; i < plan.start.size() && i < free.size(); ++i)
        where[i] = static_cast<int>(i);
    }
    for (size_t i = 0; i < plan.start.size(); ++i) {
      if (where[i] < 0) continue;
      Agent& agent = agents[free[where[i]]];
      const double build = build_seconds(agent.position, plan.start[i]);
      agent.position = plan.start[i];  // checked out at once; built after `build`
      agent.task = plan.start[i];
      agent.done_at = now + build + model.boot_and_test;
      ++result.tasks;
      result.building += build;
      events.push(Event{agent.done_at, static_cast<size_t>(free[where[i]]), agent.generation});
    }
    if (frontier.Done()) break;
    // Next completion.
    if (events.empty()) break;  // cannot happen: something is always running until Done
    Event e = events.top();
    events.pop();
    Agent& agent = agents[e.agent];
    if (e.generation != agent.generation || !agent.task) continue;
    now = e.at;
    const CommitId tested = *agent.task;
    agent.task.reset();
    frontier.Apply(tested, anc.Contains(tested, culprit) ? Verdict::kBad : Verdict::kGood);
    if (frontier.Done()) break;
  }
  result.time = now;
  return result;
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * (v.size() - 1))];
}

}  // namespace
}  // namespace farm

int main(int argc, char** argv) {
  using namespace farm;
  const int runs = argc > 1 ? std::atoi(argv[1]) : 200;
  const size_t commits = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 10000;
  const uint64_t seed = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 1;
  const bisect_testing::Dag dag = bisect_testing::KernelShapedHistory(commits, seed);
  const Ancestry anc(dag);
  auto graph = bisect_testing::GraphOf(dag);
  const Frontier start(graph);
  std::vector<CommitId> candidates = start.Candidates();
  candidates.pop_back();  // the bad commit itself is known bad
  const CostModel model;
  std::mt19937_64 rng(seed);
  std::vector<CommitId> culprits;
  for (int r = 0; r < runs; ++r) {
    culprits.push_back(
        candidates[std::uniform_int_distribution<size_t>(0, candidates.size() - 1)(rng)]);
  }
  std::printf(
      "placement_sim: %zu-commit kernel-shaped history, %zu candidates, %d random culprits "
      "per row\n",
      dag.size(), start.num_candidates(), runs);
  std::printf(
      "cost model: changed files = %.0f (1 - (1 - %.0f/%.0f)^d), d = commits in one "
      "ancestry and not the other;\n  build = %.0f s + %.2f s x changed files (at most, "
      "and from an empty worktree, %.0f s); boot + test %.0f s\n\n",
      model.files, model.files_per_commit, model.files, model.fixed_build, model.per_file,
      model.full_build, model.boot_and_test);
  std::printf("%3s | %-26s | %-26s | %7s | %-23s\n", "k", "time to culprit, plain",
              "with placement", "speedup", "build s/task plain/placed");
  std::printf("%3s | %-26s | %-26s | %7s | %-23s\n", "", "mean / p90 (min)", "mean / p90 (min)",
              "(mean)", "");
  for (size_t k : {size_t{1}, size_t{4}, size_t{8}, size_t{16}}) {
    std::vector<double> plain_t, placed_t;
    double plain_build = 0, placed_build = 0;
    int plain_tasks = 0, placed_tasks = 0;
    for (CommitId culprit : culprits) {
      RunResult a = Simulate(graph, anc, model, culprit, k, false);
      RunResult b = Simulate(graph, anc, model, culprit, k, true);
      plain_t.push_back(a.time / 60);
      placed_t.push_back(b.time / 60);
      plain_build += a.building;
      placed_build += b.building;
      plain_tasks += a.tasks;
      placed_tasks += b.tasks;
    }
    auto mean = [](const std::vector<double>& v) {
      double s = 0;
      for (double x : v) s += x;
      return s / static_cast<double>(v.size());
    };
    std::printf("%3zu | %8.1f / %-15.1f | %8.1f / %-15.1f | %6.2fx | %8.1f / %-12.1f\n", k,
                mean(plain_t), Percentile(plain_t, 0.9), mean(placed_t), Percentile(placed_t, 0.9),
                mean(plain_t) / mean(placed_t), plain_build / plain_tasks,
                placed_build / placed_tasks);
    std::fflush(stdout);
  }
  return 0;
}
