// history_repo: writes a git repository whose commit graph is KernelShapedHistory(N, SEED)
// (tests/unit/bisect/bisect_testing.h) via `git fast-import`, for bench/next_vs_git.sh and load
// measurements. Commits change no files (the graph is what bisection reads). Prints JSON:
// {"path", "commits", "merges", "root", "bad"}.
//
// Usage: history_repo DIR [COMMITS=80000] [SEED=1]
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/log/log.h"
#include "tests/unit/bisect/bisect_testing.h"

int main(int argc, char** argv) {
  farm::log::SetProgramName("history_repo");
  if (argc < 2 || argc > 4) {
    std::fprintf(stderr, "usage: %s DIR [COMMITS=80000] [SEED=1]\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  const size_t commits = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 80000;
  const uint64_t seed = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 1;
  if (commits < 64) {
    FARM_LOG(Error) << "COMMITS must be at least 64";
    return 2;
  }
  farm::bisect_testing::IsolateGitConfig();
  const farm::bisect_testing::Dag dag = farm::bisect_testing::KernelShapedHistory(commits, seed);
  size_t merges = 0;
  for (const auto& parents : dag) merges += parents.size() > 1;
  absl::StatusOr<std::vector<std::string>> shas = farm::bisect_testing::CreateRepository(dir, dag);
  if (!shas.ok()) {
    FARM_LOG(Error) << shas.status().message();
    return 1;
  }
  std::printf(
      "{\"path\": \"%s\", \"commits\": %zu, \"merges\": %zu, \"root\": \"%s\", \"bad\": \"%s\"}\n",
      dir.c_str(), dag.size(), merges, shas->front().c_str(), shas->back().c_str());
  return 0;
}
