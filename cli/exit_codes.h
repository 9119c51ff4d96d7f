// Exit codes of the farm CLI's bisect commands (farm bisect, watch, next), as the README lists
// them. `farm boot` follows `git bisect run`'s test contract instead (cli/boot_cmd.cc).
#ifndef FARM_CLI_EXIT_CODES_H_
#define FARM_CLI_EXIT_CODES_H_

namespace farm {

inline constexpr int kExitFound = 0;        // the first bad commit was found (next: printed)
inline constexpr int kExitFailed = 1;       // the bisect failed
inline constexpr int kExitBadInput = 2;     // bad input: the message says what and what to do
inline constexpr int kExitAmbiguous = 3;    // only skipped commits left
inline constexpr int kExitCancelled = 4;    // cancelled
inline constexpr int kExitUnreachable = 5;  // the coordinator is unreachable

}  // namespace farm

#endif  // FARM_CLI_EXIT_CODES_H_
