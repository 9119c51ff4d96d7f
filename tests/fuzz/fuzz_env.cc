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
  const bool survey = strict != nullptr && std::string(strict) == "0";
  if (survey && !seen.insert(kind).second) return;
  std::fprintf(stderr, "FINDING %s: %s\n", kind.c_str(), details.c_str());
  const char* dir = std::getenv("FARM_FUZZ_FINDINGS");
  if (dir && *dir && input != nullptr) {
    std::string path = absl::StrCat(dir, "/finding-", kind, "-",
                                    absl::Hex(std::hash<std::string>()(
                                        std::string(reinterpret_cast<const char*>(input), size))));
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(input), size);
    std::fprintf(stderr, "FINDING %s: input saved as %s\n", kind.c_str(), path.c_str());
  }
  if (!survey) std::abort();
}

void CheckOutcome(const TruthRepo& repo, const farm::v1::BisectSpec& spec,
                  const farm::v1::JobStatus& status, bool truthful, const uint8_t* input,
                  size_t size) {
  if (std::getenv("FARM_FUZZ_VERBOSE") != nullptr) {
    std::fprintf(stderr, "  job %s: %s %s, %d tasks finished, truthful=%d\n",
                 status.job_id().c_str(), farm::v1::JobState_Name(status.state()).c_str(),
                 status.first_bad().empty() ? "" : status.first_bad(0).substr(0, 12).c_str(),
                 status.finished_size(), truthful);
  }
  if (!truthful) return;
  if (status.state() == farm::v1::FOUND) {
    const std::string& found = status.first_bad(0);
    bool right;
    if (spec.first_parent()) {
      auto p = repo.parents.find(found);
      right = repo.bad_commits.count(found) && p != repo.parents.end() && !p->second.empty() &&
              !repo.bad_commits.count(p->second[0]);
    } else {
      right = found == repo.culprit;
    }
    if (!right) {
      Finding("wrong-culprit",
              absl::StrCat("job ", status.job_id(), " found ", found, ", the first bad commit is ",
                           repo.culprit, " (every good/bad verdict sent was true)"),
              input, size);
    }
  } else if (status.state() == farm::v1::AMBIGUOUS && !spec.first_parent()) {
    bool listed = false;
    for (const std::string& c : status.first_bad()) listed |= c == repo.culprit;
    if (!listed) {
      Finding("culprit-not-listed",
              absl::StrCat("job ", status.job_id(), " ended AMBIGUOUS without the first bad commit ",
                           repo.culprit, " among its candidates"),
              input, size);
    }
  }
}

int Truth(const TruthRepo& repo, const std::string& commit) {
  if (repo.skipped.count(commit)) return 125;
  return repo.bad_commits.count(commit) ? 1 : 0;
}

const SharedRepo& GetSharedRepo(const std::string& name, const std::string& make_repo_args) {
  static SharedRepo* shared = [&] {
    auto* s = new SharedRepo;
    s->dir = TempDir(name);
    s->repo = MakeTruthRepo(s->dir + "/repo", make_repo_args);
    return s;
  }();
  return *shared;
}

farm::v1::Verdict FuzzedVerdict(const TruthRepo& repo, const std::string& commit, int mode,
                                bool* lie) {
  const int truth = commit.empty() ? 0 : Truth(repo, commit);
  const farm::v1::Verdict t = truth == 0   ? farm::v1::GOOD
                              : truth == 1 ? farm::v1::BAD
                                           : farm::v1::SKIP;
  const farm::v1::Verdict choices[] = {t, farm::v1::GOOD, farm::v1::BAD, farm::v1::SKIP,
                                       farm::v1::VERDICT_UNSPECIFIED};
  const farm::v1::Verdict v = choices[mode % 5];
  *lie = (v == farm::v1::GOOD || v == farm::v1::BAD) && (v != t || commit.empty());
  return v;
}

void AgentView::Connected(const farm::v1::Hello& hello) {
  std::map<std::string, std::string> still;
  for (const std::string& tid : hello.running()) {
    auto it = running.find(tid);
    still[tid] = it == running.end() ? "" : it->second;
  }
  running = std::move(still);
  cancelled.clear();
  slots = hello.slots();
}

void AssignLedger::OnMessage(AgentView& agent, const farm::v1::CoordinatorMessage& m,
                             const std::string& kind_suffix, const std::string& why,
                             const uint8_t* input, size_t size) {
  if (m.has_cancel()) {
    if (agent.running.count(m.cancel().task_id())) agent.cancelled.insert(m.cancel().task_id());
    return;
  }
  if (!m.has_assign()) return;
  const farm::v1::Assign& as = m.assign();
  if (!assigned_.emplace(as.task_id(), as.commit()).second) {
    Finding("task-id-reused", absl::StrCat("task id ", as.task_id(), " was assigned twice"), input,
            size);
  }
  agent.running[as.task_id()] = as.commit();
  if (agent.running.size() > agent.slots) {
    Finding(absl::StrCat("slots-exceeded", kind_suffix),
            absl::StrCat(agent.id, " has ", agent.running.size(), " tasks for ", agent.slots,
                         " slots after assign ", as.task_id(), why),
            input, size);
  }
}

}  // namespace farm::fuzz
