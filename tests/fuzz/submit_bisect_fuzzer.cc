// Fuzz target: Farm.SubmitBisect's handler. Arbitrary bytes are parsed as a
// farm.v1.SubmitBisectRequest (binary, or text format after a first line "#text") and handed to
// Coordinator::SubmitBisect, with an in-memory store and a small real repository made once.
//
// The repository is named "R" in inputs (replaced by its path) and has the tags `good` and `bad`,
// so that mutations reach past validation. Repositories that are not absolute paths are dropped:
// the coordinator fetches them as URLs, and a fuzzer must not clone from the network.
//
// Properties: no crash, leak or hang; an error has a message and one of the codes farm.proto
// lists for SubmitBisect (a finding otherwise); an accepted job can be read back
// (GetJob) and cancelled.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "coordinator/scheduler/coordinator.h"
#include "google/protobuf/text_format.h"
#include "tests/fuzz/fuzz_env.h"

namespace {

namespace v1 = farm::v1;

struct Env {
  farm::fuzz::TruthRepo repo;
  std::string dir;
  std::unique_ptr<farm::Coordinator> core;
  int accepted = 0;
};

Env& GetEnv() {
  static Env* env = [] {
    auto* e = new Env;
    e->dir = farm::fuzz::TempDir("submit");
    e->repo = farm::fuzz::MakeTruthRepo(e->dir + "/repo",
                                        "--shape merges --commits 40 --skip 2 --seed 3");
    return e;
  }();
  return *env;
}

void Reset(Env& env) {
  env.core.reset();
  farm::CoordinatorOptions o;
  o.db_path = ":memory:";
  o.cache_dir = env.dir + "/mirrors";
  absl::StatusOr<std::unique_ptr<farm::Coordinator>> c = farm::Coordinator::Create(o);
  if (!c.ok()) {
    std::fprintf(stderr, "Coordinator::Create: %s\n", c.status().ToString().c_str());
    std::abort();
  }
  env.core = std::move(*c);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  Reset(GetEnv());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Env& env = GetEnv();
  if (!env.core) Reset(env);
  std::string_view text(reinterpret_cast<const char*>(data), size);
  v1::SubmitBisectRequest req;
  constexpr std::string_view kText = "#text\n";
  if (text.substr(0, kText.size()) == kText) {
    if (!google::protobuf::TextFormat::ParseFromString(std::string(text.substr(kText.size())),
                                                       &req)) {
      return 0;
    }
  } else if (!req.ParseFromArray(data, static_cast<int>(size))) {
    return 0;
  }
  v1::BisectSpec spec = req.spec();
  if (spec.repo() == "R") {
    spec.set_repo(env.repo.path);
  } else if (!spec.repo().empty() && spec.repo()[0] != '/') {
    return 0;  // anything but an absolute path is fetched as a URL
  }
  absl::StatusOr<v1::JobStatus> st = env.core->SubmitBisect(spec);
  if (std::getenv("FARM_FUZZ_VERBOSE") != nullptr) {
    std::fprintf(
        stderr, "  -> %s\n",
        st.ok() ? absl::StrCat("job ", st->job_id(), " ", st->candidates(), " candidates").c_str()
                : st.status().ToString().c_str());
  }
  if (!st.ok()) {
    if (st.status().message().empty()) {
      std::fprintf(stderr, "SubmitBisect failed without a message: %s\n",
                   st.status().ToString().c_str());
      std::abort();
    }
    absl::StatusCode code = st.status().code();
    if (code != absl::StatusCode::kInvalidArgument && code != absl::StatusCode::kNotFound) {
      farm::fuzz::Finding(absl::StrCat("undocumented-code-", absl::StatusCodeToString(code)),
                          absl::StrCat("SubmitBisect answered ", st.status().ToString(),
                                       " (farm.proto lists INVALID_ARGUMENT and NOT_FOUND) for "
                                       "spec:\n",
                                       spec.DebugString()),
                          data, size);
    }
    return 0;
  }
  if (st->job_id().empty()) {
    std::fprintf(stderr, "accepted job without an id\n");
    std::abort();
  }
  absl::StatusOr<v1::JobStatus> got = env.core->GetJob(st->job_id());
  if (!got.ok()) {
    std::fprintf(stderr, "GetJob(%s) of an accepted job: %s\n", st->job_id().c_str(),
                 got.status().ToString().c_str());
    std::abort();
  }
  if (!env.core->CancelJob(st->job_id()).ok()) {
    std::fprintf(stderr, "CancelJob(%s) failed\n", st->job_id().c_str());
    std::abort();
  }
  // Ended jobs stay in memory; start afresh now and then so that a long run measures the
  // handler, not the growth.
  if (++env.accepted % 2000 == 0) Reset(env);
  return 0;
}
