#include "agent/workspace/workspace.h"

#include <sys/stat.h>
#include <sys/time.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "agent/workspace/checkout_filters.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/agent/test_repo.h"

namespace farm {
namespace {

namespace fs = std::filesystem;
using ::farm::testing_util::FreshTempDir;
using ::farm::testing_util::ReadFile;
using ::farm::testing_util::RunGit;
using ::farm::testing_util::TestRepo;
using ::farm::testing_util::WriteFile;
using ::testing::HasSubstr;

constexpr time_t kOldTime = 1000000000;  // 2001: no checkout writes files with this mtime.

void SetOldMtime(const std::string& path) {
  struct timeval times[2] = {{kOldTime, 0}, {kOldTime, 0}};
  ASSERT_EQ(utimes(path.c_str(), times), 0) << path;
}

time_t Mtime(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return -1;
  return st.st_mtime;
}

size_t CountEntries(const std::string& dir) {
  size_t n = 0;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) ++n;
  return n;
}

// A repository with two commits: A, then B which changes, deletes and adds files.
class WorkspaceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing_util::HaveGit()) GTEST_SKIP() << "the git CLI is not installed";
    repo_ = std::make_unique<TestRepo>("origin");
    repo_->Write(".gitignore", "*.o\nignored_dir/\n");
    repo_->Write("keep.txt", "unchanged\n");
    repo_->Write("change.txt", "version A\n");
    repo_->Write("gone.txt", "deleted in B\n");
    repo_->Write("dir/only.txt", "the only file of dir\n");
    a_ = repo_->Commit("A");
    repo_->Write("change.txt", "version B\n");
    repo_->Remove("gone.txt");
    repo_->Remove("dir/only.txt");
    repo_->Write("new.txt", "added in B\n");
    b_ = repo_->Commit("B");
    auto ws = Workspace::Open(FreshTempDir("ws") + "/agent");  // Created by Open.
    ASSERT_TRUE(ws.ok()) << ws.status();
    ws_ = std::move(*ws);
  }

  std::string Head(int slot) { return RunGit(ws_->worktree_path(slot), {"rev-parse", "HEAD"}); }

  std::unique_ptr<TestRepo> repo_;
  std::string a_, b_;
  std::unique_ptr<Workspace> ws_;
};

TEST_F(WorkspaceTest, CheckoutBorrowsObjectsAndDetachesHead) {
  auto r = ws_->Checkout(0, repo_->path(), a_, false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->worktree, ws_->worktree_path(0));
  EXPECT_EQ(r->build_dir, ws_->build_path(0));
  EXPECT_TRUE(fs::is_directory(r->build_dir));
  EXPECT_EQ(r->files_written, 5u);
  EXPECT_EQ(r->files_removed, 0u);
  EXPECT_EQ(ReadFile(r->worktree + "/change.txt"), "version A\n");
  EXPECT_EQ(Head(0), a_);
  EXPECT_EQ(RunGit(r->worktree, {"status", "--porcelain"}), "");
  EXPECT_EQ(RunGit(r->worktree, {"rev-parse", "--abbrev-ref", "HEAD"}), "HEAD")
      << "HEAD should be detached";
  // Objects are borrowed from the local repository, not copied.
  EXPECT_EQ(ReadFile(r->worktree + "/.git/objects/info/alternates"),
            repo_->path() + "/.git/objects\n");
  EXPECT_EQ(CountEntries(r->worktree + "/.git/objects/pack"), 0u);
  size_t loose = 0;
  for (const auto& e : fs::directory_iterator(r->worktree + "/.git/objects")) {
    std::string name = e.path().filename().string();
    if (name != "info" && name != "pack") ++loose;
  }
  EXPECT_EQ(loose, 0u);
}

TEST_F(WorkspaceTest, CheckoutWritesOnlyWhatChangedAndKeepsBuildOutputs) {
  ASSERT_TRUE(ws_->Checkout(0, repo_->path(), a_, false).ok());
  const std::string src = ws_->worktree_path(0);
  const std::string build = ws_->build_path(0);
  SetOldMtime(src + "/keep.txt");
  SetOldMtime(src + "/change.txt");
  WriteFile(src + "/out.bin", "untracked build output");
  WriteFile(src + "/main.o", "ignored object");
  WriteFile(src + "/ignored_dir/x/y.txt", "ignored directory");
  WriteFile(build + "/CMakeCache.txt", "cache");

  auto r = ws_->Checkout(0, repo_->path(), b_, false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->files_written, 2u);  // change.txt, new.txt
  EXPECT_EQ(r->files_removed, 2u);  // gone.txt, dir/only.txt
  EXPECT_EQ(Head(0), b_);
  EXPECT_EQ(Mtime(src + "/keep.txt"), kOldTime) << "an unchanged file was rewritten";
  EXPECT_NE(Mtime(src + "/change.txt"), kOldTime);
  EXPECT_EQ(ReadFile(src + "/change.txt"), "version B\n");
  EXPECT_EQ(ReadFile(src + "/new.txt"), "added in B\n");
  EXPECT_FALSE(fs::exists(src + "/gone.txt"));
  EXPECT_FALSE(fs::exists(src + "/dir")) << "a directory left empty should go";
  EXPECT_EQ(ReadFile(src + "/out.bin"), "untracked build output");
  EXPECT_EQ(ReadFile(src + "/main.o"), "ignored object");
  EXPECT_EQ(ReadFile(src + "/ignored_dir/x/y.txt"), "ignored directory");
  EXPECT_EQ(ReadFile(build + "/CMakeCache.txt"), "cache");
  EXPECT_EQ(RunGit(src, {"status", "--porcelain"}), "?? out.bin");

  // Same commit again: nothing to do.
  r = ws_->Checkout(0, repo_->path(), b_, false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->files_written, 0u);
  EXPECT_EQ(r->files_removed, 0u);
  EXPECT_EQ(Mtime(src + "/keep.txt"), kOldTime);

  // Pristine: build outputs go, tracked files stay untouched.
  git_repository* nested = nullptr;
  ASSERT_EQ(git_repository_init(&nested, (src + "/nested_repo").c_str(), 0), 0);
  git_repository_free(nested);
  fs::create_directories(src + "/empty_dir");
  r = ws_->Checkout(0, repo_->path(), b_, true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->files_written, 0u);
  EXPECT_GE(r->files_removed, 3u);
  EXPECT_FALSE(fs::exists(src + "/out.bin"));
  EXPECT_FALSE(fs::exists(src + "/main.o"));
  EXPECT_FALSE(fs::exists(src + "/ignored_dir"));
  EXPECT_FALSE(fs::exists(src + "/nested_repo"));
  EXPECT_FALSE(fs::exists(src + "/empty_dir"));
  EXPECT_TRUE(fs::is_directory(build));
  EXPECT_EQ(CountEntries(build), 0u);
  EXPECT_EQ(Mtime(src + "/keep.txt"), kOldTime);
  EXPECT_EQ(RunGit(src, {"status", "--porcelain", "--ignored"}), "");
  EXPECT_EQ(Head(0), b_);
}

TEST_F(WorkspaceTest, PristineCountsRemovedFiles) {
  ASSERT_TRUE(ws_->Checkout(0, repo_->path(), b_, false).ok());
  const std::string src = ws_->worktree_path(0);
  WriteFile(src + "/out.bin", "1");
  WriteFile(src + "/main.o", "2");
  WriteFile(src + "/ignored_dir/x/y.txt", "3");
  WriteFile(src + "/ignored_dir/z.txt", "4");
  auto r = ws_->Checkout(0, repo_->path(), b_, true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->files_removed, 4u);
}

TEST_F(WorkspaceTest, ModifiedTrackedFilesAreRestored) {
  ASSERT_TRUE(ws_->Checkout(0, repo_->path(), a_, false).ok());
  const std::string src = ws_->worktree_path(0);
  WriteFile(src + "/keep.txt", "scribbled on by a build\n");
  fs::remove(src + "/change.txt");
  auto r = ws_->Checkout(0, repo_->path(), b_, false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ReadFile(src + "/keep.txt"), "unchanged\n");
  EXPECT_EQ(ReadFile(src + "/change.txt"), "version B\n");
  EXPECT_EQ(r->files_written, 3u);  // keep.txt, change.txt, new.txt
  EXPECT_EQ(RunGit(src, {"status", "--porcelain"}), "");
}

TEST_F(WorkspaceTest, SlotsAreIndependent) {
  ASSERT_TRUE(ws_->Checkout(0, repo_->path(), a_, false).ok());
  ASSERT_TRUE(ws_->Checkout(1, repo_->path(), b_, false).ok());
  EXPECT_NE(ws_->worktree_path(0), ws_->worktree_path(1));
  EXPECT_NE(ws_->build_path(0), ws_->build_path(1));
  EXPECT_EQ(ReadFile(ws_->worktree_path(0) + "/change.txt"), "version A\n");
  EXPECT_EQ(ReadFile(ws_->worktree_path(1) + "/change.txt"), "version B\n");
  WriteFile(ws_->build_path(0) + "/out", "0");
  ASSERT_TRUE(ws_->Checkout(1, repo_->path(), a_, true).ok());
  EXPECT_EQ(ReadFile(ws_->build_path(0) + "/out"), "0");
  EXPECT_EQ(Head(0), a_);
  EXPECT_EQ(Head(1), a_);
}

TEST_F(WorkspaceTest, ConcurrentSlots) {
  const std::string url = "file://" + repo_->path();
  std::vector<absl::StatusOr<CheckoutResult>> results(4, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int slot = 0; slot < 4; ++slot) {
    threads.emplace_back(
        [&, slot] { results[slot] = ws_->Checkout(slot, url, slot % 2 ? b_ : a_, slot == 3); });
  }
  for (auto& t : threads) t.join();
  for (int slot = 0; slot < 4; ++slot) {
    ASSERT_TRUE(results[slot].ok()) << results[slot].status();
    EXPECT_EQ(Head(slot), slot % 2 ? b_ : a_);
  }
}

TEST_F(WorkspaceTest, UnknownShaIsNotFound) {
  auto r = ws_->Checkout(0, repo_->path(), std::string(40, 'a'), false);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr(repo_->path()));

  r = ws_->Checkout(0, "file://" + repo_->path(), std::string(40, 'b'), false);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);

  r = ws_->Checkout(0, "file:///nonexistent/farm/repo", a_, false);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("file:///nonexistent/farm/repo"));

  EXPECT_EQ(ws_->Checkout(-1, repo_->path(), a_, false).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(WorkspaceTest, RemoteUrlGoesThroughTheMirror) {
  const std::string url = "file://" + repo_->path();
  auto r = ws_->Checkout(0, url, a_, false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ReadFile(r->worktree + "/change.txt"), "version A\n");
  const std::string mirror = ws_->repo_cache().MirrorPath(url);
  EXPECT_THAT(mirror, HasSubstr("/agent/mirrors/"));
  EXPECT_EQ(ReadFile(r->worktree + "/.git/objects/info/alternates"), mirror + "/objects\n");
  EXPECT_EQ(Head(0), a_);

  // A commit pushed to the origin later is fetched into the mirror on demand.
  repo_->Write("change.txt", "version C\n");
  std::string c = repo_->Commit("C");
  r = ws_->Checkout(0, url, c, false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ReadFile(r->worktree + "/change.txt"), "version C\n");
  EXPECT_EQ(Head(0), c);
}

// Makes every object of the git directory `git_dir` loose and deletes the blob of `spec`
// ("COMMIT:PATH"), as a damaged disk would; returns the blob's id.
std::string LoseBlob(const std::string& git_dir, const std::string& spec) {
  const std::string blob = RunGit(git_dir, {"rev-parse", spec});
  const std::string packs =
      git_dir + "/../packs-" + std::filesystem::path(git_dir).filename().string();
  std::filesystem::create_directories(packs);
  for (const auto& e : std::filesystem::directory_iterator(git_dir + "/objects/pack")) {
    std::filesystem::rename(e.path(), packs + "/" + e.path().filename().string());
  }
  for (const auto& e : std::filesystem::directory_iterator(packs)) {
    if (e.path().extension() != ".pack") continue;
    EXPECT_EQ(
        std::system(
            ("git -C '" + git_dir + "' unpack-objects -q < '" + e.path().string() + "'").c_str()),
        0);
  }
  std::filesystem::remove_all(packs);
  EXPECT_TRUE(
      std::filesystem::remove(git_dir + "/objects/" + blob.substr(0, 2) + "/" + blob.substr(2)))
      << blob;
  return blob;
}

// A mirror is the agent's own: one that lacks an object is cloned again and the checkout goes on,
// saying so. A local repository is the user's: the error names the object and says to repair it.
TEST_F(WorkspaceTest, MirrorMissingAnObjectIsClonedAgain) {
  const std::string url = "file://" + repo_->path();
  ASSERT_TRUE(ws_->Checkout(0, url, a_, false).ok());
  const std::string blob = LoseBlob(ws_->repo_cache().MirrorPath(url), b_ + ":new.txt");
  auto r = ws_->Checkout(1, url, b_, false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->mirror_repaired, HasSubstr(blob));
  EXPECT_EQ(ReadFile(r->worktree + "/new.txt"), "added in B\n");
  EXPECT_EQ(Head(1), b_);
  // The repaired mirror serves the next checkout without another clone.
  auto again = ws_->Checkout(0, url, b_, false);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->mirror_repaired, "");
}

TEST_F(WorkspaceTest, LocalRepositoryMissingAnObjectIsNotFoundWithTheRemedy) {
  const std::string blob = LoseBlob(repo_->path() + "/.git", b_ + ":new.txt");
  auto r = ws_->Checkout(0, repo_->path(), b_, false);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::IsNotFound(r.status())) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr(blob));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("run `git fsck` there"));
}

TEST(CheckoutFiltersTest, AttributesThatMayAskForAFilter) {
  EXPECT_FALSE(CheckoutFilters::AttributesMayNeed(""));
  EXPECT_FALSE(CheckoutFilters::AttributesMayNeed("*.c diff=cpp\n*.h   diff=cpp\n"));
  EXPECT_FALSE(CheckoutFilters::AttributesMayNeed("# text eol=crlf\n*.png binary\n"));
  EXPECT_FALSE(CheckoutFilters::AttributesMayNeed("text.txt linguist-vendored\n"));  // a pattern
  EXPECT_TRUE(CheckoutFilters::AttributesMayNeed("*.sh text eol=lf\n"));
  EXPECT_TRUE(CheckoutFilters::AttributesMayNeed("*.bat -crlf\n"));
  EXPECT_TRUE(CheckoutFilters::AttributesMayNeed("*.c diff=cpp\nversion.h ident\n"));
  EXPECT_TRUE(CheckoutFilters::AttributesMayNeed("*.bin filter=lfs diff=lfs"));
  EXPECT_TRUE(CheckoutFilters::AttributesMayNeed("[attr]raw -text -diff\n"));
  EXPECT_TRUE(CheckoutFilters::AttributesMayNeed("* !eol\n"));
}

// Checkouts skip libgit2's filters only where none applies: a commit whose .gitattributes asks
// for CRLF line endings or $Id$ expansion (here in a subdirectory, added by a later commit) gets
// them, as `git checkout` would; the files of a commit without them are written as stored.
TEST_F(WorkspaceTest, LineEndingAndIdentAttributesAreStillApplied) {
  repo_->Write("sub/.gitattributes", "*.txt eol=crlf\nid.c ident\n");
  repo_->Write("sub/a.txt", "one\ntwo\n");
  repo_->Write("sub/id.c", "/* $Id$ */\n");
  repo_->Write("plain.txt", "one\ntwo\n");
  const std::string c = repo_->Commit("C: attributes");
  auto r = ws_->Checkout(0, repo_->path(), c, false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ReadFile(r->worktree + "/sub/a.txt"), "one\r\ntwo\r\n");
  EXPECT_THAT(ReadFile(r->worktree + "/sub/id.c"), HasSubstr("$Id: "));
  EXPECT_EQ(ReadFile(r->worktree + "/plain.txt"), "one\ntwo\n");
  // Back to a commit without attributes: files as stored.
  r = ws_->Checkout(0, repo_->path(), b_, false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ReadFile(r->worktree + "/change.txt"), "version B\n");
}

TEST_F(WorkspaceTest, CorruptWorktreeIsRecreated) {
  ASSERT_TRUE(ws_->Checkout(0, repo_->path(), a_, false).ok());
  const std::string src = ws_->worktree_path(0);
  fs::remove_all(src + "/.git");
  WriteFile(src + "/stray.txt", "from the broken worktree");
  auto r = ws_->Checkout(0, repo_->path(), b_, false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Head(0), b_);
  EXPECT_EQ(ReadFile(src + "/change.txt"), "version B\n");
  EXPECT_FALSE(fs::exists(src + "/gone.txt"));
  EXPECT_FALSE(fs::exists(src + "/stray.txt"));

  // A garbage index is dropped; unchanged files are still left alone.
  WriteFile(src + "/.git/index", "garbage");
  SetOldMtime(src + "/keep.txt");
  r = ws_->Checkout(0, repo_->path(), a_, false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Head(0), a_);
  EXPECT_EQ(Mtime(src + "/keep.txt"), kOldTime);
  EXPECT_EQ(ReadFile(src + "/change.txt"), "version A\n");
  EXPECT_EQ(ReadFile(src + "/gone.txt"), "deleted in B\n");
  EXPECT_EQ(RunGit(src, {"status", "--porcelain"}), "");

  // A stale lock left by a killed agent.
  WriteFile(src + "/.git/index.lock", "");
  r = ws_->Checkout(0, repo_->path(), b_, false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Head(0), b_);
}

TEST_F(WorkspaceTest, AnotherRepositoryStartsTheSlotAfresh) {
  ASSERT_TRUE(ws_->Checkout(0, repo_->path(), b_, false).ok());
  WriteFile(ws_->build_path(0) + "/CMakeCache.txt", "for the first repository");
  WriteFile(ws_->worktree_path(0) + "/out.bin", "build output of the first repository");
  TestRepo other("other");
  other.Write("other.txt", "other\n");
  std::string sha = other.Commit("other");
  auto r = ws_->Checkout(0, other.path(), sha, false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Head(0), sha);
  EXPECT_FALSE(fs::exists(r->worktree + "/keep.txt"));
  EXPECT_FALSE(fs::exists(r->worktree + "/out.bin"));
  EXPECT_EQ(CountEntries(r->build_dir), 0u);
}

}  // namespace
TEST(SubmoduleUrlTest, ResolvedRelativeToTheSuperprojectAsGitDoes) {
  EXPECT_EQ(ResolveSubmoduleUrl("/src/super", "../lib"), "/src/lib");
  EXPECT_EQ(ResolveSubmoduleUrl("/src/super/", "./lib"), "/src/super/lib");
  EXPECT_EQ(ResolveSubmoduleUrl("https://host/org/super.git", "../lib.git"),
            "https://host/org/lib.git");
  EXPECT_EQ(ResolveSubmoduleUrl("https://host/org/super.git", "../../other/lib.git"),
            "https://host/other/lib.git");
  EXPECT_EQ(ResolveSubmoduleUrl("git@host:org/super.git", "../lib.git"), "git@host:org/lib.git");
  EXPECT_EQ(ResolveSubmoduleUrl("git@host:super.git", "../lib.git"), "git@host:lib.git");
  EXPECT_EQ(ResolveSubmoduleUrl("/src/super", "https://elsewhere/lib.git"),
            "https://elsewhere/lib.git");
}

// A superproject whose commits record a submodule (its url relative to the superproject's, as
// `git submodule add ../lib` writes it) at two commits: each checkout has the submodule's files at
// the commit recorded, whether the slot starts afresh, is reused or is made pristine, and git
// sees the superproject clean.
TEST_F(WorkspaceTest, SubmodulesAreCheckedOutAtTheRecordedCommits) {
  TestRepo lib("lib");
  lib.Write("lib.txt", "lib v1\n");
  const std::string v1 = lib.Commit("v1");
  lib.Write("lib.txt", "lib v2\n");
  lib.Write("bug", "");
  const std::string v2 = lib.Commit("v2");
  TestRepo super("super");
  super.Write("main.txt", "main\n");
  super.Git({"-c", "protocol.file.allow=always", "submodule", "add", "-q",
             "../" + fs::path(lib.path()).filename().string(), "lib"});
  super.Git({"-C", "lib", "checkout", "-q", v1});
  const std::string c1 = super.Commit("lib at v1");
  super.Git({"-C", "lib", "checkout", "-q", v2});
  const std::string c2 = super.Commit("lib at v2");

  auto r = ws_->Checkout(0, super.path(), c1, false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ReadFile(r->worktree + "/lib/lib.txt"), "lib v1\n");
  EXPECT_FALSE(fs::exists(r->worktree + "/lib/bug"));
  r = ws_->Checkout(0, super.path(), c2, false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ReadFile(r->worktree + "/lib/lib.txt"), "lib v2\n");
  EXPECT_TRUE(fs::exists(r->worktree + "/lib/bug"));
  EXPECT_EQ(RunGit(r->worktree + "/lib", {"rev-parse", "HEAD"}), v2);
  EXPECT_EQ(RunGit(r->worktree, {"status", "--porcelain"}), "");
  WriteFile(r->worktree + "/lib/generated.o", "stale\n");
  r = ws_->Checkout(0, super.path(), c1, /*pristine=*/true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ReadFile(r->worktree + "/lib/lib.txt"), "lib v1\n");
  EXPECT_FALSE(fs::exists(r->worktree + "/lib/bug"));
  EXPECT_FALSE(fs::exists(r->worktree + "/lib/generated.o")) << "pristine reaches submodules";
  EXPECT_EQ(RunGit(r->worktree, {"status", "--porcelain"}), "");
}

// Issue 14's cold start: local agents' worktrees seeded one after another before their first task.
class SeedTest : public WorkspaceTest {
 protected:
  void SetUp() override {
    WorkspaceTest::SetUp();
    if (IsSkipped()) return;
    repo_->Write("bin/run.sh", "#!/bin/sh\nexit 0\n");
    ASSERT_EQ(chmod((repo_->path() + "/bin/run.sh").c_str(), 0755), 0);
    ASSERT_EQ(symlink("keep.txt", (repo_->path() + "/link").c_str()), 0);
    c_ = repo_->Commit("C");
  }

  // Fails the test unless slot `slot` holds exactly commit `sha`'s tree, with an index whose
  // stat data git itself accepts (`git diff-files` reads no file to find it clean).
  void ExpectHolds(int slot, const std::string& sha) {
    const std::string src = ws_->worktree_path(slot);
    EXPECT_EQ(Head(slot), sha);
    EXPECT_EQ(RunGit(src, {"status", "--porcelain", "--ignored", "--untracked-files=all"}), "");
    EXPECT_EQ(RunGit(src, {"diff-files", "--name-only"}), "");
    EXPECT_EQ(RunGit(src, {"write-tree"}), RunGit(src, {"rev-parse", sha + "^{tree}"}));
  }

  std::string c_;
};

TEST_F(SeedTest, SeededWorktreesHoldTheirCommitAndShareNoFile) {
  constexpr int kSlots = 4;
  for (int slot = 0; slot < kSlots; ++slot) {
    absl::StatusOr<bool> seeded = ws_->SeedWorktree(slot, repo_->path(), c_, [] { return false; });
    ASSERT_TRUE(seeded.ok()) << seeded.status();
    EXPECT_TRUE(*seeded);
    EXPECT_TRUE(ws_->HasWorktree(slot, repo_->path()));
    ExpectHolds(slot, c_);
  }
  const std::string src0 = ws_->worktree_path(0);
  struct stat st;
  ASSERT_EQ(stat((src0 + "/bin/run.sh").c_str(), &st), 0);
  EXPECT_TRUE(st.st_mode & S_IXUSR);
  ASSERT_EQ(lstat((src0 + "/link").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(fs::read_symlink(src0 + "/link"), "keep.txt");
  // Nothing a build could write through: every file has one link, no two slots share an inode.
  std::set<ino_t> inodes;
  size_t files = 0;
  for (int slot = 0; slot < kSlots; ++slot) {
    for (const char* rel : {"keep.txt", "change.txt", "new.txt", "bin/run.sh", ".gitignore"}) {
      ASSERT_EQ(lstat(absl::StrCat(ws_->worktree_path(slot), "/", rel).c_str(), &st), 0) << rel;
      EXPECT_EQ(st.st_nlink, 1u) << rel;
      inodes.insert(st.st_ino);
      ++files;
    }
  }
  EXPECT_EQ(inodes.size(), files);
  WriteFile(src0 + "/keep.txt", "a build wrote here\n");
  EXPECT_EQ(ReadFile(ws_->worktree_path(1) + "/keep.txt"), "unchanged\n");

  // The first task's checkout writes only the diff, and later ones stay exact.
  SetOldMtime(ws_->worktree_path(1) + "/keep.txt");
  auto r = ws_->Checkout(1, repo_->path(), a_, false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->files_written, 3u);  // change.txt, gone.txt, dir/only.txt
  EXPECT_EQ(r->files_removed, 3u);  // new.txt, bin/run.sh, link
  EXPECT_EQ(Mtime(ws_->worktree_path(1) + "/keep.txt"), kOldTime);
  ExpectHolds(1, a_);
  r = ws_->Checkout(1, repo_->path(), c_, false);
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectHolds(1, c_);
  r = ws_->Checkout(0, repo_->path(), b_, false);  // restores what the "build" wrote
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectHolds(0, b_);
}

TEST_F(SeedTest, AWorktreeThatHoldsACommitIsLeftAlone) {
  ASSERT_TRUE(ws_->Checkout(0, repo_->path(), a_, false).ok());
  absl::StatusOr<bool> seeded = ws_->SeedWorktree(0, repo_->path(), c_, [] { return false; });
  ASSERT_TRUE(seeded.ok()) << seeded.status();
  EXPECT_FALSE(*seeded);
  ExpectHolds(0, a_);
}

TEST_F(SeedTest, ACancelledSeedIsRecreatedByTheNextCheckout) {
  int asked = 0;
  absl::StatusOr<bool> seeded =
      ws_->SeedWorktree(0, repo_->path(), a_, [&asked] { return ++asked > 4; });
  EXPECT_EQ(seeded.status().code(), absl::StatusCode::kCancelled) << seeded.status();
  EXPECT_FALSE(ws_->HasWorktree(0, repo_->path()));
  EXPECT_TRUE(fs::exists(ws_->worktree_path(0) + "/change.txt"));  // half-written (tree order)
  auto r = ws_->Checkout(0, repo_->path(), b_, false);
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectHolds(0, b_);  // nothing of the half-written commit A is left, untracked or not
}

TEST_F(SeedTest, ACancelledSeedIsResumedKeepingWhatItWrote) {
  int asked = 0;
  absl::StatusOr<bool> seeded =
      ws_->SeedWorktree(0, repo_->path(), a_, [&asked] { return ++asked > 4; });
  ASSERT_EQ(seeded.status().code(), absl::StatusCode::kCancelled) << seeded.status();
  const std::string written = ws_->worktree_path(0) + "/change.txt";
  SetOldMtime(written);
  seeded = ws_->SeedWorktree(0, repo_->path(), a_, [] { return false; });
  ASSERT_TRUE(seeded.ok()) << seeded.status();
  EXPECT_TRUE(*seeded);
  EXPECT_EQ(Mtime(written), kOldTime) << "a file the cancelled seed wrote was written again";
  ExpectHolds(0, a_);
}

// A task's first checkout writes a whole tree (seconds for a large one): cancelled, it stops
// between files, so the agent's slot is free at once. The next task's checkout, of another
// commit, resumes it: the files the two commits share stay as written, nothing else of the first
// commit is left.
TEST_F(SeedTest, ACancelledFirstCheckoutStopsAndTheNextOneResumesIt) {
  int asked = 0;
  auto r = ws_->Checkout(0, repo_->path(), a_, false, [&asked] { return ++asked > 4; });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled) << r.status();
  EXPECT_EQ(asked, 5);
  EXPECT_FALSE(ws_->HasWorktree(0, repo_->path()));
  const std::string src = ws_->worktree_path(0);
  ASSERT_TRUE(fs::exists(src + "/dir/only.txt"));  // written before the cancel (tree order)
  ASSERT_EQ(ReadFile(src + "/change.txt"), "version A\n");
  const std::string shared = src + "/.gitignore";  // the same in A and B
  SetOldMtime(shared);
  r = ws_->Checkout(0, repo_->path(), b_, false, [] { return false; });
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectHolds(0, b_);  // change.txt of B, no dir/only.txt
  EXPECT_EQ(Mtime(shared), kOldTime) << "a file both commits have was written again";
  EXPECT_FALSE(fs::exists(src + "/dir"));
  // And the seed of a third commit over a cut-short second one.
  asked = 0;
  ASSERT_EQ(
      ws_->Checkout(1, repo_->path(), c_, false, [&asked] { return ++asked > 6; }).status().code(),
      absl::StatusCode::kCancelled);
  r = ws_->Checkout(1, repo_->path(), a_, false, [] { return false; });
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectHolds(1, a_);
}

TEST_F(SeedTest, UnknownCommitSaysWhichRepository) {
  absl::StatusOr<bool> seeded =
      ws_->SeedWorktree(0, repo_->path(), "no-such-branch", [] { return false; });
  EXPECT_EQ(seeded.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(seeded.status().message()), HasSubstr(repo_->path()));
}

ino_t Inode(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// Issue 14's repeated bisects: files a checkout drops are kept and renamed onto the files a later
// one adds, so that no inode is freed and allocated again (ext4 without a journal makes every new
// file skip the inodes freed in the last 30 s).
TEST_F(SeedTest, DroppedFilesAreReusedForAddedOnes) {
  ASSERT_TRUE(ws_->Checkout(0, repo_->path(), a_, false).ok());
  const std::string src = ws_->worktree_path(0);
  const std::set<ino_t> dropped = {Inode(src + "/gone.txt"), Inode(src + "/dir/only.txt")};
  auto r = ws_->Checkout(0, repo_->path(), b_, false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->files_written, 2u);  // change.txt, new.txt
  EXPECT_EQ(r->files_removed, 2u);  // gone.txt, dir/only.txt
  EXPECT_EQ(dropped.count(Inode(src + "/new.txt")), 1u) << "new.txt got a new inode";
  EXPECT_FALSE(fs::exists(src + "/dir")) << "a directory the commit no longer has is left";
  ExpectHolds(0, b_);
  EXPECT_EQ(ReadFile(src + "/new.txt"), "added in B\n");

  // Back to A: new.txt's inode and the spare one come back; C adds an executable on one.
  const std::set<ino_t> now = {Inode(src + "/new.txt"), *dropped.begin(), *dropped.rbegin()};
  r = ws_->Checkout(0, repo_->path(), a_, false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(now.count(Inode(src + "/gone.txt")), 1u);
  EXPECT_EQ(now.count(Inode(src + "/dir/only.txt")), 1u);
  ExpectHolds(0, a_);
  r = ws_->Checkout(0, repo_->path(), c_, false);
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectHolds(0, c_);
  struct stat st;
  ASSERT_EQ(stat((src + "/bin/run.sh").c_str(), &st), 0);
  EXPECT_TRUE(st.st_mode & S_IXUSR) << "a reused inode keeps its old mode";
}

TEST_F(SeedTest, AFileABuildLinkedIsNotRewritten) {
  ASSERT_TRUE(ws_->Checkout(0, repo_->path(), a_, false).ok());
  const std::string src = ws_->worktree_path(0);
  const std::string linked = ws_->build_path(0) + "/kept";
  ASSERT_EQ(link((src + "/gone.txt").c_str(), linked.c_str()), 0);
  ASSERT_EQ(link((src + "/dir/only.txt").c_str(), (linked + "2").c_str()), 0);
  auto r = ws_->Checkout(0, repo_->path(), b_, false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ReadFile(linked), "deleted in B\n");
  EXPECT_EQ(ReadFile(linked + "2"), "the only file of dir\n");
  ExpectHolds(0, b_);
}

}  // namespace farm
