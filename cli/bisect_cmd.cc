// farm bisect: on this machine (an embedded coordinator and local agents over loopback gRPC), or
// on --coordinator; farm submit: the same job handed to a coordinator, watched with --watch.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "agent/link/agent.h"
#include "agent/workspace/workspace.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/render.h"
#include "common/git/git.h"
#include "common/log/log.h"
#include "common/status_macros.h"

namespace farm {

namespace {

// SIGINT, SIGTERM and SIGHUP, taken by a thread of their own instead of killing the process, so
// that the local job is cancelled and its tests' process groups killed before `farm` exits.
// Construct it before any other thread starts: the mask is inherited.
class Interrupts {
 public:
  Interrupts() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    signal(SIGPIPE, SIG_IGN);
    // The process ends while this thread waits; it owns nothing.
    std::thread([this, set] {
      int sig = 0;
      while (sigwait(&set, &sig) != 0) {
      }
      std::function<void()> fn;
      {
        absl::MutexLock lock(&mu_);
        signo_ = sig;
        fn = std::move(on_signal_);
      }
      if (fn) fn();
      // A second signal: the user does not want to wait for the tests to be stopped.
      int again = 0;
      while (sigwait(&set, &again) != 0) {
      }
      std::fprintf(stderr, "farm: %s again: exiting without waiting for the tests to stop\n",
                   strsignal(again));
      _exit(kExitSignalBase + again);
    }).detach();
  }
  // The signal that arrived, or 0.
  int signo() {
    absl::MutexLock lock(&mu_);
    return signo_;
  }
  // Runs `fn` now if a signal already arrived, else on the signal's thread when one does.
  void OnSignal(std::function<void()> fn) {
    {
      absl::MutexLock lock(&mu_);
      if (signo_ == 0) {
        on_signal_ = std::move(fn);
        return;
      }
    }
    fn();
  }

 private:
  absl::Mutex mu_;
  int signo_ ABSL_GUARDED_BY(mu_) = 0;
  std::function<void()> on_signal_ ABSL_GUARDED_BY(mu_);
};

// Interrupts is a process-wide singleton: the signal mask and the waiting thread cannot be undone.
Interrupts& ProcessInterrupts() {
  static Interrupts* interrupts = new Interrupts();
  return *interrupts;
}

FarmClient::WatchCallbacks ShowingCallbacks(ProgressView* view) {
  FarmClient::WatchCallbacks cb;
  cb.on_event = [view](const v1::JobEvent& ev) { view->Show(ev); };
  cb.on_descend = ShowDescend;
  cb.on_connection = ShowConnection;
  return cb;
}

// A job that an interrupted `farm bisect` left running would be resumed by this one and share its
// agents: end it, and say so.
absl::Status EndInterruptedJobs(FarmClient& client) {
  absl::StatusOr<std::vector<v1::JobStatus>> jobs = client.ListJobs();
  if (!jobs.ok()) return jobs.status();
  for (const v1::JobStatus& j : *jobs) {
    if (j.state() != v1::RUNNING) continue;
    absl::StatusOr<v1::JobStatus> st = client.Cancel(j.job_id());
    if (!st.ok()) return st.status();
    std::fprintf(stderr,
                 "farm: job %s was left running by an interrupted farm bisect; cancelled it "
                 "(farm status %s shows what it found)\n",
                 Printable(j.job_id()).c_str(), Printable(j.job_id()).c_str());
  }
  return absl::OkStatus();
}

// The local job's hints (`farm log JOB COMMIT`) made to name the state, so they work from anywhere.
std::string AddStateToHints(const std::string& state_flag, const std::string& text) {
  return absl::StrReplaceAll(text, {{"`farm log ", absl::StrCat("`farm log ", state_flag, " ")}});
}

void AddStateToHints(const std::string& state_flag, v1::JobStatus* st) {
  st->set_error(AddStateToHints(state_flag, st->error()));
  st->set_report(AddStateToHints(state_flag, st->report()));
}

// What a job does with its candidates: "testing 9 cells" (a matrix), "bisecting 9 cells" (a
// two-dimensional bisect) or "bisecting 120 commits".
std::string JobAction(const v1::BisectSpec& spec, uint32_t candidates) {
  return absl::StrCat(spec.has_matrix() && !spec.matrix().bisect() ? "testing" : "bisecting", " ",
                      candidates, spec.has_matrix() ? " cell" : " commit",
                      candidates == 1 ? "" : "s");
}

// The local mode: an embedded coordinator and `agents` local agents over real gRPC on loopback.
int RunLocalBisect(BisectFlags& f) {
  Interrupts& interrupts = ProcessInterrupts();
  absl::StatusOr<v1::BisectSpec> spec = MakeSpec(f, /*repo_must_be_local=*/true);
  if (!spec.ok()) return Fail(spec.status());
  if (spec->has_matrix()) {
    return Fail(absl::InvalidArgumentError(
        "host kernels need kexec agents (farm-agent --kexec on each host): run with "
        "--coordinator HOST:PORT"));
  }
  if (!f.log_file.empty()) {
    absl::Status writable = CheckWritable(f.log_file, "--log");
    if (!writable.ok()) return Fail(writable);
  }
  {
    absl::StatusOr<GitRepository> repo = OpenRepository(spec->repo());
    if (!repo.ok()) return Fail(repo.status());
  }
  absl::StatusOr<std::string> state_dir = LocalStateDir(spec->repo(), f.workdir);
  if (!state_dir.ok()) return Fail(state_dir.status());
  // How `farm log` and `farm status` find this state from anywhere.
  const std::string state_flag =
      f.workdir.empty() ? absl::StrCat("--repo ", spec->repo())
                        : absl::StrCat("--workdir ", std::filesystem::absolute(f.workdir).string());
  absl::StatusOr<std::unique_ptr<StateLock>> lock = StateLock::ForBisect(*state_dir);
  if (!lock.ok()) return Fail(lock.status());
  int agents = f.agents > 0 ? f.agents : 1;
  FARM_LOG(Debug) << "bisect: state locked";

  absl::StatusOr<std::unique_ptr<CoordinatorServer>> server =
      CoordinatorServer::Start(LocalCoordinatorOptions(*state_dir), "127.0.0.1:0");
  if (!server.ok()) return Fail(server.status(), kExitFailed);
  (*lock)->Publish((*server)->address());
  FarmClient client((*server)->address(), nullptr);
  FARM_LOG(Debug) << "bisect: coordinator up";
  absl::Status ended = EndInterruptedJobs(client);
  if (!ended.ok()) return Fail(ended, kExitFailed);

  // Cold start (issue 14): k agents that each check out a whole tree at once on their first
  // task make the first round cost k checkouts (the disk writes k trees before any test runs).
  // Instead, worktrees are seeded one at a time at the bad commit, and each agent starts as soon
  // as its worktree holds a commit: the first probes run while the later agents' trees are
  // written, and every first task checks out only a diff.
  auto interrupted = [&interrupts] {
    int sig = interrupts.signo();
    std::fprintf(stderr, "farm: interrupted (%s)\n", strsignal(sig));
    return kExitSignalBase + sig;
  };
  std::vector<std::unique_ptr<Workspace>> workspaces;
  std::vector<int> cold;  // agents (1-based) whose worktree holds no commit of the repository
  for (int i = 1; i <= agents; ++i) {
    absl::StatusOr<std::unique_ptr<Workspace>> ws =
        Workspace::Open(absl::StrCat(*state_dir, "/agents/", i));
    if (!ws.ok()) return Fail(ws.status(), kExitFailed);
    if (!(*ws)->HasWorktree(/*slot=*/0, spec->repo())) cold.push_back(i);
    workspaces.push_back(std::move(*ws));
  }
  absl::Mutex agents_mu;
  std::vector<std::unique_ptr<Agent>> local_agents;
  std::vector<std::thread> threads;
  // The local agents run on one machine: their builds share its cores (FARM_JOBS).
  auto cores = std::make_shared<CoreShare>(CoreShare::MachineCores());
  auto start_agent = [&](int i) -> absl::Status {
    AgentOptions aopts;
    aopts.core_share = cores;
    aopts.coordinator = (*server)->address();
    aopts.workdir = absl::StrCat(*state_dir, "/agents/", i);
    aopts.ccache_dir = *state_dir + "/ccache";  // one cache: one agent's compile is another's hit
    aopts.agent_id = absl::StrCat("local-", i);
    FARM_ASSIGN_OR_RETURN(std::unique_ptr<Agent> a, Agent::Create(aopts));
    absl::MutexLock lock(&agents_mu);
    threads.emplace_back([p = a.get()] { p->Run(); });
    local_agents.push_back(std::move(a));
    return absl::OkStatus();
  };
  std::atomic<bool> stop_seeding{false};
  auto seed = [&](int i) {
    absl::StatusOr<bool> seeded = workspaces[i - 1]->SeedWorktree(
        /*slot=*/0, spec->repo(), spec->bad(),
        [&] { return stop_seeding.load() || interrupts.signo() != 0; });
    if (!seeded.ok() && !absl::IsCancelled(seeded.status())) {
      std::fprintf(stderr, "farm: agent %d's worktree will be checked out by its first task: %s\n",
                   i, std::string(seeded.status().message()).c_str());
    }
  };
  // Agents with a worktree start at once; with none, the first one is seeded first (the one
  // checkout the first round cannot avoid), then the others join as their trees are written.
  // When that first seed shows seeding to be quick (a small tree), more agents are seeded before
  // the job starts, so that the first round is planned for them too.
  constexpr absl::Duration kQuickSeeding = absl::Milliseconds(500);
  constexpr absl::Duration kSeedSerially = absl::Seconds(5);
  size_t next_cold = 0;
  if (cold.size() == static_cast<size_t>(agents)) {
    const absl::Time start = absl::Now();
    seed(cold[next_cold++]);
    const absl::Duration one = absl::Now() - start;
    while (next_cold < cold.size() && absl::Now() - start + one < kQuickSeeding &&
           interrupts.signo() == 0) {
      seed(cold[next_cold++]);
    }
    if (interrupts.signo() != 0) {
      (*server)->Shutdown(absl::Milliseconds(500));
      return interrupted();
    }
    // A tree that seeds in a few seconds (3,000 files: about 1 s) is written faster by every
    // agent's first task at once than one tree at a time (measured: 8 agents, 3,000-commit repo,
    // 6.7 s against 9.5 s, and only 4 agents ever joined): the other agents start now and check
    // out on their first task. Serial seeding pays on trees like Linux's (20-40 s each here).
    if (one < kSeedSerially) next_cold = cold.size();
  }
  std::thread seeder;
  // Stops the seeding and the agents (their running tests' process groups are killed) and waits
  // for them.
  auto stop_all = [&] {
    stop_seeding = true;
    if (seeder.joinable()) seeder.join();
    for (auto& a : local_agents) a->Stop();
    for (auto& t : threads) t.join();
    threads.clear();
    local_agents.clear();
    (*server)->Shutdown(absl::Milliseconds(500));
  };

  absl::flat_hash_set<int> later(cold.begin() + next_cold, cold.end());
  for (int i = 1; i <= agents; ++i) {
    if (later.contains(i)) continue;
    if (absl::Status started = start_agent(i); !started.ok()) {
      stop_all();
      return Fail(started, kExitFailed);
    }
  }
  const size_t ready_at_start = static_cast<size_t>(agents) - later.size();
  seeder = std::thread([&, rest = std::vector<int>(cold.begin() + next_cold, cold.end())] {
    for (int i : rest) {
      if (stop_seeding.load()) return;
      seed(i);
      if (stop_seeding.load()) return;
      if (absl::Status started = start_agent(i); !started.ok()) {
        std::fprintf(stderr, "farm: agent %d did not start: %s\n", i,
                     std::string(started.message()).c_str());
      }
    }
  });
  // Start with every ready agent connected, so that the first plan uses them all.
  absl::Time agents_deadline = absl::Now() + absl::Seconds(30);
  while (!(*server)->core()->AwaitAgents(ready_at_start, absl::Milliseconds(200))) {
    if (interrupts.signo() != 0) {
      stop_all();
      return interrupted();
    }
    if (absl::Now() > agents_deadline) {
      stop_all();
      return Fail(absl::UnavailableError("the local agents did not connect within 30 s"),
                  kExitFailed);
    }
  }
  FARM_LOG(Debug) << "bisect: " << ready_at_start << " agents connected";
  absl::StatusOr<v1::SubmitBisectResponse> resp = client.Submit(*spec);
  FARM_LOG(Debug) << "bisect: submitted";
  if (!resp.ok()) {
    stop_all();
    return Fail(resp.status());
  }
  const std::string job_id = resp->job_id();
  // From here a signal cancels the job: the coordinator stops its tasks, the watch below sees it
  // end, and stop_all waits for the tests' process groups to be killed.
  interrupts.OnSignal([&client, job_id] { client.Cancel(job_id).IgnoreError(); });
  std::printf("%s with %d local agent%s (job %s, state in %s)\n",
              JobAction(*spec, resp->status().candidates()).c_str(), agents, agents == 1 ? "" : "s",
              job_id.c_str(), Printable(*state_dir).c_str());
  std::fflush(stdout);
  ProgressView view;
  FarmClient::WatchCallbacks callbacks = ShowingCallbacks(&view);
  callbacks.on_event = [&view, &state_flag](const v1::JobEvent& ev) {
    v1::JobEvent shown = ev;
    shown.set_message(AddStateToHints(state_flag, ev.message()));
    AddStateToHints(state_flag, shown.mutable_status());
    view.Show(shown);
  };
  absl::StatusOr<v1::JobStatus> final = client.WatchUntilDone(job_id, callbacks);
  FARM_LOG(Debug) << "bisect: job ended";
  stop_all();
  FARM_LOG(Debug) << "bisect: agents stopped";
  if (!final.ok()) return Fail(final.status(), kExitFailed);
  std::string log_file =
      f.log_file.empty() ? absl::StrCat(*state_dir, "/bisect-", job_id, ".log") : f.log_file;
  AddStateToHints(state_flag, &*final);
  PrintReport(*final, log_file);
  if (interrupts.signo() != 0) return interrupted();
  return ExitCodeForJob(*final);
}

int RunRemoteBisect(const BisectCommand& cmd, const ClientFlags& client) {
  absl::StatusOr<Connection> c = Connect(client, nullptr);
  if (!c.ok()) return Fail(c.status());
  absl::StatusOr<v1::BisectSpec> spec = MakeSpec(cmd.flags, /*repo_must_be_local=*/false);
  if (!spec.ok()) return Fail(spec.status());
  const bool watch = !cmd.submit || cmd.watch;
  if (watch && !cmd.flags.log_file.empty()) {
    absl::Status writable = CheckWritable(cmd.flags.log_file, "--log");
    if (!writable.ok()) return Fail(writable);
  }
  absl::StatusOr<v1::SubmitBisectResponse> resp = c->client->Submit(*spec);
  if (!resp.ok()) return Fail(resp.status());
  if (!watch) {
    std::printf("%s\n", resp->job_id().c_str());
    return 0;
  }
  std::printf("job %s: %s on %s\n", resp->job_id().c_str(),
              JobAction(*spec, resp->status().candidates()).c_str(), client.coordinator.c_str());
  ProgressView view;
  absl::StatusOr<v1::JobStatus> final =
      c->client->WatchUntilDone(resp->job_id(), ShowingCallbacks(&view));
  if (!final.ok()) return Fail(final.status());
  PrintReport(*final, cmd.flags.log_file);
  return ExitCodeForJob(*final);
}

}  // namespace

CLI::App* AddBisectCommand(CLI::App& app, BisectCommand& cmd, ClientFlags& client) {
  CLI::App* bisect = app.add_subcommand(
      "bisect",
      "bisect on this machine (embedded coordinator, local agents), or on a remote "
      "coordinator with --coordinator");
  AddBisectFlags(bisect, cmd.flags);
  bisect->add_option("--agents", cmd.flags.agents, "local agents to run (default 1)")
      ->check(CLI::Range(1, 256));
  bisect->add_option("--workdir", cmd.flags.workdir,
                     "state directory: database, worktrees (default: <git dir>/farm)");
  bisect->add_option("--coordinator", client.coordinator,
                     "run on this coordinator instead of locally (env FARM_COORDINATOR)");
  return bisect;
}

CLI::App* AddSubmitCommand(CLI::App& app, BisectCommand& cmd, ClientFlags& client) {
  CLI::App* submit = app.add_subcommand("submit", "submit a bisect to a coordinator");
  AddBisectFlags(submit, cmd.flags);
  submit->add_flag("--watch", cmd.watch, "watch the job until it ends");
  AddCoordinatorFlag(submit, client);
  return submit;
}

int RunBisect(BisectCommand& cmd, const ClientFlags& client) {
  if (!cmd.submit && client.coordinator.empty()) return RunLocalBisect(cmd.flags);
  return RunRemoteBisect(cmd, client);
}

}  // namespace farm
