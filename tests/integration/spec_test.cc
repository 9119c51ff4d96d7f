// One request schema: the same bad spec gets the same message from the CLI (before anything is
// sent), from a job file, and from the coordinator when a client calls SubmitBisect directly.
#include <grpcpp/grpcpp.h>

#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/jobfile/jobfile.h"
#include "farm/v1/farm.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/integration/test_farm.h"
#include "tests/lib/test_util.h"

namespace farm::testing {
namespace {

namespace v1 = farm::v1;

struct BadSpec {
  const char* what;
  std::string cli_args;   // farm submit flags besides the range and the test
  std::string yaml;       // job file lines besides repo, good, bad and test
  v1::BisectSpec fields;  // the same, as a client would send it
  std::string expected;   // the schema's message
};

// Submits `fields` over `repo`'s range with the test `true`, straight over gRPC.
grpc::Status SubmitDirect(v1::Farm::Stub& stub, const Repo& repo, const v1::BisectSpec& fields) {
  v1::SubmitBisectRequest req;
  *req.mutable_spec() = fields;
  req.mutable_spec()->set_repo(repo.path);
  req.mutable_spec()->add_good(repo.root);
  req.mutable_spec()->set_bad(repo.bad);
  req.mutable_spec()->mutable_recipe()->add_test_argv("true");
  v1::SubmitBisectResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return stub.SubmitBisect(&ctx, req, &resp);
}

TEST(Spec, SameBadSpecSameMessageThroughCliJobFileAndGrpc) {
  std::string dir = MakeTempDir("spec");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 10 --seed 3");
  TestFarm farm(dir);
  ASSERT_TRUE(farm.started()) << farm.coordinator().Output();
  auto stub =
      v1::Farm::NewStub(grpc::CreateChannel(farm.listen(), grpc::InsecureChannelCredentials()));

  std::vector<BadSpec> cases;
  {
    BadSpec c{"a label key with a space",
              "--require 'gpu model=a100'",
              "require: {\"gpu model\": a100}\n",
              {},
              ""};
    (*c.fields.mutable_require())["gpu model"] = "a100";
    c.expected = "spec.require has the key 'gpu model'";
    cases.push_back(c);
  }
  {
    const std::string longtext(5000, 'x');
    BadSpec c{"a description over the limit",
              absl::StrCat("--description ", longtext),
              absl::StrCat("description: ", longtext, "\n"),
              {},
              ""};
    c.fields.set_description(longtext);
    c.expected = "spec.description is 5000 bytes; at most 4096 are allowed";
    cases.push_back(c);
  }
  for (BadSpec& c : cases) {
    SCOPED_TRACE(c.what);
    // The CLI refuses before sending: it is pointed at a port nobody listens on, so a spec it
    // sent would fail as "unreachable" (exit 5), not as a bad spec (exit 2).
    CommandResult cli = Sh(absl::StrCat(Farm(), " submit --coordinator 127.0.0.1:", FreePort(),
                                        " --repo ", Quote(repo.path), " --good ", repo.root,
                                        " --bad ", repo.bad, " ", c.cli_args, " -- true"));
    EXPECT_EQ(cli.exit_code, 2) << cli.output;
    absl::string_view cli_text = absl::StripAsciiWhitespace(cli.output);
    EXPECT_TRUE(absl::ConsumePrefix(&cli_text, "farm: ")) << cli.output;
    const std::string cli_message(cli_text);

    std::string yaml = absl::StrCat("repo: ", repo.path, "\ngood: ", repo.root, "\nbad: ", repo.bad,
                                    "\ntest: \"true\"\n", c.yaml);
    absl::StatusOr<v1::BisectSpec> parsed = ParseJobFile(yaml, dir);
    ASSERT_FALSE(parsed.ok());
    const std::string jobfile_message(parsed.status().message());

    grpc::Status st = SubmitDirect(*stub, repo, c.fields);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();

    EXPECT_TRUE(absl::StartsWith(cli_message, c.expected)) << cli_message;
    EXPECT_EQ(jobfile_message, cli_message);
    EXPECT_EQ(st.error_message(), cli_message);
  }
  // Nothing was stored: the coordinator refused every direct submission.
  CommandResult status = Sh(absl::StrCat(Farm(), " status --coordinator ", farm.listen()));
  EXPECT_EQ(status.exit_code, 0) << status.output;
  EXPECT_FALSE(absl::StrContains(status.output, "running")) << status.output;
}

// git's rules for terms hold for every client, not only the CLI: a direct SubmitBisect with the
// terms swapped, or a bisect command as a term, is refused with the CLI's words.
TEST(Spec, GitTermRulesHoldForDirectSubmissions) {
  std::string dir = MakeTempDir("spec-terms");
  Repo repo = MakeRepo(dir + "/repo", "--shape linear --commits 10 --seed 3");
  TestFarm farm(dir);
  ASSERT_TRUE(farm.started()) << farm.coordinator().Output();
  auto stub =
      v1::Farm::NewStub(grpc::CreateChannel(farm.listen(), grpc::InsecureChannelCredentials()));
  struct Case {
    const char *old_term, *new_term, *expected;
  };
  for (const Case& c : {Case{"bad", "good", "can't change the meaning of term 'bad'"},
                        Case{"fast", "old", "can't change the meaning of term 'old'"},
                        Case{"fast", "visualize", "can't use the builtin command 'visualize'"}}) {
    SCOPED_TRACE(absl::StrCat(c.old_term, "/", c.new_term));
    v1::BisectSpec terms;
    terms.set_term_old(c.old_term);
    terms.set_term_new(c.new_term);
    grpc::Status st = SubmitDirect(*stub, repo, terms);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
    EXPECT_TRUE(absl::StartsWith(st.error_message(), c.expected)) << st.error_message();
  }
}

}  // namespace
}  // namespace farm::testing
