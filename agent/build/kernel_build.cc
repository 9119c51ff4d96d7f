#include "agent/build/kernel_build.h"

#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/task_control/task_control.h"
#include "agent/workspace/disk_space.h"
#include "common/status_macros.h"
#include "common/subprocess/subprocess.h"

namespace farm {
namespace {

namespace fs = std::filesystem;
namespace v1 = farm::v1;

// Debian's Abseil has its own string_view (ABSL_OPTION_USE_STD_STRING_VIEW=0).
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Bump when the way the base configuration is assembled changes: old ones are then remade.
constexpr char kConfigKeyVersion[] = "farm-kernel-config-v1";
// Fixed identity of every build, so that the same tree gives the same image everywhere.
constexpr char kBuildTimestamp[] = "Sun Jan  1 00:00:00 UTC 2023";
// Enough of a build's output to find why it failed; a kernel build prints ~100 bytes per file.
constexpr size_t kMaxCapturedOutput = 16 << 20;

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// Replaces `path` atomically unless it already holds `content` (an unchanged file keeps its mtime,
// and make keeps its targets).
absl::Status WriteFileIfChanged(const std::string& path, std::string_view content) {
  absl::StatusOr<std::string> old = ReadFile(path);
  if (old.ok() && *old == content) return absl::OkStatus();
  std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(content.data(), static_cast<std::streamsize>(content.size()));
    f.flush();
    if (!f.good()) {
      int err = errno;
      fs::remove(tmp);
      if (err == ENOSPC)
        return absl::ResourceExhaustedError(absl::StrCat("disk full writing ", path));
      return absl::InternalError(absl::StrCat("cannot write ", path, ": ", std::strerror(err)));
    }
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename ", tmp, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(std::string_view data) { EVP_DigestUpdate(ctx_, data.data(), data.size()); }
  // Length-prefixed, so that concatenations cannot collide.
  void Field(std::string_view data) {
    Update(absl::StrCat(data.size(), ":"));
    Update(data);
  }
  std::string Hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx_, md, &n);
    std::string out;
    for (unsigned int i = 0; i < n; ++i) absl::StrAppendFormat(&out, "%02x", md[i]);
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
};

std::string Sha256Hex(std::string_view data) {
  Sha256 h;
  h.Update(data);
  return h.Hex();
}

absl::StatusOr<std::string> Sha256File(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::InternalError(absl::StrCat("cannot read ", path));
  Sha256 h;
  std::string buf(1 << 16, '\0');
  while (f) {
    f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h.Update(std::string_view(buf.data(), static_cast<size_t>(f.gcount())));
  }
  return h.Hex();
}

// The program `name` as PATH would find it; empty when it is not there.
std::string FindInPath(const std::string& name, const std::string& path) {
  for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

std::string GetEnv(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// <ccache_dir>/farm-masquerade/{gcc,cc,x86_64-linux-gnu-gcc} -> ccache. First in PATH, it puts
// ccache in front of the kernel's CC and HOSTCC with their command lines unchanged (ccache finds
// the real compiler further down PATH).
absl::StatusOr<std::string> EnsureMasquerade(const std::string& ccache_dir,
                                             const std::string& ccache) {
  std::string dir = absl::StrCat(ccache_dir, "/farm-masquerade");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  for (const char* name : {"gcc", "cc", "x86_64-linux-gnu-gcc"}) {
    std::string link = absl::StrCat(dir, "/", name);
    std::error_code read_ec;
    if (fs::read_symlink(link, read_ec) == fs::path(ccache)) continue;
    // Slots share the directory: make the link under a private name, then rename it into place.
    std::string tmp = absl::StrCat(link, ".tmp.", getpid(), ".",
                                   std::hash<std::thread::id>{}(std::this_thread::get_id()));
    fs::remove(tmp, ec);
    if (symlink(ccache.c_str(), tmp.c_str()) != 0 || rename(tmp.c_str(), link.c_str()) != 0) {
      return absl::InternalError(
          absl::StrCat("cannot make the ccache link ", link, ": ", std::strerror(errno)));
    }
  }
  return dir;
}

// The Kconfig files the last configuration of `build_dir` read (include/config/auto.conf.cmd,
// written by syncconfig), relative to the source tree; empty if there is none.
std::vector<std::string> KconfigDeps(const std::string& build_dir) {
  std::vector<std::string> deps;
  absl::StatusOr<std::string> cmd =
      ReadFile(absl::StrCat(build_dir, "/include/config/auto.conf.cmd"));
  if (!cmd.ok()) return deps;
  bool in_list = false;
  for (absl::string_view line : absl::StrSplit(*cmd, '\n')) {
    if (absl::StartsWith(line, "deps_config :=")) {
      in_list = true;
      continue;
    }
    if (!in_list) continue;
    absl::string_view item = absl::StripAsciiWhitespace(line);
    bool more = absl::ConsumeSuffix(&item, "\\");
    item = absl::StripAsciiWhitespace(item);
    if (!item.empty()) deps.emplace_back(item);
    if (!more) break;
  }
  return deps;
}

// Names the base configuration after everything that decides it: the spec (with the content of
// named fragments), the Kconfig files, the tree's config fragments and defconfigs, and kconfig's
// own scripts. Equal keys: `make <target>` + merge would give the same file, so it is reused.
std::string ConfigKey(const v1::KernelBuild& spec, const std::string& source_dir,
                      const std::vector<std::string>& kconfig_deps) {
  Sha256 h;
  h.Field(kConfigKeyVersion);
  h.Field(spec.config());
  h.Field(spec.config_target());
  for (const std::string& f : spec.fragments()) {
    h.Field(f);
    if (!IsFragmentContent(f)) {
      absl::StatusOr<std::string> where = FindNamedFragment(source_dir, f);
      h.Field(where.ok() ? *where : "missing");
    }
  }
  auto hash_file = [&](const std::string& rel) {
    h.Field(rel);
    absl::StatusOr<std::string> content = ReadFile(absl::StrCat(source_dir, "/", rel));
    h.Field(content.ok() ? *content : "\x01missing");
  };
  for (const std::string& dep : kconfig_deps) hash_file(dep);
  for (const char* dir : {"arch/x86/configs", "kernel/configs", "scripts/kconfig"}) {
    std::error_code ec;
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(absl::StrCat(source_dir, "/", dir), ec)) {
      if (e.is_regular_file())
        files.push_back(absl::StrCat(dir, "/", e.path().filename().string()));
    }
    std::sort(files.begin(), files.end());
    for (const std::string& f : files) hash_file(f);
  }
  hash_file("Makefile");
  return h.Hex();
}

// One make (or script) run: output to the caller and into `captured`; registered with `control`.
struct StepOutcome {
  SubprocessResult result;
  std::string output;
};

class Runner {
 public:
  Runner(const KernelBuildPaths& paths, std::vector<std::pair<std::string, std::string>> env,
         const std::function<void(std::string_view)>& on_output, TaskControl* control,
         absl::Time deadline)
      : paths_(paths),
        env_(std::move(env)),
        on_output_(on_output),
        control_(control),
        deadline_(deadline) {}

  void Say(std::string_view text) {
    if (on_output_) on_output_(absl::StrCat("farm: ", Av(text), "\n"));
  }

  // Runs argv in the source tree. Errors: the program cannot start (make missing), cancelled,
  // deadline, killed by a signal. A non-zero exit is not an error (see result.exit_code).
  absl::StatusOr<StepOutcome> Run(const std::string& what, std::vector<std::string> argv) {
    if (control_ != nullptr && control_->cancelled()) {
      return absl::CancelledError("kernel build cancelled");
    }
    absl::Duration left = deadline_ - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(absl::StrCat("kernel build timed out before ", what));
    }
    StepOutcome out;
    SubprocessOptions opts;
    opts.argv = std::move(argv);
    opts.cwd = paths_.source_dir;
    opts.env = env_;
    opts.timeout = left;
    if (control_ != nullptr) opts.container = control_->container();
    opts.on_output = [&](std::string_view chunk) {
      if (on_output_) on_output_(chunk);
      out.output.append(chunk);
      if (out.output.size() > kMaxCapturedOutput) {
        out.output.erase(0, out.output.size() - kMaxCapturedOutput / 2);
      }
    };
    std::string program = opts.argv[0];
    absl::StatusOr<std::unique_ptr<Subprocess>> p = Subprocess::Start(std::move(opts));
    if (!p.ok()) {
      if (absl::IsNotFound(p.status()) || absl::IsPermissionDenied(p.status())) {
        return absl::FailedPreconditionError(absl::StrCat(
            "cannot run ", program, " for the kernel ", what, ": ", p.status().message(),
            program == "make" ? " (install make: apt-get install make)" : ""));
      }
      return p.status();
    }
    if (control_ != nullptr) control_->SetCurrent(p->get());
    out.result = (*p)->Wait();
    if (control_ != nullptr) control_->SetCurrent(nullptr);
    switch (out.result.kind) {
      case SubprocessResult::Kind::kExited:
        break;
      case SubprocessResult::Kind::kCancelled:
        return absl::CancelledError("kernel build cancelled");
      case SubprocessResult::Kind::kTimedOut:
        return absl::DeadlineExceededError(
            absl::StrCat("kernel ", what, " ", out.result.Describe(), " (the build's timeout)"));
      case SubprocessResult::Kind::kSignaled:
        if (control_ != nullptr && control_->cancelled()) {
          return absl::CancelledError("kernel build cancelled");
        }
        return absl::InternalError(absl::StrCat("kernel ", what, " ", out.result.Describe()));
    }
    return out;
  }

  std::vector<std::string> Make(std::vector<std::string> targets) const {
    std::vector<std::string> argv = {"make", absl::StrCat("O=", paths_.build_dir)};
    argv.insert(argv.end(), targets.begin(), targets.end());
    return argv;
  }

 private:
  const KernelBuildPaths& paths_;
  const std::vector<std::pair<std::string, std::string>> env_;
  const std::function<void(std::string_view)>& on_output_;
  TaskControl* control_;
  const absl::Time deadline_;
};

// A step that exited non-zero: an infrastructure error if the output says so, otherwise the
// commit does not build (result.built stays false, with the excerpt).
absl::Status FailedStep(const std::string& what, const StepOutcome& step,
                        KernelBuildResult& result) {
  FARM_RETURN_IF_ERROR(ClassifyInfrastructureFailure(step.output));
  std::string excerpt = ExtractFailureExcerpt(step.output);
  if (excerpt.empty()) {
    // Nothing recognisable: the last lines are the best guess.
    std::vector<absl::string_view> lines = absl::StrSplit(step.output, '\n', absl::SkipEmpty());
    size_t from = lines.size() > 20 ? lines.size() - 20 : 0;
    excerpt = absl::StrJoin(lines.begin() + static_cast<std::ptrdiff_t>(from), lines.end(), "\n");
    if (!excerpt.empty()) excerpt += "\n";
  }
  result.failure_excerpt =
      absl::StrCat("kernel ", what, " failed (", step.result.Describe(), "):\n", excerpt);
  return absl::OkStatus();
}

struct ConfigOutcome {
  bool ok = false;  // false: result.failure_excerpt says why (the commit does not configure)
  std::vector<std::string> fragment_texts;
};

// Step 1: the base configuration (made, or reused from <build>/.farm), then olddefconfig.
absl::StatusOr<ConfigOutcome> Configure(const v1::KernelBuild& spec, const KernelBuildPaths& paths,
                                        Runner& run, KernelBuildResult& result) {
  ConfigOutcome out;
  const std::string farm_dir = absl::StrCat(paths.build_dir, "/.farm");
  const std::string config = absl::StrCat(paths.build_dir, "/.config");
  const std::string base = absl::StrCat(farm_dir, "/config-base");
  const std::string key_file = absl::StrCat(farm_dir, "/config-key");

  // Fragments: content as given, names looked up in this tree.
  std::vector<std::string> fragment_paths;
  for (int i = 0; i < spec.fragments_size(); ++i) {
    const std::string& f = spec.fragments(i);
    if (IsFragmentContent(f)) {
      std::string path = absl::StrFormat("%s/fragment-%d.config", farm_dir, i);
      std::string text = f;
      if (!text.empty() && text.back() != '\n') text += '\n';
      FARM_RETURN_IF_ERROR(WriteFileIfChanged(path, text));
      fragment_paths.push_back(path);
      out.fragment_texts.push_back(text);
      continue;
    }
    absl::StatusOr<std::string> where = FindNamedFragment(paths.source_dir, f);
    if (!where.ok()) {
      result.failure_excerpt =
          absl::StrCat("kernel configuration failed: ", where.status().message(), "\n");
      return out;
    }
    std::string path = absl::StrCat(paths.source_dir, "/", *where);
    FARM_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
    fragment_paths.push_back(path);
    out.fragment_texts.push_back(text);
  }

  std::vector<std::string> deps = KconfigDeps(paths.build_dir);
  std::string key = ConfigKey(spec, paths.source_dir, deps);
  // config-key: "<key of the base> <sha256 of the .config olddefconfig made from it>".
  absl::StatusOr<std::string> stamp = ReadFile(key_file);
  std::pair<std::string, std::string> old_key;
  if (stamp.ok()) old_key = absl::StrSplit(*stamp, absl::MaxSplits(' ', 1));
  // olddefconfig is a function of the base configuration, the Kconfig files and the toolchain;
  // when none changed since it last ran here, it would write the same .config again.
  absl::StatusOr<std::string> current = ReadFile(config);
  if (!deps.empty() && old_key.first == key && current.ok() &&
      absl::StrCat(Sha256Hex(*current), "\n") == old_key.second) {
    run.Say(absl::StrCat("config: spec and Kconfig files as at the last build here (",
                         key.substr(0, 12), "): .config is up to date"));
    out.ok = true;
    return out;
  }
  absl::StatusOr<std::string> saved = ReadFile(base);
  if (old_key.first == key && saved.ok()) {
    run.Say(absl::StrCat("config: reusing the base configuration ", key.substr(0, 12)));
    FARM_RETURN_IF_ERROR(WriteFileIfChanged(config, *saved));
  } else {
    std::error_code ec;
    fs::remove(key_file, ec);
    if (!spec.config().empty()) {
      FARM_RETURN_IF_ERROR(WriteFileIfChanged(config, spec.config()));
    } else {
      std::string target = spec.config_target().empty() ? "defconfig" : spec.config_target();
      run.Say(absl::StrCat("config: make ", target));
      FARM_ASSIGN_OR_RETURN(StepOutcome s, run.Run("configuration", run.Make({target})));
      if (s.result.exit_code != 0) {
        FARM_RETURN_IF_ERROR(
            FailedStep(absl::StrCat("configuration (make ", target, ")"), s, result));
        return out;
      }
    }
    if (!fragment_paths.empty()) {
      std::vector<std::string> argv = {
          "/bin/sh",
          absl::StrCat(paths.source_dir, "/scripts/kconfig/merge_config.sh"),
          "-m",
          "-O",
          paths.build_dir,
          config};
      argv.insert(argv.end(), fragment_paths.begin(), fragment_paths.end());
      FARM_ASSIGN_OR_RETURN(StepOutcome s, run.Run("configuration (merge_config.sh)", argv));
      if (s.result.exit_code != 0) {
        FARM_RETURN_IF_ERROR(FailedStep("configuration (merge_config.sh)", s, result));
        return out;
      }
    }
    FARM_ASSIGN_OR_RETURN(std::string made, ReadFile(config));
    FARM_RETURN_IF_ERROR(WriteFileIfChanged(base, made));
  }

  FARM_ASSIGN_OR_RETURN(StepOutcome s,
                        run.Run("configuration (olddefconfig)", run.Make({"olddefconfig"})));
  if (s.result.exit_code != 0) {
    FARM_RETURN_IF_ERROR(FailedStep("configuration (make olddefconfig)", s, result));
    return out;
  }
  out.ok = true;
  return out;
}

}  // namespace

std::string CommonAncestor(const std::string& a, const std::string& b) {
  fs::path pa = fs::absolute(a).lexically_normal(), pb = fs::absolute(b).lexically_normal();
  fs::path out;
  for (auto ia = pa.begin(), ib = pb.begin(); ia != pa.end() && ib != pb.end() && *ia == *ib;
       ++ia, ++ib) {
    if (ia->empty()) break;  // the empty element after a trailing '/'
    out /= *ia;
  }
  return out.string();
}

bool IsFragmentContent(std::string_view fragment) {
  return fragment.find('\n') != std::string_view::npos ||
         fragment.find('=') != std::string_view::npos || absl::StartsWith(Av(fragment), "#") ||
         fragment.empty();
}

absl::StatusOr<std::string> FindNamedFragment(const std::string& source_dir, std::string_view name,
                                              std::string_view arch) {
  std::string file(name);
  if (!absl::EndsWith(file, ".config")) file += ".config";
  std::vector<std::string> tried = {absl::StrCat("arch/", Av(arch), "/configs/", file),
                                    absl::StrCat("kernel/configs/", file)};
  for (const std::string& rel : tried) {
    if (file.find('/') == std::string::npos &&
        fs::is_regular_file(absl::StrCat(source_dir, "/", rel))) {
      return rel;
    }
  }
  return absl::NotFoundError(absl::StrCat("config fragment \"", Av(name),
                                          "\" is not in this tree (looked for ",
                                          absl::StrJoin(tried, " and "), ")"));
}

std::vector<std::pair<std::string, std::string>> KernelBuildEnv(
    const v1::KernelBuild& spec, const KernelBuildPaths& paths, const std::string& masquerade_dir,
    const std::string& stats_log, const std::string& path, const std::string& kcflags) {
  std::vector<std::pair<std::string, std::string>> env = {
      {"KBUILD_BUILD_TIMESTAMP", kBuildTimestamp},
      {"KBUILD_BUILD_USER", "farm"},
      {"KBUILD_BUILD_HOST", "farm"},
      {"KBUILD_BUILD_VERSION", "1"},
      // Set (even empty) LOCALVERSION stops setlocalversion from adding "+" for a git tree that is
      // not at a tag, which would differ between a worktree and a plain tarball.
      {"LOCALVERSION", ""},
      // English messages for the failure excerpt, and the same locale in every ccache key.
      {"LC_ALL", "C"},
      // Debug info names the build directory; map it away so slots share objects (and ccache
      // leaves the directory out of its key when -fdebug-prefix-map is given).
      {"KCFLAGS", absl::StrCat(kcflags, kcflags.empty() ? "" : " ",
                               "-fdebug-prefix-map=", paths.build_dir, "=.")},
  };
  if (paths.ccache_dir.empty()) return env;
  std::string base_dir = paths.ccache_base_dir;
  if (base_dir.empty()) base_dir = CommonAncestor(paths.source_dir, paths.build_dir);
  env.insert(
      env.end(),
      {
          {"CCACHE_DIR", paths.ccache_dir},
          // The compiler's content, not its mtime: hits survive a reinstall and match other hosts.
          {"CCACHE_COMPILERCHECK", "content"},
          // time_macros: the kernel's few __DATE__/__TIME__ users must not disable direct mode.
          // include_file_*: autoconf.h and friends are rewritten by every olddefconfig; their
          // content, not their age, is what matters (the farm never edits sources during a build).
          {"CCACHE_SLOPPINESS", "time_macros,include_file_mtime,include_file_ctime"},
          // Depend mode: a miss costs one compiler run (the kernel's -Wp,-MMD gives the includes)
          // instead of a preprocessor run plus a compile, so a cold build is as fast as without
          // ccache. It gives up preprocessor-mode hits, which a bisect (one configuration, small
          // diffs) rarely has.
          {"CCACHE_DEPEND", "1"},
          // Hash each header once per build, not once per file that includes it.
          {"CCACHE_INODECACHE", "1"},
          // arch/x86/boot and objtool compile with -g but without KCFLAGS' -fdebug-prefix-map:
          // leave the working directory out of the key so slots share those objects too (it only
          // ends up in their debug info, which never reaches the image).
          {"CCACHE_NOHASHDIR", "1"},
          {"CCACHE_STATSLOG", stats_log},
      });
  // Never "/": system headers would become relative paths too, and hits would depend on depth.
  if (!base_dir.empty() && base_dir != "/") env.emplace_back("CCACHE_BASEDIR", base_dir);
  if (!spec.ccache_remote_storage().empty()) {
    env.emplace_back("CCACHE_REMOTE_STORAGE", spec.ccache_remote_storage());
  }
  if (!masquerade_dir.empty()) {
    env.emplace_back("PATH", absl::StrCat(masquerade_dir, path.empty() ? "" : ":", path));
  }
  return env;
}

std::string ExtractFailureExcerpt(std::string_view output, int context, int max_lines) {
  static constexpr std::string_view kPatterns[] = {
      "error:",
      "Error:",
      "*** ",
      "] Error ",
      "undefined reference to",
      "multiple definition of",
      "No rule to make target",
      "cannot find -l",
      "fatal:",
      "Segmentation fault",
  };
  std::vector<absl::string_view> lines = absl::StrSplit(Av(output), '\n');
  std::vector<bool> keep(lines.size(), false);
  size_t matches = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    bool hit = false;
    for (std::string_view p : kPatterns) {
      if (lines[i].find(Av(p)) != absl::string_view::npos) {
        hit = true;
        break;
      }
    }
    if (!hit) continue;
    ++matches;
    size_t from = i >= static_cast<size_t>(context) ? i - static_cast<size_t>(context) : 0;
    for (size_t j = from; j <= i; ++j) keep[j] = true;
    // gcc's quote of the offending source follows: " 1375 |   if (lenx < 0)", "      |   ^~~~".
    for (size_t j = i + 1; j < lines.size() && lines[j].find(" | ") != absl::string_view::npos &&
                           absl::StartsWith(lines[j], " ");
         ++j) {
      keep[j] = true;
    }
  }
  if (matches == 0) return "";
  std::string out;
  int emitted = 0, left_out = 0;
  bool gap = false;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (!keep[i]) {
      gap = true;
      continue;
    }
    if (emitted >= max_lines) {
      ++left_out;
      continue;
    }
    if (gap && !out.empty()) absl::StrAppend(&out, "...\n");
    gap = false;
    absl::string_view line = absl::StripTrailingAsciiWhitespace(lines[i]);
    absl::StrAppend(&out, line, "\n");
    ++emitted;
  }
  if (left_out > 0) absl::StrAppend(&out, "[", left_out, " more lines left out]\n");
  return out;
}

CcacheCounts ParseCcacheStatsLog(std::string_view log) {
  CcacheCounts c;
  for (absl::string_view line : absl::StrSplit(Av(log), '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    // ccache 4.7 writes one counter name per line; a result is a hit (direct or preprocessed,
    // from local or remote storage) or a miss. Others (uncacheable calls, errors) are neither.
    if (line == "direct_cache_hit" || line == "preprocessed_cache_hit") {
      ++c.hits;
    } else if (line == "cache_miss") {
      ++c.misses;
    }
  }
  return c;
}

std::vector<std::string> ConfigMismatches(const std::vector<std::string>& fragments,
                                          std::string_view config) {
  // Symbol -> value ("n" for "# CONFIG_X is not set"), the last assignment winning.
  auto parse = [](std::string_view text) {
    std::vector<std::pair<std::string, std::string>> out;
    for (absl::string_view line : absl::StrSplit(Av(text), '\n')) {
      line = absl::StripAsciiWhitespace(line);
      if (absl::ConsumePrefix(&line, "# ")) {
        if (absl::StartsWith(line, "CONFIG_") && absl::ConsumeSuffix(&line, " is not set")) {
          out.emplace_back(std::string(line), "n");
        }
        continue;
      }
      size_t eq = line.find('=');
      if (!absl::StartsWith(line, "CONFIG_") || eq == absl::string_view::npos) continue;
      out.emplace_back(std::string(line.substr(0, eq)), std::string(line.substr(eq + 1)));
    }
    return out;
  };
  std::map<std::string, std::string> have;
  for (auto& [k, v] : parse(config)) have[k] = v;
  std::map<std::string, std::string> want;  // ordered: stable messages
  for (const std::string& f : fragments) {
    for (auto& [k, v] : parse(f)) want[k] = v;
  }
  std::vector<std::string> out;
  for (const auto& [k, v] : want) {
    auto it = have.find(k);
    std::string got = it == have.end() ? (v == "n" ? "n" : "unset") : it->second;
    if (got != v) out.push_back(absl::StrCat(k, ": wanted ", v, ", got ", got));
  }
  return out;
}

absl::Status ClassifyInfrastructureFailure(std::string_view output_view) {
  absl::string_view output = Av(output_view);
  if (SaysNoSpace(output_view)) {
    return absl::ResourceExhaustedError(
        "the disk is full (\"No space left on device\" while building the kernel)");
  }
  if (absl::StrContains(output, "Killed signal terminated program") ||
      absl::StrContains(output, "virtual memory exhausted") ||
      absl::StrContains(output, "out of memory allocating")) {
    return absl::ResourceExhaustedError(
        "the compiler ran out of memory (killed) while building the kernel: use fewer jobs");
  }
  struct Tool {
    std::string_view needle;
    std::string_view what;
    std::string_view package;
  };
  static constexpr Tool kTools[] = {
      {"bison: not found", "bison", "bison"},
      {"bison: No such file", "bison", "bison"},
      {"flex: not found", "flex", "flex"},
      {"flex: No such file", "flex", "flex"},
      {"bc: not found", "bc", "bc"},
      {"perl: not found", "perl", "perl"},
      {"cpio: not found", "cpio", "cpio"},
      {"xz: not found", "xz", "xz-utils"},
      {"lz4: not found", "lz4", "lz4"},
      {"zstd: not found", "zstd", "zstd"},
      {"lzop: not found", "lzop", "lzop"},
      {"pahole: not found", "pahole", "dwarves"},
      {"gelf.h: No such file", "libelf headers", "libelf-dev"},
      {"libelf.h: No such file", "libelf headers", "libelf-dev"},
      {"openssl/opensslv.h: No such file", "OpenSSL headers", "libssl-dev"},
      {"openssl/bio.h: No such file", "OpenSSL headers", "libssl-dev"},
      {"openssl/err.h: No such file", "OpenSSL headers", "libssl-dev"},
      {"gcc: not found", "gcc", "gcc"},
      {"gcc: command not found", "gcc", "gcc"},
  };
  for (const Tool& t : kTools) {
    if (absl::StrContains(output, Av(t.needle))) {
      return absl::FailedPreconditionError(absl::StrCat(
          Av(t.what), " is missing on this agent (\"", Av(t.needle),
          "\" while building the kernel): install it with apt-get install ", Av(t.package)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<KernelBuildResult> BuildKernel(
    const v1::KernelBuild& spec, const KernelBuildPaths& paths,
    const std::function<void(std::string_view)>& on_output, TaskControl* control,
    absl::Duration timeout) {
  const absl::Time start = absl::Now();
  const absl::Time deadline =
      timeout == absl::InfiniteDuration() ? absl::InfiniteFuture() : start + timeout;
  if (paths.source_dir.empty() || paths.build_dir.empty()) {
    return absl::InvalidArgumentError("BuildKernel needs a source_dir and a build_dir");
  }
  if (!spec.config().empty() && !spec.config_target().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("a kernel build takes a .config or a config target (\"", spec.config_target(),
                     "\"), not both"));
  }
  if (!fs::is_regular_file(absl::StrCat(paths.source_dir, "/Makefile")) ||
      !fs::is_regular_file(absl::StrCat(paths.source_dir, "/Kconfig"))) {
    return absl::NotFoundError(
        absl::StrCat(paths.source_dir, " is not a kernel source tree (no Makefile and Kconfig)"));
  }
  const std::string farm_dir = absl::StrCat(paths.build_dir, "/.farm");
  std::error_code ec;
  fs::create_directories(farm_dir, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot create ", farm_dir, ": ", ec.message()));
  }

  KernelBuildResult result;
  std::string masquerade;
  const std::string stats_log = absl::StrCat(farm_dir, "/ccache-stats.log");
  const std::string path = GetEnv("PATH");
  KernelBuildPaths used = paths;
  if (!paths.ccache_dir.empty()) {
    std::string ccache = FindInPath("ccache", path);
    if (ccache.empty()) {
      if (on_output) on_output("farm: ccache is not installed: building without it\n");
      used.ccache_dir.clear();
    } else {
      fs::create_directories(paths.ccache_dir, ec);
      FARM_ASSIGN_OR_RETURN(masquerade, EnsureMasquerade(paths.ccache_dir, ccache));
      fs::remove(stats_log, ec);
    }
  }
  Runner run(used, KernelBuildEnv(spec, used, masquerade, stats_log, path, GetEnv("KCFLAGS")),
             on_output, control, deadline);

  // 1. Configuration.
  FARM_ASSIGN_OR_RETURN(ConfigOutcome configured, Configure(spec, used, run, result));
  result.config_elapsed = absl::Now() - start;
  auto finish = [&]() {
    result.elapsed = absl::Now() - start;
    if (!used.ccache_dir.empty()) {
      absl::StatusOr<std::string> log = ReadFile(stats_log);
      CcacheCounts c = ParseCcacheStatsLog(log.ok() ? *log : "");
      result.ccache_hits = c.hits;
      result.ccache_misses = c.misses;
    }
    run.Say(absl::StrFormat(
        "kernel %s in %.1fs (configuration %.1fs)%s", result.built ? "built" : "build failed",
        absl::ToDoubleSeconds(result.elapsed), absl::ToDoubleSeconds(result.config_elapsed),
        result.ccache_hits < 0 ? std::string(", without ccache")
                               : absl::StrFormat(", ccache %d hits / %d misses", result.ccache_hits,
                                                 result.ccache_misses)));
    return result;
  };
  if (!configured.ok) return finish();
  FARM_ASSIGN_OR_RETURN(std::string config_text,
                        ReadFile(absl::StrCat(used.build_dir, "/.config")));
  result.config_mismatches = ConfigMismatches(configured.fragment_texts, config_text);
  for (const std::string& m : result.config_mismatches) {
    run.Say(absl::StrCat("config: a fragment's value did not stick (a dependency is off?): ", m));
  }

  // 2. The build.
  unsigned jobs = spec.jobs() > 0 ? spec.jobs() : std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::string> targets = {absl::StrCat("-j", jobs), "bzImage"};
  if (spec.modules()) targets.push_back("modules");
  run.Say(absl::StrCat("build: make -j", jobs, " bzImage", spec.modules() ? " modules" : ""));
  FARM_ASSIGN_OR_RETURN(StepOutcome s, run.Run("build", run.Make(targets)));
  // The base configuration's key, now that syncconfig has listed this tree's Kconfig files.
  std::string deps_file = absl::StrCat(used.build_dir, "/include/config/auto.conf.cmd");
  // Only when syncconfig has seen the current .config (otherwise the list may be another tree's).
  struct stat deps_st, config_st;
  if (stat(deps_file.c_str(), &deps_st) == 0 &&
      stat(absl::StrCat(used.build_dir, "/.config").c_str(), &config_st) == 0 &&
      absl::TimeFromTimespec(deps_st.st_mtim) >= absl::TimeFromTimespec(config_st.st_mtim)) {
    FARM_ASSIGN_OR_RETURN(std::string resolved, ReadFile(absl::StrCat(used.build_dir, "/.config")));
    FARM_RETURN_IF_ERROR(WriteFileIfChanged(
        absl::StrCat(farm_dir, "/config-key"),
        absl::StrCat(ConfigKey(spec, used.source_dir, KconfigDeps(used.build_dir)), " ",
                     Sha256Hex(resolved), "\n")));
  }
  if (s.result.exit_code != 0) {
    FARM_RETURN_IF_ERROR(FailedStep("build", s, result));
    return finish();
  }
  result.image = absl::StrCat(used.build_dir, "/arch/x86/boot/bzImage");
  if (!fs::is_regular_file(result.image)) {
    return absl::InternalError(
        absl::StrCat("make bzImage succeeded but ", result.image, " does not exist"));
  }
  FARM_ASSIGN_OR_RETURN(result.image_sha256, Sha256File(result.image));
  result.built = true;
  return finish();
}

}  // namespace farm
