// One logging facade for the coordinator, the agent and the CLI: levels, timestamps, one line per
// message, written to stderr through spdlog (Debian's libspdlog). Secrets never reach the sink:
// a bearer token or a PEM private key in a message is redacted before it is written.
//
//   FARM_LOG(Info) << "agent " << id << " connected";
//   farm::log::SetLevel(farm::log::Level::kDebug);     // or from --log-level
//
// Thread-safe. A message below the current level costs one atomic load (its operands are not
// evaluated).
#ifndef FARM_COMMON_LOG_LOG_H_
#define FARM_COMMON_LOG_LOG_H_

#include <sstream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace farm::log {

enum class Level { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kOff = 4 };

// "debug", "info", "warning" (or "warn"), "error", "off". INVALID_ARGUMENT names the choices.
absl::StatusOr<Level> ParseLevel(absl::string_view text);
absl::string_view LevelName(Level level);

// The lowest level written; kInfo unless changed (FARM_LOG_LEVEL in the environment is read once,
// at the first message, when SetLevel was never called).
void SetLevel(Level level);
Level GetLevel();
bool Enabled(Level level);

// The name shown in each line (e.g. "farm-agent"); the default is "farm".
void SetProgramName(absl::string_view name);

// Writes one message (normally through FARM_LOG). Newlines inside it are kept as one record.
void Write(Level level, const char* file, int line, absl::string_view message);

// What Write does to a message before writing it: redacts "Bearer <token>", "authorization:
// <value>" and PEM private key blocks. Exposed for tests.
std::string Redact(absl::string_view message);

class LogMessage {
 public:
  LogMessage(Level level, const char* file, int line) : level_(level), file_(file), line_(line) {}
  ~LogMessage() { Write(level_, file_, line_, stream_.str()); }
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  std::ostream& stream() { return stream_; }

 private:
  Level level_;
  const char* file_;
  int line_;
  std::ostringstream stream_;
};

}  // namespace farm::log

// FARM_LOG(Debug|Info|Warning|Error) << ...; safe inside an unbraced if/else.
#define FARM_LOG(severity)                                        \
  switch (0)                                                      \
  case 0:                                                         \
  default:                                                        \
    if (!::farm::log::Enabled(::farm::log::Level::k##severity)) { \
    } else                                                        \
      ::farm::log::LogMessage(::farm::log::Level::k##severity, __FILE__, __LINE__).stream()

#endif  // FARM_COMMON_LOG_LOG_H_
