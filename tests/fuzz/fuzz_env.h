// Shared set-up for the fuzz targets: a temp directory, a small generated repository with its
// truth (which commits are bad), and the corpus runner used when libFuzzer is not linked.
//
// No GoogleTest here: the targets are linked into libFuzzer binaries as well.
#ifndef FARM_TESTS_FUZZ_FUZZ_ENV_H_
#define FARM_TESTS_FUZZ_FUZZ_ENV_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "farm/v1/farm.pb.h"

namespace farm::fuzz {

// Exit code that ctest reports as SKIPPED (git or python3 missing).
inline constexpr int kSkipExitCode = 77;

// A fresh directory under $TMPDIR (or /tmp). Exits on failure.
std::string TempDir(const std::string& name);

// Runs `command` with /bin/sh -c; returns its stdout, sets *exit_code.
std::string Run(const std::string& command, int* exit_code = nullptr);

struct TruthRepo {
  std::string path;
  std::vector<std::string> commits;  // creation order
  std::string root, bad, culprit;
  std::set<std::string> bad_commits;  // every commit that contains the file `bug`
  std::set<std::string> skipped;      // commits whose test says 125
  std::map<std::string, std::vector<std::string>> parents;  // of every commit reachable from bad
};

// Records a finding (a broken property that is not a crash): prints it, saves `input` as
// finding-<kind>-<hash> when FARM_FUZZ_FINDINGS names a directory, and aborts, so that the corpus
// replay fails and libFuzzer saves the input as a crash. FARM_FUZZ_STRICT=0 (a survey) reports
// each kind once and carries on instead.
void Finding(const std::string& kind, const std::string& details, const uint8_t* input,
             size_t size);

// Checks a job's outcome when every good/bad verdict sent for it was the truth (`truthful`): a
// FOUND job names the first bad commit (with first_parent: a bad commit whose first parent is
// good), an AMBIGUOUS one lists it among its candidates. A Finding otherwise. FARM_FUZZ_VERBOSE
// prints the outcome.
void CheckOutcome(const TruthRepo& repo, const farm::v1::BisectSpec& spec,
                  const farm::v1::JobStatus& status, bool truthful, const uint8_t* input,
                  size_t size);

// tests/lib/make_repo.py `args` in `dir`, tagged `good` (the root), `bad` (the tip) and `culprit`,
// with the set of bad commits computed by git (the culprit and its descendants up to bad). Exits
// with kSkipExitCode when git or python3 is missing, and with 1 on any other failure.
TruthRepo MakeTruthRepo(const std::string& dir, const std::string& args);

// Re-opens a repository MakeTruthRepo made earlier (it tags good, bad and culprit). Its skipped
// commits are not kept. Exits with 1 when `path` is not such a repository.
TruthRepo OpenTruthRepo(const std::string& path);

// The truthful verdict for `commit`: 0 good, 1 bad, 125 skip.
int Truth(const TruthRepo& repo, const std::string& commit);

// A repository made once per process (MakeTruthRepo `make_repo_args` in a new TempDir `name`),
// for the targets that run many inputs against it.
struct SharedRepo {
  std::string dir;
  TruthRepo repo;
};
const SharedRepo& GetSharedRepo(const std::string& name, const std::string& make_repo_args);

// The verdict a fuzzed agent sends for `commit`: mode % 5 picks the truth, good, bad, skip or
// none. *lie is set when it is a good/bad answer that is not the truth, or about a commit the
// agent does not know (empty).
farm::v1::Verdict FuzzedVerdict(const TruthRepo& repo, const std::string& commit, int mode,
                                bool* lie);

// An agent as the agent-protocol targets model it: what it runs, as it sees it.
struct AgentView {
  std::string id;
  uint32_t slots = 0;
  std::map<std::string, std::string> running;  // task id -> commit ("" when unknown)
  std::set<std::string> cancelled;             // Cancel received, result not yet sent

  // After a (re)connection with `hello`: the agent runs what the Hello lists, nothing else.
  void Connected(const farm::v1::Hello& hello);
};

// Every Assign the coordinator sent, checked as it arrives: a task id is assigned once
// (finding task-id-reused), an agent never runs more tasks than its slots (finding
// slots-exceeded<kind_suffix>, `why` appended to its details).
class AssignLedger {
 public:
  void OnMessage(AgentView& agent, const farm::v1::CoordinatorMessage& m,
                 const std::string& kind_suffix, const std::string& why, const uint8_t* input,
                 size_t size);
  // Task id -> commit, of every Assign seen.
  const std::map<std::string, std::string>& assigned() const { return assigned_; }

 private:
  std::map<std::string, std::string> assigned_;
};

}  // namespace farm::fuzz

#endif  // FARM_TESTS_FUZZ_FUZZ_ENV_H_
