// The bisection engines through their one interface (coordinator/engine/engine.h), as the
// dispatcher uses them: plan, observe, cancel, done, answer.
#include "coordinator/engine/engine.h"

#include <map>
#include <memory>

#include "coordinator/engine/engine_factory.h"
#include "gtest/gtest.h"
#include "tests/unit/bisect/bisect_testing.h"

namespace farm {
namespace {

namespace v1 = farm::v1;
using bisect_testing::GraphOf;
using bisect_testing::LinearHistory;
using bisect_testing::OrderedOid;

// A linear history of 64 commits whose first bad one is creation index 41.
class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    graph_ = GraphOf(LinearHistory(64));
    for (uint32_t i = 0; i < 64; ++i) {
      if (std::optional<CommitId> id = graph_->Find(OrderedOid(i))) index_[*id] = i;
    }
    culprit_ = *graph_->Find(OrderedOid(41));
  }
  Verdict Truth(CommitId id) { return index_.at(id) >= 41 ? Verdict::kBad : Verdict::kGood; }
  std::unique_ptr<BisectEngine> Make(const v1::BisectSpec& spec) {
    auto engine = CreateEngine(spec, graph_, {});
    EXPECT_TRUE(engine.ok()) << engine.status();
    return std::move(*engine);
  }

  std::shared_ptr<const CommitGraph> graph_;
  std::map<CommitId, uint32_t> index_;
  CommitId culprit_ = 0;
};

TEST_F(EngineTest, GitEngineSpeculatesCancelsWhatAVerdictRulesOutAndFindsTheCulprit) {
  std::unique_ptr<BisectEngine> engine = Make(v1::BisectSpec());
  EXPECT_TRUE(engine->ReusesVerdicts());
  std::vector<CommitId> in_flight = engine->Plan(3, {});
  ASSERT_EQ(in_flight.size(), 3u);
  // The first planned commit is the midpoint; its verdict rules out some speculative probe.
  ASSERT_TRUE(engine->Observe(in_flight[0], Truth(in_flight[0])));
  int cancelled = 0;
  for (size_t i = 1; i < in_flight.size(); ++i) {
    std::optional<CancelReason> why = engine->ShouldCancel(in_flight[i]);
    cancelled += why.has_value();
    if (why) {
      EXPECT_EQ(*why, CancelReason::kRuledOut);
    }
  }
  EXPECT_GE(cancelled, 1);
  EXPECT_FALSE(engine->Observe(in_flight[0], Truth(in_flight[0]))) << "already decided";
  for (int guard = 0; !engine->Done() && guard < 64; ++guard) {
    std::vector<CommitId> next = engine->Plan(1, {});
    ASSERT_EQ(next.size(), 1u);
    engine->Observe(next[0], Truth(next[0]));
  }
  ASSERT_TRUE(engine->Done());
  EXPECT_TRUE(engine->Plan(4, {}).empty());
  EngineAnswer answer = engine->Answer();
  EXPECT_EQ(answer.state, v1::FOUND);
  EXPECT_EQ(answer.commits, std::vector<CommitId>{culprit_});
  EXPECT_TRUE(answer.may_descend_merges);
  EXPECT_EQ(engine->Confidence(), 0);
}

TEST_F(EngineTest, FlakyEngineKeepsEveryRunAndStopsAtTheConfidence) {
  v1::BisectSpec spec;
  spec.set_flaky("0.1,0");
  spec.set_confidence(0.99);
  std::unique_ptr<BisectEngine> engine = Make(spec);
  EXPECT_FALSE(engine->ReusesVerdicts());
  int runs = 0;
  for (; !engine->Done() && runs < 500; ++runs) {
    std::vector<CommitId> next = engine->Plan(2, {});
    ASSERT_FALSE(next.empty());
    for (CommitId c : next) EXPECT_FALSE(engine->ShouldCancel(c).has_value());
    engine->Observe(next[0], Truth(next[0]));
  }
  ASSERT_TRUE(engine->Done()) << runs << " runs";
  EngineAnswer answer = engine->Answer();
  EXPECT_EQ(answer.state, v1::FOUND);
  EXPECT_EQ(answer.commits, std::vector<CommitId>{culprit_});
  EXPECT_FALSE(answer.may_descend_merges);
  EXPECT_GE(engine->Confidence(), 0.99);
}

TEST_F(EngineTest, FactoryNamesTheFieldItRejects) {
  v1::BisectSpec spec;
  spec.set_flaky("often");
  auto engine = CreateEngine(spec, graph_, {});
  ASSERT_FALSE(engine.ok());
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine.status().message().substr(0, 12), "spec.flaky: ") << engine.status();
}

}  // namespace
}  // namespace farm

namespace farm {
namespace {

// A head test (spec.probe): the graph's tip once, then done with its verdict.
TEST_F(EngineTest, ProbeTestsTheTipOnceAndEndsWithItsVerdict) {
  v1::BisectSpec spec;
  spec.set_probe(true);
  for (Verdict v : {Verdict::kGood, Verdict::kBad, Verdict::kSkip}) {
    std::unique_ptr<BisectEngine> engine = Make(spec);
    std::vector<CommitId> plan = engine->Plan(4, {});
    ASSERT_EQ(plan, std::vector<CommitId>{graph_->bad()});
    EXPECT_TRUE(engine->Plan(4, plan).empty());              // not twice at once
    EXPECT_FALSE(engine->Observe(culprit_, Verdict::kBad));  // not the tip: not applied
    EXPECT_FALSE(engine->Done());
    EXPECT_TRUE(engine->Observe(graph_->bad(), v));
    ASSERT_TRUE(engine->Done());
    EngineAnswer answer = engine->Answer();
    if (v == Verdict::kBad) {
      EXPECT_EQ(answer.state, v1::FOUND);
      EXPECT_EQ(answer.commits, std::vector<CommitId>{graph_->bad()});
    } else {
      EXPECT_EQ(answer.state, v1::AMBIGUOUS);
      EXPECT_TRUE(answer.commits.empty());
    }
    EXPECT_FALSE(answer.may_descend_merges);
    EXPECT_TRUE(engine->Plan(4, {}).empty());
  }
}

}  // namespace
}  // namespace farm
