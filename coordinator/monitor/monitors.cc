#include "coordinator/monitor/monitors.h"

#include <git2.h>
#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "common/spec/spec.h"
#include "common/status_macros.h"
#include "common/subprocess/subprocess.h"

namespace farm {
namespace {

constexpr int kHistoryKept = 100;

bool Ended(v1::JobState s) { return s != v1::RUNNING && s != v1::JOB_STATE_UNSPECIFIED; }

int64_t Id(const std::string& s) {
  int64_t n = 0;
  return absl::SimpleAtoi(s, &n) ? n : 0;
}

bool IsLocalRepo(const std::string& repo) { return std::filesystem::is_directory(repo); }

std::string Hex(const git_oid& oid) {
  char hex[GIT_OID_HEXSZ + 1];
  git_oid_tostr(hex, sizeof(hex), &oid);
  return hex;
}

// The culprit's subject, author and the files it touches (against its first parent).
absl::StatusOr<CulpritInfo> DescribeCommit(git_repository* repo, const std::string& sha) {
  CulpritInfo info;
  info.commit = sha;
  git_oid oid;
  if (git_oid_fromstr(&oid, sha.c_str()) != 0) return absl::InvalidArgumentError(sha);
  git_commit* c = nullptr;
  if (git_commit_lookup(&c, repo, &oid) != 0) {
    return absl::NotFoundError(absl::StrCat("commit ", sha, " is not in the repository"));
  }
  info.subject = git_commit_summary(c) ? git_commit_summary(c) : "";
  const git_signature* a = git_commit_author(c);
  info.author = absl::StrCat(a->name, " <", a->email, ">");
  info.author_email = a->email;
  git_tree* tree = nullptr;
  git_tree* parent_tree = nullptr;
  git_commit* parent = nullptr;
  git_commit_tree(&tree, c);
  if (git_commit_parentcount(c) > 0 && git_commit_parent(&parent, c, 0) == 0) {
    git_commit_tree(&parent_tree, parent);
  }
  git_diff* diff = nullptr;
  if (git_diff_tree_to_tree(&diff, repo, parent_tree, tree, nullptr) == 0) {
    for (size_t i = 0; i < git_diff_num_deltas(diff); ++i) {
      const git_diff_delta* d = git_diff_get_delta(diff, i);
      info.files.push_back(d->new_file.path ? d->new_file.path : d->old_file.path);
    }
  }
  git_diff_free(diff);
  git_tree_free(parent_tree);
  git_tree_free(tree);
  git_commit_free(parent);
  git_commit_free(c);
  return info;
}

}  // namespace

v1::BisectSpec MakeRegressionBisectSpec(const v1::Monitor& monitor, const std::string& good,
                                        const std::string& bad) {
  v1::BisectSpec spec = monitor.job();
  spec.set_repo(monitor.repo());
  spec.clear_good();
  spec.add_good(good);
  spec.set_bad(bad);
  spec.set_probe(false);
  spec.set_first_parent(false);
  spec.set_description(absl::StrCat("monitor ", monitor.monitor_id(), " (", monitor.branch(),
                                    "): regression bisect"));
  // The service's own bisects always verify their culprit (the monitor's own count if it set
  // one): nobody is told of a culprit that a retest would contradict.
  if (spec.verify() == 0) spec.set_verify(spec::kDefaultVerifyRuns);
  return spec;
}

bool CulpritVerified(const v1::JobStatus& bisect) { return bisect.verification() == v1::VERIFIED; }

Monitors::Monitors(Coordinator* core, MonitorOptions options, std::unique_ptr<MonitorStore> store)
    : core_(core),
      options_(std::move(options)),
      repo_cache_(options_.cache_dir),
      store_(std::move(store)) {}

absl::StatusOr<std::unique_ptr<Monitors>> Monitors::Start(Coordinator* core,
                                                          MonitorOptions options) {
  FARM_ASSIGN_OR_RETURN(std::unique_ptr<MonitorStore> store, MonitorStore::Open(options.db_path));
  FARM_ASSIGN_OR_RETURN(std::vector<v1::Monitor> monitors, store->LoadMonitors());
  FARM_ASSIGN_OR_RETURN(std::vector<v1::Regression> regressions, store->LoadRegressions());
  std::unique_ptr<Monitors> m(new Monitors(core, std::move(options), std::move(store)));
  std::vector<std::string> follow;
  {
    absl::MutexLock lock(&m->mu_);
    for (v1::Monitor& mon : monitors) {
      if (!mon.probe_job().empty()) follow.push_back(mon.probe_job());
      m->monitors_[Id(mon.monitor_id())] = std::move(mon);
    }
    for (v1::Regression& r : regressions) {
      if (r.bisect_state() == v1::RUNNING && !r.bisect_job().empty()) {
        follow.push_back(r.bisect_job());
      }
      m->regressions_[Id(r.regression_id())] = std::move(r);
    }
  }
  for (const std::string& job : follow) m->Follow(job);
  m->thread_ = std::thread([p = m.get()] { p->Loop(); });
  return m;
}

Monitors::~Monitors() {
  {
    absl::MutexLock lock(&events_mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  std::map<std::string, uint64_t> watches;
  {
    absl::MutexLock lock(&events_mu_);
    watches.swap(watches_);
  }
  for (const auto& [job, w] : watches) core_->Unwatch(w);
}

void Monitors::Follow(const std::string& job_id) {
  absl::StatusOr<uint64_t> w = core_->Watch(job_id, [this, job_id](const v1::JobEvent& ev) {
    if (!Ended(ev.status().state())) return;
    absl::MutexLock lock(&events_mu_);
    ended_jobs_.push_back(job_id);
  });
  if (w.ok()) {
    absl::MutexLock lock(&events_mu_);
    watches_[job_id] = *w;
  } else {
    // The job is gone (retention deleted it): nothing will end it; say so where it is shown.
    FARM_LOG(Warning) << "monitor: cannot follow job " << job_id << ": " << w.status().message();
    absl::MutexLock lock(&events_mu_);
    ended_jobs_.push_back(job_id);
  }
}

void Monitors::Loop() {
  while (true) {
    absl::Time next = absl::Now() + absl::Seconds(60);
    {
      absl::MutexLock lock(&mu_);
      for (auto& [id, m] : monitors_) {
        absl::Time due =
            absl::FromUnixSeconds(m.last_poll_unix()) + absl::Seconds(m.every_seconds());
        next = std::min(next, due);
      }
    }
    std::vector<std::string> ended;
    {
      absl::MutexLock lock(&events_mu_);
      auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(events_mu_) {
        return stopping_ || poll_now_ || !ended_jobs_.empty();
      };
      events_mu_.AwaitWithDeadline(absl::Condition(&woken), next);
      if (stopping_) return;
      ended.swap(ended_jobs_);
      for (const std::string& job : ended) watches_.erase(job);  // the coordinator dropped them
      poll_now_ = false;
    }
    absl::MutexLock lock(&mu_);
    for (const std::string& job : ended) OnJobEndedLocked(job);
    absl::Time now = absl::Now();
    for (auto& [id, m] : monitors_) {
      if (!m.probe_job().empty()) continue;  // one head test at a time
      if (absl::FromUnixSeconds(m.last_poll_unix()) + absl::Seconds(m.every_seconds()) > now) {
        continue;
      }
      PollLocked(m);
    }
  }
}

absl::StatusOr<Monitors::Head> Monitors::FetchHead(const v1::Monitor& monitor) {
  FARM_ASSIGN_OR_RETURN(std::string git_dir, repo_cache_.Prepare(monitor.repo(), ""));
  if (!IsLocalRepo(monitor.repo())) {
    SubprocessOptions o;
    o.argv = {"git",     "--git-dir", git_dir,        "fetch",
              "--quiet", "--prune",   monitor.repo(), "+refs/heads/*:refs/heads/*"};
    o.timeout = absl::Minutes(10);
    std::string out;
    o.on_output = [&out](std::string_view s) { out.append(s.substr(0, 4096 - out.size() % 4096)); };
    FARM_ASSIGN_OR_RETURN(std::unique_ptr<Subprocess> p, Subprocess::Start(std::move(o)));
    SubprocessResult r = p->Wait();
    if (r.kind != SubprocessResult::Kind::kExited || r.exit_code != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("git fetch ", monitor.repo(), ": ", r.Describe(), ": ", out));
    }
  }
  FARM_ASSIGN_OR_RETURN(GitRepository repo, OpenRepository(git_dir));
  absl::StatusOr<git_oid> head = ResolveCommit(repo.get(), "refs/heads/" + monitor.branch());
  if (!head.ok()) {
    return absl::NotFoundError(absl::StrCat("branch '", monitor.branch(), "' is not in ",
                                            monitor.repo(), ": check the name (git branch -a)"));
  }
  Head h{Hex(*head), ""};
  git_commit* c = nullptr;
  if (git_commit_lookup(&c, repo.get(), &*head) == 0) {
    if (git_commit_parentcount(c) > 0) h.parent = Hex(*git_commit_parent_id(c, 0));
    git_commit_free(c);
  }
  return h;
}

void Monitors::PollLocked(v1::Monitor& m) {
  m.set_last_poll_unix(absl::ToUnixSeconds(absl::Now()));
  absl::StatusOr<Head> fetched = FetchHead(m);
  if (!fetched.ok()) m.set_error(std::string(fetched.status().message()));
  // An unchanged head keeps the error of its test, if it had one.
  if (!fetched.ok() || fetched->commit == m.last_tested()) {
    SaveLocked(m);
    return;
  }
  const std::string* head = &fetched->commit;
  m.clear_error();
  m.set_last_tested(*head);
  if (fetched->parent.empty()) {
    m.set_error(absl::StrCat("head ", head->substr(0, 12),
                             " is a root commit: a head test needs its parent (the next head "
                             "pushed will be tested)"));
    SaveLocked(m);
    return;
  }
  // The head alone: its first parent is the range's good end (with first_parent the graph is
  // the head only).
  v1::BisectSpec spec = m.job();
  spec.set_repo(m.repo());
  spec.clear_good();
  spec.add_good(fetched->parent);
  spec.set_bad(*head);
  spec.set_first_parent(true);
  spec.set_probe(true);
  spec.set_description(absl::StrCat("monitor ", m.monitor_id(), " (", m.branch(), "): head test"));
  absl::StatusOr<v1::JobStatus> job = core_->SubmitBisect(spec);
  if (!job.ok()) {
    m.set_error(
        absl::StrCat("head ", head->substr(0, 12), " cannot be tested: ", job.status().message()));
    SaveLocked(m);
    return;
  }
  m.set_probe_job(job->job_id());
  SaveLocked(m);
  FARM_LOG(Info) << "monitor " << m.monitor_id() << ": testing " << m.branch() << " head "
                 << head->substr(0, 12) << " (job " << job->job_id() << ")";
  Follow(job->job_id());
}

void Monitors::OnJobEndedLocked(const std::string& job_id) {
  absl::StatusOr<v1::JobStatus> job = core_->GetJob(job_id);
  for (auto& [id, m] : monitors_) {
    if (m.probe_job() != job_id) continue;
    m.clear_probe_job();
    if (!job.ok()) {
      m.set_error(absl::StrCat("head test job ", job_id, ": ", job.status().message()));
      SaveLocked(m);
    } else {
      OnProbeEndedLocked(m, *job);
    }
  }
  for (auto& [id, r] : regressions_) {
    if (r.bisect_job() != job_id || r.bisect_state() != v1::RUNNING) continue;
    if (!job.ok()) {
      r.set_bisect_state(v1::FAILED);
      r.set_error(absl::StrCat("bisect job ", job_id, ": ", job.status().message()));
      SaveLocked(r);
    } else {
      OnBisectEndedLocked(r, *job);
    }
  }
}

void Monitors::OnProbeEndedLocked(v1::Monitor& m, const v1::JobStatus& job) {
  const std::string& head = job.spec().bad();
  v1::Verdict verdict = v1::VERDICT_UNSPECIFIED;
  for (const v1::TaskSummary& t : job.finished()) {
    if (t.commit() == head && t.state() == v1::TASK_DONE && t.applied()) verdict = t.verdict();
  }
  if (verdict == v1::VERDICT_UNSPECIFIED) {
    m.set_error(absl::StrCat("head test job ", job.job_id(), " of ", head.substr(0, 12),
                             " ended without a verdict: ", job.error()));
    SaveLocked(m);
    return;
  }
  v1::MonitorRun* run = m.add_history();
  run->set_commit(head);
  run->set_verdict(verdict);
  run->set_job_id(job.job_id());
  run->set_tested_unix(absl::ToUnixSeconds(absl::Now()));
  if (m.history_size() > kHistoryKept) {
    m.mutable_history()->DeleteSubrange(0, m.history_size() - kHistoryKept);
  }
  FARM_LOG(Info) << "monitor " << m.monitor_id() << ": " << m.branch() << " head "
                 << head.substr(0, 12)
                 << (verdict == v1::GOOD  ? " passes"
                     : verdict == v1::BAD ? " fails"
                                          : " is undecided (skip)");
  if (verdict == v1::GOOD) {
    if (!m.open_regression().empty()) {
      auto it = regressions_.find(Id(m.open_regression()));
      if (it != regressions_.end()) {
        it->second.set_state(v1::REGRESSION_CLOSED);
        it->second.set_fixed_by(head);
        it->second.set_closed_unix(absl::ToUnixSeconds(absl::Now()));
        SaveLocked(it->second);
      }
      m.clear_open_regression();
    }
    m.set_last_pass(head);
  } else if (verdict == v1::BAD && m.open_regression().empty() && !m.last_pass().empty()) {
    OpenRegressionLocked(m, head);
  }
  SaveLocked(m);
}

void Monitors::OpenRegressionLocked(v1::Monitor& m, const std::string& first_fail) {
  v1::Regression r;
  r.set_monitor_id(m.monitor_id());
  r.set_state(v1::REGRESSION_OPEN);
  r.set_last_pass(m.last_pass());
  r.set_first_fail(first_fail);
  r.set_repo(m.repo());
  r.set_branch(m.branch());
  r.set_opened_unix(absl::ToUnixSeconds(absl::Now()));
  absl::StatusOr<v1::JobStatus> job =
      core_->SubmitBisect(MakeRegressionBisectSpec(m, m.last_pass(), first_fail));
  if (job.ok()) {
    r.set_bisect_job(job->job_id());
    r.set_bisect_state(v1::RUNNING);
  } else {
    r.set_bisect_state(v1::FAILED);
    r.set_error(absl::StrCat("the bisect could not start: ", job.status().message()));
  }
  absl::StatusOr<int64_t> id = store_->InsertRegression(r);
  if (!id.ok()) {
    FARM_LOG(Error) << "monitor " << m.monitor_id()
                    << ": cannot store a regression: " << id.status().message();
    return;
  }
  r.set_regression_id(absl::StrCat(*id));
  m.set_open_regression(r.regression_id());
  FARM_LOG(Info) << "monitor " << m.monitor_id() << ": regression " << *id << " opened ("
                 << r.last_pass().substr(0, 12) << ".." << first_fail.substr(0, 12)
                 << "), bisect job " << r.bisect_job();
  regressions_[*id] = r;
  if (job.ok()) Follow(job->job_id());
}

void Monitors::OnBisectEndedLocked(v1::Regression& r, const v1::JobStatus& job) {
  r.set_bisect_state(job.state());
  r.clear_culprits();
  for (const std::string& c : job.first_bad()) r.add_culprits(c);
  if (!job.error().empty()) r.set_error(job.error());
  r.set_verification(job.verification());
  r.set_verification_reason(job.verification_reason());
  auto m = monitors_.find(Id(r.monitor_id()));
  if (m != monitors_.end()) NotifyLocked(m->second, r, job);
  SaveLocked(r);
}

void Monitors::NotifyLocked(const v1::Monitor& m, v1::Regression& r, const v1::JobStatus& job) {
  std::optional<CulpritInfo> culprit;
  if (job.state() == v1::FOUND && job.first_bad_size() == 1) {
    absl::StatusOr<std::string> git_dir = repo_cache_.Prepare(m.repo(), job.first_bad(0));
    absl::StatusOr<GitRepository> repo =
        git_dir.ok() ? OpenRepository(*git_dir) : absl::StatusOr<GitRepository>(git_dir.status());
    absl::StatusOr<CulpritInfo> info =
        repo.ok() ? DescribeCommit(repo->get(), job.first_bad(0)) : repo.status();
    if (info.ok()) {
      culprit = std::move(*info);
    } else {
      FARM_LOG(Warning) << "monitor " << m.monitor_id() << ": culprit " << job.first_bad(0)
                        << " cannot be read: " << info.status().message();
    }
  }
  const CulpritInfo* c = culprit ? &*culprit : nullptr;
  bool verified = CulpritVerified(job);
  std::string reporter = options_.reporter;
  if (reporter.empty()) {
    char host[256] = "localhost";
    gethostname(host, sizeof(host) - 1);
    reporter = absl::StrCat("bisect farm <bisect-farm@", host, ">");
  }
  std::string link = options_.public_url.empty()
                         ? absl::StrCat("farm status ", job.job_id())
                         : absl::StrCat(options_.public_url, "/jobs/", job.job_id());
  r.set_report(ReportBody(m, r, job, c, verified, link, reporter));
  std::vector<std::string> errors;
  r.clear_notified();
  std::vector<std::string> to = Recipients(m, c, job.verification());
  if (!to.empty()) {
    absl::Status st =
        SendMail(options_.sendmail,
                 MailMessage(reporter, to, ReportSubject(m, c, job.verification()), r.report()),
                 options_.notify_timeout);
    if (st.ok()) {
      for (const std::string& a : to) r.add_notified(a);
    } else {
      errors.push_back(std::string(st.message()));
    }
  }
  if (m.notify_webhooks_size() > 0) {
    v1::RegressionNotice notice;
    *notice.mutable_regression() = r;
    notice.set_status(StatusWord(job.state()));
    notice.set_report(r.report());
    (*notice.mutable_links())["job"] = link;
    if (c != nullptr) {
      notice.set_culprit(c->commit);
      notice.set_culprit_subject(c->subject);
      notice.set_culprit_author(c->author);
    }
    std::string json;
    (void)google::protobuf::util::MessageToJsonString(notice, &json);
    for (const std::string& url : m.notify_webhooks()) {
      absl::Status st = PostWebhook(url, json, options_.notify_timeout);
      if (st.ok()) {
        r.add_notified(url);
      } else {
        errors.push_back(std::string(st.message()));
      }
    }
  }
  for (const std::string& e : errors) {
    FARM_LOG(Warning) << "monitor " << m.monitor_id() << ": regression " << r.regression_id()
                      << ": " << e;
    absl::StrAppend(r.mutable_error(), r.error().empty() ? "" : "; ", e);
  }
}

void Monitors::SaveLocked(const v1::Monitor& m) {
  absl::Status st = store_->UpdateMonitor(m);
  if (!st.ok()) {
    FARM_LOG(Error) << "monitor " << m.monitor_id() << ": " << st.message();
  }
}

void Monitors::SaveLocked(const v1::Regression& r) {
  absl::Status st = store_->UpdateRegression(r);
  if (!st.ok()) {
    FARM_LOG(Error) << "regression " << r.regression_id() << ": " << st.message();
  }
}

absl::StatusOr<v1::Monitor> Monitors::Add(v1::Monitor m) {
  if (m.repo().empty()) return absl::InvalidArgumentError("monitor.repo is required");
  if (m.branch().empty()) {
    return absl::InvalidArgumentError("monitor.branch is required (e.g. --branch main)");
  }
  if (m.every_seconds() < 1) {
    return absl::InvalidArgumentError(
        "monitor.every_seconds must be at least 1 (e.g. --every 10m)");
  }
  if (m.job().recipe().test_argv().empty() && !m.job().recipe().has_boot()) {
    return absl::InvalidArgumentError("monitor.job.recipe: the test command is missing");
  }
  for (const std::string& url : m.notify_webhooks()) FARM_RETURN_IF_ERROR(CheckWebhookUrl(url));
  for (const v1::Subscription& s : m.subscribers()) {
    if (s.address().find('@') == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("subscription '", s.path(), "=", s.address(),
                       "': the address is not an email address (PATH=ADDR, e.g. net/=me@lab)"));
    }
  }
  for (const std::string& a : m.notify_emails()) {
    if (a.find('@') == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("notify email '", a, "' is not an email address"));
    }
  }
  FARM_RETURN_IF_ERROR(FetchHead(m).status());
  m.clear_monitor_id();
  m.clear_history();
  m.clear_last_tested();
  m.clear_last_pass();
  m.clear_probe_job();
  m.clear_open_regression();
  m.clear_error();
  m.set_last_poll_unix(0);
  m.set_created_unix(absl::ToUnixSeconds(absl::Now()));
  {
    absl::MutexLock lock(&mu_);
    FARM_ASSIGN_OR_RETURN(int64_t id, store_->InsertMonitor(m));
    m.set_monitor_id(absl::StrCat(id));
    FARM_RETURN_IF_ERROR(store_->UpdateMonitor(m));
    monitors_[id] = m;
  }
  absl::MutexLock lock(&events_mu_);
  poll_now_ = true;
  return m;
}

absl::Status Monitors::Remove(const std::string& monitor_id, const CallerIdentity& caller) {
  int64_t id = 0;
  if (!absl::SimpleAtoi(monitor_id, &id) || id <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("monitor id '", monitor_id, "' is not a number: `farm monitors` lists them"));
  }
  absl::MutexLock lock(&mu_);
  auto it = monitors_.find(id);
  if (it != monitors_.end() && !caller.admin && caller.user != it->second.owner()) {
    const std::string& owner = it->second.owner();
    return absl::PermissionDeniedError(
        absl::StrCat("monitor ", monitor_id, " belongs to ", owner.empty() ? "nobody" : owner,
                     ": only its owner or an admin may remove it (you are ", caller.user, ")"));
  }
  FARM_RETURN_IF_ERROR(store_->DeleteMonitor(id));
  monitors_.erase(id);
  return absl::OkStatus();
}

std::vector<v1::Monitor> Monitors::List() {
  absl::MutexLock lock(&mu_);
  std::vector<v1::Monitor> out;
  for (const auto& [id, m] : monitors_) out.push_back(m);
  return out;
}

std::vector<v1::Regression> Monitors::ListRegressions(const std::string& monitor_id) {
  absl::MutexLock lock(&mu_);
  std::vector<v1::Regression> out;
  for (auto it = regressions_.rbegin(); it != regressions_.rend(); ++it) {
    if (monitor_id.empty() || it->second.monitor_id() == monitor_id) out.push_back(it->second);
  }
  return out;
}

}  // namespace farm
