// What a lab throws at the farm, with the real binaries: a coordinator SIGKILLed mid-bisect, a
// network cut longer than the lease, agents that fail infrastructure-wise (a failing test
// harness, a full disk, a git object missing, qemu missing or crashing), TLS with client
// certificates and tokens, and a test that prints a gigabyte.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "tests/integration/test_farm.h"
#include "tests/lib/test_util.h"
#include "tests/lib/tmpfs.h"

namespace farm::testing {
namespace {

constexpr char kSlowTest[] =
    "#!/bin/sh\n"
    "sleep 0.4\n"
    "test -f bug && exit 1\n"
    "exit 0\n";

// A test that lets its first `free_runs` runs finish and holds every run that starts after
// that many have finished, until the test releases it (ReleaseGate; at most 120 s): the bisect
// is then certainly still running when a fault is injected, however fast or slow the machine.
// Counting finished runs, not started ones, matters: a run the coordinator cancels (a newer
// verdict made it pointless) never finishes, and must not use up a free run. Held runs append
// to <dir>/gate.held, finished ones to <dir>/gate.done.
std::string GatedTest(const std::string& dir, int free_runs) {
  const std::string gate = Quote(dir + "/gate");
  return absl::StrCat("#!/bin/sh\nif [ \"$(cat ", gate, ".done 2>/dev/null | wc -l)\" -ge ",
                      free_runs, " ]; then\n  echo held >> ", gate, ".held\n",
                      "  n=0; while [ ! -e ", gate, ".open ] && [ $n -lt 2400 ]; do sleep 0.05; ",
                      "n=$((n+1)); done\nfi\n", "if test -f bug; then v=1; else v=0; fi\n",
                      "echo done >> ", gate, ".done\nexit $v\n");
}
// Runs of GatedTest held at the gate so far.
int GateHeld(const std::string& dir) {
  std::ifstream in(dir + "/gate.held");
  int n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}
void ReleaseGate(const std::string& dir) { std::ofstream(dir + "/gate.open").put('\n'); }

int CountVerdicts(const std::string& status) {
  int n = 0;
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    absl::string_view l = absl::StripLeadingAsciiWhitespace(line);
    n += absl::StartsWith(l, "good ") || absl::StartsWith(l, "bad ");
  }
  return n;
}

// The coordinator is SIGKILLed in the middle of a bisect and restarted on the same database and
// port: it resumes the job, the agents reconnect by themselves, the watcher reattaches, and the
// bisect names the culprit with no verdict lost or counted twice.
TEST(Faults, CoordinatorKilledMidBisectResumes) {
  std::string dir = MakeTempDir("coordkill");
  Repo repo = MakeRepo(dir + "/repo", "--shape merges --commits 200 --seed 41");
  WriteScript(dir + "/test.sh", GatedTest(dir, 2));
  std::vector<std::string> coord_argv = {
      Bin("farm-coordinator"), "--listen", "127.0.0.1:0", "--db", dir + "/farm.db", "--lease", "3",
      "--heartbeat",           "1"};
  auto coordinator = std::make_unique<Background>(coord_argv, dir + "/coord1.log");
  const std::string listen = WaitForListenAddress(*coordinator, absl::Seconds(20));
  ASSERT_FALSE(listen.empty()) << coordinator->Output();
  coord_argv[2] = listen;  // the restart listens where the agents and the watcher reconnect
  Background a1(
      {Bin("farm-agent"), "--coordinator", listen, "--workdir", dir + "/a1", "--id", "a1"},
      dir + "/a1.log");
  Background a2(
      {Bin("farm-agent"), "--coordinator", listen, "--workdir", dir + "/a2", "--id", "a2"},
      dir + "/a2.log");
  CommandResult submit =
      Sh(absl::StrCat(Farm(), " submit --coordinator ", listen, " --repo ", Quote(repo.path),
                      " --good ", repo.root, " --bad ", repo.bad, " -- ", Quote(dir + "/test.sh")));
  ASSERT_EQ(submit.exit_code, 0) << submit.output;
  std::string job(absl::StripAsciiWhitespace(submit.output));
  Background watcher(
      {Bin("farm"), "watch", "--coordinator", listen, job, "--log", dir + "/bisect.log"},
      dir + "/watch.log");
  auto status = [&] {
    return Sh(absl::StrCat(Farm(), " status --coordinator ", listen, " ", job)).output;
  };
  // Verdicts in (two, unless a finished run was cancelled first), and a test held at the gate:
  // the bisect is mid-way.
  ASSERT_TRUE(WaitFor([&] { return CountVerdicts(status()) >= 1 && GateHeld(dir) >= 1; },
                      absl::Seconds(60)))
      << status();
  coordinator->Kill(SIGKILL);
  coordinator->Wait();
  coordinator = std::make_unique<Background>(coord_argv, dir + "/coord2.log");
  ASSERT_TRUE(coordinator->WaitForOutput("listening on ", absl::Seconds(20)))
      << coordinator->Output();
  ReleaseGate(dir);
  EXPECT_EQ(watcher.Wait(), 0) << watcher.Output() << coordinator->Output();
  EXPECT_EQ(ParseAnswer(watcher.Output()).first_bad, repo.culprit) << watcher.Output();
  EXPECT_TRUE(absl::StrContains(watcher.Output(), "reattached")) << watcher.Output();
  // Every verdict in the log is for a different commit, and git replays it to the same answer.
  std::ifstream log(dir + "/bisect.log");
  std::set<std::string> marked;
  std::string line;
  while (std::getline(log, line)) {
    if (absl::StartsWith(line, "git bisect good ") || absl::StartsWith(line, "git bisect bad ")) {
      EXPECT_TRUE(marked.insert(line.substr(line.rfind(' ') + 1)).second)
          << "counted twice: " << line;
    }
  }
  CommandResult replay =
      Sh(absl::StrCat("git clone -q ", Quote(repo.path), " ", Quote(dir + "/clone"), " && cd ",
                      Quote(dir + "/clone"), " && git bisect replay ", Quote(dir + "/bisect.log")));
  EXPECT_EQ(ParseAnswer(replay.output).first_bad, repo.culprit) << replay.output;
}

// The link between an agent and the coordinator is cut for longer than the lease. The agent
// reconnects by itself and the bisect finishes with the culprit.
TEST(Faults, NetworkCutLongerThanTheLease) {
  std::string dir = MakeTempDir("netcut");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 64 --seed 43");
  WriteScript(dir + "/test.sh", GatedTest(dir, 1));
  Background coordinator({Bin("farm-coordinator"), "--listen", "127.0.0.1:0", "--db",
                          dir + "/farm.db", "--lease", "2", "--heartbeat", "1"},
                         dir + "/coord.log");
  const std::string listen = WaitForListenAddress(coordinator, absl::Seconds(20));
  ASSERT_FALSE(listen.empty()) << coordinator.Output();
  int port = 0;
  ASSERT_TRUE(absl::SimpleAtoi(listen.substr(listen.rfind(':') + 1), &port)) << listen;
  TcpProxy proxy(port);
  Background agent({Bin("farm-agent"), "--coordinator", absl::StrCat("127.0.0.1:", proxy.port()),
                    "--workdir", dir + "/agent", "--id", "behind-proxy"},
                   dir + "/agent.log");
  CommandResult submit =
      Sh(absl::StrCat(Farm(), " submit --coordinator ", listen, " --repo ", Quote(repo.path),
                      " --good ", repo.root, " --bad ", repo.bad, " -- ", Quote(dir + "/test.sh")));
  ASSERT_EQ(submit.exit_code, 0) << submit.output;
  std::string job(absl::StripAsciiWhitespace(submit.output));
  auto status = [&] {
    return Sh(absl::StrCat(Farm(), " status --coordinator ", listen, " ", job)).output;
  };
  // A verdict in, and the next test held at the gate: the cut comes mid-bisect.
  ASSERT_TRUE(WaitFor([&] { return CountVerdicts(status()) >= 1 && GateHeld(dir) >= 1; },
                      absl::Seconds(30)))
      << status();
  proxy.Cut();
  // Longer than the lease: the coordinator gives the agent's task up.
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(status(), "lost "); }, absl::Seconds(30)))
      << status();
  proxy.Restore();
  ReleaseGate(dir);
  // Bounded, so that a bisect that never ends fails here with the logs, not at ctest's timeout.
  CommandResult watch =
      Sh(absl::StrCat("timeout 150 ", Farm(), " watch --coordinator ", listen, " ", job));
  EXPECT_EQ(watch.exit_code, 0) << watch.output << "\nagent:\n"
                                << agent.Output() << "\ncoordinator:\n"
                                << coordinator.Output() << "\nstatus:\n"
                                << status();
  EXPECT_EQ(ParseAnswer(watch.output).first_bad, repo.culprit) << watch.output;
  EXPECT_TRUE(absl::StrContains(agent.Output(), "reconnecting")) << agent.Output();
}

// An agent whose every task fails for infrastructure reasons is quarantined and the other agent
// finishes the bisect; a job whose every attempt fails stops with a clear message.
TEST(Faults, InfrastructureErrorsAreNotVerdicts) {
  std::string dir = MakeTempDir("infra");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 40 --seed 47");
  WriteScript(dir + "/test.sh", absl::StrCat("#!/bin/sh\ncase \"$FARM_WORKTREE\" in\n"
                                             "  */broken-host/*) exit 255;;\nesac\n",
                                             kSlowTest + 10));
  TestFarm farm(dir);
  ASSERT_TRUE(farm.started()) << farm.coordinator().Output();
  farm.AddAgent("broken-host", dir + "/broken-host");
  farm.AddAgent("good-host", dir + "/good-host");
  ASSERT_TRUE(farm.WaitForAgents()) << farm.Agents();
  std::string job = farm.Submit(absl::StrCat("--repo ", Quote(repo.path), " --good ", repo.root,
                                             " --bad ", repo.bad, " -- ", Quote(dir + "/test.sh")));
  ASSERT_FALSE(job.empty());
  CommandResult watch = farm.Watch(job);
  EXPECT_EQ(watch.exit_code, 0) << watch.output;
  EXPECT_EQ(ParseAnswer(watch.output).first_bad, repo.culprit) << watch.output;
  std::string status = farm.Status(job);
  EXPECT_TRUE(absl::StrContains(status, "infra-error")) << status;
  EXPECT_TRUE(absl::StrContains(farm.AgentLine("broken-host"), "quarantined"))
      << farm.Agents() << farm.coordinator().Output();
  ExpectNoVerdictFrom(status, "broken-host");

  // Every attempt fails: the job stops with a message instead of spinning.
  WriteScript(dir + "/always-broken.sh", "#!/bin/sh\nexit 200\n");
  CommandResult fail = Sh(absl::StrCat(
      Farm(), " bisect --repo ", Quote(repo.path), " --good ", repo.root, " --bad ", repo.bad,
      " --workdir ", Quote(dir + "/local"), " -- ", Quote(dir + "/always-broken.sh")));
  EXPECT_EQ(fail.exit_code, 1) << fail.output;
  EXPECT_TRUE(absl::StrContains(fail.output, "attempts failed with infrastructure errors"))
      << fail.output;
  EXPECT_FALSE(absl::StrContains(fail.output, "is the first bad commit")) << fail.output;
}

// The agents' work directories of the full-disk tests: 4 MiB, twice filled by kFillingBuild.
constexpr uint64_t kSmallDisk = 4 << 20;
constexpr char kFillingBuild[] = "head -c 8388608 /dev/zero > \"$FARM_BUILD_DIR/blob\"";

// `farm submit`/`farm bisect` arguments for `repo`'s range.
std::string Range(const Repo& repo) {
  return absl::StrCat("--repo ", Quote(repo.path), " --good ", repo.root, " --bad ", repo.bad);
}

// An agent whose work directory is a small filesystem that every build fills. Its failed builds
// are infrastructure errors saying that the disk is full and where, not skips; the other agent's
// verdicts name the culprit; the full agent keeps running and is listed as quarantined with the
// reason. With only a full agent, the job stops with that message instead of spinning.
TEST(Faults, FullDiskIsAnInfrastructureErrorNotASkip) {
  std::string dir = MakeTempDir("diskfull");
  TmpfsMount small(dir + "/full-host", kSmallDisk);
  if (!small.ok()) GTEST_SKIP() << "no small filesystem to fill: " << small.error();
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 40 --seed 61");
  WriteScript(dir + "/test.sh", kSlowTest);
  TestFarm farm(dir);
  ASSERT_TRUE(farm.started()) << farm.coordinator().Output();
  Background& full = farm.AddAgent("full-host", dir + "/full-host");
  farm.AddAgent("roomy-host", dir + "/roomy-host");
  ASSERT_TRUE(farm.WaitForAgents()) << farm.Agents();
  std::string job = farm.Submit(absl::StrCat(Range(repo), " --build ", Quote(kFillingBuild), " -- ",
                                             Quote(dir + "/test.sh")));
  ASSERT_FALSE(job.empty());
  CommandResult watch = farm.Watch(job);
  EXPECT_EQ(watch.exit_code, 0) << watch.output;
  EXPECT_EQ(ParseAnswer(watch.output).first_bad, repo.culprit) << watch.output;
  std::string status = farm.Status(job);
  ExpectNoVerdictFrom(status, "full-host");
  // Each of the full agent's tasks failed because the disk is full, and its log says so.
  EXPECT_GE(ExpectInfrastructureErrorsSay(farm, job, "full-host", "farm: the disk is full: "), 1)
      << status;
  std::string where =
      absl::StrCat("the filesystem holding '", dir, "/full-host/slots/0/build' has ");
  std::string line = farm.AgentLine("full-host");
  EXPECT_TRUE(absl::StrContains(line, "quarantined")) << farm.Agents();
  EXPECT_TRUE(absl::StrContains(line, where)) << line;
  EXPECT_TRUE(full.Alive()) << "the full agent died: " << full.Output();

  // Only a full agent (the local bisect's agents/ is a small filesystem): the job fails, saying
  // where the disk is full.
  TmpfsMount small_agents(dir + "/alone/agents", kSmallDisk);
  ASSERT_TRUE(small_agents.ok()) << small_agents.error();
  CommandResult alone =
      Sh(absl::StrCat(Farm(), " bisect ", Range(repo), " --workdir ", Quote(dir + "/alone"),
                      " --build ", Quote(kFillingBuild), " -- ", Quote(dir + "/test.sh")));
  EXPECT_EQ(alone.exit_code, 1) << alone.output;
  // (Each attempt's partial build output is removed after it, so every attempt fails at its build.)
  EXPECT_TRUE(absl::StrContains(
      alone.output, "attempts failed with infrastructure errors (last: the disk is full: "))
      << alone.output;
  EXPECT_TRUE(absl::StrContains(alone.output, absl::StrCat("the filesystem holding '", dir,
                                                           "/alone/agents/1/slots/0/build' has ")))
      << alone.output;
  EXPECT_TRUE(absl::StrContains(alone.output, "--workdir on a larger disk")) << alone.output;
  EXPECT_FALSE(absl::StrContains(alone.output, "is the first bad commit")) << alone.output;
}

// An agent whose mirror of the repository lacks an object (a damaged disk, an interrupted copy):
// its first checkout that needs the object finds it missing, and the agent clones the mirror
// again and goes on. Its verdicts count, its log says what was missing and what it did, and it is
// not quarantined. (A local repository that lacks an object is the user's to repair: the
// checkout's error says so, workspace_test.)
TEST(Faults, MirrorMissingAGitObjectIsClonedAgain) {
  std::string dir = MakeTempDir("gitobject");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 40 --seed 67");
  WriteScript(dir + "/test.sh", kSlowTest);
  std::string url = "file://" + repo.path;
  // The damaged agent's mirror, where its RepoCache keeps it (<workdir>/mirrors/<the url's blob
  // id>.git), with every object loose and then the blob of the root commit's file, which every
  // commit has, removed. The commits are all there, so the agent does not fetch again.
  CommandResult damage = Sh(absl::StrCat(
      "set -e; cd ", Quote(dir), "; id=$(printf %s ", Quote(url), " | git hash-object --stdin); ",
      "m=damaged-host/mirrors/$id.git; mkdir -p damaged-host/mirrors packs; ",
      "git clone -q --mirror ", Quote(url), " $m; mv $m/objects/pack/* packs/; ",
      "for p in packs/*.pack; do git -C $m unpack-objects -q < $p; done; ",
      "blob=$(git -C $m rev-parse ", repo.root, ":f/0); ",
      "rm $m/objects/$(echo $blob | cut -c1-2)/$(echo $blob | cut -c3-); echo $blob"));
  ASSERT_EQ(damage.exit_code, 0) << damage.output;
  std::string blob(absl::StripAsciiWhitespace(damage.output));
  TestFarm farm(dir);
  ASSERT_TRUE(farm.started()) << farm.coordinator().Output();
  farm.AddAgent("damaged-host", dir + "/damaged-host");
  farm.AddAgent("sound-host", dir + "/sound-host");
  ASSERT_TRUE(farm.WaitForAgents()) << farm.Agents();
  std::string job = farm.Submit(absl::StrCat("--repo ", Quote(url), " --good ", repo.root,
                                             " --bad ", repo.bad, " -- ", Quote(dir + "/test.sh")));
  ASSERT_FALSE(job.empty());
  CommandResult watch = farm.Watch(job);
  EXPECT_EQ(watch.exit_code, 0) << watch.output;
  EXPECT_EQ(ParseAnswer(watch.output).first_bad, repo.culprit) << watch.output;
  const std::string status = farm.Status(job);
  EXPECT_EQ(ExpectInfrastructureErrorsSay(farm, job, "damaged-host", ""), 0) << status;
  // The tasks the damaged agent ran: a log says the mirror was cloned again, naming the object.
  int tasks = 0, repaired = 0;
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    std::vector<std::string> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (words.size() < 5 || words[3] != "on" || words[4] != "damaged-host") continue;
    ++tasks;
    std::string log = farm.Log(job, words[1]);
    if (absl::StrContains(log, "was damaged (") && absl::StrContains(log, "it was cloned again")) {
      ++repaired;
      EXPECT_TRUE(absl::StrContains(log, blob)) << "the missing object is named: " << blob << "\n"
                                                << log;
    }
  }
  EXPECT_GE(tasks, 1) << status;
  EXPECT_GE(repaired, 1) << "the first checkout that needs the object clones the mirror again:\n"
                         << status;
  EXPECT_FALSE(absl::StrContains(farm.AgentLine("damaged-host"), "quarantined")) << farm.Agents();
}

// Boot tasks (prebuilt images, `farm submit --kernels`) on agents where qemu is missing from PATH
// or dies of a signal as it starts: infrastructure errors saying so, retried on the agent whose
// qemu works, which decides. Its qemu is a stand-in that reads the verdict from the image (the
// real boot is boot_faults_test); the failing agents are quarantined with the reason. A qemu that
// refuses to start (exit 1) likewise, in a second job.
TEST(Faults, QemuMissingOrCrashingIsAnInfrastructureError) {
  std::string dir = MakeTempDir("qemu");
  if (access("/bin/busybox", X_OK) != 0 && Sh("command -v busybox").exit_code != 0) {
    GTEST_SKIP() << "busybox is not installed (the boot's initramfs needs it): apt-get install "
                    "busybox-static";
  }
  // Images k0..k7; from k5 on they "contain the bug".
  std::string kernels;
  for (int i = 0; i < 8; ++i) {
    std::string image = absl::StrCat(dir, "/k", i);
    std::ofstream(image) << (i < 5 ? "a good kernel\n" : "a bad kernel\n");
    absl::StrAppend(&kernels, " ", Quote(image));
  }
  WriteScript(dir + "/payload.sh", "#!/bin/sh\nexit 0\n");
  // A stand-in for a working qemu: the "boot" takes a moment, as a real one does, and the guest's
  // verdict is in the image.
  std::string boots =
      PathWithFakeQemu(dir, "working-qemu",
                       "#!/bin/sh\n"
                       "while [ $# -gt 0 ]; do [ \"$1\" = -kernel ] && kernel=$2; shift; done\n"
                       "sleep 0.3\n"
                       "echo FARM-INIT-STARTED\n"
                       "if grep -q bad \"$kernel\"; then code=1; else code=0; fi\n"
                       "echo \"FARM-RESULT: $code\"\n");
  TestFarm farm(dir);
  ASSERT_TRUE(farm.started()) << farm.coordinator().Output();
  farm.AddAgent("qemu-host", dir + "/qemu-host", {boots});
  AddAgentsWithBrokenQemu(farm, dir);
  ASSERT_TRUE(farm.WaitForAgents()) << farm.Agents();
  // Where `farm submit --kernels` makes its repository of the images.
  std::string cache = dir + "/cache";
  setenv("XDG_CACHE_HOME", cache.c_str(), 1);
  std::string submit = absl::StrCat("--kernels", kernels, " --test ", Quote(dir + "/payload.sh"),
                                    " --accel tcg --no-reuse");
  std::string job = farm.Submit(absl::StrCat(submit, " --description first"));
  ASSERT_FALSE(job.empty());
  CommandResult watch = farm.Watch(job);
  EXPECT_EQ(watch.exit_code, 0) << watch.output;
  std::string k5 = KernelListCommit(cache, "k5");
  ASSERT_FALSE(k5.empty());
  EXPECT_EQ(ParseAnswer(watch.output).first_bad, k5) << watch.output;
  ExpectBrokenQemuWasInfrastructure(farm, job);
  EXPECT_TRUE(absl::StrContains(farm.Status(job), " on qemu-host ")) << farm.Status(job);

  farm.AddAgent("exit-qemu-host", dir + "/exit-qemu-host",
                {PathWithFakeQemu(dir, "exit-qemu", kQemuExits1)});
  ASSERT_TRUE(
      WaitFor([&] { return absl::StrContains(farm.AgentLine("exit-qemu-host"), " connected "); },
              absl::Seconds(30)))
      << farm.Agents();
  std::string second = farm.Submit(absl::StrCat(submit, " --description second"));
  ASSERT_FALSE(second.empty());
  CommandResult watch2 = farm.Watch(second);
  EXPECT_EQ(watch2.exit_code, 0) << watch2.output;
  EXPECT_EQ(ParseAnswer(watch2.output).first_bad, k5) << watch2.output;
  EXPECT_GE(ExpectInfrastructureErrorsSay(farm, second, "exit-qemu-host",
                                          "farm: qemu: qemu failed (exit 1): qemu-system-x86_64: "
                                          "cannot set up guest memory"),
            1)
      << farm.Status(second);
  ExpectNoVerdictFrom(farm.Status(second), "exit-qemu-host");
}

// TLS everywhere, agents authenticated by client certificate, users by token.
TEST(Faults, TlsClientCertificatesAndTokens) {
  std::string dir = MakeTempDir("tls");
  // A CA, a server certificate for 127.0.0.1, an agent certificate, and a stranger's CA.
  CommandResult certs = MakeServerCertificates(
      dir,
      absl::StrCat(
          "openssl req -newkey rsa:2048 -nodes -subj /CN=agent-1 -keyout agent.key -out agent.csr "
          "2>/dev/null; ",
          "openssl x509 -req -in agent.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out "
          "agent.pem 2>/dev/null; ",
          "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other -keyout other.key "
          "-out other.pem 2>/dev/null; ",
          "echo 7f3c9a1e5b2d8c4f6a0e9b3d7c1f5a2e > token; cp token tokens; "
          // Secrets kept as they should be (a readable token file gets a warning on stderr).
          "chmod 600 token tokens"));
  if (certs.exit_code != 0) GTEST_SKIP() << "openssl cannot make certificates: " << certs.output;
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 30 --seed 53");
  WriteScript(dir + "/test.sh", "#!/bin/sh\ntest -f bug && exit 1\nexit 0\n");
  Background coordinator(
      {Bin("farm-coordinator"), "--listen", "127.0.0.1:0", "--db", dir + "/farm.db", "--tls-cert",
       dir + "/server.pem", "--tls-key", dir + "/server.key", "--tls-client-ca", dir + "/ca.pem",
       "--tokens", dir + "/tokens"},
      dir + "/coord.log");
  const std::string listen = WaitForListenAddress(coordinator, absl::Seconds(20));
  ASSERT_FALSE(listen.empty()) << coordinator.Output();
  std::string ca = " --tls-ca " + Quote(dir + "/ca.pem");
  std::string token = " --token-file " + Quote(dir + "/token");
  std::string submit_args =
      absl::StrCat(" submit --coordinator ", listen, " --repo ", Quote(repo.path), " --good ",
                   repo.root, " --bad ", repo.bad, " -- ", Quote(dir + "/test.sh"));
  // No token: refused, nothing stored.
  CommandResult no_token = Sh(Farm() + ca + submit_args);
  EXPECT_EQ(no_token.exit_code, 2) << no_token.output;
  EXPECT_TRUE(absl::StrContains(no_token.output, "valid token is required")) << no_token.output;
  // A wrong token, and a client that does not trust the coordinator's CA.
  Sh("echo wrongwrongwrongwrongwrong > " + Quote(dir + "/bad-token"));
  CommandResult bad_token =
      Sh(Farm() + ca + " --token-file " + Quote(dir + "/bad-token") + submit_args);
  EXPECT_EQ(bad_token.exit_code, 2) << bad_token.output;
  CommandResult wrong_ca =
      Sh(Farm() + " --tls-ca " + Quote(dir + "/other.pem") + token + submit_args);
  EXPECT_NE(wrong_ca.exit_code, 0) << wrong_ca.output;
  // Refused because the client could not verify the coordinator's certificate, and it says so.
  EXPECT_TRUE(absl::StrContains(wrong_ca.output, "certificate verify failed")) << wrong_ca.output;
  CommandResult listing = Sh(absl::StrCat(Farm(), ca, token, " status --coordinator ", listen));
  EXPECT_EQ(listing.exit_code, 0) << listing.output;
  EXPECT_FALSE(absl::StrContains(listing.output, repo.path)) << "a refused job was stored";

  // An agent without a client certificate is refused; one with a certificate from another CA too.
  Background stranger({Bin("farm-agent"), "--coordinator", listen, "--workdir", dir + "/s1", "--id",
                       "no-cert", "--tls-ca", dir + "/ca.pem"},
                      dir + "/stranger.log");
  Background forger({Bin("farm-agent"), "--coordinator", listen, "--workdir", dir + "/s2", "--id",
                     "forged", "--tls-ca", dir + "/ca.pem", "--tls-cert", dir + "/other.pem",
                     "--tls-key", dir + "/other.key"},
                    dir + "/forger.log");
  Background agent({Bin("farm-agent"), "--coordinator", listen, "--workdir", dir + "/a", "--id",
                    "agent-1", "--tls-ca", dir + "/ca.pem", "--tls-cert", dir + "/agent.pem",
                    "--tls-key", dir + "/agent.key"},
                   dir + "/agent.log");
  // The refusals themselves: the first is told it needs a certificate; the second's TLS handshake
  // is rejected (the agent sees only the connection closed; it is not listed below either).
  EXPECT_TRUE(stranger.WaitForOutput("must present a client certificate", absl::Seconds(30)))
      << stranger.Output();
  EXPECT_TRUE(forger.WaitForOutput("lost (", absl::Seconds(30))) << forger.Output();
  CommandResult sub = Sh(Farm() + ca + token + submit_args);
  ASSERT_EQ(sub.exit_code, 0) << sub.output;
  std::string job(absl::StripAsciiWhitespace(sub.output));
  CommandResult run =
      Sh(absl::StrCat(Farm(), ca, token, " watch --coordinator ", listen, " ", job));
  EXPECT_EQ(ParseAnswer(run.output).first_bad, repo.culprit) << run.output;
  CommandResult agents = Sh(absl::StrCat(Farm(), ca, token, " agents --coordinator ", listen));
  EXPECT_TRUE(absl::StrContains(agents.output, "agent-1")) << agents.output;
  EXPECT_FALSE(absl::StrContains(agents.output, "no-cert")) << agents.output;
  EXPECT_FALSE(absl::StrContains(agents.output, "forged")) << agents.output;
  // The token never appears in any log.
  std::string secret = "7f3c9a1e5b2d8c4f6a0e9b3d7c1f5a2e";
  for (const std::string& out : {coordinator.Output(), agent.Output(), run.output}) {
    EXPECT_FALSE(absl::StrContains(out, secret));
  }
}

// A test that prints a gigabyte without a newline: the farm's memory stays bounded and the
// task's log keeps head and tail, saying what was elided.
TEST(Faults, GigabyteOfOutputStaysBounded) {
  std::string dir = MakeTempDir("bigout");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 8 --seed 59");
  WriteScript(dir + "/test.sh",
              "#!/bin/sh\nhead -c 1073741824 /dev/zero | tr '\\0' x\n"
              "test -f bug && exit 1\nexit 0\n");
  CommandResult run = Sh(absl::StrCat(Farm(), " bisect --repo ", Quote(repo.path), " --good ",
                                      repo.root, " --bad ", repo.bad, " --workdir ",
                                      Quote(dir + "/state"), " -- ", Quote(dir + "/test.sh")));
  ASSERT_EQ(run.exit_code, 0) << run.output.substr(0, 4000);
  EXPECT_EQ(ParseAnswer(run.output).first_bad, repo.culprit);
  struct rusage ru;
  getrusage(RUSAGE_CHILDREN, &ru);
  EXPECT_LT(ru.ru_maxrss, 400 * 1024) << "peak RSS of a child, KiB";
  CommandResult log = Sh(absl::StrCat(
      Farm(), " log --workdir ", Quote(dir + "/state"), " 1 ", repo.culprit.substr(0, 12),
      " | tail -c 2000000 | grep -o 'bytes of output elided[^]]*' | head -1"));
  EXPECT_TRUE(absl::StrContains(log.output, "bytes of output elided")) << log.output;
  std::ifstream db(dir + "/state/farm.db", std::ios::ate | std::ios::binary);
  EXPECT_LT(static_cast<long long>(db.tellg()), 64ll << 20) << "database size";
}

}  // namespace
}  // namespace farm::testing
