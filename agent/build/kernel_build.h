// Kernel builds for the agent: `make O=<persistent build dir> -jN bzImage` under ccache, with the
// configuration assembled from a KernelBuild recipe and refreshed by olddefconfig at every commit
// whose Kconfig files differ from the last build's.
//
// Incremental and cache-friendly by construction:
//  - the build directory is kept between commits; the assembled base configuration is kept in
//    <build>/.farm/ under a key of everything it depends on (the spec, every Kconfig file, the
//    tree's config fragments, kconfig itself), so a commit that touches one .c file costs that
//    file and the link, and one that touches a Kconfig file gets the configuration made again;
//  - ccache runs through a masquerade directory (gcc -> ccache first in PATH) so command lines
//    are those of a plain build; depend mode (a miss costs one compiler run, so a cold build is
//    as fast as without ccache) and base_dir = the common parent of the worktree and the build
//    directory: slots laid out alike (<root>/<n>/src and <root>/<n>/build, as Workspace does)
//    share hits, and so do agents through spec.ccache_remote_storage;
//  - KBUILD_BUILD_TIMESTAMP/USER/HOST/VERSION and LOCALVERSION are fixed, so the same tree gives
//    the same image (image_sha256) whichever slot or agent built it.
#ifndef FARM_AGENT_BUILD_KERNEL_BUILD_H_
#define FARM_AGENT_BUILD_KERNEL_BUILD_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "farm/v1/farm.pb.h"

namespace farm {

class TaskControl;  // common/task_control/task_control.h

struct KernelBuildPaths {
  std::string source_dir;  // the checked-out kernel tree (a slot's worktree)
  std::string build_dir;   // O=: kept between builds of the same slot; created if missing
  // CCACHE_DIR, shared by all slots of an agent (created if missing). Empty: build without ccache.
  std::string ccache_dir;
  // CCACHE_BASEDIR, under which absolute paths become relative for ccache's key. Empty: the
  // deepest common ancestor of source_dir and build_dir (root/slots/<n> for Workspace's
  // root/slots/<n>/src and .../build: every slot then compiles "../src/kernel/sys.c" and they share
  // hits). Never "/".
  std::string ccache_base_dir;
};

struct KernelBuildResult {
  // False when the tree did not build (a compiler or link error, a fragment this commit lacks):
  // the commit is untestable, a skip. failure_excerpt then says why.
  bool built = false;
  std::string image;  // <build_dir>/arch/x86/boot/bzImage when built
  std::string image_sha256;
  // The error lines of a failed build ("error:", make's "Error N", ...) with a little context.
  std::string failure_excerpt;
  absl::Duration elapsed;         // the whole call
  absl::Duration config_elapsed;  // of which assembling the configuration and olddefconfig
  // Compilations of this build served from the cache (local or remote) and compiled afresh;
  // both -1 without ccache. Counted from a per-build ccache stats log, so other slots sharing
  // the cache do not disturb them.
  int64_t ccache_hits = -1;
  int64_t ccache_misses = -1;
  // Symbols a fragment asked for that olddefconfig did not keep (a dependency is missing at this
  // commit), as "CONFIG_X: wanted y, got n". Reported in the output too; not an error.
  std::vector<std::string> config_mismatches;
};

// Builds the kernel in paths.source_dir into paths.build_dir:
//   1. configuration: spec.config (a whole .config) or `make <spec.config_target>` (default
//      "defconfig" when neither is given), then spec.fragments merged with
//      scripts/kconfig/merge_config.sh -m (a fragment is either content, "CONFIG_X=y\n...", or the
//      name of one the tree provides: "kvm_guest" -> arch/x86/configs/kvm_guest.config or
//      kernel/configs/kvm_guest.config); reused from <build>/.farm/ when nothing it depends on
//      changed; then `make olddefconfig`, skipped only when the spec and every Kconfig file are
//      as at the last build in this directory and .config is what olddefconfig left then;
//   2. `make -j<spec.jobs or the CPU count> bzImage` (+ `modules` when spec.modules).
// Every make runs with O=<build_dir>, in its own process group registered with `control` (so
// TaskControl::Cancel kills it), with stdin from /dev/null; all output goes to on_output (may
// be empty), which is called from this thread.
//
// Returns built=false (not an error) when the tree does not build. Errors, for problems of the
// agent rather than the commit:
//   INVALID_ARGUMENT     empty source_dir/build_dir, or a spec with both config and config_target.
//   NOT_FOUND            source_dir is not a kernel tree (no Makefile / Kconfig).
//   FAILED_PRECONDITION  make, or a build tool the kernel needs (bison, flex, libelf-dev, ...), is
//                        missing: the message names the Debian package.
//   RESOURCE_EXHAUSTED   the disk is full (ENOSPC in the output) or the compiler was killed (OOM).
//   CANCELLED            control was cancelled.
//   DEADLINE_EXCEEDED    `timeout` passed (measured over the whole call).
//   INTERNAL             files in build_dir cannot be written, make killed by a signal.
// Thread safety: concurrent calls must use different build_dirs (they may share ccache_dir).
absl::StatusOr<KernelBuildResult> BuildKernel(
    const farm::v1::KernelBuild& spec, const KernelBuildPaths& paths,
    const std::function<void(std::string_view)>& on_output, TaskControl* control,
    absl::Duration timeout = absl::InfiniteDuration());

// --- Parts of BuildKernel, exposed for tests ------------------------------------------------

// The deepest common ancestor of two paths, made absolute and normalised ("/" at worst).
std::string CommonAncestor(const std::string& a, const std::string& b);

// A fragment as given in KernelBuild.fragments: content when it holds a newline or an '=' or
// starts with '#', else a name ("kvm_guest" or "kvm_guest.config").
bool IsFragmentContent(std::string_view fragment);

// Where the tree keeps the named fragment: arch/<arch>/configs/<name>.config, then
// kernel/configs/<name>.config (relative to source_dir). NOT_FOUND, listing the places tried,
// when neither exists.
absl::StatusOr<std::string> FindNamedFragment(const std::string& source_dir, std::string_view name,
                                              std::string_view arch = "x86");

// The environment every make of BuildKernel gets (besides the agent's own): fixed KBUILD_BUILD_*,
// LOCALVERSION, KCFLAGS with -fdebug-prefix-map, CCACHE_* (when paths.ccache_dir is set), PATH
// with the ccache masquerade directory first. `stats_log` is the per-build CCACHE_STATSLOG,
// `path` the PATH to extend, `kcflags` the KCFLAGS to extend (both may be empty).
std::vector<std::pair<std::string, std::string>> KernelBuildEnv(const farm::v1::KernelBuild& spec,
                                                                const KernelBuildPaths& paths,
                                                                const std::string& masquerade_dir,
                                                                const std::string& stats_log,
                                                                const std::string& path,
                                                                const std::string& kcflags);

// The lines of a build's output that say why it failed: compiler "error:"s, make's "*** ...
// Error N" and "No rule to make target", linker "undefined reference", and a few more, each with
// up to `context` lines before it and gcc's quote of the source after it, in order, without
// repeats, gaps marked "...", at most `max_lines` lines (then a note of how many were left out).
// Empty when nothing matches.
std::string ExtractFailureExcerpt(std::string_view output, int context = 2, int max_lines = 60);

// Counts of a ccache stats log (ccache's stats_log: one counter name per line, '#' comments).
struct CcacheCounts {
  int64_t hits = 0;
  int64_t misses = 0;
};
CcacheCounts ParseCcacheStatsLog(std::string_view log);

// Symbols set in `fragments` (fragment texts) whose value in `config` (a .config text) differs,
// as "CONFIG_X: wanted y, got n" ("got unset" when absent).
std::vector<std::string> ConfigMismatches(const std::vector<std::string>& fragments,
                                          std::string_view config);

// Known messages of a missing build tool, disk full or out-of-memory in make's output, as the
// error BuildKernel returns; OK when none is found.
absl::Status ClassifyInfrastructureFailure(std::string_view output);

}  // namespace farm

#endif  // FARM_AGENT_BUILD_KERNEL_BUILD_H_
