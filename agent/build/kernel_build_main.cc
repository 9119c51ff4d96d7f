// farm-kernel-build: one BuildKernel, as an agent runs it, from the command line (bench/, and for
// seeing what the farm does to a tree). Exit codes follow `git bisect run`: 0 built, 125 the tree
// does not build (a skip), 2 bad input, 255 an infrastructure error.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/build/config_flag.h"
#include "agent/build/kernel_build.h"
#include "common/task_control/task_control.h"
#include "common/signals.h"

int main(int argc, char** argv) {
  CLI::App app{"farm-kernel-build: build a kernel tree the way a farm agent does"};
  std::string source = ".", build, ccache_dir, base_dir, config = "defconfig", remote;
  unsigned jobs = 0;
  bool modules = false, no_ccache = false;
  app.add_option("--source", source, "kernel source tree (default: .)");
  app.add_option("--build", build, "build directory, O= (kept between builds)")->required();
  app.add_option("--config", config, "FILE, TARGET or TARGET+FRAGMENT[+...] (default: defconfig)");
  app.add_option("--ccache-dir", ccache_dir,
                 "ccache directory (default: $FARM_CCACHE_DIR, else ~/.cache/farm/ccache)");
  app.add_flag("--no-ccache", no_ccache, "build without ccache");
  app.add_option("--ccache-base-dir", base_dir,
                 "ccache base_dir (default: the common parent of --source and --build)");
  app.add_option("--ccache-remote-storage", remote, "redis://host:port or http://host/path");
  app.add_option("-j,--jobs", jobs, "parallel jobs (default: the number of CPUs)");
  app.add_flag("--modules", modules, "build modules too");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  farm::v1::KernelBuild spec;
  absl::Status parsed = farm::ParseKernelConfigFlag(config, &spec);
  if (!parsed.ok()) {
    std::fprintf(stderr, "farm-kernel-build: %s\n", std::string(parsed.message()).c_str());
    return 2;
  }
  spec.set_jobs(jobs);
  spec.set_modules(modules);
  spec.set_ccache_remote_storage(remote);
  if (no_ccache) {
    ccache_dir.clear();
  } else if (ccache_dir.empty()) {
    const char* env = std::getenv("FARM_CCACHE_DIR");
    const char* home = std::getenv("HOME");
    ccache_dir = env ? env : absl::StrCat(home ? home : "/tmp", "/.cache/farm/ccache");
  }

  static farm::TaskControl* control = new farm::TaskControl();  // outlives the signal thread
  farm::HandleTerminationSignals([](int) { control->Cancel(); });
  absl::StatusOr<farm::KernelBuildResult> r = farm::BuildKernel(
      spec, {source, build, ccache_dir, base_dir},
      [](std::string_view s) {
        std::fwrite(s.data(), 1, s.size(), stdout);
        std::fflush(stdout);
      },
      control);
  if (!r.ok()) {
    std::fprintf(stderr, "farm-kernel-build: %s\n", r.status().ToString().c_str());
    if (absl::IsCancelled(r.status())) return 130;
    return absl::IsInvalidArgument(r.status()) || absl::IsNotFound(r.status()) ? 2 : 255;
  }
  if (!r->built) std::fputs(r->failure_excerpt.c_str(), stdout);
  // One line for scripts (bench/kernel_steps.sh reads it).
  std::printf(
      "farm-kernel-build: built=%d seconds=%.2f config_seconds=%.2f ccache_hits=%lld "
      "ccache_misses=%lld image=%s sha256=%s\n",
      r->built ? 1 : 0, absl::ToDoubleSeconds(r->elapsed), absl::ToDoubleSeconds(r->config_elapsed),
      static_cast<long long>(r->ccache_hits), static_cast<long long>(r->ccache_misses),
      r->image.empty() ? "-" : r->image.c_str(),
      r->image_sha256.empty() ? "-" : r->image_sha256.c_str());
  return r->built ? 0 : 125;
}
