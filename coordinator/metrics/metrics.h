// Prometheus text exposition (format 0.0.4) for the coordinator's /metrics: a latency histogram
// and the writer of counters, gauges and histograms.
#ifndef FARM_COORDINATOR_METRICS_METRICS_H_
#define FARM_COORDINATOR_METRICS_METRICS_H_

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace farm {

// A histogram with fixed buckets from 100 us to 10 s, in seconds. Not thread-safe: the
// coordinator observes and renders it under its lock.
class LatencyHistogram {
 public:
  static constexpr std::array<double, 15> kBounds = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};

  void Observe(double seconds);
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }
  // The upper bound of the bucket holding the q-quantile (q in [0, 1]); +inf past the last
  // bucket, 0 when empty. An estimate, as Prometheus' histogram_quantile gives.
  double QuantileUpperBound(double q) const;
  // Cumulative count of observations <= kBounds[i].
  uint64_t CumulativeCount(size_t i) const;

  // Reads the histogram `name` back from a page MetricsWriter wrote (the load harness reads the
  // coordinator's /metrics). INVALID_ARGUMENT when a bucket is missing or malformed.
  // `labels`: the histogram's other labels as written, e.g. `trigger="submit",` (with the comma).
  static absl::StatusOr<LatencyHistogram> Parse(const std::string& text, const std::string& name,
                                                const std::string& labels = "");

 private:
  std::array<uint64_t, kBounds.size() + 1> buckets_{};  // the last: > kBounds.back()
  uint64_t count_ = 0;
  double sum_ = 0;
};

// Appends metrics to a text page. Names must match [a-zA-Z_:][a-zA-Z0-9_:]*; label values are
// escaped.
class MetricsWriter {
 public:
  void Counter(const std::string& name, const std::string& help, double value);
  void Gauge(const std::string& name, const std::string& help, double value);
  // A metric family with one label: `samples` are (label value, value) pairs.
  void Labeled(const std::string& type, const std::string& name, const std::string& help,
               const std::string& label,
               const std::initializer_list<std::pair<std::string, double>>& samples);
  void Histogram(const std::string& name, const std::string& help, const LatencyHistogram& h);
  // A histogram family with one label: one histogram per label value.
  void Histograms(
      const std::string& name, const std::string& help, const std::string& label,
      const std::initializer_list<std::pair<std::string, const LatencyHistogram*>>& histograms);
  const std::string& text() const { return text_; }

 private:
  void Header(const std::string& type, const std::string& name, const std::string& help);
  void Buckets(const std::string& name, const std::string& labels, const LatencyHistogram& h);
  std::string text_;
};

}  // namespace farm

#endif  // FARM_COORDINATOR_METRICS_METRICS_H_
