// Small helpers shared by the test library, the bisection core's test library and the fuzz
// environment (the last two are built without GoogleTest's test library): running and quoting
// shell commands, and the flat JSON that tests/lib/make_repo.py prints.
#ifndef FARM_TESTS_LIB_SHELL_JSON_H_
#define FARM_TESTS_LIB_SHELL_JSON_H_

#include <string>
#include <vector>

namespace farm::testing {

struct CommandResult {
  int exit_code = -1;  // the shell's exit status; 128+N when killed by signal N
  std::string output;  // stdout and stderr, merged
};
// Runs `command` with /bin/sh -c, capturing merged output.
CommandResult Sh(const std::string& command);

// Quotes one shell word.
std::string Quote(const std::string& s);

// The string value of `key` in make_repo.py's output ("" when absent).
std::string JsonString(const std::string& json, const std::string& key);
// The list of strings of `key` in make_repo.py's output (empty when absent).
std::vector<std::string> JsonList(const std::string& json, const std::string& key);

}  // namespace farm::testing

#endif  // FARM_TESTS_LIB_SHELL_JSON_H_
