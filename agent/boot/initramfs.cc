#include "agent/boot/initramfs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "agent/boot/console.h"
#include "agent/boot/cpio.h"
#include "agent/boot/file_cache.h"
#include "agent/boot/text.h"
#include "common/status_macros.h"
#include "common/subprocess/subprocess.h"

namespace farm::boot {
namespace {

namespace fs = std::filesystem;
namespace v1 = farm::v1;

// Bump when the layout of the archive changes, so caches built by older agents are not reused.
constexpr std::string_view kFormatVersion = "farm-initramfs-3";
// The three archives get disjoint inode numbers.
constexpr uint32_t kInitFirstInode = 1;
constexpr uint32_t kTaskFirstInode = 1u << 19;
constexpr uint32_t kBusyboxFirstInode = 1u << 20;
constexpr size_t kMaxCompilerOutput = 16 << 10;

// The ELF program interpreter ("/lib64/ld-linux-x86-64.so.2"); "" for a static executable;
// nullopt if `data` is not ELF.
std::optional<std::string> ElfInterpreter(std::string_view data) {
  if (data.size() < 64 || data.substr(0, 4) !=
                              "\x7f"
                              "ELF")
    return std::nullopt;
  const bool is64 = data[4] == 2;
  if (data[5] != 1) return std::string();  // big-endian: not for this machine; let it fail there
  auto u16 = [&](size_t off) { return text::LittleEndian(data, off, 2); };
  auto uN = [&](size_t off, int bytes) { return text::LittleEndian(data, off, bytes); };
  const uint64_t phoff = is64 ? uN(32, 8) : uN(28, 4);
  const uint64_t phentsize = is64 ? u16(54) : u16(42);
  const uint64_t phnum = is64 ? u16(56) : u16(44);
  for (uint64_t i = 0; i < phnum && i < 256; ++i) {
    const uint64_t ph = phoff + i * phentsize;
    if (uN(ph, 4) != 3 /* PT_INTERP */) continue;
    const uint64_t off = is64 ? uN(ph + 8, 8) : uN(ph + 4, 4);
    const uint64_t size = is64 ? uN(ph + 32, 8) : uN(ph + 16, 4);
    if (off >= data.size() || size == 0) return std::string("?");
    std::string interp(data.substr(off, std::min<uint64_t>(size, data.size() - off)));
    while (!interp.empty() && interp.back() == '\0') interp.pop_back();
    return interp;
  }
  return std::string();
}

absl::StatusOr<std::string> FindBusybox(const InitramfsOptions& options) {
  if (!options.busybox.empty()) return options.busybox;
  if (access("/bin/busybox", X_OK) == 0) return std::string("/bin/busybox");
  if (const char* path = getenv("PATH")) {
    for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
      std::string candidate = absl::StrCat(dir, "/busybox");
      if (access(candidate.c_str(), X_OK) == 0) return candidate;
    }
  }
  return absl::FailedPreconditionError(
      "no busybox found (the initramfs needs a static busybox): install busybox-static");
}

// Runs argv and returns its merged output, or an error naming the command.
absl::StatusOr<std::pair<int, std::string>> RunCapture(std::vector<std::string> argv,
                                                       absl::Duration timeout) {
  std::string output;
  SubprocessOptions opts;
  opts.argv = std::move(argv);
  opts.timeout = timeout;
  opts.on_output = [&](std::string_view chunk) {
    if (output.size() < kMaxCompilerOutput) output.append(chunk.substr(0, kMaxCompilerOutput));
  };
  FARM_ASSIGN_OR_RETURN(std::unique_ptr<Subprocess> proc, Subprocess::Start(std::move(opts)));
  SubprocessResult r = proc->Wait();
  if (r.kind != SubprocessResult::Kind::kExited) {
    return absl::DeadlineExceededError(absl::StrCat(r.Describe(), ": ", output));
  }
  return std::make_pair(r.exit_code, std::move(output));
}

struct BaseArchive {
  std::string key;   // identifies busybox + format + compression
  std::string data;  // the archive (gzipped when compressed)
};

// The busybox part: busybox and a symlink per applet (the directories are in the init part,
// which the kernel unpacks first). Built once per busybox binary, kept in memory and on disk.
absl::StatusOr<std::shared_ptr<const BaseArchive>> GetBaseArchive(const std::string& busybox,
                                                                  const std::string& work_dir,
                                                                  bool compress) {
  struct stat st;
  if (stat(busybox.c_str(), &st) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot use busybox at ", busybox, ": ", std::strerror(errno)));
  }
  const std::string key =
      absl::StrCat(text::Av(kFormatVersion), "|", busybox, "|", st.st_size, "|", st.st_mtim.tv_sec,
                   ".", st.st_mtim.tv_nsec, "|", st.st_ino, "|", compress ? "gz" : "raw");

  static absl::Mutex mu;
  static auto* cache = new std::map<std::string, std::shared_ptr<const BaseArchive>>();
  {
    absl::MutexLock lock(&mu);
    auto it = cache->find(key);
    if (it != cache->end()) return it->second;
  }

  auto base = std::make_shared<BaseArchive>();
  base->key = key;
  const std::string disk = absl::StrCat(work_dir, "/busybox-", CacheDigest(key).substr(0, 16),
                                        compress ? ".cpio.gz" : ".cpio");
  if (absl::StatusOr<std::string> cached = ReadWholeFile(disk); cached.ok()) {
    base->data = *std::move(cached);
  } else {
    FARM_ASSIGN_OR_RETURN(std::string binary, ReadWholeFile(busybox));
    std::optional<std::string> interp = ElfInterpreter(binary);
    if (!interp.has_value() || !interp->empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat(busybox, " is not a statically linked executable: install busybox-static"));
    }
    absl::StatusOr<std::pair<int, std::string>> list =
        RunCapture({busybox, "--list-full"}, absl::Seconds(30));
    if (!list.ok() || list->first != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot list the applets of ", busybox, " (", busybox,
          " --list-full): ", list.ok() ? list->second : std::string(list.status().message())));
    }
    CpioWriter w(kBusyboxFirstInode);
    w.AddFile("bin/busybox", binary, 0755);
    bool have_bash = false;
    for (absl::string_view applet : absl::StrSplit(list->second, '\n', absl::SkipWhitespace())) {
      applet = absl::StripAsciiWhitespace(applet);
      while (absl::ConsumePrefix(&applet, "/")) {
      }
      if (applet.empty() || applet == "bin/busybox" || applet.find("..") != applet.npos) continue;
      have_bash |= applet == "bin/bash";
      w.AddSymlink(std::string_view(applet.data(), applet.size()), "/bin/busybox");
    }
    // Most test scripts say #!/bin/bash; busybox's ash runs the common ones.
    if (!have_bash) w.AddSymlink("bin/bash", "/bin/busybox");
    std::string archive = w.Finish();
    if (compress) {
      FARM_ASSIGN_OR_RETURN(archive, Gzip(archive));
    }
    base->data = std::move(archive);
    FARM_RETURN_IF_ERROR(MakeDirs(work_dir));
    FARM_RETURN_IF_ERROR(WriteFileAtomic(disk, base->data, 0644));
  }
  absl::MutexLock lock(&mu);
  auto [it, inserted] = cache->emplace(key, std::move(base));
  return it->second;
}

// How init runs /farm/test. Scripts for a shell run through /bin/sh, so kernels without
// CONFIG_BINFMT_SCRIPT work too; other interpreters (rare in an initramfs) go through the kernel.
std::vector<std::string> TestArgv(const v1::BootSpec& spec) {
  const std::vector<std::string> direct = {"/farm/test"};
  const std::vector<std::string> shell = {"/bin/sh", "/farm/test"};
  if (ResolvePayloadKind(spec) != v1::BootSpec::SHELL) return direct;
  std::string_view payload = spec.payload();
  if (payload.substr(0, 2) != "#!") return shell;
  std::string_view first = payload.substr(2, payload.find('\n') - 2);
  std::vector<std::string> words =
      absl::StrSplit(text::Av(first), absl::ByAnyChar(" \t"), absl::SkipEmpty());
  if (words.empty()) return shell;
  std::string interp = words[0].substr(words[0].rfind('/') + 1);
  if (interp == "env" && words.size() > 1) interp = words[1];
  for (const char* sh : {"sh", "bash", "ash", "dash"}) {
    if (interp == sh) return shell;
  }
  return direct;
}

// Directories, device nodes and the account files every guest gets.
void AddSkeleton(CpioWriter& w) {
  for (const char* dir : {"bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "run",
                          "etc", "mnt", "var", "farm", "farm/shared", "farm/modules"}) {
    w.AddDirectory(dir);
  }
  w.AddDirectory("tmp", 01777);
  w.AddDirectory("root", 0700);
  // Init's stdin/stdout/stderr are /dev/console, opened by the kernel before devtmpfs is mounted.
  w.AddCharDevice("dev/console", 5, 1, 0600);
  w.AddCharDevice("dev/null", 1, 3, 0666);
  w.AddFile("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0644);
  w.AddFile("etc/group", "root:x:0:\n", 0644);
}

// The part every guest gets, the same for every task: the skeleton and /init. Built once per
// process (and compression).
absl::StatusOr<const std::string*> GetInitPart(bool compress) {
  static absl::Mutex mu(absl::kConstInit);
  static const std::string* parts[2] = {nullptr, nullptr};
  absl::MutexLock lock(&mu);
  if (parts[compress] == nullptr) {
    CpioWriter w(kInitFirstInode);
    AddSkeleton(w);
    w.AddFile("init", FarmInitBinary(), 0755);
    std::string data = w.Finish();
    if (compress) {
      FARM_ASSIGN_OR_RETURN(data, Gzip(data));
    }
    parts[compress] = new std::string(std::move(data));
  }
  return parts[compress];
}

absl::Status ValidateResultFile(const std::string& name) {
  if (name.empty()) return absl::OkStatus();
  if (name.front() == '/' || text::Contains(name, "..") || name.find('\n') != name.npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "result file '", name, "' must be a relative path inside the shared directory"));
  }
  return absl::OkStatus();
}

}  // namespace

v1::BootSpec::PayloadKind ResolvePayloadKind(const v1::BootSpec& spec) {
  if (spec.payload_kind() != v1::BootSpec::PAYLOAD_KIND_UNSPECIFIED) return spec.payload_kind();
  std::string_view p = spec.payload();
  if (p.substr(0, 2) == "#!") return v1::BootSpec::SHELL;
  if (p.substr(0, 4) ==
      "\x7f"
      "ELF")
    return v1::BootSpec::BINARY;
  return v1::BootSpec::C_SOURCE;
}

bool NeedsBusybox(v1::BootSpec::PayloadKind kind, std::string_view test) {
  return kind == v1::BootSpec::SHELL || text::Contains(test, "/bin/sh") ||
         text::Contains(test, "busybox");
}

std::string InitConfig(const v1::BootSpec& spec, const std::vector<std::string>& modules) {
  std::string c = "# /farm/init.conf, read by the farm's /init (agent/boot/farm_init.c)\n";
  absl::StrAppend(&c, "timeout ", TestTimeoutSeconds(spec), "\n");
  for (const std::string& m : modules) absl::StrAppend(&c, "module ", m, "\n");
  if (!spec.shared_dir().empty()) {
    absl::StrAppend(&c, "share farm\n");  // qemu's mount_tag (qemu_boot.cc)
    if (!spec.result_file().empty()) absl::StrAppend(&c, "result_file ", spec.result_file(), "\n");
  }
  for (const std::string& a : TestArgv(spec)) absl::StrAppend(&c, "arg ", a, "\n");
  return c;
}

absl::StatusOr<std::string> CompileStaticC(std::string_view source, const std::string& cache_dir) {
  FARM_RETURN_IF_ERROR(MakeDirs(cache_dir));
  const std::string key = CacheDigest(absl::StrCat("gcc -static -O2\n", text::Av(source)));
  const std::string binary = absl::StrCat(cache_dir, "/", key);
  const std::string kept_source = binary + ".c";
  if (access(binary.c_str(), X_OK) == 0) {
    absl::StatusOr<std::string> kept = ReadWholeFile(kept_source);
    if (kept.ok() && *kept == source) {
      TouchCacheEntry(binary);
      return binary;
    }
  }
  static std::atomic<uint64_t> counter{0};
  const std::string tmp = absl::StrCat(binary, ".tmp.", getpid(), ".", counter++);
  FARM_RETURN_IF_ERROR(WriteFileAtomic(tmp + ".c", source, 0644));
  absl::StatusOr<std::pair<int, std::string>> run =
      RunCapture({"gcc", "-static", "-O2", "-o", tmp, tmp + ".c"}, absl::Minutes(5));
  unlink((tmp + ".c").c_str());
  if (!run.ok()) {
    unlink(tmp.c_str());
    if (absl::IsNotFound(run.status())) {
      return absl::FailedPreconditionError(
          "cannot compile the C test: gcc is not installed (apt-get install gcc libc6-dev)");
    }
    return absl::Status(run.status().code(),
                        absl::StrCat("cannot compile the C test: ", run.status().message()));
  }
  if (run->first != 0) {
    unlink(tmp.c_str());
    const std::string& out = run->second;
    if (text::Contains(out, "cannot find -lc") || text::Contains(out, "crt1.o") ||
        text::Contains(out, "stdio.h: No such file")) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot compile the C test statically: the static C library is missing "
                       "(apt-get install libc6-dev):\n",
                       out));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("the C test does not compile (gcc -static -O2):\n", out));
  }
  // The source goes first: a binary is only used when the source next to it matches.
  FARM_RETURN_IF_ERROR(WriteFileAtomic(kept_source, source, 0644));
  if (rename(tmp.c_str(), binary.c_str()) != 0) {
    unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat("cannot rename ", tmp, ": ", std::strerror(errno)));
  }
  PruneCacheEntries(cache_dir, "", kMaxCachedPayloads, ".c");
  return binary;
}

absl::StatusOr<std::string> BuildInitramfs(const v1::BootSpec& spec, const std::string& work_dir,
                                           const InitramfsOptions& options) {
  if (spec.payload().empty()) {
    return absl::InvalidArgumentError("the boot has no test payload (BootSpec.payload is empty)");
  }
  FARM_RETURN_IF_ERROR(ValidateResultFile(spec.result_file()));
  FARM_RETURN_IF_ERROR(MakeDirs(work_dir));

  // The archive's name: a digest of what it is made from. Found: nothing else to do (no compile,
  // no copy of the test, init and busybox, no hash of megabytes).
  const v1::BootSpec::PayloadKind kind = ResolvePayloadKind(spec);
  absl::StatusOr<std::string> busybox = FindBusybox(options);
  std::string inputs =
      absl::StrCat(text::Av(kFormatVersion), "|init ", text::Av(FarmInitBinaryDigest()), "|gz ",
                   options.compress, "|busybox ", FileIdentity(busybox.ok() ? *busybox : ""));
  absl::StrAppend(&inputs, "|kind ", static_cast<int>(kind), "|timeout ", TestTimeoutSeconds(spec),
                  "|share ", !spec.shared_dir().empty(), "|result ", spec.result_file());
  for (const std::string& m : options.modules) {
    absl::StrAppend(&inputs, "|module ", m, " ", FileIdentity(m));
  }
  absl::StrAppend(&inputs, "|payload ", spec.payload().size(), "\n", spec.payload());
  const std::string path = absl::StrCat(work_dir, "/initramfs-", CacheDigest(inputs),
                                        options.compress ? ".cpio.gz" : ".cpio");
  if (access(path.c_str(), R_OK) == 0) {
    TouchCacheEntry(path);  // newest use: pruning keeps it
    return path;
  }

  std::string test;
  switch (kind) {
    case v1::BootSpec::C_SOURCE: {
      FARM_ASSIGN_OR_RETURN(std::string path,
                            CompileStaticC(spec.payload(), work_dir + "/payloads"));
      FARM_ASSIGN_OR_RETURN(test, ReadWholeFile(path));
      break;
    }
    case v1::BootSpec::BINARY: {
      std::optional<std::string> interp = ElfInterpreter(spec.payload());
      if (!interp.has_value()) {
        return absl::InvalidArgumentError("the test is marked BINARY but is not an ELF executable");
      }
      if (!interp->empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("the test binary is dynamically linked (it needs ", *interp,
                         ", which the initramfs does not have): link it with -static"));
      }
      test = spec.payload();
      break;
    }
    default: {
      test = spec.payload();
      if (test.substr(0, 2) != "#!") test = "#!/bin/sh\n" + test;
      break;
    }
  }

  std::shared_ptr<const BaseArchive> busybox_part;
  if (NeedsBusybox(kind, test)) {
    if (!busybox.ok()) return busybox.status();
    FARM_ASSIGN_OR_RETURN(busybox_part, GetBaseArchive(*busybox, work_dir, options.compress));
  }
  FARM_ASSIGN_OR_RETURN(const std::string* init_part, GetInitPart(options.compress));

  CpioWriter w(kTaskFirstInode);
  std::vector<std::string> guest_modules;
  for (size_t i = 0; i < options.modules.size(); ++i) {
    FARM_ASSIGN_OR_RETURN(std::string ko, ReadWholeFile(options.modules[i]));
    std::string name = fs::path(options.modules[i]).filename().string();
    std::string guest = absl::StrFormat("/farm/modules/%02d-%s", i, name);
    w.AddFile(guest, ko, 0644);
    guest_modules.push_back(guest);
  }
  w.AddFile("farm/test", test, 0755);
  w.AddFile("farm/init.conf", InitConfig(spec, guest_modules), 0644);
  std::string task = w.Finish();
  if (options.compress) {
    FARM_ASSIGN_OR_RETURN(task, Gzip(task));
  }

  const std::string_view busybox_data =
      busybox_part != nullptr ? std::string_view(busybox_part->data) : std::string_view();
  const size_t size = init_part->size() + task.size() + busybox_data.size();
  // The kernel unpacks concatenated archives (each may be compressed) one after the other: the
  // directories first, so that they exist when busybox's symlinks are made.
  std::string archive;
  archive.reserve(size);
  archive.append(*init_part);
  archive.append(task);
  archive.append(busybox_data);
  FARM_RETURN_IF_ERROR(WriteFileAtomic(path, archive, 0644));
  PruneInitramfsCache(work_dir);
  return path;
}

int PruneInitramfsCache(const std::string& work_dir, int keep) {
  return PruneCacheEntries(work_dir, "initramfs-", keep);
}

}  // namespace farm::boot
