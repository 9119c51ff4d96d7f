// Failures that used to hide behind another message (or none), with the real binaries: a second
// coordinator on the same port or database, a damaged or truncated database, a repository URL
// that cannot be cloned, a private key given as a CA, a certificate with another's key. Each must
// name its cause, and exit with its own code.
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "coordinator/store/store.h"
#include "gtest/gtest.h"
#include "tests/lib/test_util.h"

namespace farm::testing {
namespace {

// farm-coordinator's exit codes (coordinator/main.cc).
constexpr int kExitUsage = 2;
constexpr int kExitAddressInUse = 3;
constexpr int kExitDatabaseInUse = 4;
constexpr int kExitDatabaseDamaged = 5;

// A refused start must exit by itself: one that serves is stopped by `timeout` (exit 124).
constexpr char kTimeout[] = "timeout 60 ";

std::string Farm() { return Quote(Bin("farm")); }

// A farm-coordinator on a port the kernel picks; address() is where it says it listens.
class RunningCoordinator {
 public:
  RunningCoordinator(const std::string& dir, const std::string& db,
                     const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {Bin("farm-coordinator"), "--listen", "127.0.0.1:0", "--db",
                                     db};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process_ = std::make_unique<Background>(
        argv, dir + "/coordinator-" + std::to_string(++count_) + ".log");
    if (!process_->WaitForOutput("listening on ", absl::Seconds(30))) return;
    std::string out = process_->Output();
    size_t at = out.find("listening on ") + std::string("listening on ").size();
    address_ = out.substr(at, out.find(' ', at) - at);
  }
  const std::string& address() const { return address_; }
  std::string port() const { return address_.substr(address_.rfind(':') + 1); }
  Background& process() { return *process_; }

 private:
  static inline int count_ = 0;
  std::unique_ptr<Background> process_;
  std::string address_;
};

// Runs farm-coordinator with `args` and expects it to refuse to start.
CommandResult StartRefused(const std::string& args) {
  return Sh(absl::StrCat(kTimeout, Quote(Bin("farm-coordinator")), " ", args, " 2>&1"));
}

TEST(StartupErrors, SecondCoordinatorOnTheSamePortOrDatabaseIsRefused) {
  std::string dir = MakeTempDir("second");
  RunningCoordinator first(dir, dir + "/farm.db");
  ASSERT_FALSE(first.address().empty()) << first.process().Output();
  const std::string first_pid = std::to_string(first.process().pid());

  // The same port, its own database: gRPC's SO_REUSEPORT would have shared the port.
  CommandResult same_port =
      StartRefused("--listen " + first.address() + " --db " + Quote(dir + "/other.db"));
  EXPECT_EQ(same_port.exit_code, kExitAddressInUse) << same_port.output;
  EXPECT_TRUE(absl::StrContains(same_port.output, "port " + first.port() + " is in use by pid " +
                                                      first_pid + " (farm-coordinator)"))
      << same_port.output;

  // The same database, another port.
  CommandResult same_db = StartRefused("--listen 127.0.0.1:0 --db " + Quote(dir + "/farm.db"));
  EXPECT_EQ(same_db.exit_code, kExitDatabaseInUse) << same_db.output;
  EXPECT_TRUE(absl::StrContains(same_db.output,
                                absl::StrCat("database '", dir,
                                             "/farm.db' is in use by another coordinator "
                                             "(pid ",
                                             first_pid, ", listening on ", first.address(), ")")))
      << same_db.output;

  // The first one still serves.
  EXPECT_TRUE(first.process().Alive());
  CommandResult status = Sh(Farm() + " status --coordinator " + first.address() + " 2>&1");
  EXPECT_EQ(status.exit_code, 0) << status.output;
  EXPECT_TRUE(absl::StrContains(status.output, "JOB")) << status.output;
}

// A farm database of `jobs` jobs at `path`, written through the store (several pages of data).
void MakeDatabase(const std::string& path, int jobs) {
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  farm::v1::BisectSpec spec;
  spec.set_repo("/srv/git/linux.git");
  spec.set_description(std::string(2000, 'd'));
  for (int i = 0; i < jobs; ++i) ASSERT_TRUE((*store)->InsertJob(spec, 1700000000 + i).ok());
}

TEST(StartupErrors, UnknownLogLevelIsNamed) {
  std::string dir = MakeTempDir("loglevel");
  CommandResult r =
      StartRefused("--listen 127.0.0.1:0 --log-level chatty --db " + Quote(dir + "/farm.db"));
  EXPECT_EQ(r.exit_code, kExitUsage) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "unknown log level 'chatty'")) << r.output;
  // A known level is taken, and the coordinator then serves.
  RunningCoordinator quiet(dir, dir + "/farm.db", {"--log-level", "warning"});
  EXPECT_FALSE(quiet.address().empty()) << quiet.process().Output();
}

// gRPC binds a port it cannot parse to one the kernel picks: the coordinator would run where no
// agent looks for it.
TEST(StartupErrors, PortOutOfRangeIsRefused) {
  std::string dir = MakeTempDir("badport");
  for (const char* listen : {"127.0.0.1:99999", "127.0.0.1:http", "127.0.0.1"}) {
    CommandResult r =
        StartRefused(absl::StrCat("--listen ", listen, " --db ", Quote(dir + "/farm.db")));
    EXPECT_EQ(r.exit_code, kExitUsage) << listen << ": " << r.output;
    EXPECT_TRUE(absl::StrContains(r.output, "not HOST:PORT with a port from 0 to 65535"))
        << listen << ": " << r.output;
    EXPECT_FALSE(absl::StrContains(r.output, "listening on")) << r.output;
  }
}

TEST(StartupErrors, DashboardFlagsWithoutTheirPortAreNamed) {
  std::string dir = MakeTempDir("dashboard-flags");
  const std::string db = " --db " + Quote(dir + "/farm.db");
  CommandResult open = StartRefused("--listen 127.0.0.1:0 --public-dashboard" + db);
  EXPECT_EQ(open.exit_code, kExitUsage) << open.output;
  EXPECT_TRUE(absl::StrContains(open.output, "--http-listen HOST:PORT: give that too"))
      << open.output;
  CommandResult tls =
      StartRefused("--listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --http-tls" + db);
  EXPECT_EQ(tls.exit_code, kExitUsage) << tls.output;
  EXPECT_TRUE(absl::StrContains(tls.output, "--tls-cert/--tls-key: give all three")) << tls.output;
  // The HTTP port taken: exit 3, naming it.
  RunningCoordinator first(dir, dir + "/first.db", {"--http-listen", "127.0.0.1:0"});
  ASSERT_TRUE(first.process().WaitForOutput("dashboard at", absl::Seconds(30)))
      << first.process().Output();
  std::string out = first.process().Output();
  size_t at = out.find("dashboard at http://");
  ASSERT_NE(at, std::string::npos) << out;
  std::string http = out.substr(at + 20, out.find('/', at + 20) - at - 20);
  CommandResult taken = StartRefused("--listen 127.0.0.1:0 --http-listen " + http + db);
  EXPECT_EQ(taken.exit_code, kExitAddressInUse) << taken.output;
  EXPECT_TRUE(absl::StrContains(taken.output, "cannot serve HTTP on " + http)) << taken.output;
}

TEST(StartupErrors, DatabaseDamagedInTheMiddleIsRefused) {
  std::string dir = MakeTempDir("damaged");
  const std::string db = dir + "/farm.db";
  MakeDatabase(db, 100);
  struct stat st;
  ASSERT_EQ(stat(db.c_str(), &st), 0);
  const off_t pages = st.st_size / 4096;
  ASSERT_GT(pages, 20);
  {
    // One page in the middle overwritten, as a bad sector or a torn copy leaves it.
    std::fstream f(db, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp((pages / 2) * 4096);
    f << std::string(4096, '\x5a');
  }
  CommandResult r = StartRefused("--listen 127.0.0.1:0 --db " + Quote(db));
  EXPECT_EQ(r.exit_code, kExitDatabaseDamaged) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "database '" + db + "' is damaged")) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "restore it from a backup")) << r.output;
}

TEST(StartupErrors, DatabaseTruncatedToNothingIsRefused) {
  std::string dir = MakeTempDir("truncated");
  const std::string db = dir + "/farm.db";
  MakeDatabase(db, 3);
  ASSERT_EQ(truncate(db.c_str(), 0), 0);
  CommandResult r = StartRefused("--listen 127.0.0.1:0 --db " + Quote(db));
  EXPECT_EQ(r.exit_code, kExitDatabaseDamaged) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "database '" + db + "' is empty (0 bytes)")) << r.output;
  struct stat st;
  ASSERT_EQ(stat(db.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 0) << "the refused database was written to";
  // Where no file is, a new database is still made.
  RunningCoordinator fresh(dir, dir + "/new.db");
  EXPECT_FALSE(fresh.address().empty()) << fresh.process().Output();
}

TEST(StartupErrors, RepositoryThatCannotBeClonedIsNamed) {
  std::string dir = MakeTempDir("clone");
  // An HTTP server on loopback with no repository: libgit2's HTTP error (a 404) came back as
  // UNAVAILABLE, which the client took for the coordinator being unreachable.
  Sh("mkdir -p " + Quote(dir + "/www"));
  CommandResult python = Sh("command -v python3");
  if (python.exit_code != 0) GTEST_SKIP() << "python3 is not installed (it serves HTTP here)";
  Background http({std::string(absl::StripAsciiWhitespace(python.output)), "-u", "-m",
                   "http.server", "0", "--bind", "127.0.0.1", "--directory", dir + "/www"},
                  dir + "/http.log");
  ASSERT_TRUE(http.WaitForOutput("Serving HTTP on", absl::Seconds(30))) << http.Output();
  std::string out = http.Output();
  size_t at = out.find(" port ") + 6;
  int http_port = 0;
  ASSERT_TRUE(absl::SimpleAtoi(out.substr(at, out.find(' ', at) - at), &http_port)) << out;
  RunningCoordinator coordinator(dir, dir + "/farm.db");
  ASSERT_FALSE(coordinator.address().empty()) << coordinator.process().Output();
  const std::string url = absl::StrCat("http://127.0.0.1:", http_port, "/missing.git");
  CommandResult r =
      Sh(absl::StrCat(kTimeout, Farm(), " submit --coordinator ", coordinator.address(), " --repo ",
                      url, " --good v1 --bad v2 -- /bin/true 2>&1"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "cannot clone '" + url + "'")) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "404")) << r.output;
  EXPECT_FALSE(absl::StrContains(r.output, "unreachable")) << r.output;
}

// A CA, a certificate for 127.0.0.1 signed by it, and an unrelated key pair, in `dir`.
bool MakeCertificates(const std::string& dir, std::string* output) {
  CommandResult certs = Sh(absl::StrCat(
      "cd ", Quote(dir), " && set -e; ",
      "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=farm-ca -keyout ca.key "
      "-out ca.pem 2>&1; ",
      "openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out "
      "server.csr 2>&1; ",
      "printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext; ",
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
      "-extfile san.ext -out server.pem 2>&1; ",
      "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other -keyout other.key "
      "-out other.pem 2>&1"));
  *output = certs.output;
  return certs.exit_code == 0;
}

// gRPC's own log lines ("E1203 10:00:00.000 ssl_transport_security.cc:...]"), which a user
// should never need to read.
bool HasGrpcInternals(const std::string& output) {
  return absl::StrContains(output, "ssl_transport_security") ||
         absl::StrContains(output, "Handshaker") || absl::StrContains(output, "chttp2");
}

TEST(StartupErrors, PrivateKeyGivenAsTheCaIsNamed) {
  std::string dir = MakeTempDir("keyasca");
  std::string why;
  if (!MakeCertificates(dir, &why)) GTEST_SKIP() << "openssl cannot make certificates: " << why;
  RunningCoordinator coordinator(
      dir, dir + "/farm.db", {"--tls-cert", dir + "/server.pem", "--tls-key", dir + "/server.key"});
  ASSERT_FALSE(coordinator.address().empty()) << coordinator.process().Output();
  const std::string says =
      "the CA (--tls-ca) file '" + dir + "/ca.key' holds a private key, not a certificate";
  CommandResult cli = Sh(absl::StrCat(kTimeout, Farm(), " --tls-ca ", Quote(dir + "/ca.key"),
                                      " status --coordinator ", coordinator.address(), " 2>&1"));
  EXPECT_EQ(cli.exit_code, 2) << cli.output;
  EXPECT_TRUE(absl::StrContains(cli.output, says)) << cli.output;
  EXPECT_FALSE(HasGrpcInternals(cli.output)) << cli.output;
  EXPECT_FALSE(absl::StrContains(cli.output, "unreachable")) << cli.output;
  // The agent checks the same file the same way, and does not retry forever.
  CommandResult agent = Sh(absl::StrCat(kTimeout, Quote(Bin("farm-agent")), " --coordinator ",
                                        coordinator.address(), " --workdir ", Quote(dir + "/agent"),
                                        " --tls-ca ", Quote(dir + "/ca.key"), " 2>&1"));
  EXPECT_NE(agent.exit_code, 0) << agent.output;
  EXPECT_NE(agent.exit_code, 124) << "the agent kept retrying: " << agent.output;
  EXPECT_TRUE(absl::StrContains(agent.output, says)) << agent.output;
  EXPECT_FALSE(HasGrpcInternals(agent.output)) << agent.output;
  // The right file still works.
  CommandResult ok = Sh(absl::StrCat(kTimeout, Farm(), " --tls-ca ", Quote(dir + "/ca.pem"),
                                     " status --coordinator ", coordinator.address(), " 2>&1"));
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
}

TEST(StartupErrors, CertificateWithAnotherKeyIsNamed) {
  std::string dir = MakeTempDir("wrongkey");
  std::string why;
  if (!MakeCertificates(dir, &why)) GTEST_SKIP() << "openssl cannot make certificates: " << why;
  CommandResult r = StartRefused(absl::StrCat("--listen 127.0.0.1:0 --db ", Quote(dir + "/farm.db"),
                                              " --tls-cert ", Quote(dir + "/server.pem"),
                                              " --tls-key ", Quote(dir + "/other.key")));
  EXPECT_EQ(r.exit_code, kExitUsage) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "the private key '" + dir +
                                              "/other.key' (--tls-key) does not belong to the "
                                              "certificate '" +
                                              dir + "/server.pem' (--tls-cert)"))
      << r.output;
  EXPECT_FALSE(absl::StrContains(r.output, "address in use")) << r.output;
  EXPECT_FALSE(HasGrpcInternals(r.output)) << r.output;
}

}  // namespace
}  // namespace farm::testing
