#include "coordinator/scheduler/coordinator.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <malloc.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <queue>
#include <tuple>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "coordinator/graph/commit_graph.h"
#include "coordinator/planner/planner.h"

namespace farm {
namespace {

namespace v1 = farm::v1;

constexpr size_t kMaxScriptBytes = 1 << 20;
constexpr int64_t kMaxLogBytesPerTask = 64 << 20;  // agents bound their output well below this

std::string Short(const std::string& sha) { return sha.substr(0, 12); }

Verdict FromProto(v1::Verdict v) {
  switch (v) {
    case v1::GOOD:
      return Verdict::kGood;
    case v1::BAD:
      return Verdict::kBad;
    default:
      return Verdict::kSkip;
  }
}

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

bool IsTerminal(v1::JobState s) { return s != v1::RUNNING; }

bool ValidTerm(const std::string& t) {
  if (t.empty() || t == "skip" || t == "start" || t == "run" || t == "log" || t == "reset") {
    return false;
  }
  return std::all_of(t.begin(), t.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  });
}

// Checks the fields a client controls that need no repository. Messages name the field.
absl::Status ValidateSpec(const v1::BisectSpec& spec) {
  if (spec.repo().empty()) {
    return absl::InvalidArgumentError("spec.repo is empty: give the repository path or URL");
  }
  if (spec.bad().empty()) {
    return absl::InvalidArgumentError("spec.bad is empty: give the known-bad revision (--bad)");
  }
  if (spec.good().empty()) {
    return absl::InvalidArgumentError(
        "spec.good is empty: give at least one known-good revision (--good)");
  }
  const v1::Recipe& r = spec.recipe();
  if (r.has_boot()) {
    if (r.boot().payload().empty()) {
      return absl::InvalidArgumentError(
          "spec.recipe.boot.payload is empty: give the test to run in the booted kernel");
    }
    if (r.boot().payload().size() > (64u << 20)) {
      return absl::InvalidArgumentError("spec.recipe.boot.payload is over 64 MiB");
    }
  } else if (r.test_argv().empty() || r.test_argv(0).empty()) {
    return absl::InvalidArgumentError(
        "spec.recipe.test_argv is empty: give the test command after `--`");
  }
  if (r.test_script().size() > kMaxScriptBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.recipe.test_script is ", r.test_script().size(), " bytes; at most 1 MiB is allowed"));
  }
  bool has_terms = !spec.term_old().empty() || !spec.term_new().empty();
  if (has_terms && (!ValidTerm(spec.term_old()) || !ValidTerm(spec.term_new()) ||
                    spec.term_old() == spec.term_new())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.term_old/term_new ('", spec.term_old(), "', '", spec.term_new(),
        "') must be two different words of letters, digits, '-' or '_' (e.g. old/new)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Create(CoordinatorOptions options) {
  FARM_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, Store::Open(options.db_path));
  std::unique_ptr<Coordinator> c(new Coordinator(std::move(options), std::move(store)));
  {
    absl::MutexLock lock(&c->mu_);
    FARM_ASSIGN_OR_RETURN(std::vector<Store::JobRow> rows, c->store_->LoadJobs(true));
    std::reverse(rows.begin(), rows.end());  // oldest first
    for (Store::JobRow& row : rows) {
      Job& job = c->jobs_[row.id];
      job.id = row.id;
      job.spec = row.spec;
      job.created_unix = row.created_unix;
      job.started = absl::Now() - absl::Seconds(row.elapsed_seconds);
      absl::Status st = c->LoadJobLocked(job);
      if (st.ok()) c->running_jobs_.insert(job.id);
      if (!st.ok()) {
        c->EndJobLocked(job, v1::FAILED, absl::StrCat("cannot resume: ", st.message()));
        continue;
      }
      // Replay the verdicts in the order they arrived; re-adopt tasks that were running.
      FARM_ASSIGN_OR_RETURN(std::vector<v1::TaskSummary> tasks, c->store_->LoadTasks(row.id));
      for (v1::TaskSummary& t : tasks) {
        job.task_counter++;
        std::optional<CommitId> id = job.graph->FindHex(t.commit());
        if (!id) continue;
        if (t.state() == v1::TASK_DONE && job.flaky) {
          job.verdict_seq++;
          job.flaky->Observe(*id, FromProto(t.verdict())).IgnoreError();
          job.finished.push_back(t);
        } else if (t.state() == v1::TASK_DONE) {
          job.verdict_seq++;
          if (job.frontier->Apply(*id, FromProto(t.verdict()))) {
            job.applied.emplace_back(*id, FromProto(t.verdict()));
          }
          job.finished.push_back(t);
        } else if (t.state() == v1::TASK_RUNNING) {
          Task& task = c->tasks_[t.task_id()];
          task.id = t.task_id();
          task.job_id = job.id;
          task.commit = *id;
          task.agent_id = t.agent();
          task.started = absl::Now();
          task.lease_expiry = absl::Now() + c->options_.lease;
          job.running.insert(task.id);
        } else {
          if (t.state() == v1::TASK_INFRA_ERROR) job.infra_failures[*id]++;
          job.finished.push_back(t);
        }
      }
      c->CheckDoneLocked(job);
    }
    c->trigger_ = absl::Now();
    c->trigger_kind_ = Trigger::kResume;
    c->ScheduleLocked();
  }
  c->lease_thread_ = std::thread([cp = c.get()] {
    absl::MutexLock lock(&cp->mu_);
    while (!cp->stopping_) {
      cp->mu_.AwaitWithTimeout(absl::Condition(&cp->stopping_), absl::Seconds(1));
      if (cp->stopping_) break;
      cp->mu_.Unlock();
      cp->ExpireLeases();
#ifdef __GLIBC__
      // Ended jobs freed their graphs: hand the memory back to the system, outside the lock.
      if (cp->trim_wanted_.exchange(false)) malloc_trim(0);
#endif
      cp->mu_.Lock();
    }
  });
  return c;
}

Coordinator::Coordinator(CoordinatorOptions options, std::unique_ptr<Store> store)
    : options_(std::move(options)), repo_cache_(options_.cache_dir), store_(std::move(store)) {}

Coordinator::~Coordinator() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (lease_thread_.joinable()) lease_thread_.join();
}

absl::Status Coordinator::LoadJobLocked(Job& job) {
  const v1::BisectSpec& spec = job.spec;
  FARM_ASSIGN_OR_RETURN(std::string git_dir, repo_cache_.Prepare(spec.repo(), spec.bad()));
  FARM_ASSIGN_OR_RETURN(job.repo, OpenRepository(git_dir));
  FARM_ASSIGN_OR_RETURN(git_oid bad, ResolveCommit(job.repo.get(), spec.bad()));
  std::vector<git_oid> goods;
  for (const std::string& g : spec.good()) {
    FARM_ASSIGN_OR_RETURN(git_oid oid, ResolveCommit(job.repo.get(), g));
    goods.push_back(oid);
  }
  FARM_ASSIGN_OR_RETURN(job.graph,
                        CommitGraph::Load(job.repo.get(), bad, goods, spec.first_parent()));
  if (job.graph->size() == 0) {
    return absl::InvalidArgumentError("the range good..bad is empty: nothing to bisect");
  }
  job.frontier = std::make_unique<Frontier>(job.graph);
  job.move_cost = TreeDiffCost(job.repo.get(), job.graph);
  if (!spec.flaky().empty()) {
    FlakyOptions fo;
    absl::Status st = ParseFlakyFlag(spec.flaky(), fo);
    if (!st.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("spec.flaky: ", st.message()));
    }
    if (spec.confidence() != 0) fo.confidence = spec.confidence();
    fo.max_probes = spec.max_runs();
    FARM_RETURN_IF_ERROR(ValidateFlakyOptions(fo, job.graph.get()));
    FARM_ASSIGN_OR_RETURN(FlakyBisect engine, FlakyBisect::Create(job.graph, fo));
    job.flaky = std::make_unique<FlakyBisect>(std::move(engine));
  }
  {
    // The reuse key: the recipe, serialized deterministically, hashed.
    std::string bytes;
    google::protobuf::io::StringOutputStream raw(&bytes);
    google::protobuf::io::CodedOutputStream out(&raw);
    out.SetSerializationDeterministic(true);
    spec.recipe().SerializeToCodedStream(&out);
    out.Trim();
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), md);
    job.recipe_digest.clear();
    for (unsigned char c : md) absl::StrAppendFormat(&job.recipe_digest, "%02x", c);
  }
  for (const std::string& s : spec.skip()) {
    FARM_ASSIGN_OR_RETURN(git_oid oid, ResolveCommit(job.repo.get(), s));
    if (std::optional<CommitId> id = job.graph->Find(oid)) job.frontier->Apply(*id, Verdict::kSkip);
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::JobStatus> Coordinator::SubmitBisect(v1::BisectSpec spec) {
  FARM_RETURN_IF_ERROR(ValidateSpec(spec));
  // Resolve and check the revisions before anything is stored.
  FARM_ASSIGN_OR_RETURN(std::string git_dir, repo_cache_.Prepare(spec.repo(), ""));
  FARM_ASSIGN_OR_RETURN(GitRepository repo, OpenRepository(git_dir));
  auto resolve = [&](const std::string& rev, const char* what) -> absl::StatusOr<std::string> {
    absl::StatusOr<git_oid> oid = ResolveCommit(repo.get(), rev);
    if (!oid.ok()) {
      return absl::Status(oid.status().code(),
                          absl::StrCat(what, " revision: ", oid.status().message()));
    }
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), &*oid);
    return std::string(hex);
  };
  auto regex_rev = [](const std::string& r) {
    return r.find(":/") != std::string::npos || r.find("^{/") != std::string::npos;
  };
  std::vector<std::string> revs(spec.good().begin(), spec.good().end());
  revs.push_back(spec.bad());
  revs.insert(revs.end(), spec.skip().begin(), spec.skip().end());
  for (const std::string& r : revs) {
    if (regex_rev(r)) {
      return absl::InvalidArgumentError(
          absl::StrCat("revision '", r,
                       "' searches commit messages (:/ or ^{/...}): give a commit id, a "
                       "branch or a tag instead"));
    }
  }
  std::string bad_name = spec.bad();
  FARM_ASSIGN_OR_RETURN(std::string bad, resolve(spec.bad(), "bad"));
  spec.set_bad(bad);
  git_oid bad_oid;
  git_oid_fromstr(&bad_oid, bad.c_str());
  for (int i = 0; i < spec.good_size(); ++i) {
    std::string good_name = spec.good(i);
    FARM_ASSIGN_OR_RETURN(std::string good, resolve(good_name, "good"));
    if (good == bad) {
      return absl::InvalidArgumentError(
          absl::StrCat("good revision '", good_name, "' and bad revision '", bad_name,
                       "' are the same commit ", Short(bad), ": there is nothing to bisect"));
    }
    git_oid good_oid;
    git_oid_fromstr(&good_oid, good.c_str());
    FARM_ASSIGN_OR_RETURN(bool ancestor, IsAncestor(repo.get(), good_oid, bad_oid));
    if (!ancestor) {
      FARM_ASSIGN_OR_RETURN(bool reversed, IsAncestor(repo.get(), bad_oid, good_oid));
      if (reversed) {
        return absl::InvalidArgumentError(
            absl::StrCat("good commit ", good_name, " (", Short(good),
                         ") is not an ancestor of bad commit ", bad_name, " (", Short(bad),
                         "), it is a descendant: did you swap them? "
                         "(use --good/--bad, or --term-old/--term-new when looking for a fix)"));
      }
      return absl::InvalidArgumentError(
          absl::StrCat("good commit ", good_name, " (", Short(good),
                       ") is not an ancestor of bad commit ", bad_name, " (", Short(bad),
                       "): they are on diverging branches; give a good commit "
                       "that bad contains, for example their merge base (git merge-base ",
                       good_name, " ", bad_name, "), or check that they are not swapped"));
    }
    spec.set_good(i, good);
  }
  for (int i = 0; i < spec.skip_size(); ++i) {
    FARM_ASSIGN_OR_RETURN(std::string s, resolve(spec.skip(i), "skip"));
    spec.set_skip(i, s);
  }
  if (spec.recipe().timeout_seconds() == 0) {
    spec.mutable_recipe()->set_timeout_seconds(options_.default_timeout_seconds);
  }

  Job job;
  job.spec = spec;
  job.created_unix = absl::ToUnixSeconds(absl::Now());
  job.started = absl::Now();
  // Loading the graph can take a while for a big range: do it before taking the lock.
  FARM_RETURN_IF_ERROR(LoadJobLocked(job));

  const absl::Time loaded = absl::Now();
  absl::MutexLock lock(&mu_);
  trigger_ = loaded;
  trigger_kind_ = Trigger::kSubmit;
  Store::Batch batch(*store_);  // the job and its first tasks commit once
  ++counters_.jobs_submitted;
  FARM_ASSIGN_OR_RETURN(job.id, store_->InsertJob(job.spec, job.created_unix));
  Job& stored = jobs_[job.id];
  stored = std::move(job);
  running_jobs_.insert(stored.id);
  const size_t candidates = stored.frontier->num_candidates();
  CheckDoneLocked(stored);
  ScheduleLocked();
  EmitLocked(stored, absl::StrCat("job ", stored.id, " started: ", candidates, " candidates"));
  return StatusLocked(stored);
}

absl::StatusOr<Coordinator::Job*> Coordinator::FindJobLocked(const std::string& job_id) {
  int64_t id = 0;
  if (!absl::SimpleAtoi(job_id, &id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("job id '", job_id, "' is not a number: see `farm status` for job ids"));
  }
  auto it = jobs_.find(id);
  if (it != jobs_.end()) return &it->second;
  // An ended job from an earlier run: load its record (not its graph).
  absl::StatusOr<Store::JobRow> row = store_->LoadJob(id);
  if (!row.ok()) {
    return absl::NotFoundError(absl::StrCat("no job ", job_id, ": see `farm status`"));
  }
  Job& job = jobs_[id];
  job.id = id;
  job.spec = row->spec;
  job.state = row->state;
  job.first_bad = row->first_bad;
  job.error = row->error;
  job.created_unix = row->created_unix;
  job.elapsed_seconds = row->elapsed_seconds;
  FARM_ASSIGN_OR_RETURN(std::vector<v1::TaskSummary> tasks, store_->LoadTasks(id));
  for (auto& t : tasks) {
    if (t.state() != v1::TASK_RUNNING) job.finished.push_back(t);
  }
  job.report = row->report;
  job.stored_bisect_log = row->bisect_log;
  return &job;
}

void Coordinator::PruneLocked(Job& job) {
  if (job.flaky) return;  // every run is evidence until the posterior is confident
  std::vector<std::string> ids(job.running.begin(), job.running.end());
  // One event for all of them: a verdict can rule out a hundred speculative tasks at once.
  std::vector<std::string> ruled_out;
  for (const std::string& id : ids) {
    Task& t = tasks_[id];
    if (!job.frontier->IsCandidate(t.commit)) {
      CancelTaskLocked(t, "a newer verdict ruled this commit out", /*emit=*/false);
      ruled_out.push_back(Short(job.graph->Hex(t.commit)));
    } else if (job.frontier->IsSkipped(t.commit)) {
      CancelTaskLocked(t, "this commit was skipped");
    }
  }
  if (ruled_out.size() == 1) {
    EmitLocked(job,
               absl::StrCat("cancelled ", ruled_out[0], ": a newer verdict ruled this commit out"));
  } else if (ruled_out.size() > 1) {
    size_t shown = std::min<size_t>(ruled_out.size(), 8);
    EmitLocked(job, absl::StrCat("cancelled ", ruled_out.size(), " tasks (",
                                 absl::StrJoin(ruled_out.begin(), ruled_out.begin() + shown, " "),
                                 shown < ruled_out.size() ? " ..." : "",
                                 "): a newer verdict ruled these commits out"));
  }
}

bool Coordinator::QuarantinedLocked(const std::string& agent_id, absl::Time now) {
  if (quarantined_ == 0) return false;
  auto h = health_.find(agent_id);
  return h != health_.end() && h->second.quarantined_until > now;
}

// The free slots of one ScheduleLocked call: one entry per free slot (an agent with two free
// slots is there twice).
struct Coordinator::FreeSlots {
  std::vector<Session*> slots;
  std::vector<bool> used;
  size_t left = 0;
  absl::Time now;
  // Agents that can take work now; computed the first time a commit that failed somewhere needs
  // it.
  std::set<std::string> usable;
  bool usable_known = false;
};

void Coordinator::ScheduleLocked() {
  if (stopping_ || running_jobs_.empty()) return;
  FreeSlots free;
  free.now = absl::Now();
  for (uint64_t id : free_sessions_) {
    Session& s = sessions_[id];
    if (QuarantinedLocked(s.hello.agent_id(), free.now)) continue;
    for (size_t i = s.tasks.size(); i < s.hello.slots(); ++i) free.slots.push_back(&s);
  }
  if (free.slots.empty()) return;
  free.used.assign(free.slots.size(), false);
  free.left = free.slots.size();
  // Max-min fair share: each free slot goes to the job with the fewest tasks running, ties to the
  // job after the one dealt last. A job whose verdict just came in (its tasks pruned) is served
  // first, and no job can hold more than one slot over another's share while the other waits. A
  // job plans only when its turn comes, and keeps its plan until a finished task changes what is
  // worth testing: a freed slot costs at most one plan of one job, not a plan of every job.
  using Turn = std::tuple<size_t, size_t, int64_t>;  // running tasks, rotation rank, job id
  std::vector<Turn> turns;
  turns.reserve(running_jobs_.size());
  auto pivot = running_jobs_.upper_bound(dealt_last_);
  size_t rank = 0;
  for (auto it = pivot; it != running_jobs_.end(); ++it) {
    turns.emplace_back(jobs_[*it].running.size(), rank++, *it);
  }
  for (auto it = running_jobs_.begin(); it != pivot; ++it) {
    turns.emplace_back(jobs_[*it].running.size(), rank++, *it);
  }
  std::priority_queue<Turn, std::vector<Turn>, std::greater<Turn>> queue(std::greater<Turn>(),
                                                                         std::move(turns));
  while (free.left > 0 && !queue.empty()) {
    auto [running, order, id] = queue.top();
    queue.pop();
    auto it = jobs_.find(id);
    if (it == jobs_.end() || it->second.state != v1::RUNNING) continue;
    size_t share = (free.left + queue.size()) / (queue.size() + 1);
    if (DealOneLocked(it->second, free, std::max<size_t>(1, share))) {
      dealt_last_ = id;
      queue.emplace(it->second.running.size(), order, id);
    }
  }
}

bool Coordinator::DealOneLocked(Job& job, FreeSlots& free, size_t share) {
  const size_t cap = job.spec.max_parallel();
  // The free slot where `c` is cheapest to test, or -1. A commit that failed infrastructure-wise
  // on an agent goes to another agent when one is free; only when every usable agent has failed
  // it does it go back to one of them (so a lone agent still reaches the attempt limit).
  auto pick = [&](CommitId c) {
    mu_.AssertHeld();
    const std::set<std::string>* failed = nullptr;
    if (auto f = job.infra_agents.find(c); f != job.infra_agents.end()) failed = &f->second;
    bool everyone_failed = false;
    if (failed != nullptr) {
      if (!free.usable_known) {
        free.usable_known = true;
        for (auto& [id, s] : sessions_) {
          if (s.connected && !QuarantinedLocked(s.hello.agent_id(), free.now)) {
            free.usable.insert(s.hello.agent_id());
          }
        }
      }
      everyone_failed =
          std::includes(failed->begin(), failed->end(), free.usable.begin(), free.usable.end());
    }
    std::vector<size_t> eligible;
    for (size_t i = 0; i < free.slots.size(); ++i) {
      if (free.used[i]) continue;
      if (failed && !everyone_failed && failed->count(free.slots[i]->hello.agent_id())) continue;
      eligible.push_back(i);
    }
    if (eligible.size() <= 1 || !job.move_cost) {
      return eligible.empty() ? -1 : static_cast<int>(eligible[0]);
    }
    // Cost-aware placement: the agent whose worktree is nearest (fewest files to change, so the
    // cheapest incremental build); an agent that last tested another job starts afresh.
    int best = -1;
    double best_cost = 0;
    double fresh_cost = -1;
    for (size_t i : eligible) {
      Session* s = free.slots[i];
      double cost = 0;
      if (s->last_job == job.id && s->last_commit) {
        cost = job.move_cost(s->last_commit, c);
      } else {
        if (fresh_cost < 0) fresh_cost = job.move_cost(std::nullopt, c);
        cost = fresh_cost;
      }
      if (best < 0 || cost < best_cost) {
        best = static_cast<int>(i);
        best_cost = cost;
        if (cost == 0) break;
      }
    }
    return best;
  };
  while (job.state == v1::RUNNING && job.frontier) {
    if (cap > 0 && job.running.size() >= cap) return false;
    if (job.plan_key != job.PlanKey()) {
      job.plan.clear();
      job.plan_exhausted = false;
      job.plan_key = job.PlanKey();
    }
    if (job.plan.empty()) {
      if (job.plan_exhausted) return false;
      // Ask for a few more than the share, so that a commit some agent cannot take (it failed
      // there) leaves room for the next one.
      size_t want = share + std::min<size_t>(job.infra_agents.size(), share);
      if (cap > 0) want = std::min(want, cap - job.running.size());
      std::vector<CommitId> in_flight;
      for (const std::string& tid : job.running) {
        if (auto t = tasks_.find(tid); t != tasks_.end()) in_flight.push_back(t->second.commit);
      }
      if (job.flaky) {
        job.plan = job.flaky->NextProbes(want, in_flight);
      } else {
        PlanRequest req;
        req.in_flight = std::move(in_flight);
        req.free_slots = want;
        job.plan = PlanNext(*job.frontier, req).start;
      }
      if (job.plan.size() > want) job.plan.resize(want);
      job.plan_exhausted = job.plan.size() < want;
      if (job.plan.empty()) return false;
    }
    bool reused = false;
    for (size_t i = 0; i < job.plan.size(); ++i) {
      CommitId c = job.plan[i];
      if (!job.flaky && ReuseLocked(job, c)) {
        reused = true;  // the frontier moved: plan again
        break;
      }
      int slot = pick(c);
      if (slot < 0) continue;
      job.plan.erase(job.plan.begin() + i);
      free.used[slot] = true;
      --free.left;
      StartTaskLocked(job, c, *free.slots[slot]);
      return true;
    }
    if (!reused) return false;  // no free slot can take any planned commit
  }
  return false;
}

const std::string& Coordinator::TreeLocked(Job& job, CommitId id) {
  auto it = job.trees.find(id);
  if (it != job.trees.end()) return it->second;
  std::string tree;
  git_commit* commit = nullptr;
  if (job.repo && git_commit_lookup(&commit, job.repo.get(), &job.graph->oid(id)) == 0) {
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), git_commit_tree_id(commit));
    tree = hex;
    git_commit_free(commit);
  }
  return job.trees[id] = tree;
}

bool Coordinator::ReuseLocked(Job& job, CommitId commit) {
  if (job.spec.no_reuse()) return false;
  const std::string& tree = TreeLocked(job, commit);
  if (tree.empty()) return false;
  absl::StatusOr<std::optional<Store::TreeVerdict>> known =
      store_->GetTreeVerdict(tree, job.recipe_digest);
  if (!known.ok() || !known->has_value()) return false;
  v1::TaskSummary s;
  s.set_task_id(absl::StrCat(job.id, ".", ++job.task_counter));
  s.set_commit(job.graph->Hex(commit));
  s.set_subject(SubjectLocked(job, commit));
  s.set_agent("reused");
  s.set_state(v1::TASK_DONE);
  s.set_verdict((*known)->verdict);
  s.set_reused(true);
  s.set_reused_from((*known)->task_id);
  s.set_detail(absl::StrCat("same tree as task ", (*known)->task_id));
  ++counters_.reused;
  bool applied = job.frontier->Apply(commit, FromProto(s.verdict()));
  s.set_applied(applied);
  PersistTaskLocked(job, s, ++job.verdict_seq);
  job.finished.push_back(s);
  if (applied) job.applied.emplace_back(commit, FromProto(s.verdict()));
  EmitLocked(job, absl::StrCat(Short(s.commit()), " reused verdict of task ", s.reused_from(),
                               " (same tree, same recipe)"));
  PruneLocked(job);
  CheckDoneLocked(job);
  return true;
}

void Coordinator::StartTaskLocked(Job& job, CommitId commit, Session& session) {
  std::string id = absl::StrCat(job.id, ".", ++job.task_counter);
  Task& t = tasks_[id];
  t.id = id;
  t.job_id = job.id;
  t.commit = commit;
  t.session = session.id;
  t.agent_id = session.hello.agent_id();
  t.started = absl::Now();
  t.lease_expiry = t.started + options_.lease;
  session.tasks.insert(id);
  RefreshFreeLocked(session);
  session.last_job = job.id;
  session.last_commit = commit;
  job.running.insert(id);
  PersistTaskLocked(job, SummaryLocked(job, t), 0);

  v1::CoordinatorMessage msg;
  v1::Assign* a = msg.mutable_assign();
  a->set_task_id(id);
  a->set_job_id(absl::StrCat(job.id));
  a->set_repo(job.spec.repo());
  a->set_commit(job.graph->Hex(commit));
  *a->mutable_recipe() = job.spec.recipe();
  session.channel->Send(msg);
  ++counters_.assigns;
  assign_latency_[static_cast<int>(trigger_kind_)].Observe(
      absl::ToDoubleSeconds(absl::Now() - trigger_));
  EmitLocked(job, absl::StrCat("testing ", Short(job.graph->Hex(commit)), " on ", t.agent_id));
}

void Coordinator::CancelTaskLocked(Task& task, const std::string& why, bool emit) {
  Job& job = jobs_[task.job_id];
  auto sit = sessions_.find(task.session);
  if (sit != sessions_.end() && sit->second.connected) {
    v1::CoordinatorMessage msg;
    msg.mutable_cancel()->set_task_id(task.id);
    sit->second.channel->Send(msg);
  }
  task.state = v1::TASK_CANCELLED;
  ++counters_.cancelled;
  v1::TaskSummary s = SummaryLocked(job, task);
  s.set_detail(why);
  PersistTaskLocked(job, s, 0);
  job.finished.push_back(s);
  // The slot stays taken until the agent confirms the process group is gone.
  job.running.erase(task.id);
  if (emit)
    EmitLocked(job, absl::StrCat("cancelled ", Short(job.graph->Hex(task.commit)), ": ", why));
}

void Coordinator::ReleaseTaskLocked(Task& task) {
  auto sit = sessions_.find(task.session);
  if (sit != sessions_.end()) {
    sit->second.tasks.erase(task.id);
    RefreshFreeLocked(sit->second);
  }
  jobs_[task.job_id].running.erase(task.id);
}

v1::TaskSummary Coordinator::SummaryLocked(Job& job, const Task& task) {
  v1::TaskSummary s;
  s.set_task_id(task.id);
  s.set_commit(job.graph->Hex(task.commit));
  s.set_subject(SubjectLocked(job, task.commit));
  s.set_agent(task.agent_id);
  s.set_state(task.state);
  s.set_phase(task.phase);
  s.set_seconds(absl::ToDoubleSeconds(absl::Now() - task.started));
  return s;
}

void Coordinator::PersistTaskLocked(Job& job, const v1::TaskSummary& summary, int64_t seq) {
  absl::Status st = store_->PutTask(job.id, seq, summary);
  if (!st.ok()) {
    std::fprintf(stderr, "farm-coordinator: cannot store task %s: %s\n", summary.task_id().c_str(),
                 std::string(st.message()).c_str());
  }
}

void Coordinator::PersistJobLocked(Job& job) {
  Store::JobRow row;
  row.id = job.id;
  row.spec = job.spec;
  row.state = job.state;
  row.first_bad = job.first_bad;
  row.error = job.error;
  row.bisect_log = job.frontier ? BisectLogLocked(job) : job.stored_bisect_log;
  row.report = job.report;
  row.created_unix = job.created_unix;
  row.elapsed_seconds = job.elapsed_seconds;
  absl::Status st = store_->UpdateJob(row);
  if (!st.ok()) {
    std::fprintf(stderr, "farm-coordinator: cannot store job %lld: %s\n",
                 static_cast<long long>(job.id), std::string(st.message()).c_str());
  }
}

void Coordinator::OnResultLocked(Session& session, const v1::TaskResult& result) {
  session.tasks.erase(result.task_id());
  RefreshFreeLocked(session);
  auto it = tasks_.find(result.task_id());
  if (it == tasks_.end()) return;  // an attempt from before a restart that is already counted
  Task& task = it->second;
  if (task.agent_id != session.hello.agent_id()) {
    // Only the agent a task was given to may report it (the same agent after a reconnect is
    // fine); anything else is ignored, and frees nothing.
    std::fprintf(stderr, "farm-coordinator: agent %s reported task %s of agent %s: ignored\n",
                 session.hello.agent_id().c_str(), task.id.c_str(), task.agent_id.c_str());
    return;
  }
  Job& job = jobs_[task.job_id];
  bool was_open = task.state == v1::TASK_RUNNING || task.state == v1::TASK_LOST;
  ReleaseTaskLocked(task);
  if (!was_open || result.cancelled() || job.state != v1::RUNNING) {
    tasks_.erase(it);
    ScheduleLocked();
    return;
  }
  v1::TaskSummary s = SummaryLocked(job, task);
  s.set_detail(result.detail());
  s.set_retried_pristine(result.retried_pristine());
  s.set_retry_reason(result.retry_reason());
  s.set_seconds(result.checkout_seconds() + result.build_seconds() + result.test_seconds());
  if (result.has_kernel_build()) *s.mutable_kernel_build() = result.kernel_build();
  std::string what;
  AgentHealth& health = health_[task.agent_id];
  if (result.outcome_case() == v1::TaskResult::kJobError) {
    // The job's own input cannot run (farm.proto): no agent would do better, and this one is
    // not at fault, so its health is untouched. The task is kept for `farm log`.
    s.set_state(v1::TASK_INFRA_ERROR);
    s.set_detail(result.job_error());
    PersistTaskLocked(job, s, 0);
    job.finished.push_back(s);
    tasks_.erase(it);
    EndJobLocked(job, v1::FAILED,
                 absl::StrCat("the test cannot run: ", s.detail(), " (commit ", Short(s.commit()),
                              " on ", s.agent(), "); fix the test and submit again"));
    ScheduleLocked();
    return;
  }
  std::string infra_error = result.infra_error();
  bool verdict =
      result.outcome_case() == v1::TaskResult::kVerdict &&
      (result.verdict() == v1::GOOD || result.verdict() == v1::BAD || result.verdict() == v1::SKIP);
  if (!verdict && infra_error.empty()) {
    infra_error = "the agent's result has neither a verdict nor an error";
  }
  if (!infra_error.empty()) {
    if (++health.consecutive_infra_errors >= options_.quarantine_after) {
      if (health.quarantined_until == absl::InfinitePast()) ++quarantined_;
      ++counters_.quarantines;
      health.quarantined_until = absl::Now() + options_.quarantine;
      health.reason = absl::StrCat(health.consecutive_infra_errors,
                                   " infrastructure errors in a row, the last: ", infra_error);
      health.consecutive_infra_errors = 0;
      std::fprintf(stderr, "farm-coordinator: agent %s quarantined for %s: %s\n",
                   task.agent_id.c_str(), absl::FormatDuration(options_.quarantine).c_str(),
                   health.reason.c_str());
    }
    s.set_state(v1::TASK_INFRA_ERROR);
    ++counters_.infra_errors;
    s.set_detail(infra_error);
    int failures = ++job.infra_failures[task.commit];
    job.infra_agents[task.commit].insert(task.agent_id);
    PersistTaskLocked(job, s, 0);
    job.finished.push_back(s);
    what =
        absl::StrCat(Short(s.commit()), " could not be tested on ", task.agent_id, ": ",
                     infra_error, " (attempt ", failures, " of ", options_.max_infra_attempts, ")");
    if (failures >= options_.max_infra_attempts) {
      EndJobLocked(job, v1::FAILED,
                   absl::StrCat("commit ", s.commit(), " could not be tested: ", failures,
                                " attempts failed with infrastructure errors (last: ", infra_error,
                                "); see `farm log ", job.id, " ", Short(s.commit()), "`"));
    }
  } else {
    health.consecutive_infra_errors = 0;
    s.set_state(v1::TASK_DONE);
    s.set_verdict(result.verdict());
    ++(result.verdict() == v1::GOOD  ? counters_.verdicts_good
       : result.verdict() == v1::BAD ? counters_.verdicts_bad
                                     : counters_.verdicts_skip);
    bool applied = job.flaky ? job.flaky->Observe(task.commit, FromProto(result.verdict())).ok()
                             : job.frontier->Apply(task.commit, FromProto(result.verdict()));
    s.set_applied(applied);
    if (const std::string& tree = TreeLocked(job, task.commit); !tree.empty() && !job.flaky) {
      absl::Status st = store_->PutTreeVerdict(tree, job.recipe_digest, result.verdict(), task.id);
      if (!st.ok()) {
        std::fprintf(stderr, "farm-coordinator: cannot store a reusable verdict: %s\n",
                     std::string(st.message()).c_str());
      }
    }
    PersistTaskLocked(job, s, ++job.verdict_seq);
    job.finished.push_back(s);
    if (applied && !job.flaky) job.applied.emplace_back(task.commit, FromProto(result.verdict()));
    const std::string& term =
        result.verdict() == v1::GOOD  ? (job.spec.term_old().empty() ? "good" : job.spec.term_old())
        : result.verdict() == v1::BAD ? (job.spec.term_new().empty() ? "bad" : job.spec.term_new())
                                      : std::string("skip");
    what = absl::StrFormat("%s %s in %.1fs on %s%s%s", Short(s.commit()), term, s.seconds(),
                           task.agent_id, result.retried_pristine() ? " (retried pristine: " : "",
                           result.retried_pristine() ? result.retry_reason() + ")" : "");
    if (!applied) absl::StrAppend(&what, " (already decided)");
    PruneLocked(job);
    CheckDoneLocked(job);
  }
  tasks_.erase(it);
  if (job.state == v1::RUNNING) EmitLocked(job, what);
  ScheduleLocked();
}

void Coordinator::CheckDoneLocked(Job& job) {
  if (job.state != v1::RUNNING) return;
  if (job.flaky) {
    if (!job.flaky->Done()) return;
    job.first_bad.clear();
    if (job.flaky->Inconclusive()) {
      for (auto& [id, p] : job.flaky->Top(5)) job.first_bad.push_back(job.graph->Hex(id));
      EndJobLocked(job, v1::AMBIGUOUS, "");
    } else {
      job.first_bad.push_back(job.graph->Hex(job.flaky->Best()));
      EndJobLocked(job, v1::FOUND, "");
    }
    return;
  }
  if (!job.frontier->Done()) return;
  job.first_bad.clear();
  for (CommitId id : job.frontier->Candidates()) job.first_bad.push_back(job.graph->Hex(id));
  if (job.first_bad.size() == 1) ExplainMergeLocked(job);
  EndJobLocked(job, job.first_bad.size() == 1 ? v1::FOUND : v1::AMBIGUOUS, "");
}

void Coordinator::ExplainMergeLocked(Job& job) {
  git_commit* merge = nullptr;
  if (!job.repo ||
      git_commit_lookup(&merge, job.repo.get(), &job.graph->oid(job.frontier->bad()))) {
    return;
  }
  unsigned parents = git_commit_parentcount(merge);
  std::vector<std::string> parent_hex;
  for (unsigned i = 0; i < parents; ++i) {
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), git_commit_parent_id(merge, i));
    parent_hex.push_back(hex);
  }
  git_commit_free(merge);
  if (parents < 2) return;
  const std::string& m = job.first_bad[0];
  if (job.parent_job != 0 && job.spec.bad() == m) {
    job.merge_note = absl::StrCat(
        "The merge ", Short(m),
        " is itself the first bad commit and every commit on the branch it "
        "merged tests good: the breakage comes from combining the branches (a semantic conflict), "
        "not from one commit on them.\n");
    return;
  }
  if (!job.spec.descend()) {
    job.merge_note = absl::StrCat(Short(m), " is a merge",
                                  job.spec.first_parent() ? " (with --first-parent the branches it "
                                                            "merged were not bisected)"
                                                          : "",
                                  ": run again with --descend to bisect the branch it merged (",
                                  Short(parent_hex[0]), "..", Short(m), ").\n");
    return;
  }
  // The follow-up job: the branch the merge brought in, every parent followed.
  v1::BisectSpec spec = job.spec;
  spec.clear_good();
  spec.add_good(parent_hex[0]);
  spec.set_bad(m);
  spec.clear_skip();
  spec.set_first_parent(false);
  Job child;
  child.spec = spec;
  child.created_unix = absl::ToUnixSeconds(absl::Now());
  child.started = absl::Now();
  child.parent_job = job.id;
  absl::Status st = LoadJobLocked(child);
  absl::StatusOr<int64_t> id = st.ok() ? store_->InsertJob(spec, child.created_unix) : st;
  if (!id.ok()) {
    job.merge_note = absl::StrCat(
        Short(m), " is a merge; descending into it failed: ", id.status().message(), "\n");
    return;
  }
  child.id = *id;
  job.descended_job = child.id;
  job.merge_note = absl::StrCat(Short(m), " is a merge: descending into the branch it merged (",
                                Short(parent_hex[0]), "..", Short(m), ") as job ", child.id, ".\n");
  Job& stored = jobs_[child.id];
  stored = std::move(child);
  running_jobs_.insert(stored.id);
  CheckDoneLocked(stored);
  // Scheduling happens when the caller's ScheduleLocked runs.
}

void Coordinator::EndJobLocked(Job& job, v1::JobState state, const std::string& error) {
  running_jobs_.erase(job.id);
  job.state = state;
  ++(state == v1::FOUND       ? counters_.ended_found
     : state == v1::AMBIGUOUS ? counters_.ended_ambiguous
     : state == v1::CANCELLED ? counters_.ended_cancelled
                              : counters_.ended_failed);
  job.error = error;
  job.elapsed_seconds = absl::ToDoubleSeconds(absl::Now() - job.started);
  for (auto it = tasks_.begin(); it != tasks_.end();) {
    it = (it->second.job_id == job.id && it->second.state == v1::TASK_LOST) ? tasks_.erase(it)
                                                                            : std::next(it);
  }
  // The report first: every event from here on (the cancellations too) is terminal and a watcher
  // stops at the first one it sees.
  if (job.frontier) job.report = ReportLocked(job);
  PersistJobLocked(job);
  std::vector<std::string> ids(job.running.begin(), job.running.end());
  for (const std::string& id : ids) {
    CancelTaskLocked(tasks_[id],
                     state == v1::CANCELLED ? "the job was cancelled" : "the job has ended");
  }
  std::string what = state == v1::FOUND       ? absl::StrCat("found ", Short(job.first_bad[0]))
                     : state == v1::AMBIGUOUS ? "only skipped commits left"
                     : state == v1::CANCELLED ? "cancelled"
                                              : absl::StrCat("failed: ", error);
  EmitLocked(job, what);
  ReleaseJobLocked(job);
}

void Coordinator::ReleaseJobLocked(Job& job) {
  if (!job.frontier) return;
  job.stored_bisect_log = BisectLogLocked(job);
  if (job.flaky) job.final_confidence = job.flaky->Confidence();
  job.move_cost = nullptr;  // refers to the repository
  job.flaky.reset();
  job.frontier.reset();
  job.graph.reset();
  job.repo.reset();
  job.applied = {};
  job.infra_failures = {};
  job.infra_agents = {};
  job.subjects = {};
  job.trees = {};
  job.plan = {};
  trim_wanted_ = true;
}

const std::string& Coordinator::SubjectLocked(Job& job, CommitId id) {
  auto it = job.subjects.find(id);
  if (it != job.subjects.end()) return it->second;
  std::string subject;
  if (job.repo) {
    absl::StatusOr<CommitInfo> info = GetCommitInfo(job.repo.get(), job.graph->oid(id));
    if (info.ok()) subject = info->subject;
  }
  return job.subjects[id] = subject;
}

std::string Coordinator::BisectLogLocked(Job& job) {
  if (job.flaky) {
    std::string log =
        "# flaky mode: commits were tested several times with conflicting results, which\n"
        "# git bisect replay cannot express. The runs, in order:\n";
    for (const v1::TaskSummary& t : job.finished) {
      if (t.state() != v1::TASK_DONE) continue;
      absl::StrAppend(&log, "# ",
                      t.verdict() == v1::BAD    ? "bad "
                      : t.verdict() == v1::GOOD ? "good"
                                                : "skip",
                      " ", t.commit(), " ", t.subject(), "\n");
    }
    return log;
  }
  const std::string term_old = job.spec.term_old().empty() ? "good" : job.spec.term_old();
  const std::string term_new = job.spec.term_new().empty() ? "bad" : job.spec.term_new();
  std::string log;
  auto line = [&](const std::string& word, CommitId id) {
    const std::string hex = job.graph->Hex(id);
    absl::StrAppend(&log, "# ", word, ": [", hex, "] ", SubjectLocked(job, id), "\n", "git bisect ",
                    word, " ", hex, "\n");
  };
  std::string start = "git bisect start";
  if (!job.spec.term_old().empty()) {
    absl::StrAppend(&start, " ", ShellQuote("--term-old=" + term_old), " ",
                    ShellQuote("--term-new=" + term_new));
  }
  if (job.spec.first_parent()) absl::StrAppend(&start, " '--first-parent'");
  absl::StrAppend(&start, " ", ShellQuote(job.spec.bad()));
  for (const std::string& g : job.spec.good()) absl::StrAppend(&start, " ", ShellQuote(g));
  absl::StrAppend(&log, start, "\n");
  for (const std::string& s : job.spec.skip()) {
    git_oid oid;
    git_oid_fromstr(&oid, s.c_str());
    if (std::optional<CommitId> id = job.graph->Find(oid)) line("skip", *id);
  }
  for (auto& [id, v] : job.applied) {
    line(v == Verdict::kGood ? term_old : v == Verdict::kBad ? term_new : "skip", id);
  }
  if (job.state == v1::FOUND) {
    absl::StrAppend(&log, "# first ", term_new, " commit: [", job.first_bad[0], "] ",
                    SubjectLocked(job, job.frontier->bad()), "\n");
  } else if (job.state == v1::AMBIGUOUS) {
    for (CommitId id : job.frontier->Candidates()) {
      absl::StrAppend(&log, "# possible first ", term_new, " commit: [", job.graph->Hex(id), "] ",
                      SubjectLocked(job, id), "\n");
    }
  }
  return log;
}

std::string Coordinator::ReportLocked(Job& job) {
  const std::string term_new = job.spec.term_new().empty() ? "bad" : job.spec.term_new();
  std::string report;
  if (job.flaky && (job.state == v1::FOUND || job.state == v1::AMBIGUOUS)) {
    FlakyBisect& f = *job.flaky;
    if (job.state == v1::FOUND) {
      absl::StrAppend(&report, job.first_bad[0], " is the first ", term_new, " commit\n");
      absl::StatusOr<std::string> show = ShowCommit(job.repo.get(), job.graph->oid(f.Best()));
      if (show.ok()) absl::StrAppend(&report, *show);
    } else {
      absl::StrAppend(&report, "No candidate reached the requested confidence; the most likely:\n");
    }
    absl::StrAppendFormat(&report,
                          "\nFlaky mode: confidence %.4f after %d runs (false-pass rate %.3f, "
                          "false-fail rate %.3f%s). Most likely culprits:\n",
                          f.Confidence(), f.probes(), f.false_pass(), f.false_fail(),
                          job.spec.flaky().rfind("learn", 0) == 0 ? ", learnt" : "");
    for (auto& [id, p] : f.Top(5)) {
      absl::StrAppendFormat(&report, "  %.4f  %s %s (%d runs)\n", p, Short(job.graph->Hex(id)),
                            SubjectLocked(job, id), f.runs_at(id));
    }
    return report;
  }
  if (job.state == v1::FOUND) {
    absl::StrAppend(&report, job.first_bad[0], " is the first ", term_new, " commit\n");
    absl::StatusOr<std::string> show =
        ShowCommit(job.repo.get(), job.graph->oid(job.frontier->bad()));
    if (show.ok()) absl::StrAppend(&report, *show);
    if (!job.merge_note.empty()) absl::StrAppend(&report, "\n", job.merge_note);
  } else if (job.state == v1::AMBIGUOUS) {
    absl::StrAppend(&report, "There are only 'skip'ped commits left to test.\nThe first ", term_new,
                    " commit could be any of:\n");
    for (const std::string& c : job.first_bad) absl::StrAppend(&report, c, "\n");
    absl::StrAppend(&report, "We cannot bisect more!\n");
  } else if (job.state == v1::FAILED) {
    absl::StrAppend(&report, "bisect failed: ", job.error, "\n");
  } else if (job.state == v1::CANCELLED) {
    absl::StrAppend(&report, "bisect cancelled\n");
  }
  std::vector<std::string> retried;
  for (const v1::TaskSummary& t : job.finished) {
    if (t.retried_pristine()) {
      retried.push_back(
          absl::StrCat("  ", Short(t.commit()), " ", t.subject(), ": ", t.retry_reason()));
    }
  }
  if (!retried.empty()) {
    absl::StrAppend(&report, "\nRetried in a pristine worktree before counting as a skip:\n",
                    absl::StrJoin(retried, "\n"), "\n");
  }
  std::vector<std::string> reused;
  for (const v1::TaskSummary& t : job.finished) {
    if (t.reused()) {
      reused.push_back(absl::StrCat("  ", Short(t.commit()), " ", t.subject(), ": ",
                                    t.verdict() == v1::GOOD  ? "good"
                                    : t.verdict() == v1::BAD ? "bad"
                                                             : "skip",
                                    " (from task ", t.reused_from(), ")"));
    }
  }
  if (!reused.empty()) {
    absl::StrAppend(&report, "\nReused verdicts (same tree, same recipe; --no-reuse to retest):\n",
                    absl::StrJoin(reused, "\n"), "\n");
  }
  return report;
}

v1::JobStatus Coordinator::StatusLocked(Job& job, bool full) {
  v1::JobStatus st;
  st.set_job_id(absl::StrCat(job.id));
  st.set_state(job.state);
  if (full) {
    *st.mutable_spec() = job.spec;
    // The payloads can be megabytes: a status names the job, it does not carry them.
    st.mutable_spec()->mutable_recipe()->clear_test_script();
    if (st.spec().recipe().has_boot()) {
      st.mutable_spec()->mutable_recipe()->mutable_boot()->clear_payload();
    }
  }
  if (job.frontier) {
    st.set_candidates(job.frontier->num_candidates());
    st.set_testable(job.frontier->num_testable());
    size_t k = std::max<size_t>(1, job.spec.max_parallel()
                                       ? std::min<size_t>(job.spec.max_parallel(), connected_slots_)
                                       : connected_slots_);
    st.set_rounds_left(job.state == v1::RUNNING ? EstimateRoundsLeft(*job.frontier, k) : 0);
  } else if (IsTerminal(job.state)) {
    st.set_candidates(job.first_bad.size());
  }
  for (const std::string& id : job.running) {
    auto it = tasks_.find(id);
    if (it != tasks_.end()) *st.add_running() = SummaryLocked(job, it->second);
  }
  if (full) {
    for (const v1::TaskSummary& t : job.finished) *st.add_finished() = t;
    st.set_bisect_log(job.frontier ? BisectLogLocked(job) : job.stored_bisect_log);
  }
  for (const std::string& c : job.first_bad) st.add_first_bad(c);
  st.set_error(job.error);
  st.set_created_unix(job.created_unix);
  st.set_elapsed_seconds(job.state == v1::RUNNING ? absl::ToDoubleSeconds(absl::Now() - job.started)
                                                  : job.elapsed_seconds);
  st.set_agents_connected(connected_agents_);
  st.set_report(job.report);
  if (job.flaky) {
    st.set_confidence(job.flaky->Confidence());
  } else if (job.final_confidence != 0) {
    st.set_confidence(job.final_confidence);
  }
  if (job.descended_job) st.set_descended_job(absl::StrCat(job.descended_job));
  if (job.parent_job) st.set_parent_job(absl::StrCat(job.parent_job));
  return st;
}

void Coordinator::EmitLocked(Job& job, const std::string& message) {
  bool any = false;
  for (auto& [id, w] : watchers_) any |= w.job_id == job.id;
  ++job.event_seq;
  if (!any) return;
  v1::JobEvent ev;
  ev.set_seq(job.event_seq);
  ev.set_message(message);
  // Events of a running job carry the light status (progress, running tasks); the last one
  // carries everything.
  *ev.mutable_status() = StatusLocked(job, /*full=*/IsTerminal(job.state));
  for (auto& [id, w] : watchers_) {
    if (w.job_id == job.id) w.fn(ev);
  }
}

absl::StatusOr<v1::JobStatus> Coordinator::GetJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  FARM_ASSIGN_OR_RETURN(Job * job, FindJobLocked(job_id));
  return StatusLocked(*job);
}

absl::StatusOr<std::vector<v1::JobStatus>> Coordinator::ListJobs(size_t limit) {
  absl::MutexLock lock(&mu_);
  FARM_ASSIGN_OR_RETURN(std::vector<Store::JobRow> rows, store_->LoadJobs(false, limit));
  std::vector<v1::JobStatus> out;
  for (const Store::JobRow& row : rows) {
    FARM_ASSIGN_OR_RETURN(Job * job, FindJobLocked(absl::StrCat(row.id)));
    v1::JobStatus st = StatusLocked(*job);
    st.clear_finished();
    st.clear_bisect_log();
    out.push_back(std::move(st));
  }
  return out;
}

absl::StatusOr<v1::JobStatus> Coordinator::CancelJob(const std::string& job_id) {
  const absl::Time arrived = absl::Now();
  absl::MutexLock lock(&mu_);
  trigger_ = arrived;
  trigger_kind_ = Trigger::kCancel;
  FARM_ASSIGN_OR_RETURN(Job * job, FindJobLocked(job_id));
  Store::Batch batch(*store_);
  if (job->state == v1::RUNNING) EndJobLocked(*job, v1::CANCELLED, "cancelled by the user");
  ScheduleLocked();
  return StatusLocked(*job);
}

std::vector<v1::AgentInfo> Coordinator::ListAgents() {
  absl::MutexLock lock(&mu_);
  std::vector<v1::AgentInfo> out;
  for (auto& [id, s] : sessions_) {
    v1::AgentInfo a;
    a.set_agent_id(s.hello.agent_id());
    a.set_hostname(s.hello.hostname());
    a.set_slots(s.hello.slots());
    for (const std::string& t : s.tasks) a.add_running_tasks(t);
    a.set_connected(s.connected);
    *a.mutable_capabilities() = s.hello.capabilities();
    a.set_last_seen_seconds_ago(absl::ToDoubleSeconds(absl::Now() - s.last_seen));
    auto h = health_.find(s.hello.agent_id());
    if (h != health_.end() && h->second.quarantined_until > absl::Now()) {
      a.set_quarantined(true);
      a.set_quarantine_reason(h->second.reason);
      a.set_quarantined_for_seconds(
          absl::ToDoubleSeconds(h->second.quarantined_until - absl::Now()));
    }
    out.push_back(std::move(a));
  }
  return out;
}

absl::StatusOr<std::vector<v1::TaskLog>> Coordinator::GetTaskLog(const std::string& job_id,
                                                                 const std::string& commit) {
  absl::MutexLock lock(&mu_);
  FARM_ASSIGN_OR_RETURN(Job * job, FindJobLocked(job_id));
  return store_->ReadLogs(job->id, commit);
}

absl::StatusOr<uint64_t> Coordinator::Watch(const std::string& job_id, WatchFn fn) {
  absl::MutexLock lock(&mu_);
  FARM_ASSIGN_OR_RETURN(Job * job, FindJobLocked(job_id));
  uint64_t id = next_watch_++;
  v1::JobEvent ev;
  ev.set_seq(job->event_seq);
  ev.set_message("attached");
  *ev.mutable_status() = StatusLocked(*job);
  fn(ev);
  if (!IsTerminal(job->state)) watchers_[id] = Watcher{job->id, std::move(fn)};
  return id;
}

void Coordinator::Unwatch(uint64_t watch_id) {
  absl::MutexLock lock(&mu_);
  watchers_.erase(watch_id);
}

absl::StatusOr<uint64_t> Coordinator::Connect(const v1::Hello& hello,
                                              std::shared_ptr<AgentChannel> channel) {
  const absl::Time arrived = absl::Now();
  if (hello.agent_id().empty()) {
    return absl::InvalidArgumentError("hello.agent_id is empty: every agent needs a stable id");
  }
  if (hello.slots() == 0 || hello.slots() > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("hello.slots is ", hello.slots(), ": give 1 to 1024"));
  }
  absl::MutexLock lock(&mu_);
  trigger_ = arrived;
  trigger_kind_ = Trigger::kConnect;
  Store::Batch batch(*store_);
  // An agent that reconnects replaces its old session.
  for (auto& [id, s] : sessions_) {
    if (s.hello.agent_id() == hello.agent_id()) SetDisconnectedLocked(s);
  }
  uint64_t sid = next_session_++;
  Session& session = sessions_[sid];
  session.id = sid;
  session.hello = hello;
  ++connected_agents_;
  connected_slots_ += hello.slots();
  session.channel = std::move(channel);
  session.last_seen = absl::Now();
  v1::CoordinatorMessage welcome;
  welcome.mutable_welcome()->set_heartbeat_seconds(
      std::max<int64_t>(1, absl::ToInt64Seconds(options_.heartbeat)));
  welcome.mutable_welcome()->set_lease_seconds(
      std::max<int64_t>(1, absl::ToInt64Seconds(options_.lease)));
  session.channel->Send(welcome);
  // Re-adopt the tasks it still runs, if they are still wanted; cancel the rest.
  for (const std::string& tid : hello.running()) {
    auto it = tasks_.find(tid);
    bool wanted = false;
    if (it != tasks_.end()) {
      Task& t = it->second;
      Job& job = jobs_[t.job_id];
      wanted = job.state == v1::RUNNING &&
               (t.state == v1::TASK_RUNNING ||
                (t.state == v1::TASK_LOST && job.frontier->IsCandidate(t.commit) &&
                 !job.frontier->IsSkipped(t.commit)));
      if (wanted) {
        auto old = sessions_.find(t.session);
        if (old != sessions_.end() && old->first != sid) {
          old->second.tasks.erase(tid);
          RefreshFreeLocked(old->second);
        }
        t.session = sid;
        t.state = v1::TASK_RUNNING;
        t.lease_expiry = absl::Now() + options_.lease;
        job.running.insert(tid);
        ++job.plan_epoch;  // in flight again: the job's plan must not start it twice
      }
    }
    session.tasks.insert(tid);  // its slot is busy until the agent reports
    if (!wanted) {
      v1::CoordinatorMessage msg;
      msg.mutable_cancel()->set_task_id(tid);
      session.channel->Send(msg);
    }
  }
  RefreshFreeLocked(session);
  ScheduleLocked();
  return sid;
}

void Coordinator::OnAgentMessage(uint64_t sid, const v1::AgentMessage& msg) {
  const absl::Time arrived = absl::Now();
  absl::MutexLock lock(&mu_);
  trigger_ = arrived;
  trigger_kind_ = Trigger::kAgentMessage;
  Store::Batch batch(*store_);  // a result's writes (verdict, cancellations, new tasks) commit once
  auto sit = sessions_.find(sid);
  if (sit == sessions_.end() || !sit->second.connected) return;
  Session& session = sit->second;
  session.last_seen = absl::Now();
  auto renew = [&](const std::string& tid) -> Task* {
    auto it = tasks_.find(tid);
    if (it == tasks_.end() || it->second.session != sid) return nullptr;
    it->second.lease_expiry = absl::Now() + options_.lease;
    return &it->second;
  };
  switch (msg.kind_case()) {
    case v1::AgentMessage::kHeartbeat:
      for (const std::string& tid : msg.heartbeat().running()) renew(tid);
      break;
    case v1::AgentMessage::kProgress:
      if (Task* t = renew(msg.progress().task_id())) {
        t->phase = msg.progress().phase();
        Job& job = jobs_[t->job_id];
        if (t->state == v1::TASK_RUNNING && job.state == v1::RUNNING) {
          EmitLocked(job, "");
        }
      }
      break;
    case v1::AgentMessage::kLog:
      if (Task* t = renew(msg.log().task_id())) {
        if (t->log_bytes < kMaxLogBytesPerTask) {
          t->log_bytes += msg.log().data().size();
          absl::Status st = store_->AppendLog(t->id, msg.log().data());
          if (!st.ok()) {
            std::fprintf(stderr, "farm-coordinator: cannot store output of %s: %s\n", t->id.c_str(),
                         std::string(st.message()).c_str());
          }
        }
      }
      break;
    case v1::AgentMessage::kResult:
      OnResultLocked(session, msg.result());
      break;
    default:
      break;
  }
}

void Coordinator::Disconnect(uint64_t sid) {
  const absl::Time arrived = absl::Now();
  absl::MutexLock lock(&mu_);
  trigger_ = arrived;
  trigger_kind_ = Trigger::kDisconnect;
  Store::Batch batch(*store_);
  auto sit = sessions_.find(sid);
  if (sit == sessions_.end()) return;
  // Its tasks keep their leases: the agent may come back with them. ExpireLeases requeues them
  // if it does not.
  SetDisconnectedLocked(sit->second);
  if (sit->second.tasks.empty()) sessions_.erase(sit);
  ScheduleLocked();
}

void Coordinator::RefreshFreeLocked(Session& s) {
  if (s.connected && s.tasks.size() < s.hello.slots()) {
    free_sessions_.insert(s.id);
  } else {
    free_sessions_.erase(s.id);
  }
}

void Coordinator::SetDisconnectedLocked(Session& s) {
  if (!s.connected) return;
  free_sessions_.erase(s.id);
  s.connected = false;
  s.channel.reset();
  --connected_agents_;
  connected_slots_ -= s.hello.slots();
}

bool Coordinator::AwaitAgents(size_t n, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto enough = [this, n] {
    mu_.AssertHeld();
    return connected_agents_ >= n;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

void Coordinator::ExpireLeases() {
  absl::MutexLock lock(&mu_);
  absl::Time now = absl::Now();
  trigger_ = now;
  trigger_kind_ = Trigger::kLeaseCheck;
  bool changed = false;
  if (options_.retention > absl::ZeroDuration() && now >= next_retention_) {
    next_retention_ = now + absl::Hours(1);
    absl::StatusOr<int> deleted =
        store_->DeleteEndedBefore(absl::ToUnixSeconds(now - options_.retention));
    if (!deleted.ok()) {
      std::fprintf(stderr, "farm-coordinator: retention: %s\n",
                   std::string(deleted.status().message()).c_str());
    } else {
      for (auto it = jobs_.begin(); it != jobs_.end();) {
        // Forget ended jobs loaded from an earlier run once the store no longer has them.
        it = (it->second.state != v1::RUNNING && !it->second.frontier &&
              !store_->LoadJob(it->first).ok())
                 ? jobs_.erase(it)
                 : std::next(it);
      }
    }
  }
  Store::Batch batch(*store_);  // after the retention, which runs its own transaction
  // A quarantine that ran out lets the agent work again.
  for (auto& [id, h] : health_) {
    if (h.quarantined_until != absl::InfinitePast() && h.quarantined_until <= now) {
      h.quarantined_until = absl::InfinitePast();
      --quarantined_;
      changed = true;
    }
  }
  for (auto& [tid, t] : tasks_) {
    if (t.state != v1::TASK_RUNNING || t.lease_expiry > now) continue;
    Job& job = jobs_[t.job_id];
    t.state = v1::TASK_LOST;
    auto sit = sessions_.find(t.session);
    if (sit != sessions_.end() && sit->second.connected) {
      // Silent but connected (a stuck agent): stop the task there; its slot stays busy until the
      // agent confirms, so it is not given a second task meanwhile.
      v1::CoordinatorMessage msg;
      msg.mutable_cancel()->set_task_id(t.id);
      sit->second.channel->Send(msg);
      job.running.erase(t.id);
    } else {
      ReleaseTaskLocked(t);
    }
    ++counters_.leases_expired;
    v1::TaskSummary s = SummaryLocked(job, t);
    s.set_detail(absl::StrCat("agent ", t.agent_id, " went silent for ",
                              absl::FormatDuration(options_.lease), "; requeued"));
    PersistTaskLocked(job, s, 0);
    job.finished.push_back(s);
    EmitLocked(job, absl::StrCat(Short(s.commit()), ": ", s.detail()));
    changed = true;
  }
  // Disconnected sessions: drop what they can no longer report on, then forget empty ones.
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    Session& s = it->second;
    if (!s.connected) {
      for (auto t = s.tasks.begin(); t != s.tasks.end();) {
        auto tt = tasks_.find(*t);
        if (tt != tasks_.end() && tt->second.session == it->first &&
            tt->second.state == v1::TASK_RUNNING) {
          ++t;
          continue;
        }
        if (tt != tasks_.end() && tt->second.session == it->first &&
            tt->second.state == v1::TASK_CANCELLED) {
          tasks_.erase(tt);
        }
        t = s.tasks.erase(t);
      }
    }
    it = (!s.connected && s.tasks.empty()) ? sessions_.erase(it) : std::next(it);
  }
  if (changed) ScheduleLocked();
  NoteWaitingLocked(now);
}

std::string Coordinator::MetricsText() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  size_t quarantined = 0, busy = 0;
  for (auto& [id, s] : sessions_) {
    if (!s.connected) continue;
    quarantined += QuarantinedLocked(s.hello.agent_id(), now);
    busy += std::min<size_t>(s.tasks.size(), s.hello.slots());
  }
  const Counters& c = counters_;
  MetricsWriter w;
  w.Gauge("farm_jobs_running", "Jobs being bisected now.", running_jobs_.size());
  w.Counter("farm_jobs_submitted_total", "Jobs accepted by SubmitBisect.", c.jobs_submitted);
  w.Labeled("counter", "farm_jobs_ended_total", "Jobs ended, by final state.", "state",
            {{"found", c.ended_found},
             {"ambiguous", c.ended_ambiguous},
             {"failed", c.ended_failed},
             {"cancelled", c.ended_cancelled}});
  w.Gauge("farm_agents_connected", "Agents with an open stream.", connected_agents_);
  w.Gauge("farm_agents_quarantined", "Connected agents in quarantine.", quarantined);
  w.Gauge("farm_slots", "Slots of the connected agents.", connected_slots_);
  w.Gauge("farm_slots_busy", "Slots running a task or waiting for a cancellation to end.", busy);
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
  w.Histograms("farm_assign_latency_seconds",
               "From the arrival of the call that made a task startable to its Assign being "
               "queued on the agent's stream, including the wait for the coordinator's lock; by "
               "what started it: an agent's message (a result, a cancellation confirmed), an "
               "agent connecting or leaving, a submission, a cancelled job, the lease check, a "
               "restart resuming jobs.",
               "trigger",
               {{"agent_message", &assign_latency_[static_cast<int>(Trigger::kAgentMessage)]},
                {"connect", &assign_latency_[static_cast<int>(Trigger::kConnect)]},
                {"disconnect", &assign_latency_[static_cast<int>(Trigger::kDisconnect)]},
                {"submit", &assign_latency_[static_cast<int>(Trigger::kSubmit)]},
                {"cancel", &assign_latency_[static_cast<int>(Trigger::kCancel)]},
                {"lease_check", &assign_latency_[static_cast<int>(Trigger::kLeaseCheck)]},
                {"resume", &assign_latency_[static_cast<int>(Trigger::kResume)]}});
  return w.text();
}

void Coordinator::NoteWaitingLocked(absl::Time now) {
  // A job with nothing running because no agent can take work says so once, instead of waiting
  // in silence (its commits are not failing: there is no agent to try them on).
  std::string note;
  if (connected_agents_ == 0) {
    note = "waiting: no agent is connected";
  } else if (quarantined_ > 0) {
    std::vector<std::string> why;
    bool usable = false;
    for (auto& [id, s] : sessions_) {
      if (!s.connected) continue;
      if (!QuarantinedLocked(s.hello.agent_id(), now)) {
        usable = true;
        break;
      }
      const AgentHealth& h = health_[s.hello.agent_id()];
      why.push_back(absl::StrCat(
          s.hello.agent_id(), " for ",
          absl::FormatDuration(absl::Trunc(h.quarantined_until - now, absl::Seconds(1))), " (",
          h.reason, ")"));
    }
    if (!usable) {
      note =
          absl::StrCat("waiting: every connected agent is quarantined: ", absl::StrJoin(why, "; "),
                       ". See `farm agents`.");
    }
  }
  for (int64_t id : running_jobs_) {
    Job& job = jobs_[id];
    std::string want = job.running.empty() ? note : "";
    // Say it when it starts, not again every second while it lasts.
    bool same = !want.empty() && !job.waiting_note.empty() &&
                want.substr(0, 40) == job.waiting_note.substr(0, 40);
    if (want.empty() || same) {
      if (want.empty()) job.waiting_note.clear();
      continue;
    }
    job.waiting_note = want;
    EmitLocked(job, want);
  }
}

}  // namespace farm
