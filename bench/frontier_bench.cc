// Google Benchmark of the bisection engine on kernel-shaped DAGs
// (bisect_testing::KernelShapedHistory: a long first-parent line, subsystem trees and topic
// branches merged in, about 21% merges) of 10k, 80k and 1M commits:
//   BM_Construct             CommitGraph::FromParents + Frontier: what loading builds
//   BM_WeightsAndMidpoint    every weight + BestMidpoint from scratch (the chain decomposition)
//   BM_WeightsByWalks        the same with the previous method (paint walks + sweeps)
//   BM_PlanNext              PlanNext for k free agents (weights of the root cached)
//   BM_PlanKSection          PlanKSection for k free agents (what the coordinator plans with)
//   BM_UpdateAfterVerdict    Apply(midpoint, good|bad) + the next BestMidpoint
// Figures and how to run it: bench/README.md, "Bisection engine".
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "coordinator/frontier/frontier.h"
#include "coordinator/frontier/weights.h"
#include "coordinator/graph/commit_graph.h"
#include "coordinator/planner/planner.h"
#include "tests/unit/bisect/bisect_testing.h"

namespace farm {
namespace {

struct Fixture {
  bisect_testing::Dag dag;
  std::shared_ptr<const CommitGraph> graph;
  std::unique_ptr<Frontier> frontier;  // weights cached
  size_t merges = 0;
};

const Fixture& Get(size_t n) {
  static std::mutex mu;
  static std::map<size_t, std::unique_ptr<Fixture>> cache;
  std::lock_guard<std::mutex> lock(mu);
  std::unique_ptr<Fixture>& f = cache[n];
  if (f == nullptr) {
    f = std::make_unique<Fixture>();
    f->dag = bisect_testing::KernelShapedHistory(n, 1);
    for (const auto& p : f->dag) f->merges += p.size() > 1;
    f->graph = bisect_testing::GraphOf(f->dag);
    f->frontier = std::make_unique<Frontier>(f->graph);
    f->frontier->BestMidpoint();
  }
  return *f;
}

void Label(benchmark::State& state, const Fixture& f) {
  state.counters["candidates"] = static_cast<double>(f.frontier->num_candidates());
  state.counters["merges"] = static_cast<double>(f.merges);
}

void BM_Construct(benchmark::State& state) {
  const Fixture& f = Get(static_cast<size_t>(state.range(0)));
  const std::vector<git_oid> oids = bisect_testing::OrderedOids(f.dag.size());
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<git_oid> o = oids;
    bisect_testing::Dag d = f.dag;
    state.ResumeTiming();
    auto graph = CommitGraph::FromParents(std::move(o), std::move(d));
    Frontier frontier(graph);
    benchmark::DoNotOptimize(frontier.num_candidates());
  }
  Label(state, f);
}

void BM_WeightsAndMidpoint(benchmark::State& state) {
  const Fixture& f = Get(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    state.PauseTiming();
    Frontier frontier(f.graph);  // no weights yet
    state.ResumeTiming();
    benchmark::DoNotOptimize(frontier.BestMidpoint());
  }
  Label(state, f);
}

void BM_WeightsByWalks(benchmark::State& state) {
  const Fixture& f = Get(static_cast<size_t>(state.range(0)));
  const size_t n = f.graph->size();
  std::vector<uint8_t> flags(n);
  for (CommitId id = 0; id < n; ++id) flags[id] = f.frontier->IsCandidate(id) ? 1 : 0;
  std::vector<uint32_t> weights;
  for (auto _ : state) {
    ComputeCandidateWeightsByWalks(*f.graph, flags, 1, f.graph->bad() + 1,
                                   DefaultMergeWalkBudget(n), weights);
    benchmark::DoNotOptimize(weights.data());
  }
  Label(state, f);
}

void RunPlanner(benchmark::State& state, Plan (*planner)(const Frontier&, const PlanRequest&)) {
  const Fixture& f = Get(static_cast<size_t>(state.range(0)));
  PlanRequest request;
  request.free_slots = static_cast<size_t>(state.range(1));
  for (auto _ : state) {
    Plan plan = planner(*f.frontier, request);
    benchmark::DoNotOptimize(plan.start.data());
  }
  Label(state, f);
}
void BM_PlanNext(benchmark::State& state) { RunPlanner(state, PlanNext); }
void BM_PlanKSection(benchmark::State& state) { RunPlanner(state, PlanKSection); }

void BM_UpdateAfterVerdict(benchmark::State& state) {
  const Fixture& f = Get(static_cast<size_t>(state.range(0)));
  const Verdict verdict = state.range(1) == 0 ? Verdict::kGood : Verdict::kBad;
  const CommitId midpoint = *f.frontier->BestMidpoint();
  for (auto _ : state) {
    state.PauseTiming();
    Frontier frontier = *f.frontier;  // weights cached, shared
    state.ResumeTiming();
    frontier.Apply(midpoint, verdict);
    benchmark::DoNotOptimize(frontier.BestMidpoint());
  }
  Label(state, f);
  state.SetLabel(verdict == Verdict::kGood ? "good" : "bad");
}

constexpr int64_t k10k = 10000, k80k = 80000, k1M = 1000000;

BENCHMARK(BM_Construct)->Arg(k10k)->Arg(k80k)->Arg(k1M)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_WeightsAndMidpoint)->Arg(k10k)->Arg(k80k)->Arg(k1M)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_WeightsByWalks)->Arg(k10k)->Arg(k80k)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_WeightsByWalks)->Arg(k1M)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PlanNext)
    ->Args({k10k, 8})
    ->Args({k80k, 1})
    ->Args({k80k, 4})
    ->Args({k80k, 8})
    ->Args({k80k, 16})
    ->Args({k1M, 8})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PlanKSection)
    ->Args({k10k, 8})
    ->Args({k80k, 1})
    ->Args({k80k, 4})
    ->Args({k80k, 8})
    ->Args({k80k, 16})
    ->Args({k1M, 8})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_UpdateAfterVerdict)
    ->ArgsProduct({{k10k, k80k, k1M}, {0, 1}})
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace farm

BENCHMARK_MAIN();
