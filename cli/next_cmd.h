// `farm next`: the commits the farm would test next for a bisect range, best first, without
// running anything (like `git rev-list --bisect-all`, limited to what K free agents would start).
//
// Output (stdout): one line per commit, "<sha> (dist=D)", where D = min(w, N - w) in the current
// state exactly as `git rev-list --bisect-all` prints it (w: candidates the commit reaches, N:
// all candidates). The first line is the midpoint `git bisect` would pick (same dist); with
// --agents K the next lines are the midpoints of the likeliest future states, which K agents
// would test at once.
// With --timing, stderr gets how long loading the range and planning took.
//
// Exit codes: 0 printed a plan, or nothing is left to test (stderr names the first bad commit);
// 2 bad input (unknown revision, good not an ancestor of bad, --agents < 1: the message says
// what to do); 3 only skipped commits are left (stderr lists the possible first bad commits);
// 1 the repository could not be read.
#ifndef FARM_CLI_NEXT_CMD_H_
#define FARM_CLI_NEXT_CMD_H_

#include <string>
#include <vector>

namespace CLI {
class App;
}  // namespace CLI

namespace farm {

struct NextFlags {
  std::string repo = ".";         // path of a local repository
  std::vector<std::string> good;  // known-good revisions (at least one)
  std::string bad = "HEAD";       // the known-bad revision
  std::vector<std::string> skip;  // untestable revisions
  bool first_parent = false;      // follow only the first parent of merges
  int agents = 1;                 // free agents: how many commits to print
  bool timing = false;            // print load and planning times to stderr
};

// Declares --repo, --good (repeatable, required), --bad, --skip (repeatable), --first-parent,
// --agents and --timing on `cmd`, bound to `f`.
void AddNextFlags(CLI::App* cmd, NextFlags& f);

// Runs `farm next` with `f`: prints to stdout/stderr, returns the exit code (see above).
// Thread safety: uses only its own repository handle; safe to call from any thread.
int RunNext(const NextFlags& f);

}  // namespace farm

#endif  // FARM_CLI_NEXT_CMD_H_
