#include "tests/integration/test_farm.h"

#include <cstdlib>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"

namespace farm::testing {

namespace {
constexpr char kQemuKilledBySignal[] = "#!/bin/sh\nkill -SEGV $$\n";
}  // namespace

const char kQemuExits1[] =
    "#!/bin/sh\n"
    "echo \"qemu-system-x86_64: cannot set up guest memory 'pc.ram': Cannot allocate memory\" >&2\n"
    "exit 1\n";

std::string Farm() { return Quote(Bin("farm")); }

TestFarm::TestFarm(const std::string& dir, const std::vector<std::string>& coordinator_args)
    : dir_(dir) {
  std::vector<std::string> argv{Bin("farm-coordinator"), "--listen", "127.0.0.1:0", "--db",
                                dir + "/farm.db"};
  argv.insert(argv.end(), coordinator_args.begin(), coordinator_args.end());
  coordinator_ = std::make_unique<Background>(argv, dir + "/coord.log");
  listen_ = WaitForListenAddress(*coordinator_, absl::Seconds(20));
  started_ = !listen_.empty();
}

Background& TestFarm::AddAgent(const std::string& id, const std::string& workdir,
                               const std::vector<std::string>& env,
                               const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/usr/bin/env"};
  argv.insert(argv.end(), env.begin(), env.end());
  argv.insert(argv.end(),
              {Bin("farm-agent"), "--coordinator", listen_, "--workdir", workdir, "--id", id});
  argv.insert(argv.end(), args.begin(), args.end());
  agents_.push_back(std::make_unique<Background>(argv, absl::StrCat(dir_, "/", id, ".log")));
  return *agents_.back();
}

bool TestFarm::WaitForAgents() const {
  return WaitFor(
      [&] {
        size_t connected = 0;
        for (absl::string_view line : absl::StrSplit(Agents(), '\n')) {
          connected += absl::StrContains(line, " connected ");
        }
        return connected == agents_.size();
      },
      absl::Seconds(30));
}

std::string TestFarm::Agents() const {
  return Sh(absl::StrCat(Farm(), " agents --coordinator ", listen_)).output;
}

std::string TestFarm::AgentLine(const std::string& id) const {
  for (absl::string_view line : absl::StrSplit(Agents(), '\n')) {
    if (absl::StartsWith(line, id + " ")) return std::string(line);
  }
  return "";
}

std::string TestFarm::Submit(const std::string& args) const {
  CommandResult r = Sh(absl::StrCat(Farm(), " submit --coordinator ", listen_, " ", args));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return r.exit_code == 0 ? std::string(absl::StripAsciiWhitespace(r.output)) : "";
}

CommandResult TestFarm::Watch(const std::string& job) const {
  return Sh(absl::StrCat(Farm(), " watch --coordinator ", listen_, " ", job));
}

std::string TestFarm::Status(const std::string& job) const {
  return Sh(absl::StrCat(Farm(), " status --coordinator ", listen_, " ", job)).output;
}

std::string TestFarm::Log(const std::string& job, const std::string& commit) const {
  return Sh(absl::StrCat(Farm(), " log --coordinator ", listen_, " ", job, " ", commit)).output;
}

void ExpectNoVerdictFrom(const std::string& status, const std::string& agent) {
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    absl::string_view l = absl::StripLeadingAsciiWhitespace(line);
    bool verdict =
        absl::StartsWith(l, "good ") || absl::StartsWith(l, "bad ") || absl::StartsWith(l, "skip ");
    EXPECT_FALSE(verdict && absl::StrContains(l, absl::StrCat(" on ", agent, " ")))
        << "an infrastructure failure became a verdict: " << l;
  }
}

int ExpectInfrastructureErrorsSay(const TestFarm& farm, const std::string& job,
                                  const std::string& agent, const std::string& says) {
  int n = 0;
  // "  infra-error <commit> 0.1s on <agent>  <subject>"
  for (absl::string_view line : absl::StrSplit(farm.Status(job), '\n')) {
    std::vector<std::string> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (words.size() < 5 || words[0] != "infra-error" || words[4] != agent) continue;
    ++n;
    std::string log = farm.Log(job, words[1]);
    EXPECT_TRUE(absl::StrContains(log, says))
        << "the log of " << words[1] << " on " << agent << " lacks \"" << says << "\":\n"
        << log.substr(0, 8000);
  }
  return n;
}

void AddAgentsWithBrokenQemu(TestFarm& farm, const std::string& dir) {
  farm.AddAgent("no-qemu-host", dir + "/no-qemu-host", {PathWithoutQemu(dir)});
  farm.AddAgent("segv-qemu-host", dir + "/segv-qemu-host",
                {PathWithFakeQemu(dir, "segv-qemu", kQemuKilledBySignal)});
}

void ExpectBrokenQemuWasInfrastructure(const TestFarm& farm, const std::string& job) {
  const std::string status = farm.Status(job);
  struct Broken {
    const char* agent;
    const char* says;
  };
  for (const Broken& b :
       {Broken{"no-qemu-host", "qemu: cannot run 'qemu-system-x86_64': not found in PATH"},
        Broken{"segv-qemu-host", "qemu: qemu failed (killed by signal 11"}}) {
    ExpectNoVerdictFrom(status, b.agent);
    const int errors =
        ExpectInfrastructureErrorsSay(farm, job, b.agent, absl::StrCat("farm: ", b.says));
    EXPECT_GE(errors, 1) << status;
    // The coordinator quarantines an agent at its third infrastructure error in a row (it never
    // gives a verdict here). How many tasks reach it before the healthy agent ends the bisect is
    // a race, so the quarantine is checked when the rule says it must have happened.
    if (errors >= 3) {
      std::string line = farm.AgentLine(b.agent);
      EXPECT_TRUE(absl::StrContains(line, "quarantined")) << farm.Agents();
      EXPECT_TRUE(absl::StrContains(line, b.says)) << line;
      if (std::string(b.agent) == "no-qemu-host") {
        EXPECT_TRUE(absl::StrContains(line, "(install qemu-system-x86)")) << line;
      }
    }
  }
}

std::string PathWithFakeQemu(const std::string& dir, const std::string& name,
                             const std::string& body) {
  std::string bin = absl::StrCat(dir, "/", name);
  Sh("mkdir -p " + Quote(bin));
  WriteScript(bin + "/qemu-system-x86_64", body);
  const char* path = std::getenv("PATH");
  return absl::StrCat("PATH=", bin, ":", path ? path : "/usr/bin:/bin");
}

std::string PathWithoutQemu(const std::string& dir) {
  std::string empty = dir + "/no-qemu-bin";
  Sh("mkdir -p " + Quote(empty));
  return "PATH=" + empty;
}

std::string KernelListCommit(const std::string& cache, const std::string& image) {
  CommandResult r = Sh(absl::StrCat("git --git-dir=\"$(ls -d ", Quote(cache),
                                    "/farm/kernel-lists/*.git)\" log --all --format='%H %s' | awk "
                                    "'$2 == \"",
                                    image, "\" { print $1 }'"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return std::string(absl::StripAsciiWhitespace(r.output));
}

}  // namespace farm::testing
