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

// Records a finding (a broken property that is not a crash) once per `kind`: prints it and, when
// FARM_FUZZ_FINDINGS names a directory, saves `input` there as finding-<kind>-<hash> so that it can
// be replayed with the target's regression binary. FARM_FUZZ_STRICT=1 aborts instead (libFuzzer
// then saves the input as a crash).
void Finding(const std::string& kind, const std::string& details, const uint8_t* input,
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

}  // namespace farm::fuzz

#endif  // FARM_TESTS_FUZZ_FUZZ_ENV_H_
