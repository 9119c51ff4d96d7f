# Emulated bare metal (issue 11), sourced by the kexec e2e scripts: TCG qemu VMs whose kernel is
# the "host kernel" run `farm-agent --kexec`. Each VM's root file system is one shared initramfs
# (the agent, kexec-tools and their libraries, busybox, the virtio modules of every kernel used);
# its state is its own ext4 disk image (the agent's work directory, the initrd again for `kexec
# --initrd`, and copies of the outer files the jobs name), so the agent's task survives kexecs and
# power cycles. Outer files keep their paths inside the VM: /state/outer/<path> is linked at <path>
# at boot. The VMs reach the coordinator on this machine's loopback through qemu's user network
# (10.0.2.2). Each VM's power command is its vm.sh restart: it kills the VM's qemu and starts it
# again in its default kernel, a real restart.
#
#   kx_init BIN_DIR NAME      tools (exit 77 without them), $work, $port, cleanup
#   kx_kernels N              newest N Debian cloud kernels, oldest first: kx_dirs, kx_rels
#   kx_tiny_guests DIR        three tinyconfig guest kernels DIR/guest-{A,B,C} (releases
#                             kx_guest_rels: 6.1.N-farmA < -farmB < -farmC), built once, cached
#   kx_initrd                 $work/initrd.img for the kernels of kx_dirs (KX_NESTED=1: with
#                             qemu-system-x86_64, its libraries and firmware, for nested guests)
#   kx_vm NAME KDIR PATH...   VM NAME booting kernel KDIR by default, with outer PATHs copied in
#                             (KX_CMDLINE: more of its command line, e.g. FARM_IDLE_RETURN=60s)
#   kx_coordinator NAME...    the coordinator on loopback, power commands for those VMs
#   kx_wait_agents NAME...    until the coordinator lists every agent (bounded)
#   kx_kexecs NAME            kexecs the agent of VM NAME started (its "rebooting into" lines)

skip() { echo "SKIPPED: $*"; exit 77; }

kx_init() {
  bin=$(cd "${1:?usage: $2 BIN_DIR}" && pwd)
  for tool in qemu-system-x86_64 busybox kexec mkfs.ext4 cpio apt-get dpkg git strip ldd python3; do
    command -v "$tool" >/dev/null 2>&1 || skip "$tool is missing (tests/setup-debian.sh installs it)"
  done
  if [ "$(id -u)" -eq 0 ]; then
    cache=${FARM_KERNEL_CACHE:-/var/cache/farm-test-kernels}
  else
    cache=${FARM_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/farm-test-kernels}
  fi
  mkdir -p "$cache/kexec" || skip "cannot write $cache"
  work=$(mktemp -d "/tmp/farm-$2.XXXXXX")
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  coord_pid=
  kx_vms=()
  trap kx_cleanup EXIT
  export FARM_COORDINATOR=127.0.0.1:$port
}

kx_cleanup() {
  for vm in "${kx_vms[@]}"; do
    [ -f "$work/$vm/vm.pid" ] && kill -9 "$(cat "$work/$vm/vm.pid")" 2>/dev/null || true
  done
  [ -n "$coord_pid" ] && kill "$coord_pid" 2>/dev/null && wait "$coord_pid" 2>/dev/null || true
  if [ "${KEEP:-}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}

fail() {
  echo "FAIL: $*"
  for f in "$work"/*/console.log "$work"/coordinator.log; do
    [ -f "$f" ] && { echo "--- tail of $f"; tail -n 60 "$f"; }
  done
  exit 1
}

farm() { "$bin/farm" "$@"; }

kx_fetch() {  # package -> directory with boot/ and lib/modules/
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

kx_kernels() {
  local n=$1 pkgs p d
  mapfile -t pkgs < <(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-cloud-amd64$' \
    | awk '{print $1}' | sort -V | tail -n "$n")
  [ "${#pkgs[@]}" -eq "$n" ] || skip "apt knows fewer than $n linux-image-6.1.0-N-cloud-amd64"
  kx_dirs=()
  kx_rels=()
  for p in "${pkgs[@]}"; do
    d=$(kx_fetch "$p") || skip "cannot download $p (offline?)"
    kx_dirs+=("$d")
    kx_rels+=("${p#linux-image-}")
  done
}

# Small guests that boot nested in affordable time: tinyconfig + tests/e2e/kernel/farm-tiny.config
# from the linux-6.1 fixture (make-linux-repo.sh, shared with kernel_bisect_test), built out of
# tree once under $cache/kexec/tiny-guest (flock'd, stamped); the three variants differ only in
# LOCALVERSION (an incremental relink each).
kx_tiny_guests() {
  local out=$1 dir=$cache/kexec/tiny-guest version=1 repo v
  local here
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  for tool in make gcc flex bison bc; do
    command -v "$tool" >/dev/null 2>&1 || skip "$tool is missing (tests/setup-debian.sh installs it)"
  done
  if [ "$(cat "$dir/.done" 2>/dev/null)" != "$version" ]; then
    repo=$(FARM_KERNEL_CACHE=$cache "$here/../kernel/make-linux-repo.sh" | sed -n 's/^repo=//p') ||
      skip "no linux-6.1 fixture (tests/e2e/kernel/make-linux-repo.sh)"
    [ -n "$repo" ] || skip "no linux-6.1 fixture (tests/e2e/kernel/make-linux-repo.sh)"
    (
      flock 9
      [ "$(cat "$dir/.done" 2>/dev/null)" = "$version" ] && exit 0
      rm -rf "$dir" && mkdir -p "$dir/build"
      # Read-only use of the fixture's checkout (flock'd against make-linux-repo.sh rebuilding it).
      exec 8>"$cache/.linux-6.1.lock" && flock -s 8
      make -s -C "$repo" O="$dir/build" tinyconfig >/dev/null
      cat "$here/../kernel/farm-tiny.config" >>"$dir/build/.config"
      make -s -C "$repo" O="$dir/build" olddefconfig >"$dir/config.log" 2>&1
      for v in A B C; do
        make -s -C "$repo" O="$dir/build" -j"$(nproc)" LOCALVERSION="-farm$v" bzImage >/dev/null
        cp "$dir/build/arch/x86/boot/bzImage" "$dir/guest-$v"
        make -s -C "$repo" O="$dir/build" LOCALVERSION="-farm$v" kernelrelease >"$dir/guest-$v.rel"
      done
      echo "$version" >"$dir/.done"
    ) 9>"$cache/kexec/.tiny-guest.lock" || fail "building the tiny guest kernels failed"
  fi
  mkdir -p "$out"
  kx_guest_rels=()
  for v in A B C; do
    cp "$dir/guest-$v" "$out/guest-$v"
    kx_guest_rels+=("$(cat "$dir/guest-$v.rel")")
  done
}

# $work/qemu: qemu-system-x86_64 for guests nested in the VMs, as kx_vm puts it on each state disk
# (/state/qemu; not in the initramfs, which every boot and kexec unpacks again): the binary, the
# libraries ldd names, its TCG module and the firmware a -kernel boot opens (strace -e openat of a
# bzImage and a PVH boot on this machine: SeaBIOS, linuxboot_dma/pvh and kvmvapic option ROMs; and
# qboot for -machine microvm, which boots a nested guest 1.4-1.6x faster than SeaBIOS does).
# qemu finds its module and data directories relative to its own path.
kx_nested_qemu() {
  local q=$work/qemu exe lib f
  exe=$(readlink -f "$(command -v qemu-system-x86_64)")
  mkdir -p "$q/usr/bin" "$q/lib"
  cp "$exe" "$q/usr/bin/qemu-system-x86_64"
  for f in "$exe" /usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so; do
    [ -f "$f" ] || fail "no $f (qemu-system-x86)"
    ldd "$f" | awk '$3 ~ /^\// {print $3}' | while read -r lib; do cp -L "$lib" "$q/lib/"; done
  done
  cp -L --parents /usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so "$q"
  for f in /usr/share/seabios/bios-256k.bin /usr/share/qemu/linuxboot_dma.bin \
           /usr/share/qemu/pvh.bin /usr/share/qemu/kvmvapic.bin /usr/share/qemu/bios-microvm.bin; do
    [ -f "$f" ] || fail "no $f (qemu-system-x86, seabios)"
    cp -L --parents "$f" "$q"
  done
}

kx_initrd() {
  local root=$work/root d rel m f applet
  mkdir -p "$root"/{bin,proc,sys,dev,state,tmp,etc,usr/bin,usr/sbin}
  cp /usr/bin/busybox "$root/bin/busybox"
  for applet in sh mount insmod ip uname cat mkdir echo sync ls test sleep env ln dirname \
                strings grep cut sha256sum head printf chmod; do
    ln -sf busybox "$root/bin/$applet"
  done
  with_libs() {  # binary destination
    cp -L "$1" "$root$2"
    ldd "$1" | awk '$3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | while read -r lib; do
      cp -L --parents "$lib" "$root" 2>/dev/null || true
    done
  }
  [ "${KX_NESTED:-}" = 1 ] && kx_nested_qemu
  strip -o "$work/farm-agent" "$bin/farm-agent"
  with_libs "$work/farm-agent" /usr/bin/farm-agent
  with_libs "$(command -v kexec)" /usr/sbin/kexec
  for d in "${kx_dirs[@]}"; do
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
  # FARM_COORD, FARM_ID and the optional FARM_IDLE_RETURN, FARM_DEFAULT_KERNEL come from the
  # kernel command line, which the agent's kexecs keep.
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
for p in $(cat /state/outer.list 2>/dev/null); do
  mkdir -p "$(dirname "$p")" && ln -s "/state/outer$p" "$p"
done
if [ -x /state/qemu/usr/bin/qemu-system-x86_64 ]; then  # for nested guests (kx_nested_qemu)
  printf '#!/bin/sh\nLD_LIBRARY_PATH=/state/qemu/lib exec /state/qemu/usr/bin/qemu-system-x86_64 "$@"\n' \
    >/usr/bin/qemu-system-x86_64
  chmod +x /usr/bin/qemu-system-x86_64
fi
echo "farm-vm: $(uname -r) up, cmdline: $(cat /proc/cmdline)"
export HOME=/state/home PATH=/bin:/usr/bin:/usr/sbin
mkdir -p $HOME
/usr/bin/farm-agent --coordinator "$FARM_COORD" --workdir /state/agent --id "$FARM_ID" --kexec \
  --kexec-initrd /state/initrd.img --kexec-boot-deadline 60 --kvm-probe-kernel "" \
  ${FARM_IDLE_RETURN:+--idle-return $FARM_IDLE_RETURN} \
  ${FARM_DEFAULT_KERNEL:+--kexec-default-kernel $FARM_DEFAULT_KERNEL} >/dev/console 2>&1
echo "farm-vm: farm-agent exited $?"
INIT
  chmod +x "$root/init"
  (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.img"
}

kx_vm() {
  local name=$1 kdir=$2 p
  shift 2
  local vmdir=$work/$name
  local rel
  rel=$(basename "$kdir"/lib/modules/*)
  mkdir -p "$vmdir/state/outer"
  cp "$work/initrd.img" "$vmdir/state/initrd.img"
  [ -d "$work/qemu" ] && cp -a "$work/qemu" "$vmdir/state/qemu"
  : >"$vmdir/state/outer.list"
  for p in "$@"; do
    mkdir -p "$vmdir/state/outer$(dirname "$p")"
    cp -a "$p" "$vmdir/state/outer$p"
    echo "$p" >>"$vmdir/state/outer.list"
  done
  mkfs.ext4 -q -F -d "$vmdir/state" "$vmdir/state.img" 1G
  rm -rf "$vmdir/state"
  kx_vms+=("$name")
  cat >"$vmdir/vm.sh" <<VM
#!/bin/bash
# start | restart: the VM in its default kernel ($rel). Used as the power command.
set -e
cd "$vmdir"
if [ "\$1" = restart ] && [ -f vm.pid ]; then
  pid=\$(cat vm.pid)
  kill -9 "\$pid" 2>/dev/null || true
  for _ in \$(seq 100); do kill -0 "\$pid" 2>/dev/null || break; sleep 0.1; done
fi
echo "=== vm.sh \$1 \$(date +%T)" >>console.log
qemu-system-x86_64 -accel tcg -m 1024 -smp 1 -display none -monitor none -no-reboot \\
  -kernel "$kdir/boot/vmlinuz-$rel" -initrd "$work/initrd.img" \\
  -append "console=ttyS0 panic=5 FARM_COORD=10.0.2.2:$port FARM_ID=$name ${KX_CMDLINE:-}" \\
  -drive file="$vmdir/state.img",if=virtio,format=raw \\
  -netdev user,id=n0 -device virtio-net-pci,netdev=n0 \\
  -chardev file,id=s0,path="$vmdir/console.log",append=on -serial chardev:s0 \\
  -daemonize -pidfile "$vmdir/vm.pid"
VM
  chmod +x "$vmdir/vm.sh"
}

kx_coordinator() {
  local vm
  echo "agents:" >"$work/power.yaml"
  for vm in "$@"; do printf '  %s: bash %s restart\n' "$vm" "$work/$vm/vm.sh" >>"$work/power.yaml"; done
  "$bin/farm-coordinator" --listen "127.0.0.1:$port" --db "$work/farm.db" --lease 20 \
    --heartbeat 2 --power-commands "$work/power.yaml" --max-boot-deadline 120 \
    >"$work/coordinator.log" 2>&1 &
  coord_pid=$!
}

# The agents are up when the coordinator lists them (bounded: a TCG boot takes ~20-60 s here,
# more with several VMs on 2 cores).
kx_wait_agents() {
  local vm _ missing
  for _ in $(seq 300); do
    missing=
    for vm in "$@"; do farm agents 2>/dev/null | grep -qw -- "$vm" || missing=$vm; done
    [ -z "$missing" ] && return 0
    sleep 1
  done
  fail "the agent of VM $missing never connected"
}

kx_kexecs() { grep -c "kexec: task .*: rebooting into" "$work/$1/console.log" || true; }
