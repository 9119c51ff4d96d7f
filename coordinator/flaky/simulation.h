// Simulated bisections with a flaky test: the harness behind bench/flaky_sim and the statistical
// tests of the flaky engine. Everything is seeded, so a run is reproducible bit for bit.
//
// Three strategies are compared on the same histories, culprits and noise streams:
//  - kPlain: git bisect semantics (Frontier), one run per commit, trusted; with k > 1 agents the
//    speculative planner (PlanNext) picks k commits per round.
//  - kFixedRuns: Frontier with every verdict decided by `fixed_runs` runs of the midpoint
//    (syzkaller's rule: bad if at least max(2, runs / 6) runs fail); with k agents those runs
//    are spread over the agents, ceil(runs / k) rounds per step.
//  - kBayes: FlakyBisect at the requested confidence, k probes per round.
#ifndef FARM_COORDINATOR_FLAKY_SIMULATION_H_
#define FARM_COORDINATOR_FLAKY_SIMULATION_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "coordinator/flaky/flaky_bisect.h"
#include "coordinator/graph/commit_graph.h"

namespace farm::flaky_sim {

// A deterministic 64-bit generator (splitmix64): the same numbers on every platform and standard
// library, unlike std::uniform_*_distribution.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  // Uniform in [0, 1).
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // Uniform in [0, n); n > 0.
  uint64_t Below(uint64_t n) { return Next() % n; }

 private:
  uint64_t state_;
};

enum class Shape {
  kLinear,      // a single chain
  kMergeHeavy,  // a main line with interleaved topic branches merged in (about 1 merge in 6)
};

const char* ShapeName(Shape shape);

// A history of exactly n >= 1 commits whose last commit (the bad one) reaches all of them.
// kMergeHeavy: a first-parent main line; topic branches forked from recent main commits, grown
// in interleaved order (ids follow creation, as commit dates do), merged back with 2-parent
// merges; occasional back-merges of main into a topic.
std::shared_ptr<const CommitGraph> MakeHistory(Shape shape, size_t n, uint64_t seed);

enum class Strategy { kPlain, kFixedRuns, kBayes };

const char* StrategyName(Strategy strategy);

// One simulated configuration.
struct Config {
  Shape shape = Shape::kLinear;
  double false_pass = 0.1;  // injected: P(a run passes at a truly bad commit)
  double false_fail = 0.0;  // injected: P(a run fails at a truly good commit)
  size_t k = 1;             // parallel agents
  size_t min_commits = 1000;
  size_t max_commits = 5000;  // each bisect's range size is uniform in [min, max]
  size_t bisects = 1000;
  uint64_t seed = 1;
  int fixed_runs = 10;      // kFixedRuns
  int fixed_threshold = 0;  // kFixedRuns: bad if at least this many runs fail; 0: max(2, runs / 6)
  // kBayes. The engine is told the injected rates unless bayes.learn_rates is set (then the
  // rates given here are only its prior means).
  FlakyOptions bayes;
  bool bayes_rates_from_noise = true;  // overwrite bayes.false_pass/false_fail with the injected
};

// The result of one bisect.
struct Outcome {
  CommitId reported = 0;
  bool correct = false;
  size_t probes = 0;             // test runs
  size_t rounds = 0;             // batches of up to k runs
  double confidence = 0;         // kBayes only
  bool inconclusive = false;     // kBayes: stopped by the budget
  double learnt_false_pass = 0;  // kBayes: the rates in use at the end
  double learnt_false_fail = 0;
};

// Bisects `graph` (culprit `culprit`, a candidate) with `strategy`; `noise_seed` seeds the flaky
// test. Uses config.false_pass/false_fail/k/fixed_runs/bayes.
Outcome RunOne(Strategy strategy, const Config& config, std::shared_ptr<const CommitGraph> graph,
               CommitId culprit, uint64_t noise_seed);

struct Summary {
  size_t bisects = 0;
  double accuracy = 0;  // fraction correct
  double mean_probes = 0;
  size_t p90_probes = 0;  // 90th percentile (nearest rank)
  double mean_rounds = 0;
  double mean_confidence = 0;  // kBayes
  size_t inconclusive = 0;     // kBayes
  double mean_false_pass = 0;  // kBayes: mean of the rates in use at the end
  double mean_false_fail = 0;
  double cpu_seconds = 0;  // thread CPU time spent in this job's bisects (RunMany with jobs)
};

// config.bisects bisects: bisect i gets a history of MakeHistory(config.shape, n_i, ...) and a
// culprit uniform among its commits, both derived from (config.seed, i) only, so every strategy
// sees the same ranges and culprits; the noise stream depends on the strategy too.
Summary RunMany(Strategy strategy, const Config& config);

// One strategy in one configuration.
struct Job {
  Strategy strategy;
  Config config;
};

// As RunMany for each job, on the same bisects: the histories and culprits of jobs[0].config
// (its shape, seed, commit range and number of bisects, which every job must share) are built
// once and bisected by every job, split between `threads` worker threads (at least 1). The
// results do not depend on `threads` (up to rounding in the means). Summaries in job order.
std::vector<Summary> RunMany(const std::vector<Job>& jobs, size_t threads);

}  // namespace farm::flaky_sim

#endif  // FARM_COORDINATOR_FLAKY_SIMULATION_H_
