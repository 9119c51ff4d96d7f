// The tokens file: users, admins, the older one-token-per-line format, and mistakes named.
#include "common/rpc/credentials.h"

#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/lib/test_util.h"

namespace farm {
namespace {

using ::testing::HasSubstr;

std::string TokensFile(const std::string& text) {
  std::string path = testing::MakeTempDir("tokens") + "/tokens";
  std::ofstream(path) << text;
  return path;
}

TEST(Tokens, UserColumnAdminFlagAndComments) {
  absl::StatusOr<TokenTable> t =
      ReadTokens(TokensFile("# lab\n\naaaaaaaaaaaaaaaa alice\n  bbbbbbbbbbbbbbbb\tbob admin  \n"));
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->size(), 2u);
  EXPECT_EQ(t->at("aaaaaaaaaaaaaaaa").user, "alice");
  EXPECT_FALSE(t->at("aaaaaaaaaaaaaaaa").admin);
  EXPECT_EQ(t->at("bbbbbbbbbbbbbbbb").user, "bob");
  EXPECT_TRUE(t->at("bbbbbbbbbbbbbbbb").admin);
}

TEST(Tokens, BareTokensAreNumberedAdmins) {
  absl::StatusOr<TokenTable> t =
      ReadTokens(TokensFile("aaaaaaaaaaaaaaaa\ncccccccccccccccc carol\nbbbbbbbbbbbbbbbb\n"));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->at("aaaaaaaaaaaaaaaa").user, "token-1");
  EXPECT_TRUE(t->at("aaaaaaaaaaaaaaaa").admin);
  EXPECT_EQ(t->at("bbbbbbbbbbbbbbbb").user, "token-3");
}

TEST(Tokens, MistakesAreNamedWithTheLine) {
  EXPECT_THAT(ReadTokens(TokensFile("aaaaaaaaaaaaaaaa alice root\n")).status().message(),
              HasSubstr("line 1: expected `TOKEN USER [admin]`"));
  EXPECT_THAT(ReadTokens(TokensFile("# x\nshort bob\n")).status().message(),
              HasSubstr("line 2: a token (fingerprint"));
  EXPECT_THAT(
      ReadTokens(TokensFile("aaaaaaaaaaaaaaaa alice\naaaaaaaaaaaaaaaa bob\n")).status().message(),
      HasSubstr("line 2: the token (fingerprint"));
  EXPECT_THAT(ReadTokens(TokensFile("# none\n")).status().message(), HasSubstr("has no token"));
}

TEST(Tokens, BearerHeaderMapsToIdentity) {
  TokenTable t{{"aaaaaaaaaaaaaaaa", {"alice", false}}};
  absl::StatusOr<CallerIdentity> who = IdentifyBearer(t, "Bearer aaaaaaaaaaaaaaaa");
  ASSERT_TRUE(who.ok()) << who.status();
  EXPECT_EQ(who->user, "alice");
  for (const char* bad : {"", "Bearer ", "aaaaaaaaaaaaaaaa", "Bearer bbbbbbbbbbbbbbbb"}) {
    absl::StatusOr<CallerIdentity> refused = IdentifyBearer(t, bad);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated) << bad;
    EXPECT_THAT(refused.status().message(), HasSubstr("--token-file"));
  }
}

}  // namespace
}  // namespace farm
