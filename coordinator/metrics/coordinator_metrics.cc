#include "coordinator/metrics/coordinator_metrics.h"

namespace farm {

std::string RenderCoordinatorMetrics(const CoordinatorMetrics& c, const CoordinatorGauges& g) {
  MetricsWriter w;
  w.Gauge("farm_jobs_running", "Jobs being bisected now.", g.jobs_running);
  w.Counter("farm_jobs_submitted_total", "Jobs accepted by SubmitBisect.", c.jobs_submitted);
  w.Labeled("counter", "farm_jobs_ended_total", "Jobs ended, by final state.", "state",
            {{"found", c.ended_found},
             {"ambiguous", c.ended_ambiguous},
             {"failed", c.ended_failed},
             {"cancelled", c.ended_cancelled}});
  w.Gauge("farm_agents_connected", "Agents with an open stream.", g.agents_connected);
  w.Gauge("farm_agents_quarantined", "Connected agents in quarantine.", g.agents_quarantined);
  w.Gauge("farm_slots", "Slots of the connected agents.", g.slots);
  w.Gauge("farm_slots_busy", "Slots running a task or waiting for a cancellation to end.",
          g.slots_busy);
  w.Counter("farm_assigns_total", "Tasks started on an agent.", c.assigns);
  w.Labeled("counter", "farm_verdicts_total", "Verdicts received from agents.", "verdict",
            {{"good", c.verdicts_good}, {"bad", c.verdicts_bad}, {"skip", c.verdicts_skip}});
  w.Counter("farm_verdicts_reused_total", "Verdicts taken from an earlier test of the same tree.",
            c.reused);
  w.Counter("farm_infra_errors_total", "Tasks that could not be run (retried elsewhere).",
            c.infra_errors);
  w.Counter("farm_tasks_cancelled_total",
            "Tasks cancelled because a verdict made them pointless "
            "or their job ended.",
            c.cancelled);
  w.Counter("farm_leases_expired_total", "Tasks requeued because their agent went silent.",
            c.leases_expired);
  w.Counter("farm_quarantines_total", "Times an agent was quarantined.", c.quarantines);
  auto latency = [&c](Trigger t) { return &c.assign_latency[static_cast<int>(t)]; };
  w.Histograms("farm_assign_latency_seconds",
               "From the arrival of the call that made a task startable to its Assign being "
               "queued on the agent's stream, including the wait for the coordinator's lock; by "
               "what started it: an agent's message (a result, a cancellation confirmed), an "
               "agent connecting or leaving, a submission, a cancelled job, the lease check, a "
               "restart resuming jobs.",
               "trigger",
               {{"agent_message", latency(Trigger::kAgentMessage)},
                {"connect", latency(Trigger::kConnect)},
                {"disconnect", latency(Trigger::kDisconnect)},
                {"submit", latency(Trigger::kSubmit)},
                {"cancel", latency(Trigger::kCancel)},
                {"lease_check", latency(Trigger::kLeaseCheck)},
                {"resume", latency(Trigger::kResume)}});
  return w.text();
}

}  // namespace farm
