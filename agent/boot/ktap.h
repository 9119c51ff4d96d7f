// A parser for KTAP (Documentation/dev-tools/ktap.rst) and the TAP 13 that kselftest prints, fed
// one console line at a time, as KUnit's kunit_parser.py reads them.
#ifndef FARM_AGENT_BOOT_KTAP_H_
#define FARM_AGENT_BOOT_KTAP_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace farm::boot {

struct KtapSummary {
  bool found = false;  // a "KTAP version N" or "TAP version N" line was seen
  // Leaf results: a test with subtests is counted through its subtests, not itself.
  int passed = 0;
  int failed = 0;   // "not ok" without a SKIP/TODO directive
  int skipped = 0;  // "# SKIP" (with "ok" or "not ok"), and "not ok ... # TODO"
  int total = 0;    // passed + failed + skipped
  // Every plan ("1..N") got its N results and every subtest got its parent's result line. A
  // stream that stops early (the test or the kernel died mid-way) is incomplete: KUnit counts it
  // as crashed.
  bool complete = false;
  bool bailed_out = false;        // "Bail out!"
  std::string first_failure;      // "parent.child" path of the first failed leaf
  std::string incomplete_reason;  // why complete is false, for reports

  // "3 passed, 1 failed (first: suite.case), 0 skipped, 4 results, complete".
  std::string Describe() const;
};

// Not thread-safe.
class KtapParser {
 public:
  // One line, without the newline. A leading printk timestamp ("[    1.234567] ") and a '\r' are
  // ignored. Lines that are not KTAP (kernel messages, test output) are ignored.
  void AddLine(std::string_view line);
  // The summary of everything seen so far, as if the input ended here.
  KtapSummary Summary() const;

 private:
  struct Level {
    explicit Level(size_t i) : indent(i) {}
    size_t indent;
    std::optional<int> plan;
    int results = 0;
    bool has_open_child = false;  // a subtest started since this level's last result
    int failed_at_child_start = 0;
    std::string name;  // from "# Subtest: name"
  };
  void Result(size_t indent, bool ok, std::string_view rest);
  void CloseLevelsDeeperThan(size_t indent);
  void CloseTop();

  std::vector<Level> stack_;
  KtapSummary summary_;
  std::string pending_subtest_name_;
  bool structural_error_ = false;
  std::string structural_reason_;
};

// Convenience: parses a whole text.
KtapSummary ParseKtap(std::string_view text);

// "[    1.234567] " and "[    1.234567][    T1] " prefixes removed, and a trailing '\r'.
std::string_view StripPrintkPrefix(std::string_view line);

}  // namespace farm::boot

#endif  // FARM_AGENT_BOOT_KTAP_H_
