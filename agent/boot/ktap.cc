#include "agent/boot/ktap.h"

#include <cctype>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/boot/text.h"

namespace farm::boot {
namespace {

bool ConsumePrefix(std::string_view& s, std::string_view prefix) {
  if (s.substr(0, prefix.size()) != prefix) return false;
  s.remove_prefix(prefix.size());
  return true;
}

// "1..N"; nullopt if `body` is not a plan line.
std::optional<int> ParsePlan(std::string_view body) {
  if (!ConsumePrefix(body, "1..")) return std::nullopt;
  size_t digits = 0;
  while (digits < body.size() && std::isdigit(static_cast<unsigned char>(body[digits]))) ++digits;
  if (digits == 0 || digits > 9) return std::nullopt;
  std::string_view after = body.substr(digits);
  // "1..N # comment" is allowed by TAP.
  if (!after.empty() && after.front() != ' ' && after.front() != '#') return std::nullopt;
  int n = 0;
  if (!absl::SimpleAtoi(std::string(body.substr(0, digits)), &n)) return std::nullopt;
  return n;
}

bool IsVersionLine(std::string_view body) {
  return (ConsumePrefix(body, "KTAP version ") || ConsumePrefix(body, "TAP version ")) &&
         !body.empty() && std::isdigit(static_cast<unsigned char>(body.front()));
}

}  // namespace

std::string_view StripPrintkPrefix(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
  // "[    1.234567] " and the caller id "[    T1] " / "[    C0] " that may follow it.
  for (int i = 0; i < 2 && !line.empty() && line.front() == '['; ++i) {
    size_t close = line.find(']');
    if (close == std::string_view::npos || close > 24) break;
    bool stamp = close > 1;
    for (size_t j = 1; j < close; ++j) {
      char c = line[j];
      if (!(std::isdigit(static_cast<unsigned char>(c)) || c == ' ' || c == '.' || c == 'T' ||
            c == 'C')) {
        stamp = false;
        break;
      }
    }
    if (!stamp) break;
    line.remove_prefix(close + 1);
    if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
  }
  return line;
}

void KtapParser::CloseTop() {
  const Level& top = stack_.back();
  if (top.plan.has_value() && top.results < *top.plan && !structural_error_) {
    structural_error_ = true;
    structural_reason_ = absl::StrCat(top.name.empty() ? "a subtest" : top.name, " stopped after ",
                                      top.results, " of ", *top.plan, " planned results");
  }
  stack_.pop_back();
}

void KtapParser::CloseLevelsDeeperThan(size_t indent) {
  // The level right under the receiving one is closed by the result line; anything deeper never
  // got its parent's result.
  while (stack_.size() > 1 && stack_.back().indent > indent) {
    bool direct_child = stack_[stack_.size() - 2].indent <= indent;
    if (!direct_child && !structural_error_) {
      structural_error_ = true;
      structural_reason_ = "a nested subtest has no result line";
    }
    CloseTop();
  }
}

void KtapParser::Result(size_t indent, bool ok, std::string_view rest) {
  CloseLevelsDeeperThan(indent);
  Level& level = stack_.back();
  ++level.results;

  // "<number> [-] [description] [# directive diagnostics]"
  size_t digits = 0;
  while (digits < rest.size() && std::isdigit(static_cast<unsigned char>(rest[digits]))) ++digits;
  rest.remove_prefix(digits);
  rest = text::TrimLeft(rest);
  ConsumePrefix(rest, "- ");
  std::string_view name = rest, directive;
  size_t hash = rest.find('#');
  if (hash != std::string_view::npos) {
    name = rest.substr(0, hash);
    directive = text::TrimLeft(rest.substr(hash + 1));
  }
  name = text::Trim(name);
  const bool skip = text::StartsWithIgnoreCase(directive, "SKIP");
  const bool todo = text::StartsWithIgnoreCase(directive, "TODO");

  const bool leaf = !level.has_open_child;
  level.has_open_child = false;
  bool count_failure = false;
  if (leaf) {
    ++summary_.total;
    if (skip || (!ok && todo)) {
      ++summary_.skipped;
    } else if (ok) {
      ++summary_.passed;
    } else {
      count_failure = true;
    }
  } else if (!ok && !skip && !todo && summary_.failed == level.failed_at_child_start) {
    // A parent that failed though none of its subtests did (a suite whose init failed): that
    // failure must not be lost.
    ++summary_.total;
    count_failure = true;
  }
  if (count_failure) {
    ++summary_.failed;
    if (summary_.first_failure.empty()) {
      std::string path;
      for (const Level& l : stack_) {
        if (!l.name.empty()) absl::StrAppend(&path, l.name, ".");
      }
      summary_.first_failure = absl::StrCat(path, name.empty() ? "(unnamed)" : text::Av(name));
    }
  }
}

void KtapParser::AddLine(std::string_view raw) {
  std::string_view line = StripPrintkPrefix(raw);
  size_t indent = 0;
  while (indent < line.size() && line[indent] == ' ') ++indent;
  std::string_view body = line.substr(indent);

  if (IsVersionLine(body)) {
    summary_.found = true;
    if (stack_.empty()) {
      stack_.push_back(Level(indent));
      return;
    }
    // Subtests whose parents' results never came, at this indentation or deeper.
    while (stack_.size() > 1 && stack_.back().indent >= indent) {
      if (!structural_error_) {
        structural_error_ = true;
        structural_reason_ = "a subtest has no result line";
      }
      CloseTop();
    }
    Level& top = stack_.back();
    if (indent > top.indent) {
      top.has_open_child = true;
      top.failed_at_child_start = summary_.failed;
      Level child = Level(indent);
      child.name = std::move(pending_subtest_name_);
      pending_subtest_name_.clear();
      stack_.push_back(std::move(child));
      return;
    }
    // A new top-level stream (a second test program): the first one must have been complete.
    if (!structural_error_ && ((top.plan && top.results < *top.plan) || top.has_open_child)) {
      structural_error_ = true;
      structural_reason_ =
          absl::StrCat("the output restarted after ", top.results,
                       top.plan ? absl::StrCat(" of ", *top.plan) : "", " results");
    }
    stack_.clear();
    stack_.push_back(Level(indent));
    return;
  }
  if (stack_.empty()) return;

  if (std::optional<int> plan = ParsePlan(body)) {
    if (indent >= stack_.back().indent) stack_.back().plan = *plan;
    return;
  }
  if (ConsumePrefix(body, "ok ")) {
    if (!body.empty() && std::isdigit(static_cast<unsigned char>(body.front()))) {
      Result(indent, true, body);
    }
    return;
  }
  if (ConsumePrefix(body, "not ok ")) {
    if (!body.empty() && std::isdigit(static_cast<unsigned char>(body.front()))) {
      Result(indent, false, body);
    }
    return;
  }
  if (ConsumePrefix(body, "# Subtest: ")) {
    // KUnit names the suite before (or right after) its version line.
    std::string name(text::Trim(body));
    if (stack_.size() > 1 && indent >= stack_.back().indent && stack_.back().name.empty() &&
        stack_.back().results == 0) {
      stack_.back().name = std::move(name);
    } else {
      pending_subtest_name_ = std::move(name);
    }
    return;
  }
  if (ConsumePrefix(body, "Bail out!")) summary_.bailed_out = true;
}

KtapSummary KtapParser::Summary() const {
  KtapSummary s = summary_;
  if (!s.found) {
    s.incomplete_reason = "no KTAP output";
    return s;
  }
  std::string reason;
  if (s.bailed_out) {
    reason = "the test bailed out";
  } else if (structural_error_) {
    reason = structural_reason_;
  } else if (stack_.size() > 1) {
    const Level& open = stack_.back();
    reason = absl::StrCat("the output stopped inside ",
                          open.name.empty() ? "a subtest" : absl::StrCat("subtest ", open.name),
                          " after ", open.results,
                          open.plan ? absl::StrCat(" of ", *open.plan) : "", " results");
  } else if (!stack_.empty()) {
    const Level& root = stack_.back();
    if (root.has_open_child) {
      reason = "the last subtest has no result line";
    } else if (root.plan && root.results < *root.plan) {
      reason = absl::StrCat("the output stopped after ", root.results, " of ", *root.plan,
                            " planned results");
    } else if (!root.plan && root.results == 0) {
      reason = "no plan and no results";
    }
  }
  s.complete = reason.empty();
  s.incomplete_reason = reason;
  return s;
}

std::string KtapSummary::Describe() const {
  if (!found) return "no KTAP output";
  std::string out = absl::StrCat(passed, " passed, ", failed, " failed");
  if (!first_failure.empty()) absl::StrAppend(&out, " (first: ", first_failure, ")");
  absl::StrAppend(&out, ", ", skipped, " skipped, ", total, " results");
  absl::StrAppend(&out,
                  complete ? ", complete" : absl::StrCat(", incomplete: ", incomplete_reason));
  return out;
}

KtapSummary ParseKtap(std::string_view text) {
  KtapParser parser;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    parser.AddLine(text.substr(start, end - start));
    start = end + 1;
  }
  return parser.Summary();
}

}  // namespace farm::boot
