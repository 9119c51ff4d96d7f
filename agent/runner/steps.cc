#include "agent/runner/steps.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "agent/boot/boot_verdict.h"
#include "agent/boot/initramfs.h"
#include "agent/boot/qemu_boot.h"
#include "agent/build/kernel_build.h"
#include "common/log/log.h"
#include "common/subprocess/subprocess.h"
#include "common/verdict.h"

namespace farm {
namespace {

namespace v1 = farm::v1;
using Kind = StepOutcome::Kind;

double Secs(absl::Duration d) { return absl::ToDoubleSeconds(d); }

// Writes "farm: <detail>" to the task's log and returns the outcome.
StepOutcome Said(const TaskContext& task, Kind kind, std::string detail) {
  task.out->Write(absl::StrCat("farm: ", detail, "\n"));
  return StepOutcome::Of(kind, std::move(detail));
}

// The build's output, also scanned for ENOSPC's message.
std::function<void(std::string_view)> BuildOutput(const TaskContext& task, Attempt& a) {
  return [out = task.out, &a](std::string_view d) {
    a.no_space.Feed(d);
    out->Write(d);
  };
}

// Runs one command of a step (`name`: "build", "test") in the worktree, registered with the
// task's control. A command that cannot start is an infrastructure error, or the job's error
// when `program_is_input` and the program itself is at fault (missing, not executable, ...).
absl::StatusOr<SubprocessResult> RunCommand(const char* name, std::vector<std::string> argv,
                                            const TaskContext& task, Attempt& a,
                                            absl::Duration* took,
                                            std::function<void(std::string_view)> on_output) {
  SubprocessOptions opts;
  opts.argv = std::move(argv);
  opts.cwd = a.worktree;
  opts.env = a.env;
  opts.timeout = a.timeout;
  opts.on_output = std::move(on_output);
  opts.container = task.control->container();
  absl::Time start = absl::Now();
  FARM_LOG(Debug) << "task " << task.task->task_id() << ": " << name << " starts";
  absl::StatusOr<std::unique_ptr<Subprocess>> p = Subprocess::Start(std::move(opts));
  if (!p.ok()) return p.status();
  task.control->SetCurrent(p->get());
  SubprocessResult r = (*p)->Wait();
  task.control->SetCurrent(nullptr);
  *took = absl::Now() - start;
  FARM_LOG(Debug) << "task " << task.task->task_id() << ": " << name << " ended";
  task.out->Write(absl::StrFormat("farm: %s: %s (%.2fs)\n", name, r.Describe(), Secs(*took)));
  if (!r.outlived.empty()) {
    task.out->Write(absl::StrCat(
        "farm: ", r.outlived.size(), r.outlived.size() == 1 ? " process" : " processes",
        " outlived the ", name, " and ", r.outlived.size() == 1 ? "was" : "were",
        " killed: ", absl::StrJoin(r.outlived, ", "), "\n"));
  }
  return r;
}

// Where the attempt's commands run, their environment and timeout.
void SetDirectories(const TaskContext& task, Attempt& a, const std::string& worktree,
                    const std::string& build_dir) {
  const v1::Assign& t = *task.task;
  a.worktree = worktree;
  a.build_dir = build_dir;
  a.env = {{"FARM_COMMIT", t.commit()},
           {"FARM_WORKTREE", worktree},
           {"FARM_BUILD_DIR", build_dir},
           {"FARM_JOB", t.job_id()},
           {"FARM_PRISTINE", a.pristine ? "1" : "0"},
           {"FARM_JOBS", absl::StrCat(task.jobs)}};
  for (const auto& [k, v] : t.recipe().env()) a.env.emplace_back(k, v);
  a.timeout = t.recipe().timeout_seconds() > 0 ? absl::Seconds(t.recipe().timeout_seconds())
                                               : absl::InfiniteDuration();
}

// A command that did not exit by itself: cancelled, or an infrastructure error.
StepOutcome NotExited(const char* name, const SubprocessResult& r) {
  if (r.kind == SubprocessResult::Kind::kCancelled) return StepOutcome::Cancelled();
  return StepOutcome::Of(Kind::kInfraError, absl::StrCat(name, " ", r.Describe()));
}

class CheckoutStep : public Step {
 public:
  v1::Phase phase(const Attempt& a) const override {
    return a.pristine ? v1::PRISTINE_RETRY : v1::CHECKOUT;
  }
  StepOutcome Run(const TaskContext& task, Attempt& a) const override {
    const v1::Assign& t = *task.task;
    absl::Time t0 = absl::Now();
    if (!t.revert_culprit().empty()) {
      absl::Status made =
          task.workspace->MakeRevert(t.repo(), t.commit(), t.revert_culprit(), t.revert_head());
      if (!made.ok()) {
        return Said(task, Kind::kInfraError,
                    absl::StrCat("making the revert ", t.commit(), " failed: ", made.message()));
      }
    }
    absl::StatusOr<CheckoutResult> co =
        task.workspace->Checkout(task.slot, t.repo(), t.commit(), a.pristine,
                                 [control = task.control] { return control->cancelled(); });
    a.checkout = absl::Now() - t0;
    FARM_LOG(Debug) << "task " << t.task_id() << ": checkout took " << a.checkout;
    if (absl::IsCancelled(co.status())) return StepOutcome::Cancelled();
    if (!co.ok()) {
      std::string detail =
          absl::StrCat("checkout of ", t.commit(), " failed: ", co.status().message());
      a.no_space.Feed(detail);
      return Said(task, Kind::kInfraError, std::move(detail));
    }
    a.files_written = co->files_written;
    if (!co->mirror_repaired.empty()) {
      task.out->Write(absl::StrCat("farm: the mirror of ", t.repo(), " was damaged (",
                                   co->mirror_repaired, "): it was cloned again\n"));
    }
    task.out->Write(
        absl::StrFormat("farm: checked out %s%s in %s (%d files written, %d removed, %.2fs)\n",
                        t.commit(), a.pristine ? " pristine" : "", co->worktree, co->files_written,
                        co->files_removed, Secs(a.checkout)));
    SetDirectories(task, a, co->worktree, co->build_dir);
    return StepOutcome::Continue();
  }
};

// A health check's stand-in for the checkout (Assign.health_check): no repository, an empty
// directory of its own under the agent's scratch directory.
class HealthCheckDirStep : public Step {
 public:
  v1::Phase phase(const Attempt&) const override { return v1::CHECKOUT; }
  StepOutcome Run(const TaskContext& task, Attempt& a) const override {
    const std::string dir = absl::StrCat(task.scratch_dir, "/health/", task.slot);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    std::filesystem::create_directories(dir, ec);
    if (ec) {
      return Said(
          task, Kind::kInfraError,
          absl::StrCat("cannot make the health check's directory ", dir, ": ", ec.message()));
    }
    SetDirectories(task, a, dir, dir);
    a.env.emplace_back("FARM_HEALTH_CHECK", "1");
    return StepOutcome::Continue();
  }
};

// `/bin/sh -c <build_command>`: exit 0 goes on, anything else is a failed build.
class ShellBuildStep : public Step {
 public:
  v1::Phase phase(const Attempt&) const override { return v1::BUILD; }
  StepOutcome Run(const TaskContext& task, Attempt& a) const override {
    absl::StatusOr<SubprocessResult> r =
        RunCommand("build", {"/bin/sh", "-c", task.task->recipe().build_command()}, task, a,
                   &a.build, BuildOutput(task, a));
    if (!r.ok()) {
      return Said(task, Kind::kInfraError,
                  absl::StrCat("cannot start the build: ", r.status().message()));
    }
    if (r->kind != SubprocessResult::Kind::kExited) return NotExited("build", *r);
    if (r->exit_code != 0) {
      return StepOutcome::Of(Kind::kBuildFailed,
                             absl::StrCat("build failed (exit ", r->exit_code, ")"));
    }
    return StepOutcome::Continue();
  }
};

// A kernel built with agent/build into the slot's build directory; the image is for the boot.
class KernelBuildStep : public Step {
 public:
  v1::Phase phase(const Attempt&) const override { return v1::BUILD; }
  StepOutcome Run(const TaskContext& task, Attempt& a) const override {
    KernelBuildPaths paths;
    paths.source_dir = a.worktree;
    paths.build_dir = a.build_dir;
    paths.ccache_dir = task.ccache_dir;
    // Paths under the base directory are hashed relative to the build directory: a directory
    // holding every worktree that shares this cache lets hits cross slots and agents.
    paths.ccache_base_dir = CommonAncestor(task.scratch_dir, task.ccache_dir);
    absl::Time start = absl::Now();
    v1::KernelBuild spec = task.task->recipe().kernel();
    if (spec.jobs() == 0) spec.set_jobs(static_cast<uint32_t>(task.jobs));
    absl::StatusOr<KernelBuildResult> built =
        BuildKernel(spec, paths, BuildOutput(task, a), task.control, a.timeout);
    a.build = absl::Now() - start;
    // A cancelled build's error says only that it was killed.
    if (task.control->cancelled()) return StepOutcome::Cancelled();
    if (!built.ok()) {
      return Said(task, Kind::kInfraError,
                  absl::StrCat("kernel build: ", built.status().message()));
    }
    v1::KernelBuildStats& stats = a.kernel_build.emplace();
    stats.set_config_seconds(absl::ToDoubleSeconds(built->config_elapsed));
    stats.set_ccache_hits(built->ccache_hits);
    stats.set_ccache_misses(built->ccache_misses);
    stats.set_image_sha256(built->image_sha256);
    task.out->Write(absl::StrFormat(
        "farm: kernel build: %s in %.1fs (ccache %d hits, %d misses)%s%s\n",
        built->built ? "ok" : "FAILED", Secs(a.build), built->ccache_hits, built->ccache_misses,
        built->built ? ", image sha256 " : "", built->image_sha256));
    if (!built->built) {
      if (!built->failure_excerpt.empty()) {
        task.out->Write(absl::StrCat("farm: the build's errors:\n", built->failure_excerpt, "\n"));
      }
      return StepOutcome::Of(Kind::kBuildFailed, "kernel build failed");
    }
    a.kernel_image = built->image;
    return StepOutcome::Continue();
  }
};

// The test command, read with `git bisect run`'s contract (common/verdict.h).
class CommandTestStep : public Step {
 public:
  v1::Phase phase(const Attempt&) const override { return v1::TEST; }
  StepOutcome Run(const TaskContext& task, Attempt& a) const override {
    const auto& test_argv = task.task->recipe().test_argv();
    std::vector<std::string> argv(test_argv.begin(), test_argv.end());
    argv[0] = task.test_program;
    absl::StatusOr<SubprocessResult> r =
        RunCommand("test", std::move(argv), task, a, &a.test,
                   [&task](std::string_view d) { task.out->Write(d); });
    if (!r.ok()) {
      // The same program fails the same way on every agent: the job's error, not this agent's.
      if (IsProgramError(r.status())) {
        return Said(task, Kind::kJobError,
                    absl::StrCat("the test cannot start: ", r.status().message()));
      }
      return Said(task, Kind::kInfraError,
                  absl::StrCat("cannot start the test: ", r.status().message()));
    }
    if (r->kind != SubprocessResult::Kind::kExited) return NotExited("test", *r);
    std::optional<v1::Verdict> v = VerdictForExitCode(r->exit_code);
    if (!v) {
      return StepOutcome::Of(
          Kind::kInfraError,
          absl::StrCat("test exited ", r->exit_code,
                       ": above 127 is not a verdict (git bisect run would abort)"));
    }
    return StepOutcome::Verdict(*v, absl::StrCat("exit ", r->exit_code));
  }
};

// Boots the built (or named) kernel with the payload and reads the verdict from the console.
class BootTestStep : public Step {
 public:
  v1::Phase phase(const Attempt&) const override { return v1::TEST; }
  StepOutcome Run(const TaskContext& task, Attempt& a) const override {
    const v1::BootSpec& spec = task.task->recipe().boot();
    std::string image = a.kernel_image;
    if (!spec.kernel_image().empty()) {
      image = spec.kernel_image()[0] == '/' ? spec.kernel_image()
                                            : absl::StrCat(a.worktree, "/", spec.kernel_image());
    }
    absl::Time start = absl::Now();
    if (image.empty()) {
      return StepOutcome::Of(Kind::kInfraError,
                             "no kernel to boot: the job neither builds one nor names an image");
    }
    absl::StatusOr<std::string> initramfs =
        boot::BuildInitramfs(spec, absl::StrCat(task.scratch_dir, "/initramfs"));
    if (!initramfs.ok()) {
      return Said(task, Kind::kInfraError,
                  absl::StrCat("initramfs: ", initramfs.status().message()));
    }
    boot::BootRequest req;
    req.kernel = image;
    req.initramfs = *initramfs;
    req.spec = spec;
    req.accel = spec.accel().empty() ? "auto" : spec.accel();
    req.on_console = [out = task.out](std::string_view d) { out->Write(d); };
    req.control = task.control;
    req.kernel_cache_dir = absl::StrCat(task.scratch_dir, "/kernels");
    boot::BootResult result = boot::Boot(req);
    a.test = absl::Now() - start;
    task.out->Write(absl::StrCat("\nfarm: boot: ", result.Summary(), "\n"));
    if (!result.pvh && !result.entry_note.empty()) {
      task.out->Write(absl::StrCat(
          "farm: boot: the image as given, not through PVH: ", result.entry_note, "\n"));
    }
    // Why it did not pass (the crash report, the last console lines, qemu's errors), in the log.
    if (result.outcome != boot::BootOutcome::kPassed && !result.detail.empty()) {
      task.out->Write(absl::StrCat("farm: boot detail:\n", result.detail, "\n"));
    }
    if (result.outcome == boot::BootOutcome::kCancelled) return StepOutcome::Cancelled();
    boot::BootVerdict v = boot::DecideVerdict(result, spec);
    if (v.verdict) return StepOutcome::Verdict(*v.verdict, v.detail);
    return Said(task, Kind::kInfraError, v.infra_error);
  }
};

}  // namespace

std::vector<std::unique_ptr<Step>> MakePipeline(const v1::Assign& task) {
  const v1::Recipe& recipe = task.recipe();
  std::vector<std::unique_ptr<Step>> steps;
  if (task.health_check()) {
    steps.push_back(std::make_unique<HealthCheckDirStep>());
  } else {
    steps.push_back(std::make_unique<CheckoutStep>());
  }
  if (recipe.has_kernel()) {
    steps.push_back(std::make_unique<KernelBuildStep>());
  } else if (!recipe.build_command().empty()) {
    steps.push_back(std::make_unique<ShellBuildStep>());
  }
  if (recipe.has_boot()) {
    steps.push_back(std::make_unique<BootTestStep>());
  } else {
    steps.push_back(std::make_unique<CommandTestStep>());
  }
  return steps;
}

Attempt RunPipeline(const std::vector<std::unique_ptr<Step>>& steps, const TaskContext& task,
                    bool pristine, const std::function<void(v1::Phase)>& on_phase) {
  Attempt a;
  a.pristine = pristine;
  for (size_t i = 0; i < steps.size(); ++i) {
    // The checkout always runs (as it did before steps): a cancel is seen between steps.
    if (i > 0 && task.control->cancelled()) {
      a.outcome = StepOutcome::Cancelled();
      return a;
    }
    on_phase(steps[i]->phase(a));
    a.outcome = steps[i]->Run(task, a);
    if (a.outcome.kind != Kind::kContinue) break;
  }
  if (a.outcome.kind == Kind::kContinue) {
    a.outcome = StepOutcome::Of(Kind::kInfraError, "the task's steps ended without a verdict");
  }
  if (task.control->cancelled()) a.outcome = StepOutcome::Cancelled();
  return a;
}

}  // namespace farm
