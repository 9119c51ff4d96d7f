#include "agent/kexec/host_machine.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/subprocess/subprocess.h"

namespace farm::kexec {
namespace {

std::string ReadTrimmed(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return std::string(absl::StripAsciiWhitespace(ss.str()));
}

absl::Status RunKexecTool(std::vector<std::string> argv) {
  std::string output;
  SubprocessOptions opts;
  opts.argv = std::move(argv);
  opts.timeout = absl::Minutes(2);
  opts.on_output = [&output](std::string_view data) {
    if (output.size() < 4096) output.append(data);
  };
  absl::StatusOr<std::unique_ptr<Subprocess>> p = Subprocess::Start(opts);
  if (!p.ok()) {
    if (absl::IsNotFound(p.status())) {
      return absl::NotFoundError(absl::StrCat(opts.argv[0], " is missing: install kexec-tools (",
                                              p.status().message(), ")"));
    }
    return p.status();
  }
  SubprocessResult r = (*p)->Wait();
  if (r.kind == SubprocessResult::Kind::kExited && r.exit_code == 0) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      absl::StrJoin(opts.argv, " "), ": ", r.Describe(), ": ", absl::StripAsciiWhitespace(output)));
}

}  // namespace

std::string RealHostMachine::BootId() { return ReadTrimmed("/proc/sys/kernel/random/boot_id"); }

std::string RealHostMachine::Release() {
  struct utsname u;
  return uname(&u) == 0 ? std::string(u.release) : std::string();
}

std::string RealHostMachine::Cmdline() { return ReadTrimmed("/proc/cmdline"); }

absl::Status RealHostMachine::Load(const std::string& image, const std::string& initrd,
                                   const std::string& cmdline) {
  std::vector<std::string> argv = {"kexec", "-s", "-l", image};
  if (!initrd.empty()) argv.push_back("--initrd=" + initrd);
  argv.push_back("--append=" + cmdline);
  return RunKexecTool(std::move(argv));
}

absl::Status RealHostMachine::Execute() {
  // Under systemd, let it stop the services and unmount first (the work directory's journal is
  // then on disk); elsewhere (an initramfs, a container) kexec -e reboots at once.
  if (access("/run/systemd/system", F_OK) == 0) return RunKexecTool({"systemctl", "kexec"});
  sync();
  return RunKexecTool({"kexec", "-e"});
}

absl::StatusOr<std::string> BzImageRelease(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read kernel image '", path, "'"));
  // kernel_version is a 16-bit offset from 0x200: the string is within the first 0x10200 bytes
  // (Debian's kernels put it past 16 KiB).
  std::string head(0x10200, '\0');
  in.read(head.data(), head.size());
  head.resize(in.gcount());
  auto u16 = [&head](size_t off) {
    return static_cast<uint16_t>(static_cast<uint8_t>(head[off]) |
                                 static_cast<uint8_t>(head[off + 1]) << 8);
  };
  // The setup header: "HdrS" at 0x202, kernel_version (an offset from 0x200) at 0x20e.
  if (head.size() < 0x210 || head.compare(0x202, 4, "HdrS") != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' is not a bzImage (no setup header): give a vmlinuz"));
  }
  size_t off = size_t{u16(0x20e)} + 0x200;
  if (u16(0x20e) == 0 || off >= head.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' names no kernel version in its setup header"));
  }
  std::string version = head.substr(off, head.find('\0', off) - off);
  // "6.1.0-57-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP ...": the release comes first.
  return std::string(version.substr(0, version.find(' ')));
}

std::string KexecCmdline(const std::string& base, const std::string& task_id, int panic_seconds,
                         const std::string& extra) {
  std::vector<std::string> words;
  for (absl::string_view w : absl::StrSplit(base, ' ', absl::SkipWhitespace())) {
    if (w == kExtraMarker) break;  // an earlier task's HostKernel.cmdline
    if (!absl::StartsWith(w, "farm.") && !absl::StartsWith(w, "panic=") &&
        !absl::StartsWith(w, "BOOT_IMAGE=")) {
      words.emplace_back(w);
    }
  }
  if (!task_id.empty()) words.push_back(absl::StrCat("farm.task=", task_id));
  if (panic_seconds > 0) words.push_back(absl::StrCat("panic=", panic_seconds));
  const std::string wanted = CmdlineExtra(absl::StrCat(kExtraMarker, " ", extra));
  if (!wanted.empty()) {
    words.push_back(kExtraMarker);
    words.push_back(wanted);
  }
  return absl::StrJoin(words, " ");
}

std::string CmdlineExtra(const std::string& cmdline) {
  std::vector<absl::string_view> words = absl::StrSplit(cmdline, ' ', absl::SkipWhitespace());
  auto marker = std::find(words.begin(), words.end(), kExtraMarker);
  if (marker == words.end()) return "";
  return absl::StrJoin(marker + 1, words.end(), " ");
}

std::string TaskOnCmdline(const std::string& cmdline) {
  for (absl::string_view w : absl::StrSplit(cmdline, ' ', absl::SkipWhitespace())) {
    if (absl::ConsumePrefix(&w, "farm.task=")) return std::string(w);
  }
  return "";
}

}  // namespace farm::kexec
