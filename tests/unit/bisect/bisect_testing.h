// Helpers for the bisect tests: DAG models, reference answers computed by brute force, and real
// git repositories built with `git fast-import`.
#ifndef FARM_TESTS_UNIT_BISECT_BISECT_TESTING_H_
#define FARM_TESTS_UNIT_BISECT_BISECT_TESTING_H_

#include <git2.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "coordinator/graph/commit_graph.h"
#include "tests/lib/shell_json.h"

namespace farm::bisect_testing {

// A commit DAG in creation order: parents[i] lists the parents of commit i (all < i), first
// parent first.
using Dag = std::vector<std::vector<uint32_t>>;

// An object id whose bytes sort like `i` (big-endian index, then a fixed pattern), so that
// smallest-oid tie-breaking picks the smallest id.
git_oid OrderedOid(uint32_t i);

// Object ids in index order (OrderedOid) for a graph of n commits.
std::vector<git_oid> OrderedOids(size_t n);

// A graph over `dag` with OrderedOids.
std::shared_ptr<const CommitGraph> GraphOf(const Dag& dag);

// Ancestors-or-self sets by brute force: result[i][j] is true iff j is an ancestor of i or i.
std::vector<std::vector<bool>> AncestorSets(const Dag& dag);

// A linear history of `n` commits: commit i's parent is i - 1.
Dag LinearHistory(uint32_t n);

// A random merge-heavy history of about `n` commits with one root: a main line, topic branches
// forked from recent main commits, merged back (2-parent merges), occasional back-merges of main
// into a topic and topic-into-topic merges.
Dag RandomHistory(std::mt19937_64& rng, size_t n);

// A history of exactly `n` commits (n >= 64) shaped like the Linux kernel's, for benchmarks and
// scale tests: one first-parent main line in release cycles. During a cycle about 30 subsystem
// trees grow on their own first-parent lines (direct commits, short topic branches merged in,
// rare back-merges of the main line and cross-merges of another tree) while the main line takes
// fixes and merges of small fix branches; then a merge window merges every tree into the main
// line. A tree then either continues from its merged tip or restarts from the new main line.
// About a quarter of the commits are merges. The last commit is the main-line tip; it reaches
// all commits but those on topics and trees still open at the end (a few percent).
// Deterministic for a given (n, seed).
Dag KernelShapedHistory(size_t n, uint64_t seed);

// Running and quoting shell commands (tests/lib/shell_json.h).
using ::farm::testing::CommandResult;
using ::farm::testing::Quote;
using ::farm::testing::Sh;

// Points git at no system or global configuration, so the user's settings cannot change the
// tests. Call once before running git.
void IsolateGitConfig();

// True if a `git` binary can be run.
bool GitAvailable();

// Creates a repository in `dir` (which must not exist) holding `dag`, with strictly increasing
// commit times, via `git fast-import`; refs/heads/main points at the last commit and HEAD at
// main. Returns the 40-hex sha of each commit.
absl::StatusOr<std::vector<std::string>> CreateRepository(const std::string& dir, const Dag& dag);

// Empty when `a` and `b` hold the same commits with the same parents (in order), however
// numbered; else the first difference found, for a test's failure message.
std::string GraphDifference(const CommitGraph& a, const CommitGraph& b);

// A git_oid from a 40-hex sha (aborts the test binary on a malformed one).
git_oid OidFromHex(absl::string_view hex);

}  // namespace farm::bisect_testing

#endif  // FARM_TESTS_UNIT_BISECT_BISECT_TESTING_H_
