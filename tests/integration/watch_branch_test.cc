// farm watch-branch end to end: a repository gains commits while a monitor watches it; the
// planted regression is found, bisected and reported once to a webhook receiver on loopback and
// once through a sendmail stand-in (a script behind the real `sendmail -t` interface that writes
// the message to a file); a fix closes it; a backup of the live database and a restarted
// coordinator both still have the monitor and its regression.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "coordinator/monitor/monitor_store.h"
#include "coordinator/store/store.h"
#include "httplib.h"
#include "tests/integration/test_farm.h"

namespace farm::testing {
namespace {

namespace fs = std::filesystem;

std::string Git(const std::string& repo, const std::string& args) {
  CommandResult r = Sh(absl::StrCat("git -C ", Quote(repo), " ", args));
  EXPECT_EQ(r.exit_code, 0) << args << ": " << r.output;
  return std::string(absl::StripAsciiWhitespace(r.output));
}

// Commits `file` with `content` on the current branch; returns the commit id.
std::string Commit(const std::string& repo, const std::string& file, const std::string& content,
                   const std::string& subject) {
  fs::create_directories(fs::path(repo + "/" + file).parent_path());
  std::ofstream(repo + "/" + file) << content;
  Git(repo, "add -A");
  Git(repo, "commit -q -m " + Quote(subject));
  return Git(repo, "rev-parse HEAD");
}

std::vector<std::string> Files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().string());
  return out;
}

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Receives webhook POSTs on 127.0.0.1 (a port the kernel chose).
class WebhookReceiver {
 public:
  WebhookReceiver() {
    server_.Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu_);
      if (bodies_.empty()) first_at_ = absl::Now();
      bodies_.push_back(req.body);
      res.set_content("ok", "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~WebhookReceiver() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return absl::StrCat("http://127.0.0.1:", port_, "/hook"); }
  std::vector<std::string> bodies() {
    std::lock_guard<std::mutex> lock(mu_);
    return bodies_;
  }
  absl::Time first_at() {
    std::lock_guard<std::mutex> lock(mu_);
    return first_at_;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> bodies_;
  absl::Time first_at_;
};

TEST(WatchBranch, FindsBisectsReportsAndClosesARegression) {
  std::string dir = MakeTempDir("watch_branch");
  std::string repo = dir + "/repo";
  fs::create_directories(repo);
  Git(repo, "init -q -b main");
  Git(repo, "config user.name 'A U Thor'");
  Git(repo, "config user.email author@kernel.test");
  Commit(repo, "README", "watched\n", "root");
  std::string base = Commit(repo, "state", "ok\n", "base: state is ok");
  std::string check = dir + "/check.sh";
  WriteScript(check, "#!/bin/sh\ngrep -qx ok state\n");
  std::string mail_dir = dir + "/mail";
  fs::create_directories(mail_dir);
  std::string sendmail = dir + "/sendmail";
  // The message lands in a file whole (renamed into place), one file per message.
  WriteScript(sendmail,
              absl::StrCat("#!/bin/sh\n[ \"$1\" = -t ] || exit 64\n", "cat > ", mail_dir,
                           "/.msg.$$ && mv ", mail_dir, "/.msg.$$ ", mail_dir, "/msg.$$\n"));
  WebhookReceiver hook;

  TestFarm farm(dir, {"--sendmail", sendmail, "--report-from", "farm <farm@test.lab>"});
  ASSERT_TRUE(farm.started()) << farm.coordinator().Output();
  farm.AddAgent("a1", dir + "/a1");
  farm.AddAgent("a2", dir + "/a2");
  ASSERT_TRUE(farm.WaitForAgents());
  auto farm_cmd = [&](const std::string& args) {
    return Sh(absl::StrCat(Farm(), " ", args, " --coordinator ", farm.listen()));
  };

  CommandResult w =
      Sh(absl::StrCat(Farm(), " watch-branch --coordinator ", farm.listen(), " --repo ", repo,
                      " --branch main --every 1s --notify-webhook ", hook.url(),
                      " --notify-email owner@lab.test --subscribe net/=net@lab.test",
                      " --subscribe docs/=docs@lab.test -- ", check));
  ASSERT_EQ(w.exit_code, 0) << w.output;
  EXPECT_TRUE(absl::StartsWith(w.output, "monitor 1: ")) << w.output;
  // A typo in the branch is said at once.
  CommandResult typo = Sh(absl::StrCat(Farm(), " watch-branch --coordinator ", farm.listen(),
                                       " --repo ", repo, " --branch mian -- ", check));
  EXPECT_EQ(typo.exit_code, 2) << typo.output;
  EXPECT_NE(typo.output.find("branch 'mian' is not in"), std::string::npos) << typo.output;

  ASSERT_TRUE(WaitFor(
      [&] {
        return farm_cmd("monitors").output.find(base.substr(0, 12) + " PASS") != std::string::npos;
      },
      absl::Seconds(60)))
      << farm_cmd("monitors").output << farm.coordinator().Output();

  // One push of three commits; the second breaks the test and touches net/.
  Git(repo, "checkout -q -b work");
  std::string c1 = Commit(repo, "docs/a.txt", "a\n", "docs: add a");
  Commit(repo, "net/dev.c", "int dev;\n", "net: add dev");
  fs::path state = repo + "/state";
  std::ofstream(state) << "broken\n";
  std::string culprit = Commit(repo, "net/dev.c", "int dev = 1;\n", "net: break the state");
  std::string c3 = Commit(repo, "docs/b.txt", "b\n", "docs: add b");
  Git(repo, "update-ref refs/heads/main refs/heads/work");
  absl::Time pushed = absl::Now();

  ASSERT_TRUE(WaitFor([&] { return !hook.bodies().empty() && !Files(mail_dir).empty(); },
                      absl::Seconds(120)))
      << farm_cmd("regressions").output << farm_cmd("monitors").output
      << farm.coordinator().Output();
  // bench/README.md, "Push to report": the poll (--every 1s), the head test, the bisect of 4
  // commits on 2 agents, the report.
  std::printf("push to webhook report: %.2f s\n", absl::ToDoubleSeconds(hook.first_at() - pushed));
  std::string regressions = farm_cmd("regressions").output;
  EXPECT_NE(regressions.find(absl::StrCat(base.substr(0, 12), "..", c3.substr(0, 12), " open")),
            std::string::npos)
      << regressions;
  EXPECT_NE(regressions.find("culprit " + culprit.substr(0, 12)), std::string::npos) << regressions;

  std::string json = hook.bodies()[0];
  EXPECT_NE(json.find(absl::StrCat("\"culprit\":\"", culprit, "\"")), std::string::npos) << json;
  EXPECT_NE(json.find("\"status\":\"found\""), std::string::npos) << json;
  std::string mail = Read(Files(mail_dir)[0]);
  // The service's bisects verify their culprit; a verified culprit's author is told too.
  EXPECT_NE(mail.find("\nTo: owner@lab.test, net@lab.test, author@kernel.test\n"),
            std::string::npos)
      << mail;
  EXPECT_NE(mail.find("culprit verified"), std::string::npos) << mail;
  EXPECT_EQ(mail.find("docs@lab.test"), std::string::npos) << mail;
  EXPECT_NE(mail.find(culprit + " is the first bad commit"), std::string::npos) << mail;
  EXPECT_NE(
      mail.find(absl::StrCat("\nFixes: ", culprit.substr(0, 12), " (\"net: break the state\")\n")),
      std::string::npos)
      << mail;
  EXPECT_NE(mail.find("\nReported-by: farm <farm@test.lab>\n"), std::string::npos) << mail;

  // Only the heads were tested: the base and the push's last commit, not the ones between.
  std::string monitors = farm_cmd("monitors").output;
  EXPECT_NE(monitors.find(c3.substr(0, 12) + " FAIL"), std::string::npos) << monitors;
  EXPECT_EQ(monitors.find(c1.substr(0, 12)), std::string::npos) << monitors;
  EXPECT_EQ(monitors.find(culprit.substr(0, 12) + " FAIL"), std::string::npos) << monitors;

  // The fix: the next head passes and closes the regression.
  std::ofstream(state) << "ok\n";
  std::string fix = Commit(repo, "state", "ok\n", "state: ok again");
  Git(repo, "update-ref refs/heads/main refs/heads/work");
  ASSERT_TRUE(WaitFor(
      [&] {
        return farm_cmd("regressions").output.find("fixed by " + fix.substr(0, 12)) !=
               std::string::npos;
      },
      absl::Seconds(60)))
      << farm_cmd("regressions").output << farm_cmd("monitors").output;
  EXPECT_NE(farm_cmd("regressions").output.find(" closed, "), std::string::npos);

  // A backup of the live database holds the jobs and the monitor.
  CommandResult backup = Sh(absl::StrCat(Quote(Bin("farm-coordinator")), " --db ", dir,
                                         "/farm.db --backup ", dir, "/copy.db"));
  ASSERT_EQ(backup.exit_code, 0) << backup.output;
  {
    auto copy = Store::Open(dir + "/copy.db");
    ASSERT_TRUE(copy.ok()) << copy.status();
    auto jobs = (*copy)->LoadJobs(false);
    ASSERT_TRUE(jobs.ok());
    EXPECT_GE(jobs->size(), 4u);  // three head tests and the bisect
    auto monitors_copy = (*MonitorStore::Open(dir + "/copy.db"))->LoadMonitors();
    ASSERT_TRUE(monitors_copy.ok());
    ASSERT_EQ(monitors_copy->size(), 1u);
    EXPECT_EQ((*monitors_copy)[0].last_pass(), fix);
  }

  // A restarted coordinator has the monitor, its history and the regression; nobody is told
  // twice.
  farm.coordinator().Kill(SIGTERM);
  farm.coordinator().Wait();
  Background again({Bin("farm-coordinator"), "--listen", "127.0.0.1:0", "--db", dir + "/farm.db",
                    "--sendmail", sendmail},
                   dir + "/coord2.log");
  std::string listen = WaitForListenAddress(again, absl::Seconds(20));
  ASSERT_FALSE(listen.empty()) << again.Output();
  CommandResult after = Sh(absl::StrCat(Farm(), " monitors --coordinator ", listen));
  EXPECT_NE(after.output.find(fix.substr(0, 12) + " PASS"), std::string::npos) << after.output;
  after = Sh(absl::StrCat(Farm(), " regressions --coordinator ", listen));
  EXPECT_NE(after.output.find("culprit " + culprit.substr(0, 12)), std::string::npos)
      << after.output;
  EXPECT_EQ(hook.bodies().size(), 1u);
  EXPECT_EQ(Files(mail_dir).size(), 1u);
  CommandResult unwatch = Sh(absl::StrCat(Farm(), " unwatch 1 --coordinator ", listen));
  EXPECT_EQ(unwatch.exit_code, 0) << unwatch.output;
  EXPECT_NE(Sh(absl::StrCat(Farm(), " monitors --coordinator ", listen)).output.find("no monitors"),
            std::string::npos);
}

}  // namespace
}  // namespace farm::testing
