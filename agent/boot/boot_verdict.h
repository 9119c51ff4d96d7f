// From a boot's outcome to the bisect's vocabulary: a verdict (good, bad, skip) or an
// infrastructure error, which is retried and never a verdict.
#ifndef FARM_AGENT_BOOT_BOOT_VERDICT_H_
#define FARM_AGENT_BOOT_BOOT_VERDICT_H_

#include <optional>
#include <string>

#include "agent/boot/qemu_boot.h"
#include "farm/v1/farm.pb.h"

namespace farm::boot {

struct BootVerdict {
  std::optional<farm::v1::Verdict> verdict;  // set, or else infra_error is
  std::string infra_error;
  std::string detail;  // one line: why this verdict ("kernel panic before the test's result")
};

// The job decides which boot failures are bad (spec.bad_failures); by default none is:
//   - a crash (PANIC, OOPS, BUG) the job lists -> BAD, even if the test passed;
//   - otherwise the test's exit code decides when it reported one (0 good, 125 skip, 1-127 bad;
//     KTAP failures or a truncated KTAP stream with exit 0 are bad);
//   - a panic, oops, BUG, hang or boot without init before the result -> BAD if listed, else SKIP;
//   - the guest stopping without a result -> SKIP;
//   - a test killed by a signal (status >= 128), qemu failing, a cancelled boot -> infra error.
BootVerdict DecideVerdict(const BootResult& result, const farm::v1::BootSpec& spec);

}  // namespace farm::boot

#endif  // FARM_AGENT_BOOT_BOOT_VERDICT_H_
