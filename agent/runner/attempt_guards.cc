#include "agent/runner/attempt_guards.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/workspace/disk_space.h"

namespace farm {
namespace {

namespace v1 = farm::v1;
using Kind = StepOutcome::Kind;

}  // namespace

AttemptFn WithDiskFullCheck(AttemptFn inner, const TaskContext& task) {
  return [inner = std::move(inner), &task](bool pristine) {
    Attempt a = inner(pristine);
    std::string what;
    switch (a.outcome.kind) {
      case Kind::kContinue:
      case Kind::kCancelled:
      case Kind::kJobError:
        return a;
      case Kind::kVerdict:
        if (a.outcome.verdict == v1::GOOD) return a;  // the test passed: the disk did not stop it
        what = absl::StrCat("the test said ", a.outcome.verdict == v1::BAD ? "bad" : "skip", " (",
                            a.outcome.detail, ")");
        break;
      case Kind::kBuildFailed:
      case Kind::kInfraError:
        what = a.outcome.detail;
        break;
    }
    Workspace& ws = *task.workspace;
    absl::Status full =
        DiskFullError({ws.build_path(task.slot), ws.worktree_path(task.slot), task.scratch_dir},
                      a.no_space.seen(), what);
    if (full.ok()) return a;
    std::string detail(full.message());
    // What the step left in the slot's build directory is partial, and may be what filled the
    // disk: without it this agent's next task can build, instead of failing the same way until the
    // coordinator quarantines the agent. (Its worktree and mirror stay: they are whole.)
    if (absl::Status emptied = ws.EmptyBuildDirectory(task.slot); emptied.ok()) {
      absl::StatusOr<DiskSpace> now = MeasureDiskSpace(ws.build_path(task.slot));
      absl::StrAppend(&detail, " (the slot's build directory was emptied",
                      now.ok() ? absl::StrCat(": ", now->Describe(), " now") : std::string(), ")");
    } else {
      absl::StrAppend(&detail,
                      " (emptying the slot's build directory failed too: ", emptied.message(), ")");
    }
    task.out->Write(absl::StrCat("farm: ", detail, "\n"));
    a.outcome = StepOutcome::Of(Kind::kInfraError, std::move(detail));
    return a;
  };
}

AttemptFn WithPristineRetry(AttemptFn inner, const TaskContext& task) {
  return [inner = std::move(inner), &task](bool pristine) {
    Attempt first = inner(pristine);
    std::string reason;
    if (first.outcome.kind == Kind::kBuildFailed) reason = first.outcome.detail;
    if (first.outcome.kind == Kind::kVerdict && first.outcome.verdict == v1::SKIP) {
      reason = "test exited 125 (skip)";
    }
    if (pristine || reason.empty() || task.control->cancelled()) return first;
    task.out->Write(absl::StrCat(
        "farm: ", reason, "; retrying once in a pristine worktree before counting a skip\n"));
    Attempt second = inner(/*pristine=*/true);
    second.retry_reason = std::move(reason);
    second.checkout += first.checkout;
    second.build += first.build;
    second.test += first.test;
    second.files_written += first.files_written;
    return second;
  };
}

}  // namespace farm
