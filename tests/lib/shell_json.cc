#include "tests/lib/shell_json.h"

#include <sys/wait.h>

#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace farm::testing {

CommandResult Sh(const std::string& command) {
  CommandResult r;
  std::string cmd = absl::StrCat("( ", command, " ) 2>&1");
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.output.append(buf, n);
  int st = pclose(p);
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string JsonString(const std::string& json, const std::string& key) {
  std::string k = absl::StrCat("\"", key, "\": \"");
  size_t at = json.find(k);
  if (at == std::string::npos) return "";
  at += k.size();
  return json.substr(at, json.find('"', at) - at);
}

std::vector<std::string> JsonList(const std::string& json, const std::string& key) {
  std::string k = absl::StrCat("\"", key, "\": [");
  size_t at = json.find(k);
  if (at == std::string::npos) return {};
  at += k.size();
  std::vector<std::string> out;
  for (absl::string_view part :
       absl::StrSplit(json.substr(at, json.find(']', at) - at), ',', absl::SkipEmpty())) {
    std::string s(absl::StripAsciiWhitespace(part));
    if (s.size() >= 2) out.push_back(s.substr(1, s.size() - 2));
  }
  return out;
}

}  // namespace farm::testing
