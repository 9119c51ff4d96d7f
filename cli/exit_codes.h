// The exit codes of every farm command: farm, farm-agent and farm-coordinator (README.md,
// "Exit codes", lists the same table). `farm boot` alone follows `git bisect run`'s test contract
// instead (cli/boot_cmd.h), so that `git bisect run farm boot ...` works.
//
//   code  farm bisect / submit --watch / watch  other farm commands  farm-agent, farm-coordinator
//   0     the first bad commit was found        done                 stopped (SIGINT/SIGTERM)
//   1     the bisect failed                     -                    another failure
//   2     bad input: flags, files, unknown job or commit; the message says what and what to do
//   3     only skipped commits are left         (farm next: same)    coordinator: address in use
//   4     the job was cancelled                 -                    coordinator: database in use
//   5     the coordinator could not be reached  the same             coordinator: database damaged
//   128+N interrupted by signal N: 129 SIGHUP, 130 SIGINT, 143 SIGTERM (farm bisect, local)
#ifndef FARM_CLI_EXIT_CODES_H_
#define FARM_CLI_EXIT_CODES_H_

namespace farm {

inline constexpr int kExitFound = 0;         // the first bad commit was found; or: done
inline constexpr int kExitFailed = 1;        // the bisect failed
inline constexpr int kExitBadInput = 2;      // bad input (usage, files, unknown job or commit)
inline constexpr int kExitAmbiguous = 3;     // only skipped commits left
inline constexpr int kExitCancelled = 4;     // cancelled
inline constexpr int kExitUnreachable = 5;   // the coordinator is unreachable
inline constexpr int kExitSignalBase = 128;  // + the signal's number, as shells report it

// farm-coordinator's own failures to start (the same numbers, another command).
inline constexpr int kExitAddressInUse = 3;     // the listen address cannot be bound
inline constexpr int kExitDatabaseInUse = 4;    // another coordinator holds the database
inline constexpr int kExitDatabaseDamaged = 5;  // the database is damaged or truncated

}  // namespace farm

#endif  // FARM_CLI_EXIT_CODES_H_
