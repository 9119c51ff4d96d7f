#include "common/log/log.h"

#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <regex>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace farm::log {
namespace {

constexpr int kUnset = -1;
std::atomic<int> g_level{kUnset};

std::mutex& LoggerMutex() {
  static std::mutex mu;
  return mu;
}
std::string& ProgramName() {
  static std::string name = "farm";
  return name;
}

spdlog::logger& Logger() {
  // stderr, unbuffered, one record per message; the pattern gives UTC-free local time with
  // milliseconds, the program, the level and the message.
  static std::shared_ptr<spdlog::logger> logger = [] {
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    auto l = std::make_shared<spdlog::logger>("farm", std::move(sink));
    l->set_level(spdlog::level::trace);
    l->set_pattern("%Y-%m-%dT%H:%M:%S.%e %v");
    l->flush_on(spdlog::level::trace);
    return l;
  }();
  return *logger;
}

int LevelFromEnvironment() {
  const char* env = std::getenv("FARM_LOG_LEVEL");
  if (env != nullptr) {
    auto parsed = ParseLevel(env);
    if (parsed.ok()) return static_cast<int>(*parsed);
  }
  return static_cast<int>(Level::kInfo);
}

}  // namespace

absl::StatusOr<Level> ParseLevel(absl::string_view text) {
  std::string t = absl::AsciiStrToLower(text);
  if (t == "debug") return Level::kDebug;
  if (t == "info") return Level::kInfo;
  if (t == "warning" || t == "warn") return Level::kWarning;
  if (t == "error") return Level::kError;
  if (t == "off") return Level::kOff;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown log level '", text, "': use debug, info, warning, error or off"));
}

absl::string_view LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarning:
      return "warning";
    case Level::kError:
      return "error";
    case Level::kOff:
      return "off";
  }
  return "?";
}

void SetLevel(Level level) { g_level.store(static_cast<int>(level), std::memory_order_relaxed); }

Level GetLevel() {
  int l = g_level.load(std::memory_order_relaxed);
  if (l == kUnset) {
    int from_env = LevelFromEnvironment();
    g_level.compare_exchange_strong(l, from_env);
    l = g_level.load(std::memory_order_relaxed);
  }
  return static_cast<Level>(l);
}

bool Enabled(Level level) {
  return level != Level::kOff && static_cast<int>(level) >= static_cast<int>(GetLevel());
}

void SetProgramName(absl::string_view name) {
  std::lock_guard<std::mutex> lock(LoggerMutex());
  ProgramName() = std::string(name);
}

std::string Redact(absl::string_view message) {
  // The authorization header first (its value may itself start with a scheme), then a bare
  // bearer token anywhere else, then PEM private keys.
  static const std::regex* const kAuthorization = new std::regex(
      R"(([Aa]uthorization["']?\s*[:=]\s*["']?)(?:(?:[Bb]earer|[Bb]asic)\s+)?[^\s"',;]+)",
      std::regex::optimize);
  static const std::regex* const kBearer =
      new std::regex(R"(([Bb]earer)\s+[^\s"',;<]+)", std::regex::optimize);
  static const std::regex* const kPem = new std::regex(
      R"(-----BEGIN ([A-Z ]*)PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----)",
      std::regex::optimize);
  std::string out(message);
  if (out.find("uthorization") != std::string::npos) {
    out = std::regex_replace(out, *kAuthorization, "$1<redacted>");
  }
  if (out.find("earer") != std::string::npos) {
    out = std::regex_replace(out, *kBearer, "$1 <redacted>");
  }
  if (out.find("PRIVATE KEY") != std::string::npos) {
    out = std::regex_replace(out, *kPem, "<redacted $1private key>");
  }
  return out;
}

void Write(Level level, const char* file, int line, absl::string_view message) {
  if (!Enabled(level)) return;
  const char* base = file;
  for (const char* p = file; *p != '\0'; ++p) {
    if (*p == '/') base = p + 1;
  }
  std::string program;
  {
    std::lock_guard<std::mutex> lock(LoggerMutex());
    program = ProgramName();
  }
  std::string text = Redact(message);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  std::string record =
      absl::StrCat(program, " ", LevelName(level), " ", base, ":", line, "] ", text);
  spdlog::level::level_enum spd = spdlog::level::info;
  switch (level) {
    case Level::kDebug:
      spd = spdlog::level::debug;
      break;
    case Level::kInfo:
      spd = spdlog::level::info;
      break;
    case Level::kWarning:
      spd = spdlog::level::warn;
      break;
    case Level::kError:
    case Level::kOff:
      spd = spdlog::level::err;
      break;
  }
  Logger().log(spd, "{}", record);
}

}  // namespace farm::log
