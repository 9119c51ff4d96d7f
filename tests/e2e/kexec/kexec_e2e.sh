#!/bin/bash
# Emulated bare metal (issue 11): a qemu VM (TCG) whose kernel is the "host kernel" runs
# `farm-agent --kexec`; its root file system is an initramfs (the agent, kexec-tools and their
# libraries, busybox, the virtio modules of both kernels) and its state an ext4 disk image, so the
# agent's task survives kexecs and power cycles. The VM reaches the coordinator on this machine's
# loopback through qemu's user network (10.0.2.2). The power command is vm.sh restart: it kills
# the VM's qemu and starts it again in its default kernel, a real restart.
#
#   1. a task asks for host kernel B while the VM runs A: the agent kexecs (really, inside the
#      VM), comes back, and the test prints `uname -r` = B into the task's log;
#   2. a host kernel whose command line panics: qemu (-no-reboot) stops, the coordinator runs the
#      power command at the boot deadline, the VM comes back in A, and the task ends as "host
#      kernel did not boot" (a skip), nothing lost.
#
# usage: kexec_e2e.sh BIN_DIR    exits 77 (skipped) without qemu, kexec-tools or the kernels.
set -euo pipefail
bin=$(cd "${1:?usage: kexec_e2e.sh BIN_DIR}" && pwd)
skip() { echo "SKIPPED: $*"; exit 77; }
for tool in qemu-system-x86_64 busybox kexec mkfs.ext4 cpio apt-get dpkg git strip ldd; do
  command -v "$tool" >/dev/null 2>&1 || skip "$tool is missing (tests/setup-debian.sh installs it)"
done

if [ "$(id -u)" -eq 0 ]; then
  cache=${FARM_KERNEL_CACHE:-/var/cache/farm-test-kernels}
else
  cache=${FARM_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/farm-test-kernels}
fi
mkdir -p "$cache/kexec" || skip "cannot write $cache"
# Two Debian cloud kernels: A (the VM's default) and B (the task's host kernel), the newest two.
mapfile -t pkgs < <(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-cloud-amd64$' \
  | awk '{print $1}' | sort -V | tail -n 2)
[ "${#pkgs[@]}" -eq 2 ] || skip "apt knows fewer than two linux-image-6.1.0-N-cloud-amd64"
fetch() {  # package -> directory with boot/ and lib/modules/
  local dir=$cache/kexec/$1
  if [ ! -s "$dir/.done" ]; then
    (
      flock 9
      [ -s "$dir/.done" ] && exit 0
      rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
      (cd "$dir.tmp" && apt-get download -qq "$1" >/dev/null 2>&1) || exit 1
      dpkg -x "$dir.tmp"/*.deb "$dir.tmp/x" && rm -f "$dir.tmp"/*.deb
      rm -rf "$dir" && mv "$dir.tmp/x" "$dir" && rm -rf "$dir.tmp" && echo "$1" >"$dir/.done"
    ) 9>"$cache/kexec/.$1.lock" || return 1
  fi
  echo "$dir"
}
dir_a=$(fetch "${pkgs[0]}") || skip "cannot download ${pkgs[0]} (offline?)"
dir_b=$(fetch "${pkgs[1]}") || skip "cannot download ${pkgs[1]} (offline?)"
rel_a=${pkgs[0]#linux-image-}
rel_b=${pkgs[1]#linux-image-}

work=$(mktemp -d /tmp/farm-kexec-e2e.XXXXXX)
coord_pid=
cleanup() {
  [ -f "$work/vm.pid" ] && kill -9 "$(cat "$work/vm.pid")" 2>/dev/null || true
  [ -n "$coord_pid" ] && kill "$coord_pid" 2>/dev/null && wait "$coord_pid" 2>/dev/null || true
  if [ "${KEEP:-}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  for f in "$work"/console.log "$work"/coordinator.log; do
    [ -f "$f" ] && { echo "--- tail of $f"; tail -n 60 "$f"; }
  done
  exit 1
}

# The repository the jobs bisect, at the same path inside the VM: c0 good, c1 has the bug, c2.
repo=$work/repo
git init -q "$repo"
git -C "$repo" -c user.email=t@e -c user.name=t commit -q --allow-empty -m c0
touch "$repo/bug" && git -C "$repo" add bug
git -C "$repo" -c user.email=t@e -c user.name=t commit -q -m c1
git -C "$repo" -c user.email=t@e -c user.name=t commit -q --allow-empty -m c2

# The VM's initramfs.
root=$work/root
mkdir -p "$root"/{bin,proc,sys,dev,state,tmp,etc,kernels,usr/bin,usr/sbin}
cp /usr/bin/busybox "$root/bin/busybox"
for applet in sh mount insmod ip uname cat mkdir echo sync ls test sleep env; do
  ln -sf busybox "$root/bin/$applet"
done
with_libs() {  # binary destination
  cp -L "$1" "$root$2"
  ldd "$1" | awk '$3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | while read -r lib; do
    cp -L --parents "$lib" "$root" 2>/dev/null || true
  done
}
strip -o "$work/farm-agent" "$bin/farm-agent"
with_libs "$work/farm-agent" /usr/bin/farm-agent
with_libs "$(command -v kexec)" /usr/sbin/kexec
for d in "$dir_a" "$dir_b"; do
  rel=$(basename "$d"/lib/modules/*)
  mkdir -p "$root/lib/modules/$rel"
  for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk \
           failover net_failover virtio_net; do
    f=$(find "$d/lib/modules/$rel" -name "$m.ko*" | head -n 1)
    [ -n "$f" ] || continue
    case "$f" in
      *.xz) xz -dc "$f" >"$root/lib/modules/$rel/$m.ko" ;;
      *) cp "$f" "$root/lib/modules/$rel/$m.ko" ;;
    esac
    echo "$m" >>"$root/lib/modules/$rel/order"
  done
done
cp "$dir_b/boot/vmlinuz-$rel_b" "$root/kernels/vmlinuz-B"
mkdir -p "$root$(dirname "$repo")" && cp -a "$repo" "$root$repo"
cat >"$root/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /lib/modules/$(uname -r)/order); do insmod /lib/modules/$(uname -r)/$m.ko; done
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
mount -t ext4 /dev/vda /state || echo "farm-vm: no state disk"
echo "farm-vm: $(uname -r) up, cmdline: $(cat /proc/cmdline)"
export HOME=/state/home PATH=/bin:/usr/bin:/usr/sbin
mkdir -p $HOME
/usr/bin/farm-agent --coordinator "$FARM_COORD" --workdir /state/agent --id metal --kexec \
  --kexec-initrd /state/initrd.img --kexec-boot-deadline 60 --kvm-probe-kernel "" \
  >/dev/console 2>&1
echo "farm-vm: farm-agent exited $?"
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.img"

# The state disk: the initrd again (kexec's --initrd), the agent's work directory.
mkdir -p "$work/state"
cp "$work/initrd.img" "$work/state/initrd.img"
mkfs.ext4 -q -F -d "$work/state" "$work/state.img" 512M

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/vm.sh" <<VM
#!/bin/bash
# start | restart: the VM in its default kernel ($rel_a). Used as the power command.
set -e
cd "$work"
if [ "\$1" = restart ] && [ -f vm.pid ]; then
  pid=\$(cat vm.pid)
  kill -9 "\$pid" 2>/dev/null || true
  for _ in \$(seq 100); do kill -0 "\$pid" 2>/dev/null || break; sleep 0.1; done
fi
echo "=== vm.sh \$1 \$(date +%T)" >>console.log
qemu-system-x86_64 -accel tcg -m 1024 -smp 1 -display none -monitor none -no-reboot \\
  -kernel "$dir_a/boot/vmlinuz-$rel_a" -initrd "$work/initrd.img" \\
  -append "console=ttyS0 panic=5 FARM_COORD=10.0.2.2:$port" \\
  -drive file="$work/state.img",if=virtio,format=raw \\
  -netdev user,id=n0 -device virtio-net-pci,netdev=n0 \\
  -chardev file,id=s0,path="$work/console.log",append=on -serial chardev:s0 \\
  -daemonize -pidfile "$work/vm.pid"
VM
chmod +x "$work/vm.sh"
printf 'agents:\n  metal: bash %s restart\n' "$work/vm.sh" >"$work/power.yaml"

"$bin/farm-coordinator" --listen "127.0.0.1:$port" --db "$work/farm.db" --lease 20 \
  --heartbeat 2 --power-commands "$work/power.yaml" --max-boot-deadline 120 \
  >"$work/coordinator.log" 2>&1 &
coord_pid=$!
export FARM_COORDINATOR=127.0.0.1:$port
farm() { "$bin/farm" "$@"; }
start=$(date +%s)
"$work/vm.sh" start
# The agent is up when the coordinator lists it (bounded: a TCG boot takes ~20-60 s here).
for _ in $(seq 180); do
  farm agents 2>/dev/null | grep -q metal && break
  sleep 1
done
farm agents 2>/dev/null | grep -q metal || fail "the VM's agent never connected"
echo "agent ready in $(($(date +%s) - start)) s (VM start to connected)"

# 1. A host kernel that boots.
test_cmd='uname -r; test ! -e bug'
job=$(farm submit --repo "$repo" --good HEAD~2 --bad HEAD --host-kernel /kernels/vmlinuz-B \
      -- sh -c "$test_cmd") || fail "submit: $job"
timeout 600 "$bin/farm" watch "$job" >"$work/watch1.log" 2>&1 || true
farm status "$job" >"$work/status1.log" 2>&1 || true
farm log "$job" HEAD~1 >"$work/log1.log" 2>&1 || true
cat "$work/status1.log"
grep -q "$rel_b" "$work/log1.log" || { cat "$work/log1.log"; fail "the test did not run under $rel_b"; }
grep -q "$(git -C "$repo" rev-parse HEAD~1)" "$work/status1.log" || fail "job 1 did not find c1"
grep -q "farm-vm: $rel_b up" "$work/console.log" || fail "the VM never booted $rel_b"
echo "PASS 1: kexec into $rel_b, test saw uname -r = $rel_b"
# bench: kexec-to-agent-ready, from the agent's "rebooting into" to its "resuming task" (both
# logged by the agent inside the VM, on the VM's clock).
stamp() { date -d "$(grep -m1 "$1" "$work/console.log" | cut -d' ' -f1 | tr T ' ')" +%s.%N; }
echo "kexec-to-agent-ready: $(echo "$(stamp 'kexec: resuming task') - $(stamp 'rebooting into')" \
  | bc) s"

# 2. A host kernel that panics (rdinit missing): power-cycled, "host kernel did not boot".
job2=$(farm submit --repo "$repo" --good HEAD~2 --bad HEAD --host-kernel /kernels/vmlinuz-B \
       --host-kernel-cmdline "rdinit=/nonexistent" -- sh -c "$test_cmd") || fail "submit 2: $job2"
timeout 600 "$bin/farm" watch "$job2" >"$work/watch2.log" 2>&1 || true
farm status "$job2" >"$work/status2.log" 2>&1 || true
cat "$work/status2.log"
# The agent, back in kernel A, reports the task (farm status shows the skip, the agent's log why).
grep -q "^  skip .* on metal  c1" "$work/status2.log" || fail "job 2's c1 is not a skip on metal"
grep -q "kexec: task .* ends under $rel_a: host kernel did not boot" "$work/console.log" ||
  fail "the agent did not report 'host kernel did not boot'"
grep -q "power-cycl" "$work/coordinator.log" || fail "the coordinator did not power-cycle the VM"
grep -c "=== vm.sh restart" "$work/console.log" | grep -qx 1 || fail "expected one power cycle"
echo "PASS 2: panicking host kernel power-cycled and reported as a skip"
echo "total $(($(date +%s) - start)) s"
