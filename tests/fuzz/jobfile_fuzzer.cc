// Fuzz target: the job-file parser on arbitrary bytes.
//
// Properties checked besides "no crash, no leak, no hang": a failure is INVALID_ARGUMENT with a
// message (never INTERNAL: that would mean yaml-cpp threw somewhere the parser did not expect),
// and a success is a spec that survives the wire (serialises and parses back: string fields are
// UTF-8).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>

#include "common/jobfile/jobfile.h"
#include "tests/fuzz/fuzz_env.h"

namespace {

const std::string& BaseDir() {
  // Files a fuzzed job file can name and read successfully.
  static const std::string* dir = [] {
    auto* d = new std::string(farm::fuzz::TempDir("jobfile"));
    auto write = [&](const char* name, const std::string& content) {
      std::ofstream(*d + "/" + name, std::ios::binary) << content;
    };
    write("t.sh", "#!/bin/sh\nexit 0\n");
    write("p.c", "int main(void) { return 0; }\n");
    write("my.config", "CONFIG_64BIT=y\n# CONFIG_SMP is not set\n");
    write("bin", std::string("\x7f"
                             "ELF\x02\x01\x01\0\0",
                             10));
    return d;
  }();
  return *dir;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  BaseDir();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<farm::v1::BisectSpec> spec = farm::ParseJobFile(text, BaseDir());
  if (std::getenv("FARM_FUZZ_VERBOSE") != nullptr) {
    std::fprintf(stderr, "  -> %s\n", spec.ok() ? "ok" : spec.status().ToString().c_str());
  }
  if (!spec.ok()) {
    if (spec.status().code() != absl::StatusCode::kInvalidArgument ||
        spec.status().message().empty()) {
      std::fprintf(stderr, "unexpected error from ParseJobFile: %s\n",
                   spec.status().ToString().c_str());
      std::abort();
    }
    return 0;
  }
  std::string wire;
  farm::v1::BisectSpec back;
  if (!spec->SerializeToString(&wire) || !back.ParseFromString(wire)) {
    std::fprintf(stderr, "the parsed spec does not survive the wire:\n%s\n",
                 spec->DebugString().c_str());
    std::abort();
  }
  return 0;
}
