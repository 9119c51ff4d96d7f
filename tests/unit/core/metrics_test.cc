#include "coordinator/metrics/metrics.h"

#include <cmath>

#include "gtest/gtest.h"

namespace farm {
namespace {

TEST(LatencyHistogram, QuantilesAreBucketUpperBounds) {
  LatencyHistogram h;
  EXPECT_EQ(h.QuantileUpperBound(0.5), 0);
  for (int i = 0; i < 98; ++i) h.Observe(0.0004);  // <= 0.5 ms
  h.Observe(0.02);                                 // <= 25 ms
  h.Observe(30);                                   // past the last bucket
  EXPECT_EQ(h.count(), 100u);
  EXPECT_DOUBLE_EQ(h.QuantileUpperBound(0.5), 0.0005);
  EXPECT_DOUBLE_EQ(h.QuantileUpperBound(0.99), 0.025);
  EXPECT_TRUE(std::isinf(h.QuantileUpperBound(1.0)));
  EXPECT_NEAR(h.sum(), 98 * 0.0004 + 0.02 + 30, 1e-9);
}

TEST(MetricsWriter, WritesPrometheusTextThatParsesBack) {
  LatencyHistogram a, b;
  a.Observe(0.003);
  a.Observe(0.2);
  b.Observe(5);
  MetricsWriter w;
  w.Counter("farm_x_total", "X.", 3);
  w.Gauge("farm_y", "Y.", 1.5);
  w.Labeled("counter", "farm_z_total", "Z.", "kind", {{"a\"b", 2}});
  w.Histograms("farm_lat_seconds", "L.", "trigger", {{"one", &a}, {"two", &b}});
  const std::string& t = w.text();
  EXPECT_NE(t.find("# TYPE farm_x_total counter\nfarm_x_total 3\n"), std::string::npos) << t;
  EXPECT_NE(t.find("# TYPE farm_y gauge\nfarm_y 1.5\n"), std::string::npos) << t;
  EXPECT_NE(t.find("farm_z_total{kind=\"a\\\"b\"} 2\n"), std::string::npos) << t;
  EXPECT_NE(t.find("farm_lat_seconds_bucket{trigger=\"one\",le=\"0.005\"} 1\n"), std::string::npos)
      << t;
  EXPECT_NE(t.find("farm_lat_seconds_bucket{trigger=\"one\",le=\"+Inf\"} 2\n"), std::string::npos)
      << t;
  EXPECT_NE(t.find("farm_lat_seconds_count{trigger=\"two\"} 1\n"), std::string::npos) << t;
  absl::StatusOr<LatencyHistogram> one =
      LatencyHistogram::Parse(t, "farm_lat_seconds", "trigger=\"one\",");
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->count(), 2u);
  EXPECT_DOUBLE_EQ(one->QuantileUpperBound(0.5), 0.005);
  EXPECT_NEAR(one->sum(), 0.203, 1e-9);
  absl::StatusOr<LatencyHistogram> two =
      LatencyHistogram::Parse(t, "farm_lat_seconds", "trigger=\"two\",");
  ASSERT_TRUE(two.ok());
  EXPECT_DOUBLE_EQ(two->QuantileUpperBound(0.5), 10);
  EXPECT_FALSE(LatencyHistogram::Parse(t, "farm_other_seconds").ok());
}

}  // namespace
}  // namespace farm
