#!/bin/bash
# Host x guest jobs on real kexec agents in two emulated hosts (issue 11; tests/e2e/kexec/lib.sh
# builds the VMs), one coordinator on loopback. Four Debian cloud kernels: the oldest is both VMs'
# default kernel, the three newest are host-A < host-B < host-C and, as image files, guest-A <
# guest-B < guest-C. A cell's test runs on the host kernel and reads `uname -r` there, and the
# guest's release from the cell's bzImage (the guest is not booted: a nested TCG boot costs
# ~90 s, see bench/README.md); it is bad only when host >= host-B and guest >= guest-C.
#
#   1. farm matrix, 3 hosts x 3 guests: the printed table is right in every cell, every cell's
#      log (farm log) names the host release it ran under, and each agent kexeced exactly once
#      per distinct host kernel it ran, not once per cell;
#      the same matrix again reuses all 9 verdicts;
#   2. farm bisect --host-kernels --guest-kernels over the same images: the farm names host-B and
#      guest-C and says the change needs both, testing fewer cells than the grid;
#   3. the idle agents kexec back into their default kernel (--idle-return 60s).
#
# usage: matrix_e2e.sh BIN_DIR    exits 77 (skipped) without qemu, kexec-tools or the kernels.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
kx_init "${1:-}" kexec-matrix-e2e
kx_kernels 4
names=(A B C)
mkdir -p "$work/hosts" "$work/guests"
hosts=() guests=()
for i in 0 1 2; do
  img=${kx_dirs[i + 1]}/boot/vmlinuz-${kx_rels[i + 1]}
  cp "$img" "$work/hosts/host-${names[i]}" && hosts+=("$work/hosts/host-${names[i]}")
  cp "$img" "$work/guests/guest-${names[i]}" && guests+=("$work/guests/guest-${names[i]}")
done
num() { local r=${1#6.1.0-}; echo "${r%%-*}"; }  # 6.1.0-56-cloud-amd64 -> 56
planted_host=$(num "${kx_rels[2]}")
planted_guest=$(num "${kx_rels[3]}")
cell_test() {  # $1: a word that keeps the two jobs' recipes (and so their reuse) apart
  echo "echo $1; h=\$(uname -r); g=\$(strings bzImage | grep -m1 -o '^6\.1\.0-[0-9]*-cloud-amd64');"\
       "echo \"cell host \$h guest \$g\"; h=\${h#6.1.0-}; g=\${g#6.1.0-};"\
       "[ \"\${h%%-*}\" -lt $planted_host ] || [ \"\${g%%-*}\" -lt $planted_guest ]"
}

# The cells repository the jobs name must be on the VMs' disks at the same path: the client makes
# it (deterministically) before it connects, so a first run against no coordinator makes it.
export XDG_CACHE_HOME=$work/cache
FARM_COORDINATOR=127.0.0.1:1 timeout 60 "$bin/farm" matrix --host-kernels "${hosts[@]}" \
  --guest-kernels "${guests[@]}" -- true >/dev/null 2>&1 || true
[ -d "$work/cache/farm/matrix-cells" ] || fail "farm matrix made no cells repository"

mkdir -p "$work/default" && cp "${kx_dirs[0]}/boot/vmlinuz-${kx_rels[0]}" "$work/default/vmlinuz"
kx_initrd
# Long enough that an agent waiting for the other's verdict in the bisect does not leave.
KX_CMDLINE="FARM_IDLE_RETURN=60s FARM_DEFAULT_KERNEL=$work/default/vmlinuz"
kx_vm metal1 "${kx_dirs[0]}" "$work/hosts" "$work/cache" "$work/default"
kx_vm metal2 "${kx_dirs[0]}" "$work/hosts" "$work/cache" "$work/default"
kx_coordinator metal1 metal2
start=$(date +%s)
"$work/metal1/vm.sh" start
"$work/metal2/vm.sh" start
kx_wait_agents metal1 metal2
echo "agents ready in $(($(date +%s) - start)) s (VM start to connected)"

# 1. The matrix.
t1=$(date +%s)
timeout 900 "$bin/farm" matrix --host-kernels "${hosts[@]}" --guest-kernels "${guests[@]}" \
  --timeout 300 -- sh -c "$(cell_test matrix)" >"$work/matrix.out" 2>&1 || { cat "$work/matrix.out"; fail "farm matrix failed"; }
matrix_s=$(($(date +%s) - t1))
cat "$work/matrix.out"
grep -q "matrix of 3 host x 3 guest kernels: 9 of 9 cells tested" "$work/matrix.out" ||
  fail "the matrix did not test its 9 cells"
expected=$(  # columns as wide as their names ("guest-A"), each verdict fits
  printf '%-12s  %-7s  %-7s  %-7s\n' 'host \ guest' guest-A guest-B guest-C
  for h in 0 1 2; do
    printf '%-12s' "host-${names[h]}"
    for g in 0 1 2; do
      v=good
      [ "$h" -ge 1 ] && [ "$g" -ge 2 ] && v=bad
      printf '  %-7s' "$v"
    done
    printf '\n'
  done | sed 's/ *$//')
grep -qF -- "$expected" "$work/matrix.out" || { echo "expected:"; echo "$expected"; fail "wrong table"; }
# Each cell's line: "  SHA  host host-X x guest guest-Y: VERDICT on AGENT".
cells=$(grep -E '^  [0-9a-f]{12}  host host-[ABC] x guest guest-[ABC]: (good|bad) on metal[12]$' \
  "$work/matrix.out") || fail "no cell lines"
[ "$(echo "$cells" | wc -l)" -eq 9 ] || fail "expected 9 cell lines"
job=1  # the coordinator's database is new
while read -r sha _ host _ _ guest _ _ agent; do
  h=${host#host-}
  for i in 0 1 2; do [ "${names[i]}" = "$h" ] && rel=${kx_rels[i + 1]}; done
  g=${guest%:}
  for i in 0 1 2; do [ "${names[i]}" = "${g#guest-}" ] && grel=${kx_rels[i + 1]}; done
  farm log "$job" "$sha" >"$work/cell.log" 2>&1 || { cat "$work/cell.log"; fail "farm log $job $sha"; }
  grep -q "cell host $rel guest $grel" "$work/cell.log" ||
    { cat "$work/cell.log"; fail "cell $sha's log does not say host $rel guest $grel"; }
done <<<"$cells"
echo "PASS 1a: table right in all 9 cells, every cell's log names its host and guest releases"
total_kexecs=0
for agent in metal1 metal2; do
  distinct=$(echo "$cells" | awk -v a="$agent" '$NF == a {print $3}' | sort -u | wc -l)
  ran=$(echo "$cells" | awk -v a="$agent" '$NF == a' | wc -l)
  kexecs=$(kx_kexecs "$agent")
  echo "$agent: $ran cells, $distinct distinct host kernels, $kexecs kexecs"
  [ "$kexecs" -eq "$distinct" ] || fail "$agent kexeced $kexecs times for $distinct host kernels"
  total_kexecs=$((total_kexecs + kexecs))
done
echo "PASS 1b: kexecs = distinct host kernels per agent ($total_kexecs kexecs for 9 cells," \
  "matrix wall time $matrix_s s)"
# The same images and test again: every cell is reused (same digests, same recipe), none runs.
timeout 300 "$bin/farm" matrix --host-kernels "${hosts[@]}" --guest-kernels "${guests[@]}" \
  --timeout 300 -- sh -c "$(cell_test matrix)" >"$work/again.out" 2>&1 || { cat "$work/again.out"; fail "farm matrix again failed"; }
grep -q "9 verdicts reused" "$work/again.out" || { cat "$work/again.out"; fail "the cells were not reused"; }
[ "$(($(kx_kexecs metal1) + $(kx_kexecs metal2)))" -eq "$total_kexecs" ] || fail "reused cells kexeced"
echo "PASS 1c: the same matrix again reused its 9 verdicts"

# 2. The two-dimensional bisect over the same images (other recipe: nothing reused).
t2=$(date +%s)
timeout 900 "$bin/farm" bisect --host-kernels "${hosts[@]}" --guest-kernels "${guests[@]}" \
  --timeout 300 -- sh -c "$(cell_test bisect2d)" >"$work/bisect.out" 2>&1 || { cat "$work/bisect.out"; fail "2D bisect failed"; }
bisect_s=$(($(date +%s) - t2))
cat "$work/bisect.out"
for line in "bad only with host >= host-B and guest >= guest-C" \
            "host-B is the first bad host kernel (guest guest-C held fixed)" \
            "guest-C is the first bad guest kernel (host host-C held fixed)"; do
  grep -qF "$line" "$work/bisect.out" || fail "the 2D bisect does not say '$line'"
done
tested=$(grep -oE '[0-9]+ of 9 cells tested' "$work/bisect.out" | cut -d' ' -f1)
[ -n "$tested" ] && [ "$tested" -lt 9 ] || fail "the 2D bisect tested ${tested:-?} of 9 cells"
kexecs2=$(($(kx_kexecs metal1) + $(kx_kexecs metal2) - total_kexecs))
echo "PASS 2: 2D bisect named host-B and guest-C with $tested of 9 cells, $kexecs2 kexecs," \
  "wall time $bisect_s s"

# 3. Idle in a task's host kernel for --idle-return: each agent kexecs back into its default
# kernel (bounded: 60 s idle, a kexec and a boot, on a loaded machine).
t3=$(date +%s)
for agent in metal1 metal2; do
  for _ in $(seq 300); do
    grep -q "farm-vm: ${kx_rels[0]} up" <(sed -n '/returning to the default kernel/,$p' \
      "$work/$agent/console.log") && break
    sleep 1
  done
  grep -q "idle for .* returning to the default kernel" "$work/$agent/console.log" ||
    fail "$agent did not return to its default kernel"
  grep -q "farm-vm: ${kx_rels[0]} up" <(sed -n '/returning to the default kernel/,$p' \
    "$work/$agent/console.log") || fail "$agent did not come back up in ${kx_rels[0]}"
done
kx_wait_agents metal1 metal2
echo "PASS 3: idle agents back in ${kx_rels[0]} $(($(date +%s) - t3)) s after the bisect"
echo "total $(($(date +%s) - start)) s"
