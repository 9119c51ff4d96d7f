// `farm next` (RunNext) on a repository from tests/lib/make_repo.py, against
// `git rev-list --bisect-all` on the same range.
#include "cli/next_cmd.h"

#include <unistd.h>

#include <atomic>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/bisect/bisect_testing.h"

#ifndef FARM_SOURCE_DIR
#error "FARM_SOURCE_DIR must point at the source tree (for tests/lib/make_repo.py)"
#endif

namespace farm {
namespace {

using bisect_testing::CommandResult;
using bisect_testing::Quote;
using bisect_testing::Sh;
using ::testing::HasSubstr;

struct Line {
  std::string sha;
  int dist = -1;
};

// Parses "<sha> (dist=D)" lines.
std::vector<Line> ParseLines(const std::string& text) {
  std::vector<Line> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    Line l;
    std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
    if (parts.size() != 2) continue;
    l.sha = std::string(parts[0]);
    absl::string_view d = parts[1];
    if (!absl::ConsumePrefix(&d, "(dist=") || !absl::ConsumeSuffix(&d, ")") ||
        !absl::SimpleAtoi(d, &l.dist)) {
      continue;
    }
    out.push_back(l);
  }
  return out;
}

class NextCmdTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { bisect_testing::IsolateGitConfig(); }

  void SetUp() override {
    if (!bisect_testing::GitAvailable()) GTEST_SKIP() << "git is not installed";
    if (Sh("python3 --version").exit_code != 0) GTEST_SKIP() << "python3 is not installed";
    static std::atomic<int> counter{0};
    dir_ = absl::StrCat(::testing::TempDir(), "next_cmd_test_", getpid(), "_", counter++);
    Sh("rm -rf " + Quote(dir_));
    CommandResult made = Sh(
        absl::StrCat("python3 ", Quote(FARM_SOURCE_DIR "/tests/lib/make_repo.py"), " ", Quote(dir_),
                     " --shape merges --commits 400 --seed 3 --culprit 0.3 > /dev/null && git -C ",
                     Quote(dir_), " rev-list --max-parents=0 main"));
    ASSERT_EQ(made.exit_code, 0) << made.output;
    root_ = std::string(absl::StripAsciiWhitespace(made.output));
    ASSERT_EQ(root_.size(), 40u) << made.output;
  }
  void TearDown() override {
    if (!dir_.empty()) Sh("rm -rf " + Quote(dir_));
  }

  // RunNext with its stdout captured.
  int Next(const NextFlags& flags, std::string* out) {
    ::testing::internal::CaptureStdout();
    const int code = RunNext(flags);
    *out = ::testing::internal::GetCapturedStdout();
    return code;
  }

  NextFlags Flags(int agents = 1) {
    NextFlags f;
    f.repo = dir_;
    f.good = {root_};
    f.bad = "main";
    f.agents = agents;
    return f;
  }

  // dist of every commit per `git rev-list --bisect-all`, and its first line.
  std::map<std::string, int> GitDistances(std::string* first) {
    CommandResult git =
        Sh(absl::StrCat("git -C ", Quote(dir_), " rev-list --bisect-all main ^", root_));
    EXPECT_EQ(git.exit_code, 0) << git.output;
    std::vector<Line> lines = ParseLines(git.output);
    EXPECT_FALSE(lines.empty()) << git.output;
    std::map<std::string, int> dist;
    for (const Line& l : lines) dist[l.sha] = l.dist;
    if (first != nullptr && !lines.empty()) *first = lines[0].sha;
    return dist;
  }

  std::string dir_;
  std::string root_;
};

TEST_F(NextCmdTest, MidpointHasGitsDistance) {
  std::string out;
  ASSERT_EQ(Next(Flags(), &out), 0);
  std::vector<Line> ours = ParseLines(out);
  ASSERT_EQ(ours.size(), 1u) << out;
  std::string git_first;
  std::map<std::string, int> git = GitDistances(&git_first);
  // The first line's dist equals git's first (best) dist, and git agrees on our commit's dist.
  EXPECT_EQ(ours[0].dist, git[git_first]);
  ASSERT_TRUE(git.count(ours[0].sha)) << ours[0].sha << " is not in git's range";
  EXPECT_EQ(git[ours[0].sha], ours[0].dist);
}

// With several agents the lines are the k-section probes the farm would start (PlanKSection),
// most balanced first; with one agent, git's midpoint (MidpointHasGitsDistance).
TEST_F(NextCmdTest, SeveralAgentsGetDistinctCommitsMostBalancedFirst) {
  std::string one, eight;
  ASSERT_EQ(Next(Flags(1), &one), 0);
  ASSERT_EQ(Next(Flags(8), &eight), 0);
  std::vector<Line> a = ParseLines(one), b = ParseLines(eight);
  ASSERT_EQ(b.size(), 8u) << eight;
  ASSERT_EQ(a.size(), 1u) << one;
  for (const Line& l : b) EXPECT_GE(b[0].dist, l.dist) << eight;
  EXPECT_LE(b[0].dist, a[0].dist) << "no probe splits better than git's midpoint";
  std::set<std::string> distinct;
  std::map<std::string, int> git = GitDistances(nullptr);
  for (const Line& l : b) {
    distinct.insert(l.sha);
    ASSERT_TRUE(git.count(l.sha)) << l.sha;
    EXPECT_EQ(git[l.sha], l.dist) << l.sha;  // dist in the current state, as git prints it
  }
  EXPECT_EQ(distinct.size(), 8u);
}

TEST_F(NextCmdTest, SameAnswerWithACommitGraphFile) {
  std::string before, after;
  ASSERT_EQ(Next(Flags(4), &before), 0);
  CommandResult written =
      Sh(absl::StrCat("git -C ", Quote(dir_), " commit-graph write --reachable"));
  ASSERT_EQ(written.exit_code, 0) << written.output;
  ASSERT_EQ(Next(Flags(4), &after), 0);
  EXPECT_EQ(after, before);
}

TEST_F(NextCmdTest, SkippedCommitsAreNotPrinted) {
  std::string out;
  ASSERT_EQ(Next(Flags(), &out), 0);
  const std::string midpoint = ParseLines(out).at(0).sha;
  NextFlags f = Flags(4);
  f.skip = {midpoint};
  ASSERT_EQ(Next(f, &out), 0);
  std::vector<Line> lines = ParseLines(out);
  ASSERT_FALSE(lines.empty());
  for (const Line& l : lines) EXPECT_NE(l.sha, midpoint);
}

TEST_F(NextCmdTest, BadInputExitsTwo) {
  std::string out;
  NextFlags swapped = Flags();
  swapped.good = {"main"};
  swapped.bad = root_;
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(Next(swapped, &out), 2);
  EXPECT_THAT(::testing::internal::GetCapturedStderr(), HasSubstr("did you swap them?"));
  EXPECT_EQ(out, "");

  NextFlags unknown = Flags();
  unknown.good = {"no-such-revision"};
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(Next(unknown, &out), 2);
  EXPECT_THAT(::testing::internal::GetCapturedStderr(), HasSubstr("unknown revision"));

  NextFlags agents = Flags(0);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(Next(agents, &out), 2);
  EXPECT_THAT(::testing::internal::GetCapturedStderr(), HasSubstr("--agents"));

  NextFlags no_repo = Flags();
  no_repo.repo = dir_ + "/does-not-exist";
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(Next(no_repo, &out), 2);
  EXPECT_THAT(::testing::internal::GetCapturedStderr(), HasSubstr("does not exist"));
}

TEST_F(NextCmdTest, TimingGoesToStderr) {
  NextFlags f = Flags(2);
  f.timing = true;
  std::string out;
  ::testing::internal::CaptureStderr();
  ASSERT_EQ(Next(f, &out), 0);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(err, HasSubstr("timing: resolve"));
  EXPECT_THAT(err, HasSubstr("plan for 2 agents"));
  EXPECT_EQ(ParseLines(out).size(), 2u);
}

}  // namespace
}  // namespace farm
