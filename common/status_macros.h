// Status helpers: Debian's Abseil 20220623 ships no RETURN_IF_ERROR / ASSIGN_OR_RETURN.
#ifndef FARM_COMMON_STATUS_MACROS_H_
#define FARM_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define FARM_CONCAT_INNER_(a, b) a##b
#define FARM_CONCAT_(a, b) FARM_CONCAT_INNER_(a, b)

// Returns from the enclosing function when `expr` (an absl::Status) is not OK.
#define FARM_RETURN_IF_ERROR(expr)               \
  do {                                           \
    ::absl::Status farm_status_ = (expr);        \
    if (!farm_status_.ok()) return farm_status_; \
  } while (0)

// FARM_ASSIGN_OR_RETURN(auto x, MakeX()); declares/assigns x or returns the error.
#define FARM_ASSIGN_OR_RETURN(lhs, rexpr) \
  FARM_ASSIGN_OR_RETURN_IMPL_(FARM_CONCAT_(farm_statusor_, __LINE__), lhs, rexpr)
#define FARM_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                                \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()

#endif  // FARM_COMMON_STATUS_MACROS_H_
