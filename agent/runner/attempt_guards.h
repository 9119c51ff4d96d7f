// What is wrapped around a whole attempt of a task's pipeline (agent/runner/steps.h), one concern
// each, as decorators of an AttemptFn: the steps themselves know nothing of them.
#ifndef FARM_AGENT_RUNNER_ATTEMPT_GUARDS_H_
#define FARM_AGENT_RUNNER_ATTEMPT_GUARDS_H_

#include <functional>

#include "agent/runner/steps.h"

namespace farm {

// Runs one attempt of a task, in a pristine worktree or not.
using AttemptFn = std::function<Attempt(bool pristine)>;

// A failed attempt (a failed build, an infrastructure error, or a bad or skip verdict) on a full
// disk becomes an infrastructure error that names the filesystem and what to do
// (agent/workspace/disk_space.h): the filesystems of the slot's worktree, its build directory and
// the agent's scratch directory, and ENOSPC's message in the checkout's or the build's output.
// The slot's build directory (the failed step's partial output) is then emptied, so that the
// agent's next task can build. Cancellations, job errors and good verdicts pass unchanged.
AttemptFn WithDiskFullCheck(AttemptFn inner, const TaskContext& task);

// A failed build, or a test that says skip, is tried once more in a pristine worktree (untracked
// and ignored files removed, empty build directory) before it counts: stale generated files from
// another commit are not a verdict. The second attempt is returned with the first one's times
// and files added and retry_reason set. Nothing is retried once the task is cancelled.
AttemptFn WithPristineRetry(AttemptFn inner, const TaskContext& task);

}  // namespace farm

#endif  // FARM_AGENT_RUNNER_ATTEMPT_GUARDS_H_
