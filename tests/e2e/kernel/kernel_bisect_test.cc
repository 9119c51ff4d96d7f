// A real kernel bisect: `farm bisect --kernel` with 2 agents over a linux-source-6.1 repository
// whose series has one commit that breaks sethostname() for a 64-byte name
// (make-linux-repo.sh). Each step builds the kernel with ccache (tinyconfig + farm-tiny.config),
// boots it in qemu with hostname-test.c as the payload, and reads the verdict from the console.
// The farm must name the planted commit.
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "coordinator/store/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/lib/test_util.h"

namespace farm {
namespace {

namespace v1 = farm::v1;

using testing::Quote;
using testing::Sh;

// The first of `tools` not in PATH, or "".
std::string MissingTool(std::initializer_list<const char*> tools) {
  for (const char* t : tools) {
    if (Sh(absl::StrCat("command -v ", t, " >/dev/null")).exit_code != 0) return t;
  }
  return "";
}

TEST(KernelBisectTest, NamesThePlantedCommit) {
  std::string missing = MissingTool({"make", "gcc", "bison", "flex", "bc", "perl", "ccache",
                                     "qemu-system-x86_64", "cpio", "git"});
  if (!missing.empty()) {
    GTEST_SKIP() << missing << " is not installed (bash tests/setup-debian.sh installs it)";
  }
  const char* cache_env = std::getenv("FARM_KERNEL_CACHE");
  std::string cache = cache_env ? cache_env : "/var/cache/farm-test-kernels";

  // The fixture (cached: minutes the first time, instant afterwards).
  absl::Time t0 = absl::Now();
  testing::CommandResult fixture =
      Sh(absl::StrCat("FARM_KERNEL_CACHE=", Quote(cache), " ",
                      Quote(testing::Source("tests/e2e/kernel/make-linux-repo.sh"))));
  if (fixture.exit_code == 77) {
    GTEST_SKIP() << "the kernel fixture cannot be made: " << fixture.output;
  }
  ASSERT_EQ(fixture.exit_code, 0) << fixture.output;
  std::map<std::string, std::string> fx;
  for (absl::string_view line : absl::StrSplit(fixture.output, '\n')) {
    std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits('=', 1));
    if (kv.first == "repo" || kv.first == "base" || kv.first == "head" || kv.first == "culprit") {
      fx[kv.first] = kv.second;
    }
  }
  ASSERT_EQ(fx.size(), 4u) << fixture.output;
  std::cout << "fixture ready in " << absl::ToDoubleSeconds(absl::Now() - t0) << "s: " << fx["repo"]
            << " culprit " << fx["culprit"] << std::endl;

  std::string work = testing::MakeTempDir("kernel-bisect");
  // The agents share a ccache through ccache's file storage next to the fixture (as a lab shares
  // one over redis or http), so runs after the first build from a warm cache; the kernel builds
  // are still real (configuration check, every object looked up, the link, the image).
  std::string cmd = absl::StrCat(
      Quote(testing::Bin("farm")), " bisect --repo ", Quote(fx["repo"]), " --good ", fx["base"],
      " --bad ", fx["head"], " --agents 2 --kernel --config ",
      Quote(absl::StrCat("tinyconfig+", testing::Source("tests/e2e/kernel/farm-tiny.config"))),
      " --test ", Quote(testing::Source("tests/e2e/kernel/hostname-test.c")), " --ccache-remote ",
      Quote(absl::StrCat("file://", cache, "/ccache-shared")), " --workdir ", Quote(work));
  std::cout << "running: " << cmd << std::endl;
  absl::Time t1 = absl::Now();
  testing::CommandResult r = Sh(cmd);
  double took = absl::ToDoubleSeconds(absl::Now() - t1);
  std::cout << "farm bisect --kernel took " << took << "s" << std::endl;

  testing::BisectAnswer answer = testing::ParseAnswer(r.output);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(answer.first_bad, fx["culprit"])
      << "farm answered " << testing::Describe(answer) << "; output:\n"
      << r.output;
  // Every task that tested a kernel says what its build did: ccache's counts and the image's
  // digest (the same commit always gives the same image: reproducible builds).
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(work + "/farm.db");
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<std::vector<Store::JobRow>> jobs = (*store)->LoadJobs(false);
  ASSERT_TRUE(jobs.ok() && !jobs->empty());
  absl::StatusOr<std::vector<v1::TaskSummary>> tasks = (*store)->LoadTasks(jobs->front().id);
  ASSERT_TRUE(tasks.ok()) << tasks.status();
  int with_verdict = 0;
  int64_t compilations = 0;
  std::map<std::string, std::string> image_of;
  for (const v1::TaskSummary& t : *tasks) {
    if (t.state() != v1::TASK_DONE || t.verdict() == v1::SKIP) continue;
    ++with_verdict;
    ASSERT_TRUE(t.has_kernel_build()) << t.DebugString();
    // -1 would mean built without ccache; an incremental step may compile only a few files.
    EXPECT_GE(t.kernel_build().ccache_hits(), 0) << t.DebugString();
    EXPECT_GE(t.kernel_build().ccache_misses(), 0) << t.DebugString();
    compilations += t.kernel_build().ccache_hits() + t.kernel_build().ccache_misses();
    EXPECT_EQ(t.kernel_build().image_sha256().size(), 64u) << t.DebugString();
    auto [it, added] = image_of.emplace(t.commit(), t.kernel_build().image_sha256());
    EXPECT_EQ(it->second, t.kernel_build().image_sha256()) << t.commit();
  }
  EXPECT_GE(with_verdict, 2);
  EXPECT_GT(compilations, 0);
  // The kernels the agents built were booted through their PVH entry (farm-tiny.config has
  // CONFIG_PVH): the build directory's vmlinux, without the bzImage's decompressor.
  testing::CommandResult log =
      Sh(absl::StrCat(Quote(testing::Bin("farm")), " log ", jobs->front().id, " ", fx["culprit"],
                      " --workdir ", Quote(work)));
  EXPECT_EQ(log.exit_code, 0) << log.output;
  EXPECT_THAT(log.output, ::testing::HasSubstr(", pvh\n")) << log.output;
  // Worktrees and build directories take ~1.5 GB per agent: kept only to debug a failure.
  if (!HasFailure()) std::filesystem::remove_all(work);
}

}  // namespace
}  // namespace farm
