#include "common/git/git.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/agent/test_repo.h"

namespace farm {
namespace {

using ::farm::testing_util::FreshTempDir;
using ::farm::testing_util::RunGit;
using ::farm::testing_util::TestRepo;
using ::testing::HasSubstr;

std::string Hex(const git_oid& oid) {
  char hex[GIT_OID_HEXSZ + 1];
  git_oid_tostr(hex, sizeof(hex), &oid);
  return hex;
}

git_oid Oid(const std::string& hex) {
  git_oid oid;
  EXPECT_EQ(git_oid_fromstr(&oid, hex.c_str()), 0) << hex;
  return oid;
}

class GitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing_util::HaveGit()) GTEST_SKIP() << "the git CLI is not installed";
  }
};

TEST_F(GitTest, OpenRepositoryErrors) {
  auto missing = OpenRepository("/nonexistent/farm/repo");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "repository path '/nonexistent/farm/repo' does not exist");

  // A plain directory, even inside another repository, is not a repository (no upward search).
  TestRepo repo("open");
  std::filesystem::create_directories(repo.path() + "/sub");
  auto plain = OpenRepository(repo.path() + "/sub");
  ASSERT_FALSE(plain.ok());
  EXPECT_EQ(plain.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(plain.status().message(), HasSubstr("is not a git repository"));
}

TEST_F(GitTest, OpenWorkTreeGitDirAndBare) {
  TestRepo repo("open2");
  repo.Write("a", "1");
  repo.Commit("one");
  EXPECT_TRUE(OpenRepository(repo.path()).ok());
  EXPECT_TRUE(OpenRepository(repo.path() + "/.git").ok());
  std::string bare = FreshTempDir("bare") + "/b.git";
  RunGit(repo.path(), {"clone", "-q", "--bare", repo.path(), bare});
  EXPECT_TRUE(OpenRepository(bare).ok());
}

TEST_F(GitTest, GitErrorKeepsGitsMessage) {
  GitLibrary::Ensure();
  git_repository* raw = nullptr;
  int rc = git_repository_open(&raw, "/nonexistent/x");
  absl::Status s = GitError(rc, "opening");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("opening: "));
  EXPECT_THAT(s.message(), HasSubstr("/nonexistent/x"));
  EXPECT_TRUE(GitError(0, "fine").ok());
}

TEST_F(GitTest, ResolveCommit) {
  TestRepo repo("resolve");
  repo.Write("a", "1");
  std::string c1 = repo.Commit("one");
  repo.Write("a", "2");
  std::string c2 = repo.Commit("two");
  repo.Git({"tag", "-a", "-m", "release", "v1", c1});
  repo.Git({"tag", "light", c2});
  auto r = OpenRepository(repo.path());
  ASSERT_TRUE(r.ok()) << r.status();
  git_repository* g = r->get();

  struct Case {
    std::string rev, want;
  } cases[] = {{"HEAD", c2},  {"main", c2}, {"HEAD~1", c1},       {"v1", c1},
               {"light", c2}, {c1, c1},     {c1.substr(0, 8), c1}};
  for (const Case& c : cases) {
    auto oid = ResolveCommit(g, c.rev);
    ASSERT_TRUE(oid.ok()) << c.rev << ": " << oid.status();
    EXPECT_EQ(Hex(*oid), c.want) << c.rev;
  }

  auto unknown = ResolveCommit(g, "nope");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(unknown.status().message(),
            absl::StrCat("unknown revision 'nope': not a commit in ", repo.path()));
  std::string zeros(40, '0');
  EXPECT_EQ(ResolveCommit(g, "deadbeef" + zeros.substr(8)).status().code(),
            absl::StatusCode::kNotFound);

  auto tree = ResolveCommit(g, "HEAD^{tree}");
  ASSERT_FALSE(tree.ok());
  EXPECT_EQ(tree.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(tree.status().message(), HasSubstr("not a commit"));
}

TEST_F(GitTest, IsAncestor) {
  TestRepo repo("ancestor");
  std::string a = repo.Commit("a");
  std::string b = repo.Commit("b");
  repo.Git({"checkout", "-q", "-b", "side", a});
  std::string side = repo.Commit("side");
  auto r = OpenRepository(repo.path());
  ASSERT_TRUE(r.ok()) << r.status();
  git_repository* g = r->get();
  EXPECT_EQ(*IsAncestor(g, Oid(a), Oid(b)), true);
  EXPECT_EQ(*IsAncestor(g, Oid(b), Oid(a)), false);
  EXPECT_EQ(*IsAncestor(g, Oid(b), Oid(b)), true);  // Equal counts, like merge-base --is-ancestor.
  EXPECT_EQ(*IsAncestor(g, Oid(side), Oid(b)), false);
  EXPECT_EQ(*IsAncestor(g, Oid(a), Oid(side)), true);
  auto missing = IsAncestor(g, Oid(std::string(40, '1')), Oid(b));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(GitTest, GetCommitInfo) {
  TestRepo repo("info");
  repo.Write("f", "x");
  std::string sha = repo.Commit("Subject line\n\nBody text.\n", "2026-11-05T07:13:02-0330");
  auto r = OpenRepository(repo.path());
  ASSERT_TRUE(r.ok()) << r.status();
  auto info = GetCommitInfo(r->get(), Oid(sha));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->sha, sha);
  EXPECT_EQ(info->subject, "Subject line");
  EXPECT_EQ(info->message, "Subject line\n\nBody text.\n");
  EXPECT_EQ(info->author_name, "Ada Lovelace");
  EXPECT_EQ(info->author_email, "ada@example.com");
  EXPECT_EQ(info->offset_minutes, -210);
  EXPECT_EQ(info->time, 1793862782 + 210 * 60);
  EXPECT_EQ(GetCommitInfo(r->get(), Oid(std::string(40, '2'))).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(GitTest, FormatGitDateMatchesGit) {
  // The day is not zero-padded, the offset is the author's.
  EXPECT_EQ(FormatGitDate(1793862782, 0), "Thu Nov 5 07:13:02 2026 +0000");
  EXPECT_EQ(FormatGitDate(1793862782, 60), "Thu Nov 5 08:13:02 2026 +0100");
  EXPECT_EQ(FormatGitDate(1793862782, -210), "Thu Nov 5 03:43:02 2026 -0330");
  EXPECT_EQ(FormatGitDate(1795590782, 0), "Wed Nov 25 07:13:02 2026 +0000");
}

// ShowCommit must print what `git show --stat --summary` prints (what git bisect shows).
TEST_F(GitTest, ShowCommitMatchesGitShow) {
  TestRepo repo("show");
  std::vector<std::string> shas;
  repo.Write("README", "hello\n");
  repo.Write("src/main.c", "int main() { return 0; }\n");
  shas.push_back(repo.Commit("Initial import"));  // Root commit: stat against the empty tree.
  repo.Write("README", "hello\nworld\n");
  repo.Write("src/main.c", "int main() { return 1; }\n");
  repo.Git({"add", "-A"});
  repo.Git({"commit", "-q", "--cleanup=verbatim", "-m",
            "\nFix the frobnicator\n\nIt\twas broken:  \n\n\n  - indented\n\n"});
  shas.push_back(repo.Git({"rev-parse", "HEAD"}));
  repo.Remove("README");
  repo.Write("docs/new.md", "new\n");
  repo.Write("run.sh", "#!/bin/sh\n");
  shas.push_back(repo.Commit("Add and delete", "2026-11-25T23:59:59+1400"));
  repo.Git({"mv", "src/main.c", "src/app.c"});
  shas.push_back(repo.Commit("Rename only"));
  shas.push_back(repo.Commit("Empty commit"));
  std::string base = shas.back();
  repo.Git({"checkout", "-q", "-b", "side"});
  repo.Write("side.txt", "side\n");
  repo.Commit("side work");
  repo.Git({"checkout", "-q", "main"});
  repo.Write("main.txt", "main\n");
  repo.Commit("main work");
  repo.Git({"merge", "-q", "--no-ff", "-m", "Merge branch 'side'", "side"});
  shas.push_back(repo.Git({"rev-parse", "HEAD"}));
  std::string big;
  for (int i = 0; i < 500; ++i) big += absl::StrCat("line ", i, "\n");
  repo.Write("a/very/long/path/name/that/goes/on/and/on/and/on/for/quite/a/while/file.txt", big);
  repo.Write("small", "1\n");
  shas.push_back(repo.Commit("Scaling of the graph"));
  repo.Write("blob.bin", std::string("\0\1\2binary", 9));
  repo.Write("caf\xc3\xa9 \"quoted\".txt", "x\n");
  shas.push_back(repo.Commit("Binary and odd names"));
  repo.Write("blob.bin", std::string("\0\1\2binary, longer", 17));
  repo.Git({"update-index", "--chmod=+x", "run.sh"});
  repo.Git({"commit", "-q", "-m", "chmod"});
  shas.push_back(repo.Git({"rev-parse", "HEAD"}));
  repo.Remove("small");
  std::string body;
  for (int i = 0; i < 20; ++i) body += absl::StrCat("row ", i, "\n");
  repo.Write("dir/one/moved.txt", body);
  shas.push_back(repo.Commit("Prepare a rename"));
  repo.Remove("dir/one/moved.txt");
  repo.Write("dir/two/moved.txt", body + "extra\n");
  // libgit2 scores similarity with its own metric (97% here), git with another (95%).
  std::string fuzzy_rename = repo.Commit("Rename with an edit");
  shas.push_back(fuzzy_rename);

  auto r = OpenRepository(repo.path());
  ASSERT_TRUE(r.ok()) << r.status();
  for (const std::string& sha : shas) {
    std::string want = repo.Git(
        {"show", "--stat", "--summary", "--format=medium", "--diff-merges=first-parent", sha});
    auto got = ShowCommit(r->get(), Oid(sha));
    ASSERT_TRUE(got.ok()) << got.status();
    std::string trimmed = *got;
    while (!trimmed.empty() && trimmed.back() == '\n') trimmed.pop_back();
    if (sha == fuzzy_rename) {
      for (std::string* text : {&trimmed, &want}) {
        size_t open = text->rfind(" (");
        ASSERT_NE(open, std::string::npos);
        text->replace(open, std::string::npos, " (N%)");
      }
    }
    EXPECT_EQ(trimmed, want) << "commit " << sha;
    EXPECT_EQ(got->back(), '\n');
  }
}

TEST_F(GitTest, RepoCacheUsesLocalRepositoriesInPlace) {
  TestRepo repo("local");
  std::string sha = repo.Commit("one");
  RepoCache cache(FreshTempDir("cache"));
  auto path = cache.Prepare(repo.path(), sha);
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, repo.path() + "/.git");

  std::string bare = FreshTempDir("bare") + "/b.git";
  RunGit(repo.path(), {"clone", "-q", "--bare", repo.path(), bare});
  path = cache.Prepare(bare);
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, bare);

  std::string plain = FreshTempDir("plain");
  auto bad = cache.Prepare(plain);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr(plain));
}

TEST_F(GitTest, RepoCacheMirrorsAndFetchesMissingCommits) {
  TestRepo origin("origin");
  origin.Write("a", "1");
  std::string c1 = origin.Commit("one");
  origin.Git({"tag", "-a", "-m", "v1", "v1"});
  const std::string url = "file://" + origin.path();
  std::string cache_dir = FreshTempDir("cache") + "/mirrors";  // Created on demand.
  RepoCache cache(cache_dir);

  auto path = cache.Prepare(url, c1);
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, cache.MirrorPath(url));
  EXPECT_EQ(path->rfind(cache_dir + "/", 0), 0u) << *path;
  EXPECT_EQ(path->substr(path->size() - 4), ".git");
  {
    auto mirror = OpenRepository(*path);
    ASSERT_TRUE(mirror.ok()) << mirror.status();
    EXPECT_TRUE(git_repository_is_bare(mirror->get()));
    EXPECT_TRUE(ResolveCommit(mirror->get(), c1).ok());
    EXPECT_TRUE(ResolveCommit(mirror->get(), "v1").ok());
  }
  // Nothing is left behind but the mirror.
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(cache_dir)) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);

  // A commit made later on a new branch is fetched when asked for.
  origin.Git({"checkout", "-q", "-b", "feature"});
  origin.Write("a", "2");
  std::string c2 = origin.Commit("two");
  origin.Git({"tag", "v2"});
  auto again = cache.Prepare(url, c2);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *path);
  {
    auto mirror = OpenRepository(*path);
    ASSERT_TRUE(mirror.ok()) << mirror.status();
    EXPECT_TRUE(ResolveCommit(mirror->get(), c2).ok());
    EXPECT_TRUE(ResolveCommit(mirror->get(), "v2").ok());
    EXPECT_TRUE(ResolveCommit(mirror->get(), "feature").ok());
  }

  auto missing = cache.Prepare(url, std::string(40, 'a'));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr(url));
}

// The raw bytes of every commit-graph file of the repository at git_dir (one file or a chain).
std::string CommitGraphBytes(const std::string& git_dir) {
  std::string bytes;
  std::vector<std::string> files = {git_dir + "/objects/info/commit-graph"};
  const std::string chain_dir = git_dir + "/objects/info/commit-graphs";
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(chain_dir, ec)) {
    files.push_back(e.path().string());
  }
  for (const std::string& f : files) {
    std::ifstream in(f, std::ios::binary);
    bytes.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return bytes;
}

// A mirror gets git's commit-graph file when it is cloned and again when it is fetched, so that
// CommitGraph::Load reads no commit object.
TEST_F(GitTest, RepoCacheMirrorsCarryACommitGraphOfEveryCommit) {
  TestRepo origin("origin");
  origin.Write("a", "1");
  const std::string c1 = origin.Commit("one");
  RepoCache cache(FreshTempDir("cache"));
  const std::string url = "file://" + origin.path();
  auto path = cache.Prepare(url, c1);
  ASSERT_TRUE(path.ok()) << path.status();
  auto raw = [](const std::string& hex) {
    const git_oid oid = Oid(hex);
    return std::string(reinterpret_cast<const char*>(oid.id), GIT_OID_RAWSZ);
  };
  EXPECT_NE(CommitGraphBytes(*path).find(raw(c1)), std::string::npos) << "after the clone";

  origin.Write("a", "2");
  const std::string c2 = origin.Commit("two");
  ASSERT_TRUE(cache.Prepare(url, c2).ok());
  const std::string after_fetch = CommitGraphBytes(*path);
  EXPECT_NE(after_fetch.find(raw(c2)), std::string::npos) << "after the fetch";
  EXPECT_NE(after_fetch.find(raw(c1)), std::string::npos) << "after the fetch";
  RunGit(*path, {"commit-graph", "verify"});  // fails the test unless git accepts the files
}

TEST_F(GitTest, RepoCacheCloneFailureNamesTheUrl) {
  RepoCache cache(FreshTempDir("cache"));
  const std::string url = "file:///nonexistent/farm/origin";
  auto path = cache.Prepare(url);
  ASSERT_FALSE(path.ok());
  EXPECT_THAT(path.status().message(), HasSubstr(url));
  EXPECT_FALSE(std::filesystem::exists(cache.MirrorPath(url)));
}

TEST_F(GitTest, RepoCacheConcurrentPreparesCloneOnce) {
  TestRepo origin("origin_conc");
  std::string sha = origin.Commit("one");
  const std::string url = "file://" + origin.path();
  std::string cache_dir = FreshTempDir("cache");
  RepoCache cache(cache_dir);
  std::vector<absl::StatusOr<std::string>> results(4, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] { results[i] = cache.Prepare(url, sha); });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(*r, cache.MirrorPath(url));
  }
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(cache_dir)) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

}  // namespace
}  // namespace farm
