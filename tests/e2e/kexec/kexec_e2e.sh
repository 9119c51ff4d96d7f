#!/bin/bash
# Emulated bare metal (issue 11), one VM (tests/e2e/kexec/lib.sh builds it): Debian's cloud
# kernel A is its default, and a task's host kernel B is on its state disk.
#
#   1. a task asks for host kernel B while the VM runs A: the agent kexecs (really, inside the
#      VM), comes back, and the test prints `uname -r` = B into the task's log;
#   2. a host kernel whose command line panics: qemu (-no-reboot) stops, the coordinator runs the
#      power command at the boot deadline, the VM comes back in A, and the task ends as "host
#      kernel did not boot" (a skip), nothing lost.
#
# usage: kexec_e2e.sh BIN_DIR    exits 77 (skipped) without qemu, kexec-tools or the kernels.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
kx_init "${1:-}" kexec-e2e
kx_kernels 2
dir_a=${kx_dirs[0]}
dir_b=${kx_dirs[1]}
rel_a=${kx_rels[0]}
rel_b=${kx_rels[1]}

# The repository the jobs bisect, at the same path inside the VM: c0 good, c1 has the bug, c2.
repo=$work/repo
git init -q "$repo"
git -C "$repo" -c user.email=t@e -c user.name=t commit -q --allow-empty -m c0
touch "$repo/bug" && git -C "$repo" add bug
git -C "$repo" -c user.email=t@e -c user.name=t commit -q -m c1
git -C "$repo" -c user.email=t@e -c user.name=t commit -q --allow-empty -m c2
mkdir -p "$work/kernels" && cp "$dir_b/boot/vmlinuz-$rel_b" "$work/kernels/vmlinuz-B"

kx_initrd
kx_vm metal "$dir_a" "$repo" "$work/kernels"
kx_coordinator metal
console=$work/metal/console.log
start=$(date +%s)
"$work/metal/vm.sh" start
kx_wait_agents metal
echo "agent ready in $(($(date +%s) - start)) s (VM start to connected)"

# 1. A host kernel that boots.
test_cmd='uname -r; test ! -e bug'
job=$(farm submit --repo "$repo" --good HEAD~2 --bad HEAD --host-kernel "$work/kernels/vmlinuz-B" \
      -- sh -c "$test_cmd") || fail "submit: $job"
timeout 600 "$bin/farm" watch "$job" >"$work/watch1.log" 2>&1 || true
farm status "$job" >"$work/status1.log" 2>&1 || true
farm log "$job" HEAD~1 >"$work/log1.log" 2>&1 || true
cat "$work/status1.log"
grep -q "$rel_b" "$work/log1.log" || { cat "$work/log1.log"; fail "the test did not run under $rel_b"; }
grep -q "$(git -C "$repo" rev-parse HEAD~1)" "$work/status1.log" || fail "job 1 did not find c1"
grep -q "farm-vm: $rel_b up" "$console" || fail "the VM never booted $rel_b"
echo "PASS 1: kexec into $rel_b, test saw uname -r = $rel_b"
# bench: kexec-to-agent-ready, from the agent's "rebooting into" to its "resuming task" (both
# logged by the agent inside the VM, on the VM's clock).
stamp() { date -d "$(grep -m1 "$1" "$console" | cut -d' ' -f1 | tr T ' ')" +%s.%N; }
echo "kexec-to-agent-ready: $(echo "$(stamp 'kexec: resuming task') - $(stamp 'rebooting into')" \
  | bc) s"

# 2. A host kernel that panics (rdinit missing): power-cycled, "host kernel did not boot".
job2=$(farm submit --repo "$repo" --good HEAD~2 --bad HEAD \
       --host-kernel "$work/kernels/vmlinuz-B" --host-kernel-cmdline "rdinit=/nonexistent" \
       -- sh -c "$test_cmd") || fail "submit 2: $job2"
timeout 600 "$bin/farm" watch "$job2" >"$work/watch2.log" 2>&1 || true
farm status "$job2" >"$work/status2.log" 2>&1 || true
cat "$work/status2.log"
# The agent, back in kernel A, reports the task (farm status shows the skip, the agent's log why).
grep -q "^  skip .* on metal  c1" "$work/status2.log" || fail "job 2's c1 is not a skip on metal"
grep -q "kexec: task .* ends under $rel_a: host kernel did not boot" "$console" ||
  fail "the agent did not report 'host kernel did not boot'"
grep -q "power-cycl" "$work/coordinator.log" || fail "the coordinator did not power-cycle the VM"
grep -c "=== vm.sh restart" "$console" | grep -qx 1 || fail "expected one power cycle"
echo "PASS 2: panicking host kernel power-cycled and reported as a skip"
echo "total $(($(date +%s) - start)) s"
