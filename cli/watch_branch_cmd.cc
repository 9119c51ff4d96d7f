// farm watch-branch / monitors / regressions / unwatch: the coordinator's branch monitors
// (coordinator/monitor). Exit codes: 0 done; 2 a bad flag, an unknown branch or monitor (the
// message says what to give); 5 the coordinator is unreachable.
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "cli/commands.h"
#include "cli/render.h"

namespace farm {

bool MonitorCommands::parsed() const {
  return watch_branch->parsed() || monitors->parsed() || regressions->parsed() || unwatch->parsed();
}

void AddMonitorCommands(CLI::App& app, MonitorCommands& cmd, ClientFlags& client) {
  cmd.watch_branch = app.add_subcommand(
      "watch-branch",
      "make the coordinator test each new head of a branch, bisect a PASS->FAIL transition by "
      "itself and report the culprit");
  CLI::App* w = cmd.watch_branch;
  BisectFlags& f = cmd.recipe;
  w->add_option("--repo", f.repo, "git repository (a path the coordinator reads, or a URL)")
      ->capture_default_str();
  w->add_option("--branch", cmd.branch, "the branch to watch")->required();
  w->add_option("--every", cmd.every, "how often to look for a new head (30s, 10m, 1h)")
      ->capture_default_str();
  w->add_option("--build", f.build, "shell command run in the worktree before the test");
  w->add_option("--timeout", f.timeout, "seconds per build and per test (default 3600)");
  w->add_option("--description", f.description, "free text shown in listings");
  w->add_option("--require", f.require, "KEY=VALUE label an agent must have (repeatable)");
  w->add_option("--notify-webhook", cmd.webhooks,
                "http:// URL that gets a JSON POST per regression report (repeatable)");
  w->add_option("--notify-email", cmd.emails, "the owner's address: gets every report");
  w->add_option("--subscribe", cmd.subscribe,
                "PATH=ADDR: ADDR gets the reports whose culprit touches a file under PATH");
  AddKernelFlags(w, f.kernel);
  w->add_option("command", f.command, "the test command and its arguments (after --)");
  AddCoordinatorFlag(w, client);

  cmd.monitors = app.add_subcommand("monitors", "list the branch monitors and their history");
  AddCoordinatorFlag(cmd.monitors, client);
  cmd.regressions = app.add_subcommand("regressions", "list the regressions monitors found");
  cmd.regressions->add_option("monitor", cmd.monitor_id, "only this monitor's");
  AddCoordinatorFlag(cmd.regressions, client);
  cmd.unwatch = app.add_subcommand("unwatch", "stop and delete a branch monitor");
  cmd.unwatch->add_option("monitor", cmd.monitor_id, "monitor id (see `farm monitors`)")
      ->required();
  AddCoordinatorFlag(cmd.unwatch, client);
}

namespace {

// The monitor the flags describe, checked as `farm submit` checks its recipe.
absl::StatusOr<v1::Monitor> MakeMonitor(MonitorCommands& cmd) {
  v1::Monitor m;
  absl::Duration every;
  if (!absl::ParseDuration(cmd.every, &every) || every < absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--every '", cmd.every, "' is not a duration of at least 1s (e.g. 10m)"));
  }
  BisectFlags f = cmd.recipe;
  f.good = {cmd.branch};  // MakeSpec wants a range; the monitor makes its own
  f.bad = cmd.branch;
  absl::StatusOr<v1::BisectSpec> spec = MakeSpec(f, /*repo_must_be_local=*/false);
  if (!spec.ok()) return spec.status();
  m.set_repo(spec->repo());
  m.set_branch(cmd.branch);
  m.set_every_seconds(static_cast<uint32_t>(absl::ToInt64Seconds(every)));
  *m.mutable_job()->mutable_recipe() = spec->recipe();
  *m.mutable_job()->mutable_require() = spec->require();
  m.mutable_job()->set_description(spec->description());
  for (const std::string& u : cmd.webhooks) m.add_notify_webhooks(u);
  for (const std::string& e : cmd.emails) m.add_notify_emails(e);
  for (const std::string& s : cmd.subscribe) {
    size_t eq = s.rfind('=');
    if (eq == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--subscribe '", s, "': expected PATH=ADDR (e.g. net/=me@lab.org)"));
    }
    v1::Subscription* sub = m.add_subscribers();
    sub->set_path(s.substr(0, eq));
    sub->set_address(s.substr(eq + 1));
  }
  return m;
}

const char* VerdictWord(v1::Verdict v) {
  return v == v1::GOOD ? "PASS" : v == v1::BAD ? "FAIL" : "SKIP";
}

std::string Short(const std::string& sha) { return sha.substr(0, 12); }

}  // namespace

int RunMonitorCommand(MonitorCommands& cmd, const ClientFlags& client) {
  absl::StatusOr<v1::Monitor> made;
  if (cmd.watch_branch->parsed()) {
    made = MakeMonitor(cmd);
    if (!made.ok()) return Fail(made.status());
  }
  absl::StatusOr<Connection> c = Connect(client, nullptr);
  if (!c.ok()) return Fail(c.status());
  if (cmd.watch_branch->parsed()) {
    absl::StatusOr<v1::Monitor> m = c->client->WatchBranch(*made);
    if (!m.ok()) return Fail(m.status());
    std::printf("monitor %s: %s %s every %us\n", m->monitor_id().c_str(),
                Printable(m->repo()).c_str(), Printable(m->branch()).c_str(), m->every_seconds());
    return 0;
  }
  if (cmd.unwatch->parsed()) {
    absl::Status st = c->client->Unwatch(cmd.monitor_id);
    if (!st.ok()) return Fail(st);
    std::printf("monitor %s removed\n", cmd.monitor_id.c_str());
    return 0;
  }
  if (cmd.monitors->parsed()) {
    absl::StatusOr<std::vector<v1::Monitor>> ms = c->client->ListMonitors();
    if (!ms.ok()) return Fail(ms.status());
    if (ms->empty()) std::printf("no monitors (farm watch-branch adds one)\n");
    for (const v1::Monitor& m : *ms) {
      std::printf("monitor %s: %s %s every %us", m.monitor_id().c_str(),
                  Printable(m.repo()).c_str(), Printable(m.branch()).c_str(), m.every_seconds());
      if (!m.probe_job().empty()) std::printf(", testing (job %s)", m.probe_job().c_str());
      if (!m.open_regression().empty()) {
        std::printf(", regression %s open", m.open_regression().c_str());
      }
      std::printf("\n");
      if (!m.error().empty()) std::printf("  error: %s\n", Printable(m.error()).c_str());
      int from = std::max(0, m.history_size() - 10);
      for (int i = from; i < m.history_size(); ++i) {
        const v1::MonitorRun& r = m.history(i);
        std::printf("  %s %s (job %s)\n", Short(r.commit()).c_str(), VerdictWord(r.verdict()),
                    r.job_id().c_str());
      }
    }
    return 0;
  }
  absl::StatusOr<std::vector<v1::Regression>> rs = c->client->ListRegressions(cmd.monitor_id);
  if (!rs.ok()) return Fail(rs.status());
  if (rs->empty()) std::printf("no regressions\n");
  for (const v1::Regression& r : *rs) {
    std::printf("regression %s (monitor %s, %s): %s..%s %s, bisect job %s %s",
                r.regression_id().c_str(), r.monitor_id().c_str(), Printable(r.branch()).c_str(),
                Short(r.last_pass()).c_str(), Short(r.first_fail()).c_str(),
                r.state() == v1::REGRESSION_CLOSED ? "closed" : "open",
                r.bisect_job().empty() ? "-" : r.bisect_job().c_str(), StateName(r.bisect_state()));
    if (!r.culprits().empty()) {
      std::printf(", culprit %s",
                  absl::StrJoin(r.culprits(), " ", [](std::string* o, const std::string& s) {
                    o->append(Short(s));
                  }).c_str());
    }
    if (!r.fixed_by().empty()) std::printf(", fixed by %s", Short(r.fixed_by()).c_str());
    std::printf("\n");
    if (r.verification() != v1::VERIFICATION_NONE) {
      std::printf("  verification: %s: %s\n", VerificationWord(r.verification()).c_str(),
                  Printable(r.verification_reason()).c_str());
    }
    if (!r.notified().empty()) {
      std::printf("  reported to %s\n", Printable(absl::StrJoin(r.notified(), ", ")).c_str());
    }
    if (!r.error().empty()) std::printf("  error: %s\n", Printable(r.error()).c_str());
  }
  return 0;
}

}  // namespace farm
