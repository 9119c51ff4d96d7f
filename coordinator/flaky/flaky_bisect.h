// FlakyBisect: bisection with a test that is sometimes wrong.
//
// Plain bisection (Frontier) trusts every verdict, so one false pass sends it to the wrong half
// for good. This engine keeps a Bayesian posterior over which candidate is the culprit (the first
// bad commit) and treats every verdict as noisy evidence:
//
//  - Hypotheses: exactly one candidate c is the culprit (prior uniform, or weights given by the
//    caller), plus optionally "no culprit" (the bad commit's failure was itself a flake: every
//    commit of the range is truly good). A test at commit x is truly bad iff the culprit is an
//    ancestor-or-self of x in the DAG.
//  - Observations: a truly bad commit passes with probability false_pass, a truly good one fails
//    with probability false_fail, independently for every run.
//  - Probes: the commit whose next run has the largest expected information gain (the expected
//    reduction of the entropy of the posterior, in bits). For k probes at once the choice is
//    greedy: each further probe maximises its gain conditioned on the runs already in flight and
//    already chosen (their outcomes are unknown, so the gain is averaged over them). The same
//    commit is repeated whenever that is what gains most, so repeats happen only where they pay.
//  - Stopping: when the most likely hypothesis reaches the requested confidence, or after a
//    budget of runs.
//  - Rates: given, or learnt (see FlakyOptions::learn_rates).
//
// This follows BBChop (Bayesian bisection on DAGs, stops at a chosen certainty) and Flake Aware
// Culprit Finding (Henderson et al., ICST 2023: "no culprit" hypothesis, k parallel probes).
#ifndef FARM_COORDINATOR_FLAKY_FLAKY_BISECT_H_
#define FARM_COORDINATOR_FLAKY_FLAKY_BISECT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "coordinator/flaky/ancestor_index.h"
#include "coordinator/frontier/frontier.h"
#include "coordinator/graph/commit_graph.h"

namespace farm {

struct FlakyOptions {
  // P(a run passes | the commit is truly bad): the test misses the bug. In [0, 1).
  double false_pass = 0.1;
  // P(a run fails | the commit is truly good): an unrelated failure. In [0, 1).
  // false_pass + false_fail must be < 1 (otherwise a run tells nothing).
  double false_fail = 0.0;
  // Stop when the most likely hypothesis has at least this posterior probability. In (0, 1).
  double confidence = 0.95;
  // Stop after this many runs (good or bad verdicts) even if the confidence is not reached.
  // 0: no budget.
  size_t max_probes = 0;

  // Learn the rates from the runs instead of trusting false_pass / false_fail, which then only
  // give the prior means. Each rate gets a Beta prior of `rate_prior_strength` pseudo-runs
  // around its mean and is integrated out: for culprit c the runs below c are the truly bad
  // ones, so the false passes and false fails that c implies are known counts, and the
  // likelihood of c is the Beta-Binomial marginal of those counts (closed form, O(1) per
  // candidate). The posterior is thus exact under the prior, and no rate is ever taken as known.
  // The rates reported (false_pass()/false_fail()) and used to choose probes are their
  // posterior means. Every run teaches the rates, weighted by how sure the posterior is of its
  // commit's truth: runs of the bad commit count fully towards false_pass, runs of the good
  // endpoint (ObserveGoodEndpoint) fully towards false_fail.
  bool learn_rates = false;
  double rate_prior_strength = 10.0;  // > 0
  // With learn_rates: the first NextProbes calls return the bad commit until this many runs of it
  // have been observed or are in flight (a known-bad commit repeated shows the false-pass rate
  // directly; the information-gain rule alone never tests it). 0: none.
  size_t calibration_runs = 0;

  // Prior probability of "no culprit in the range". In [0, 1). 0 disables the hypothesis (the
  // bad commit is taken to be truly bad; runs of it then only matter for learning the rates).
  double no_culprit_prior = 0.0;
  // Prior weights of the commits, indexed by CommitId: empty for uniform, else exactly
  // graph->size() non-negative entries with a positive sum over the candidates. Normalized to
  // 1 - no_culprit_prior.
  std::vector<double> prior;
};

// Rates are used clamped to [kMinRate, 1 - kMinRate], with false_pass + false_fail at most
// 1 - kMinRate: a rate of exactly 0 would make a single contradicting run (of a test believed
// perfect) rule out the true culprit for good.
inline constexpr double kMinRate = 1e-6;

// The prior means of `--flaky learn`.
inline constexpr double kLearnPriorFalsePass = 0.2;
inline constexpr double kLearnPriorFalseFail = 0.02;

// Joint outcomes of the pending runs that probe selection conditions on. Pending runs at
// distinct commits beyond this (more than 9, or fewer when some commits run several times) are
// left out of the conditioning, oldest first.
inline constexpr size_t kMaxPendingOutcomes = 512;

// Validates `options` (ranges above; `prior` checked against `graph` when non-null).
// INVALID_ARGUMENT, saying which option is wrong and what is allowed.
absl::Status ValidateFlakyOptions(const FlakyOptions& options, const CommitGraph* graph);

// Parses the value of a `--flaky` flag into `options`:
//   "FP,FF"  given rates, e.g. "0.1,0.05";
//   "FP"     given false-pass rate, false_fail 0;
//   "learn"  rates learnt from the runs (prior means kLearnPriorFalsePass/FalseFail);
//   "learn:FP,FF"  learnt, with these prior means.
// INVALID_ARGUMENT for anything else, with an example of the expected form.
absl::Status ParseFlakyFlag(absl::string_view value, FlakyOptions& options);

// The state of one flaky-aware bisection.
//
// Copyable (the graph and its ancestry index are shared, the posterior is copied: O(size())).
// Thread safety: const methods may be called concurrently; Observe and ObserveGoodEndpoint need
// exclusive access.
class FlakyBisect {
 public:
  // Starts with no runs observed. Errors: INVALID_ARGUMENT for an empty graph (nothing to
  // bisect) or invalid options (ValidateFlakyOptions).
  // Cost: building the AncestorIndex (see there) plus O(size()).
  static absl::StatusOr<FlakyBisect> Create(std::shared_ptr<const CommitGraph> graph,
                                            FlakyOptions options);

  // Records a verdict of one run at `id`. kGood and kBad update the posterior (and the rates
  // when learning). kSkip marks `id` untestable: NextProbes will not choose it again, and a later
  // kGood/kBad at it un-skips it. Commits that are not candidates (not ancestors of the bad
  // commit; only possible in hand-built graphs) are evidence like any other.
  // INVALID_ARGUMENT if `id` is not in the graph (nothing changes).
  // Cost: a walk of the ancestors of `id`, plus O(size() + separations) to recompute the
  // posterior and the ancestor masses (plus O(probes()) log-gammas when learning the rates).
  absl::Status Observe(CommitId id, Verdict verdict);

  // As Observe for each run in turn, but recomputes the posterior once: for a batch of results,
  // or to replay a job's recorded verdicts after a restart (the posterior does not depend on
  // the order of the good and bad runs). INVALID_ARGUMENT, changing nothing, if any id is not
  // in the graph.
  absl::Status ObserveAll(absl::Span<const std::pair<CommitId, Verdict>> runs);

  // Records a run of the good endpoint (outside the range, truly good under every hypothesis):
  // it does not move the posterior, but teaches the false-fail rate when learning.
  void ObserveGoodEndpoint(bool bad);

  // Up to `k` commits to run next, best first, given that the runs in `in_flight` (commit ids,
  // repeats allowed; ids not in the graph are ignored) have started and not reported. A commit
  // may appear several times in the result (repeated runs pay), and may be in in_flight.
  // Each pick maximises the expected information gain given the pending runs (in_flight and the
  // earlier picks), averaged over their unknown outcomes (exactly, for up to
  // kMaxPendingOutcomes joint outcomes). Empty when Done(), or when no run of any testable
  // commit can change the posterior. Ties go to the smaller id.
  // Cost: O(size()) to order the commits by their unconditional gain; then per pick with m
  // distinct pending commits, m ancestry walks, one ancestor-mass pass per cell of their
  // truth patterns (m + 1 cells on linear histories), and the exact gains (O(cells x outcomes)
  // each) of only the commits whose upper bound beats the best so far. For k = 1 with nothing
  // in flight, O(size()). Measured (diffuse posterior, see bench/README.md, "Coordinator cost"):
  // 10,000 commits: 0.1 ms for k = 1, 13-22 ms for k = 8; 80,000 commits: 1-4 ms for k = 1, 105-215
  // ms for k = 8.
  std::vector<CommitId> NextProbes(size_t k, const std::vector<CommitId>& in_flight) const;

  // The expected information gain, in bits, of one more run at `x` with nothing in flight.
  // 0 for ids not in the graph.
  double ExpectedGain(CommitId x) const;

  // True when the answer is known well enough: Confidence() or NoCulpritProbability() has reached
  // options.confidence, or options.max_probes runs have been observed, or no testable commit
  // can change the posterior any more (everything that could decide is skipped).
  bool Done() const;

  // True when Done() because of the budget (or of skips), not the confidence.
  bool Inconclusive() const;

  // The most likely culprit (ties: the smaller id), and its posterior probability.
  CommitId Best() const { return best_; }
  double Confidence() const { return posterior_[best_]; }

  // Posterior probability of "no culprit in the range" (0 when the hypothesis is disabled).
  double NoCulpritProbability() const { return no_culprit_; }

  // The n most likely culprits with their posterior probabilities, most likely first (ties: the
  // smaller id). Only candidates.
  std::vector<std::pair<CommitId, double>> Top(size_t n) const;

  // Posterior probability that `id` is the culprit (0 for non-candidates and ids out of range).
  double Posterior(CommitId id) const;

  // Posterior probability that a test at `id` is truly bad: the mass of its candidate
  // ancestors-or-self. 0 for ids out of range.
  double ProbabilityBad(CommitId id) const;

  // The rates in use (the learnt estimates when learning), clamped as kMinRate says.
  double false_pass() const { return false_pass_; }
  double false_fail() const { return false_fail_; }

  // Runs observed (good and bad verdicts, in the range; not skips, not the good endpoint).
  size_t probes() const { return probes_; }
  // Runs observed at `id`.
  size_t runs_at(CommitId id) const;

  size_t num_candidates() const { return index_->num_candidates(); }
  const CommitGraph& graph() const { return index_->graph(); }
  const FlakyOptions& options() const { return options_; }

 private:
  FlakyBisect(std::shared_ptr<const AncestorIndex> index, FlakyOptions options);

  // Recomputes posterior_, best_, no_culprit_ and mass_ from the counts and the rates (given, or
  // when learning integrated out, and then the rates in use become their posterior means).
  void Recompute();
  void SetRates(double false_pass, double false_fail);
  // The expected information gain of one run at a commit that is truly bad with probability q,
  // with nothing pending.
  double Gain(double q) const;

  std::shared_ptr<const AncestorIndex> index_;
  FlakyOptions options_;
  std::vector<double> log_prior_;  // by id; candidates only
  double log_prior_none_;          // -inf when disabled

  // Sufficient statistics: bad_below_[c] / good_below_[c] count the bad / good runs at the
  // descendants-or-self of candidate c (the runs that are truly bad if c is the culprit).
  std::vector<uint32_t> bad_below_;
  std::vector<uint32_t> good_below_;
  uint64_t bad_total_ = 0;
  uint64_t good_total_ = 0;
  // Runs by commit.
  std::vector<uint32_t> bad_runs_;
  std::vector<uint32_t> good_runs_;
  // Runs of the good endpoint.
  uint64_t endpoint_bad_ = 0;
  uint64_t endpoint_runs_ = 0;
  std::vector<uint8_t> skipped_;
  size_t probes_ = 0;

  double false_pass_ = 0;
  double false_fail_ = 0;
  double noise_bad_ = 0;   // H2(false_pass_): entropy of a run at a truly bad commit
  double noise_good_ = 0;  // H2(false_fail_)

  std::vector<double> posterior_;  // by id
  double no_culprit_ = 0;
  CommitId best_ = 0;
  std::vector<double> mass_;  // by id: ProbabilityBad
  bool informative_ = true;   // some testable commit's truth is still uncertain
};

}  // namespace farm

#endif  // FARM_COORDINATOR_FLAKY_FLAKY_BISECT_H_
