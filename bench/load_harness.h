// Load harness: one coordinator on loopback (real gRPC), many simulated agents on real
// AgentLink.Connect streams, many concurrent bisects over generated repositories, every one
// watched to the end. Checks that every bisect names the right commit and that no result is lost
// or counted twice; measures assignment latency and the coordinator's CPU time and memory.
//
// The simulated agents answer each Assign with the repository's truth (a commit is bad iff it
// contains the file `bug`, computed with git once per repository), after a simulated test time,
// and confirm each Cancel with TaskResult{cancelled: true}, as farm.proto asks.
//
// Thread safety: RunLoad may be called from one thread at a time.
#ifndef FARM_BENCH_LOAD_HARNESS_H_
#define FARM_BENCH_LOAD_HARNESS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace farm::load {

struct LoadOptions {
  int agents = 1000;
  int slots_per_agent = 1;
  int repos = 10;
  int commits = 2000;  // per repository (make_repo.py --shape merges)
  int bisects_per_repo = 20;
  // Simulated test time, uniform in [min, max].
  absl::Duration test_min = absl::Milliseconds(50);
  absl::Duration test_max = absl::Milliseconds(150);
  // Agents sharing one gRPC channel (one TCP connection); 1: every agent its own connection.
  int agents_per_channel = 1;
  // kChild runs `coordinator_binary` (farm-coordinator) as a child process, so that its CPU time
  // and memory are its own. kInProcess runs CoordinatorServer in this process; it also measures
  // the exact Assign delivery latency (the coordinator's send time comes from a Watch hook).
  enum class Mode { kChild, kInProcess };
  Mode mode = Mode::kChild;
  std::string coordinator_binary;  // default: farm-coordinator next to this program
  std::string work_dir;            // repositories and the database; default: a new temp dir
  // Keep the repositories an earlier run made in work_dir (the database is always new).
  bool reuse_repos = false;
  int submit_threads = 8;
  // Bisects of the same repository with the same recipe: the coordinator may then reuse one
  // bisect's verdicts in another (its verdict cache). Off: every bisect gets its own recipe.
  bool share_recipes = false;
  absl::Duration timeout = absl::Minutes(15);
  bool verbose = false;  // a progress line every 5 s on stderr
  // Child mode: while the bisects run, a client reads the dashboard's JSON API in a loop (the
  // job list, and the page of a running job in turn), measuring each request (api_* below).
  bool probe_dashboard = false;
};

// Latency samples in milliseconds.
struct Latency {
  std::vector<double> ms;
  double Percentile(double p) const;  // p in [0, 100]; 0 when empty
  std::string Summary() const;        // "n=..., p50=..., p90=..., p99=..., max=..."
};

struct LoadReport {
  // Correctness.
  int bisects = 0;
  int correct = 0;           // FOUND with the repository's culprit
  int wrong = 0;             // ended with another answer
  int unfinished = 0;        // still running at the timeout, or the watch stream failed
  int64_t results_sent = 0;  // TaskResults the agents sent (verdicts, not cancellations)
  int64_t results_lost = 0;  // sent, but neither counted nor shown as cancelled
  int64_t results_counted_twice = 0;
  int64_t cancel_confirmations = 0;
  int64_t assigns = 0;
  int64_t duplicate_task_ids = 0;
  int64_t watch_events = 0;
  int64_t broken_streams = 0;         // agent streams that ended before the harness closed them
  std::vector<std::string> problems;  // the first few, in words
  // Child mode: how the coordinator ended when it crashed, exited early or did not stop cleanly
  // on SIGTERM; empty when it stopped as asked.
  std::string coordinator_crash;

  // Latency.
  Latency assign_delivery;  // coordinator sends Assign -> agent receives it (in-process)
  // An agent sends a verdict -> the first Assign the coordinator sent in reaction to it (the
  // next "testing" event of the job right after the verdict's event) arrives at its agent.
  Latency verdict_to_next_assign;
  Latency result_to_refill;  // an agent sends a result -> that agent's next Assign arrives
  // The coordinator's own farm_assign_latency_seconds{trigger="agent_message"} (its /metrics):
  // from the arrival of an agent's result or cancellation confirmation to the Assign it made
  // possible being queued, the wait for the lock included. Bucket upper bounds, in ms.
  uint64_t coordinator_assigns = 0;
  double coordinator_assign_p50_ms = 0, coordinator_assign_p99_ms = 0,
         coordinator_assign_mean_ms = 0;
  Latency submit;  // SubmitBisect round trip
  // probe_dashboard: GET /api/v1/jobs?limit=200 and GET /api/v1/jobs/ID round trips under load.
  Latency api_job_list;
  Latency api_job_page;
  Latency job_elapsed;  // each bisect, submitted to ended (JobStatus.elapsed_seconds)
  // Median time to end of the bisects submitted first (lower half of job ids) and last: far
  // apart when the scheduler serves jobs in id order instead of sharing the agents.
  double first_half_median_s = 0, second_half_median_s = 0;
  int64_t verdicts_without_next_assign = 0;  // the job ended, or what it needs is already running

  // Resources of the coordinator process (child mode: its own; in-process: the whole harness).
  double coordinator_user_seconds = 0;
  double coordinator_sys_seconds = 0;
  int64_t coordinator_peak_rss_kb = 0;  // VmHWM
  int64_t coordinator_idle_rss_kb = 0;  // after start, before any agent
  int64_t coordinator_end_rss_kb = 0;   // every bisect ended, agents still connected
  int coordinator_threads = 0;          // at the end of the load
  double harness_cpu_seconds = 0;       // this process (agents and watchers)
  double setup_seconds = 0;             // repositories and truth
  double connect_seconds = 0;           // all agents welcomed
  double load_seconds = 0;              // first submit -> last bisect ended
  double tasks_per_second = 0;

  bool ok() const {
    return wrong == 0 && unfinished == 0 && results_lost == 0 && results_counted_twice == 0 &&
           duplicate_task_ids == 0 && correct == bisects && broken_streams == 0 &&
           coordinator_crash.empty() &&
           coordinator_assigns > 0;  // its /metrics were served and counted the assignments
  }
  std::string ToText() const;
};

// Runs the whole load. Errors: FAILED_PRECONDITION when a tool is missing (git, python3, the
// coordinator binary); INTERNAL when the coordinator dies before it listens; other set-up
// failures (agents cannot connect). A run that completes with wrong answers, or whose coordinator
// crashed, is a LoadReport with ok() false, not an error.
absl::StatusOr<LoadReport> RunLoad(const LoadOptions& options);

}  // namespace farm::load

#endif  // FARM_BENCH_LOAD_HARNESS_H_
