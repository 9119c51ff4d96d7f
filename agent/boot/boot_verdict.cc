#include "agent/boot/boot_verdict.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace farm::boot {
namespace {

namespace v1 = farm::v1;

bool Listed(const v1::BootSpec& spec, v1::BootFailure f) {
  return std::find(spec.bad_failures().begin(), spec.bad_failures().end(), f) !=
         spec.bad_failures().end();
}

const char* FailureWords(v1::BootFailure f) {
  switch (f) {
    case v1::PANIC:
      return "a kernel panic";
    case v1::OOPS:
      return "a kernel oops";
    case v1::BUG:
      return "a kernel BUG";
    case v1::HANG:
      return "a hang";
    case v1::NO_INIT:
      return "a boot that never reached init";
    default:
      return "a boot failure";
  }
}

BootVerdict Verdict(v1::Verdict v, std::string detail) {
  return BootVerdict{v, "", std::move(detail)};
}

}  // namespace

BootVerdict DecideVerdict(const BootResult& r, const v1::BootSpec& spec) {
  switch (r.outcome) {
    case BootOutcome::kCancelled:
      return BootVerdict{std::nullopt, "the boot was cancelled", ""};
    case BootOutcome::kQemuError:
      return BootVerdict{std::nullopt, absl::StrCat("qemu: ", r.detail), ""};
    default:
      break;
  }
  for (v1::BootFailure f : r.crashes) {
    if (Listed(spec, f)) {
      return Verdict(
          v1::BAD, absl::StrCat(FailureWords(f), ", which the job counts as bad: ", r.crash_line));
    }
  }
  switch (r.outcome) {
    case BootOutcome::kPassed:
      return Verdict(v1::GOOD, "the test passed");
    case BootOutcome::kFailed:
      return Verdict(v1::BAD,
                     r.exit_code == 0
                         ? absl::StrCat("the test exited 0 but its KTAP output says "
                                        "otherwise: ",
                                        r.ktap.Describe())
                         : absl::StrCat("the test failed (exit ", r.exit_code.value_or(-1), ")"));
    case BootOutcome::kSkipped:
      return Verdict(v1::SKIP, "the test exited 125 (cannot test this kernel)");
    case BootOutcome::kTestError:
      return BootVerdict{std::nullopt,
                         absl::StrCat("the test's exit status ", r.exit_code.value_or(-1),
                                      " is not a verdict (killed by a signal?)"),
                         ""};
    case BootOutcome::kNoResult:
      return Verdict(v1::SKIP, "the guest stopped before the test reported a result");
    default:
      break;
  }
  std::optional<v1::BootFailure> failure = FailureOf(r.outcome);
  if (failure.has_value() && Listed(spec, *failure)) {
    return Verdict(v1::BAD, absl::StrCat(FailureWords(*failure), ", which the job counts as bad"));
  }
  return Verdict(v1::SKIP, absl::StrCat(failure ? FailureWords(*failure) : "a boot failure",
                                        " before the test's result: not a verdict on the test"));
}

}  // namespace farm::boot
