#include "coordinator/flaky/simulation.h"

#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <thread>
#include <utility>
#include <vector>

#include "coordinator/frontier/frontier.h"
#include "coordinator/planner/planner.h"

namespace farm::flaky_sim {
namespace {

uint64_t Mix(uint64_t a, uint64_t b) {
  Rng rng(a * 0x9E3779B97F4A7C15ull + b);
  return rng.Next();
}

// Commit i's object id: its index big-endian (distinct by construction), then seeded filler.
git_oid OidFor(uint32_t i, uint64_t salt) {
  git_oid oid;
  std::memset(&oid, 0, sizeof(oid));
  unsigned char* bytes = reinterpret_cast<unsigned char*>(&oid);
  bytes[0] = static_cast<unsigned char>(i >> 24);
  bytes[1] = static_cast<unsigned char>(i >> 16);
  bytes[2] = static_cast<unsigned char>(i >> 8);
  bytes[3] = static_cast<unsigned char>(i);
  Rng rng(Mix(salt, i));
  for (size_t b = 4; b < sizeof(oid); b += 8) {
    const uint64_t r = rng.Next();
    std::memcpy(bytes + b, &r, std::min<size_t>(8, sizeof(oid) - b));
  }
  return oid;
}

// A flaky test over a known truth.
class FlakyTest {
 public:
  FlakyTest(const CommitGraph& graph, CommitId culprit, double false_pass, double false_fail,
            uint64_t seed)
      : truly_bad_(graph.size(), 0), false_pass_(false_pass), false_fail_(false_fail), rng_(seed) {
    // Truly bad: the culprit and its descendants. Ids are topological.
    for (CommitId x = 0; x < graph.size(); ++x) {
      if (x == culprit) {
        truly_bad_[x] = 1;
        continue;
      }
      for (CommitId p : graph.parents(x)) {
        if (truly_bad_[p]) {
          truly_bad_[x] = 1;
          break;
        }
      }
    }
  }

  // One run: true if it fails.
  bool Run(CommitId x) {
    const double u = rng_.Uniform();
    return truly_bad_[x] ? u >= false_pass_ : u < false_fail_;
  }

 private:
  std::vector<uint8_t> truly_bad_;
  double false_pass_;
  double false_fail_;
  Rng rng_;
};

Verdict Of(bool failed) { return failed ? Verdict::kBad : Verdict::kGood; }

Outcome RunPlain(const Config& config, std::shared_ptr<const CommitGraph> graph, FlakyTest& test) {
  Outcome out;
  Frontier frontier(std::move(graph));
  while (!frontier.Done()) {
    std::vector<CommitId> batch;
    if (config.k <= 1) {
      batch.push_back(*frontier.BestMidpoint());
    } else {
      batch = PlanNext(frontier, PlanRequest{{}, config.k}).start;
      if (batch.empty()) break;
    }
    ++out.rounds;
    out.probes += batch.size();
    // All of the round's runs finish; their verdicts are applied in plan order (stale ones are
    // ignored by the frontier).
    std::vector<bool> failed;
    for (CommitId x : batch) failed.push_back(test.Run(x));
    for (size_t i = 0; i < batch.size(); ++i) frontier.Apply(batch[i], Of(failed[i]));
  }
  out.reported = frontier.bad();
  return out;
}

Outcome RunFixed(const Config& config, std::shared_ptr<const CommitGraph> graph, FlakyTest& test) {
  Outcome out;
  Frontier frontier(std::move(graph));
  const int runs = std::max(1, config.fixed_runs);
  const int threshold = config.fixed_threshold > 0 ? config.fixed_threshold : std::max(2, runs / 6);
  const size_t k = std::max<size_t>(1, config.k);
  while (!frontier.Done()) {
    const CommitId m = *frontier.BestMidpoint();
    int failures = 0;
    for (int r = 0; r < runs; ++r) failures += test.Run(m) ? 1 : 0;
    out.probes += runs;
    out.rounds += (runs + k - 1) / k;
    frontier.Apply(m, Of(failures >= threshold));
  }
  out.reported = frontier.bad();
  return out;
}

Outcome RunBayes(const Config& config, std::shared_ptr<const CommitGraph> graph, FlakyTest& test) {
  Outcome out;
  FlakyOptions options = config.bayes;
  if (config.bayes_rates_from_noise) {
    options.false_pass = config.false_pass;
    options.false_fail = config.false_fail;
  }
  // A guard against a runaway simulation; far above what any configuration here needs.
  if (options.max_probes == 0) options.max_probes = 5000;
  absl::StatusOr<FlakyBisect> created = FlakyBisect::Create(std::move(graph), options);
  if (!created.ok()) return out;
  FlakyBisect& bisect = *created;
  const size_t k = std::max<size_t>(1, config.k);
  while (!bisect.Done()) {
    const std::vector<CommitId> batch = bisect.NextProbes(k, {});
    if (batch.empty()) break;
    ++out.rounds;
    out.probes += batch.size();
    std::vector<std::pair<CommitId, Verdict>> results;
    for (CommitId x : batch) results.emplace_back(x, Of(test.Run(x)));
    (void)bisect.ObserveAll(results);
  }
  out.reported = bisect.Best();
  out.confidence = bisect.Confidence();
  out.inconclusive = bisect.Inconclusive();
  out.learnt_false_pass = bisect.false_pass();
  out.learnt_false_fail = bisect.false_fail();
  return out;
}

}  // namespace

uint64_t Rng::Next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

const char* ShapeName(Shape shape) {
  switch (shape) {
    case Shape::kLinear:
      return "linear";
    case Shape::kMergeHeavy:
      return "merge-heavy";
  }
  return "?";
}

const char* StrategyName(Strategy strategy) {
  switch (strategy) {
    case Strategy::kPlain:
      return "plain";
    case Strategy::kFixedRuns:
      return "fixed-runs";
    case Strategy::kBayes:
      return "bayes";
  }
  return "?";
}

std::shared_ptr<const CommitGraph> MakeHistory(Shape shape, size_t n, uint64_t seed) {
  n = std::max<size_t>(1, n);
  Rng rng(seed);
  std::vector<std::vector<CommitId>> parents;
  parents.reserve(n);
  auto add = [&](std::vector<CommitId> ps) {
    parents.push_back(std::move(ps));
    return static_cast<CommitId>(parents.size() - 1);
  };
  std::vector<CommitId> main_line{add({})};
  if (shape == Shape::kLinear) {
    while (parents.size() < n) main_line.push_back(add({main_line.back()}));
  } else {
    constexpr size_t kMaxOpenTopics = 8;
    constexpr size_t kMaxForkDepth = 50;  // topics fork from the last 50 main-line commits
    std::vector<CommitId> topics;         // open topic heads
    // Every open topic still needs its merge: stop early enough to merge them all.
    while (parents.size() + topics.size() < n) {
      const double u = rng.Uniform();
      if (u < 0.12 && topics.size() < kMaxOpenTopics && parents.size() + topics.size() + 2 <= n) {
        const size_t back = rng.Below(std::min(main_line.size(), kMaxForkDepth));
        topics.push_back(add({main_line[main_line.size() - 1 - back]}));
      } else if (u < 0.55 && !topics.empty()) {
        CommitId& head = topics[rng.Below(topics.size())];
        head = add({head});
      } else if (u < 0.70 && !topics.empty()) {
        const size_t t = rng.Below(topics.size());
        main_line.push_back(add({main_line.back(), topics[t]}));
        topics.erase(topics.begin() + static_cast<std::ptrdiff_t>(t));
      } else if (u < 0.72 && !topics.empty()) {
        CommitId& head = topics[rng.Below(topics.size())];
        head = add({head, main_line.back()});
      } else {
        main_line.push_back(add({main_line.back()}));
      }
    }
    for (CommitId head : topics) main_line.push_back(add({main_line.back(), head}));
  }
  std::vector<git_oid> oids;
  oids.reserve(parents.size());
  for (uint32_t i = 0; i < parents.size(); ++i) oids.push_back(OidFor(i, seed));
  return CommitGraph::FromParents(std::move(oids), std::move(parents));
}

Outcome RunOne(Strategy strategy, const Config& config, std::shared_ptr<const CommitGraph> graph,
               CommitId culprit, uint64_t noise_seed) {
  FlakyTest test(*graph, culprit, config.false_pass, config.false_fail, noise_seed);
  Outcome out;
  switch (strategy) {
    case Strategy::kPlain:
      out = RunPlain(config, std::move(graph), test);
      break;
    case Strategy::kFixedRuns:
      out = RunFixed(config, std::move(graph), test);
      break;
    case Strategy::kBayes:
      out = RunBayes(config, std::move(graph), test);
      break;
  }
  out.correct = out.reported == culprit;
  return out;
}

namespace {

// Sums over some bisects of one job.
struct Tally {
  double correct = 0, probes = 0, rounds = 0, confidence = 0, false_pass = 0, false_fail = 0;
  double cpu_seconds = 0;
  size_t inconclusive = 0;
  std::vector<size_t> probe_counts;

  void Add(const Outcome& out) {
    correct += out.correct ? 1 : 0;
    probes += static_cast<double>(out.probes);
    rounds += static_cast<double>(out.rounds);
    confidence += out.confidence;
    false_pass += out.learnt_false_pass;
    false_fail += out.learnt_false_fail;
    inconclusive += out.inconclusive ? 1 : 0;
    probe_counts.push_back(out.probes);
  }
  void Merge(const Tally& other) {
    correct += other.correct;
    probes += other.probes;
    rounds += other.rounds;
    confidence += other.confidence;
    false_pass += other.false_pass;
    false_fail += other.false_fail;
    cpu_seconds += other.cpu_seconds;
    inconclusive += other.inconclusive;
    probe_counts.insert(probe_counts.end(), other.probe_counts.begin(), other.probe_counts.end());
  }
  Summary Finish() {
    Summary s;
    s.bisects = probe_counts.size();
    s.cpu_seconds = cpu_seconds;
    s.inconclusive = inconclusive;
    if (s.bisects == 0) return s;
    const double count = static_cast<double>(s.bisects);
    s.accuracy = correct / count;
    s.mean_probes = probes / count;
    s.mean_rounds = rounds / count;
    s.mean_confidence = confidence / count;
    s.mean_false_pass = false_pass / count;
    s.mean_false_fail = false_fail / count;
    std::sort(probe_counts.begin(), probe_counts.end());
    s.p90_probes = probe_counts[(probe_counts.size() * 9 + 9) / 10 - 1];
    return s;
  }
};

double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

Summary RunMany(Strategy strategy, const Config& config) {
  return RunMany({Job{strategy, config}}, 1)[0];
}

std::vector<Summary> RunMany(const std::vector<Job>& jobs, size_t threads) {
  if (jobs.empty()) return {};
  const Config& shared = jobs[0].config;
  std::atomic<size_t> next{0};
  std::vector<std::vector<Tally>> tallies(std::max<size_t>(1, threads),
                                          std::vector<Tally>(jobs.size()));
  auto work = [&](std::vector<Tally>& mine) {
    for (size_t i; (i = next.fetch_add(1)) < shared.bisects;) {
      Rng rng(Mix(shared.seed, i));
      const size_t lo = std::max<size_t>(1, shared.min_commits);
      const size_t hi = std::max(lo, shared.max_commits);
      const size_t n = lo + rng.Below(hi - lo + 1);
      std::shared_ptr<const CommitGraph> graph = MakeHistory(shared.shape, n, rng.Next());
      // Every commit of a generated history is a candidate.
      const CommitId culprit = static_cast<CommitId>(rng.Below(graph->size()));
      const uint64_t noise_base = rng.Next();
      for (size_t j = 0; j < jobs.size(); ++j) {
        const double start = ThreadCpuSeconds();
        const uint64_t noise_seed = Mix(noise_base, static_cast<uint64_t>(jobs[j].strategy) + 1);
        mine[j].Add(RunOne(jobs[j].strategy, jobs[j].config, graph, culprit, noise_seed));
        mine[j].cpu_seconds += ThreadCpuSeconds() - start;
      }
    }
  };
  std::vector<std::thread> pool;
  for (size_t t = 1; t < tallies.size(); ++t) pool.emplace_back(work, std::ref(tallies[t]));
  work(tallies[0]);
  for (std::thread& t : pool) t.join();
  std::vector<Summary> out;
  for (size_t j = 0; j < jobs.size(); ++j) {
    Tally total;
    for (const std::vector<Tally>& t : tallies) total.Merge(t[j]);
    out.push_back(total.Finish());
  }
  return out;
}

}  // namespace farm::flaky_sim
