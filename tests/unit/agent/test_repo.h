// Test helper: real git repositories built with the git CLI in the test's temp dir.
#ifndef FARM_TESTS_UNIT_AGENT_TEST_REPO_H_
#define FARM_TESTS_UNIT_AGENT_TEST_REPO_H_

#include <string>
#include <vector>

namespace farm::testing_util {

// A fresh empty directory under testing::TempDir(), unique per call.
std::string FreshTempDir(const std::string& name);

// Runs git with a hermetic environment (no user/system config, fixed identity) in `cwd`.
// Adds a test failure if it does not exit 0. Returns its output with trailing newlines removed.
std::string RunGit(const std::string& cwd, const std::vector<std::string>& args,
                   const std::string& date = "2026-11-05T07:13:02+0000");

// True if the git CLI is available (tests GTEST_SKIP otherwise).
bool HaveGit();

void WriteFile(const std::string& path, const std::string& content);
std::string ReadFile(const std::string& path);

// A non-bare repository with branch "main".
class TestRepo {
 public:
  explicit TestRepo(const std::string& name);
  const std::string& path() const { return path_; }
  // Writes (creating directories) or removes a file in the work tree.
  void Write(const std::string& rel, const std::string& content) const;
  void Remove(const std::string& rel) const;
  // `git add -A && git commit`; returns the new commit's sha.
  std::string Commit(const std::string& message,
                     const std::string& date = "2026-11-05T07:13:02+0000") const;
  std::string Git(const std::vector<std::string>& args) const { return RunGit(path_, args); }

 private:
  std::string path_;
};

}  // namespace farm::testing_util

#endif  // FARM_TESTS_UNIT_AGENT_TEST_REPO_H_
