// Remembering, across processes, that KVM is not usable on this host: a short-lived `farm boot`
// with accel auto otherwise probes KVM on every run (0.1-0.3 s where qemu aborts at once under
// KVM, ~3 s where KVM guests hang) before its TCG boot. Only a failed probe is remembered (a
// usable KVM is probed again: a boot under KVM needs that answer fresh), and only for as long as
// nothing it depends on changes: the host's boot id, the qemu binary (path, size, mtime) and
// whether /dev/kvm opens.
#ifndef FARM_AGENT_BOOT_KVM_PROBE_MEMORY_H_
#define FARM_AGENT_BOOT_KVM_PROBE_MEMORY_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "agent/boot/qemu_boot.h"

namespace farm::boot {

// What a remembered probe depends on, as one line: the boot id, `qemu` as found in PATH (or as
// given when it has a '/') with its size and mtime, and whether /dev/kvm opens read-write.
std::string KvmProbeKey(const std::string& qemu = "qemu-system-x86_64");

// The reason a probe with the same key found KVM unusable, or nullopt: no file at `path`, a file
// for another key, or one that cannot be read.
std::optional<std::string> RecallFailedKvmProbe(const std::string& path, const std::string& key);

// Writes `probe` under `key` to `path` (atomically, by rename) when it found KVM unusable;
// nothing for a usable or unprobed one. Errors (INTERNAL, naming the file) only cost the next
// run a probe.
absl::Status RememberKvmProbe(const std::string& path, const std::string& key,
                              const KvmProbe& probe);

}  // namespace farm::boot

#endif  // FARM_AGENT_BOOT_KVM_PROBE_MEMORY_H_
