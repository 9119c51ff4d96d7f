// The `farm` command: local bisects with an embedded coordinator and agents, and a client for a
// remote coordinator (submit, watch, cancel, status, log, agents).
//
// Exit codes of `farm bisect` and `farm watch` (documented in README.md):
//   0  the first bad commit was found
//   1  the bisect failed (e.g. every attempt at a commit hit an infrastructure error)
//   2  bad input: the message says what was wrong and what to do
//   3  only skipped commits are left: the report lists every possible first bad commit
//   4  the bisect was cancelled
//   5  the coordinator could not be reached
#ifndef FARM_CLI_CLI_H_
#define FARM_CLI_CLI_H_

namespace farm {

// Parses argv and runs the command. Returns the process exit code.
int FarmMain(int argc, char** argv);

}  // namespace farm

#endif  // FARM_CLI_CLI_H_
