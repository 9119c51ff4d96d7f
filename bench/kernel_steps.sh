#!/bin/bash
# The kernel path, step by step, side by side in one run: the seed's hand-written loop (`make
# -jN bzImage` in a plain checkout, then `qemu ... | grep` for a marker printed by the test running
# as init) against the farm's task (BuildKernel, run by farm-kernel-build, and the farm's boot,
# run by farm-boot-tool). Same tree, same configuration (tinyconfig + farm-tiny.config), same
# test, same -j. Rows:
#   cold build         empty build directory (and, for the farm, an empty ccache): config + build
#   incremental        the next commit changes one .c file (kernel/sys.c): build only for the
#                      loop (its .config stays), the farm's whole step (config check + build)
#   warm clean build   a fresh checkout and an empty build directory, ccache warm (the loop has
#                      no ccache: it compiles everything again)
#   boot-to-verdict    qemu under TCG until the verdict is known (the loop: until qemu exits after
#                      grep saw the marker; the farm: until farm-boot-tool returns): the tinyconfig
#                      kernel at a good and at a bad commit, and Debian's cloud kernel. The loop
#                      boots the bzImage; the farm boots as an agent's task does: a kernel it built
#                      through the PVH entry of the build directory's vmlinux, a prebuilt bzImage
#                      through the PVH entry of its ELF, unpacked once per image ("first boot"
#                      rows: unpacked at every boot)
# Prints a Markdown table (bench/README.md keeps the figures).
# Usage: bench/kernel_steps.sh [CMAKE_BUILD_DIR [boot]]   (default: ./build; needs
#        farm-kernel-build and farm-boot-tool built there). JOBS=N overrides -j (default: nproc);
#        BOOTS=N boots per boot row (default 5).
#   boot   the boot-to-verdict rows only: the farm's images at the good and bad commits (built here,
#          or GOOD_IMAGE=... BAD_IMAGE=... given: bzImages, in their build directories
#          (DIR/arch/x86/boot/bzImage beside DIR/vmlinux) for the farm to find the ELF) booted by
#          both the loop and the farm.
#          CCACHE_REMOTE=URL gives the builds a ccache remote storage (e.g. the kernel bisect
#          test's file:///var/cache/farm-test-kernels/ccache-shared).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src_root=$here/..
build=${1:-$src_root/build}
mode=${2:-all}
case "$mode" in all|boot) ;; *) echo "usage: $0 [CMAKE_BUILD_DIR [boot]]" >&2; exit 2 ;; esac
jobs=${JOBS:-$(nproc)}
kbuild=$build/bin/farm-kernel-build
kboot=$build/bin/farm-boot-tool
fragment=$src_root/tests/e2e/kernel/farm-tiny.config
test_c=$src_root/tests/e2e/kernel/hostname-test.c
needed=("$kboot")
[ "$mode" = boot ] && [ -n "${GOOD_IMAGE:-}" ] && [ -n "${BAD_IMAGE:-}" ] || needed+=("$kbuild")
for f in "${needed[@]}"; do
  [ -x "$f" ] || { echo "missing $f: ninja -C $build farm-kernel-build farm-boot-tool" >&2; exit 2; }
done
for t in make gcc bison flex bc ccache qemu-system-x86_64 cpio git; do
  command -v "$t" >/dev/null || { echo "missing $t (bash tests/setup-debian.sh)" >&2; exit 2; }
done

eval "$("$src_root/tests/e2e/kernel/make-linux-repo.sh" | sed 's/^/fx_/')"
good=$(git -C "$fx_repo" rev-parse "$fx_culprit^")
bad=$fx_culprit
work=$(mktemp -d "${TMPDIR:-/tmp}/farm-kbench.XXXXXX")
trap 'rm -rf "$work"' EXIT
# The loop must not get ccache by accident (Debian's /usr/lib/ccache in PATH).
plain_path=$(tr ':' '\n' <<<"$PATH" | grep -v ccache | paste -sd:)

# The farm's image as its build left it: DIR/arch/x86/boot/bzImage and DIR/vmlinux (mtimes kept:
# the farm boots vmlinux only when it is not newer than the bzImage).
keep_farm_image() {  # BUILD_DIR_OR_BZIMAGE NAME
  local src=$1 dir=$work/$2
  mkdir -p "$dir/arch/x86/boot"
  case "$src" in
    */arch/x86/boot/bzImage)
      cp -p "$src" "$dir/arch/x86/boot/bzImage"
      [ -f "${src%/arch/x86/boot/bzImage}/vmlinux" ] && cp -p "${src%/arch/x86/boot/bzImage}/vmlinux" "$dir/vmlinux"
      ;;
    *) cp -p "$src" "$dir/arch/x86/boot/bzImage" ;;
  esac
  true
}

rows=()
row() { rows+=("| $1 | $2 | $3 | $4 |"); printf '%-38s loop %-22s farm %-22s %s\n' "$1" "$2" "$3" "$4" >&2; }

# Wall and CPU (user+sys of the command and everything it waited for) seconds of a command,
# accumulated into the named pair of variables: timed WALLVAR CPUVAR cmd...
timed() {
  local -n _wall=$1 _cpu=$2
  shift 2
  local out rc=0
  out=$(mktemp "$work/time.XXXXXX")
  /usr/bin/time -f '%e %U %S' -o "$out" "$@" || rc=$?
  read -r w u s <"$out"
  _wall=$(echo "${_wall:-0} + $w" | bc)
  _cpu=$(echo "${_cpu:-0} + $u + $s" | bc)
  return $rc
}
fmt() { printf '%.1fs (CPU %.0fs)' "$1" "$2"; }

# The farm's step: farm-kernel-build, whose last line has the ccache counts.
farm_build() {  # slot log -> sets f_wall f_cpu f_hits f_misses
  local line
  f_wall=0 f_cpu=0
  PATH=$plain_path timed f_wall f_cpu nice -n 10 "$kbuild" --source "$work/farm/slots/$1/src" \
    --build "$work/farm/slots/$1/build" --ccache-dir "$work/ccache" \
    ${CCACHE_REMOTE:+--ccache-remote-storage "$CCACHE_REMOTE"} \
    --config "tinyconfig+$fragment" -j "$jobs" >"$work/$2.log" 2>&1 ||
    { tail -30 "$work/$2.log" >&2; exit 1; }
  line=$(grep '^farm-kernel-build: ' "$work/$2.log" | tail -1)
  f_hits=$(sed -n 's/.* ccache_hits=\([0-9-]*\).*/\1/p' <<<"$line")
  f_misses=$(sed -n 's/.* ccache_misses=\([0-9-]*\).*/\1/p' <<<"$line")
}
hit_rate() {
  if [ $(($1 + $2)) -gt 0 ]; then echo "$((100 * $1 / ($1 + $2)))% ($1 hits / $2 misses)"; else echo "-"; fi
}

# The loop's steps, in its plain checkout, without ccache.
loop_make() {  # -> adds to l_wall l_cpu
  PATH=$plain_path timed l_wall l_cpu nice -n 10 make -C "$work/loop" -j"$jobs" bzImage \
    >>"$work/loop.log" 2>&1 || { tail -30 "$work/loop.log" >&2; exit 1; }
}
loop_config() {  # -> adds to l_wall l_cpu
  { PATH=$plain_path timed l_wall l_cpu make -C "$work/loop" tinyconfig &&
    timed l_wall l_cpu "$work/loop/scripts/kconfig/merge_config.sh" -m -O "$work/loop" \
      "$work/loop/.config" "$fragment" &&
    PATH=$plain_path timed l_wall l_cpu make -C "$work/loop" olddefconfig; } >>"$work/loop.log" 2>&1 ||
    { tail -30 "$work/loop.log" >&2; exit 1; }
}

echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), -j$jobs; tree $fx_repo" >&2
mkdir -p "$work/farm/slots/0" "$work/farm/slots/1" "$work/ccache"
if [ "$mode" = boot ]; then
  # The farm's images, booted by both: the loop's would be the same kernels (same tree, same
  # configuration; the boot rows compare what happens after the build).
  if [ -n "${GOOD_IMAGE:-}" ] && [ -n "${BAD_IMAGE:-}" ]; then
    keep_farm_image "$GOOD_IMAGE" farm-good
    keep_farm_image "$BAD_IMAGE" farm-bad
  else
    git clone -q --shared "$fx_repo" "$work/farm/slots/0/src"
    git -C "$work/farm/slots/0/src" checkout -q "$good"
    farm_build 0 farm-good
    keep_farm_image "$work/farm/slots/0/build/arch/x86/boot/bzImage" farm-good
    git -C "$work/farm/slots/0/src" checkout -q "$bad"
    farm_build 0 farm-bad
    keep_farm_image "$work/farm/slots/0/build/arch/x86/boot/bzImage" farm-bad
  fi
  cp "$work/farm-good/arch/x86/boot/bzImage" "$work/loop-good.bzImage"
  cp "$work/farm-bad/arch/x86/boot/bzImage" "$work/loop-bad.bzImage"
  git -C "$fx_repo" show "$good:usr/gen_init_cpio.c" >"$work/gen_init_cpio.c"
  gcc -O2 -o "$work/gen_init_cpio" "$work/gen_init_cpio.c"
  gen_init_cpio=$work/gen_init_cpio
else  # the build rows (left unindented: most of the script)
git clone -q --shared "$fx_repo" "$work/loop"
git -C "$work/loop" checkout -q "$good"
git clone -q --shared "$fx_repo" "$work/farm/slots/0/src"
git -C "$work/farm/slots/0/src" checkout -q "$good"

# 1. Cold.
l_wall=0 l_cpu=0
loop_config
loop_make
farm_build 0 farm-cold
row "cold build (config + bzImage)" "$(fmt "$l_wall" "$l_cpu")" "$(fmt "$f_wall" "$f_cpu")" \
  "farm ccache (empty): $(hit_rate "$f_hits" "$f_misses")"
cp "$work/loop/arch/x86/boot/bzImage" "$work/loop-good.bzImage"
keep_farm_image "$work/farm/slots/0/build/arch/x86/boot/bzImage" farm-good

# 2. One-file incremental step: good -> bad (kernel/sys.c).
git -C "$work/loop" checkout -q "$bad"
git -C "$work/farm/slots/0/src" checkout -q "$bad"
l_wall=0 l_cpu=0
loop_make
farm_build 0 farm-incremental
row "incremental step (one .c file)" "$(fmt "$l_wall" "$l_cpu")" "$(fmt "$f_wall" "$f_cpu")" \
  "farm ccache: $(hit_rate "$f_hits" "$f_misses")"
cp "$work/loop/arch/x86/boot/bzImage" "$work/loop-bad.bzImage"
keep_farm_image "$work/farm/slots/0/build/arch/x86/boot/bzImage" farm-bad

# 3. Clean build directory, warm ccache: a second slot (fresh worktree, empty build dir) at the
# good commit; the loop starts again from mrproper.
git clone -q --shared "$fx_repo" "$work/farm/slots/1/src"
git -C "$work/farm/slots/1/src" checkout -q "$good"
git -C "$work/loop" checkout -q "$good"
make -s -C "$work/loop" mrproper
l_wall=0 l_cpu=0
loop_config
loop_make
farm_build 1 farm-warm
row "warm clean build (fresh build dir)" "$(fmt "$l_wall" "$l_cpu")" "$(fmt "$f_wall" "$f_cpu")" \
  "farm ccache (warm, other slot): $(hit_rate "$f_hits" "$f_misses"); the loop has no ccache"
same=$(cmp -s "$work/farm-good/arch/x86/boot/bzImage" "$work/farm/slots/1/build/arch/x86/boot/bzImage" && echo yes || echo no)
echo "farm: slot 1's image equals slot 0's at the same commit: $same" >&2
gen_init_cpio=$work/loop/usr/gen_init_cpio
fi

# 4. Boot to verdict, TCG. The loop's initramfs: the test itself as /init.
# gen_init_cpio (built with the kernel) makes /dev/console without root.
gcc -static -O2 -o "$work/hostname-test" "$test_c"
printf 'dir /dev 0755 0 0\nnod /dev/console 0600 0 0 c 5 1\nfile /init %s 0755 0 0\n' \
  "$work/hostname-test" >"$work/initrd.list"
"$gen_init_cpio" "$work/initrd.list" >"$work/loop.cpio"
# A boot's wall and CPU seconds (user + sys of everything it ran: qemu, and the farm's tool):
# under other users' load the CPU time moves much less than the wall time.
boot_times() {  # outfile cmd... -> "wall cpu" in outfile's last line; returns cmd's status
  local f=$1 rc=0
  shift
  /usr/bin/time -f '%e %U %S' -o "$f" "$@" || rc=$?
  tail -n 1 "$f" | awk '{printf "%s %.2f\n", $1, $2 + $3}' >"$f.t"
  return $rc
}
loop_boot() {  # kernel -> "wall cpu verdict"; until qemu exits (the test, as init, exits; the
  # kernel panics; panic=-1 and -no-reboot end qemu)
  local out
  boot_times "$work/loop.time" sh -c 'timeout 120 qemu-system-x86_64 -nodefaults -nographic \
    -no-reboot -accel tcg -m 512 -serial stdio -kernel "$1" -initrd "$2" \
    -append "console=ttyS0 panic=-1" 2>&1 | grep -m1 -a "FARM-TEST:" >"$3"; true' \
    sh "$1" "$work/loop.cpio" "$work/loop.out"
  out=$(cat "$work/loop.out")
  out=${out#FARM-TEST: }
  echo "$(cat "$work/loop.time.t") ${out:-none}"
}
farm_boot() {  # kernel -> "wall cpu verdict"; until farm-boot-tool returns
  local rc=0 v
  # A first boot of the image: nothing unpacked from it yet.
  [ -n "${FIRST_BOOT:-}" ] && rm -rf "$work/boot-cache/kernels"
  boot_times "$work/farm.time" "$kboot" --kernel "$1" --test "$test_c" --accel tcg \
    --work-dir "$work/boot-cache" --console "$work/farm-console.log" \
    >"$work/farm-boot.log" 2>&1 || rc=$?
  case $rc in 0) v=PASS ;; 1) v=FAIL ;; *) v="exit-$rc" ;; esac
  echo "$(cat "$work/farm.time.t") $v"
}
median() { grep . | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
# Warm the farm's caches (the compiled test) once: an agent does it once too.
farm_boot "$work/farm-good/arch/x86/boot/bzImage" >/dev/null
boots=${BOOTS:-5}
boot_row() {  # label loop-kernel farm-kernel; BOOTS runs each, interleaved, medians
  local i l f lt="" lc="" ft="" fc="" lv fv
  for i in $(seq "$boots"); do
    l=$(loop_boot "$2")
    f=$(farm_boot "$3")
    read -r lw lcpu lv <<<"$l"
    read -r fw fcpu fv <<<"$f"
    lt+="$lw"$'\n' lc+="$lcpu"$'\n' ft+="$fw"$'\n' fc+="$fcpu"$'\n'
  done
  row "$1" "$(printf '%.2fs (CPU %.2fs) (%s)' "$(median <<<"$lt")" "$(median <<<"$lc")" "$lv")" \
    "$(printf '%.2fs (CPU %.2fs) (%s)' "$(median <<<"$ft")" "$(median <<<"$fc")" "$fv")" \
    "TCG, median of $boots"
}
boot_row "boot-to-verdict, tinyconfig, good" "$work/loop-good.bzImage" \
  "$work/farm-good/arch/x86/boot/bzImage"
boot_row "boot-to-verdict, tinyconfig, bad" "$work/loop-bad.bzImage" \
  "$work/farm-bad/arch/x86/boot/bzImage"
if cloud=$("$src_root/tests/e2e/fetch-kernel.sh" 2>/dev/null); then
  boot_row "boot-to-verdict, Debian cloud kernel" "$cloud" "$cloud"
  FIRST_BOOT=1 boot_row "boot-to-verdict, Debian cloud kernel, first boot" "$cloud" "$cloud"
else
  echo "no Debian cloud kernel (tests/e2e/fetch-kernel.sh failed): row left out" >&2
fi

echo
echo "| step | hand-written loop | farm task | notes |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "$(nproc) CPUs, -j$jobs, load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
