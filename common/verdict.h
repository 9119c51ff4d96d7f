// The `git bisect run` contract, in one place.
#ifndef FARM_COMMON_VERDICT_H_
#define FARM_COMMON_VERDICT_H_

#include <optional>

#include "farm/v1/farm.pb.h"

namespace farm {

// Exit code of a test -> verdict: 0 good, 125 skip, 1..127 (but 125) bad. Anything else (128 and
// above, as shells report signals) is not a verdict but an infrastructure error: nullopt.
inline std::optional<farm::v1::Verdict> VerdictForExitCode(int code) {
  if (code == 0) return farm::v1::GOOD;
  if (code == 125) return farm::v1::SKIP;
  if (code >= 1 && code <= 127) return farm::v1::BAD;
  return std::nullopt;
}

}  // namespace farm

#endif  // FARM_COMMON_VERDICT_H_
