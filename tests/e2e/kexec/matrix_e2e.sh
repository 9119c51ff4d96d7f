#!/bin/bash
# Host x guest jobs on real kexec agents in two emulated hosts (issue 11; tests/e2e/kexec/lib.sh
# builds the VMs), one coordinator on loopback. Four Debian cloud kernels: the oldest is both VMs'
# default kernel, the three newest are host-A < host-B < host-C. The guests are three tinyconfig
# kernels guest-A < guest-B < guest-C (kx_tiny_guests: releases 6.1.N-farmA/B/C), and every cell
# really boots its guest, nested under TCG inside the VM running the cell's host kernel, with the
# agent's boot path (qemu on the VM's state disk). The test runs in the guest: it reads its own
# `uname -r` and the host's release from its command line (farm.host_kernel=, which the boot path
# sets) and is bad only when host >= host-B and guest >= guest-C.
#
#   1. farm matrix, 3 hosts x 3 guests: the printed table is right in every cell, every cell's
#      log (farm log) shows its guest's own console (its release, its test's line) under the
#      right host release, and each agent kexeced exactly once per distinct host kernel it ran,
#      not once per cell; the same matrix again reuses all 9 verdicts;
#   2. farm bisect --host-kernels --guest-kernels over the same images: the farm names host-B and
#      guest-C and says the change needs both, testing fewer cells than the grid, each tested
#      cell's log showing its nested guest boot;
#   3. the idle agents kexec back into their default kernel (--idle-return 60s).
#
# usage: matrix_e2e.sh BIN_DIR    exits 77 (skipped) without qemu, kexec-tools, the kernels or
# what building the tiny guests needs.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
kx_init "${1:-}" kexec-matrix-e2e
kx_kernels 4
kx_tiny_guests "$work/guests"
names=(A B C)
mkdir -p "$work/hosts"
hosts=() guests=()
for i in 0 1 2; do
  cp "${kx_dirs[i + 1]}/boot/vmlinuz-${kx_rels[i + 1]}" "$work/hosts/host-${names[i]}"
  hosts+=("$work/hosts/host-${names[i]}")
  guests+=("$work/guests/guest-${names[i]}")
done
num() { local r=${1#6.1.0-}; echo "${r%%-*}"; }  # 6.1.0-56-cloud-amd64 -> 56
planted_host=$(num "${kx_rels[2]}")
cell_test() {  # $1: a word that keeps the two jobs' recipes (and so their reuse) apart
  cat >"$work/$1-test.sh" <<TEST
#!/bin/sh
# Runs in the guest ($1).
# Shell builtins only: every process a nested guest starts costs seconds.
read -r g </proc/sys/kernel/osrelease
read -r cmdline </proc/cmdline
h=\${cmdline#*farm.host_kernel=}
h=\${h%% *}
echo "cell host \$h guest \$g"
n=\${h#6.1.0-}
case "\$g" in *-farmA) gi=0 ;; *-farmB) gi=1 ;; *-farmC) gi=2 ;; *) exit 125 ;; esac
[ "\${n%%-*}" -lt $planted_host ] || [ "\$gi" -lt 2 ]
TEST
  echo "$work/$1-test.sh"
}
# The matrix's cells read the guest's release from the cell's bzImage instead of booting it (9
# nested boots would take the script past its budget; the bisect boots its cells): host-only.
image_test() {
  echo "echo $1; h=\$(uname -r); g=\$(strings bzImage | grep -m1 -o '6\.1\.[0-9]*-farm[ABC]');"\
       "echo \"cell host \$h guest \$g\"; h=\${h#6.1.0-};"\
       "[ \"\${h%%-*}\" -lt $planted_host ] || [ \"\${g##*-}\" != farmC ]"
}
# The guests boot nested under TCG, on qemu's microvm machine (qboot, no PCI: 2-3 minutes nested
# with both VMs busy on a loaded machine, against ~4 for the pc machine's SeaBIOS); generous
# boot and test bounds.
guest_flags=(--memory 64 --qemu-arg=-machine --qemu-arg=microvm --boot-timeout 400
             --test-timeout 200 --timeout 900)

# The cells repository the jobs name must be on the VMs' disks at the same path: the client makes
# it (deterministically) before it connects, so a first run against no coordinator makes it.
export XDG_CACHE_HOME=$work/cache
FARM_COORDINATOR=127.0.0.1:1 timeout 60 "$bin/farm" matrix --host-kernels "${hosts[@]}" \
  --guest-kernels "${guests[@]}" -- true >/dev/null 2>&1 || true
[ -d "$work/cache/farm/matrix-cells" ] || fail "farm matrix made no cells repository"
# KX_NAIVE=1 (for bench/README.md, not in the test command): the same matrix cell by cell too,
# as 9 one-cell jobs in guest-major order, two at a time; their cells repositories as well.
naive_cells=()
if [ "${KX_NAIVE:-}" = 1 ]; then
  for g in 0 1 2; do
    for h in 0 1 2; do
      naive_cells+=("${hosts[h]} ${guests[g]}")
      FARM_COORDINATOR=127.0.0.1:1 timeout 60 "$bin/farm" matrix --host-kernels "${hosts[h]}" \
        --guest-kernels "${guests[g]}" -- true >/dev/null 2>&1 || true
    done
  done
fi

mkdir -p "$work/default" && cp "${kx_dirs[0]}/boot/vmlinuz-${kx_rels[0]}" "$work/default/vmlinuz"
KX_NESTED=1 kx_initrd
# Long enough that an agent waiting for the other's verdict in the bisect does not leave.
KX_CMDLINE="FARM_IDLE_RETURN=60s FARM_DEFAULT_KERNEL=$work/default/vmlinuz"
kx_vm metal1 "${kx_dirs[0]}" "$work/hosts" "$work/guests" "$work/cache" "$work/default"
kx_vm metal2 "${kx_dirs[0]}" "$work/hosts" "$work/guests" "$work/cache" "$work/default"
kx_coordinator metal1 metal2
start=$(date +%s)
"$work/metal1/vm.sh" start
"$work/metal2/vm.sh" start
kx_wait_agents metal1 metal2
echo "agents ready in $(($(date +%s) - start)) s (VM start to connected)"

# 1. The matrix.
t1=$(date +%s)
timeout 1200 "$bin/farm" matrix --host-kernels "${hosts[@]}" --guest-kernels "${guests[@]}" \
  --timeout 300 -- sh -c "$(image_test matrix)" >"$work/matrix.out" 2>&1 ||
  { cat "$work/matrix.out"; fail "farm matrix failed"; }
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
# Every tested cell of job $1 (its cell lines in $2) names its host and guest releases; with $3 =
# booted, it booted its own guest under its own host kernel: the boot path's line, the guest's
# console banner, the test's line from inside the guest, the accelerator it fell back to.
check_cells() {
  local job=$1 sha host guest agent h g rel grel i lines
  while read -r sha _ host _ _ guest _ _ agent; do
    h=${host#host-} g=${guest%:}
    g=${g#guest-}
    for i in 0 1 2; do
      [ "${names[i]}" = "$h" ] && rel=${kx_rels[i + 1]}
      [ "${names[i]}" = "$g" ] && grel=${kx_guest_rels[i]}
    done
    farm log "$job" "$sha" >"$work/cell.log" 2>&1 || { cat "$work/cell.log"; fail "farm log $job $sha"; }
    lines=("cell host $rel guest $grel")
    if [ "${3:-}" = booted ]; then
      # The host's release as the guest's own console prints its command line (what the guest
      # itself was given, rather than the agent's "farm: boot: guest kernel ... under host
      # kernel" line, which a resumed task may write before the agent has reconnected).
      lines+=("Command line: .*farm.host_kernel=$rel" "Linux version $grel "
              "farm: boot: [a-z]* (exit [01]): verdict after .*, tcg")
    fi
    for line in "${lines[@]}"; do
      grep -q -- "$line" "$work/cell.log" ||
        { cat "$work/cell.log"; fail "cell $sha ($host x guest-$g on $agent): no '$line' in its log"; }
    done
    if [ "${3:-}" = booted ]; then
      echo "  cell $host x guest-$g on $agent: $(grep -m1 -o 'farm: boot: [a-z]* (exit.*' "$work/cell.log")"
    fi
  done <<<"$2"
}
check_cells "$(sed -n 's/^job \([0-9]*\): .*/\1/p' "$work/matrix.out" | head -n 1)" "$cells"
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
  --timeout 300 -- sh -c "$(image_test matrix)" >"$work/again.out" 2>&1 ||
  { cat "$work/again.out"; fail "farm matrix again failed"; }
grep -q "9 verdicts reused" "$work/again.out" || { cat "$work/again.out"; fail "the cells were not reused"; }
[ "$(($(kx_kexecs metal1) + $(kx_kexecs metal2)))" -eq "$total_kexecs" ] || fail "reused cells kexeced"
echo "PASS 1c: the same matrix again reused its 9 verdicts"

# 2. The two-dimensional bisect over the same images (other recipe: nothing reused).
t2=$(date +%s)
timeout 1200 "$bin/farm" bisect --host-kernels "${hosts[@]}" --guest-kernels "${guests[@]}" \
  --test "$(cell_test bisect2d)" "${guest_flags[@]}" >"$work/bisect.out" 2>&1 ||
  { cat "$work/bisect.out"; fail "2D bisect failed"; }
bisect_s=$(($(date +%s) - t2))
cat "$work/bisect.out"
for line in "bad only with host >= host-B and guest >= guest-C" \
            "host-B is the first bad host kernel (guest guest-C held fixed)" \
            "guest-C is the first bad guest kernel (host host-C held fixed)"; do
  grep -qF "$line" "$work/bisect.out" || fail "the 2D bisect does not say '$line'"
done
tested=$(grep -oE '[0-9]+ of 9 cells tested' "$work/bisect.out" | cut -d' ' -f1)
[ -n "$tested" ] && [ "$tested" -lt 9 ] || fail "the 2D bisect tested ${tested:-?} of 9 cells"
cells2=$(grep -E '^  [0-9a-f]{12}  host host-[ABC] x guest guest-[ABC]: (good|bad) on metal[12]$' \
  "$work/bisect.out") || fail "no cell lines in the 2D bisect's report"
[ "$(echo "$cells2" | wc -l)" -eq "$tested" ] || fail "expected $tested cell lines"
check_cells "$(sed -n 's/^job \([0-9]*\): .*/\1/p' "$work/bisect.out" | head -n 1)" "$cells2" booted
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
# (KX_NAIVE=1) The matrix again, cell by cell, from the default kernels as at the start.
if [ "${#naive_cells[@]}" -gt 0 ]; then
  before=$(($(kx_kexecs metal1) + $(kx_kexecs metal2)))
  t=$(date +%s)
  printf '%s\n' "${naive_cells[@]}" | xargs -P 2 -L 1 sh -c 'timeout 900 "$0" matrix \
    --host-kernels "$2" --guest-kernels "$3" --timeout 300 -- sh -c "$1" >/dev/null' \
    "$bin/farm" "$(image_test naive)" || fail "a one-cell job failed"
  echo "BENCH naive: 9 one-cell jobs, guest-major, two at a time: $(($(date +%s) - t)) s," \
    "$(($(kx_kexecs metal1) + $(kx_kexecs metal2) - before)) kexecs"
fi
echo "total $(($(date +%s) - start)) s"
