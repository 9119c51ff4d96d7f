#include "cli/cli.h"
#include "cli/boot_cmd.h"
#include "cli/drain_cmd.h"
#include "cli/exit_codes.h"
#include "cli/kernel_flags.h"
#include "cli/next_cmd.h"
#include "common/jobfile/jobfile.h"
#include "common/spec/spec.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/link/agent.h"
#include "common/git/git.h"
#include "common/rpc/channel.h"
#include "common/rpc/credentials.h"
#include "common/rpc/grpc_status.h"
#include "common/signals.h"
#include "common/status_macros.h"
#include "coordinator/service/service.h"
#include "coordinator/store/store.h"
#include "farm/v1/farm.grpc.pb.h"

namespace farm {
namespace {

namespace v1 = farm::v1;
namespace fs = std::filesystem;

int Fail(const absl::Status& st, int code = kExitBadInput) {
  std::fprintf(stderr, "farm: %s\n", std::string(st.message()).c_str());
  return code;
}

int FailRpc(const grpc::Status& st) {
  if (st.error_code() == grpc::StatusCode::UNAVAILABLE ||
      st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    std::fprintf(stderr, "farm: the coordinator is unreachable: %s\n",
                 st.error_message().c_str());
    return kExitUnreachable;
  }
  return Fail(FromGrpcStatus(st));
}

std::string Short(const std::string& sha) { return sha.substr(0, 10); }

const char* PhaseName(v1::Phase p) {
  switch (p) {
    case v1::CHECKOUT:
      return "checkout";
    case v1::BUILD:
      return "build";
    case v1::TEST:
      return "test";
    case v1::PRISTINE_RETRY:
      return "pristine retry";
    default:
      return "starting";
  }
}

const char* StateName(v1::JobState s) {
  switch (s) {
    case v1::RUNNING:
      return "running";
    case v1::FOUND:
      return "found";
    case v1::AMBIGUOUS:
      return "ambiguous";
    case v1::FAILED:
      return "failed";
    case v1::CANCELLED:
      return "cancelled";
    default:
      return "unknown";
  }
}

std::string VerdictWord(const v1::JobStatus& st, v1::Verdict v) {
  const v1::BisectSpec& spec = st.spec();
  if (v == v1::GOOD) return spec.term_old().empty() ? "good" : spec.term_old();
  if (v == v1::BAD) return spec.term_new().empty() ? "bad" : spec.term_new();
  return "skip";
}

// What the user typed for a bisect (farm bisect / farm submit).
struct BisectFlags {
  std::string repo = ".";
  std::vector<std::string> good;
  std::string bad;
  std::vector<std::string> skip;
  bool first_parent = false;
  std::string build;
  int timeout = 0;
  std::string term_old, term_new;
  int agents = 0;
  int max_parallel = 0;
  std::string log_file;
  std::string workdir;
  std::string description;
  bool descend = false;
  bool no_reuse = false;
  std::string flaky;
  double confidence = 0;
  int max_runs = 0;
  std::string job_file;
  std::vector<std::string> require;  // KEY=VALUE labels an agent must have
  KernelFlags kernel;
  std::vector<std::string> command;
};

absl::StatusOr<std::string> ReadFile(const std::string& path, size_t limit) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot read '", path, "'"));
  std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (data.size() > limit) return absl::OutOfRangeError("too large");
  return data;
}

// Checks the test command the way a user expects: it exists and is executable. A script given
// by path is shipped with the job so that every agent, on any host, runs the same script.
absl::Status ResolveTestCommand(const std::vector<std::string>& command, v1::Recipe* recipe) {
  if (command.empty()) {
    return absl::InvalidArgumentError(
        "no test command: give it after `--`, e.g. farm bisect --good v1 --bad main -- ./test.sh");
  }
  for (const std::string& a : command) recipe->add_test_argv(a);
  const std::string& prog = command[0];
  if (prog.find('/') == std::string::npos) {
    // A command from PATH (e.g. `make check`, `sh -c ...`).
    const char* path = std::getenv("PATH");
    for (absl::string_view dir : absl::StrSplit(path ? path : "/usr/bin:/bin", ':')) {
      std::string cand = absl::StrCat(dir.empty() ? "." : dir, "/", prog);
      if (access(cand.c_str(), X_OK) == 0) return absl::OkStatus();
    }
    std::string hint = access(prog.c_str(), F_OK) == 0
                           ? absl::StrCat(" (there is a file './", prog, "' here: use ./", prog, ")")
                           : "";
    return absl::InvalidArgumentError(
        absl::StrCat("test command '", prog, "' is not found in PATH", hint));
  }
  struct stat st;
  if (stat(prog.c_str(), &st) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "test command '", prog, "' does not exist (paths are relative to the current directory, ",
        fs::current_path().string(), ")"));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("test command '", prog, "' is not a file"));
  }
  if (access(prog.c_str(), X_OK) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("test command '", prog, "' is not executable: run `chmod +x ", prog, "`"));
  }
  absl::StatusOr<std::string> content = ReadFile(prog, spec::kMaxTestScriptBytes);
  if (content.ok()) {
    recipe->set_test_script(*content);
  } else {
    // A big binary: agents must find it at the same absolute path.
    recipe->set_test_argv(0, fs::absolute(prog).string());
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::BisectSpec> BuildSpec(BisectFlags f, bool repo_must_be_local) {
  v1::BisectSpec spec;
  if (!f.job_file.empty()) {
    // A job file (docs/jobfile.md) describes the whole job; flags may not also describe it.
    if (!f.good.empty() || !f.bad.empty() || !f.command.empty() || f.kernel.any()) {
      return absl::InvalidArgumentError(
          "--job describes the whole job: give --good/--bad/--kernel/the test in the file, not "
          "as flags too");
    }
    absl::StatusOr<v1::BisectSpec> loaded = LoadJobFile(f.job_file);
    if (!loaded.ok()) return loaded.status();
    if (!loaded->repo().empty() && loaded->repo().find("://") == std::string::npos &&
        !fs::exists(loaded->repo())) {
      return absl::NotFoundError(absl::StrCat(f.job_file, ": repo: '", loaded->repo(),
                                              "' does not exist"));
    }
    return *loaded;
  }
  if (!f.kernel.kernels.empty()) {
    // Prebuilt images: bisect a repository with one commit per image, made here.
    if (!f.good.empty() || !f.bad.empty()) {
      return absl::InvalidArgumentError(
          "--kernels replaces --good/--bad: the first image is the good one, the last the bad");
    }
    const char* cache = std::getenv("XDG_CACHE_HOME");
    const char* home = std::getenv("HOME");
    std::string base = cache ? cache : home ? absl::StrCat(home, "/.cache") : "/tmp";
    std::string key;
    for (const auto& k : f.kernel.kernels) absl::StrAppend(&key, fs::absolute(k).string(), "\n");
    std::string dir = absl::StrFormat("%s/farm/kernel-lists/%016x.git", base,
                                      std::hash<std::string>{}(key));
    absl::StatusOr<KernelListRepo> list = MakeKernelListRepo(f.kernel.kernels, dir);
    if (!list.ok()) return list.status();
    f.repo = list->path;
    f.good = {list->first};
    f.bad = list->last;
  }
  bool looks_remote = f.repo.find("://") != std::string::npos;
  if (!looks_remote || repo_must_be_local) {
    if (!fs::exists(f.repo)) {
      return absl::NotFoundError(absl::StrCat("repository path '", f.repo, "' does not exist"));
    }
    spec.set_repo(fs::absolute(f.repo).lexically_normal().string());
    if (spec.repo().size() > 1 && spec.repo().back() == '/') spec.mutable_repo()->pop_back();
  } else {
    spec.set_repo(f.repo);
  }
  if (f.bad.empty()) return absl::InvalidArgumentError("--bad is required: the known-bad revision");
  if (f.good.empty()) {
    return absl::InvalidArgumentError("--good is required: at least one known-good revision");
  }
  for (const auto& g : f.good) spec.add_good(g);
  spec.set_bad(f.bad);
  for (const auto& s : f.skip) spec.add_skip(s);
  spec.set_first_parent(f.first_parent);
  spec.set_term_old(f.term_old);
  spec.set_term_new(f.term_new);
  spec.set_max_parallel(f.max_parallel);
  spec.set_description(f.description);
  spec.set_descend(f.descend);
  spec.set_no_reuse(f.no_reuse);
  spec.set_flaky(f.flaky);
  spec.set_confidence(f.confidence);
  spec.set_max_runs(f.max_runs);
  v1::Recipe* r = spec.mutable_recipe();
  r->set_build_command(f.build);
  r->set_timeout_seconds(f.timeout);
  if (f.kernel.any()) {
    if (!f.command.empty()) {
      return absl::InvalidArgumentError(
          "a kernel bisect runs its test inside the booted kernel: give it with --test FILE, "
          "not after --");
    }
    FARM_RETURN_IF_ERROR(ApplyKernelFlags(f.kernel, r));
    return spec;
  }
  if (!f.kernel.test.empty()) {
    return absl::InvalidArgumentError(
        "--test is the payload of a kernel bisect: add --kernel (or --kernels), or give a host "
        "test command after --");
  }
  FARM_RETURN_IF_ERROR(ResolveTestCommand(f.command, r));
  return spec;
}

// Shows a job's progress: a refreshing block on a terminal, plain lines otherwise.
class Renderer {
 public:
  Renderer() : tty_(isatty(STDOUT_FILENO) == 1) {}
  void Show(const v1::JobEvent& ev) {
    const v1::JobStatus& st = ev.status();
    if (!tty_) {
      if (!ev.message().empty() && ev.message() != "attached") {
        std::printf("[%7.1fs] %s  (%u candidates left, ~%u rounds)\n", st.elapsed_seconds(),
                    ev.message().c_str(), st.candidates(), st.rounds_left());
        std::fflush(stdout);
      }
      return;
    }
    if (!ev.message().empty() && ev.message() != "attached") last_ = ev.message();
    std::string block = absl::StrFormat(
        "bisect %s: %u candidates (%u to test), ~%u rounds left, %u agents, %.1fs\n",
        st.job_id(), st.candidates(), st.testable(), st.rounds_left(), st.agents_connected(),
        st.elapsed_seconds());
    for (const v1::TaskSummary& t : st.running()) {
      absl::StrAppendFormat(&block, "  %-14s %s %-14s %.50s\n", t.agent().substr(0, 14),
                            Short(t.commit()), PhaseName(t.phase()), t.subject());
    }
    if (!last_.empty()) absl::StrAppend(&block, "  last: ", last_.substr(0, 100), "\n");
    // Move to the start of the previous block and clear to the end of the screen.
    if (lines_ > 0) std::printf("\x1b[%dF\x1b[J", lines_);
    std::fputs(block.c_str(), stdout);
    std::fflush(stdout);
    lines_ = std::count(block.begin(), block.end(), '\n');
  }

 private:
  bool tty_;
  int lines_ = 0;
  std::string last_;
};

// Watches a job until it ends, reattaching after a broken connection.
// Returns the final status, or the error that made watching impossible.
absl::StatusOr<v1::JobStatus> WatchUntilDone(v1::Farm::Stub* stub, const std::string& job_id,
                                             Renderer* renderer) {
  absl::Duration backoff = absl::Milliseconds(100);
  bool warned = false;
  while (true) {
    grpc::ClientContext ctx;
    v1::WatchJobRequest req;
    req.set_job_id(job_id);
    std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader = stub->WatchJob(&ctx, req);
    v1::JobEvent ev;
    bool got = false;
    while (reader->Read(&ev)) {
      got = true;
      if (warned) {
        std::fprintf(stderr, "farm: reattached to job %s\n", job_id.c_str());
        warned = false;
      }
      if (renderer) renderer->Show(ev);
      if (ev.status().state() != v1::RUNNING) {
        reader->Finish();
        if (!ev.status().descended_job().empty()) {
          // --descend: show this job's report, then follow the branch's bisect.
          std::fputs(ev.status().report().c_str(), stdout);
          std::printf("\n== job %s: bisecting the merged branch\n",
                      ev.status().descended_job().c_str());
          return WatchUntilDone(stub, ev.status().descended_job(), renderer);
        }
        return ev.status();
      }
    }
    grpc::Status st = reader->Finish();
    if (st.error_code() != grpc::StatusCode::UNAVAILABLE &&
        st.error_code() != grpc::StatusCode::CANCELLED && !st.ok()) {
      return FromGrpcStatus(st);
    }
    if (got) backoff = absl::Milliseconds(100);
    if (!warned) {
      std::fprintf(stderr, "farm: lost the coordinator (%s); reattaching to job %s...\n",
                   st.error_message().c_str(), job_id.c_str());
      warned = true;
    }
    // Backoff before reconnecting to an unreachable coordinator.
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(backoff));
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

int ExitCodeFor(const v1::JobStatus& st) {
  switch (st.state()) {
    case v1::FOUND:
      return kExitFound;
    case v1::AMBIGUOUS:
      return kExitAmbiguous;
    case v1::CANCELLED:
      return kExitCancelled;
    default:
      return kExitFailed;
  }
}

void PrintReport(const v1::JobStatus& st, const std::string& log_file) {
  std::fputs(st.report().c_str(), stdout);
  if (!st.error().empty() && st.report().empty()) {
    std::printf("bisect %s: %s\n", StateName(st.state()), st.error().c_str());
  }
  int tested = 0, reused = 0;
  for (const auto& t : st.finished()) {
    tested += t.state() == v1::TASK_DONE && !t.reused();
    reused += t.reused();
  }
  std::printf("\n%d commits tested in %.1fs", tested, st.elapsed_seconds());
  if (reused > 0) std::printf(", %d verdicts reused", reused);
  if (!log_file.empty() && !st.bisect_log().empty()) {
    std::ofstream f(log_file, std::ios::trunc);
    f << st.bisect_log();
    if (f.good()) {
      std::printf("; bisect log written to %s (git bisect replay accepts it)", log_file.c_str());
    } else {
      std::fprintf(stderr, "farm: cannot write the bisect log to %s\n", log_file.c_str());
    }
  }
  std::printf("\n");
  std::fflush(stdout);
}

// The spec the flags describe, checked against the request schema (common/spec) before anything
// is sent: the same words the coordinator and a job file would use.
absl::StatusOr<v1::BisectSpec> MakeSpec(const BisectFlags& f, bool repo_must_be_local) {
  FARM_ASSIGN_OR_RETURN(v1::BisectSpec spec, BuildSpec(f, repo_must_be_local));
  for (const std::string& r : f.require) {
    size_t eq = r.find('=');
    if (eq == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--require '", r, "': expected KEY=VALUE (e.g. gpu=a100)"));
    }
    (*spec.mutable_require())[r.substr(0, eq)] = r.substr(eq + 1);
  }
  FARM_RETURN_IF_ERROR(ValidateBisectSpec(spec));
  return spec;
}

void AddBisectFlags(CLI::App* cmd, BisectFlags& f) {
  cmd->add_option("--repo", f.repo, "git repository (path; a URL with --coordinator)")
      ->capture_default_str();
  cmd->add_option("--good,--old", f.good, "known-good revision (repeatable)")->take_all();
  cmd->add_option("--bad,--new", f.bad, "known-bad revision");
  cmd->add_option("--skip", f.skip, "revision known to be untestable (repeatable)");
  cmd->add_flag("--first-parent", f.first_parent, "follow only the first parent of merges");
  cmd->add_option("--build", f.build,
                  "build command run with sh -c in the worktree before the test; "
                  "a failed build makes the commit a skip");
  cmd->add_option("--timeout", f.timeout, "seconds per build and per test (default 3600)")
      ->check(CLI::Range(1, 7 * 86400));
  cmd->add_option("--term-old", f.term_old, "word for good commits, e.g. old or fast");
  cmd->add_option("--term-new", f.term_new, "word for bad commits, e.g. new or slow");
  cmd->add_option("--max-parallel", f.max_parallel, "at most this many tasks at once")
      ->check(CLI::Range(0, 100000));
  cmd->add_option("--log", f.log_file, "write the bisect log (git bisect replay format) here");
  cmd->add_option("--description", f.description, "free text shown in listings");
  cmd->add_option("--flaky", f.flaky,
                  "the test is flaky: FP,FF false-pass/false-fail rates (e.g. 0.3,0), or learn; "
                  "bisect on a Bayesian posterior and repeat where it pays");
  cmd->add_option("--confidence", f.confidence, "flaky mode: stop at this confidence (0.95)")
      ->check(CLI::Range(0.5, 0.999999));
  cmd->add_option("--max-runs", f.max_runs, "flaky mode: give up after this many runs")
      ->check(CLI::Range(0, 100000));
  cmd->add_flag("--descend", f.descend,
                "when the first bad commit is a merge, bisect the branch it merged");
  cmd->add_flag("--no-reuse", f.no_reuse,
                "retest commits whose tree was already tested under the same recipe");
  cmd->add_option("--require", f.require,
                  "KEY=VALUE an agent must have (its --label, or a capability such as "
                  "accel=kvm); repeatable");
  cmd->add_option("--job", f.job_file,
                  "a job file (YAML, docs/jobfile.md) describing everything the flags do");
  AddKernelFlags(cmd, f.kernel);
  cmd->add_option("command", f.command, "the test command and its arguments (after --)");
}

// The local mode: an embedded coordinator and `agents` local agents over real gRPC on loopback.
int RunLocalBisect(BisectFlags& f) {
  absl::StatusOr<v1::BisectSpec> spec = MakeSpec(f, /*repo_must_be_local=*/true);
  if (!spec.ok()) return Fail(spec.status());
  absl::StatusOr<GitRepository> repo = OpenRepository(spec->repo());
  if (!repo.ok()) return Fail(repo.status());
  std::string state_dir = f.workdir;
  if (state_dir.empty()) {
    state_dir = (fs::path(git_repository_commondir(repo->get())) / "farm").string();
  }
  std::error_code ec;
  fs::create_directories(state_dir, ec);
  if (ec) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("cannot create the state directory ", state_dir, ": ", ec.message())));
  }
  int agents = f.agents > 0 ? f.agents : 1;

  CoordinatorOptions copts;
  copts.db_path = state_dir + "/farm.db";
  copts.cache_dir = state_dir + "/mirrors";
  copts.lease = absl::Seconds(10);
  copts.heartbeat = absl::Seconds(2);
  absl::StatusOr<std::unique_ptr<CoordinatorServer>> server =
      CoordinatorServer::Start(copts, "127.0.0.1:0");
  if (!server.ok()) return Fail(server.status(), kExitFailed);

  std::vector<std::unique_ptr<Agent>> local_agents;
  std::vector<std::thread> threads;
  for (int i = 1; i <= agents; ++i) {
    AgentOptions aopts;
    aopts.coordinator = (*server)->address();
    aopts.workdir = absl::StrCat(state_dir, "/agents/", i);
    aopts.ccache_dir = state_dir + "/ccache";  // one cache: one agent's compile is another's hit
    aopts.agent_id = absl::StrCat("local-", i);
    absl::StatusOr<std::unique_ptr<Agent>> a = Agent::Create(aopts);
    if (!a.ok()) return Fail(a.status(), kExitFailed);
    local_agents.push_back(std::move(*a));
  }
  for (auto& a : local_agents) threads.emplace_back([p = a.get()] { p->Run(); });
  auto stop_all = [&] {
    for (auto& a : local_agents) a->Stop();
    for (auto& t : threads) t.join();
    threads.clear();
    (*server)->Shutdown(absl::Milliseconds(500));
  };

  // Start with every agent ready, so that the first plan uses them all.
  if (!(*server)->core()->AwaitAgents(agents, absl::Seconds(30))) {
    stop_all();
    return Fail(absl::UnavailableError("the local agents did not connect within 30 s"),
                kExitFailed);
  }
  auto channel = MakeCoordinatorChannel((*server)->address());
  auto stub = v1::Farm::NewStub(channel);
  v1::SubmitBisectRequest req;
  *req.mutable_spec() = *spec;
  v1::SubmitBisectResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(ctx, absl::Minutes(10));
  grpc::Status rs = stub->SubmitBisect(&ctx, req, &resp);
  if (!rs.ok()) {
    stop_all();
    return FailRpc(rs);
  }
  std::string job_id = resp.job_id();
  std::atomic<bool> interrupted{false};
  HandleTerminationSignals([&, address = (*server)->address()](int) {
    interrupted = true;
    auto s = v1::Farm::NewStub(MakeCoordinatorChannel(address));
    grpc::ClientContext c;
    SetDeadline(c, absl::Seconds(5));
    v1::CancelJobRequest cr;
    cr.set_job_id(job_id);
    v1::CancelJobResponse cresp;
    s->CancelJob(&c, cr, &cresp);
  });
  std::printf("bisecting %u commits with %d local agent%s (job %s, state in %s)\n",
              resp.status().candidates(), agents, agents == 1 ? "" : "s", job_id.c_str(),
              state_dir.c_str());
  std::fflush(stdout);
  Renderer renderer;
  absl::StatusOr<v1::JobStatus> final = WatchUntilDone(stub.get(), job_id, &renderer);
  stop_all();
  if (!final.ok()) return Fail(final.status(), kExitFailed);
  std::string log_file =
      f.log_file.empty() ? absl::StrCat(state_dir, "/bisect-", job_id, ".log") : f.log_file;
  PrintReport(*final, log_file);
  return interrupted ? 130 : ExitCodeFor(*final);
}

std::string DefaultCoordinator() {
  const char* env = std::getenv("FARM_COORDINATOR");
  return env ? env : "";
}

void PrintJobLine(const v1::JobStatus& st) {
  std::string answer = st.first_bad_size() == 1 ? Short(st.first_bad(0))
                       : st.first_bad_size() > 1
                           ? absl::StrCat(st.first_bad_size(), " candidates")
                           : absl::StrCat(st.candidates(), " left");
  std::printf("%-6s %-10s %-22s %8.1fs  %s  %s\n", st.job_id().c_str(), StateName(st.state()),
              answer.c_str(), st.elapsed_seconds(), st.spec().repo().c_str(),
              st.spec().description().c_str());
}

void PrintJob(const v1::JobStatus& st) {
  std::printf("job %s: %s\n", st.job_id().c_str(), StateName(st.state()));
  std::printf("  repo:       %s\n  bad:        %s\n  good:       %s\n", st.spec().repo().c_str(),
              st.spec().bad().c_str(), absl::StrJoin(st.spec().good(), " ").c_str());
  std::printf("  test:       %s\n", absl::StrJoin(st.spec().recipe().test_argv(), " ").c_str());
  if (st.state() == v1::RUNNING) {
    std::printf("  candidates: %u (%u to test, ~%u rounds left)\n", st.candidates(), st.testable(),
                st.rounds_left());
  }
  for (const auto& t : st.running()) {
    std::printf("  running  %s on %s (%s)  %s\n", Short(t.commit()).c_str(), t.agent().c_str(),
                PhaseName(t.phase()), t.subject().c_str());
  }
  for (const auto& t : st.finished()) {
    std::string what = t.state() == v1::TASK_DONE ? VerdictWord(st, t.verdict())
                       : t.state() == v1::TASK_CANCELLED ? "cancelled"
                       : t.state() == v1::TASK_LOST      ? "lost"
                                                         : "infra-error";
    std::string note = t.retried_pristine()
                           ? absl::StrCat(" [retried pristine: ", t.retry_reason(), "]")
                       : t.reused() ? absl::StrCat(" [reused from task ", t.reused_from(), "]")
                                    : "";
    if (t.has_kernel_build() && t.kernel_build().ccache_hits() >= 0) {
      const v1::KernelBuildStats& k = t.kernel_build();
      absl::StrAppendFormat(&note, " [ccache %d/%d hits", k.ccache_hits(),
                            k.ccache_hits() + k.ccache_misses());
      if (!k.image_sha256().empty()) {
        absl::StrAppend(&note, ", image ", k.image_sha256().substr(0, 12));
      }
      absl::StrAppend(&note, "]");
    }
    std::printf("  %-11s %s %6.1fs on %s  %s%s\n", what.c_str(), Short(t.commit()).c_str(),
                t.seconds(), t.agent().c_str(), t.subject().c_str(), note.c_str());
  }
  if (st.state() != v1::RUNNING) std::printf("\n%s", st.report().c_str());
}

void PrintLogs(const std::vector<v1::TaskLog>& logs) {
  for (const v1::TaskLog& l : logs) {
    std::printf("==> task %s, commit %s <==\n", l.task_id().c_str(), l.commit().c_str());
    std::fwrite(l.output().data(), 1, l.output().size(), stdout);
    if (!l.output().empty() && l.output().back() != '\n') std::printf("\n");
  }
}

// `farm log`: from a coordinator, or from the state a local bisect left in the repository.
int ShowLogs(const std::string& coordinator, std::shared_ptr<grpc::ChannelCredentials> creds,
             const std::string& repo_path, const std::string& workdir, const std::string& job_id,
             const std::string& commit) {
  if (!coordinator.empty()) {
    auto stub = v1::Farm::NewStub(MakeCoordinatorChannel(coordinator, creds));
    grpc::ClientContext ctx;
    SetDeadline(ctx, absl::Seconds(60));
    v1::GetTaskLogRequest req;
    req.set_job_id(job_id);
    req.set_commit(commit);
    v1::GetTaskLogResponse resp;
    grpc::Status st = stub->GetTaskLog(&ctx, req, &resp);
    if (!st.ok()) return FailRpc(st);
    PrintLogs({resp.logs().begin(), resp.logs().end()});
    return 0;
  }
  std::string db = workdir + "/farm.db";
  if (workdir.empty()) {
    absl::StatusOr<GitRepository> repo = OpenRepository(repo_path);
    if (!repo.ok()) return Fail(repo.status());
    db = (fs::path(git_repository_commondir(repo->get())) / "farm" / "farm.db").string();
  }
  if (!fs::exists(db)) {
    return Fail(absl::NotFoundError(absl::StrCat(
        "no local bisect state in ", repo_path, " (", db,
        " is missing): give --coordinator for a remote job")));
  }
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(db);
  if (!store.ok()) return Fail(store.status(), kExitFailed);
  int64_t id = 0;
  if (!absl::SimpleAtoi(job_id, &id)) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("job id '", job_id, "' is not a number")));
  }
  absl::StatusOr<std::vector<v1::TaskLog>> logs = (*store)->ReadLogs(id, commit);
  if (!logs.ok()) return Fail(logs.status());
  PrintLogs(*logs);
  return 0;
}

}  // namespace

int FarmMain(int argc, char** argv) {
  CLI::App app{"farm: find the commit that broke something, on many machines at once"};
  app.require_subcommand(1);
  std::string coordinator = DefaultCoordinator();
  TlsFiles tls;
  if (const char* ca = std::getenv("FARM_TLS_CA")) tls.ca = ca;
  std::string token_file;
  app.add_option("--tls-ca", tls.ca, "CA that signed the coordinator's certificate (env FARM_TLS_CA)");
  app.add_option("--tls-cert", tls.cert, "client certificate, when the coordinator wants one");
  app.add_option("--tls-key", tls.key, "private key of --tls-cert");
  app.add_option("--token-file", token_file, "file holding your token (or set FARM_TOKEN)");

  BisectFlags bf;
  CLI::App* bisect = app.add_subcommand(
      "bisect", "bisect on this machine (embedded coordinator, local agents), or on a remote "
                "coordinator with --coordinator");
  AddBisectFlags(bisect, bf);
  bisect->add_option("--agents", bf.agents, "local agents to run (default 1)")
      ->check(CLI::Range(1, 256));
  bisect->add_option("--workdir", bf.workdir,
                     "state directory: database, worktrees (default: <git dir>/farm)");
  bisect->add_option("--coordinator", coordinator,
                     "run on this coordinator instead of locally (env FARM_COORDINATOR)");

  BisectFlags sf;
  bool submit_watch = false;
  CLI::App* submit = app.add_subcommand("submit", "submit a bisect to a coordinator");
  AddBisectFlags(submit, sf);
  submit->add_flag("--watch", submit_watch, "watch the job until it ends");
  submit->add_option("--coordinator", coordinator, "coordinator address (env FARM_COORDINATOR)");

  std::string job_id, commit, log_file, repo = ".";
  CLI::App* watch = app.add_subcommand("watch", "watch a job until it ends (reattachable)");
  watch->add_option("job", job_id, "job id")->required();
  watch->add_option("--log", log_file, "write the bisect log here at the end");
  watch->add_option("--coordinator", coordinator, "coordinator address (env FARM_COORDINATOR)");

  CLI::App* cancel = app.add_subcommand("cancel", "cancel a job");
  cancel->add_option("job", job_id, "job id")->required();
  cancel->add_option("--coordinator", coordinator, "coordinator address (env FARM_COORDINATOR)");

  CLI::App* status = app.add_subcommand("status", "list jobs, or show one");
  status->add_option("job", job_id, "job id");
  status->add_option("--coordinator", coordinator, "coordinator address (env FARM_COORDINATOR)");

  CLI::App* log = app.add_subcommand("log", "show the output of the tasks that tested a commit");
  log->add_option("job", job_id, "job id")->required();
  log->add_option("commit", commit, "commit id or unique prefix")->required();
  log->add_option("--coordinator", coordinator,
                  "coordinator address (env FARM_COORDINATOR); without it, the local state of "
                  "--repo is read");
  log->add_option("--repo", repo, "repository of a local bisect")->capture_default_str();
  std::string log_workdir;
  log->add_option("--workdir", log_workdir, "state directory of a local bisect run with --workdir");

  NextFlags next_flags;
  CLI::App* next = app.add_subcommand(
      "next", "print the commits the farm would test next, best first (like git rev-list "
              "--bisect-all), with --timing how long loading and planning took");
  AddNextFlags(next, next_flags);

  BootFlags boot_flags;
  CLI::App* boot = app.add_subcommand("boot", "boot one kernel with a test and print the verdict");
  AddBootFlags(boot, boot_flags);

  CLI::App* agents = app.add_subcommand("agents", "list the coordinator's agents");
  agents->add_option("--coordinator", coordinator, "coordinator address (env FARM_COORDINATOR)");

  DrainCommands drain;
  AddDrainCommands(app, drain, coordinator);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitBadInput;
  }

  if (boot->parsed()) return RunBoot(boot_flags);
  if (next->parsed()) return RunNext(next_flags);
  if (bisect->parsed() && coordinator.empty()) return RunLocalBisect(bf);
  std::string token;
  if (const char* t = std::getenv("FARM_TOKEN")) token = t;
  if (!token_file.empty()) {
    absl::StatusOr<std::string> t = ReadToken(token_file);
    if (!t.ok()) return Fail(t.status());
    token = *t;
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
      MakeChannelCredentials(tls, token);
  if (!creds.ok()) return Fail(creds.status());
  if (log->parsed()) return ShowLogs(coordinator, *creds, repo, log_workdir, job_id, commit);

  if (coordinator.empty()) {
    return Fail(absl::InvalidArgumentError(
        "no coordinator: give --coordinator HOST:PORT or set FARM_COORDINATOR"));
  }
  auto channel = MakeCoordinatorChannel(coordinator, *creds);
  auto stub = v1::Farm::NewStub(channel);

  if (drain.parsed()) return RunDrain(stub.get(), drain);
  if (bisect->parsed() || submit->parsed()) {
    BisectFlags& f = bisect->parsed() ? bf : sf;
    absl::StatusOr<v1::BisectSpec> spec = MakeSpec(f, /*repo_must_be_local=*/false);
    if (!spec.ok()) return Fail(spec.status());
    v1::SubmitBisectRequest req;
    *req.mutable_spec() = *spec;
    v1::SubmitBisectResponse resp;
    grpc::Status st = CallWithRetry([&] {
      grpc::ClientContext ctx;
      SetDeadline(ctx, absl::Minutes(10));
      return stub->SubmitBisect(&ctx, req, &resp);
    });
    if (!st.ok()) return FailRpc(st);
    if (submit->parsed() && !submit_watch) {
      std::printf("%s\n", resp.job_id().c_str());
      return 0;
    }
    std::printf("job %s: bisecting %u commits on %s\n", resp.job_id().c_str(),
                resp.status().candidates(), coordinator.c_str());
    job_id = resp.job_id();
    log_file = f.log_file;
  }
  if (bisect->parsed() || submit->parsed() || watch->parsed()) {
    Renderer renderer;
    absl::StatusOr<v1::JobStatus> final = WatchUntilDone(stub.get(), job_id, &renderer);
    if (!final.ok()) return Fail(final.status(), kExitFailed);
    PrintReport(*final, log_file);
    return ExitCodeFor(*final);
  }
  if (cancel->parsed()) {
    v1::CancelJobRequest req;
    req.set_job_id(job_id);
    v1::CancelJobResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(ctx, absl::Seconds(30));
    grpc::Status st = stub->CancelJob(&ctx, req, &resp);
    if (!st.ok()) return FailRpc(st);
    std::printf("job %s: %s\n", job_id.c_str(), StateName(resp.status().state()));
    return 0;
  }
  if (status->parsed()) {
    grpc::ClientContext ctx;
    SetDeadline(ctx, absl::Seconds(30));
    if (!job_id.empty()) {
      v1::GetJobRequest req;
      req.set_job_id(job_id);
      v1::JobStatus resp;
      grpc::Status st = stub->GetJob(&ctx, req, &resp);
      if (!st.ok()) return FailRpc(st);
      PrintJob(resp);
      return 0;
    }
    v1::ListJobsRequest req;
    v1::ListJobsResponse resp;
    grpc::Status st = stub->ListJobs(&ctx, req, &resp);
    if (!st.ok()) return FailRpc(st);
    std::printf("%-6s %-10s %-22s %9s  %s\n", "JOB", "STATE", "ANSWER", "ELAPSED", "REPO");
    for (const auto& j : resp.jobs()) PrintJobLine(j);
    return 0;
  }
  if (agents->parsed()) {
    grpc::ClientContext ctx;
    SetDeadline(ctx, absl::Seconds(30));
    v1::ListAgentsRequest req;
    v1::ListAgentsResponse resp;
    grpc::Status st = stub->ListAgents(&ctx, req, &resp);
    if (!st.ok()) return FailRpc(st);
    for (const auto& a : resp.agents()) {
      // What the agent boots kernels with (agent/boot ProbeBootCapabilities).
      std::string boot;
      auto cap = [&a](const char* key) {
        auto it = a.capabilities().find(key);
        return it == a.capabilities().end() ? std::string() : it->second;
      };
      if (!cap("accel").empty()) boot = absl::StrCat(" accel=", cap("accel"));
      if (!cap("qemu").empty()) absl::StrAppend(&boot, " qemu=", cap("qemu"));
      if (!cap("accel_note").empty()) absl::StrAppend(&boot, " (", cap("accel_note"), ")");
      std::printf("%-30s %-11s slots=%u running=%d %s%s%s\n", a.agent_id().c_str(),
                  a.quarantined() ? "quarantined" : a.connected() ? "connected" : "gone",
                  a.slots(), a.running_tasks_size(),
                  absl::StrJoin(a.running_tasks(), ",").c_str(), boot.c_str(),
                  a.quarantined() ? absl::StrFormat(" (%.0fs left: %s)",
                                                    a.quarantined_for_seconds(),
                                                    a.quarantine_reason())
                                        .c_str()
                                  : "");
    }
    return 0;
  }
  return kExitBadInput;
}

}  // namespace farm
