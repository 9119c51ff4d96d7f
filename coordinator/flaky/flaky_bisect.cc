#include "coordinator/flaky/flaky_bisect.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace farm {
namespace {

// A commit whose test is bad (or good) with probability within this of 1 is not worth a run:
// its outcome is independent of the culprit up to this much.
constexpr double kCertainTruth = 1e-9;
// Gains below this many bits are treated as zero (rounding noise).
constexpr double kMinGain = 1e-12;

double Clamp(double rate) { return std::min(1.0 - kMinRate, std::max(kMinRate, rate)); }

// Binary entropy in bits.
double H2(double p) {
  if (p <= 0.0 || p >= 1.0) return 0.0;
  return -(p * std::log2(p) + (1.0 - p) * std::log2(1.0 - p));
}

// C(n, k) as a double; n is small (runs pending at one commit).
double Choose(uint32_t n, uint32_t k) {
  double c = 1.0;
  for (uint32_t i = 1; i <= k; ++i) c = c * (n - k + i) / i;
  return c;
}

}  // namespace

absl::Status ValidateFlakyOptions(const FlakyOptions& o, const CommitGraph* graph) {
  auto bad = [](const std::string& what) { return absl::InvalidArgumentError(what); };
  if (!(o.false_pass >= 0.0 && o.false_pass < 1.0)) {
    return bad(absl::StrCat("false-pass rate ", o.false_pass,
                            " is out of range: it must be in [0, 1), e.g. --flaky 0.3,0.05"));
  }
  if (!(o.false_fail >= 0.0 && o.false_fail < 1.0)) {
    return bad(absl::StrCat("false-fail rate ", o.false_fail,
                            " is out of range: it must be in [0, 1), e.g. --flaky 0.3,0.05"));
  }
  if (!(o.false_pass + o.false_fail < 1.0)) {
    return bad(absl::StrCat("false-pass ", o.false_pass, " + false-fail ", o.false_fail,
                            " must be below 1: with these rates a run says nothing about the "
                            "commit (did you give the pass rates instead of the error rates?)"));
  }
  if (!(o.confidence > 0.0 && o.confidence < 1.0)) {
    return bad(absl::StrCat("confidence ", o.confidence,
                            " is out of range: it must be in (0, 1), e.g. --confidence 0.95"));
  }
  if (!(o.rate_prior_strength > 0.0) || std::isinf(o.rate_prior_strength)) {
    return bad(absl::StrCat("rate prior strength ", o.rate_prior_strength,
                            " must be a positive number of pseudo-runs, e.g. 10"));
  }
  if (!(o.no_culprit_prior >= 0.0 && o.no_culprit_prior < 1.0)) {
    return bad(absl::StrCat("no-culprit prior ", o.no_culprit_prior,
                            " is out of range: it must be in [0, 1) (0 disables it)"));
  }
  if (!o.prior.empty()) {
    for (double w : o.prior) {
      if (!(w >= 0.0) || std::isinf(w)) {
        return bad(absl::StrCat("prior weight ", w, " must be finite and non-negative"));
      }
    }
    if (graph != nullptr) {
      if (o.prior.size() != graph->size()) {
        return bad(absl::StrCat("prior has ", o.prior.size(), " weights but the range has ",
                                graph->size(), " commits: give one weight per commit, or none"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ParseFlakyFlag(absl::string_view value, FlakyOptions& options) {
  FlakyOptions parsed = options;
  absl::string_view rates = value;
  parsed.learn_rates = value == "learn" || absl::ConsumePrefix(&rates, "learn:");
  if (value == "learn") {
    parsed.false_pass = kLearnPriorFalsePass;
    parsed.false_fail = kLearnPriorFalseFail;
  } else {
    std::vector<absl::string_view> parts = absl::StrSplit(rates, ',');
    double fp = 0, ff = 0;
    if (parts.size() > 2 || !absl::SimpleAtod(parts[0], &fp) ||
        (parts.size() == 2 && !absl::SimpleAtod(parts[1], &ff))) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot parse --flaky '", value,
                       "': expected FALSE_PASS[,FALSE_FAIL] rates (e.g. 0.3,0.05), 'learn', or "
                       "'learn:0.3,0.05' (learnt, starting from these)"));
    }
    parsed.false_pass = fp;
    parsed.false_fail = ff;
  }
  if (absl::Status s = ValidateFlakyOptions(parsed, nullptr); !s.ok()) return s;
  options = std::move(parsed);
  return absl::OkStatus();
}

absl::StatusOr<FlakyBisect> FlakyBisect::Create(std::shared_ptr<const CommitGraph> graph,
                                                FlakyOptions options) {
  if (graph == nullptr || graph->size() == 0) {
    return absl::InvalidArgumentError(
        "the bisect range is empty: the bad commit is reachable from a good one, so there is "
        "nothing to bisect (check --good and --bad)");
  }
  if (absl::Status s = ValidateFlakyOptions(options, graph.get()); !s.ok()) return s;
  auto index = std::make_shared<const AncestorIndex>(std::move(graph));
  if (!options.prior.empty()) {
    double total = 0;
    for (CommitId c = 0; c < options.prior.size(); ++c) {
      if (index->is_candidate(c)) total += options.prior[c];
    }
    if (!(total > 0)) {
      return absl::InvalidArgumentError(
          "the prior gives no weight to any candidate: at least one commit that is an ancestor "
          "of the bad commit needs a positive weight");
    }
  }
  return FlakyBisect(std::move(index), std::move(options));
}

FlakyBisect::FlakyBisect(std::shared_ptr<const AncestorIndex> index, FlakyOptions options)
    : index_(std::move(index)), options_(std::move(options)) {
  const size_t n = index_->graph().size();
  const double culprit_mass = 1.0 - options_.no_culprit_prior;
  log_prior_.assign(n, -std::numeric_limits<double>::infinity());
  double total = 0;
  for (CommitId c = 0; c < n; ++c) {
    if (index_->is_candidate(c)) total += options_.prior.empty() ? 1.0 : options_.prior[c];
  }
  for (CommitId c = 0; c < n; ++c) {
    if (!index_->is_candidate(c)) continue;
    const double w = options_.prior.empty() ? 1.0 : options_.prior[c];
    if (w > 0) log_prior_[c] = std::log(culprit_mass * w / total);
  }
  log_prior_none_ = options_.no_culprit_prior > 0 ? std::log(options_.no_culprit_prior)
                                                  : -std::numeric_limits<double>::infinity();
  bad_below_.assign(n, 0);
  good_below_.assign(n, 0);
  bad_runs_.assign(n, 0);
  good_runs_.assign(n, 0);
  skipped_.assign(n, 0);
  SetRates(options_.false_pass, options_.false_fail);
  Recompute();
}

absl::Status FlakyBisect::Observe(CommitId id, Verdict verdict) {
  const std::pair<CommitId, Verdict> run{id, verdict};
  return ObserveAll(absl::MakeConstSpan(&run, 1));
}

absl::Status FlakyBisect::ObserveAll(absl::Span<const std::pair<CommitId, Verdict>> runs) {
  const size_t n = index_->graph().size();
  for (const auto& [id, verdict] : runs) {
    if (id >= n) {
      return absl::InvalidArgumentError(
          absl::StrCat("commit id ", id, " is not in the bisect range (", n, " commits)"));
    }
  }
  std::vector<uint8_t> visited;
  for (const auto& [id, verdict] : runs) {
    if (verdict == Verdict::kSkip) {
      skipped_[id] = 1;
      continue;
    }
    skipped_[id] = 0;
    const bool bad = verdict == Verdict::kBad;
    std::vector<uint32_t>& below = bad ? bad_below_ : good_below_;
    index_->ForEachAncestor(id, visited, [&](CommitId c) { ++below[c]; });
    (bad ? bad_total_ : good_total_) += 1;
    (bad ? bad_runs_ : good_runs_)[id] += 1;
    ++probes_;
  }
  if (!runs.empty()) Recompute();
  return absl::OkStatus();
}

void FlakyBisect::ObserveGoodEndpoint(bool bad) {
  ++endpoint_runs_;
  if (bad) ++endpoint_bad_;
  if (options_.learn_rates) Recompute();
}

void FlakyBisect::SetRates(double false_pass, double false_fail) {
  false_pass = Clamp(false_pass);
  false_fail = Clamp(false_fail);
  // Keep a run more likely to fail at a bad commit than at a good one (only learnt rates can
  // get there: given ones are validated).
  const double excess = false_pass + false_fail - (1.0 - kMinRate);
  if (excess > 0) {
    const double sum = false_pass + false_fail;
    false_pass -= excess * false_pass / sum;
    false_fail -= excess * false_fail / sum;
  }
  false_pass_ = false_pass;
  false_fail_ = false_fail;
  noise_bad_ = H2(false_pass_);
  noise_good_ = H2(false_fail_);
}

void FlakyBisect::Recompute() {
  const size_t n = index_->graph().size();
  posterior_.assign(n, 0.0);
  double max_ll;
  if (!options_.learn_rates) {
    // Log-likelihood relative to "every run was at a truly good commit", which all hypotheses
    // share: each run below c (truly bad if c is the culprit) changes it by the log ratio.
    const double bad_ratio = std::log(1.0 - false_pass_) - std::log(false_fail_);
    const double good_ratio = std::log(false_pass_) - std::log(1.0 - false_fail_);
    max_ll = log_prior_none_;
    for (CommitId c = 0; c < n; ++c) {
      if (!index_->is_candidate(c)) continue;
      const double ll = log_prior_[c] + bad_below_[c] * bad_ratio + good_below_[c] * good_ratio;
      posterior_[c] = ll;
      max_ll = std::max(max_ll, ll);
    }
  } else {
    // Rates unknown, with Beta priors: they are integrated out. If c is the culprit, the runs
    // below c are the truly bad ones: good_below_[c] false passes out of
    // good_below_[c] + bad_below_[c], and the others hold bad_total_ - bad_below_[c] false
    // fails; the Beta-Binomial marginal likelihood of those counts is a ratio of Beta
    // functions. The counts are integers <= probes_, so the log-gammas are tabulated.
    const double s = options_.rate_prior_strength;
    const double fp_mean = Clamp(options_.false_pass), ff_mean = Clamp(options_.false_fail);
    const double a1 = fp_mean * s, b1 = (1.0 - fp_mean) * s;
    const double a0 = ff_mean * s + static_cast<double>(endpoint_bad_);
    const double b0 = (1.0 - ff_mean) * s + static_cast<double>(endpoint_runs_ - endpoint_bad_);
    const size_t runs = probes_ + 1;
    std::vector<double> la1(runs), lb1(runs), ls1(runs), la0(runs), lb0(runs), ls0(runs);
    for (size_t i = 0; i < runs; ++i) {
      const double d = static_cast<double>(i);
      la1[i] = std::lgamma(a1 + d);
      lb1[i] = std::lgamma(b1 + d);
      ls1[i] = std::lgamma(a1 + b1 + d);
      la0[i] = std::lgamma(a0 + d);
      lb0[i] = std::lgamma(b0 + d);
      ls0[i] = std::lgamma(a0 + b0 + d);
    }
    const size_t bad_total = bad_total_, good_total = good_total_;
    // Per hypothesis: (false passes, truly bad runs, false fails, truly good runs).
    auto log_marginal = [&](size_t fp, size_t tb, size_t ff, size_t tg) {
      return la1[fp] + lb1[tb - fp] - ls1[tb] + la0[ff] + lb0[tg - ff] - ls0[tg];
    };
    max_ll = log_prior_none_ + log_marginal(0, 0, bad_total, bad_total + good_total);
    const double none_ll = max_ll;
    double fp_sum = 0, ff_sum = 0;  // for the posterior means, below
    for (CommitId c = 0; c < n; ++c) {
      if (!index_->is_candidate(c)) continue;
      const size_t gb = good_below_[c], bb = bad_below_[c];
      const double ll = log_prior_[c] +
                        log_marginal(gb, gb + bb, bad_total - bb, bad_total + good_total - gb - bb);
      posterior_[c] = ll;
      max_ll = std::max(max_ll, ll);
    }
    // Posterior means of the rates, used to choose probes: E[fp] = sum over hypotheses of
    // P(h) (a1 + false passes) / (a1 + b1 + truly bad runs), likewise E[ff].
    double total = std::exp(none_ll - max_ll);
    fp_sum = total * a1 / (a1 + b1);
    ff_sum = total * (a0 + bad_total) / (a0 + b0 + bad_total + good_total);
    for (CommitId c = 0; c < n; ++c) {
      if (!index_->is_candidate(c)) continue;
      const double p = std::exp(posterior_[c] - max_ll);
      const double gb = good_below_[c], bb = bad_below_[c];
      total += p;
      fp_sum += p * (a1 + gb) / (a1 + b1 + gb + bb);
      ff_sum += p * (a0 + bad_total - bb) / (a0 + b0 + bad_total + good_total - gb - bb);
    }
    SetRates(fp_sum / total, ff_sum / total);
  }
  double total = 0;
  best_ = index_->graph().bad();
  double best_p = -1;
  for (CommitId c = 0; c < n; ++c) {
    if (!index_->is_candidate(c)) continue;
    const double p = std::exp(posterior_[c] - max_ll);
    posterior_[c] = p;
    total += p;
  }
  const double none = std::exp(log_prior_none_ - max_ll);
  total += none;
  for (CommitId c = 0; c < n; ++c) {
    if (!index_->is_candidate(c)) continue;
    posterior_[c] /= total;
    if (posterior_[c] > best_p) {
      best_p = posterior_[c];
      best_ = c;
    }
  }
  no_culprit_ = none / total;
  index_->Sum(posterior_, mass_);
  informative_ = false;
  for (CommitId x = 0; x < n && !informative_; ++x) {
    if (index_->is_candidate(x) && !skipped_[x]) {
      informative_ = std::min(mass_[x], 1.0 - mass_[x]) > kCertainTruth;
    }
  }
}

bool FlakyBisect::Done() const {
  if (options_.max_probes > 0 && probes_ >= options_.max_probes) return true;
  if (Confidence() >= options_.confidence || no_culprit_ >= options_.confidence) return true;
  return !informative_;
}

bool FlakyBisect::Inconclusive() const {
  return Done() && Confidence() < options_.confidence && no_culprit_ < options_.confidence;
}

double FlakyBisect::Gain(double q) const {
  q = std::min(1.0, std::max(0.0, q));
  const double r = false_fail_ + (1.0 - false_pass_ - false_fail_) * q;
  return H2(r) - q * noise_bad_ - (1.0 - q) * noise_good_;
}

double FlakyBisect::ExpectedGain(CommitId x) const {
  if (x >= index_->graph().size()) return 0.0;
  return std::max(0.0, Gain(ProbabilityBad(x)));
}

std::vector<CommitId> FlakyBisect::NextProbes(size_t k,
                                              const std::vector<CommitId>& in_flight) const {
  std::vector<CommitId> picks;
  if (k == 0 || Done()) return picks;
  const size_t n = index_->graph().size();
  std::vector<CommitId> pending;
  for (CommitId c : in_flight) {
    if (c < n) pending.push_back(c);
  }
  if (options_.learn_rates && options_.calibration_runs > 0) {
    const CommitId bad = index_->graph().bad();
    size_t have =
        runs_at(bad) + static_cast<size_t>(std::count(pending.begin(), pending.end(), bad));
    while (have < options_.calibration_runs && picks.size() < k) {
      picks.push_back(bad);
      ++have;
    }
  }
  const double alpha = 1.0 - false_pass_ - false_fail_;

  // Bounds. The gain of a run at x with nothing pending, Gain(q) with q = P(x truly bad), is
  // concave in q and peaks at q_star. Conditioning on more pending runs can only lower a gain:
  // I(culprit; Y | pending) = H(Y | pending) - H(Y | culprit) since Y and the pending runs are
  // independent given the culprit, and conditioning lowers H(Y | .). So the greedy choice is
  // made lazily (as for submodular maximisation): a gain computed earlier in this call is an
  // upper bound on the gain now, commits never evaluated are bounded by Gain(q), and a stale
  // bound is first tightened by conditioning on each pending commit alone (the minimum over
  // them). Commits are taken in order of decreasing bound until the bound falls below the best
  // exact gain, so the result is the exact greedy choice.
  const double slope = (noise_bad_ - noise_good_) / alpha;
  const double r_star = 1.0 / (1.0 + std::exp2(slope));
  const double q_star = std::min(1.0, std::max(0.0, (r_star - false_fail_) / alpha));

  // The never-evaluated commits: two heaps by q, which give them in order of decreasing
  // Gain(q) when merged: those with q <= q_star by decreasing q, the others by increasing q.
  // Ties go to the smaller id.
  using Entry = std::pair<double, CommitId>;  // (q, x)
  std::vector<Entry> below, above;
  for (CommitId x = 0; x < n; ++x) {
    if (!index_->is_candidate(x) || skipped_[x]) continue;
    const double q = mass_[x];
    if (std::min(q, 1.0 - q) <= kCertainTruth) continue;  // its run says nothing
    (q <= q_star ? below : above).emplace_back(q, x);
  }
  const auto below_less = [](const Entry& a, const Entry& b) {
    return a.first != b.first ? a.first < b.first : a.second > b.second;
  };
  const auto above_less = [](const Entry& a, const Entry& b) {
    return a.first != b.first ? a.first > b.first : a.second > b.second;
  };
  std::make_heap(below.begin(), below.end(), below_less);
  std::make_heap(above.begin(), above.end(), above_less);
  // The evaluated commits, by their last bound. `pick` is the pick the bound was computed for
  // (-1: Gain(q), nothing pending), `exact` whether it is the exact gain for that pick's
  // pending runs (otherwise the cheaper bound of conditioning on one pending commit at a time).
  struct Evaluated {
    double bound;
    CommitId x;
    double q;
    int pick;
    bool exact;
  };
  const auto evaluated_less = [](const Evaluated& a, const Evaluated& b) {
    return a.bound != b.bound ? a.bound < b.bound : a.x > b.x;
  };
  std::vector<Evaluated> evaluated;
  auto push_evaluated = [&](Evaluated e) {
    evaluated.push_back(e);
    std::push_heap(evaluated.begin(), evaluated.end(), evaluated_less);
  };
  // The commit with the largest bound (ties: smaller id), removed from where it was; false when
  // there is none.
  auto pop_best_bound = [&](Evaluated* out) {
    Evaluated cands[3];
    int sources[3];
    int count = 0;
    if (!below.empty()) {
      cands[count] = {Gain(below.front().first), below.front().second, below.front().first, -1,
                      false};
      sources[count++] = 0;
    }
    if (!above.empty()) {
      cands[count] = {Gain(above.front().first), above.front().second, above.front().first, -1,
                      false};
      sources[count++] = 1;
    }
    if (!evaluated.empty()) {
      cands[count] = evaluated.front();
      sources[count++] = 2;
    }
    if (count == 0) return false;
    int best = 0;
    for (int i = 1; i < count; ++i) {
      if (evaluated_less(cands[best], cands[i])) best = i;
    }
    *out = cands[best];
    switch (sources[best]) {
      case 0:
        std::pop_heap(below.begin(), below.end(), below_less);
        below.pop_back();
        break;
      case 1:
        std::pop_heap(above.begin(), above.end(), above_less);
        above.pop_back();
        break;
      default:
        std::pop_heap(evaluated.begin(), evaluated.end(), evaluated_less);
        evaluated.pop_back();
        break;
    }
    return true;
  };

  std::vector<uint8_t> visited;
  std::vector<uint32_t> pattern;
  std::vector<uint32_t> cell_of;
  std::vector<double> cell_mass;
  std::vector<double> by_cell;
  std::vector<uint32_t> cell_pattern;
  std::vector<double> like;
  std::vector<double> outcome_mass;
  std::vector<double> single_like;  // per pending commit i: P(o bad runs | in / out of anc(i))
  std::vector<double> single_mass;  // per pending commit i and o: P(o bad runs)
  std::vector<size_t> single_offset;
  std::vector<double> in_mass;  // per pending commit i: P(truly bad at i)
  int pick = 0;
  for (; picks.size() < k; ++pick) {
    std::vector<CommitId> given = pending;
    given.insert(given.end(), picks.begin(), picks.end());
    // Distinct pending commits and their run counts, in order of first appearance.
    std::vector<std::pair<CommitId, uint32_t>> distinct;
    for (CommitId c : given) {
      auto it = std::find_if(distinct.begin(), distinct.end(),
                             [c](const auto& d) { return d.first == c; });
      if (it == distinct.end()) {
        distinct.emplace_back(c, 1);
      } else {
        ++it->second;
      }
    }
    // Keep the most recent ones whose joint outcomes fit the budget.
    size_t outcomes = 1;
    size_t first = distinct.size();
    while (first > 0 && outcomes * (distinct[first - 1].second + 1) <= kMaxPendingOutcomes) {
      --first;
      outcomes *= distinct[first].second + 1;
    }
    distinct.erase(distinct.begin(), distinct.begin() + static_cast<std::ptrdiff_t>(first));
    const size_t m = distinct.size();

    size_t cells = 0;
    if (m > 0) {
      // Cells: candidates grouped by which pending commits they would make truly bad.
      pattern.assign(n, 0);
      for (size_t i = 0; i < m; ++i) {
        index_->ForEachAncestor(distinct[i].first, visited,
                                [&](CommitId c) { pattern[c] |= uint32_t{1} << i; });
      }
      std::vector<int32_t> cell_of_pattern(size_t{1} << m, -1);
      cell_pattern.clear();
      cell_of.assign(n, 0);
      cell_mass.clear();
      auto cell_for = [&](uint32_t p) {
        if (cell_of_pattern[p] < 0) {
          cell_of_pattern[p] = static_cast<int32_t>(cell_pattern.size());
          cell_pattern.push_back(p);
          cell_mass.push_back(0.0);
        }
        return static_cast<uint32_t>(cell_of_pattern[p]);
      };
      for (CommitId c = 0; c < n; ++c) {
        if (!index_->is_candidate(c)) continue;
        const uint32_t j = cell_for(pattern[c]);
        cell_of[c] = j;
        cell_mass[j] += posterior_[c];
      }
      if (no_culprit_ > 0) cell_mass[cell_for(0)] += no_culprit_;
      cells = cell_pattern.size();
      index_->SumByCell(posterior_, cell_of, cells, by_cell);

      // like[o * cells + j] = P(outcome o of the pending runs | cell j), where outcome o is the
      // number of bad runs at each pending commit (mixed radix).
      like.assign(outcomes * cells, 0.0);
      outcome_mass.assign(outcomes, 0.0);
      std::vector<uint32_t> count(m, 0);
      for (size_t o = 0; o < outcomes; ++o) {
        for (size_t j = 0; j < cells; ++j) {
          double l = 1.0;
          for (size_t i = 0; i < m; ++i) {
            const uint32_t r = distinct[i].second;
            const double p = (cell_pattern[j] >> i & 1) ? 1.0 - false_pass_ : false_fail_;
            l *= Choose(r, count[i]) * std::pow(p, count[i]) * std::pow(1.0 - p, r - count[i]);
          }
          like[o * cells + j] = l;
          outcome_mass[o] += l * cell_mass[j];
        }
        for (size_t i = 0; i < m && ++count[i] > distinct[i].second; ++i) count[i] = 0;
      }
      // The same for each pending commit alone (two cells: its ancestors or not).
      single_offset.assign(m + 1, 0);
      in_mass.assign(m, 0.0);
      for (size_t i = 0; i < m; ++i) {
        single_offset[i + 1] = single_offset[i] + distinct[i].second + 1;
        for (size_t j = 0; j < cells; ++j) {
          if (cell_pattern[j] >> i & 1) in_mass[i] += cell_mass[j];
        }
      }
      single_like.assign(2 * single_offset[m], 0.0);
      single_mass.assign(single_offset[m], 0.0);
      for (size_t i = 0; i < m; ++i) {
        const uint32_t r = distinct[i].second;
        for (uint32_t o = 0; o <= r; ++o) {
          const double in =
              Choose(r, o) * std::pow(1.0 - false_pass_, o) * std::pow(false_pass_, r - o);
          const double out =
              Choose(r, o) * std::pow(false_fail_, o) * std::pow(1.0 - false_fail_, r - o);
          const size_t at = single_offset[i] + o;
          single_like[2 * at] = in;
          single_like[2 * at + 1] = out;
          single_mass[at] = in * in_mass[i] + out * (1.0 - in_mass[i]);
        }
      }
    }
    // min over the pending commits i of the gain given i's runs alone: an upper bound on the
    // gain given all of them, an order of magnitude cheaper than exact_gain.
    auto single_bound = [&](CommitId x, double q) {
      const double* a = by_cell.data() + size_t{x} * cells;
      double bound = std::numeric_limits<double>::infinity();
      for (size_t i = 0; i < m; ++i) {
        double b = 0;  // mass of the culprits below both x and i
        for (size_t j = 0; j < cells; ++j) {
          if (cell_pattern[j] >> i & 1) b += a[j];
        }
        double conditional = 0;
        for (size_t at = single_offset[i]; at < single_offset[i + 1]; ++at) {
          const double po = single_mass[at];
          if (po <= 0) continue;
          const double bad_mass = single_like[2 * at] * b + single_like[2 * at + 1] * (q - b);
          conditional += po * H2(false_fail_ + alpha * bad_mass / po);
        }
        bound = std::min(bound, conditional - q * noise_bad_ - (1.0 - q) * noise_good_);
      }
      return bound;
    };
    // The exact gain of a run at x given the pending runs.
    auto exact_gain = [&](CommitId x, double q) {
      if (m == 0) return Gain(q);
      // I(culprit; run at x | pending outcomes) = H(run | outcomes) - H(run | culprit).
      const double* a = by_cell.data() + size_t{x} * cells;
      double conditional = 0;
      for (size_t o = 0; o < outcomes; ++o) {
        const double po = outcome_mass[o];
        if (po <= 0) continue;
        const double* l = like.data() + o * cells;
        double bad_mass = 0;
        for (size_t j = 0; j < cells; ++j) bad_mass += l[j] * a[j];
        conditional += po * H2(false_fail_ + alpha * bad_mass / po);
      }
      return conditional - q * noise_bad_ - (1.0 - q) * noise_good_;
    };

    Evaluated best{kMinGain, 0, 0, pick, true};
    bool found = false;
    Evaluated e;
    while (pop_best_bound(&e)) {
      const bool hopeless = found ? e.bound < best.bound || (e.bound == best.bound && e.x > best.x)
                                  : e.bound <= kMinGain;
      if (hopeless) {
        push_evaluated(e);  // its bound stays valid (only its source changes)
        break;
      }
      if (m > 1 && e.pick != pick) {
        // A stale bound: tighten it first, and come back to it if it is still promising.
        push_evaluated({std::min(e.bound, single_bound(e.x, e.q)), e.x, e.q, pick, false});
        continue;
      }
      const Evaluated now =
          e.pick == pick && e.exact ? e : Evaluated{exact_gain(e.x, e.q), e.x, e.q, pick, true};
      if (now.bound > best.bound || (found && now.bound == best.bound && now.x < best.x)) {
        if (found) push_evaluated(best);
        best = now;
        found = true;
      } else {
        push_evaluated(now);
      }
    }
    if (!found) break;
    picks.push_back(best.x);
    push_evaluated(best);  // it may be worth repeating
  }
  return picks;
}

std::vector<std::pair<CommitId, double>> FlakyBisect::Top(size_t n) const {
  std::vector<std::pair<CommitId, double>> all;
  for (CommitId c = 0; c < posterior_.size(); ++c) {
    if (index_->is_candidate(c)) all.emplace_back(c, posterior_[c]);
  }
  const auto more_likely = [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  };
  n = std::min(n, all.size());
  std::partial_sort(all.begin(), all.begin() + n, all.end(), more_likely);
  all.resize(n);
  return all;
}

double FlakyBisect::Posterior(CommitId id) const {
  return id < posterior_.size() ? posterior_[id] : 0.0;
}

double FlakyBisect::ProbabilityBad(CommitId id) const {
  if (id >= mass_.size()) return 0.0;
  if (index_->is_candidate(id)) return mass_[id];
  double q = 0;
  std::vector<uint8_t> visited;
  index_->ForEachAncestor(id, visited, [&](CommitId c) { q += posterior_[c]; });
  return q;
}

size_t FlakyBisect::runs_at(CommitId id) const {
  return id < bad_runs_.size() ? size_t{bad_runs_[id]} + good_runs_[id] : 0;
}

}  // namespace farm
