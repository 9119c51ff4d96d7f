#include "agent/runner/task_runner.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/runner/attempt_guards.h"
#include "agent/runner/steps.h"
#include "agent/workspace/disk_space.h"
#include "common/log/log.h"

namespace farm {
namespace {

namespace v1 = farm::v1;

double Secs(absl::Duration d) { return absl::ToDoubleSeconds(d); }

// The one outcome of the attempt that ends the task, with what it measured.
v1::TaskResult ToTaskResult(const std::string& task_id, const Attempt& a) {
  using Kind = StepOutcome::Kind;
  v1::TaskResult result;
  result.set_task_id(task_id);
  result.set_retried_pristine(!a.retry_reason.empty());
  result.set_retry_reason(a.retry_reason);
  result.set_checkout_seconds(Secs(a.checkout));
  result.set_build_seconds(Secs(a.build));
  result.set_test_seconds(Secs(a.test));
  result.set_files_written(a.files_written);
  if (a.kernel_build) *result.mutable_kernel_build() = *a.kernel_build;
  result.set_detail(a.outcome.detail);
  switch (a.outcome.kind) {
    case Kind::kVerdict:
      result.set_verdict(a.outcome.verdict);
      break;
    case Kind::kBuildFailed:
      result.set_verdict(v1::SKIP);
      break;
    case Kind::kContinue:  // RunPipeline never returns it
    case Kind::kInfraError:
      result.set_infra_error(a.outcome.detail);
      break;
    case Kind::kJobError:
      result.set_job_error(a.outcome.detail);
      break;
    case Kind::kCancelled:
      result.set_cancelled(true);
      break;
  }
  return result;
}

// An error of the agent's own writes: the disk is full (say where), or `what` as it is.
absl::Status WriteError(const std::string& dir, int err, std::string what) {
  absl::Status full = DiskFullError({dir}, err == ENOSPC, what);
  return full.ok() ? absl::InternalError(std::move(what)) : full;
}

// Writes a shipped test script once per content, atomically, mode 0755.
absl::StatusOr<std::string> MaterializeScript(const std::string& dir, const std::string& content) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return WriteError(dir, ec.value(), absl::StrCat("cannot create ", dir, ": ", ec.message()));
  }
  std::string path = absl::StrFormat("%s/test-%016x", dir, std::hash<std::string>{}(content));
  if (std::filesystem::exists(path)) return path;
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(content.data(), content.size());
    // The bytes reach the disk at close: a full disk shows there, not at write().
    f.close();
    if (f.fail()) {
      int err = errno;
      std::filesystem::remove(tmp, ec);
      return WriteError(
          dir, err, absl::StrCat("cannot write the test script ", tmp, ": ", std::strerror(err)));
    }
  }
  if (chmod(tmp.c_str(), 0755) != 0 || rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot install test script at ", path));
  }
  return path;
}

}  // namespace

v1::TaskResult TaskRunner::Run(const v1::Assign& task, int slot, TaskControl* control,
                               const PhaseFn& on_phase, const OutputFn& on_output, int jobs) {
  v1::TaskResult result;
  result.set_task_id(task.task_id());
  OutputLimiter out(on_output);
  if (task.recipe().test_argv().empty() && !task.recipe().has_boot()) {
    result.set_infra_error("the task has no test command");
    return result;
  }
  TaskContext ctx;
  ctx.task = &task;
  ctx.slot = slot;
  ctx.workspace = workspace_;
  ctx.control = control;
  ctx.out = &out;
  ctx.scratch_dir = scratch_dir_;
  ctx.ccache_dir = ccache_dir_;
  ctx.jobs = jobs > 0 ? jobs : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  ctx.test_program = task.recipe().test_argv().empty() ? "" : task.recipe().test_argv(0);
  if (!task.recipe().test_script().empty()) {
    absl::StatusOr<std::string> path =
        MaterializeScript(absl::StrCat(scratch_dir_, "/scripts"), task.recipe().test_script());
    if (!path.ok()) {
      result.set_infra_error(std::string(path.status().message()));
      return result;
    }
    ctx.test_program = *path;
  }

  std::unique_ptr<ProcessContainer> container =
      ProcessContainer::Create(task.task_id(), containment_);
  if (!container->is_cgroup()) {
    static std::once_flag logged;
    std::call_once(logged, [&] {
      FARM_LOG(Info) << "tasks are contained by process group and environment, not a cgroup: "
                     << container->fallback_reason();
    });
  }
  control->SetContainer(container.get());
  const std::vector<std::unique_ptr<Step>> steps = MakePipeline(task);
  AttemptFn attempt = [&](bool pristine) { return RunPipeline(steps, ctx, pristine, on_phase); };
  attempt = WithPristineRetry(WithDiskFullCheck(std::move(attempt), ctx), ctx);
  Attempt a = attempt(/*pristine=*/false);
  control->SetContainer(nullptr);
  container.reset();  // kills what is left of the task, the boot's and build's processes too
  out.Finish();
  // A cancel that arrived while the attempt was being judged still wins: the coordinator asked.
  if (control->cancelled()) a.outcome = StepOutcome::Cancelled();
  return ToTaskResult(task.task_id(), a);
}

}  // namespace farm
