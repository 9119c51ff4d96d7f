#include "cli/next_cmd.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/exit_codes.h"
#include "common/git/git.h"
#include "coordinator/frontier/frontier.h"
#include "coordinator/graph/commit_graph.h"
#include "coordinator/planner/planner.h"

namespace farm {
namespace {

using Clock = std::chrono::steady_clock;

double MillisSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string Hex(const git_oid& oid) {
  char hex[GIT_OID_HEXSZ + 1];
  git_oid_tostr(hex, sizeof(hex), &oid);
  return hex;
}

std::string Short(const std::string& sha) { return sha.substr(0, 10); }

int Fail(const absl::Status& st, int code) {
  std::fprintf(stderr, "farm next: %s\n", std::string(st.message()).c_str());
  return code;
}

// Bad input is the user's to fix; anything else is the repository's or ours.
int FailStatus(const absl::Status& st) {
  const bool user =
      st.code() == absl::StatusCode::kNotFound || st.code() == absl::StatusCode::kInvalidArgument;
  return Fail(st, user ? kExitBadInput : kExitFailed);
}

absl::StatusOr<git_oid> Resolve(git_repository* repo, const std::string& rev, const char* what) {
  absl::StatusOr<git_oid> oid = ResolveCommit(repo, rev);
  if (!oid.ok()) {
    return absl::Status(oid.status().code(),
                        absl::StrCat(what, " revision: ", oid.status().message()));
  }
  return oid;
}

}  // namespace

void AddNextFlags(CLI::App* cmd, NextFlags& f) {
  cmd->add_option("--repo", f.repo, "git repository (a local path; default .)");
  cmd->add_option("--good,--old", f.good, "known-good revision (repeatable)")
      ->take_all()
      ->required();
  cmd->add_option("--bad,--new", f.bad, "known-bad revision (default HEAD)");
  cmd->add_option("--skip", f.skip, "revision known to be untestable (repeatable)")->take_all();
  cmd->add_flag("--first-parent", f.first_parent, "follow only the first parent of merges");
  cmd->add_option("--agents", f.agents,
                  "free agents: print the commits that many would start (default 1: the "
                  "midpoint)");
  cmd->add_flag("--timing", f.timing, "print how long loading and planning took (stderr)");
}

int RunNext(const NextFlags& f) {
  const Clock::time_point start = Clock::now();
  if (f.agents < 1) {
    return Fail(absl::InvalidArgumentError(
                    absl::StrCat("--agents must be at least 1 (got ", f.agents, ")")),
                kExitBadInput);
  }
  if (f.good.empty()) {
    return Fail(absl::InvalidArgumentError("give at least one --good revision"), kExitBadInput);
  }
  absl::StatusOr<GitRepository> repo = OpenRepository(f.repo);
  if (!repo.ok()) return FailStatus(repo.status());

  // Revisions.
  absl::StatusOr<git_oid> bad = Resolve(repo->get(), f.bad, "bad");
  if (!bad.ok()) return FailStatus(bad.status());
  const std::string bad_hex = Hex(*bad);
  std::vector<git_oid> goods;
  for (const std::string& name : f.good) {
    absl::StatusOr<git_oid> good = Resolve(repo->get(), name, "good");
    if (!good.ok()) return FailStatus(good.status());
    if (Hex(*good) == bad_hex) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
                      "good revision '", name, "' and bad revision '", f.bad,
                      "' are the same commit ", Short(bad_hex), ": there is nothing to bisect")),
                  kExitBadInput);
    }
    goods.push_back(*good);
  }
  std::vector<git_oid> skips;
  for (const std::string& name : f.skip) {
    absl::StatusOr<git_oid> skip = Resolve(repo->get(), name, "skip");
    if (!skip.ok()) return FailStatus(skip.status());
    skips.push_back(*skip);
  }
  const double resolve_ms = MillisSince(start);

  // The range; with a commit-graph file it also says which goods bad contains.
  Clock::time_point phase = Clock::now();
  GraphLoadInfo load_info;
  absl::StatusOr<std::shared_ptr<const CommitGraph>> graph =
      CommitGraph::Load(repo->get(), *bad, goods, f.first_parent, GraphLoadOptions(), &load_info);
  if (!graph.ok()) return FailStatus(graph.status());
  const double load_ms = MillisSince(phase);

  // Every good must be an ancestor of bad, as `farm bisect` requires.
  phase = Clock::now();
  for (size_t i = 0; i < goods.size(); ++i) {
    bool ancestor = false;
    if (i < load_info.good_is_ancestor.size()) {
      ancestor = load_info.good_is_ancestor[i];
    } else {
      absl::StatusOr<bool> is = IsAncestor(repo->get(), goods[i], *bad);
      if (!is.ok()) return FailStatus(is.status());
      ancestor = *is;
    }
    if (ancestor) continue;
    const std::string& name = f.good[i];
    const std::string good_hex = Hex(goods[i]);
    absl::StatusOr<bool> reversed = IsAncestor(repo->get(), *bad, goods[i]);
    if (!reversed.ok()) return FailStatus(reversed.status());
    if (*reversed) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
                      "good commit ", name, " (", Short(good_hex),
                      ") is not an ancestor of bad commit ", f.bad, " (", Short(bad_hex),
                      "), it is a descendant: did you swap them? (use --good/--bad)")),
                  kExitBadInput);
    }
    return Fail(absl::InvalidArgumentError(absl::StrCat(
                    "good commit ", name, " (", Short(good_hex),
                    ") is not an ancestor of bad commit ", f.bad, " (", Short(bad_hex),
                    "): they are on diverging branches; give a good commit that bad contains, "
                    "for example their merge base (git merge-base ",
                    name, " ", f.bad, "), or check that they are not swapped")),
                kExitBadInput);
  }
  const double check_ms = MillisSince(phase);
  if ((*graph)->size() == 0) {
    return Fail(absl::InvalidArgumentError("the range good..bad is empty: nothing to bisect"),
                kExitBadInput);
  }
  Frontier frontier(*graph);
  for (const git_oid& s : skips) {
    if (std::optional<CommitId> id = (*graph)->Find(s)) frontier.Apply(*id, Verdict::kSkip);
  }

  // Weights and the midpoint, then the plan for the free agents (which reuses the weights).
  phase = Clock::now();
  const std::optional<CommitId> midpoint = frontier.BestMidpoint();
  const double weights_ms = MillisSince(phase);
  phase = Clock::now();
  Plan plan;
  if (midpoint.has_value()) {
    PlanRequest request;
    request.free_slots = static_cast<size_t>(f.agents);
    plan = PlanKSection(frontier, request);
  }
  const double plan_ms = MillisSince(phase);

  const uint64_t n = frontier.num_candidates();
  for (CommitId id : plan.start) {
    const uint64_t w = frontier.Weight(id);
    std::printf("%s (dist=%llu)\n", (*graph)->Hex(id).c_str(),
                static_cast<unsigned long long>(std::min(w, n - w)));
  }
  std::fflush(stdout);
  if (f.timing) {
    size_t merges = 0;
    for (CommitId id = 0; id < (*graph)->size(); ++id) merges += (*graph)->parents(id).size() > 1;
    std::string source = "revision walk";
    if (load_info.used_commit_graph_file) {
      source = load_info.commits_from_objects == 0
                   ? "commit-graph file"
                   : absl::StrCat("commit-graph file + ", load_info.commits_from_objects,
                                  " commits from objects");
    } else if (load_info.commits_from_pack_scan > 0) {
      source = absl::StrCat("no commit-graph file: ", load_info.commits_from_pack_scan,
                            " commits from a pass over the packs, ",
                            load_info.commits_from_objects - load_info.commits_from_pack_scan,
                            " read by id");
    }
    std::fprintf(stderr,
                 "timing: resolve %.1f ms, load %.1f ms (%zu commits, %zu merges, %s), ancestry "
                 "check %.1f ms, weights + midpoint %.1f ms, plan for %d agent%s %.1f ms, total "
                 "%.1f ms\n",
                 resolve_ms, load_ms, (*graph)->size(), merges, source.c_str(), check_ms,
                 weights_ms, f.agents, f.agents == 1 ? "" : "s", plan_ms, MillisSince(start));
  }
  if (plan.start.empty()) {
    // Nothing left to test.
    std::vector<CommitId> answer = frontier.Candidates();
    if (answer.size() == 1) {
      std::fprintf(stderr, "farm next: nothing to test: %s is the first bad commit\n",
                   (*graph)->Hex(answer[0]).c_str());
      return kExitFound;
    }
    std::vector<std::string> shas;
    for (CommitId id : answer) shas.push_back((*graph)->Hex(id));
    std::fprintf(stderr,
                 "farm next: only skipped commits are left; the first bad commit could be any "
                 "of:\n%s\n",
                 absl::StrJoin(shas, "\n").c_str());
    return kExitAmbiguous;
  }
  return kExitFound;
}

}  // namespace farm
