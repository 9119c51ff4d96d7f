// The dashboard's HTTP port against a real Coordinator (SQLite file, generated repository): who
// may read and cancel, what the JSON API answers, and incremental log reads.
#include "coordinator/web/dashboard.h"

#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "coordinator/web/api.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/lib/test_util.h"

namespace farm::web {
namespace {

namespace v1 = farm::v1;
using ::farm::testing::MakeRepo;
using ::farm::testing::MakeTempDir;
using ::farm::testing::Repo;

constexpr char kToken[] = "s3cret-token";

// Records what the coordinator sends an agent.
class RecordingChannel : public AgentChannel {
 public:
  void Send(const v1::CoordinatorMessage& msg) override {
    absl::MutexLock lock(&mu_);
    sent_.push_back(msg);
  }
  std::vector<v1::CoordinatorMessage> sent() {
    absl::MutexLock lock(&mu_);
    return sent_;
  }

 private:
  absl::Mutex mu_;
  std::vector<v1::CoordinatorMessage> sent_;
};

class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("dashboard");
    repo_ = MakeRepo(dir_ + "/repo", "--commits 40 --seed 3");
    CoordinatorOptions o;
    o.db_path = dir_ + "/farm.db";
    o.cache_dir = dir_ + "/cache";
    auto core = Coordinator::Create(o);
    ASSERT_TRUE(core.ok()) << core.status();
    core_ = std::move(*core);
  }
  void TearDown() override {
    dashboard_.reset();
    core_.reset();
  }
  void Serve(bool public_read, TokenTable tokens = {{kToken, CallerIdentity{"tester", true}}},
             Monitors* monitors = nullptr) {
    DashboardOptions o;
    o.tokens = std::move(tokens);
    o.public_read = public_read;
    o.monitors = monitors;
    auto d = Dashboard::Start(core_.get(), o);
    ASSERT_TRUE(d.ok()) << d.status();
    dashboard_ = std::move(*d);
    client_ = std::make_unique<httplib::Client>(absl::StrCat("http://", dashboard_->address()));
  }
  std::string Submit() {
    v1::BisectSpec s;
    s.set_repo(repo_.path);
    s.add_good(repo_.root);
    s.set_bad(repo_.bad);
    s.mutable_recipe()->add_test_argv("true");
    s.set_description("dashboard test job");
    auto job = core_->SubmitBisect(s);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? job->job_id() : "";
  }
  httplib::Result Get(const std::string& path, const std::string& token = "") {
    httplib::Headers h;
    if (!token.empty()) h.emplace("Authorization", absl::StrCat("Bearer ", token));
    return client_->Get(path.c_str(), h);
  }
  httplib::Result Post(const std::string& path, const std::string& token = "") {
    httplib::Headers h;
    if (!token.empty()) h.emplace("Authorization", absl::StrCat("Bearer ", token));
    return client_->Post(path.c_str(), h, "", "application/json");
  }
  template <typename M>
  M Parse(const httplib::Result& res) {
    M m;
    EXPECT_TRUE(res) << "no reply";
    if (!res) return m;
    EXPECT_EQ(res->status, 200) << res->body;
    auto st = google::protobuf::util::JsonStringToMessage(res->body, &m);
    EXPECT_TRUE(st.ok()) << st << ": " << res->body;
    return m;
  }

  std::string dir_;
  Repo repo_;
  std::unique_ptr<Coordinator> core_;
  std::unique_ptr<Dashboard> dashboard_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(DashboardTest, AnonymousIsRefusedUnlessPublic) {
  Serve(/*public_read=*/false);
  std::string job = Submit();
  for (const std::string& path :
       std::vector<std::string>{"/api/v1/jobs", "/api/v1/agents", "/api/v1/jobs/" + job}) {
    httplib::Result res = Get(path);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 401) << path;
    EXPECT_TRUE(absl::StrContains(res->body, "log in with your farm token")) << res->body;
  }
  // A wrong token is refused, and says so.
  httplib::Result wrong = Get("/api/v1/jobs", "not-the-token");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  EXPECT_TRUE(absl::StrContains(wrong->body, "not one of this farm's")) << wrong->body;
  // The pages and /metrics hold no job data: everyone gets them.
  httplib::Result page = Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_TRUE(absl::StrContains(page->body, "/app.js"));
  httplib::Result metrics = Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_TRUE(absl::StrContains(metrics->body, "farm_jobs_running 1")) << metrics->body;
  // With the token: the job.
  auto jobs = Parse<v1::ListJobsResponse>(Get("/api/v1/jobs", kToken));
  ASSERT_EQ(jobs.jobs_size(), 1);
  EXPECT_EQ(jobs.jobs(0).job_id(), job);
  EXPECT_EQ(jobs.jobs(0).spec().description(), "dashboard test job");
}

TEST_F(DashboardTest, PublicDashboardReadsButNeverCancels) {
  Serve(/*public_read=*/true);
  std::string job = Submit();
  auto jobs = Parse<v1::ListJobsResponse>(Get("/api/v1/jobs"));
  ASSERT_EQ(jobs.jobs_size(), 1);
  httplib::Result cancel = Post("/api/v1/jobs/" + job + "/cancel");
  ASSERT_TRUE(cancel);
  EXPECT_EQ(cancel->status, 401);
  EXPECT_TRUE(absl::StrContains(cancel->body, "may only read")) << cancel->body;
  EXPECT_EQ(core_->GetJob(job)->state(), v1::RUNNING);
  // A token cancels, through the same CancelJob as `farm cancel`.
  auto resp = Parse<v1::CancelJobResponse>(Post("/api/v1/jobs/" + job + "/cancel", kToken));
  EXPECT_EQ(resp.status().state(), v1::CANCELLED);
  EXPECT_EQ(core_->GetJob(job)->state(), v1::CANCELLED);
}

TEST_F(DashboardTest, TokensOverPlainHttpOnlyFromLoopback) {
  DashboardOptions o;
  o.tokens = {{kToken, CallerIdentity{"tester", true}}};
  std::string why;
  EXPECT_EQ(Authenticate(o, absl::StrCat("Bearer ", kToken), /*loopback=*/true, false, &why),
            Caller::kUser);
  EXPECT_EQ(Authenticate(o, absl::StrCat("Bearer ", kToken), /*loopback=*/false, false, &why),
            Caller::kRefused);
  EXPECT_TRUE(absl::StrContains(why, "--http-tls")) << why;
  EXPECT_EQ(Authenticate(o, absl::StrCat("Bearer ", kToken), /*loopback=*/false, true, &why),
            Caller::kUser);
  EXPECT_EQ(Authenticate(o, "Basic abc", true, true, &why), Caller::kRefused);
  EXPECT_TRUE(absl::StrContains(why, "Bearer <token>")) << why;
}

TEST_F(DashboardTest, JobPageDrawsRangeAndAgentsShowTasks) {
  Serve(/*public_read=*/false);
  auto channel = std::make_shared<RecordingChannel>();
  v1::Hello hello;
  hello.set_agent_id("agent-a");
  hello.set_hostname("host-a");
  hello.set_slots(1);
  (*hello.mutable_labels())["arch"] = "x86_64";
  auto session = core_->Connect(hello, channel);
  ASSERT_TRUE(session.ok()) << session.status();
  std::string job = Submit();

  auto agents = Parse<v1::ListAgentsResponse>(Get("/api/v1/agents", kToken));
  ASSERT_EQ(agents.agents_size(), 1);
  EXPECT_EQ(agents.agents(0).agent_id(), "agent-a");
  EXPECT_EQ(agents.agents(0).labels().at("arch"), "x86_64");
  ASSERT_EQ(agents.agents(0).running_tasks_size(), 1);
  const std::string task = agents.agents(0).running_tasks(0);

  auto status = Parse<v1::JobStatus>(Get("/api/v1/jobs/" + job, kToken));
  ASSERT_EQ(status.running_size(), 1);
  EXPECT_EQ(status.running(0).task_id(), task);
  // Every candidate of the range, the commit in flight among them.
  EXPECT_EQ(static_cast<uint32_t>(status.candidate_commits_size()), status.candidates());
  EXPECT_GT(status.candidates(), 2u);
  EXPECT_NE(std::find(status.candidate_commits().begin(), status.candidate_commits().end(),
                      status.running(0).commit()),
            status.candidate_commits().end());

  // The log grows while the task runs; reads from an offset return only what is new.
  const std::string commit = status.running(0).commit();
  auto chunk = [&](const std::string& data, uint64_t offset) {
    v1::AgentMessage m;
    m.mutable_log()->set_task_id(task);
    m.mutable_log()->set_offset(offset);
    m.mutable_log()->set_data(data);
    core_->OnAgentMessage(*session, m);
  };
  chunk("building...\n", 0);
  const std::string base = absl::StrCat("/api/v1/jobs/", job, "/log?commit=", commit);
  httplib::Result first = Get(base, kToken);
  ASSERT_TRUE(first);
  EXPECT_TRUE(absl::StrContains(first->body, R"("text":"building...\n")")) << first->body;
  EXPECT_TRUE(absl::StrContains(first->body, R"("next_offset":12)")) << first->body;
  chunk("test passed \xC3", 12);  // a character cut in two by the chunking
  httplib::Result second = Get(absl::StrCat(base, "&task=", task, "&offset=12"), kToken);
  ASSERT_TRUE(second);
  EXPECT_TRUE(absl::StrContains(second->body, R"("text":"test passed ")")) << second->body;
  EXPECT_FALSE(absl::StrContains(second->body, "building")) << second->body;
  EXPECT_TRUE(absl::StrContains(second->body, R"("next_offset":24)")) << second->body;

  httplib::Result missing = Get(absl::StrCat("/api/v1/jobs/", job, "/log"), kToken);
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 400);
  EXPECT_TRUE(absl::StrContains(missing->body, "?commit=SHA")) << missing->body;
  httplib::Result unknown = Get("/api/v1/jobs/999", kToken);
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
}

// --http-tls: the port speaks HTTPS with the coordinator's certificate, so a token may come from
// anywhere; a client that does not trust the certificate gets nothing.
TEST_F(DashboardTest, ServesHttpsWithTheCoordinatorsCertificate) {
  farm::testing::CommandResult certs = farm::testing::Sh(absl::StrCat(
      "cd ", farm::testing::Quote(dir_),
      " && openssl req -x509 -newkey "
      "rsa:2048 -nodes -days 2 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 -keyout "
      "server.key -out server.pem 2>&1"));
  if (certs.exit_code != 0) GTEST_SKIP() << "openssl cannot make a certificate: " << certs.output;
  DashboardOptions o;
  o.tokens = {{kToken, CallerIdentity{"tester", true}}};
  o.tls.cert = dir_ + "/server.pem";
  o.tls.key = dir_ + "/server.key";
  auto d = Dashboard::Start(core_.get(), o);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_STREQ((*d)->scheme(), "https");
  const std::string address = (*d)->address();
  const std::string host = address.substr(0, address.rfind(':'));
  const int port = std::stoi(address.substr(address.rfind(':') + 1));
  httplib::SSLClient trusting(host, port);
  trusting.set_ca_cert_path((dir_ + "/server.pem").c_str());
  trusting.enable_server_certificate_verification(true);
  httplib::Result res = trusting.Get(
      "/api/v1/session", httplib::Headers{{"Authorization", absl::StrCat("Bearer ", kToken)}});
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_TRUE(absl::StrContains(res->body, R"("caller":"user")")) << res->body;
  httplib::SSLClient stranger(host, port);
  stranger.enable_server_certificate_verification(true);  // the system's CAs only
  EXPECT_FALSE(stranger.Get("/api/v1/session"));
  // Unusable files are named.
  o.tls.key = dir_ + "/missing.key";
  auto bad = Dashboard::Start(core_.get(), o);
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(absl::StrContains(bad.status().message(), "missing.key")) << bad.status();
}

TEST(Utf8TailTest, ReplacesInvalidBytesAndKeepsCutCharacters) {
  uint64_t next = 0;
  EXPECT_EQ(Utf8Tail("ab\xFF"
                     "c",
                     0, &next),
            "ab\xEF\xBF\xBD"
            "c");
  EXPECT_EQ(next, 4u);
  EXPECT_EQ(Utf8Tail("x\xE2\x82", 0, &next), "x");  // '€' not complete yet
  EXPECT_EQ(next, 1u);
  EXPECT_EQ(Utf8Tail("x\xE2\x82\xAC", 1, &next), "\xE2\x82\xAC");
  EXPECT_EQ(next, 4u);
  EXPECT_EQ(Utf8Tail("abc", 10, &next), "");
  EXPECT_EQ(next, 3u);
}

TEST_F(DashboardTest, MonitorsPageShowsTheCoordinatorsMonitors) {
  // A dashboard without the monitor service says so instead of showing an empty list.
  Serve(/*public_read=*/false);
  httplib::Result none = Get("/api/v1/monitors", kToken);
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 503) << none->body;
  EXPECT_TRUE(absl::StrContains(none->body, "runs no branch monitors")) << none->body;
  dashboard_.reset();

  MonitorOptions mo;
  mo.db_path = dir_ + "/farm.db";
  mo.cache_dir = dir_ + "/cache";
  auto monitors = Monitors::Start(core_.get(), mo);
  ASSERT_TRUE(monitors.ok()) << monitors.status();
  v1::Monitor m;
  m.set_repo(repo_.path);
  m.set_branch("main");
  m.set_every_seconds(3600);
  m.set_owner("tester");
  m.mutable_job()->mutable_recipe()->add_test_argv("true");
  auto added = (*monitors)->Add(m);
  ASSERT_TRUE(added.ok()) << added.status();
  Serve(/*public_read=*/false, {{kToken, CallerIdentity{"tester", true}}}, monitors->get());
  // The monitor as the CLI's `farm monitors` sees it: its head is being tested (no agents here).
  // The monitor's thread polls the branch at once: wait for its head test (10 s at most).
  v1::MonitorsPage page;
  for (int i = 0; i < 200; ++i) {
    page = Parse<v1::MonitorsPage>(Get("/api/v1/monitors", kToken));
    if (page.monitors_size() == 1 && !page.monitors(0).probe_job().empty()) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_EQ(page.monitors_size(), 1);
  EXPECT_EQ(page.monitors(0).monitor_id(), added->monitor_id());
  EXPECT_EQ(page.monitors(0).repo(), repo_.path);
  EXPECT_EQ(page.monitors(0).branch(), "main");
  EXPECT_EQ(page.monitors(0).owner(), "tester");
  EXPECT_EQ(page.monitors(0).last_tested(), repo_.bad) << "the head of main";
  EXPECT_FALSE(page.monitors(0).probe_job().empty());
  EXPECT_EQ(page.regressions_size(), 0);
  // Anonymous visitors are refused here as everywhere.
  httplib::Result anon = Get("/api/v1/monitors");
  ASSERT_TRUE(anon);
  EXPECT_EQ(anon->status, 401);
  dashboard_.reset();

  // Only its owner or an admin removes a monitor (as only they cancel a job).
  absl::Status other = (*monitors)->Remove(added->monitor_id(), CallerIdentity{"mallory", false});
  EXPECT_EQ(other.code(), absl::StatusCode::kPermissionDenied) << other;
  EXPECT_TRUE(absl::StrContains(other.message(), "belongs to tester")) << other;
  EXPECT_EQ((*monitors)->List().size(), 1u);
  EXPECT_TRUE((*monitors)->Remove(added->monitor_id(), CallerIdentity{"tester", false}).ok());
  EXPECT_TRUE((*monitors)->List().empty());
}

}  // namespace
}  // namespace farm::web
