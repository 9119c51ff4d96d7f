// Leases that know about reboots: a kexec agent announces a reboot into a task's host kernel; the
// task is not requeued until the boot deadline; a machine not back by then is power-cycled once
// (it comes back in its default kernel and its agent reports the task: "host kernel did not
// boot"); a machine still not back after that is an infrastructure error and is quarantined.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "coordinator/engine/report_text.h"
#include "coordinator/scheduler/coordinator.h"

namespace farm {

void Coordinator::OnKexecAnnounceLocked(Session& session, const v1::KexecAnnounce& announce) {
  auto it = tasks_.find(announce.task_id());
  if (it == tasks_.end() || it->second.session != session.id ||
      it->second.state != v1::TASK_RUNNING) {
    return;  // not its task (any more): no ack, the agent reboots at its own risk
  }
  Task& t = it->second;
  t.in_kexec = true;
  t.power_cycled = false;
  t.kexec_release = announce.host_kernel_release();
  t.boot_deadline = std::clamp(absl::Seconds(announce.boot_deadline_seconds()), options_.lease,
                               options_.max_boot_deadline);
  t.lease_expiry = Now() + t.boot_deadline;
  v1::CoordinatorMessage ack;
  ack.mutable_kexec_ack()->set_task_id(t.id);
  session.channel->Send(ack);
  Job& job = jobs_[t.job_id];
  EmitLocked(job, absl::StrCat(t.agent_id, " reboots into host kernel ", t.kexec_release, " for ",
                               ShortSha(job.graph ? job.graph->Hex(t.commit) : ""),
                               " (back within ", absl::FormatDuration(t.boot_deadline), ")"));
}

bool Coordinator::ExpireKexecLeaseLocked(Task& t, absl::Time now,
                                         std::vector<std::pair<uint64_t, v1::TaskResult>>& failed) {
  if (!t.in_kexec) return false;
  Job& job = jobs_[t.job_id];
  const std::string sha = ShortSha(job.graph ? job.graph->Hex(t.commit) : "");
  if (!t.power_cycled && options_.power && options_.power->Has(t.agent_id)) {
    t.power_cycled = true;
    t.lease_expiry = now + t.boot_deadline;
    options_.power->Cycle(t.agent_id);
    FARM_LOG(Warning) << "agent " << t.agent_id << " is not back from its kexec into "
                      << t.kexec_release << ": power-cycling it";
    EmitLocked(job, absl::StrCat(sha, ": ", t.agent_id, " is not back from its kexec into ",
                                 t.kexec_release, " after ", absl::FormatDuration(t.boot_deadline),
                                 "; power-cycled"));
    return true;
  }
  const std::string error = t.power_cycled
                                ? absl::StrCat("the machine of agent ", t.agent_id,
                                               " did not come back from its kexec "
                                               "into ",
                                               t.kexec_release, " even after a power cycle")
                                : absl::StrCat("the machine of agent ", t.agent_id,
                                               " did not come back from its kexec "
                                               "into ",
                                               t.kexec_release,
                                               " and has no power command (give one in "
                                               "farm-coordinator --power-commands)");
  agents_.Quarantine(t.agent_id, error, now);
  ++metrics_.quarantines;
  FARM_LOG(Warning) << "agent " << t.agent_id << " quarantined: " << error;
  t.in_kexec = false;
  v1::TaskResult result;
  result.set_task_id(t.id);
  result.set_infra_error(error);
  failed.emplace_back(t.session, result);
  return true;
}

}  // namespace farm
