// The host x guest engines (coordinator/engine: matrix_engine, two_dim_engine) through the engine
// interface, on a simulated farm (cell_sim.h) with verdict functions of many shapes.
#include <cmath>
#include <memory>

#include "absl/strings/match.h"
#include "coordinator/engine/engine_factory.h"
#include "coordinator/engine/two_dim_engine.h"
#include "gtest/gtest.h"
#include "tests/unit/bisect/bisect_testing.h"
#include "tests/unit/core/cell_sim.h"

namespace farm {
namespace {

namespace v1 = farm::v1;

struct Made {
  cell_sim::Grid grid;
  std::unique_ptr<BisectEngine> engine;
  std::unique_ptr<CellGrid> cells;
};

Made Make(int hosts, int guests, bool bisect) {
  Made m;
  m.grid = cell_sim::MakeGrid(hosts, guests, bisect);
  v1::BisectSpec spec;
  *spec.mutable_matrix() = m.grid.spec;
  auto engine = CreateEngine(spec, m.grid.graph, {});
  EXPECT_TRUE(engine.ok()) << engine.status();
  m.engine = std::move(*engine);
  auto cells = CellGrid::Create(m.grid.spec, *m.grid.graph);
  EXPECT_TRUE(cells.ok()) << cells.status();
  m.cells = std::make_unique<CellGrid>(std::move(*cells));
  return m;
}

using cell_sim::NoTexts;

TEST(MatrixEngine, TestsEveryCellOnceAndNoAgentReturnsToAHostKernel) {
  for (int hosts = 1; hosts <= 6; ++hosts) {
    for (int guests = 0; guests <= 4; ++guests) {
      for (int agents = 1; agents <= 4; ++agents) {
        SCOPED_TRACE(::testing::Message()
                     << hosts << " hosts x " << guests << " guests, " << agents << " agents");
        Made m = Make(hosts, guests, false);
        EXPECT_TRUE(m.engine->ReusesVerdicts());
        cell_sim::Options o;
        o.agents = agents;
        cell_sim::Result r = cell_sim::Run(
            *m.engine, *m.cells,
            [](Cell c) { return c.host == 1 ? Verdict::kBad : Verdict::kGood; }, o);
        ASSERT_TRUE(r.done);
        EXPECT_EQ(r.tests, hosts * std::max(1, guests));
        EXPECT_EQ(r.cancelled, 0);
        // Each agent kexecs once per host kernel it runs: it never comes back to one it left.
        EXPECT_EQ(r.kexecs, r.distinct_hosts_per_agent);
        // A host group is split only when every host has an agent already.
        EXPECT_LE(r.kexecs, hosts + agents - 1);
        EngineAnswer a = m.engine->Answer();
        EXPECT_EQ(a.state, v1::COMPLETE);
        EXPECT_TRUE(a.commits.empty());
        EXPECT_TRUE(m.engine->Plan(3, {}).empty());
      }
    }
  }
}

TEST(MatrixEngine, GroupedOrderKexecsLessThanTheNaiveOrder) {
  Made grouped = Make(3, 3, false);
  Made naive = Make(3, 3, false);
  cell_sim::Options o;
  auto truth = [](Cell) { return Verdict::kGood; };
  cell_sim::Result g = cell_sim::Run(*grouped.engine, *grouped.cells, truth, o);
  o.engine_order = false;
  cell_sim::Result n = cell_sim::Run(*naive.engine, *naive.cells, truth, o);
  ASSERT_TRUE(g.done && n.done);
  EXPECT_EQ(g.kexecs, 4) << "2 agents on 3 hosts: one host is shared";
  EXPECT_EQ(n.kexecs, 9) << "guest-major: every cell switches host";
  EXPECT_LT(g.wall_seconds, n.wall_seconds);
}

TEST(MatrixEngine, EachCellCarriesItsHostKernelAndTheReportIsATable) {
  Made m = Make(2, 3, false);
  std::vector<v1::TaskSummary> finished;
  for (size_t i = 0; i < m.cells->size(); ++i) {
    Cell c = m.cells->CellAt(i);
    CommitId id = m.cells->At(c);
    ASSERT_NE(m.engine->HostKernelOf(id), nullptr);
    EXPECT_EQ(m.engine->HostKernelOf(id)->key(), "key-h" + std::to_string(c.host));
    bool bad = c.host == 1 && c.guest == 2;
    EXPECT_TRUE(m.engine->Observe(id, bad ? Verdict::kBad : Verdict::kGood));
    EXPECT_FALSE(m.engine->Observe(id, Verdict::kGood)) << "a cell is decided once";
    v1::TaskSummary t;
    t.set_commit(m.grid.graph->Hex(id));
    t.set_state(v1::TASK_DONE);
    t.set_verdict(bad ? v1::BAD : v1::GOOD);
    t.set_agent("a1");
    finished.push_back(t);
  }
  EXPECT_EQ(m.engine->HostKernelOf(*m.grid.graph->Find(bisect_testing::OrderedOid(0))), nullptr)
      << "the root is no cell";
  ASSERT_TRUE(m.engine->Done());
  v1::BisectSpec spec;
  std::vector<std::string> first_bad;
  std::string empty;
  NoTexts texts;
  JobText job{spec, v1::COMPLETE, first_bad, empty, empty, finished, texts};
  std::string report = m.engine->Report(job);
  EXPECT_TRUE(absl::StrContains(report, "host \\ guest  g0    g1    g2\n")) << report;
  EXPECT_TRUE(absl::StrContains(report, "h0            good  good  good\n")) << report;
  EXPECT_TRUE(absl::StrContains(report, "h1            good  good  bad\n")) << report;
  EXPECT_TRUE(absl::StrContains(report, "6 of 6 cells tested")) << report;
  EXPECT_TRUE(absl::StrContains(report, "host h1 x guest g2: bad on a1")) << report;
}

struct Shape {
  const char* name;
  TwoDimShape shape;
  bool host_found, guest_found;
  std::function<bool(Cell, int x, int y)> bad;
};

const Shape kShapes[] = {
    {"interaction", TwoDimShape::kInteraction, true, true,
     [](Cell c, int x, int y) { return c.host >= x && c.guest >= y; }},
    {"host-only", TwoDimShape::kHostOnly, true, false,
     [](Cell c, int x, int) { return c.host >= x; }},
    {"guest-only", TwoDimShape::kGuestOnly, false, true,
     [](Cell c, int, int y) { return c.guest >= y; }},
    {"both", TwoDimShape::kBoth, true, true,
     [](Cell c, int x, int y) { return c.host >= x || c.guest >= y; }},
};

int Log2Ceil(int n) { return n <= 1 ? 0 : static_cast<int>(std::ceil(std::log2(n))); }

TEST(TwoDimEngine, FindsBothCulpritsForEveryShapeSizeAndPlanting) {
  int cases = 0;
  for (const Shape& shape : kShapes) {
    for (int n = 2; n <= 9; ++n) {
      for (int mg = 2; mg <= 9; mg += 3) {
        for (int x = 1; x < n; ++x) {
          for (int y = 1; y < mg; ++y) {
            for (int agents : {1, 3}) {
              SCOPED_TRACE(::testing::Message() << shape.name << " " << n << "x" << mg << " x=" << x
                                                << " y=" << y << " agents=" << agents);
              Made m = Make(n, mg, true);
              auto* engine = dynamic_cast<TwoDimEngine*>(m.engine.get());
              ASSERT_NE(engine, nullptr);
              cell_sim::Options o;
              o.agents = agents;
              cell_sim::Result r = cell_sim::Run(
                  *engine, *m.cells,
                  [&](Cell c) { return shape.bad(c, x, y) ? Verdict::kBad : Verdict::kGood; }, o);
              ASSERT_TRUE(r.done);
              ++cases;
              EXPECT_EQ(engine->shape(), shape.shape);
              EngineAnswer a = engine->Answer();
              EXPECT_EQ(a.state, v1::FOUND);
              EXPECT_EQ(engine->first_bad_host(),
                        shape.host_found ? std::optional<int>(x) : std::nullopt);
              EXPECT_EQ(engine->first_bad_guest(),
                        shape.guest_found ? std::optional<int>(y) : std::nullopt);
              EXPECT_EQ(a.commits.size(),
                        static_cast<size_t>(shape.host_found + shape.guest_found));
              if (agents == 1) {
                // Four corners, then a binary search of each line that matters.
                EXPECT_LE(r.tests, 4 + (shape.host_found ? Log2Ceil(n - 1) : 0) +
                                       (shape.guest_found ? Log2Ceil(mg - 1) : 0));
              }
            }
          }
        }
      }
    }
  }
  EXPECT_GT(cases, 300);
}

TEST(TwoDimEngine, AnInteractionSentenceNamesBothKernels) {
  Made m = Make(5, 4, true);
  cell_sim::Result r = cell_sim::Run(
      *m.engine, *m.cells,
      [](Cell c) { return c.host >= 3 && c.guest >= 2 ? Verdict::kBad : Verdict::kGood; },
      cell_sim::Options{});
  ASSERT_TRUE(r.done);
  v1::BisectSpec spec;
  std::vector<std::string> first_bad;
  std::string empty;
  std::vector<v1::TaskSummary> finished;
  NoTexts texts;
  JobText job{spec, v1::FOUND, first_bad, empty, empty, finished, texts};
  std::string report = m.engine->Report(job);
  EXPECT_TRUE(absl::StrContains(report, "bad only with host >= h3 and guest >= g2")) << report;
  EXPECT_TRUE(absl::StrContains(report, "h3 is the first bad host kernel (guest g3 held fixed)"))
      << report;
  EXPECT_TRUE(absl::StrContains(report, "g2 is the first bad guest kernel (host h4 held fixed)"))
      << report;
  EXPECT_TRUE(absl::StrContains(report, " is the first bad commit")) << report;
}

TEST(TwoDimEngine, ARangeThatContradictsItselfFailsSayingWhatToGive) {
  for (bool all_bad : {false, true}) {
    Made m = Make(4, 4, true);
    cell_sim::Result r = cell_sim::Run(
        *m.engine, *m.cells, [&](Cell) { return all_bad ? Verdict::kBad : Verdict::kGood; },
        cell_sim::Options{});
    ASSERT_TRUE(r.done);
    EngineAnswer a = m.engine->Answer();
    EXPECT_EQ(a.state, v1::FAILED);
    EXPECT_TRUE(absl::StrContains(a.error, all_bad ? "give older kernels" : "give newer kernels"))
        << a.error;
  }
}

TEST(TwoDimEngine, SkippedCellsLeaveTheCandidatesOfTheirLine) {
  Made m = Make(8, 3, true);
  // Guest-only change at guest 2; on the oldest host guests are fine up to 1, host line unused.
  // Make the host line matter instead: host-only at 5, with hosts 3 and 4 untestable.
  cell_sim::Result r = cell_sim::Run(
      *m.engine, *m.cells,
      [](Cell c) {
        if (c.guest == 0 && (c.host == 3 || c.host == 4)) return Verdict::kSkip;
        return c.host >= 5 ? Verdict::kBad : Verdict::kGood;
      },
      cell_sim::Options{});
  ASSERT_TRUE(r.done);
  EngineAnswer a = m.engine->Answer();
  EXPECT_EQ(a.state, v1::AMBIGUOUS);
  // The host line's candidates: whichever of 3, 4 lie between the last good and the first bad,
  // then host 5.
  ASSERT_FALSE(a.commits.empty());
  EXPECT_EQ(a.commits.back(), m.cells->At({5, 0}));
}

TEST(TwoDimEngine, FactoryRefusesCellsThatAreNotInTheRange) {
  cell_sim::Grid g = cell_sim::MakeGrid(2, 2, true);
  g.spec.set_cells(1, std::string(40, 'f'));
  v1::BisectSpec spec;
  *spec.mutable_matrix() = g.spec;
  auto engine = CreateEngine(spec, g.graph, {});
  ASSERT_FALSE(engine.ok());
  EXPECT_TRUE(absl::StrContains(engine.status().message(), "spec.matrix.cells[1]"))
      << engine.status();
}

}  // namespace
}  // namespace farm
