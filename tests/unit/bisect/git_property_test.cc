// Property test against the real git binary, on random merge-heavy repositories:
//  (a) CommitGraph::Load gives exactly `git rev-list [--first-parent] bad --not good...`;
//  (b) Frontier weights give, for every candidate, the min(w, N - w) that
//      `git rev-list --bisect-all` prints as dist=, and BestMidpoint is its first line;
//  (c) `git bisect run` (with some commits exiting 125) is replayed verdict by verdict into a
//      Frontier: every commit git tests is a testable candidate, git's picks are as good as
//      BestMidpoint (the very same commit once git sorts, i.e. after a skip), and the final
//      candidates equal git's answer, "X is the first bad commit" or "could be any of";
//  (d) our own bisection loop finds the first bad commit, or with skips an answer set that
//      contains it and is git-shaped;
//  (e) so does the k-section planner (3 agents, rounds), and its bisect log, replayed by git,
//      gives git the same answer.
#include <git2.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "coordinator/frontier/frontier.h"
#include "coordinator/graph/commit_graph.h"
#include "coordinator/planner/planner.h"
#include "gtest/gtest.h"
#include "tests/unit/bisect/bisect_testing.h"

namespace farm {
namespace {

using bisect_testing::AncestorSets;
using bisect_testing::CommandResult;
using bisect_testing::Dag;
using bisect_testing::OidFromHex;
using bisect_testing::Quote;
using bisect_testing::Sh;

constexpr uint64_t kSeed = 0x5eedb15ec7;
constexpr int kCases = 100;
constexpr int kShards = 4;  // separate ctest tests, so `ctest -j2` runs them side by side

bool IsHex40(absl::string_view s) {
  return s.size() == 40 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// The answer printed by `git bisect run`: the first bad commit, or the "could be any of" set.
std::set<std::string> ParseBisectAnswer(const std::string& output) {
  std::set<std::string> answer;
  std::vector<std::string> lines = absl::StrSplit(output, '\n');
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    if (absl::EndsWith(line, " is the first bad commit") && IsHex40(line.substr(0, 40))) {
      answer.insert(line.substr(0, 40));
      return answer;
    }
    if (line == "The first bad commit could be any of:") {
      for (size_t j = i + 1; j < lines.size() && IsHex40(lines[j]); ++j) answer.insert(lines[j]);
      return answer;
    }
  }
  return answer;
}

struct LoggedVerdict {
  Verdict verdict;
  std::string sha;
};

// The verdicts of `git bisect log`, in order (the commits git chose and tested).
std::vector<LoggedVerdict> ParseBisectLog(const std::string& log) {
  std::vector<LoggedVerdict> out;
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    std::vector<std::string> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (words.size() < 4 || words[0] != "git" || words[1] != "bisect") continue;
    Verdict v;
    if (words[2] == "good") {
      v = Verdict::kGood;
    } else if (words[2] == "bad") {
      v = Verdict::kBad;
    } else if (words[2] == "skip") {
      v = Verdict::kSkip;
    } else {
      continue;
    }
    for (size_t k = 3; k < words.size(); ++k) out.push_back({v, words[k]});
  }
  return out;
}

uint64_t Distance(const Frontier& f, CommitId id) {
  const uint64_t w = f.Weight(id), n = f.num_candidates();
  return std::min(w, n - w);
}

struct Totals {
  std::atomic<int> cases{0}, first_parent{0}, with_skips{0}, ambiguous{0};
  std::atomic<int> git_steps{0}, our_steps{0}, same_pick_checks{0}, ksection_rounds{0};
  std::atomic<int> from_file_only{0}, mixed{0};  // loads from a commit-graph file
};
Totals totals;

class GitPropertyTest : public ::testing::TestWithParam<int> {
 protected:
  static void SetUpTestSuite() {
    git_libgit2_init();
    bisect_testing::IsolateGitConfig();
  }
  static void TearDownTestSuite() {
    git_libgit2_shutdown();
    std::printf(
        "totals: %d cases (%d --first-parent, %d with skips, %d ambiguous answers); git tested "
        "%d commits, our loop %d; %d picks compared commit for commit; %d loads from a "
        "commit-graph file alone, %d mixed with the object database; k-section with 3 agents: %d "
        "rounds\n",
        totals.cases.load(), totals.first_parent.load(), totals.with_skips.load(),
        totals.ambiguous.load(), totals.git_steps.load(), totals.our_steps.load(),
        totals.same_pick_checks.load(), totals.from_file_only.load(), totals.mixed.load(),
        totals.ksection_rounds.load());
  }
  void SetUp() override {
    if (!bisect_testing::GitAvailable()) GTEST_SKIP() << "git is not installed";
  }

  void RunCase(int index);
};

void GitPropertyTest::RunCase(int index) {
  std::mt19937_64 rng(kSeed + static_cast<uint64_t>(index));
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  auto pick = [&rng](const std::vector<uint32_t>& v) {
    return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)];
  };

  // The history, a bad tip, 1-3 goods among its ancestors, and the range as git will see it.
  const size_t n = std::uniform_int_distribution<size_t>(20, 200)(rng);
  const Dag dag = bisect_testing::RandomHistory(rng, n);
  const auto anc = AncestorSets(dag);
  std::vector<bool> has_child(n, false);
  for (const auto& parents : dag) {
    for (uint32_t p : parents) has_child[p] = true;
  }
  std::vector<uint32_t> tips;
  for (uint32_t i = 0; i < n; ++i) {
    if (!has_child[i] && std::count(anc[i].begin(), anc[i].end(), true) >= 6) tips.push_back(i);
  }
  if (tips.empty()) tips.push_back(static_cast<uint32_t>(n - 1));
  const bool first_parent = coin(rng) < 0.3;
  uint32_t bad = 0;
  std::vector<uint32_t> goods;
  std::vector<bool> in_range;  // the model's answer to rev-list [--first-parent]
  std::vector<bool> in_full_range;
  for (int attempt = 0;; ++attempt) {
    bad = pick(tips);
    std::vector<uint32_t> below;
    for (uint32_t i = 0; i < bad; ++i) {
      if (anc[bad][i]) below.push_back(i);
    }
    goods.clear();
    const int k = std::uniform_int_distribution<int>(1, 3)(rng);
    for (int g = 0; g < k; ++g) {
      uint32_t good = pick(below);
      if (std::find(goods.begin(), goods.end(), good) == goods.end()) goods.push_back(good);
    }
    in_full_range.assign(n, false);
    for (uint32_t i = 0; i < n; ++i) {
      in_full_range[i] = anc[bad][i];
      for (uint32_t g : goods) in_full_range[i] = in_full_range[i] && !anc[g][i];
    }
    in_range = in_full_range;
    if (first_parent) {
      in_range.assign(n, false);
      for (int64_t x = bad; x >= 0 && in_full_range[x];) {
        in_range[x] = true;
        if (dag[x].empty()) break;
        x = dag[x][0];
      }
    }
    if (std::count(in_range.begin(), in_range.end(), true) >= 3 || attempt > 50) break;
  }
  std::vector<uint32_t> range, full_range;
  for (uint32_t i = 0; i < n; ++i) {
    if (in_range[i]) range.push_back(i);
    if (in_full_range[i]) full_range.push_back(i);
  }

  // The regression: `culprit` (anywhere in the full range, also off the first-parent line) and
  // every commit that contains it are bad. Some commits cannot be tested.
  const uint32_t culprit = pick(full_range);
  uint32_t first_bad = culprit;  // with --first-parent: the oldest first-parent commit with it
  if (first_parent) {
    for (uint32_t i : range) {
      if (anc[i][culprit]) {
        first_bad = i;
        break;
      }
    }
  }
  std::set<uint32_t> skips;
  if (coin(rng) < 0.45) {
    const double rate = 0.05 + 0.3 * coin(rng);
    for (uint32_t i : range) {
      if (i != bad && coin(rng) < rate) skips.insert(i);
    }
    // Often the first bad commit itself cannot be tested: git then ends ambiguous.
    if (first_bad != bad && coin(rng) < 0.5) skips.insert(first_bad);
  }
  auto oracle = [&](uint32_t i) {
    return skips.count(i) ? Verdict::kSkip : anc[i][culprit] ? Verdict::kBad : Verdict::kGood;
  };

  static std::atomic<int> counter{0};
  const std::string dir =
      absl::StrCat(::testing::TempDir(), "bisect_property_", getpid(), "_", counter++);
  SCOPED_TRACE(absl::StrCat("case ", index, " (seed ", kSeed, "+", index, "): ", n,
                            " commits, bad ", bad, ", goods ", absl::StrJoin(goods, ","),
                            first_parent ? ", --first-parent" : "", ", culprit ", culprit,
                            ", skips {", absl::StrJoin(skips, ","), "}, repo ", dir));
  Sh("rm -rf " + Quote(dir));
  absl::StatusOr<std::vector<std::string>> created = bisect_testing::CreateRepository(dir, dag);
  ASSERT_TRUE(created.ok()) << created.status();
  const std::vector<std::string>& shas = *created;
  std::map<std::string, uint32_t> index_of;
  for (uint32_t i = 0; i < n; ++i) index_of[shas[i]] = i;
  std::string revs = shas[bad];
  std::string bisect_revs = shas[bad];
  for (uint32_t g : goods) {
    absl::StrAppend(&revs, " ^", shas[g]);
    absl::StrAppend(&bisect_revs, " ", shas[g]);
  }
  const std::string fp = first_parent ? " --first-parent" : "";
  const std::string in_repo = "cd " + Quote(dir) + " && ";

  // (a) Load == rev-list, and == the model, parents included. Three cases in four read a
  // commit-graph file: one file, a split chain, or a file of only half the commits (the rest,
  // and topic tips no branch reaches, come from the object database).
  const int graph_mode = index % 4;
  if (graph_mode != 0) {
    std::string write = "git commit-graph write --reachable";
    if (graph_mode == 2) write = "git commit-graph write --reachable --split=no-merge";
    if (graph_mode == 3) {
      write = "printf '%s\\n'";
      for (uint32_t i = 0; i < n / 2; ++i) absl::StrAppend(&write, " ", shas[i]);
      write += " | git commit-graph write --stdin-commits";
    }
    CommandResult written = Sh(in_repo + write);
    ASSERT_EQ(written.exit_code, 0) << written.output;
  }
  git_repository* repo = nullptr;
  ASSERT_EQ(git_repository_open(&repo, dir.c_str()), 0);
  std::vector<git_oid> good_oids;
  for (uint32_t g : goods) good_oids.push_back(OidFromHex(shas[g]));
  GraphLoadInfo load_info;
  absl::StatusOr<std::shared_ptr<const CommitGraph>> loaded = CommitGraph::Load(
      repo, OidFromHex(shas[bad]), good_oids, first_parent, GraphLoadOptions(), &load_info);
  git_repository_free(repo);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(load_info.used_commit_graph_file, graph_mode != 0);
  if (graph_mode == 1 || graph_mode == 2)
    totals.from_file_only += load_info.commits_from_objects == 0;
  if (graph_mode == 3) totals.mixed += load_info.commits_from_objects > 0;
  std::shared_ptr<const CommitGraph> graph = *loaded;
  std::set<std::string> ours, model;
  for (CommitId id = 0; id < graph->size(); ++id) ours.insert(graph->Hex(id));
  for (uint32_t i : range) model.insert(shas[i]);
  CommandResult rev_list = Sh(in_repo + "git rev-list" + fp + " " + revs);
  ASSERT_EQ(rev_list.exit_code, 0) << rev_list.output;
  std::vector<std::string> git_range_lines =
      absl::StrSplit(rev_list.output, '\n', absl::SkipEmpty());
  std::set<std::string> git_range(git_range_lines.begin(), git_range_lines.end());
  ASSERT_EQ(ours, git_range);
  ASSERT_EQ(ours, model);
  ASSERT_EQ(graph->Hex(graph->bad()), shas[bad]);
  for (CommitId id = 0; id < graph->size(); ++id) {
    const uint32_t i = index_of[graph->Hex(id)];
    std::vector<std::string> expected, actual;
    for (uint32_t p : dag[i]) {
      if (in_range[p]) expected.push_back(shas[p]);
      if (first_parent) break;
    }
    for (CommitId p : graph->parents(id)) {
      ASSERT_LT(p, id);
      actual.push_back(graph->Hex(p));
    }
    ASSERT_EQ(actual, expected) << "parents of " << i;
  }

  // (b) Weights: every dist= of `git rev-list --bisect-all`, and its first line.
  {
    Frontier f(graph);
    CommandResult all = Sh(in_repo + "git rev-list --bisect-all" + fp + " " + revs);
    ASSERT_EQ(all.exit_code, 0) << all.output;
    std::vector<std::string> lines = absl::StrSplit(all.output, '\n', absl::SkipEmpty());
    ASSERT_EQ(lines.size(), f.num_candidates());
    for (const std::string& line : lines) {
      const size_t at = line.find("dist=");
      ASSERT_NE(at, std::string::npos) << line;
      uint64_t dist = 0;
      ASSERT_TRUE(absl::SimpleAtoi(
          line.substr(at + 5, line.find_first_not_of("0123456789", at + 5) - at - 5), &dist))
          << line;
      std::optional<CommitId> id = graph->FindHex(line.substr(0, 40));
      ASSERT_TRUE(id.has_value()) << line;
      EXPECT_EQ(Distance(f, *id), dist) << line;
    }
    std::optional<CommitId> best = f.BestMidpoint();
    ASSERT_TRUE(best.has_value());
    EXPECT_EQ(graph->Hex(*best), lines[0].substr(0, 40));
  }

  // (c) git bisect run, replayed.
  std::string script = "read h < .git/BISECT_HEAD; ";
  if (!skips.empty()) {
    std::vector<std::string> skipped;
    for (uint32_t s : skips) skipped.push_back(shas[s]);
    absl::StrAppend(&script, "case $h in ", absl::StrJoin(skipped, "|"), ") exit 125;; esac; ");
  }
  absl::StrAppend(&script, "git merge-base --is-ancestor ", shas[culprit],
                  " $h; r=$?; [ $r -eq 0 ] && exit 1; [ $r -eq 1 ] && exit 0; exit 200");
  CommandResult run = Sh(in_repo + "git bisect start --no-checkout" + fp + " " + bisect_revs +
                         " && git bisect run sh -c " + Quote(script));
  const std::set<std::string> git_answer = ParseBisectAnswer(run.output);
  ASSERT_FALSE(git_answer.empty()) << run.output;
  CommandResult log = Sh(in_repo + "git bisect log");
  ASSERT_EQ(log.exit_code, 0) << log.output;
  const std::vector<LoggedVerdict> verdicts = ParseBisectLog(log.output);

  Frontier replay(graph);
  bool skip_recorded = false;
  for (const LoggedVerdict& lv : verdicts) {
    SCOPED_TRACE("git bisect " + lv.sha);
    std::optional<CommitId> id = graph->FindHex(lv.sha);
    ASSERT_TRUE(id.has_value());
    ASSERT_TRUE(replay.IsCandidate(*id) && !replay.IsSkipped(*id) && *id != replay.bad());
    ASSERT_EQ(lv.verdict, oracle(index_of[lv.sha]));
    std::optional<CommitId> best = replay.BestMidpoint();
    ASSERT_TRUE(best.has_value());
    if (!skip_recorded) {
      // git stops at any commit with |2w - N| <= 1, or takes the best: the same distance.
      EXPECT_EQ(Distance(replay, *id), Distance(replay, *best));
    } else {
      // git sorts all candidates by (distance, oid) and takes the first unless it is skipped.
      std::optional<CommitId> top;
      for (CommitId c : replay.Candidates()) {
        if (c == replay.bad()) continue;
        if (!top || Distance(replay, c) > Distance(replay, *top) ||
            (Distance(replay, c) == Distance(replay, *top) && graph->Hex(c) < graph->Hex(*top))) {
          top = c;
        }
      }
      if (top && !replay.IsSkipped(*top)) {
        EXPECT_EQ(*id, *top);
        EXPECT_EQ(*id, *best);
        ++totals.same_pick_checks;
      }
    }
    ASSERT_TRUE(replay.Apply(*id, lv.verdict));
    skip_recorded = skip_recorded || lv.verdict == Verdict::kSkip;
  }
  EXPECT_TRUE(replay.Done());
  std::set<std::string> replay_answer;
  for (CommitId c : replay.Candidates()) replay_answer.insert(graph->Hex(c));
  EXPECT_EQ(replay_answer, git_answer) << run.output;

  // (d) Our own loop.
  Frontier own(graph);
  int steps = 0;
  while (std::optional<CommitId> m = own.BestMidpoint()) {
    ASSERT_TRUE(own.Apply(*m, oracle(index_of[graph->Hex(*m)])));
    ASSERT_LT(++steps, 1000);
  }
  std::set<std::string> own_answer;
  for (CommitId c : own.Candidates()) own_answer.insert(graph->Hex(c));
  if (skips.empty()) {
    EXPECT_EQ(git_answer, std::set<std::string>{shas[first_bad]});
    EXPECT_EQ(own_answer, std::set<std::string>{shas[first_bad]});
  } else {
    for (const std::set<std::string>& answer : {git_answer, own_answer}) {
      EXPECT_EQ(answer.count(shas[first_bad]), 1u);
      if (answer.size() == 1) {
        EXPECT_EQ(*answer.begin(), shas[first_bad]);
      }
    }
    for (CommitId c : own.Candidates()) {
      if (c != own.bad()) {
        EXPECT_TRUE(own.IsSkipped(c));
      }
    }
    EXPECT_EQ(oracle(index_of[graph->Hex(own.bad())]), Verdict::kBad);
  }

  // (e) The k-section planner in rounds of 3 tests, a round's verdicts applied in the order its
  // commits were planned (one that an earlier verdict made stale is recorded but not applied,
  // as the coordinator does). The applied verdicts, written as the coordinator writes a bisect
  // log and replayed by `git bisect replay`, make git print the answer we found.
  {
    Frontier ks(graph);
    // git replays the start line's arguments only when each is single-quoted. '--no-checkout'
    // (not in the coordinator's log) only spares the test the checkouts.
    std::string ks_log = "git bisect start '--no-checkout'";
    if (first_parent) ks_log += " '--first-parent'";
    for (absl::string_view rev : absl::StrSplit(bisect_revs, ' ')) {
      absl::StrAppend(&ks_log, " ", Quote(std::string(rev)));
    }
    ks_log += "\n";
    int rounds = 0;
    while (!ks.Done()) {
      ASSERT_LT(++rounds, 200);
      const Plan plan = PlanKSection(ks, {{}, 3});
      ASSERT_FALSE(plan.start.empty());
      for (CommitId c : plan.start) {
        const Verdict v = oracle(index_of[graph->Hex(c)]);
        if (!ks.Apply(c, v)) continue;
        absl::StrAppend(&ks_log, "git bisect ",
                        v == Verdict::kGood  ? "good"
                        : v == Verdict::kBad ? "bad"
                                             : "skip",
                        " ", graph->Hex(c), "\n");
      }
    }
    std::set<std::string> ks_answer;
    for (CommitId c : ks.Candidates()) ks_answer.insert(graph->Hex(c));
    if (skips.empty()) {
      EXPECT_EQ(ks_answer, std::set<std::string>{shas[first_bad]});
    }
    EXPECT_EQ(ks_answer.count(shas[first_bad]), 1u);
    const std::string log_file = dir + "/.git/ksection.log";
    CommandResult replayed =
        Sh(in_repo + "git bisect reset >/dev/null 2>&1; printf '%s' " + Quote(ks_log) + " > " +
           Quote(log_file) + " && git bisect replay " + Quote(log_file));
    EXPECT_EQ(ParseBisectAnswer(replayed.output), ks_answer) << ks_log << replayed.output;
    totals.ksection_rounds += rounds;
  }

  ++totals.cases;
  totals.first_parent += first_parent;
  totals.with_skips += !skips.empty();
  totals.ambiguous += git_answer.size() > 1;
  totals.git_steps += static_cast<int>(verdicts.size());
  totals.our_steps += steps;
  if (!HasFailure()) Sh("rm -rf " + Quote(dir));
}

TEST_P(GitPropertyTest, MatchesGit) {
  const int shard = GetParam();
  std::printf("seed %llu, cases %d..%d\n", static_cast<unsigned long long>(kSeed),
              shard * kCases / kShards, (shard + 1) * kCases / kShards - 1);
  const auto start = std::chrono::steady_clock::now();
  for (int i = shard * kCases / kShards; i < (shard + 1) * kCases / kShards; ++i) {
    RunCase(i);
    if (HasFatalFailure()) return;
  }
  std::printf("shard %d: %.1f s\n", shard,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

INSTANTIATE_TEST_SUITE_P(Shards, GitPropertyTest, ::testing::Range(0, kShards));

}  // namespace
}  // namespace farm
