// load_harness: 1,000 simulated agents and 200 concurrent bisects against one coordinator on
// loopback; prints correctness, assignment latency and the coordinator's CPU and memory.
// See bench/README.md, "Load", for the figures and how they were taken.
#include <cstdio>

#include "CLI/CLI.hpp"
#include "bench/load_harness.h"
#include "common/log/log.h"

int main(int argc, char** argv) {
  farm::log::SetProgramName("load_harness");
  farm::load::LoadOptions o;
  CLI::App app{"load_harness: many agents and bisects against one coordinator"};
  int test_min_ms = 50, test_max_ms = 150, timeout_s = 900;
  bool in_process = false;
  app.add_option("--agents", o.agents, "simulated agents")->capture_default_str();
  app.add_option("--slots", o.slots_per_agent, "slots per agent")->capture_default_str();
  app.add_option("--repos", o.repos, "generated repositories")->capture_default_str();
  app.add_option("--commits", o.commits, "commits per repository")->capture_default_str();
  app.add_option("--bisects-per-repo", o.bisects_per_repo, "bisects submitted per repository")
      ->capture_default_str();
  app.add_option("--test-min-ms", test_min_ms, "shortest simulated test")->capture_default_str();
  app.add_option("--test-max-ms", test_max_ms, "longest simulated test")->capture_default_str();
  app.add_option("--agents-per-channel", o.agents_per_channel,
                 "agents sharing a TCP connection (1: one each)")
      ->capture_default_str();
  app.add_flag("--in-process", in_process,
               "run the coordinator in this process (measures Assign delivery exactly; CPU and "
               "memory are then the harness's too)");
  app.add_option("--coordinator", o.coordinator_binary,
                 "farm-coordinator binary (default: next to this program)");
  app.add_option("--work-dir", o.work_dir, "where repositories and the database go");
  app.add_flag("--reuse-repos", o.reuse_repos,
               "keep the repositories an earlier run left in --work-dir");
  app.add_option("--timeout", timeout_s, "seconds to wait for every bisect")->capture_default_str();
  app.add_flag("--share-recipes", o.share_recipes,
               "submit identical recipes, so that bisects of a repository may reuse each other's "
               "verdicts (default: one recipe per bisect)");
  app.add_flag("-v,--verbose", o.verbose, "progress every 5 s");
  app.add_flag("--probe-dashboard", o.probe_dashboard,
               "measure the dashboard's JSON API (job list, job page) during the load");
  CLI11_PARSE(app, argc, argv);
  o.test_min = absl::Milliseconds(test_min_ms);
  o.test_max = absl::Milliseconds(test_max_ms);
  o.timeout = absl::Seconds(timeout_s);
  o.mode = in_process ? farm::load::LoadOptions::Mode::kInProcess
                      : farm::load::LoadOptions::Mode::kChild;
  absl::StatusOr<farm::load::LoadReport> r = farm::load::RunLoad(o);
  if (!r.ok()) {
    FARM_LOG(Error) << r.status().message();
    return 2;
  }
  std::printf("%d agents x %d slot(s), %d repos x %d commits, %d bisects, tests %d..%d ms, %s\n",
              o.agents, o.slots_per_agent, o.repos, o.commits, o.repos * o.bisects_per_repo,
              test_min_ms, test_max_ms,
              in_process ? "coordinator in process" : "coordinator as a child process");
  std::printf("%s", r->ToText().c_str());
  return r->ok() ? 0 : 1;
}
