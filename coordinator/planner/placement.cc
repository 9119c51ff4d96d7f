#include "coordinator/planner/placement.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/git/git.h"

namespace farm {
namespace {

// Minimum-cost assignment of every row to a distinct column (rows <= columns): the Hungarian
// algorithm with potentials, O(rows^2 * columns). Returns the column of each row.
std::vector<int> Hungarian(const std::vector<std::vector<double>>& cost, size_t columns) {
  const size_t n = cost.size();
  const size_t m = columns;
  const double inf = std::numeric_limits<double>::infinity();
  // 1-based, as in the textbook formulation; row 0 / column 0 are the virtual start.
  std::vector<double> u(n + 1, 0), v(m + 1, 0);
  std::vector<size_t> row_of(m + 1, 0), way(m + 1, 0);
  for (size_t i = 1; i <= n; ++i) {
    row_of[0] = i;
    size_t j0 = 0;
    std::vector<double> min_to(m + 1, inf);
    std::vector<bool> used(m + 1, false);
    do {
      used[j0] = true;
      const size_t i0 = row_of[j0];
      double delta = inf;
      size_t j1 = 0;
      for (size_t j = 1; j <= m; ++j) {
        if (used[j]) continue;
        const double reduced = cost[i0 - 1][j - 1] - u[i0] - v[j];
        if (reduced < min_to[j]) {
          min_to[j] = reduced;
          way[j] = j0;
        }
        if (min_to[j] < delta) {
          delta = min_to[j];
          j1 = j;
        }
      }
      for (size_t j = 0; j <= m; ++j) {
        if (used[j]) {
          u[row_of[j]] += delta;
          v[j] -= delta;
        } else {
          min_to[j] -= delta;
        }
      }
      j0 = j1;
    } while (row_of[j0] != 0);
    do {
      const size_t j1 = way[j0];
      row_of[j0] = row_of[j1];
      j0 = j1;
    } while (j0 != 0);
  }
  std::vector<int> column(n, -1);
  for (size_t j = 1; j <= m; ++j) {
    if (row_of[j] != 0) column[row_of[j] - 1] = static_cast<int>(j - 1);
  }
  return column;
}

// Cheapest pair first; ties by row (more useful commit first), then column.
std::vector<int> Greedy(const std::vector<std::vector<double>>& cost, size_t columns) {
  std::vector<std::tuple<double, size_t, size_t>> pairs;
  pairs.reserve(cost.size() * columns);
  for (size_t i = 0; i < cost.size(); ++i) {
    for (size_t j = 0; j < columns; ++j) pairs.emplace_back(cost[i][j], i, j);
  }
  std::sort(pairs.begin(), pairs.end());
  std::vector<int> column(cost.size(), -1);
  std::vector<bool> taken(columns, false);
  size_t placed = 0;
  for (const auto& [c, i, j] : pairs) {
    if (column[i] != -1 || taken[j]) continue;
    column[i] = static_cast<int>(j);
    taken[j] = true;
    if (++placed == cost.size()) break;
  }
  return column;
}

}  // namespace

std::vector<int> PlaceTasks(const std::vector<CommitId>& commits,
                            const std::vector<std::optional<CommitId>>& agent_positions,
                            const MoveCost& cost) {
  std::vector<int> result(commits.size(), -1);
  const size_t rows = std::min(commits.size(), agent_positions.size());
  const size_t columns = agent_positions.size();
  if (rows == 0) return result;
  std::vector<std::vector<double>> matrix(rows, std::vector<double>(columns));
  for (size_t i = 0; i < rows; ++i) {
    for (size_t j = 0; j < columns; ++j) {
      double c = cost(agent_positions[j], commits[i]);
      if (!(c >= 0) || c == std::numeric_limits<double>::infinity()) {
        c = std::numeric_limits<double>::max() / 4;  // NaN, negative or infinite: avoid
      }
      matrix[i][j] = c;
    }
  }
  const double work = static_cast<double>(rows) * rows * columns;
  std::vector<int> column = work <= 5e7 ? Hungarian(matrix, columns) : Greedy(matrix, columns);
  for (size_t i = 0; i < rows; ++i) result[i] = column[i];
  return result;
}

absl::StatusOr<size_t> ChangedFileCount(git_repository* repo, const git_oid& from,
                                        const git_oid& to) {
  GitLibrary::Ensure();
  auto tree_of = [repo](const git_oid& oid) -> absl::StatusOr<GitTree> {
    git_commit* raw_commit = nullptr;
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), &oid);
    if (int rc = git_commit_lookup(&raw_commit, repo, &oid); rc < 0) {
      return GitError(rc, absl::StrCat("cannot read commit ", hex));
    }
    GitCommit commit(raw_commit);
    git_tree* raw_tree = nullptr;
    if (int rc = git_commit_tree(&raw_tree, commit.get()); rc < 0) {
      return GitError(rc, absl::StrCat("cannot read the tree of ", hex));
    }
    return GitTree(raw_tree);
  };
  absl::StatusOr<GitTree> a = tree_of(from);
  if (!a.ok()) return a.status();
  absl::StatusOr<GitTree> b = tree_of(to);
  if (!b.ok()) return b.status();
  git_diff* raw_diff = nullptr;
  if (int rc = git_diff_tree_to_tree(&raw_diff, repo, a->get(), b->get(), nullptr); rc < 0) {
    return GitError(rc, "cannot compare two trees");
  }
  GitDiff diff(raw_diff);
  return git_diff_num_deltas(diff.get());
}

MoveCost TreeDiffCost(git_repository* repo, std::shared_ptr<const CommitGraph> graph,
                      double unknown_cost) {
  struct State {
    git_repository* repo;
    std::shared_ptr<const CommitGraph> graph;
    double unknown_cost;
    absl::flat_hash_map<std::pair<CommitId, CommitId>, double> moves;
    absl::flat_hash_map<CommitId, double> checkouts;
  };
  auto state = std::make_shared<State>(State{repo, std::move(graph), unknown_cost, {}, {}});
  return [state](std::optional<CommitId> from, CommitId to) -> double {
    if (from.has_value() && *from == to) return 0;
    if (!from.has_value()) {
      auto it = state->checkouts.find(to);
      if (it != state->checkouts.end()) return it->second;
      double files = state->unknown_cost;
      GitLibrary::Ensure();
      git_commit* raw_commit = nullptr;
      if (git_commit_lookup(&raw_commit, state->repo, &state->graph->oid(to)) == 0) {
        GitCommit commit(raw_commit);
        git_tree* raw_tree = nullptr;
        if (git_commit_tree(&raw_tree, commit.get()) == 0) {
          GitTree tree(raw_tree);
          git_diff* raw_diff = nullptr;
          if (git_diff_tree_to_tree(&raw_diff, state->repo, nullptr, tree.get(), nullptr) == 0) {
            GitDiff diff(raw_diff);
            files = static_cast<double>(git_diff_num_deltas(diff.get()));
          }
        }
      }
      state->checkouts.emplace(to, files);
      return files;
    }
    const auto key = std::minmax(*from, to);  // the diff is symmetric
    auto it = state->moves.find(key);
    if (it != state->moves.end()) return it->second;
    absl::StatusOr<size_t> n =
        ChangedFileCount(state->repo, state->graph->oid(*from), state->graph->oid(to));
    const double c = n.ok() ? static_cast<double>(*n) : state->unknown_cost;
    state->moves.emplace(key, c);
    return c;
  };
}

}  // namespace farm
