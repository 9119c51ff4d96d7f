#include "agent/kexec/kexec_task.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "common/status_macros.h"

namespace farm::kexec {
namespace {

namespace v1 = farm::v1;

std::string KernelName(const v1::HostKernel& k) {
  return k.label().empty() ? k.image() : k.label();
}

v1::TaskResult InfraError(const std::string& task_id, const std::string& error) {
  v1::TaskResult r;
  r.set_task_id(task_id);
  r.set_infra_error(error);
  return r;
}

// "host kernel did not boot" is a verdict about the kernel, not about the machine.
v1::TaskResult DidNotBoot(const v1::Assign& assign, const std::string& release,
                          const std::string& why) {
  v1::TaskResult r;
  r.set_task_id(assign.task_id());
  r.set_host_boot_failed(true);
  r.set_host_kernel_release(release);
  r.set_verdict(assign.host_kernel().bad_on_host_boot() ? v1::BAD : v1::SKIP);
  r.set_detail(
      absl::StrCat("host kernel did not boot: ", KernelName(assign.host_kernel()), ": ", why));
  return r;
}

}  // namespace

v1::Assign WithoutHostKernel(v1::Assign assign) {
  assign.clear_host_kernel();
  return assign;
}

KexecTask::KexecTask(HostMachine* machine, KexecOptions options)
    : machine_(machine), options_(std::move(options)) {}

absl::Status KexecTask::Write(const v1::KexecJournal& journal) {
  // Written whole and renamed, then synced: a power cut leaves the old journal or the new one.
  std::error_code ec;
  std::filesystem::path path(options_.journal_path);
  std::filesystem::create_directories(path.parent_path(), ec);
  const std::string tmp = options_.journal_path + ".tmp";
  std::string data;
  journal.SerializeToString(&data);
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  bool ok = fd >= 0 && write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) &&
            fsync(fd) == 0;
  if (fd >= 0) close(fd);
  ok = ok && rename(tmp.c_str(), options_.journal_path.c_str()) == 0;
  if (ok) {
    int dir = open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
      fsync(dir);
      close(dir);
    }
  }
  if (!ok) {
    return absl::InternalError(absl::StrCat("cannot write the kexec journal ",
                                            options_.journal_path, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

KexecStep KexecTask::Begin(const v1::Assign& assign) {
  v1::KexecJournal journal;
  *journal.mutable_assign() = assign;
  const v1::HostKernel& kernel = assign.host_kernel();
  if (!kernel.image().empty() || kernel.commit().empty() || options_.builder == nullptr) {
    return Stage(std::move(journal));
  }
  journal.set_stage(v1::KexecJournal::BUILDING);
  journal.set_boot_id(machine_->BootId());
  if (absl::Status st = Write(journal); !st.ok()) {
    return Report(journal, InfraError(assign.task_id(), std::string(st.message())));
  }
  KexecStep step;
  step.kind = KexecStep::Kind::kBuild;
  step.assign = assign;
  return step;
}

KexecStep KexecTask::Build(const std::function<void(std::string_view)>& on_output,
                           TaskControl* control) {
  absl::StatusOr<v1::KexecJournal> read = Read();
  if (!read.ok()) {
    KexecStep step;
    step.result = InfraError("", std::string(read.status().message()));
    return step;
  }
  v1::KexecJournal journal = std::move(*read);
  const v1::Assign assign = journal.assign();
  const v1::HostKernel& kernel = assign.host_kernel();
  if (journal.build_attempts() >= options_.max_attempts) {
    return Report(
        journal,
        InfraError(assign.task_id(),
                   absl::StrCat("the machine restarted ", journal.build_attempts(),
                                " times while it built host kernel ", KernelName(kernel))));
  }
  journal.set_build_attempts(journal.build_attempts() + 1);
  if (absl::Status st = Write(journal); !st.ok()) {
    return Report(journal, InfraError(assign.task_id(), std::string(st.message())));
  }
  absl::StatusOr<HostKernelBuild> built = options_.builder->Build(kernel, on_output, control);
  if (!built.ok()) {
    return Report(journal, InfraError(assign.task_id(), std::string(built.status().message())));
  }
  if (!built->built) {
    // As a guest kernel that does not build: the revision is untestable, a skip.
    v1::TaskResult r;
    r.set_task_id(assign.task_id());
    r.set_verdict(v1::SKIP);
    r.set_retried_pristine(built->retried_pristine);
    r.set_detail(absl::StrCat("host kernel ", KernelName(kernel), " (", kernel.commit(),
                              ") did not build", built->failure.empty() ? "" : ":\n",
                              built->failure));
    return Report(journal, std::move(r));
  }
  journal.mutable_assign()->mutable_host_kernel()->set_image(built->image);
  return Stage(std::move(journal));
}

KexecStep KexecTask::Stage(v1::KexecJournal journal) {
  const v1::Assign& assign = journal.assign();
  const v1::HostKernel& kernel = assign.host_kernel();
  if (kernel.image().empty()) {
    return Report(journal, InfraError(assign.task_id(),
                                      "the task's host kernel has no image, and this agent "
                                      "builds none from source"));
  }
  absl::StatusOr<std::string> release = BzImageRelease(kernel.image());
  if (!release.ok()) {
    return Report(
        journal,
        absl::IsNotFound(release.status())
            ? InfraError(assign.task_id(), std::string(release.status().message()))
            : DidNotBoot(assign, machine_->Release(), std::string(release.status().message())));
  }
  journal.set_expected_release(*release);
  if (machine_->Release() == *release && journal.attempts() == 0 &&
      CmdlineExtra(machine_->Cmdline()) ==
          CmdlineExtra(absl::StrCat(kExtraMarker, " ", kernel.cmdline()))) {
    // Already there, with the same command line (a previous task kexecked into it): no reboot.
    return Run(std::move(journal));
  }
  if (journal.attempts() >= options_.max_attempts) {
    return Report(journal, InfraError(assign.task_id(),
                                      absl::StrCat("the machine restarted ", journal.attempts(),
                                                   " times before it could run the task under ",
                                                   KernelName(kernel))));
  }
  journal.set_attempts(journal.attempts() + 1);
  journal.set_stage(v1::KexecJournal::STAGING);
  journal.set_boot_id(machine_->BootId());
  if (absl::Status st = Write(journal); !st.ok()) {
    return Report(journal, InfraError(assign.task_id(), std::string(st.message())));
  }
  const std::string base =
      options_.base_cmdline.empty() ? machine_->Cmdline() : options_.base_cmdline;
  absl::Status loaded = machine_->Load(
      kernel.image(), kernel.initrd().empty() ? options_.default_initrd : kernel.initrd(),
      KexecCmdline(base, assign.task_id(), options_.panic_seconds, kernel.cmdline()));
  if (!loaded.ok()) {
    return Report(journal, absl::IsNotFound(loaded)
                               ? InfraError(assign.task_id(), std::string(loaded.message()))
                               : DidNotBoot(assign, machine_->Release(),
                                            absl::StrCat("kexec refused it: ", loaded.message())));
  }
  journal.set_stage(v1::KexecJournal::STAGED);
  if (absl::Status st = Write(journal); !st.ok()) {
    return Report(journal, InfraError(assign.task_id(), std::string(st.message())));
  }
  KexecStep step;
  step.kind = KexecStep::Kind::kSwitch;
  step.assign = assign;
  step.release = *release;
  return step;
}

KexecStep KexecTask::Run(v1::KexecJournal journal) {
  journal.set_stage(v1::KexecJournal::TESTING);
  journal.set_boot_id(machine_->BootId());
  if (absl::Status st = Write(journal); !st.ok()) {
    return Report(journal, InfraError(journal.assign().task_id(), std::string(st.message())));
  }
  if (!options_.host_path.empty() && !journal.assign().host_kernel().key().empty()) {
    // Best effort: without it a reconnect only loses the dispatcher's preference.
    std::ofstream(options_.host_path, std::ios::trunc)
        << machine_->BootId() << " " << journal.assign().host_kernel().key() << "\n";
  }
  KexecStep step;
  step.kind = KexecStep::Kind::kRun;
  step.assign = WithoutHostKernel(journal.assign());
  step.release = journal.expected_release();
  return step;
}

KexecStep KexecTask::Report(v1::KexecJournal journal, v1::TaskResult result) {
  if (result.host_kernel_release().empty()) result.set_host_kernel_release(machine_->Release());
  journal.set_stage(v1::KexecJournal::REPORTING);
  *journal.mutable_result() = result;
  if (absl::Status st = Write(journal); !st.ok()) {
    FARM_LOG(Warning) << st.message() << ": the result is sent but not kept";
  }
  KexecStep step;
  step.kind = KexecStep::Kind::kReport;
  step.assign = journal.assign();
  step.result = std::move(result);
  return step;
}

std::optional<KexecStep> KexecTask::Resume() {
  absl::StatusOr<v1::KexecJournal> read = Read();
  if (!read.ok()) {
    if (!absl::IsNotFound(read.status())) {
      FARM_LOG(Warning) << read.status().message() << ": ignored";
      Delivered();
    }
    return std::nullopt;
  }
  v1::KexecJournal journal = std::move(*read);
  const std::string boot_id = machine_->BootId();
  const bool rebooted = boot_id != journal.boot_id();
  const std::string release = machine_->Release();
  const std::string& task_id = journal.assign().task_id();
  const std::string& expected = journal.expected_release();
  switch (journal.stage()) {
    case v1::KexecJournal::BUILDING: {
      // Stopped or power-cycled during the build: build again (incremental, bounded).
      KexecStep step;
      step.kind = KexecStep::Kind::kBuild;
      step.assign = journal.assign();
      return step;
    }
    case v1::KexecJournal::STAGING:
    case v1::KexecJournal::STAGED:
      // Stopped or power-cycled before the kexec: stage again (bounded by max_attempts).
      return Stage(std::move(journal));
    case v1::KexecJournal::SWITCHING: {
      if (!rebooted) return Stage(std::move(journal));  // the kexec did not happen
      const bool ours = release == expected && TaskOnCmdline(machine_->Cmdline()) == task_id;
      if (ours) return Run(std::move(journal));
      v1::Assign assign = journal.assign();
      return Report(
          std::move(journal),
          DidNotBoot(assign, release,
                     absl::StrCat("the machine came back in ", release, " instead of ", expected,
                                  " (it panicked, hung or never started, and "
                                  "was restarted)")));
    }
    case v1::KexecJournal::TESTING: {
      if (!rebooted) return Run(std::move(journal));  // the agent restarted: test again
      v1::Assign assign = journal.assign();
      return Report(std::move(journal),
                    DidNotBoot(assign, release,
                               absl::StrCat("the machine went down during the test under ",
                                            expected, " and came back in ", release)));
    }
    case v1::KexecJournal::REPORTING: {
      KexecStep step;
      step.kind = KexecStep::Kind::kReport;
      step.assign = journal.assign();
      step.result = journal.result();
      return step;
    }
    default:
      Delivered();
      return std::nullopt;
  }
}

absl::Status KexecTask::Switch() {
  // From here a boot in another kernel than the task's means that the task's kernel failed.
  absl::StatusOr<v1::KexecJournal> journal = Read();
  if (!journal.ok()) return journal.status();
  journal->set_stage(v1::KexecJournal::SWITCHING);
  FARM_RETURN_IF_ERROR(Write(*journal));
  return machine_->Execute();
}

absl::StatusOr<v1::KexecJournal> KexecTask::Read() {
  std::ifstream in(options_.journal_path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("no kexec journal at ", options_.journal_path));
  }
  std::stringstream data;
  data << in.rdbuf();
  v1::KexecJournal journal;
  if (!journal.ParseFromString(data.str()) || journal.assign().task_id().empty()) {
    return absl::DataLossError(
        absl::StrCat("kexec journal ", options_.journal_path, " is unreadable"));
  }
  return journal;
}

void KexecTask::Finished(const v1::TaskResult& result) {
  v1::KexecJournal journal = Read().value_or(v1::KexecJournal());
  v1::TaskResult r = result;
  if (r.host_kernel_release().empty()) r.set_host_kernel_release(machine_->Release());
  Report(std::move(journal), std::move(r));
}

std::string KexecTask::RunningHostKey() {
  std::ifstream in(options_.host_path);
  std::string boot_id, key;
  if (!(in >> boot_id >> key) || boot_id != machine_->BootId()) return "";
  return key;
}

absl::Status KexecTask::ReturnToDefault() {
  if (options_.default_kernel.empty()) {
    return absl::FailedPreconditionError("no default kernel (--kexec-default-kernel) to return to");
  }
  if (Read().ok()) return absl::FailedPreconditionError("a task is in the kexec journal");
  const std::string base =
      options_.base_cmdline.empty() ? machine_->Cmdline() : options_.base_cmdline;
  FARM_RETURN_IF_ERROR(machine_->Load(options_.default_kernel,
                                      options_.default_kernel_initrd.empty()
                                          ? options_.default_initrd
                                          : options_.default_kernel_initrd,
                                      KexecCmdline(base, "", 0, "")));
  return machine_->Execute();
}

void KexecTask::Delivered() {
  std::error_code ec;
  std::filesystem::remove(options_.journal_path, ec);
}

}  // namespace farm::kexec
