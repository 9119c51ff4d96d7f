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

// A repository at `repo` on branch main, authored by author@kernel.test, with a root commit and
// "state" = ok on it; returns the second commit.
std::string MakeWatchedRepo(const std::string& repo) {
  fs::create_directories(repo);
  Git(repo, "init -q -b main");
  Git(repo, "config user.name 'A U Thor'");
  Git(repo, "config user.email author@kernel.test");
  Commit(repo, "README", "watched\n", "root");
  return Commit(repo, "state", "ok\n", "base: state is ok");
}

// A sendmail stand-in at <dir>/sendmail behind the real `sendmail -t` interface; each message
// lands in <dir>/mail whole (renamed into place), one file per message. Returns its path.
std::string MakeMailSink(const std::string& dir) {
  std::string mail_dir = dir + "/mail";
  fs::create_directories(mail_dir);
  std::string sendmail = dir + "/sendmail";
  WriteScript(sendmail,
              absl::StrCat("#!/bin/sh\n[ \"$1\" = -t ] || exit 64\n", "cat > ", mail_dir,
                           "/.msg.$$ && mv ", mail_dir, "/.msg.$$ ", mail_dir, "/msg.$$\n"));
  return sendmail;
}

// `farm watch-branch` of `repo`'s main every second, reported to `hook`, to owner@lab.test and
// to the subscribers of net/ and docs/.
std::string WatchArgs(const std::string& repo, const WebhookReceiver& hook,
                      const std::string& check) {
  return absl::StrCat(" --repo ", repo, " --branch main --every 1s --notify-webhook ", hook.url(),
                      " --notify-email owner@lab.test --subscribe net/=net@lab.test",
                      " --subscribe docs/=docs@lab.test -- ", check);
}

TEST(WatchBranch, FindsBisectsReportsAndClosesARegression) {
  std::string dir = MakeTempDir("watch_branch");
  std::string repo = dir + "/repo";
  std::string base = MakeWatchedRepo(repo);
  std::string check = dir + "/check.sh";
  WriteScript(check, "#!/bin/sh\ngrep -qx ok state\n");
  std::string mail_dir = dir + "/mail";
  std::string sendmail = MakeMailSink(dir);
  WebhookReceiver hook;

  TestFarm farm(dir, {"--sendmail", sendmail, "--report-from", "farm <farm@test.lab>"});
  ASSERT_TRUE(farm.started()) << farm.coordinator().Output();
  farm.AddAgent("a1", dir + "/a1");
  farm.AddAgent("a2", dir + "/a2");
  ASSERT_TRUE(farm.WaitForAgents());
  auto farm_cmd = [&](const std::string& args) {
    return Sh(absl::StrCat(Farm(), " ", args, " --coordinator ", farm.listen()));
  };

  CommandResult w = Sh(absl::StrCat(Farm(), " watch-branch --coordinator ", farm.listen(),
                                    WatchArgs(repo, hook, check)));
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

// A farm of `agents` agents whose monitor 1 watches MakeWatchedRepo's main with the test
// `check_body` (reported as WatchArgs says), once the first head passed.
class WatchedFarm {
 public:
  WatchedFarm(const std::string& name, const std::string& check_body, int agents)
      : dir_(MakeTempDir(name)), repo_(dir_ + "/repo"), base_(MakeWatchedRepo(repo_)) {
    WriteScript(dir_ + "/check.sh", check_body);
    farm_ = std::make_unique<TestFarm>(
        dir_, std::vector<std::string>{"--sendmail", MakeMailSink(dir_), "--report-from",
                                       "farm <farm@test.lab>"});
    for (int i = 0; i < agents; ++i) {
      farm_->AddAgent(absl::StrCat("a", i), absl::StrCat(dir_, "/a", i));
    }
  }
  // Starts the monitor and waits for the base to pass; false (with a test failure) otherwise.
  bool Start() {
    EXPECT_TRUE(farm_->started()) << farm_->coordinator().Output();
    if (!farm_->started() || !farm_->WaitForAgents()) return false;
    // --coordinator before the command: everything after WatchArgs' `--` is the check's.
    CommandResult w = Sh(absl::StrCat(Farm(), " watch-branch --coordinator ", farm_->listen(),
                                      WatchArgs(repo_, hook_, dir_ + "/check.sh")));
    EXPECT_EQ(w.exit_code, 0) << w.output;
    return w.exit_code == 0 && WaitForHead(base_, "PASS");
  }
  CommandResult Cmd(const std::string& args) {
    return Sh(absl::StrCat(Farm(), " ", args, " --coordinator ", farm_->listen()));
  }
  // Waits until `farm monitors` lists `commit` tested with `verdict` (PASS or FAIL).
  bool WaitForHead(const std::string& commit, const std::string& verdict) {
    bool seen = WaitFor(
        [&] {
          return Cmd("monitors").output.find(commit.substr(0, 12) + " " + verdict) !=
                 std::string::npos;
        },
        absl::Seconds(60));
    EXPECT_TRUE(seen) << commit << " " << verdict << "\n"
                      << Cmd("monitors").output << farm_->coordinator().Output();
    return seen;
  }
  // Waits for the report: one webhook POST and one message. Returns the message.
  std::string WaitForReport() {
    bool sent = WaitFor([&] { return !hook_.bodies().empty() && !Files(mail_dir()).empty(); },
                        absl::Seconds(120));
    EXPECT_TRUE(sent) << Cmd("regressions").output << Cmd("monitors").output
                      << farm_->coordinator().Output();
    return sent ? Read(Files(mail_dir())[0]) : "";
  }
  std::string mail_dir() const { return dir_ + "/mail"; }
  const std::string& dir() const { return dir_; }
  const std::string& repo() const { return repo_; }
  WebhookReceiver& hook() { return hook_; }

 private:
  std::string dir_;
  std::string repo_;
  std::string base_;
  WebhookReceiver hook_;
  std::unique_ptr<TestFarm> farm_;
};

// What a kernel developer wants of a test that fails now and then (KernelCI's and syzbot's rule):
// no culprit is blamed. The flaky failure of a head opens a regression and its bisect names the
// head, but the retests contradict it: the report says "unreliable" with the retests' counts, goes
// to the monitor's owner only (not to the path's subscribers, not to the author), and carries no
// Fixes: tag.
TEST(WatchBranch, AFlakyFailureIsReportedUnreliableToTheOwnerOnly) {
  // Every third run fails, whatever the tree, counted in a file under a lock. With one agent the
  // runs are: 1 the base (passes), 2 the docs push (passes), 3 the net push (fails: the
  // regression), then the culprit, its parent and the revert three times each, among which 6, 9
  // and 12 fail: the culprit cannot fail all three of its retests.
  std::string counter = MakeTempDir("watch_flaky_counter") + "/count";
  WatchedFarm lab(
      "watch_flaky",
      absl::StrCat("#!/bin/sh\nexec 9>>", Quote(counter + ".lock"), "\nflock 9\nn=$(cat ",
                   Quote(counter), " 2>/dev/null || echo 0)\n", "n=$((n + 1))\necho $n > ",
                   Quote(counter), "\n", "test $((n % 3)) -ne 0\n"),
      /*agents=*/1);
  ASSERT_TRUE(lab.Start());
  std::string docs = Commit(lab.repo(), "docs/a.txt", "a\n", "docs: add a");
  ASSERT_TRUE(lab.WaitForHead(docs, "PASS"));
  std::string net = Commit(lab.repo(), "net/dev.c", "int dev;\n", "net: add dev");
  std::string mail = lab.WaitForReport();

  std::string regressions = lab.Cmd("regressions").output;
  EXPECT_NE(regressions.find("culprit " + net.substr(0, 12)), std::string::npos) << regressions;
  EXPECT_NE(regressions.find("  verification: unreliable: the culprit passed "), std::string::npos)
      << regressions;
  std::string json = lab.hook().bodies()[0];
  EXPECT_NE(json.find("\"verification\":\"UNRELIABLE\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"verificationReason\":\"the culprit passed "), std::string::npos) << json;

  // The owner alone; the author's address is only in the quoted commit.
  EXPECT_NE(mail.find("\nTo: owner@lab.test\n"), std::string::npos) << mail;
  std::string headers = mail.substr(0, mail.find("\n\n"));
  EXPECT_EQ(headers.find("author@kernel.test"), std::string::npos) << mail;
  EXPECT_EQ(headers.find("net@lab.test"), std::string::npos) << mail;
  EXPECT_NE(mail.find("\nSubject: [farm] main: unreliable bisection to \"net: add dev\""),
            std::string::npos)
      << mail;
  EXPECT_NE(mail.find("culprit UNRELIABLE: the culprit passed "), std::string::npos) << mail;
  EXPECT_EQ(mail.find("culprit verified"), std::string::npos) << mail;
  EXPECT_EQ(mail.find("\nFixes: "), std::string::npos) << mail;
  EXPECT_EQ(Files(lab.mail_dir()).size(), 1u);
}

// A regression that only two branches together make: the bisect ends on their merge, which the
// report calls unreliable because it is a merge (syzbot's rule); its author is not told.
TEST(WatchBranch, AMergeCulpritIsReportedUnreliable) {
  WatchedFarm lab("watch_merge",
                  "#!/bin/sh\ntest -f main-part && test -f topic-part && exit 1\nexit 0\n",
                  /*agents=*/2);
  ASSERT_TRUE(lab.Start());
  Git(lab.repo(), "checkout -q -b topic");
  Commit(lab.repo(), "topic-part", "t\n", "topic: add its part");
  Git(lab.repo(), "checkout -q main");
  std::string main_part = Commit(lab.repo(), "main-part", "m\n", "main: add its part");
  ASSERT_TRUE(lab.WaitForHead(main_part, "PASS"));
  Git(lab.repo(), "merge -q --no-ff -m 'merge topic' topic");
  std::string merge = Git(lab.repo(), "rev-parse HEAD");
  std::string mail = lab.WaitForReport();

  std::string regressions = lab.Cmd("regressions").output;
  EXPECT_NE(regressions.find("culprit " + merge.substr(0, 12)), std::string::npos) << regressions;
  EXPECT_NE(regressions.find("  verification: unreliable: the culprit is a merge"),
            std::string::npos)
      << regressions;
  std::string json = lab.hook().bodies()[0];
  EXPECT_NE(json.find("\"verification\":\"UNRELIABLE\""), std::string::npos) << json;
  EXPECT_NE(mail.find("\nTo: owner@lab.test\n"), std::string::npos) << mail;
  EXPECT_EQ(mail.substr(0, mail.find("\n\n")).find("author@kernel.test"), std::string::npos)
      << mail;
  EXPECT_NE(mail.find("culprit UNRELIABLE: the culprit is a merge"), std::string::npos) << mail;
  EXPECT_EQ(mail.find("\nFixes: "), std::string::npos) << mail;
}

}  // namespace
}  // namespace farm::testing
