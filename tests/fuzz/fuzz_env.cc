#include "tests/fuzz/fuzz_env.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/lib/shell_json.h"

namespace farm::fuzz {
namespace {

using ::farm::testing::JsonList;
using ::farm::testing::JsonString;
using ::farm::testing::Quote;

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "fuzz set-up failed: %s\n", what.c_str());
  std::exit(1);
}

// Parents and the bad set, from git.
void FillTruth(TruthRepo& r) {
  const std::string git = absl::StrCat("git -C ", Quote(r.path), " ");
  for (absl::string_view line : absl::StrSplit(Run(absl::StrCat(git, "rev-list --parents ", r.bad)),
                                               '\n', absl::SkipEmpty())) {
    std::vector<std::string> ids = absl::StrSplit(line, ' ', absl::SkipEmpty());
    r.parents[ids[0]].assign(ids.begin() + 1, ids.end());
  }
  // A commit is bad iff it contains `bug`: the culprit and every descendant of it.
  r.bad_commits.insert(r.culprit);
  for (absl::string_view line :
       absl::StrSplit(Run(absl::StrCat(git, "rev-list --ancestry-path ", r.culprit, "..", r.bad)),
                      '\n', absl::SkipEmpty())) {
    r.bad_commits.insert(std::string(line));
  }
}

}  // namespace

std::string TempDir(const std::string& name) {
  static std::vector<std::string>* made = [] {
    auto* v = new std::vector<std::string>;
    std::atexit([] {
      if (std::getenv("FARM_FUZZ_KEEP") != nullptr) return;
      for (const std::string& d : *made) {
        if (std::system(absl::StrCat("rm -rf ", Quote(d)).c_str()) != 0) continue;
      }
    });
    return v;
  }();
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = absl::StrCat(base && *base ? base : "/tmp", "/farm-fuzz-", name, "-XXXXXX");
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) Fail(absl::StrCat("mkdtemp ", tmpl));
  made->push_back(buf.data());
  return buf.data();
}

std::string Run(const std::string& command, int* exit_code) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) Fail(absl::StrCat("popen ", command));
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int st = pclose(p);
  int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  if (exit_code != nullptr) {
    *exit_code = code;
  } else if (code != 0) {
    Fail(absl::StrCat("`", command, "` exited ", code, ": ", out));
  }
  return out;
}

TruthRepo MakeTruthRepo(const std::string& dir, const std::string& args) {
  int code = 0;
  Run("command -v git >/dev/null && command -v python3 >/dev/null", &code);
  if (code != 0) {
    std::fprintf(stderr, "SKIPPED: git and python3 are needed to make the fuzz repository\n");
    std::exit(kSkipExitCode);
  }
  const char* src = std::getenv("FARM_SOURCE_DIR");
  std::string script =
      absl::StrCat(src && *src ? src : FARM_DEFAULT_SOURCE_DIR, "/tests/lib/make_repo.py");
  std::string json = Run(absl::StrCat("python3 ", Quote(script), " ", Quote(dir), " ", args));
  TruthRepo r;
  r.path = JsonString(json, "path");
  r.commits = JsonList(json, "commits");
  r.root = JsonString(json, "root");
  r.bad = JsonString(json, "bad");
  r.culprit = JsonString(json, "culprit");
  for (auto& s : JsonList(json, "skipped")) r.skipped.insert(s);
  if (r.path.empty() || r.culprit.empty()) Fail(absl::StrCat("make_repo.py said: ", json));
  const std::string git = absl::StrCat("git -C ", Quote(r.path), " ");
  Run(absl::StrCat(git, "tag good ", r.root, " && ", git, "tag bad ", r.bad, " && ", git,
                   "tag culprit ", r.culprit));
  FillTruth(r);
  return r;
}

TruthRepo OpenTruthRepo(const std::string& path) {
  TruthRepo r;
  r.path = path;
  const std::string git = absl::StrCat("git -C ", Quote(path), " ");
  std::vector<std::string> ids = absl::StrSplit(
      Run(absl::StrCat(git, "rev-parse good^{commit} bad^{commit} culprit^{commit}")), '\n',
      absl::SkipEmpty());
  if (ids.size() != 3) Fail(absl::StrCat(path, " has no tags good, bad and culprit"));
  r.root = ids[0];
  r.bad = ids[1];
  r.culprit = ids[2];
  for (absl::string_view line : absl::StrSplit(Run(absl::StrCat(git, "rev-list --reverse ", r.bad)),
                                               '\n', absl::SkipEmpty())) {
    r.commits.emplace_back(line);
  }
  FillTruth(r);
  return r;
}

void Finding(const std::string& kind, const std::string& details, const uint8_t* input,
             size_t size) {
  static std::mutex mu;
  static std::set<std::string> seen;
  std::lock_guard<std::mutex> lock(mu);
  const char* strict = std::getenv("FARM_FUZZ_STRICT");
  if (!seen.insert(kind).second && !(strict && *strict == '1')) return;
  std::fprintf(stderr, "FINDING %s: %s\n", kind.c_str(), details.c_str());
  const char* dir = std::getenv("FARM_FUZZ_FINDINGS");
  if (dir && *dir && input != nullptr) {
    std::string path = absl::StrCat(dir, "/finding-", kind, "-",
                                    absl::Hex(std::hash<std::string>()(
                                        std::string(reinterpret_cast<const char*>(input), size))));
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(input), size);
    std::fprintf(stderr, "FINDING %s: input saved as %s\n", kind.c_str(), path.c_str());
  }
  if (strict && *strict == '1') std::abort();
}

int Truth(const TruthRepo& repo, const std::string& commit) {
  if (repo.skipped.count(commit)) return 125;
  return repo.bad_commits.count(commit) ? 1 : 0;
}

}  // namespace farm::fuzz
