#!/bin/bash
# Boot figures of agent/boot on this machine: boot-to-verdict of Debian's cloud kernel under TCG
# (bzImage, and the ELF vmlinux through PVH), initramfs build time (cold and warm), KVM probe.
#
#   tests/e2e/measure-boot.sh [BUILD_DIR] [RUNS]     (default build, 5 runs)
#
# Wall-clock figures depend on the machine's load (printed with them); the CPU time of each boot
# (qemu under TCG is CPU-bound) is close to what an idle machine's wall clock would show.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build}
runs=${2:-5}
tool=$build/bin/farm-boot-tool
[ -x "$tool" ] || { echo "measure-boot.sh: build farm-boot-tool first (ninja -C $build farm-boot-tool)" >&2; exit 1; }
kernel=$("$here/fetch-kernel.sh")
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
printf '#!/bin/sh\nexit 0\n' >"$dir/pass.sh"

field() { sed -n "s/.*$1 \\([0-9.]*\\)s.*/\\1/p" | head -n 1; }
# CPU seconds used by this shell's children so far (bash `times`, second line: user and system).
# `times` must run in this shell, not in a $(...) subshell.
child_cpu() {
  times >"$dir/times"
  tail -n 1 "$dir/times" | awk '{ for (i = 1; i <= 2; i++) { split($i, t, "m"); s += t[1] * 60 + t[2] } printf "%.2f", s }'
}
stats() { sort -n | awk '{a[NR]=$1} END {printf "median %.2fs, min %.2fs, max %.2fs (%d runs)", a[int((NR+1)/2)], a[1], a[NR], NR}'; }

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
out=$("$tool" --kernel "$kernel" --test "$dir/pass.sh" --accel tcg --work-dir "$dir/cold")
ms() { sed -n 's/.*initramfs \([0-9.]*\)ms.*/\1/p' | head -n 1; }
echo "initramfs build, cold (busybox part built): $(echo "$out" | ms) ms"
out=$("$tool" --kernel "$kernel" --test "$dir/pass.sh" --accel tcg --work-dir "$dir/cold")
echo "initramfs build, warm: $(echo "$out" | ms) ms"
out=$("$tool" --kernel "$kernel" --test "$dir/pass.sh" --accel auto --work-dir "$dir/cold")
echo "accel auto: $(echo "$out" | sed -n 's/.*outcome: .*, \([a-z]*\)$/\1/p')$(echo "$out" | sed -n 's/^  accel: tcg (\(.*\))$/ -- \1/p')"
for k in "$kernel" "${kernel%/*}/vmlinux"; do
  [ -r "$k" ] || continue
  times=""
  cpus=""
  for _ in $(seq "$runs"); do
    rc=0
    child_cpu >"$dir/before"
    out=$("$tool" --kernel "$k" --test "$dir/pass.sh" --accel tcg --work-dir "$dir/cold") || rc=$?
    child_cpu >"$dir/after"
    cpus="$cpus $(echo "$(cat "$dir/after") - $(cat "$dir/before")" | bc)"
    if [ "$rc" -ne 0 ]; then
      echo "unexpected exit $rc:" >&2
      echo "$out" | sed -n '/^farm boot:/,$p' >&2
      continue
    fi
    times="$times $(echo "$out" | field "boot to verdict")"
  done
  echo "boot to verdict, TCG, ${k##*/}: $(echo $times | tr ' ' '\n' | stats)"
  # qemu under TCG is CPU-bound: its CPU time is about the wall time on an idle machine.
  echo "  CPU time of those boots (qemu + farm): $(echo $cpus | tr ' ' '\n' | stats)"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
