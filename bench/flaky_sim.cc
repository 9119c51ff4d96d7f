// flaky_sim: simulated bisections with a flaky test, side by side: plain bisection, a fixed
// number of runs per commit, and the Bayesian engine (FlakyBisect). See bench/FLAKY.md.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "common/log/log.h"
#include "coordinator/flaky/simulation.h"

namespace {

using farm::flaky_sim::Config;
using farm::flaky_sim::RunMany;
using farm::flaky_sim::Shape;
using farm::flaky_sim::ShapeName;
using farm::flaky_sim::Strategy;
using farm::flaky_sim::Summary;

struct Row {
  Config config;
  Strategy strategy;
  std::string label;
  Summary summary;
};

}  // namespace

int main(int argc, char** argv) {
  farm::log::SetProgramName("flaky_sim");
  CLI::App app{"Simulated bisections with a flaky test: plain, fixed runs, Bayesian"};
  size_t bisects = 1000;
  uint64_t seed = 1;
  size_t min_commits = 1000, max_commits = 5000;
  double confidence = 0.95;
  int runs = 10;
  int threshold = 0;
  std::vector<double> assume;
  std::vector<double> false_pass{0.1, 0.3};
  std::vector<double> false_fail{0.0, 0.05};
  std::vector<size_t> ks{1, 4};
  std::vector<std::string> shapes{"linear", "merge-heavy"};
  bool learn = false;
  double learn_strength = 10;
  size_t learn_calibration = 0;
  size_t threads = 2;
  app.add_option("--bisects", bisects, "bisects per configuration")->capture_default_str();
  app.add_option("--seed", seed, "base seed (same seed, same figures)")->capture_default_str();
  app.add_option("--min-commits", min_commits, "smallest range")->capture_default_str();
  app.add_option("--max-commits", max_commits, "largest range")->capture_default_str();
  app.add_option("--confidence", confidence, "Bayesian: requested confidence")
      ->capture_default_str();
  app.add_option("--runs", runs, "fixed rule: runs per commit")->capture_default_str();
  app.add_option("--fixed-threshold", threshold,
                 "fixed rule: bad if at least this many runs fail (default max(2, runs/6), "
                 "syzkaller's)");
  app.add_option("--assume", assume,
                 "also run the Bayesian engine told these rates FP,FF instead of the injected "
                 "ones (a wrong estimate)")
      ->delimiter(',')
      ->expected(2);
  app.add_option("--false-pass", false_pass, "injected false-pass rates")->delimiter(',');
  app.add_option("--false-fail", false_fail, "injected false-fail rates")->delimiter(',');
  app.add_option("--k", ks, "parallel agents")->delimiter(',');
  app.add_option("--shapes", shapes, "linear, merge-heavy")->delimiter(',');
  app.add_flag("--learn", learn,
               "also run the Bayesian engine learning the rates (prior means 0.2, 0.02)");
  app.add_option("--learn-strength", learn_strength, "learnt rates: Beta prior pseudo-runs")
      ->capture_default_str();
  app.add_option("--learn-calibration", learn_calibration,
                 "learnt rates: runs of the bad commit first")
      ->capture_default_str();
  app.add_option("--threads", threads, "worker threads (bisects are split between them)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::vector<Row> rows;
  for (const std::string& shape_name : shapes) {
    Shape shape;
    if (shape_name == "linear") {
      shape = Shape::kLinear;
    } else if (shape_name == "merge-heavy") {
      shape = Shape::kMergeHeavy;
    } else {
      FARM_LOG(Error) << "unknown shape '" << shape_name << "': use linear or merge-heavy";
      return 2;
    }
    for (double fp : false_pass) {
      for (double ff : false_fail) {
        for (size_t k : ks) {
          Config c;
          c.shape = shape;
          c.false_pass = fp;
          c.false_fail = ff;
          c.k = k;
          c.min_commits = min_commits;
          c.max_commits = max_commits;
          c.bisects = bisects;
          c.seed = seed;
          c.fixed_runs = runs;
          c.fixed_threshold = threshold;
          c.bayes.confidence = confidence;
          rows.push_back({c, Strategy::kPlain, "plain (1 run)", {}});
          const int t = threshold > 0 ? threshold : std::max(2, runs / 6);
          rows.push_back({c,
                          Strategy::kFixedRuns,
                          std::to_string(runs) + " runs, >=" + std::to_string(t) + " fail",
                          {}});
          rows.push_back({c, Strategy::kBayes, "bayes", {}});
          if (assume.size() == 2) {
            Config a = c;
            a.bayes.false_pass = assume[0];
            a.bayes.false_fail = assume[1];
            a.bayes_rates_from_noise = false;
            char label[64];
            std::snprintf(label, sizeof(label), "bayes, told %.2f,%.2f", assume[0], assume[1]);
            rows.push_back({a, Strategy::kBayes, label, {}});
          }
          if (learn) {
            Config l = c;
            l.bayes.learn_rates = true;
            l.bayes.false_pass = farm::kLearnPriorFalsePass;
            l.bayes.false_fail = farm::kLearnPriorFalseFail;
            l.bayes.rate_prior_strength = learn_strength;
            l.bayes.calibration_runs = learn_calibration;
            l.bayes_rates_from_noise = false;
            rows.push_back({l, Strategy::kBayes, "bayes, learnt rates", {}});
          }
        }
      }
    }
  }

  const auto start = std::chrono::steady_clock::now();
  // Rows of one shape share their histories: each is built once and bisected by every row.
  for (const std::string& shape_name : shapes) {
    std::vector<size_t> index;
    std::vector<farm::flaky_sim::Job> jobs;
    for (size_t i = 0; i < rows.size(); ++i) {
      if (ShapeName(rows[i].config.shape) != shape_name) continue;
      index.push_back(i);
      jobs.push_back({rows[i].strategy, rows[i].config});
    }
    const std::vector<Summary> summaries = RunMany(jobs, threads);
    for (size_t j = 0; j < index.size(); ++j) rows[index[j]].summary = summaries[j];
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::printf(
      "%zu bisects per row, ranges of %zu-%zu commits, culprit uniform, seed %llu; "
      "bayes at confidence %.2f\n\n",
      bisects, min_commits, max_commits, static_cast<unsigned long long>(seed), confidence);
  std::printf(
      "| shape       | FP   | FF   | k | strategy               | correct | probes mean | "
      "p90 | rounds mean | reported conf | cpu ms |\n");
  std::printf(
      "|-------------|------|------|---|------------------------|---------|-------------|"
      "-----|-------------|---------------|--------|\n");
  for (const Row& row : rows) {
    const Summary& s = row.summary;
    std::string conf = "-";
    if (row.strategy == Strategy::kBayes) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%.3f", s.mean_confidence);
      conf = buf;
      if (row.config.bayes.learn_rates) {
        std::snprintf(buf, sizeof(buf), " (rates %.2f,%.2f)", s.mean_false_pass, s.mean_false_fail);
        conf += buf;
      }
    }
    std::printf(
        "| %-11s | %.2f | %.2f | %zu | %-22s | %6.1f%% | %11.1f | %3zu | %11.1f | %-13s | %6.2f "
        "|\n",
        ShapeName(row.config.shape), row.config.false_pass, row.config.false_fail, row.config.k,
        row.label.c_str(), 100.0 * s.accuracy, s.mean_probes, s.p90_probes, s.mean_rounds,
        conf.c_str(), s.bisects ? 1e3 * s.cpu_seconds / static_cast<double>(s.bisects) : 0.0);
  }
  std::printf("\n%.1f s with %zu threads\n", seconds, threads);
  return 0;
}
