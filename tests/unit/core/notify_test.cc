// Regression reports: who gets them, what they say, and the two ways they leave (a webhook
// receiver on loopback, a sendmail stand-in that writes the message to a file).
#include "coordinator/notify/notify.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "coordinator/monitor/monitor_store.h"
#include "coordinator/store/store.h"
#include "httplib.h"
#include "tests/lib/test_util.h"

namespace farm {
namespace {

using ::farm::testing::MakeTempDir;
using ::farm::testing::WriteScript;

v1::Monitor MonitorWithSubscribers() {
  v1::Monitor m;
  m.set_monitor_id("3");
  m.set_repo("/src/linux");
  m.set_branch("main");
  m.add_notify_emails("owner@lab");
  auto* net = m.add_subscribers();
  net->set_path("net/");
  net->set_address("net@lab");
  auto* virtio = m.add_subscribers();
  virtio->set_path("drivers/virtio/");
  virtio->set_address("virtio@lab");
  auto* all = m.add_subscribers();
  all->set_path("");
  all->set_address("owner@lab");  // listed twice: told once
  return m;
}

TEST(Notify, RecipientsFollowThePathsTheCulpritTouches) {
  v1::Monitor m = MonitorWithSubscribers();
  CulpritInfo c{"abc",
                "net: break it",
                "A U Thor <author@kernel>",
                "author@kernel",
                {"net/core/dev.c", "include/net/x.h"}};
  EXPECT_EQ(Recipients(m, &c, /*culprit_verified=*/false),
            (std::vector<std::string>{"owner@lab", "net@lab"}));
  EXPECT_EQ(Recipients(m, &c, /*culprit_verified=*/true),
            (std::vector<std::string>{"owner@lab", "net@lab", "author@kernel"}));
  c.files = {"drivers/virtio/virtio_ring.c"};
  EXPECT_EQ(Recipients(m, &c, false), (std::vector<std::string>{"owner@lab", "virtio@lab"}));
  // No single culprit: only those who want every report.
  EXPECT_EQ(Recipients(m, nullptr, false), (std::vector<std::string>{"owner@lab"}));
}

TEST(Notify, ReportCarriesTagsToPaste) {
  v1::Monitor m = MonitorWithSubscribers();
  v1::Regression r;
  r.set_regression_id("7");
  r.set_last_pass("1111111111111111111111111111111111111111");
  r.set_first_fail("2222222222222222222222222222222222222222");
  v1::JobStatus job;
  job.set_job_id("12");
  job.set_state(v1::FOUND);
  job.set_report("abcdef0123456789abcdef0123456789abcdef01 is the first bad commit\n");
  CulpritInfo c{"abcdef0123456789abcdef0123456789abcdef01", "net: break it", "A <a@b>", "a@b", {}};
  std::string body = ReportBody(m, r, job, &c, false, "farm status 12", "farm <farm@lab>");
  EXPECT_NE(body.find("is the first bad commit"), std::string::npos) << body;
  EXPECT_NE(body.find("\nFixes: abcdef012345 (\"net: break it\")\n"), std::string::npos) << body;
  EXPECT_NE(body.find("\nReported-by: farm <farm@lab>\n"), std::string::npos) << body;
  EXPECT_NE(body.find("culprit not verified"), std::string::npos) << body;
  EXPECT_EQ(ReportSubject(m, &c), "[farm] main: regression bisected to \"net: break it\"");
  std::string none = ReportBody(m, r, job, nullptr, false, "farm status 12", "farm <farm@lab>");
  EXPECT_EQ(none.find("Fixes:"), std::string::npos) << none;
}

// An unreliable culprit blames nobody: the owner alone is told, why, and with no tag to paste.
TEST(Notify, AnUnreliableCulpritIsToldToTheOwnerOnlyWithoutTags) {
  v1::Monitor m = MonitorWithSubscribers();
  CulpritInfo c{"abcdef0123456789abcdef0123456789abcdef01",
                "net: break it",
                "A <a@b>",
                "a@b",
                {"net/core/dev.c"}};
  EXPECT_EQ(Recipients(m, &c, v1::UNRELIABLE), (std::vector<std::string>{"owner@lab"}));
  EXPECT_EQ(Recipients(m, &c, v1::VERIFIED),
            (std::vector<std::string>{"owner@lab", "net@lab", "a@b"}));
  EXPECT_EQ(Recipients(m, &c, v1::VERIFICATION_NONE),
            (std::vector<std::string>{"owner@lab", "net@lab"}));
  v1::Regression r;
  r.set_verification(v1::UNRELIABLE);
  r.set_verification_reason("the culprit passed 2 of 3 retests");
  v1::JobStatus job;
  job.set_state(v1::FOUND);
  std::string body = ReportBody(m, r, job, &c, false, "farm status 12", "farm <farm@lab>");
  EXPECT_NE(body.find("culprit UNRELIABLE: the culprit passed 2 of 3 retests"), std::string::npos)
      << body;
  EXPECT_EQ(body.find("Fixes:"), std::string::npos) << body;
  EXPECT_EQ(body.find("Reported-by:"), std::string::npos) << body;
  EXPECT_EQ(ReportSubject(m, &c, v1::UNRELIABLE),
            "[farm] main: unreliable bisection to \"net: break it\" (not verified)");
}

TEST(Notify, SendMailHandsTheMessageToSendmail) {
  std::string dir = MakeTempDir("sendmail");
  std::string sink = dir + "/sendmail";
  // A stand-in for the lab's MTA: the real interface (`sendmail -t -i`, message on stdin).
  WriteScript(sink, "#!/bin/sh\n[ \"$1\" = -t ] || exit 64\ncat > " + dir + "/message\n");
  std::string msg = MailMessage("farm <f@lab>", {"a@lab", "b@lab"}, "subj", "body\n");
  ASSERT_TRUE(SendMail(sink, msg, absl::Seconds(10)).ok());
  std::ifstream in(dir + "/message");
  std::stringstream got;
  got << in.rdbuf();
  EXPECT_EQ(got.str(), msg);
  EXPECT_NE(msg.find("\nTo: a@lab, b@lab\n"), std::string::npos);

  WriteScript(sink, "#!/bin/sh\ncat >/dev/null\nexit 75\n");
  absl::Status st = SendMail(sink, msg, absl::Seconds(10));
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("exit 75"), std::string::npos) << st;
  st = SendMail(dir + "/missing", msg, absl::Seconds(10));
  EXPECT_NE(st.message().find("--sendmail"), std::string::npos) << st;
}

TEST(Notify, WebhookPostsJson) {
  httplib::Server server;
  std::string body, type;
  server.Post("/hook", [&](const httplib::Request& req, httplib::Response& res) {
    body = req.body;
    type = req.get_header_value("Content-Type");
    res.set_content("ok", "text/plain");
  });
  int port = server.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  std::thread t([&] { server.listen_after_bind(); });
  std::string url = "http://127.0.0.1:" + std::to_string(port) + "/hook";
  absl::Status st = PostWebhook(url, "{\"a\":1}", absl::Seconds(10));
  server.stop();
  t.join();
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(body, "{\"a\":1}");
  EXPECT_EQ(type, "application/json");
  // Nobody listens there now.
  st = PostWebhook(url, "{}", absl::Seconds(2));
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
  EXPECT_EQ(CheckWebhookUrl("https://x/y").code(), absl::StatusCode::kInvalidArgument);
}

TEST(MonitorStore, MonitorsAndRegressionsSurviveReopening) {
  std::string db = MakeTempDir("monitor_store") + "/farm.db";
  ASSERT_TRUE(Store::Open(db).ok());  // the migrations make the tables
  {
    auto store = MonitorStore::Open(db);
    ASSERT_TRUE(store.ok()) << store.status();
    v1::Monitor m = MonitorWithSubscribers();
    auto id = (*store)->InsertMonitor(m);
    ASSERT_TRUE(id.ok());
    m.set_monitor_id(std::to_string(*id));
    m.set_last_pass("abc");
    ASSERT_TRUE((*store)->UpdateMonitor(m).ok());
    v1::Regression r;
    r.set_monitor_id(m.monitor_id());
    r.set_first_fail("def");
    ASSERT_TRUE((*store)->InsertRegression(r).ok());
  }
  auto store = MonitorStore::Open(db);
  ASSERT_TRUE(store.ok());
  auto monitors = (*store)->LoadMonitors();
  ASSERT_TRUE(monitors.ok());
  ASSERT_EQ(monitors->size(), 1u);
  EXPECT_EQ((*monitors)[0].last_pass(), "abc");
  EXPECT_EQ((*monitors)[0].subscribers_size(), 3);
  auto regressions = (*store)->LoadRegressions();
  ASSERT_TRUE(regressions.ok());
  ASSERT_EQ(regressions->size(), 1u);
  EXPECT_EQ((*regressions)[0].first_fail(), "def");
  EXPECT_EQ((*regressions)[0].regression_id(), "1");
  EXPECT_EQ((*store)->DeleteMonitor(9).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE((*store)->DeleteMonitor(1).ok());
}

}  // namespace
}  // namespace farm
