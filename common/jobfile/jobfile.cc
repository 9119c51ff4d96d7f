#include "common/jobfile/jobfile.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "yaml-cpp/yaml.h"

namespace farm {
namespace {

namespace v1 = farm::v1;

constexpr size_t kMaxErrors = 20;

// Keys allowed at each level; the order is the order of the schema (used in messages).
const std::vector<std::string>& TopKeys() {
  static const auto* k = new std::vector<std::string>{
      "repo",         "good",        "bad",     "skip",    "first_parent", "terms",
      "max_parallel", "description", "build",   "timeout", "env",          "test",
      "kernel",       "boot",        "require", "verify",  "priority"};
  return *k;
}
const std::vector<std::string>& TermsKeys() {
  static const auto* k = new std::vector<std::string>{"old", "new"};
  return *k;
}
const std::vector<std::string>& TestKeys() {
  static const auto* k = new std::vector<std::string>{"command", "script"};
  return *k;
}
const std::vector<std::string>& KernelKeys() {
  static const auto* k = new std::vector<std::string>{"config", "fragments", "modules",
                                                      "ccache_remote_storage", "jobs"};
  return *k;
}
const std::vector<std::string>& BootKeys() {
  static const auto* k = new std::vector<std::string>{
      "payload",      "payload_kind", "kernel_image", "cmdline",    "qemu_args",
      "memory_mb",    "cpus",         "disk_image",   "shared_dir", "result_file",
      "boot_timeout", "test_timeout", "bad_failures", "accel",      "pvh"};
  return *k;
}

// The keys of every section, for "did you mean boot.memory_mb?" when a key is at the wrong level.
std::vector<std::pair<std::string, const std::vector<std::string>*>> Sections() {
  return {{"", &TopKeys()},
          {"terms", &TermsKeys()},
          {"test", &TestKeys()},
          {"kernel", &KernelKeys()},
          {"boot", &BootKeys()}};
}

std::string Dotted(absl::string_view section, absl::string_view key) {
  return section.empty() ? std::string(key) : absl::StrCat(section, ".", key);
}

// The closest word within a typo's reach, or "".
std::string Suggest(absl::string_view word, const std::vector<std::string>& candidates) {
  const size_t reach = word.size() >= 10 ? 3 : word.size() >= 6 ? 2 : 1;
  std::string best;
  size_t best_d = reach + 1;
  std::string lower = absl::AsciiStrToLower(word);
  for (const std::string& c : candidates) {
    size_t d = EditDistance(lower, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

// A scalar as shown in a message: quoted, shortened, control bytes escaped.
std::string Shown(absl::string_view s, char quote = '"') {
  std::string out(1, quote);
  size_t n = 0;
  for (unsigned char c : s) {
    if (++n > 40) {
      out += "...";
      break;
    }
    if (c == static_cast<unsigned char>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      static const char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + quote;
}

std::string Got(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Scalar:
      return Shown(n.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "nothing";
  }
}

// Offset of the first byte that is not valid UTF-8, or npos. Protobuf string fields must be
// UTF-8: a spec with anything else would fail on the wire with a message nobody can act on.
size_t InvalidUtf8At(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = s[i];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return i;
    }
    if (len > 1) {
      uint32_t cp = c & (0x7f >> len);
      for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (s[i + k] & 0x3f);
      static const uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
      if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    }
    i += len;
  }
  return absl::string_view::npos;
}

bool IsUrl(absl::string_view s) {
  if (absl::StrContains(s, "://")) return true;
  // scp-like: user@host:path
  size_t at = s.find('@'), colon = s.find(':'), slash = s.find('/');
  return at != absl::string_view::npos && colon != absl::string_view::npos && at < colon &&
         (slash == absl::string_view::npos || colon < slash);
}

std::string BaseName(absl::string_view path) {
  size_t slash = path.rfind('/');
  return std::string(slash == absl::string_view::npos ? path : path.substr(slash + 1));
}

class Parser {
 public:
  explicit Parser(std::string base_dir) : base_dir_(std::move(base_dir)) {}

  void Run(const YAML::Node& root, v1::BisectSpec& spec);
  const std::vector<std::string>& errors() const { return errors_; }
  size_t dropped() const { return dropped_; }

 private:
  using Fields = std::map<std::string, YAML::Node>;

  void Error(const YAML::Node* at, absl::string_view field, absl::string_view what) {
    if (errors_.size() >= kMaxErrors) {
      ++dropped_;
      return;
    }
    std::string msg = field.empty() ? std::string(what) : absl::StrCat(field, ": ", what);
    if (at != nullptr && at->IsDefined()) {
      YAML::Mark m = at->Mark();
      if (!m.is_null() && m.line >= 0) {
        absl::StrAppend(&msg, " (line ", m.line + 1, ", column ", m.column + 1, ")");
      }
    }
    errors_.push_back(std::move(msg));
  }

  // The entries of a mapping, by key. Reports non-word keys, duplicates and unknown keys.
  Fields Entries(const YAML::Node& map, absl::string_view section,
                 const std::vector<std::string>& allowed);

  std::optional<std::string> String(const YAML::Node& n, absl::string_view field,
                                    absl::string_view expected, bool allow_empty = false);
  // A revision git understands: no blanks or control characters, not an option.
  std::optional<std::string> Revision(const YAML::Node& n, absl::string_view field);
  std::vector<std::string> Revisions(const YAML::Node& n, absl::string_view field,
                                     bool allow_scalar);
  std::optional<bool> Bool(const YAML::Node& n, absl::string_view field);
  std::optional<uint64_t> Number(const YAML::Node& n, absl::string_view field,
                                 absl::string_view expected, uint64_t min, uint64_t max);
  std::optional<uint32_t> Duration(const YAML::Node& n, absl::string_view field, uint64_t max,
                                   absl::string_view max_text);
  std::optional<std::string> Choice(const YAML::Node& n, absl::string_view field,
                                    const std::vector<std::string>& allowed);
  // Reads a file named relative to base_dir; `max` bytes at most.
  std::optional<std::string> File(const YAML::Node& n, absl::string_view field,
                                  absl::string_view what, size_t max);
  std::string Resolve(const std::string& path) const;

  void Terms(const YAML::Node& n, v1::BisectSpec& spec);
  void Env(const YAML::Node& n, v1::Recipe& recipe);
  void Require(const YAML::Node& n, v1::BisectSpec& spec);
  void Test(const YAML::Node& n, v1::Recipe& recipe);
  std::optional<std::vector<std::string>> Argv(const YAML::Node& n, absl::string_view field);
  void Kernel(const YAML::Node& n, v1::KernelBuild& kernel);
  void Boot(const YAML::Node& n, v1::BootSpec& boot, bool has_kernel);

  const std::string base_dir_;
  std::vector<std::string> errors_;
  size_t dropped_ = 0;
};

Parser::Fields Parser::Entries(const YAML::Node& map, absl::string_view section,
                               const std::vector<std::string>& allowed) {
  Fields out;
  const std::string where = section.empty() ? "job file" : std::string(section);
  for (auto it = map.begin(); it != map.end(); ++it) {
    const YAML::Node key = it->first;
    if (!key.IsScalar()) {
      Error(&key, section, absl::StrCat("keys must be words, got ", Got(key), " as a key"));
      continue;
    }
    const std::string& name = key.Scalar();
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      std::string hint = Suggest(name, allowed);
      if (hint.empty()) {
        // The right key at the wrong level?
        for (const auto& [other, keys] : Sections()) {
          if (other == section) continue;
          if (std::find(keys->begin(), keys->end(), name) != keys->end() ||
              !Suggest(name, *keys).empty()) {
            std::string k = std::find(keys->begin(), keys->end(), name) != keys->end()
                                ? name
                                : Suggest(name, *keys);
            hint = Dotted(other, k);
            break;
          }
        }
      }
      if (!hint.empty()) {
        Error(&key, "",
              absl::StrCat("unknown key ", Shown(name, '\''), " in ", where, "; did you mean '",
                           hint, "'?"));
      } else {
        Error(&key, "",
              absl::StrCat("unknown key ", Shown(name, '\''), " in ", where,
                           " (allowed: ", absl::StrJoin(allowed, ", "), ")"));
      }
      continue;
    }
    auto [pos, inserted] = out.emplace(name, it->second);
    if (!inserted) {
      const YAML::Mark first = pos->second.Mark();
      Error(&key, Dotted(section, name),
            absl::StrCat("given twice",
                         first.is_null() ? std::string()
                                         : absl::StrCat(" (first on line ", first.line + 1, ")"),
                         "; keep one"));
    }
  }
  return out;
}

std::optional<std::string> Parser::String(const YAML::Node& n, absl::string_view field,
                                          absl::string_view expected, bool allow_empty) {
  if (n.IsNull() || !n.IsDefined()) {
    if (allow_empty) return std::string();
    Error(&n, field, absl::StrCat("is empty; expected ", expected));
    return std::nullopt;
  }
  if (!n.IsScalar()) {
    Error(&n, field, absl::StrCat("expected ", expected, ", got ", Got(n)));
    return std::nullopt;
  }
  const std::string& s = n.Scalar();
  if (s.empty() && !allow_empty) {
    Error(&n, field, absl::StrCat("is empty; expected ", expected));
    return std::nullopt;
  }
  if (s.find('\0') != std::string::npos) {
    Error(&n, field, "contains a NUL byte");
    return std::nullopt;
  }
  if (size_t bad = InvalidUtf8At(s); bad != std::string::npos) {
    Error(&n, field, absl::StrCat("is not valid UTF-8 text (byte ", bad, ")"));
    return std::nullopt;
  }
  return s;
}

std::optional<std::string> Parser::Revision(const YAML::Node& n, absl::string_view field) {
  std::optional<std::string> s = String(n, field, "a revision (a commit id, tag or branch)");
  if (!s) return std::nullopt;
  for (unsigned char c : *s) {
    if (c <= ' ' || c == 0x7f) {
      Error(&n, field,
            absl::StrCat("expected one revision (a commit id, tag or branch), got ", Shown(*s),
                         ", which has blanks or control characters; give a list for several"));
      return std::nullopt;
    }
  }
  if ((*s)[0] == '-') {
    Error(&n, field, absl::StrCat(Shown(*s), " is not a revision: it starts with '-'"));
    return std::nullopt;
  }
  return s;
}

std::vector<std::string> Parser::Revisions(const YAML::Node& n, absl::string_view field,
                                           bool allow_scalar) {
  std::vector<std::string> out;
  if (n.IsSequence()) {
    size_t i = 0;
    for (const YAML::Node& e : n) {
      if (std::optional<std::string> r = Revision(e, absl::StrCat(field, "[", i++, "]"))) {
        out.push_back(*r);
      }
    }
    return out;
  }
  if (allow_scalar && (n.IsScalar() || n.IsNull())) {
    if (std::optional<std::string> r = Revision(n, field)) out.push_back(*r);
    return out;
  }
  Error(&n, field,
        absl::StrCat("expected ", allow_scalar ? "a revision or " : "", "a list of revisions, got ",
                     Got(n)));
  return out;
}

std::optional<bool> Parser::Bool(const YAML::Node& n, absl::string_view field) {
  if (n.IsScalar()) {
    std::string s = absl::AsciiStrToLower(n.Scalar());
    if (s == "true" || s == "yes" || s == "on") return true;
    if (s == "false" || s == "no" || s == "off") return false;
  }
  Error(&n, field, absl::StrCat("expected true or false, got ", Got(n)));
  return std::nullopt;
}

std::optional<uint64_t> Parser::Number(const YAML::Node& n, absl::string_view field,
                                       absl::string_view expected, uint64_t min, uint64_t max) {
  uint64_t v = 0;
  bool ok = n.IsScalar() && !n.Scalar().empty() && n.Scalar().size() <= 18 &&
            std::all_of(n.Scalar().begin(), n.Scalar().end(),
                        [](char c) { return c >= '0' && c <= '9'; }) &&
            absl::SimpleAtoi(n.Scalar(), &v);
  if (!ok || v < min || v > max) {
    Error(&n, field, absl::StrCat("expected ", expected, " (", min, "..", max, "), got ", Got(n)));
    return std::nullopt;
  }
  return v;
}

std::optional<uint32_t> Parser::Duration(const YAML::Node& n, absl::string_view field, uint64_t max,
                                         absl::string_view max_text) {
  uint64_t v = 0;
  bool ok = false;
  if (n.IsScalar() && !n.Scalar().empty() && n.Scalar().size() <= 12) {
    absl::string_view s = n.Scalar();
    uint64_t unit = 1;
    switch (s.back()) {
      case 's':
        unit = 1;
        s.remove_suffix(1);
        break;
      case 'm':
        unit = 60;
        s.remove_suffix(1);
        break;
      case 'h':
        unit = 3600;
        s.remove_suffix(1);
        break;
      case 'd':
        unit = 86400;
        s.remove_suffix(1);
        break;
      default:
        break;
    }
    ok = !s.empty() &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
         absl::SimpleAtoi(s, &v);
    v *= unit;
  }
  if (!ok || v < 1 || v > max) {
    Error(&n, field,
          absl::StrCat("expected a duration: whole seconds (600) or 90s, 10m, 2h (1s..", max_text,
                       "), got ", Got(n)));
    return std::nullopt;
  }
  return static_cast<uint32_t>(v);
}

std::optional<std::string> Parser::Choice(const YAML::Node& n, absl::string_view field,
                                          const std::vector<std::string>& allowed) {
  if (n.IsScalar()) {
    std::string s = absl::AsciiStrToLower(n.Scalar());
    if (std::find(allowed.begin(), allowed.end(), s) != allowed.end()) return s;
  }
  std::string what =
      absl::StrCat("expected one of ", absl::StrJoin(allowed, ", "), ", got ", Got(n));
  if (n.IsScalar()) {
    std::string hint = Suggest(n.Scalar(), allowed);
    if (!hint.empty()) absl::StrAppend(&what, "; did you mean '", hint, "'?");
  }
  Error(&n, field, what);
  return std::nullopt;
}

std::string Parser::Resolve(const std::string& path) const {
  if (path == "~" || absl::StartsWith(path, "~/")) {
    const char* home = std::getenv("HOME");
    if (home != nullptr && home[0] != '\0') return absl::StrCat(home, path.substr(1));
  }
  if (!path.empty() && path[0] == '/') return path;
  if (base_dir_.empty()) return path;
  return absl::StrCat(base_dir_, base_dir_.back() == '/' ? "" : "/", path);
}

std::optional<std::string> Parser::File(const YAML::Node& n, absl::string_view field,
                                        absl::string_view what, size_t max) {
  std::optional<std::string> name = String(n, field, absl::StrCat("the path of ", what));
  if (!name) return std::nullopt;
  const std::string path = Resolve(*name);
  auto fail = [&](absl::string_view why) {
    Error(&n, field,
          absl::StrCat("cannot read ", what, " ", Shown(*name),
                       path != *name ? absl::StrCat(" (", path, ")") : std::string(), ": ", why));
    return std::nullopt;
  };
  // Only regular files, opened without blocking and read with a bound: a job file naming
  // /dev/zero or a FIFO must fail, not hang or fill memory.
  int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return fail(std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return fail(S_ISDIR(st.st_mode) ? "it is a directory" : "it is not a regular file");
  }
  if (static_cast<uint64_t>(st.st_size) > max) {
    close(fd);
    return fail(absl::StrCat("it is ", st.st_size, " bytes; at most ", max, " are allowed"));
  }
  std::string data;
  data.resize(max + 1);
  size_t got = 0;
  while (got < data.size()) {
    ssize_t r = read(fd, data.data() + got, data.size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      close(fd);
      return fail(std::strerror(e));
    }
    if (r == 0) break;
    got += r;
  }
  close(fd);
  if (got > max) return fail(absl::StrCat("it is over ", max, " bytes"));
  data.resize(got);
  if (data.empty()) return fail("it is empty");
  return data;
}

void Parser::Terms(const YAML::Node& n, v1::BisectSpec& spec) {
  if (!n.IsMap()) {
    Error(&n, "terms", absl::StrCat("expected {old: WORD, new: WORD}, got ", Got(n)));
    return;
  }
  Fields f = Entries(n, "terms", TermsKeys());
  auto word = [&](const char* key, const char* other_side1,
                  const char* other_side2) -> std::optional<std::string> {
    auto it = f.find(key);
    std::string field = absl::StrCat("terms.", key);
    if (it == f.end()) {
      Error(&n, field, "missing: give both terms.old and terms.new (e.g. old: fast, new: slow)");
      return std::nullopt;
    }
    std::optional<std::string> w = String(it->second, field, "a word");
    if (!w) return std::nullopt;
    bool ok = std::all_of(w->begin(), w->end(),
                          [](char c) { return absl::ascii_isalnum(c) || c == '-' || c == '_'; });
    if (!ok || (*w)[0] == '-' || spec::IsBisectCommand(*w) || *w == other_side1 ||
        *w == other_side2) {
      Error(&it->second, field,
            absl::StrCat("expected a word of letters, digits, '-' or '_' that is not a git "
                         "bisect command",
                         " (and not '", other_side1, "' or '", other_side2, "'), got ", Shown(*w)));
      return std::nullopt;
    }
    return w;
  };
  std::optional<std::string> old_term = word("old", "bad", "new");
  std::optional<std::string> new_term = word("new", "good", "old");
  if (old_term && new_term) {
    if (*old_term == *new_term) {
      Error(&n, "terms",
            absl::StrCat("old and new are both ", Shown(*old_term), "; give two different words"));
      return;
    }
    spec.set_term_old(*old_term);
    spec.set_term_new(*new_term);
  }
}

void Parser::Env(const YAML::Node& n, v1::Recipe& recipe) {
  if (!n.IsMap()) {
    Error(&n, "env", absl::StrCat("expected a mapping of NAME: value, got ", Got(n)));
    return;
  }
  std::set<std::string> seen;
  for (auto it = n.begin(); it != n.end(); ++it) {
    const YAML::Node key = it->first;
    if (!key.IsScalar()) {
      Error(&key, "env", absl::StrCat("variable names must be words, got ", Got(key)));
      continue;
    }
    const std::string& name = key.Scalar();
    const std::string field = absl::StrCat("env.", name);
    bool ok = !name.empty() && !absl::ascii_isdigit(name[0]) &&
              std::all_of(name.begin(), name.end(),
                          [](char c) { return absl::ascii_isalnum(c) || c == '_'; });
    if (!ok) {
      Error(&key, "env",
            absl::StrCat(Shown(name),
                         " is not a variable name (letters, digits and '_', not starting with a "
                         "digit)"));
      continue;
    }
    if (absl::StartsWith(name, "FARM_")) {
      Error(&key, field,
            "FARM_* variables are set by the agent (FARM_COMMIT, FARM_WORKTREE, ...); pick "
            "another name");
      continue;
    }
    if (!seen.insert(name).second) {
      Error(&key, field, "given twice; keep one");
      continue;
    }
    std::optional<std::string> value =
        String(it->second, field, "a value (use \"\" for an empty one)", true);
    if (value && it->second.IsNull()) {
      Error(&it->second, field, "has no value; write \"\" for an empty one");
      continue;
    }
    if (value) (*recipe.mutable_env())[name] = *value;
  }
}

void Parser::Require(const YAML::Node& n, v1::BisectSpec& spec) {
  if (!n.IsMap()) {
    Error(&n, "require", absl::StrCat("expected a mapping of LABEL: value, got ", Got(n)));
    return;
  }
  for (auto it = n.begin(); it != n.end(); ++it) {
    if (!it->first.IsScalar()) {
      Error(&it->first, "require", absl::StrCat("labels must be words, got ", Got(it->first)));
      continue;
    }
    const std::string field = absl::StrCat("require.", it->first.Scalar());
    if (std::optional<std::string> value = String(it->second, field, "a value", true)) {
      (*spec.mutable_require())[it->first.Scalar()] = *value;
    }
  }
}

std::optional<std::vector<std::string>> Parser::Argv(const YAML::Node& n, absl::string_view field) {
  if (n.IsScalar()) {
    std::optional<std::string> s = String(n, field, "a command");
    if (!s) return std::nullopt;
    if (absl::StripAsciiWhitespace(*s).empty()) {
      Error(&n, field, "is blank; expected a command");
      return std::nullopt;
    }
    return std::vector<std::string>{"/bin/sh", "-c", *s};
  }
  if (n.IsSequence()) {
    std::vector<std::string> argv;
    size_t i = 0;
    bool ok = true;
    for (const YAML::Node& e : n) {
      std::optional<std::string> a =
          String(e, absl::StrCat(field, "[", i, "]"), "an argument (a string)", i > 0);
      ++i;
      if (a) {
        argv.push_back(*a);
      } else {
        ok = false;
      }
    }
    if (!ok) return std::nullopt;
    if (argv.empty()) {
      Error(&n, field, "is an empty list; expected the program and its arguments");
      return std::nullopt;
    }
    return argv;
  }
  Error(&n, field,
        absl::StrCat("expected a command: a list [program, args...] or a string run by "
                     "/bin/sh -c, got ",
                     Got(n)));
  return std::nullopt;
}

void Parser::Test(const YAML::Node& n, v1::Recipe& recipe) {
  if (n.IsScalar() || n.IsSequence()) {
    if (auto argv = Argv(n, "test")) {
      for (auto& a : *argv) recipe.add_test_argv(a);
    }
    return;
  }
  if (!n.IsMap()) {
    Error(&n, "test",
          absl::StrCat("expected {command: ..., script: FILE} or a command, got ", Got(n)));
    return;
  }
  Fields f = Entries(n, "test", TestKeys());
  std::optional<std::vector<std::string>> argv;
  auto cmd = f.find("command");
  if (cmd != f.end()) argv = Argv(cmd->second, "test.command");
  auto script = f.find("script");
  if (script != f.end()) {
    std::optional<std::string> content =
        File(script->second, "test.script", "the test script", kMaxTestScriptBytes);
    if (!content) return;
    const std::string& name = script->second.Scalar();
    if (cmd != f.end()) {
      if (!argv) return;
      if (!cmd->second.IsSequence() || ((*argv)[0] != name && (*argv)[0] != BaseName(name) &&
                                        BaseName((*argv)[0]) != BaseName(name))) {
        Error(&cmd->second, "test.command",
              absl::StrCat("with test.script, give the command as a list whose first word names "
                           "the script (",
                           Shown(name), "), e.g. [", name,
                           ", --quick]: the script runs in place of that word"));
        return;
      }
    } else {
      argv = std::vector<std::string>{name};
    }
    recipe.set_test_script(*content);
  } else if (cmd == f.end()) {
    Error(&n, "test", "is empty; give test.command or test.script");
    return;
  }
  if (argv) {
    for (auto& a : *argv) recipe.add_test_argv(a);
  }
}

void Parser::Kernel(const YAML::Node& n, v1::KernelBuild& kernel) {
  if (!n.IsMap()) {
    Error(&n, "kernel",
          absl::StrCat("expected a mapping {config: ..., fragments: [...], ...}, got ", Got(n)));
    return;
  }
  Fields f = Entries(n, "kernel", KernelKeys());
  static const std::set<std::string> kNeedsConfig = {
      "config",         "menuconfig",    "nconfig",       "xconfig",       "gconfig",
      "oldconfig",      "olddefconfig",  "syncconfig",    "listnewconfig", "localmodconfig",
      "localyesconfig", "savedefconfig", "helpnewconfig", "oldnoconfig",   "silentoldconfig"};
  auto is_target = [](absl::string_view s) {
    return absl::EndsWith(s, "config") && std::all_of(s.begin(), s.end(), [](char c) {
             return absl::ascii_isalnum(c) || c == '_';
           });
  };
  auto is_fragment_name = [](absl::string_view s) {
    return !s.empty() && s[0] != '.' && s[0] != '-' && std::all_of(s.begin(), s.end(), [](char c) {
      return absl::ascii_isalnum(c) || c == '_' || c == '-' || c == '.';
    });
  };
  auto looks_like_config = [](absl::string_view text) {
    return absl::StartsWith(text, "CONFIG_") || absl::StrContains(text, "\nCONFIG_") ||
           absl::StartsWith(text, "# CONFIG_") || absl::StrContains(text, "\n# CONFIG_");
  };
  auto add_fragment_name = [&](const YAML::Node& at, absl::string_view field, std::string name) {
    if (!is_fragment_name(name)) {
      Error(&at, field,
            absl::StrCat(Shown(name),
                         " is not a kernel fragment name (letters, digits, '_', '-', like "
                         "kvm_guest) nor a file (write a path with a '/', like ./extra.config)"));
      return;
    }
    if (absl::EndsWith(name, ".config")) name.resize(name.size() - 7);
    if (name.empty()) {
      Error(&at, field, "is empty; expected a fragment name such as kvm_guest");
      return;
    }
    kernel.add_fragments(name);
  };

  auto config = f.find("config");
  if (config == f.end()) {
    Error(&n, "kernel.config",
          "missing: give a make target (tinyconfig, defconfig, allnoconfig, x86_64_defconfig, ...) "
          "or a .config file (./my.config)");
  } else if (std::optional<std::string> v =
                 String(config->second, "kernel.config", "a make target or a .config file")) {
    std::vector<std::string> parts = absl::StrSplit(*v, '+');
    const std::string& base = parts[0];
    if (!absl::StrContains(base, '/') && is_target(base)) {
      if (kNeedsConfig.count(base)) {
        Error(&config->second, "kernel.config",
              absl::StrCat(Shown(base),
                           " is interactive or needs an existing .config; give a target that "
                           "makes one (tinyconfig, defconfig, allnoconfig, <arch>_defconfig) or "
                           "a .config file"));
      } else {
        kernel.set_config_target(base);
      }
    } else if (parts.size() > 1) {
      Error(&config->second, "kernel.config",
            absl::StrCat("\"TARGET+fragment\" needs a make target before the '+', got ",
                         Shown(base), "; list fragments under kernel.fragments instead"));
    } else if (!absl::StrContains(base, '/') && !absl::StrContains(base, '.')) {
      Error(&config->second, "kernel.config",
            absl::StrCat(Shown(base),
                         " is neither a make target (tinyconfig, defconfig, allnoconfig, "
                         "x86_64_defconfig, ...) nor a file path (write ./",
                         base, " for a file)"));
    } else if (std::optional<std::string> text = File(config->second, "kernel.config",
                                                      "the kernel config", kMaxKernelConfigBytes)) {
      if (!looks_like_config(*text)) {
        Error(&config->second, "kernel.config",
              absl::StrCat(Shown(base), " does not look like a kernel .config (no CONFIG_ lines)"));
      } else {
        kernel.set_config(*text);
      }
    }
    for (size_t i = 1; i < parts.size(); ++i) {
      add_fragment_name(config->second, "kernel.config", parts[i]);
    }
  }

  if (auto it = f.find("fragments"); it != f.end()) {
    if (!it->second.IsSequence()) {
      Error(&it->second, "kernel.fragments",
            absl::StrCat("expected a list of fragment names or files, e.g. [kvm_guest, "
                         "./debug.config], got ",
                         Got(it->second)));
    } else {
      size_t i = 0;
      for (const YAML::Node& e : it->second) {
        const std::string field = absl::StrCat("kernel.fragments[", i++, "]");
        std::optional<std::string> s = String(e, field, "a fragment name or file");
        if (!s) continue;
        if (absl::StrContains(*s, '\n')) {
          // Inline content ("CONFIG_X=y\n...").
          if (looks_like_config(*s)) {
            kernel.add_fragments(*s);
          } else {
            Error(&e, field, "inline fragment has no CONFIG_ lines");
          }
        } else if (absl::StrContains(*s, '/') || absl::StartsWith(*s, "~")) {
          std::optional<std::string> text =
              File(e, field, "the config fragment", kMaxKernelConfigBytes);
          if (!text) continue;
          if (size_t bad = InvalidUtf8At(*text); bad != std::string::npos) {
            Error(&e, field,
                  absl::StrCat(Shown(*s), " is not text (invalid UTF-8 at byte ", bad, ")"));
          } else if (!looks_like_config(*text)) {
            Error(&e, field, absl::StrCat(Shown(*s), " has no CONFIG_ lines"));
          } else {
            kernel.add_fragments(*text);
          }
        } else {
          add_fragment_name(e, field, *s);
        }
      }
    }
  }
  if (auto it = f.find("modules"); it != f.end()) {
    if (auto b = Bool(it->second, "kernel.modules")) kernel.set_modules(*b);
  }
  if (auto it = f.find("ccache_remote_storage"); it != f.end()) {
    if (auto s =
            String(it->second, "kernel.ccache_remote_storage", "a ccache remote storage URL")) {
      bool ok = true;
      for (absl::string_view url : absl::StrSplit(*s, ' ', absl::SkipEmpty())) {
        if (!(absl::StartsWith(url, "file:") || absl::StartsWith(url, "http://") ||
              absl::StartsWith(url, "redis://") || absl::StartsWith(url, "rediss://"))) {
          ok = false;
        }
      }
      if (!ok || absl::StripAsciiWhitespace(*s).empty()) {
        Error(&it->second, "kernel.ccache_remote_storage",
              absl::StrCat("expected ccache remote storage URLs (file:/path, http://host/path, "
                           "redis://host:port, rediss://...), separated by spaces, got ",
                           Shown(*s)));
      } else {
        kernel.set_ccache_remote_storage(*s);
      }
    }
  }
  if (auto it = f.find("jobs"); it != f.end()) {
    if (auto v =
            Number(it->second, "kernel.jobs", "a number of parallel make jobs, 0 for one per CPU",
                   0, spec::kMaxMakeJobs)) {
      kernel.set_jobs(static_cast<uint32_t>(*v));
    }
  }
}

void Parser::Boot(const YAML::Node& n, v1::BootSpec& boot, bool has_kernel) {
  if (!n.IsMap()) {
    Error(&n, "boot",
          absl::StrCat("expected a mapping {payload: FILE, memory_mb: ..., ...}, got ", Got(n)));
    return;
  }
  Fields f = Entries(n, "boot", BootKeys());
  auto get = [&](const char* key) -> const YAML::Node* {
    auto it = f.find(key);
    return it == f.end() ? nullptr : &it->second;
  };
  auto path_field = [&](const char* key, const char* what, auto setter) {
    if (const YAML::Node* v = get(key)) {
      if (auto s = String(*v, absl::StrCat("boot.", key), what)) setter(*s);
    }
  };

  std::string payload_name;
  if (const YAML::Node* v = get("payload")) {
    if (auto content = File(*v, "boot.payload", "the payload", kMaxPayloadBytes)) {
      boot.set_payload(*content);
      payload_name = v->Scalar();
    }
  }
  const bool elf = absl::StartsWith(boot.payload(),
                                    "\x7f"
                                    "ELF");
  if (const YAML::Node* v = get("payload_kind")) {
    if (auto kind = Choice(*v, "boot.payload_kind", {"shell", "c", "binary"})) {
      if (!get("payload")) {
        Error(v, "boot.payload_kind", "given without boot.payload");
      } else if (!boot.payload().empty() && (*kind == "binary") != elf) {
        Error(v, "boot.payload_kind",
              *kind == "binary" ? absl::StrCat("is binary, but ", Shown(payload_name),
                                               " is not an ELF executable")
                                : absl::StrCat("is ", *kind, ", but ", Shown(payload_name),
                                               " is an ELF executable (payload_kind: binary)"));
      }
      boot.set_payload_kind(*kind == "shell" ? v1::BootSpec::SHELL
                            : *kind == "c"   ? v1::BootSpec::C_SOURCE
                                             : v1::BootSpec::BINARY);
    }
  } else if (!boot.payload().empty()) {
    if (elf) {
      boot.set_payload_kind(v1::BootSpec::BINARY);
    } else if (absl::EndsWith(payload_name, ".c")) {
      boot.set_payload_kind(v1::BootSpec::C_SOURCE);
    } else if (absl::EndsWith(payload_name, ".sh") || absl::StartsWith(boot.payload(), "#!")) {
      boot.set_payload_kind(v1::BootSpec::SHELL);
    }
  }

  path_field("kernel_image", "the path of a kernel image on the agent",
             [&](const std::string& s) { boot.set_kernel_image(s); });
  path_field("cmdline", "kernel command line words",
             [&](const std::string& s) { boot.set_kernel_cmdline(s); });
  path_field("disk_image", "the path of a disk image on the agent",
             [&](const std::string& s) { boot.set_disk_image(s); });
  path_field("shared_dir", "the path of a directory on the agent",
             [&](const std::string& s) { boot.set_shared_dir(s); });
  if (const YAML::Node* v = get("result_file")) {
    if (auto s = String(*v, "boot.result_file", "a file name inside boot.shared_dir")) {
      std::vector<absl::string_view> parts = absl::StrSplit(*s, '/');
      if ((*s)[0] == '/' || std::find(parts.begin(), parts.end(), "..") != parts.end()) {
        Error(v, "boot.result_file",
              absl::StrCat("expected a file name inside boot.shared_dir, got ", Shown(*s)));
      } else if (!get("shared_dir")) {
        Error(v, "boot.result_file",
              "needs boot.shared_dir (the 9p directory the guest writes the file into)");
      } else {
        boot.set_result_file(*s);
      }
    }
  }
  if (const YAML::Node* v = get("qemu_args")) {
    if (!v->IsSequence()) {
      Error(v, "boot.qemu_args",
            absl::StrCat("expected a list of arguments, e.g. [-device, virtio-rng-pci], got ",
                         Got(*v)));
    } else {
      size_t i = 0;
      for (const YAML::Node& e : *v) {
        if (auto s = String(e, absl::StrCat("boot.qemu_args[", i++, "]"), "an argument")) {
          boot.add_qemu_args(*s);
        }
      }
    }
  }
  if (const YAML::Node* v = get("memory_mb")) {
    if (auto m = Number(*v, "boot.memory_mb", "a whole number of megabytes", spec::kMinMemoryMb,
                        spec::kMaxMemoryMb)) {
      boot.set_memory_mb(static_cast<uint32_t>(*m));
    }
  }
  if (const YAML::Node* v = get("cpus")) {
    if (auto m = Number(*v, "boot.cpus", "a whole number of virtual CPUs", spec::kMinCpus,
                        spec::kMaxCpus)) {
      boot.set_cpus(static_cast<uint32_t>(*m));
    }
  }
  if (const YAML::Node* v = get("boot_timeout")) {
    if (auto d = Duration(*v, "boot.boot_timeout", spec::kMaxBootTimeoutSeconds, "1d"))
      boot.set_boot_timeout_seconds(*d);
  }
  if (const YAML::Node* v = get("test_timeout")) {
    if (auto d = Duration(*v, "boot.test_timeout", spec::kMaxTestTimeoutSeconds, "1d"))
      boot.set_test_timeout_seconds(*d);
  }
  if (const YAML::Node* v = get("bad_failures")) {
    static const std::vector<std::string> kNames = {"panic", "oops", "bug", "hang", "no_init"};
    if (!v->IsSequence()) {
      Error(v, "boot.bad_failures",
            absl::StrCat("expected a list of ", absl::StrJoin(kNames, ", "), ", got ", Got(*v)));
    } else {
      std::set<int> seen;
      size_t i = 0;
      for (const YAML::Node& e : *v) {
        auto name = Choice(e, absl::StrCat("boot.bad_failures[", i++, "]"), kNames);
        if (!name) continue;
        v1::BootFailure bf = *name == "panic"  ? v1::PANIC
                             : *name == "oops" ? v1::OOPS
                             : *name == "bug"  ? v1::BUG
                             : *name == "hang" ? v1::HANG
                                               : v1::NO_INIT;
        if (seen.insert(bf).second) boot.add_bad_failures(bf);
      }
    }
  }
  if (const YAML::Node* v = get("accel")) {
    if (auto a = Choice(*v, "boot.accel", {"auto", "kvm", "tcg"})) boot.set_accel(*a);
  }
  if (const YAML::Node* v = get("pvh")) {
    if (auto b = Bool(*v, "boot.pvh")) boot.set_no_pvh(!*b);
  }

  if (!get("payload") && boot.disk_image().empty()) {
    Error(&n, "boot.payload",
          "missing: give the test to run as init in the guest (a shell script, a C file or a "
          "static binary), or boot.disk_image whose own init runs the test");
  }
  if (!has_kernel && !get("kernel_image")) {
    Error(&n, "boot.kernel_image",
          "missing: without a kernel section nothing builds a kernel; give a prebuilt image "
          "(boot.kernel_image) or add kernel: {config: ...}");
  }
}

void Parser::Run(const YAML::Node& root, v1::BisectSpec& spec) {
  if (!root.IsMap()) {
    Error(&root, "",
          root.IsNull()
              ? std::string("the job file is empty: it needs at least repo, good, bad and test")
              : absl::StrCat("the job file must be a mapping of keys (repo: ..., good: ..., "
                             "bad: ..., test: ...), got ",
                             Got(root)));
    return;
  }
  Fields f = Entries(root, "", TopKeys());
  auto get = [&](const char* key) -> const YAML::Node* {
    auto it = f.find(key);
    return it == f.end() ? nullptr : &it->second;
  };
  v1::Recipe& recipe = *spec.mutable_recipe();

  if (const YAML::Node* v = get("repo")) {
    if (auto s = String(*v, "repo", "a repository path or URL")) {
      if ((*s)[0] == '-') {
        Error(v, "repo", absl::StrCat(Shown(*s), " is not a path or URL: it starts with '-'"));
      } else {
        std::string repo = *s;
        if (!IsUrl(repo)) {
          std::error_code ec;
          std::filesystem::path abs = std::filesystem::absolute(Resolve(repo), ec);
          repo = ec ? Resolve(repo) : abs.lexically_normal().string();
          if (repo.size() > 1 && repo.back() == '/') repo.pop_back();
        }
        spec.set_repo(repo);
      }
    }
  } else {
    Error(nullptr, "repo", "missing: give the repository (a path or a URL agents can clone)");
  }
  if (const YAML::Node* v = get("good")) {
    std::vector<std::string> goods = Revisions(*v, "good", true);
    if (goods.empty() && v->IsSequence() && v->size() == 0) {
      Error(v, "good", "is an empty list; give at least one known-good revision");
    }
    for (auto& g : goods) spec.add_good(g);
  } else {
    Error(nullptr, "good", "missing: give at least one known-good revision (a list for several)");
  }
  if (const YAML::Node* v = get("bad")) {
    if (v->IsSequence()) {
      Error(v, "bad", "expected one revision, got a list: a bisect has one bad commit");
    } else if (auto r = Revision(*v, "bad")) {
      spec.set_bad(*r);
    }
  } else {
    Error(nullptr, "bad", "missing: give the known-bad revision (e.g. HEAD)");
  }
  if (const YAML::Node* v = get("skip")) {
    for (auto& s : Revisions(*v, "skip", true)) spec.add_skip(s);
  }
  if (const YAML::Node* v = get("first_parent")) {
    if (auto b = Bool(*v, "first_parent")) spec.set_first_parent(*b);
  }
  if (const YAML::Node* v = get("terms")) Terms(*v, spec);
  if (const YAML::Node* v = get("max_parallel")) {
    if (auto m = Number(*v, "max_parallel", "a whole number of tasks, 0 for no limit", 0,
                        spec::kMaxParallel)) {
      spec.set_max_parallel(static_cast<uint32_t>(*m));
    }
  }
  if (const YAML::Node* v = get("priority")) {
    if (auto m =
            Number(*v, "priority", "a whole number, higher served first", 0, spec::kMaxPriority)) {
      spec.set_priority(static_cast<uint32_t>(*m));
    }
  }
  if (const YAML::Node* v = get("verify")) {
    // true: the default number of retests; a number: that many (0: none).
    const std::string s = v->IsScalar() ? absl::AsciiStrToLower(v->Scalar()) : "";
    if (s == "true" || s == "yes" || s == "on" || s == "false" || s == "no" || s == "off") {
      if (auto b = Bool(*v, "verify")) spec.set_verify(*b ? spec::kDefaultVerifyRuns : 0);
    } else if (auto m = Number(*v, "verify",
                               "true, false, or how many times to retest the culprit, its parent "
                               "and its revert",
                               0, spec::kMaxVerifyRuns)) {
      spec.set_verify(static_cast<uint32_t>(*m));
    }
  }
  if (const YAML::Node* v = get("description")) {
    // Its length is the request schema's to check (common/spec).
    if (auto s = String(*v, "description", "text", true)) spec.set_description(*s);
  }
  if (const YAML::Node* v = get("build")) {
    if (auto s = String(*v, "build", "a shell command (run with /bin/sh -c)")) {
      recipe.set_build_command(*s);
    }
  }
  if (const YAML::Node* v = get("timeout")) {
    if (auto d = Duration(*v, "timeout", spec::kMaxStepTimeoutSeconds, "7d"))
      recipe.set_timeout_seconds(*d);
  }
  if (const YAML::Node* v = get("env")) Env(*v, recipe);
  if (const YAML::Node* v = get("require")) Require(*v, spec);

  const YAML::Node* test = get("test");
  const YAML::Node* kernel = get("kernel");
  const YAML::Node* boot = get("boot");
  if (test) Test(*test, recipe);
  if (kernel) Kernel(*kernel, *recipe.mutable_kernel());
  if (boot) Boot(*boot, *recipe.mutable_boot(), kernel != nullptr);
  if (test && boot) {
    Error(test, "test",
          "cannot be used with boot: in a kernel bisect the test is boot.payload, run as init "
          "in the guest; remove one of them");
  }
  if (!test && !boot) {
    Error(nullptr, "test",
          "missing: give test.command or test.script (exit 0 good, 125 skip, 1..127 bad), or "
          "boot.payload for a kernel bisect");
  }
}

// "line L, column C" of byte `at` (columns count bytes).
std::string Where(absl::string_view text, size_t at) {
  size_t line = 1, col = 1;
  for (size_t i = 0; i < at && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return absl::StrCat("line ", line, ", column ", col);
}

// The line on which a second YAML document starts, or 0. A document marker ("---", or "..."
// followed by more content) at the start of a line ends a document wherever it appears, even in
// a block or quoted scalar, so looking at lines is exact.
size_t SecondDocumentLine(absl::string_view text) {
  bool content = false, ended = false;
  size_t line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    auto marker = [&](absl::string_view m) {
      return absl::StartsWith(line, m) && (line.size() == 3 || line[3] == ' ' || line[3] == '\t');
    };
    absl::string_view rest = line;
    if (marker("---")) {
      if (content || ended) return line_no;
      rest = line.substr(3);
    } else if (marker("...")) {
      ended = true;
      continue;
    } else if (!content && absl::StartsWith(line, "%")) {
      continue;  // a directive
    }
    rest = absl::StripLeadingAsciiWhitespace(rest);
    if (!rest.empty() && rest[0] != '#') {
      if (ended) return line_no;
      content = true;
    }
  }
  return 0;
}

}  // namespace

size_t EditDistance(std::string_view a, std::string_view b) {
  // Optimal string alignment distance, three rows.
  std::vector<size_t> prev2(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        cur[j] = std::min(cur[j], prev2[j - 2] + 1);
      }
    }
    std::swap(prev2, prev);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

absl::StatusOr<v1::BisectSpec> ParseJobFile(std::string_view yaml_text,
                                            const std::string& base_dir) {
  if (yaml_text.size() > kMaxJobFileBytes) {
    return absl::InvalidArgumentError(absl::StrCat("the job file is ", yaml_text.size(),
                                                   " bytes; at most ", kMaxJobFileBytes,
                                                   " are allowed (files it names may be larger)"));
  }
  const absl::string_view text(yaml_text.data(), yaml_text.size());
  // YAML allows neither NUL nor most control bytes, and yaml-cpp 0.7 loops forever on some
  // (",\0"): refuse them before it sees them.
  if (size_t bad = InvalidUtf8At(text); bad != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("the job file is not UTF-8 text: ", Where(text, bad), " has byte 0x",
                     absl::Hex(static_cast<uint8_t>(text[bad]))));
  }
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = text[i];
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrCat("the job file has a control character (0x", absl::Hex(c, absl::kZeroPad2),
                       ") at ", Where(text, i), "; YAML allows only text (write \"\\x",
                       absl::Hex(c, absl::kZeroPad2), "\" inside double quotes)"));
    }
  }
  if (size_t second = SecondDocumentLine(text); second != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("the job file holds more than one YAML document (another starts on line ",
                     second, "); give one job per file"));
  }
  YAML::Node root;
  try {
    // Not LoadAll: yaml-cpp 0.7's LoadAll never returns on some malformed input (",").
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) {
      return absl::InvalidArgumentError(absl::StrCat("the job file is not valid YAML: ", e.msg));
    }
    return absl::InvalidArgumentError(absl::StrCat("the job file is not valid YAML: line ",
                                                   e.mark.line + 1, ", column ", e.mark.column + 1,
                                                   ": ", e.msg));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("the job file cannot be read: ", e.what()));
  }
  v1::BisectSpec spec;
  Parser parser(base_dir);
  try {
    parser.Run(root, spec);
  } catch (const std::exception& e) {
    // yaml-cpp throws on misuse; every access above is checked, so this is a bug, but a job file
    // must never take the program down.
    return absl::InternalError(absl::StrCat("the job file could not be interpreted: ", e.what()));
  }
  if (!parser.errors().empty()) {
    std::string msg = absl::StrJoin(parser.errors(), "\n");
    if (parser.dropped() > 0) absl::StrAppend(&msg, "\n... and ", parser.dropped(), " more");
    return absl::InvalidArgumentError(msg);
  }
  // The YAML is translated; what the request itself must satisfy is the schema's to say, in the
  // same words as the CLI and the coordinator.
  if (absl::Status st = ValidateBisectSpec(spec); !st.ok()) return st;
  return spec;
}

absl::StatusOr<v1::BisectSpec> LoadJobFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int e = errno;
    std::string msg = absl::StrCat("cannot read job file '", path, "': ", std::strerror(e));
    if (e == ENOENT) return absl::NotFoundError(msg);
    if (e == EACCES) return absl::PermissionDeniedError(msg);
    return absl::InvalidArgumentError(msg);
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat("job file '", path, "' is not a regular file"));
  }
  std::string text(kMaxJobFileBytes + 1, '\0');
  size_t got = 0;
  while (got < text.size()) {
    ssize_t r = read(fd, text.data() + got, text.size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += r;
  }
  close(fd);
  text.resize(got);
  std::string dir = ".";
  if (size_t slash = path.rfind('/'); slash != std::string::npos) {
    dir = slash == 0 ? "/" : path.substr(0, slash);
  }
  absl::StatusOr<v1::BisectSpec> spec = ParseJobFile(text, dir == "." ? "" : dir);
  if (!spec.ok()) {
    std::string msg(spec.status().message());
    // One prefix per line so that every problem names the file.
    std::string prefixed;
    for (absl::string_view line : absl::StrSplit(msg, '\n')) {
      absl::StrAppend(&prefixed, prefixed.empty() ? "" : "\n", path, ": ", line);
    }
    return absl::Status(spec.status().code(), prefixed);
  }
  return spec;
}

}  // namespace farm
