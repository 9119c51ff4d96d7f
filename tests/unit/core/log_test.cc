// The logging facade: levels filter, each record has a timestamp, the program and the level, and
// secrets are redacted before anything is written.
#include "common/log/log.h"

#include <regex>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace farm::log {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(Log, ParseLevelNamesTheChoices) {
  EXPECT_EQ(*ParseLevel("debug"), Level::kDebug);
  EXPECT_EQ(*ParseLevel("WARN"), Level::kWarning);
  EXPECT_EQ(*ParseLevel("off"), Level::kOff);
  auto bad = ParseLevel("loud");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("debug, info, warning, error"));
}

TEST(Log, RecordHasTimestampProgramLevelAndLocation) {
  SetLevel(Level::kInfo);
  SetProgramName("farm-test");
  testing::internal::CaptureStderr();
  FARM_LOG(Info) << "agent " << 7 << " connected";
  std::string out = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(std::regex_search(
      out, std::regex(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} farm-test info log_test\.cc:\d+\] )"
                      R"(agent 7 connected\n$)")))
      << out;
}

TEST(Log, LevelFiltersAndSkipsOperands) {
  SetLevel(Level::kWarning);
  int evaluated = 0;
  auto count = [&] { return ++evaluated; };
  testing::internal::CaptureStderr();
  FARM_LOG(Info) << "hidden " << count();
  FARM_LOG(Error) << "shown";
  std::string out = testing::internal::GetCapturedStderr();
  EXPECT_EQ(evaluated, 0);
  EXPECT_THAT(out, Not(HasSubstr("hidden")));
  EXPECT_THAT(out, HasSubstr("error log_test.cc"));
  SetLevel(Level::kOff);
  testing::internal::CaptureStderr();
  FARM_LOG(Error) << "nothing";
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  SetLevel(Level::kInfo);
}

TEST(Log, SafeInsideUnbracedIfElse) {
  SetLevel(Level::kInfo);
  bool took_else = false;
  testing::internal::CaptureStderr();
  if (false)
    FARM_LOG(Info) << "never";
  else
    took_else = true;
  testing::internal::GetCapturedStderr();
  EXPECT_TRUE(took_else);
}

TEST(Log, SecretsAreRedacted) {
  EXPECT_EQ(Redact("authorization: Bearer s3cr3t-token, next"), "authorization: <redacted>, next");
  EXPECT_EQ(Redact("sent Bearer abc.def"), "sent Bearer <redacted>");
  std::string pem =
      "key:\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\nafter";
  EXPECT_EQ(Redact(pem), "key:\n<redacted private key>\nafter");
  EXPECT_EQ(Redact("nothing secret"), "nothing secret");
  SetLevel(Level::kInfo);
  testing::internal::CaptureStderr();
  FARM_LOG(Warning) << "token rejected: Bearer hunter2";
  std::string out = testing::internal::GetCapturedStderr();
  EXPECT_THAT(out, Not(HasSubstr("hunter2")));
  EXPECT_THAT(out, HasSubstr("Bearer <redacted>"));
}

}  // namespace
}  // namespace farm::log
