#include "coordinator/metrics/metrics.h"

#include <cmath>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace farm {
namespace {

std::string Number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  return absl::StrFormat("%.15g", v);
}

std::string EscapeLabel(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

void LatencyHistogram::Observe(double seconds) {
  size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  ++buckets_[i];
  ++count_;
  sum_ += seconds;
}

uint64_t LatencyHistogram::CumulativeCount(size_t i) const {
  uint64_t n = 0;
  for (size_t j = 0; j <= i && j < buckets_.size(); ++j) n += buckets_[j];
  return n;
}

double LatencyHistogram::QuantileUpperBound(double q) const {
  if (count_ == 0) return 0;
  const double rank = q * static_cast<double>(count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < kBounds.size(); ++i) {
    seen += buckets_[i];
    if (static_cast<double>(seen) >= rank) return kBounds[i];
  }
  return std::numeric_limits<double>::infinity();
}

absl::StatusOr<LatencyHistogram> LatencyHistogram::Parse(const std::string& text,
                                                         const std::string& name,
                                                         const std::string& labels) {
  LatencyHistogram h;
  uint64_t below = 0;
  for (size_t i = 0; i <= kBounds.size(); ++i) {
    const std::string le = i < kBounds.size() ? Number(kBounds[i]) : "+Inf";
    const std::string key = absl::StrCat(name, "_bucket{", labels, "le=\"", le, "\"} ");
    size_t at = text.find(key);
    uint64_t cumulative = 0;
    if (at == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("no bucket ", key, "in the metrics"));
    }
    size_t end = text.find('\n', at);
    if (!absl::SimpleAtoi(text.substr(at + key.size(), end - at - key.size()), &cumulative) ||
        cumulative < below) {
      return absl::InvalidArgumentError(absl::StrCat("bad bucket ", key));
    }
    h.buckets_[i] = cumulative - below;
    below = cumulative;
  }
  h.count_ = below;
  std::string sum_key = absl::StrCat(name, "_sum ");
  if (!labels.empty()) {
    sum_key = absl::StrCat(name, "_sum{", labels.substr(0, labels.size() - 1), "} ");
  }
  if (size_t at = text.find(sum_key); at != std::string::npos) {
    size_t end = text.find('\n', at);
    if (!absl::SimpleAtod(text.substr(at + sum_key.size(), end - at - sum_key.size()), &h.sum_)) {
      return absl::InvalidArgumentError(absl::StrCat("bad ", sum_key));
    }
  }
  return h;
}

void MetricsWriter::Header(const std::string& type, const std::string& name,
                           const std::string& help) {
  absl::StrAppend(&text_, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

void MetricsWriter::Counter(const std::string& name, const std::string& help, double value) {
  Header("counter", name, help);
  absl::StrAppend(&text_, name, " ", Number(value), "\n");
}

void MetricsWriter::Gauge(const std::string& name, const std::string& help, double value) {
  Header("gauge", name, help);
  absl::StrAppend(&text_, name, " ", Number(value), "\n");
}

void MetricsWriter::Labeled(const std::string& type, const std::string& name,
                            const std::string& help, const std::string& label,
                            const std::initializer_list<std::pair<std::string, double>>& samples) {
  Header(type, name, help);
  for (const auto& [value, v] : samples) {
    absl::StrAppend(&text_, name, "{", label, "=\"", EscapeLabel(value), "\"} ", Number(v), "\n");
  }
}

void MetricsWriter::Buckets(const std::string& name, const std::string& labels,
                            const LatencyHistogram& h) {
  // labels: "" or `key="value",`; the _sum and _count lines take it without the comma.
  const std::string plain =
      labels.empty() ? "" : absl::StrCat("{", labels.substr(0, labels.size() - 1), "}");
  for (size_t i = 0; i < LatencyHistogram::kBounds.size(); ++i) {
    absl::StrAppend(&text_, name, "_bucket{", labels, "le=\"", Number(LatencyHistogram::kBounds[i]),
                    "\"} ", h.CumulativeCount(i), "\n");
  }
  absl::StrAppend(&text_, name, "_bucket{", labels, "le=\"+Inf\"} ", h.count(), "\n", name, "_sum",
                  plain, " ", Number(h.sum()), "\n", name, "_count", plain, " ", h.count(), "\n");
}

void MetricsWriter::Histogram(const std::string& name, const std::string& help,
                              const LatencyHistogram& h) {
  Header("histogram", name, help);
  Buckets(name, "", h);
}

void MetricsWriter::Histograms(
    const std::string& name, const std::string& help, const std::string& label,
    const std::initializer_list<std::pair<std::string, const LatencyHistogram*>>& histograms) {
  Header("histogram", name, help);
  for (const auto& [value, h] : histograms) {
    Buckets(name, absl::StrCat(label, "=\"", EscapeLabel(value), "\","), *h);
  }
}

}  // namespace farm
