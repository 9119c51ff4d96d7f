#include "tests/unit/agent/test_repo.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/subprocess/subprocess.h"
#include "gtest/gtest.h"

namespace farm::testing_util {

std::string FreshTempDir(const std::string& name) {
  static std::atomic<int> counter{0};
  std::string dir = absl::StrCat(testing::TempDir(), "farm_", getpid(), "_", counter++, "_", name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::string RunGit(const std::string& cwd, const std::vector<std::string>& args,
                   const std::string& date) {
  SubprocessOptions opts;
  opts.argv = {"git"};
  opts.argv.insert(opts.argv.end(), args.begin(), args.end());
  opts.cwd = cwd;
  opts.env = {{"GIT_CONFIG_NOSYSTEM", "1"},
              {"GIT_CONFIG_GLOBAL", "/dev/null"},
              {"GIT_AUTHOR_NAME", "Ada Lovelace"},
              {"GIT_AUTHOR_EMAIL", "ada@example.com"},
              {"GIT_COMMITTER_NAME", "Farm Test"},
              {"GIT_COMMITTER_EMAIL", "farm@example.com"},
              {"GIT_AUTHOR_DATE", date},
              {"GIT_COMMITTER_DATE", date},
              {"LC_ALL", "C"}};
  opts.timeout = absl::Seconds(60);
  std::string output;
  opts.on_output = [&output](std::string_view chunk) { output.append(chunk); };
  auto sp = Subprocess::Start(std::move(opts));
  if (!sp.ok()) {
    ADD_FAILURE() << "git: " << sp.status();
    return "";
  }
  SubprocessResult result = (*sp)->Wait();
  if (result.kind != SubprocessResult::Kind::kExited || result.exit_code != 0) {
    ADD_FAILURE() << "git " << absl::StrJoin(args, " ") << " in " << cwd << ": "
                  << result.Describe() << "\n"
                  << output;
  }
  while (!output.empty() && output.back() == '\n') output.pop_back();
  return output;
}

bool HaveGit() { return access("/usr/bin/git", X_OK) == 0 || access("/bin/git", X_OK) == 0; }

void WriteFile(const std::string& path, const std::string& content) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  EXPECT_TRUE(out.good()) << path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TestRepo::TestRepo(const std::string& name) : path_(FreshTempDir(name)) {
  RunGit(path_, {"init", "-q", "-b", "main"});
}

void TestRepo::Write(const std::string& rel, const std::string& content) const {
  WriteFile(path_ + "/" + rel, content);
}

void TestRepo::Remove(const std::string& rel) const { std::filesystem::remove(path_ + "/" + rel); }

std::string TestRepo::Commit(const std::string& message, const std::string& date) const {
  RunGit(path_, {"add", "-A"});
  RunGit(path_, {"commit", "-q", "--allow-empty", "-m", message}, date);
  return RunGit(path_, {"rev-parse", "HEAD"});
}

}  // namespace farm::testing_util
