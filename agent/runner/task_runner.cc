#include "agent/runner/task_runner.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/boot/boot_verdict.h"
#include "agent/boot/initramfs.h"
#include "agent/boot/qemu_boot.h"
#include "agent/build/kernel_build.h"
#include "agent/workspace/disk_space.h"
#include "common/verdict.h"

namespace farm {
namespace {

namespace v1 = farm::v1;

double Secs(absl::Duration d) { return absl::ToDoubleSeconds(d); }

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

void OutputLimiter::Write(std::string_view data) {
  total_ += data.size();
  if (head_sent_ < head_) {
    size_t n = std::min<uint64_t>(head_ - head_sent_, data.size());
    sink_(data.substr(0, n));
    head_sent_ += n;
    data.remove_prefix(n);
  }
  if (tail_ == 0) return;
  if (ring_.size() != tail_) ring_.resize(tail_);
  after_head_ += data.size();
  if (data.size() > tail_) data.remove_prefix(data.size() - tail_);
  while (!data.empty()) {
    size_t n = std::min(data.size(), tail_ - ring_pos_);
    std::memcpy(&ring_[ring_pos_], data.data(), n);
    ring_pos_ = (ring_pos_ + n) % tail_;
    data.remove_prefix(n);
  }
}

void OutputLimiter::Finish() {
  if (after_head_ == 0) return;
  uint64_t kept = std::min<uint64_t>(after_head_, tail_);
  if (after_head_ > kept) {
    sink_(absl::StrFormat("\n[farm: %d bytes of output elided; the first %d and the last %d "
                          "bytes are kept]\n",
                          after_head_ - kept, head_sent_, kept));
  }
  size_t start = (ring_pos_ + tail_ - kept) % tail_;  // oldest kept byte
  std::string tail;
  tail.reserve(kept);
  tail.append(ring_, start, std::min<uint64_t>(kept, tail_ - start));
  if (tail.size() < kept) tail.append(ring_, 0, kept - tail.size());
  sink_(tail);
}

struct TaskRunner::Attempt {
  enum class Outcome { kVerdict, kBuildFailed, kInfra, kCancelled } outcome = Outcome::kInfra;
  v1::Verdict verdict = v1::VERDICT_UNSPECIFIED;
  std::string detail;
  absl::Duration checkout, build, test;
  uint64_t files_written = 0;
  std::optional<v1::KernelBuildStats> kernel_build;
  // ENOSPC's message in what the checkout and the build said (not the test: a test of a
  // program's ENOSPC handling may well print it).
  NoSpaceScanner no_space;
};

void TaskRunner::RunOnce(const v1::Assign& task, int slot, bool pristine,
                         const std::string& test_program, TaskControl* control,
                         const PhaseFn& on_phase, OutputLimiter& out, Attempt& a) {
  using Outcome = Attempt::Outcome;
  on_phase(pristine ? v1::PRISTINE_RETRY : v1::CHECKOUT);
  absl::Time t0 = absl::Now();
  absl::StatusOr<CheckoutResult> co =
      workspace_->Checkout(slot, task.repo(), task.commit(), pristine);
  a.checkout = absl::Now() - t0;
  if (!co.ok()) {
    a.outcome = Outcome::kInfra;
    a.detail = absl::StrCat("checkout of ", task.commit(), " failed: ", co.status().message());
    a.no_space.Feed(a.detail);
    out.Write(absl::StrCat("farm: ", a.detail, "\n"));
    return;
  }
  a.files_written = co->files_written;
  if (!co->mirror_repaired.empty()) {
    out.Write(absl::StrCat("farm: the mirror of ", task.repo(), " was damaged (",
                           co->mirror_repaired, "): it was cloned again\n"));
  }
  out.Write(absl::StrFormat("farm: checked out %s%s in %s (%d files written, %d removed, %.2fs)\n",
                            task.commit(), pristine ? " pristine" : "", co->worktree,
                            co->files_written, co->files_removed, Secs(a.checkout)));

  std::vector<std::pair<std::string, std::string>> env = {
      {"FARM_COMMIT", task.commit()},       {"FARM_WORKTREE", co->worktree},
      {"FARM_BUILD_DIR", co->build_dir},    {"FARM_JOB", task.job_id()},
      {"FARM_PRISTINE", pristine ? "1" : "0"}};
  for (const auto& [k, v] : task.recipe().env()) env.emplace_back(k, v);
  absl::Duration timeout = task.recipe().timeout_seconds() > 0
                               ? absl::Seconds(task.recipe().timeout_seconds())
                               : absl::InfiniteDuration();

  // The build's output, also scanned for ENOSPC's message.
  auto build_output = [&out, &a](std::string_view d) {
    a.no_space.Feed(d);
    out.Write(d);
  };
  // Runs one step; returns its result, or nullopt when it could not start (reported as infra).
  auto step =
      [&](const char* name, std::vector<std::string> argv, absl::Duration* took,
          std::function<void(std::string_view)> on_output) -> std::optional<SubprocessResult> {
    SubprocessOptions opts;
    opts.argv = std::move(argv);
    opts.cwd = co->worktree;
    opts.env = env;
    opts.timeout = timeout;
    opts.on_output = std::move(on_output);
    absl::Time start = absl::Now();
    absl::StatusOr<std::unique_ptr<Subprocess>> p = Subprocess::Start(std::move(opts));
    if (!p.ok()) {
      a.outcome = Outcome::kInfra;
      a.detail = absl::StrCat("cannot start the ", name, ": ", p.status().message());
      out.Write(absl::StrCat("farm: ", a.detail, "\n"));
      return std::nullopt;
    }
    control->SetCurrent(p->get());
    SubprocessResult r = (*p)->Wait();
    control->SetCurrent(nullptr);
    *took = absl::Now() - start;
    out.Write(absl::StrFormat("farm: %s: %s (%.2fs)\n", name, r.Describe(), Secs(*took)));
    return r;
  };
  auto infra_or_cancel = [&](const char* name, const SubprocessResult& r) {
    if (r.kind == SubprocessResult::Kind::kCancelled || control->cancelled()) {
      a.outcome = Outcome::kCancelled;
      a.detail = "cancelled";
    } else {
      a.outcome = Outcome::kInfra;
      a.detail = absl::StrCat(name, " ", r.Describe());
    }
  };

  if (control->cancelled()) {
    a.outcome = Outcome::kCancelled;
    return;
  }
  std::string kernel_image;
  if (task.recipe().has_kernel()) {
    on_phase(v1::BUILD);
    KernelBuildPaths paths;
    paths.source_dir = co->worktree;
    paths.build_dir = co->build_dir;
    paths.ccache_dir = ccache_dir_;
    // Paths under the base directory are hashed relative to the build directory: a directory
    // holding every worktree that shares this cache lets hits cross slots and agents.
    paths.ccache_base_dir = CommonAncestor(scratch_dir_, ccache_dir_);
    absl::Time start = absl::Now();
    absl::StatusOr<KernelBuildResult> built =
        BuildKernel(task.recipe().kernel(), paths, build_output, control, timeout);
    a.build = absl::Now() - start;
    if (control->cancelled()) {
      a.outcome = Outcome::kCancelled;
      return;
    }
    if (!built.ok()) {
      a.outcome = Outcome::kInfra;
      a.detail = absl::StrCat("kernel build: ", built.status().message());
      out.Write(absl::StrCat("farm: ", a.detail, "\n"));
      return;
    }
    v1::KernelBuildStats& stats = a.kernel_build.emplace();
    stats.set_config_seconds(absl::ToDoubleSeconds(built->config_elapsed));
    stats.set_ccache_hits(built->ccache_hits);
    stats.set_ccache_misses(built->ccache_misses);
    stats.set_image_sha256(built->image_sha256);
    out.Write(absl::StrFormat(
        "farm: kernel build: %s in %.1fs (ccache %d hits, %d misses)%s%s\n",
        built->built ? "ok" : "FAILED", Secs(a.build), built->ccache_hits, built->ccache_misses,
        built->built ? ", image sha256 " : "", built->image_sha256));
    if (!built->built) {
      a.outcome = Outcome::kBuildFailed;
      a.detail = "kernel build failed";
      if (!built->failure_excerpt.empty()) {
        out.Write(absl::StrCat("farm: the build's errors:\n", built->failure_excerpt, "\n"));
      }
      return;
    }
    kernel_image = built->image;
  } else if (!task.recipe().build_command().empty()) {
    on_phase(v1::BUILD);
    std::optional<SubprocessResult> r =
        step("build", {"/bin/sh", "-c", task.recipe().build_command()}, &a.build, build_output);
    if (!r) return;
    if (r->kind != SubprocessResult::Kind::kExited) {
      infra_or_cancel("build", *r);
      return;
    }
    if (r->exit_code != 0) {
      a.outcome = Outcome::kBuildFailed;
      a.detail = absl::StrCat("build failed (exit ", r->exit_code, ")");
      return;
    }
  }
  if (control->cancelled()) {
    a.outcome = Outcome::kCancelled;
    return;
  }
  on_phase(v1::TEST);
  if (task.recipe().has_boot()) {
    RunBoot(task, co->worktree, kernel_image, control, out, a);
    return;
  }
  std::vector<std::string> argv(task.recipe().test_argv().begin(), task.recipe().test_argv().end());
  argv[0] = test_program;
  std::optional<SubprocessResult> r =
      step("test", std::move(argv), &a.test, [&out](std::string_view d) { out.Write(d); });
  if (!r) return;
  if (r->kind != SubprocessResult::Kind::kExited) {
    infra_or_cancel("test", *r);
    return;
  }
  std::optional<v1::Verdict> v = VerdictForExitCode(r->exit_code);
  if (!v) {
    a.outcome = Outcome::kInfra;
    a.detail = absl::StrCat("test exited ", r->exit_code,
                            ": above 127 is not a verdict (git bisect run would abort)");
    return;
  }
  a.outcome = Outcome::kVerdict;
  a.verdict = *v;
  a.detail = absl::StrCat("exit ", r->exit_code);
}

void TaskRunner::RunBoot(const v1::Assign& task, const std::string& worktree,
                         const std::string& built_image, TaskControl* control, OutputLimiter& out,
                         Attempt& a) {
  using Outcome = Attempt::Outcome;
  const v1::BootSpec& spec = task.recipe().boot();
  std::string image = built_image;
  if (!spec.kernel_image().empty()) {
    image = spec.kernel_image()[0] == '/' ? spec.kernel_image()
                                          : absl::StrCat(worktree, "/", spec.kernel_image());
  }
  absl::Time start = absl::Now();
  if (image.empty()) {
    a.outcome = Outcome::kInfra;
    a.detail = "no kernel to boot: the job neither builds one nor names an image";
    return;
  }
  absl::StatusOr<std::string> initramfs =
      boot::BuildInitramfs(spec, absl::StrCat(scratch_dir_, "/initramfs"));
  if (!initramfs.ok()) {
    a.outcome = Outcome::kInfra;
    a.detail = absl::StrCat("initramfs: ", initramfs.status().message());
    out.Write(absl::StrCat("farm: ", a.detail, "\n"));
    return;
  }
  boot::BootRequest req;
  req.kernel = image;
  req.initramfs = *initramfs;
  req.spec = spec;
  req.accel = spec.accel().empty() ? "auto" : spec.accel();
  req.on_console = [&out](std::string_view d) { out.Write(d); };
  req.control = control;
  req.kernel_cache_dir = absl::StrCat(scratch_dir_, "/kernels");
  boot::BootResult result = boot::Boot(req);
  a.test = absl::Now() - start;
  out.Write(absl::StrCat("\nfarm: boot: ", result.Summary(), "\n"));
  if (!result.pvh && !result.entry_note.empty()) {
    out.Write(absl::StrCat("farm: boot: the image as given, not through PVH: ", result.entry_note,
                           "\n"));
  }
  // Why it did not pass (the crash report, the last console lines, qemu's errors), in the log.
  if (result.outcome != boot::BootOutcome::kPassed && !result.detail.empty()) {
    out.Write(absl::StrCat("farm: boot detail:\n", result.detail, "\n"));
  }
  if (result.outcome == boot::BootOutcome::kCancelled || control->cancelled()) {
    a.outcome = Outcome::kCancelled;
    return;
  }
  boot::BootVerdict v = boot::DecideVerdict(result, spec);
  if (v.verdict) {
    a.outcome = Outcome::kVerdict;
    a.verdict = *v.verdict;
    a.detail = v.detail;
  } else {
    a.outcome = Outcome::kInfra;
    a.detail = v.infra_error;
    out.Write(absl::StrCat("farm: ", a.detail, "\n"));
  }
}

void TaskRunner::ClassifyDiskFull(int slot, OutputLimiter& out, Attempt& a) {
  using Outcome = Attempt::Outcome;
  std::string what;
  switch (a.outcome) {
    case Outcome::kCancelled:
      return;
    case Outcome::kVerdict:
      if (a.verdict == v1::GOOD) return;  // the test passed: the full disk did not stop it
      what = absl::StrCat("the test said ", a.verdict == v1::BAD ? "bad" : "skip", " (", a.detail,
                          ")");
      break;
    case Outcome::kBuildFailed:
    case Outcome::kInfra:
      what = a.detail;
      break;
  }
  absl::Status full =
      DiskFullError({workspace_->build_path(slot), workspace_->worktree_path(slot), scratch_dir_},
                    a.no_space.seen(), what);
  if (full.ok()) return;
  a.outcome = Outcome::kInfra;
  a.verdict = v1::VERDICT_UNSPECIFIED;
  a.detail = std::string(full.message());
  // What the step left in the slot's build directory is partial, and may be what filled the disk:
  // without it this agent's next task can build, instead of failing the same way until the
  // coordinator quarantines the agent. (Its worktree and mirror stay: they are whole.)
  if (absl::Status emptied = workspace_->EmptyBuildDirectory(slot); emptied.ok()) {
    absl::StatusOr<DiskSpace> now = MeasureDiskSpace(workspace_->build_path(slot));
    absl::StrAppend(&a.detail, " (the slot's build directory was emptied",
                    now.ok() ? absl::StrCat(": ", now->Describe(), " now") : std::string(), ")");
  } else {
    absl::StrAppend(&a.detail, " (emptying the slot's build directory failed too: ",
                    emptied.message(), ")");
  }
  out.Write(absl::StrCat("farm: ", a.detail, "\n"));
}

v1::TaskResult TaskRunner::Run(const v1::Assign& task, int slot, TaskControl* control,
                               const PhaseFn& on_phase, const OutputFn& on_output) {
  using Outcome = Attempt::Outcome;
  v1::TaskResult result;
  result.set_task_id(task.task_id());
  OutputLimiter out(on_output);
  if (task.recipe().test_argv().empty() && !task.recipe().has_boot()) {
    result.set_infra_error("the task has no test command");
    return result;
  }
  std::string program = task.recipe().test_argv().empty() ? "" : task.recipe().test_argv(0);
  if (!task.recipe().test_script().empty()) {
    absl::StatusOr<std::string> path =
        MaterializeScript(absl::StrCat(scratch_dir_, "/scripts"), task.recipe().test_script());
    if (!path.ok()) {
      result.set_infra_error(std::string(path.status().message()));
      return result;
    }
    program = *path;
  }

  Attempt a;
  RunOnce(task, slot, /*pristine=*/false, program, control, on_phase, out, a);
  ClassifyDiskFull(slot, out, a);
  std::string retry_reason;
  if (a.outcome == Outcome::kBuildFailed) retry_reason = a.detail;
  if (a.outcome == Outcome::kVerdict && a.verdict == v1::SKIP) {
    retry_reason = "test exited 125 (skip)";
  }
  absl::Duration checkout = a.checkout, build = a.build, test = a.test;
  uint64_t files = a.files_written;
  if (!retry_reason.empty() && !control->cancelled()) {
    out.Write(absl::StrCat("farm: ", retry_reason,
                           "; retrying once in a pristine worktree before counting a skip\n"));
    result.set_retried_pristine(true);
    result.set_retry_reason(retry_reason);
    a = Attempt();
    RunOnce(task, slot, /*pristine=*/true, program, control, on_phase, out, a);
    ClassifyDiskFull(slot, out, a);
    checkout += a.checkout;
    build += a.build;
    test += a.test;
    files += a.files_written;
  }
  out.Finish();
  result.set_checkout_seconds(Secs(checkout));
  result.set_build_seconds(Secs(build));
  result.set_test_seconds(Secs(test));
  result.set_files_written(files);
  if (a.kernel_build) *result.mutable_kernel_build() = *a.kernel_build;
  result.set_detail(a.detail);
  switch (a.outcome) {
    case Outcome::kVerdict:
      result.set_verdict(a.verdict);
      break;
    case Outcome::kBuildFailed:
      result.set_verdict(v1::SKIP);
      break;
    case Outcome::kInfra:
      result.set_infra_error(a.detail);
      break;
    case Outcome::kCancelled:
      result.set_cancelled(true);
      break;
  }
  if (control->cancelled()) {
    result.set_cancelled(true);
    result.clear_infra_error();
    result.set_verdict(v1::VERDICT_UNSPECIFIED);
  }
  return result;
}

}  // namespace farm
