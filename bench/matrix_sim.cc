// matrix_sim: host x guest jobs on a simulated farm (tests/unit/core/cell_sim.h; README.md,
// "Host x guest jobs").
//   1. A matrix's wall time and kexecs: the matrix engine's host-grouped plan with the
//      dispatcher's preference for an agent already on the host kernel, against the naive
//      cell-by-cell order (guest-major, next cell to the next free agent).
//   2. A two-dimensional bisect's cells tested, against the product of two plain bisects (a
//      bisect of the hosts at each guest probe of a bisect of the guests, ceil(log2 (n-1)) x
//      ceil(log2 (m-1)) cells plus the corners) and the whole grid, for every planting (x, y)
//      of an interaction, averaged.
// Usage: matrix_sim [TEST_SECONDS=30] [KEXEC_SECONDS=16]
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "coordinator/engine/engine_factory.h"
#include "tests/unit/core/cell_sim.h"

namespace farm {
namespace {

std::unique_ptr<BisectEngine> Engine(const cell_sim::Grid& g) {
  farm::v1::BisectSpec spec;
  *spec.mutable_matrix() = g.spec;
  return std::move(*CreateEngine(spec, g.graph, {}));
}

int Log2Ceil(int n) { return n <= 1 ? 0 : static_cast<int>(std::ceil(std::log2(n))); }

int Main(int argc, char** argv) {
  cell_sim::Options o;
  if (argc > 1) o.test_seconds = std::atof(argv[1]);
  if (argc > 2) o.kexec_seconds = std::atof(argv[2]);
  std::printf("test %.0f s per cell, kexec %.0f s\n\n", o.test_seconds, o.kexec_seconds);
  std::printf("%-9s %-6s | %-8s %-7s | %-8s %-7s | %s\n", "matrix", "agents", "grouped", "kexecs",
              "naive", "kexecs", "wall saved");
  struct Case {
    int hosts, guests, agents;
  };
  for (Case c : {Case{3, 3, 2}, Case{3, 3, 3}, Case{4, 4, 2}, Case{5, 3, 2}, Case{8, 8, 4},
                 Case{10, 0, 3}}) {
    cell_sim::Grid g = cell_sim::MakeGrid(c.hosts, c.guests, false);
    auto truth = [](Cell) { return Verdict::kGood; };
    auto grouped_engine = Engine(g);
    auto naive_engine = Engine(g);
    CellGrid grid = *CellGrid::Create(g.spec, *g.graph);
    o.agents = c.agents;
    o.engine_order = true;
    cell_sim::Result grouped = cell_sim::Run(*grouped_engine, grid, truth, o);
    o.engine_order = false;
    cell_sim::Result naive = cell_sim::Run(*naive_engine, grid, truth, o);
    std::printf("%2dx%-6d %-6d | %6.0fs %7d | %6.0fs %7d | %4.0f%%\n", c.hosts, c.guests, c.agents,
                grouped.wall_seconds, grouped.kexecs, naive.wall_seconds, naive.kexecs,
                100.0 * (1 - grouped.wall_seconds / naive.wall_seconds));
  }
  std::printf("\n%-7s %-6s | %-10s %-10s | %-12s %-5s\n", "2D", "agents", "cells", "wall",
              "product", "grid");
  for (int n : {4, 8, 16, 32}) {
    for (int agents : {1, 2, 4}) {
      double cells = 0, wall = 0;
      int runs = 0;
      for (int x = 1; x < n; ++x) {
        for (int y = 1; y < n; ++y) {
          cell_sim::Grid g = cell_sim::MakeGrid(n, n, true);
          auto engine = Engine(g);
          CellGrid grid = *CellGrid::Create(g.spec, *g.graph);
          o.agents = agents;
          o.engine_order = true;
          cell_sim::Result r = cell_sim::Run(
              *engine, grid,
              [&](Cell c) { return c.host >= x && c.guest >= y ? Verdict::kBad : Verdict::kGood; },
              o);
          if (!r.done) {
            std::fprintf(stderr, "not done: %dx%d x=%d y=%d\n", n, n, x, y);
            return 1;
          }
          cells += r.tests;
          wall += r.wall_seconds;
          ++runs;
        }
      }
      int product = 4 + Log2Ceil(n - 1) * Log2Ceil(n - 1);
      std::printf("%2dx%-4d %-6d | %10.1f %9.0fs | %12d %5d\n", n, n, agents, cells / runs,
                  wall / runs, product, n * n);
    }
  }
  return 0;
}

}  // namespace
}  // namespace farm

int main(int argc, char** argv) { return farm::Main(argc, argv); }
