// The bisection engines through their one interface (coordinator/engine/engine.h), as the
// dispatcher uses them: plan, observe, cancel, done, answer. VerifyingEngine: the search is the
// inner engine's, then the culprit, its parent and its revert are retested as ordinary probes
// that stay out of the bisect log's replayable part and out of verdict reuse.
#include "coordinator/engine/engine.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "coordinator/engine/engine_factory.h"
#include "coordinator/engine/verifying_engine.h"
#include "gtest/gtest.h"
#include "tests/unit/bisect/bisect_testing.h"
#include "tests/unit/core/cell_sim.h"

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

// A repository that knows nothing but what the test tells it.
class FakeCulpritRepo : public CulpritRepo {
 public:
  FakeCulpritRepo(CulpritFacts facts, absl::StatusOr<git_oid> revert)
      : facts_(facts), revert_(revert) {}
  absl::StatusOr<CulpritFacts> Facts(const git_oid&) override { return facts_; }
  absl::StatusOr<git_oid> Revert(const git_oid&, const git_oid&) override { return revert_; }

 private:
  CulpritFacts facts_;
  absl::StatusOr<git_oid> revert_;
};

using cell_sim::NoTexts;

// The same history, with --verify 3 and a repository the test describes.
class VerifyingEngineTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    parent_ = *graph_->Find(OrderedOid(40));
    spec_.set_verify(3);
  }
  std::unique_ptr<BisectEngine> Make(CulpritFacts facts, absl::StatusOr<git_oid> revert) {
    if (!facts.parent) facts.parent = OrderedOid(40);
    auto engine = CreateEngine(spec_, graph_, {}, std::make_unique<FakeCulpritRepo>(facts, revert));
    EXPECT_TRUE(engine.ok()) << engine.status();
    return std::move(*engine);
  }
  // Runs the search with the truth; returns when the engine moved on to verifying.
  void Search(BisectEngine& engine) {
    for (int guard = 0; guard < 64; ++guard) {
      if (engine.Verification().status != v1::VERIFICATION_NONE) return;
      std::vector<CommitId> next = engine.Plan(1, {});
      ASSERT_EQ(next.size(), 1u);
      engine.Observe(next[0], Truth(next[0]));
    }
    FAIL() << "the search did not end";
  }
  // Runs every verification probe the engine plans with `verdict_of`; the probes it planned.
  template <typename F>
  std::vector<CommitId> Verify(BisectEngine& engine, F verdict_of) {
    std::vector<CommitId> probes;
    for (int guard = 0; !engine.Done() && guard < 64; ++guard) {
      std::vector<CommitId> next = engine.Plan(4, {});
      EXPECT_FALSE(next.empty());
      for (CommitId c : next) {
        EXPECT_FALSE(engine.ShouldCancel(c).has_value());
        EXPECT_FALSE(engine.ReusesVerdicts()) << "a retest must be a fresh run";
        probes.push_back(c);
        EXPECT_TRUE(engine.Observe(c, verdict_of(c)));
      }
    }
    EXPECT_TRUE(engine.Done());
    return probes;
  }
  std::string Log(const BisectEngine& engine) {
    JobText job{spec_, v1::FOUND, first_bad_, error_, error_, finished_, texts_};
    return engine.BisectLog(job);
  }

  CommitId parent_ = 0;
  v1::BisectSpec spec_;
  std::vector<std::string> first_bad_ = {"culprit"};
  std::string error_;
  std::vector<v1::TaskSummary> finished_;
  NoTexts texts_;
};

TEST_F(VerifyingEngineTest, RetestsCulpritParentAndRevertAndVerifies) {
  std::unique_ptr<BisectEngine> engine = Make({}, OrderedOid(1000));
  EXPECT_TRUE(engine->ReusesVerdicts()) << "the search reuses verdicts as git's engine does";
  Search(*engine);
  EXPECT_FALSE(engine->Done());
  EXPECT_EQ(engine->Verification().status, v1::VERIFYING);
  // The revert is a probe beyond the graph.
  ASSERT_EQ(engine->ExtraProbes().size(), 1u);
  const CommitId revert = static_cast<CommitId>(graph_->size());
  const git_oid revert_oid = OrderedOid(1000);
  EXPECT_TRUE(git_oid_equal(&engine->ExtraProbes()[0], &revert_oid));
  // What agents of a remote repository need to make the same revert (Assign.revert_*).
  std::optional<BisectEngine::RevertProbe> made = engine->RevertOf(revert);
  ASSERT_TRUE(made.has_value());
  EXPECT_TRUE(git_oid_equal(&made->culprit, &graph_->oid(culprit_)));
  EXPECT_TRUE(git_oid_equal(&made->head, &graph_->oid(graph_->bad())));
  EXPECT_FALSE(engine->RevertOf(culprit_).has_value());
  EXPECT_FALSE(engine->RevertOf(parent_).has_value());
  // All three retested at once, each `verify` times, repeats included.
  std::vector<CommitId> first = engine->Plan(3, {});
  EXPECT_EQ(first, (std::vector<CommitId>{culprit_, parent_, revert}));
  EXPECT_EQ(engine->Plan(9, {culprit_, culprit_, culprit_}).size(), 6u)
      << "the culprit's three runs are in flight";
  const std::string log_before = Log(*engine);
  std::vector<CommitId> probes =
      Verify(*engine, [&](CommitId c) { return c == culprit_ ? Verdict::kBad : Verdict::kGood; });
  EXPECT_EQ(probes.size(), 9u);
  EXPECT_EQ(engine->Answer().commits, std::vector<CommitId>{culprit_});
  EngineVerification v = engine->Verification();
  EXPECT_EQ(v.status, v1::VERIFIED) << v.reason;
  EXPECT_EQ(v.reason, "culprit failed 3/3, parent passed 3/3, revert passed 3/3");
  // The replayable part of the log is the search's; the retests are comments after it.
  const std::string log = Log(*engine);
  ASSERT_TRUE(absl::StartsWith(log, log_before.substr(0, log_before.find("# verification"))));
  for (const std::string& line :
       {std::string("git bisect good "), std::string("git bisect bad ")}) {
    size_t count_before = 0, count_after = 0;
    for (size_t p = 0; (p = log_before.find(line, p)) != std::string::npos; ++p) ++count_before;
    for (size_t p = 0; (p = log.find(line, p)) != std::string::npos; ++p) ++count_after;
    EXPECT_EQ(count_before, count_after) << line;
  }
  EXPECT_TRUE(absl::StrContains(log, "# verification (not replayed): culprit")) << log;
}

TEST_F(VerifyingEngineTest, AFlakyRetestMakesItUnreliable) {
  std::unique_ptr<BisectEngine> engine = Make({}, OrderedOid(1000));
  Search(*engine);
  int culprit_runs = 0;
  Verify(*engine, [&](CommitId c) {
    if (c != culprit_) return Verdict::kGood;
    return ++culprit_runs == 2 ? Verdict::kGood : Verdict::kBad;  // passed once
  });
  EngineVerification v = engine->Verification();
  EXPECT_EQ(v.status, v1::UNRELIABLE);
  EXPECT_TRUE(absl::StartsWith(v.reason, "the culprit passed 1 of 3 retests")) << v.reason;
}

// syzbot's "unreliable" for a culprit that changes nothing the build uses: its kernel image is
// byte for byte its parent's, whatever the retests said.
TEST_F(VerifyingEngineTest, ACulpritThatBuildsItsParentsImageIsUnreliable) {
  for (bool same : {true, false}) {
    std::unique_ptr<BisectEngine> engine = Make({}, OrderedOid(1000));
    Search(*engine);
    for (int guard = 0; !engine->Done() && guard < 64; ++guard) {
      for (CommitId c : engine->Plan(4, {})) {
        engine->ObserveBuild(c, c == culprit_ && !same ? "c0ffee" : c == parent_ ? "aaaa" : "");
        if (c == culprit_ && same) engine->ObserveBuild(c, "aaaa");
        engine->Observe(c, c == culprit_ ? Verdict::kBad : Verdict::kGood);
      }
    }
    ASSERT_TRUE(engine->Done());
    EngineVerification v = engine->Verification();
    if (same) {
      EXPECT_EQ(v.status, v1::UNRELIABLE) << v.reason;
      EXPECT_TRUE(
          absl::StartsWith(v.reason, "the culprit's build makes the same image as its parent's"))
          << v.reason;
    } else {
      EXPECT_EQ(v.status, v1::VERIFIED) << v.reason;
    }
  }
}

TEST_F(VerifyingEngineTest, ARevertThatStillFailsMakesItUnreliable) {
  std::unique_ptr<BisectEngine> engine = Make({}, OrderedOid(1000));
  Search(*engine);
  Verify(*engine, [&](CommitId c) { return c == parent_ ? Verdict::kGood : Verdict::kBad; });
  EngineVerification v = engine->Verification();
  EXPECT_EQ(v.status, v1::UNRELIABLE);
  EXPECT_TRUE(absl::StrContains(v.reason, "with the culprit reverted still failed 3 of 3"))
      << v.reason;
}

TEST_F(VerifyingEngineTest, AMergeOrAnEmptyCommitIsUnreliableWhateverTheRetestsSay) {
  CulpritFacts merge;
  merge.is_merge = true;
  CulpritFacts empty;
  empty.same_tree_as_parent = true;
  for (const CulpritFacts& facts : {merge, empty}) {
    std::unique_ptr<BisectEngine> engine =
        Make(facts, absl::FailedPreconditionError("the culprit is a merge"));
    Search(*engine);
    EXPECT_TRUE(engine->ExtraProbes().empty()) << "no revert to test";
    std::vector<CommitId> probes =
        Verify(*engine, [&](CommitId c) { return c == culprit_ ? Verdict::kBad : Verdict::kGood; });
    EXPECT_EQ(probes.size(), 6u);
    EngineVerification v = engine->Verification();
    EXPECT_EQ(v.status, v1::UNRELIABLE);
    EXPECT_TRUE(absl::StartsWith(v.reason, facts.is_merge
                                               ? "the culprit is a merge"
                                               : "the culprit's tree equals its parent's"))
        << v.reason;
    EXPECT_TRUE(absl::StrContains(v.reason, "revert not tested: the culprit is a merge"))
        << v.reason;
  }
}

TEST_F(VerifyingEngineTest, OnlySkippedCommitsLeftIsInconclusiveWithTheCandidates) {
  std::unique_ptr<BisectEngine> engine = Make({}, OrderedOid(1000));
  for (int guard = 0; !engine->Done() && guard < 64; ++guard) {
    std::vector<CommitId> next = engine->Plan(1, {});
    ASSERT_EQ(next.size(), 1u);
    const uint32_t i = index_.at(next[0]);
    engine->Observe(next[0], i == 40 || i == 41 ? Verdict::kSkip : Truth(next[0]));
  }
  ASSERT_TRUE(engine->Done()) << "nothing is retested without one culprit";
  EXPECT_EQ(engine->Answer().state, v1::AMBIGUOUS);
  EngineVerification v = engine->Verification();
  EXPECT_EQ(v.status, v1::INCONCLUSIVE);
  EXPECT_TRUE(absl::StrContains(v.reason, "only skipped commits are left; the culprit is one of"))
      << v.reason;
}

TEST_F(VerifyingEngineTest, ALateSearchVerdictIsNotCountedAsARetest) {
  std::unique_ptr<BisectEngine> engine = Make({}, OrderedOid(1000));
  Search(*engine);
  const CommitId other = *graph_->Find(OrderedOid(10));
  EXPECT_EQ(engine->ShouldCancel(other), CancelReason::kRuledOut);
  EXPECT_FALSE(engine->Observe(other, Verdict::kBad));
  EXPECT_EQ(engine->Verification().status, v1::VERIFYING);
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
