// gRPC's own log lines go through the farm's logging facade: the farm's format and level.
#include "common/log/grpc_log.h"

#include <grpc/support/log.h>
#include <grpcpp/grpcpp.h>

#include <regex>
#include <string>

#include "absl/strings/str_split.h"
#include "common/log/log.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace farm::log {
namespace {

using ::testing::HasSubstr;

// A farm record (log.h): timestamp, program, level, file:line], then the message.
const std::regex kRecord(
    R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} farm-test (debug|info|warning|error) \S+:\d+\] .*)");

TEST(GrpcLog, TheLibrarysErrorsAreFarmRecords) {
  SetProgramName("farm-test");
  SetLevel(Level::kInfo);
  RouteGrpcLogs();
  testing::internal::CaptureStderr();
  // An address that cannot be bound: gRPC itself logs why the server did not start.
  grpc::ServerBuilder builder;
  builder.AddListeningPort("256.256.256.256:1", grpc::InsecureServerCredentials());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  std::string out = testing::internal::GetCapturedStderr();
  EXPECT_EQ(server, nullptr);
  EXPECT_THAT(out, HasSubstr(" error "));
  EXPECT_THAT(out, HasSubstr("] grpc: "));
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
    EXPECT_TRUE(std::regex_search(std::string(line), kRecord)) << "not a farm record: " << line;
  }
}

TEST(GrpcLog, TheFarmsLevelFiltersTheLibrarysLines) {
  SetProgramName("farm-test");
  SetLevel(Level::kInfo);
  RouteGrpcLogs();
  testing::internal::CaptureStderr();
  gpr_log(GPR_INFO, "channel detail %d", 1);
  gpr_log(GPR_ERROR, "broken %d", 2);
  std::string out = testing::internal::GetCapturedStderr();
  EXPECT_THAT(out, testing::Not(HasSubstr("channel detail")));
  EXPECT_TRUE(
      std::regex_search(out, std::regex(R"( error grpc_log_test\.cc:\d+\] grpc: broken 2\n)")))
      << out;

  SetLevel(Level::kDebug);
  RouteGrpcLogs();
  testing::internal::CaptureStderr();
  gpr_log(GPR_INFO, "channel detail %d", 3);
  out = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(std::regex_search(
      out, std::regex(R"( debug grpc_log_test\.cc:\d+\] grpc: channel detail 3\n)")))
      << out;
  SetLevel(Level::kInfo);
}

}  // namespace
}  // namespace farm::log
