#include "agent/boot/initramfs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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
#include "agent/boot/text.h"
#include "common/status_macros.h"
#include "common/subprocess/subprocess.h"

namespace farm::boot {
namespace {

namespace fs = std::filesystem;
namespace v1 = farm::v1;

// Bump when the layout of the archive changes, so caches built by older agents are not reused.
constexpr std::string_view kFormatVersion = "farm-initramfs-2";
// The task's entries get inode numbers above the busybox part's.
constexpr uint32_t kTaskFirstInode = 1u << 20;
constexpr size_t kMaxCompilerOutput = 16 << 10;

uint64_t Fnv1a(std::string_view data, uint64_t h = 0xcbf29ce484222325ull) {
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

std::string Digest(std::string_view data) {
  // Two FNV-1a passes with different seeds: 128 bits, plenty for a local content cache.
  return absl::StrFormat("%016x%016x", Fnv1a(data), Fnv1a(data, 0x84222325cbf29ce4ull));
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  }
  std::string data;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) data.append(buf, n);
  bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) return absl::InternalError(absl::StrCat("cannot read ", path));
  return data;
}

// Writes through a temporary file and rename(), so concurrent writers and readers of the same
// cache entry only ever see a complete file.
absl::Status WriteFileAtomic(const std::string& path, std::string_view data, mode_t mode) {
  static std::atomic<uint64_t> counter{0};
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid(), ".", counter++);
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("cannot write ", tmp, ": ", std::strerror(errno)));
  }
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      close(fd);
      unlink(tmp.c_str());
      return absl::InternalError(absl::StrCat("cannot write ", tmp, ": ", std::strerror(err)));
    }
    off += static_cast<size_t>(n);
  }
  fchmod(fd, mode);
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat("cannot rename ", tmp, ": ", std::strerror(err)));
  }
  return absl::OkStatus();
}

absl::Status MakeDirs(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  return absl::OkStatus();
}

// The ELF program interpreter ("/lib64/ld-linux-x86-64.so.2"); "" for a static executable;
// nullopt if `data` is not ELF.
std::optional<std::string> ElfInterpreter(std::string_view data) {
  if (data.size() < 64 || data.substr(0, 4) !=
                              "\x7f"
                              "ELF")
    return std::nullopt;
  const bool is64 = data[4] == 2;
  if (data[5] != 1) return std::string();  // big-endian: not for this machine; let it fail there
  auto u16 = [&](size_t off) -> uint64_t {
    if (off + 2 > data.size()) return 0;
    return static_cast<uint8_t>(data[off]) |
           (static_cast<uint64_t>(static_cast<uint8_t>(data[off + 1])) << 8);
  };
  auto uN = [&](size_t off, int bytes) -> uint64_t {
    uint64_t v = 0;
    if (off + bytes > data.size()) return 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(data[off + i]);
    return v;
  };
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

// The busybox part: directories, device nodes, busybox and a symlink per applet. Built once per
// busybox binary, kept in memory and on disk.
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
  const std::string disk = absl::StrCat(work_dir, "/busybox-", Digest(key).substr(0, 16),
                                        compress ? ".cpio.gz" : ".cpio");
  if (absl::StatusOr<std::string> cached = ReadFile(disk); cached.ok()) {
    base->data = *std::move(cached);
  } else {
    FARM_ASSIGN_OR_RETURN(std::string binary, ReadFile(busybox));
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
    CpioWriter w;
    for (const char* dir : {"bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys",
                            "run", "etc", "mnt", "var", "farm", "farm/shared", "farm/modules"}) {
      w.AddDirectory(dir);
    }
    w.AddDirectory("tmp", 01777);
    w.AddDirectory("root", 0700);
    // Init's stdin/stdout/stderr are /dev/console, opened by the kernel before devtmpfs is mounted.
    w.AddCharDevice("dev/console", 5, 1, 0600);
    w.AddCharDevice("dev/null", 1, 3, 0666);
    w.AddFile("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0644);
    w.AddFile("etc/group", "root:x:0:\n", 0644);
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

// Quotes one word for sh.
std::string ShellQuote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  out += "'";
  return out;
}

// How init runs /farm/test. Scripts for a shell run through /bin/sh, so kernels without
// CONFIG_BINFMT_SCRIPT work too; other interpreters (rare in an initramfs) go through the kernel.
std::string RunCommand(const v1::BootSpec& spec) {
  if (ResolvePayloadKind(spec) != v1::BootSpec::SHELL) return "/farm/test";
  std::string_view payload = spec.payload();
  if (payload.substr(0, 2) != "#!") return "/bin/sh /farm/test";
  std::string_view first = payload.substr(2, payload.find('\n') - 2);
  std::vector<std::string> words =
      absl::StrSplit(text::Av(first), absl::ByAnyChar(" \t"), absl::SkipEmpty());
  if (words.empty()) return "/bin/sh /farm/test";
  std::string interp = words[0].substr(words[0].rfind('/') + 1);
  if (interp == "env" && words.size() > 1) interp = words[1];
  for (const char* shell : {"sh", "bash", "ash", "dash"}) {
    if (interp == shell) return "/bin/sh /farm/test";
  }
  return "/farm/test";
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

std::string InitScript(const v1::BootSpec& spec, const std::vector<std::string>& modules) {
  const uint32_t timeout = TestTimeoutSeconds(spec);
  const bool shared = !spec.shared_dir().empty();
  std::string s = R"SH(#!/bin/sh
# Generated by bisect farm (agent/boot/initramfs.cc). The kernel runs it as `/bin/sh /init`. It
# runs /farm/test once, prints its exit code on the console and powers off.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts 2>/dev/null
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up 2>/dev/null
)SH";
  for (const std::string& m : modules) {
    absl::StrAppend(&s, "insmod ", ShellQuote(m), " || echo ",
                    ShellQuote("farm: insmod " + m + " failed"), "\n");
  }
  absl::StrAppend(&s, "cd /\n");
  if (shared) {
    absl::StrAppend(
        &s,
        R"SH(if mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 farm /farm/shared; then
  cd /farm/shared
  export FARM_SHARED=/farm/shared
else
  echo "farm: cannot mount the shared directory over 9p (the kernel needs CONFIG_NET_9P_VIRTIO and CONFIG_9P_FS)"
fi
)SH");
  }
  absl::StrAppend(&s, "echo ", text::Av(kInitStartedMarker), "\n");
  absl::StrAppend(&s, RunCommand(spec), " </dev/null &\n");
  absl::StrAppend(&s, "test_pid=$!\n");
  // The guest's own timer: the host has one too, but this one reports a hang without waiting for
  // it, and tells a test that hangs from a kernel that does.
  absl::StrAppend(&s, "(sleep ", timeout, "; echo \"", text::Av(kTestTimeoutMarker),
                  ": the test ran longer than ", timeout,
                  "s\"; kill -KILL $test_pid) </dev/null &\n");
  absl::StrAppend(&s, R"SH(watchdog_pid=$!
wait $test_pid
rc=$?
kill -KILL $watchdog_pid 2>/dev/null
)SH");
  if (shared && !spec.result_file().empty()) {
    const std::string file = ShellQuote("/farm/shared/" + spec.result_file());
    absl::StrAppend(&s, "if [ -n \"$FARM_SHARED\" ]; then echo $rc > ", file, "; sync; fi\n");
  }
  // Twice: the kernel's console output may cut one (agent/boot/console.h).
  absl::StrAppend(&s, "echo \"", text::Av(kResultMarker), "$rc\"\n");
  absl::StrAppend(&s, "echo \"", text::Av(kResultMarker), "$rc\"\n");
  // A kernel without power-off support halts instead; the host stops qemu at the marker anyway.
  absl::StrAppend(&s, R"SH(sync
poweroff -f
halt -f
while :; do sleep 3600; done
)SH");
  return s;
}

absl::StatusOr<std::string> CompileStaticC(std::string_view source, const std::string& cache_dir) {
  FARM_RETURN_IF_ERROR(MakeDirs(cache_dir));
  const std::string key = Digest(absl::StrCat("gcc -static -O2\n", text::Av(source)));
  const std::string binary = absl::StrCat(cache_dir, "/", key);
  const std::string kept_source = binary + ".c";
  if (access(binary.c_str(), X_OK) == 0) {
    absl::StatusOr<std::string> kept = ReadFile(kept_source);
    if (kept.ok() && *kept == source) return binary;
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
  return binary;
}

absl::StatusOr<std::string> BuildInitramfs(const v1::BootSpec& spec, const std::string& work_dir,
                                           const InitramfsOptions& options) {
  if (spec.payload().empty()) {
    return absl::InvalidArgumentError("the boot has no test payload (BootSpec.payload is empty)");
  }
  FARM_RETURN_IF_ERROR(ValidateResultFile(spec.result_file()));
  FARM_RETURN_IF_ERROR(MakeDirs(work_dir));
  FARM_ASSIGN_OR_RETURN(std::string busybox, FindBusybox(options));
  FARM_ASSIGN_OR_RETURN(std::shared_ptr<const BaseArchive> base,
                        GetBaseArchive(busybox, work_dir, options.compress));

  std::string test;
  switch (ResolvePayloadKind(spec)) {
    case v1::BootSpec::C_SOURCE: {
      FARM_ASSIGN_OR_RETURN(std::string path,
                            CompileStaticC(spec.payload(), work_dir + "/payloads"));
      FARM_ASSIGN_OR_RETURN(test, ReadFile(path));
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

  CpioWriter w(kTaskFirstInode);
  std::vector<std::string> guest_modules;
  for (size_t i = 0; i < options.modules.size(); ++i) {
    FARM_ASSIGN_OR_RETURN(std::string ko, ReadFile(options.modules[i]));
    std::string name = fs::path(options.modules[i]).filename().string();
    std::string guest = absl::StrFormat("/farm/modules/%02d-%s", i, name);
    w.AddFile(guest, ko, 0644);
    guest_modules.push_back(guest);
  }
  w.AddFile("farm/test", test, 0755);
  w.AddFile("init", InitScript(spec, guest_modules), 0755);
  std::string task = w.Finish();
  if (options.compress) {
    FARM_ASSIGN_OR_RETURN(task, Gzip(task));
  }

  const std::string path =
      absl::StrCat(work_dir, "/initramfs-", Digest(absl::StrCat(base->key, "\n", task)),
                   options.compress ? ".cpio.gz" : ".cpio");
  struct stat st;
  if (stat(path.c_str(), &st) == 0 &&
      static_cast<size_t>(st.st_size) == base->data.size() + task.size()) {
    return path;
  }
  // The kernel unpacks concatenated archives (each may be compressed) one after the other.
  std::string archive;
  archive.reserve(base->data.size() + task.size());
  archive.append(base->data);
  archive.append(task);
  FARM_RETURN_IF_ERROR(WriteFileAtomic(path, archive, 0644));
  return path;
}

}  // namespace farm::boot
