#!/bin/bash
# Issue 14's rows, re-measured side by side in one run, each with the command that gives it:
#   rounds          bench/rounds_sim (simulated rounds, k = 1..16, linear and merge-heavy)
#   4 vs git        4 agents against `git bisect run`, 3,000-commit merge-heavy DAG, 0.5 s test,
#                   several culprits (DAG_CULPRITS, fractions of the history), median of DAG_RUNS
#                   runs each, git and the farm interleaved (FARM_BEFORE=BUILD_DIR: that build's
#                   farm too, interleaved, for a before/after under the same load)
#   peers           4 workers, 1 s test, the same DAG: git bisect run, the farm, and git-pisect /
#                   git-brisect when installed (they are not Debian packages)
#   C project       a generated C project whose build takes ~20 s single-threaded, a planted
#                   regression, 2 agents on this machine against `git bisect run`, both building
#                   with plain make (C_BUILD=parallel: git make -j$(nproc), farm -j$FARM_JOBS)
#   1M commits      `farm_next` on a 1,000,000-commit history without a commit-graph file,
#                   /usr/bin/time -v (max RSS, wall)
#   farm boot       Debian's cloud kernel under TCG, whole process (command start to exit)
#   kernel build    (--kernel-build only: slow) bench/kernel_steps.sh, its cold-build row
# Prints one Markdown table at the end (bench/README.md, "Issue 14, side by side").
# Usage: bench/issue14.sh [--kernel-build] [--no-1m] [--rows LIST] [BUILD_DIR]
#   --rows rounds,dag,cproj,1m,boot: only those rows (default: all; kernel with --kernel-build).
#   Needs in BUILD_DIR/bin: farm, rounds_sim, history_repo, farm_next.
#   DAG_CULPRITS="F ..." the dag row's culprits (default 0.37 0.13 0.61 0.85; the first also for
#   the peers row), DAG_RUNS=N runs of each (default 3), FARM_BEFORE=BUILD_DIR a second farm.
#   BOOTS=N farm boot runs (default 5); CULPRITS=N rounds_sim culprits per history (default 60);
#   C_SECONDS=S the C project's single-threaded build time to aim at (default 20).
#   ISSUE14_LOG=FILE keeps the output of the last `farm bisect`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kernel_build=0
big=1
rows_wanted=rounds,dag,cproj,1m,boot
build=$here/../build
while [ $# -gt 0 ]; do
  case "$1" in
    --kernel-build) kernel_build=1 ;;
    --no-1m) big=0 ;;
    --rows) rows_wanted=$2; shift ;;
    -*) echo "unknown option $1; usage: $0 [--kernel-build] [--no-1m] [--rows LIST] [BUILD_DIR]" >&2; exit 2 ;;
    *) build=$1 ;;
  esac
  shift
done
want() { [[ ",$rows_wanted," == *",$1,"* ]]; }
bin=$build/bin
for t in farm rounds_sim history_repo farm_next; do
  [ -x "$bin/$t" ] || { echo "$bin/$t is missing: build it (cmake --build $build --target $t)" >&2; exit 2; }
done
work=$(mktemp -d "${TMPDIR:-/tmp}/issue14.XXXXXX")
trap 'rm -rf "$work"' EXIT
rows=$work/rows.md
load() { cut -d' ' -f1 /proc/loadavg; }
now() { date +%s.%N; }
since() { python3 -c 'import sys; print("%.1f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$1" "$(now)"; }
row() { printf '| %s |\n' "$*" >> "$rows"; echo "  $*" | tr '|' ' '; }
median() { sort -n | awk '{v[NR]=$1} END {if (NR) print v[int((NR+1)/2)]}'; }
echo "issue 14 rows, $(nproc) cores, load $(load) at start, $(date -u '+%F %H:%M UTC')"

git_run() {  # repo good culprit test... -> seconds (checks git's answer)
  local repo=$1 g=$2 c=$3 t0 out; shift 3
  rm -rf "$work/clone" && git clone -q "$repo" "$work/clone"
  t0=$(now)
  out=$(cd "$work/clone" && git bisect start main "$g" >/dev/null && git bisect run "$@" 2>&1)
  grep -q "^$c is the first bad commit" <<<"$out" || { echo "git: wrong answer: $out" >&2; exit 1; }
  echo "$(since "$t0") s ($(grep -c '^running' <<<"$out") steps)"
}
farm_run() {  # repo good culprit agents state [farm bisect options] -- test... -> seconds
  local repo=$1 g=$2 c=$3 k=$4 state=$5 t0 out; shift 5
  t0=$(now)
  out=$("${farm_bin:-$bin/farm}" bisect --repo "$repo" --good "$g" --bad main --agents "$k" --workdir "$state" \
        --no-reuse "$@" 2>&1)
  # ISSUE14_LOG=FILE keeps the farm's last output (its per-commit lines) for a closer look.
  [ -z "${ISSUE14_LOG:-}" ] || printf '%s\n' "$out" > "$ISSUE14_LOG"
  grep -q "^$c is the first bad commit" <<<"$out" || { echo "farm: wrong answer: $out" >&2; exit 1; }
  echo "$(since "$t0") s ($(grep -o '^[0-9]* commits tested' <<<"$out" | cut -d' ' -f1) tests)"
}

# --- rounds ------------------------------------------------------------------------------------
if want rounds; then
echo "rounds: rounds_sim 10000 ${CULPRITS:-60}"
"$bin/rounds_sim" 10000 "${CULPRITS:-60}" > "$work/rounds.txt"
# Mean rounds of k-section, verdicts one by one (the coordinator's model), per history and k.
rounds_of() {  # history -> "k=1 a, k=2 b, ..."
  awk -F'|' -v h="$1" '$2 ~ " "h" " && $4+0 > 0 {gsub(/ /, "", $4); split($9, m, " "); printf "%sk=%s %s (limit %s)", sep, $4, m[1], $5+0; sep=", "}' "$work/rounds.txt"
}
row "rounds, 10k linear (k-section, one by one) | $(rounds_of linear) | \`rounds_sim 10000 ${CULPRITS:-60}\`"
row "rounds, 10k merge-heavy (k-section, one by one) | $(rounds_of merge-heavy) | same run"
fi

# --- 4 agents vs git bisect run, 3,000-commit merge-heavy DAG ------------------------------------
if want dag; then
# One repository per culprit (same history shape, seed 7), the first one also for the peers row.
dag_culprits=(${DAG_CULPRITS:-0.37 0.13 0.61 0.85})
for s in 0 0.5 1; do
  printf '#!/bin/sh\nsleep %s\ntest -f bug && exit 1\nexit 0\n' "$s" > "$work/test$s.sh"
  chmod +x "$work/test$s.sh"
done
secs() { cut -d' ' -f1; }
ratios=()
figures=()
echo "4 agents vs git bisect run, 0.5 s test, culprits ${dag_culprits[*]}, median of ${DAG_RUNS:-3} (load $(load))"
for frac in "${dag_culprits[@]}"; do
  dag=$work/dag-$frac
  python3 "$here/../tests/lib/make_repo.py" "$dag" --shape merges --commits 3000 --culprit "$frac" \
    --seed 7 > "$dag.json"
  good=$(git -C "$dag" rev-list --max-parents=0 main)
  culprit=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["culprit"])' "$dag.json")
  # The farm's worktrees are checked out once before timing, as git's clone is.
  farm_run "$dag" "$good" "$culprit" 4 "$dag.state" -- "$work/test0.sh" >/dev/null
  [ -z "${FARM_BEFORE:-}" ] || farm_bin=$FARM_BEFORE/bin/farm \
    farm_run "$dag" "$good" "$culprit" 4 "$dag.before" -- "$work/test0.sh" >/dev/null
  : > "$dag.git"; : > "$dag.farm"; : > "$dag.fb"
  for r in $(seq "${DAG_RUNS:-3}"); do
    git_run "$dag" "$good" "$culprit" "$work/test0.5.sh" >> "$dag.git"
    [ -z "${FARM_BEFORE:-}" ] || farm_bin=$FARM_BEFORE/bin/farm \
      farm_run "$dag" "$good" "$culprit" 4 "$dag.before" -- "$work/test0.5.sh" >> "$dag.fb"
    farm_run "$dag" "$good" "$culprit" 4 "$dag.state" -- "$work/test0.5.sh" >> "$dag.farm"
  done
  g=$(secs < "$dag.git" | median)
  f=$(secs < "$dag.farm" | median)
  ratio=$(python3 -c "print('%.2f' % ($g / $f))")
  ratios+=("$ratio")
  tests=$(grep -o '([0-9]* tests)' "$dag.farm" | tr -dc '0-9\n' | paste -sd/)
  fig="culprit at $frac: git $g s, farm $f s ($tests tests): ${ratio}x"
  if [ -n "${FARM_BEFORE:-}" ]; then
    fb=$(secs < "$dag.fb" | median)
    fig="$fig, before $fb s: $(python3 -c "print('%.2f' % ($g / $fb))")x"
  fi
  figures+=("$fig")
  echo "  $fig"
done
row "4 agents vs git bisect run, 3,000-commit merge-heavy, 0.5 s test, median of ${DAG_RUNS:-3} | $(IFS=';'; echo "${figures[*]}" | sed 's/;/; /g') (target >= 2.2x; median ratio $(printf '%s\n' "${ratios[@]}" | median)x) | load $(load)"

dag=$work/dag-${dag_culprits[0]}
good=$(git -C "$dag" rev-list --max-parents=0 main)
culprit=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["culprit"])' "$dag.json")
echo "peers: 4 workers, 1 s test (load $(load))"
g=$(git_run "$dag" "$good" "$culprit" "$work/test1.sh")
f=$(farm_run "$dag" "$good" "$culprit" 4 "$dag.state" -- "$work/test1.sh")
peers="git-pisect, git-brisect: not installed (no Debian package; not measured)"
if command -v git-pisect >/dev/null || command -v git-brisect >/dev/null; then
  peers="git-pisect / git-brisect installed but not driven by this script"
fi
row "vs the parallel peers, 4 workers, 1 s test | git bisect run ${g}, farm ${f}; ${peers} | load $(load)"

fi

# --- C project stand-in ---------------------------------------------------------------------------
if want cproj; then
# Many translation units, each recompiled at every step (every commit changes a header all of them
# include); the planted regression changes a constant in one of them.
cproj=$work/cproj
mkdir -p "$cproj"
cat > "$work/gen_unit.py" <<'P'
import sys
i, funcs = int(sys.argv[1]), int(sys.argv[2])
print('#include "version.h"')
for f in range(funcs):
    print("static int f%d(int x) {" % f)
    print("  int a[16];")
    print("  for (int j = 0; j < 16; ++j) a[j] = x * %d + j * VERSION_SALT;" % (f + 1))
    for k in range(12):
        print("  for (int j = 1; j < 16; ++j) a[j] ^= (a[j - 1] << %d) + %d;" % (k % 7 + 1, k * f + i))
    print("  return a[15];")
    print("}")
print("int unit%d(int x) { return 0%s; }" % (i, "".join(" + f%d(x)" % f for f in range(funcs))))
P
python3 "$work/gen_unit.py" 0 40 > "$work/probe.c"
printf '#define VERSION_SALT 1\n' > "$work/version.h"
t0=$(now)
gcc -O2 -c -I"$work" -o "$work/probe.o" "$work/probe.c"
per_unit=$(since "$t0")
units=$(python3 -c "import math; print(max(4, math.ceil(${C_SECONDS:-20} / max($per_unit, 0.05))))")
echo "C project: $units units of ${per_unit} s each (load $(load))"
(
  cd "$cproj" && git init -q -b main && git config user.email b@farm && git config user.name bench
  for i in $(seq 0 $((units - 1))); do python3 "$work/gen_unit.py" "$i" 40 > "unit$i.c"; done
  {
    echo '#include <stdio.h>'
    for i in $(seq 0 $((units - 1))); do echo "int unit$i(int);"; done
    echo 'int answer(void);'
    echo 'int main(void) { int s = 0;'
    for i in $(seq 0 $((units - 1))); do echo "  s += unit$i(3);"; done
    echo '  printf("%d\n", s); return answer() == 42 ? 0 : 1; }'
  } > main.c
  echo 'int answer(void) { return 42; }' > answer.c
  printf 'OBJS = main.o answer.o %s\nprog: $(OBJS)\n\tgcc -o $@ $(OBJS)\n%%.o: %%.c version.h\n\tgcc -O2 -c -o $@ $<\n' \
    "$(for i in $(seq 0 $((units - 1))); do printf 'unit%d.o ' "$i"; done)" > Makefile
  printf '#define VERSION_SALT 1\n' > version.h
  printf 'prog\n*.o\n' > .gitignore
  git add -A && git commit -q -m base
  for c in $(seq 1 100); do
    printf '#define VERSION_SALT %d\n' "$((c + 1))" > version.h
    [ "$c" = 37 ] && echo 'int answer(void) { return 41; }' > answer.c
    git commit -q -am "step $c"
  done
)
cgood=$(git -C "$cproj" rev-list --max-parents=0 main)
cculprit=$(git -C "$cproj" log --format=%H -1 -S'return 41' main -- answer.c)
# The issue's row is about builds that use one core (C_BUILD=serial, the default: plain `make`
# for both); C_BUILD=parallel lets both use every core (git make -j$(nproc), farm make -j$FARM_JOBS).
if [ "${C_BUILD:-serial}" = parallel ]; then gitj=-j$(nproc) farmj='-j"${FARM_JOBS:-1}"'; else gitj= farmj=; fi
printf '#!/bin/sh\nmake -s %s prog >/dev/null || exit 125\nexec ./prog >/dev/null\n' "$gitj" > "$work/cgit.sh"
chmod +x "$work/cgit.sh"
g=$(git_run "$cproj" "$cgood" "$cculprit" "$work/cgit.sh")
# The farm's first checkouts are made before timing, as git's clone is.
farm_run "$cproj" "$cgood" "$cculprit" 2 "$work/cstate" -- grep -q 'return 42' answer.c >/dev/null
f=$(farm_run "$cproj" "$cgood" "$cculprit" 2 "$work/cstate" \
  --build "make -s $farmj prog >/dev/null" -- sh -c './prog >/dev/null')
row "C project stand-in, ${units} units (~${C_SECONDS:-20} s single-threaded build, C_BUILD=${C_BUILD:-serial}), 100 commits, 2 agents | git bisect run (make $gitj) ${g}, farm (make $farmj) ${f} (target <= 100 s) | load $(load)"

fi

# --- 1M commits without a commit-graph file --------------------------------------------------------
if [ "$big" = 1 ] && want 1m; then
  echo "1M commits: history_repo (minutes) (load $(load))"
  "$bin/history_repo" "$work/h1m" 1000000 1 > "$work/h1m.json"
  rm -f "$work/h1m/.git/objects/info/commit-graph" "$work/h1m/objects/info/commit-graph"
  rm -rf "$work/h1m/.git/objects/info/commit-graphs" "$work/h1m/objects/info/commit-graphs"
  root=$(git -C "$work/h1m" rev-list --max-parents=0 main)
  /usr/bin/time -v "$bin/farm_next" --repo "$work/h1m" --good "$root" --bad main --agents 8 \
    > /dev/null 2> "$work/next.time"
  rss=$(awk -F': ' '/Maximum resident/ {printf "%d", $2 / 1024}' "$work/next.time")
  wall=$(awk -F': ' '/Elapsed/ {print $2}' "$work/next.time")
  user=$(awk -F': ' '/User time/ {print $2}' "$work/next.time")
  row "1M-commit history, no commit-graph file, farm_next --agents 8 | ${rss} MB max RSS, ${wall} wall, ${user} s user (target < 500 MB, < 3 s) | load $(load)"
  rm -rf "$work/h1m"
fi

# --- farm boot, whole process -----------------------------------------------------------------------
kernel=/var/cache/farm-test-kernels/debian-cloud/vmlinuz
if ! want boot; then
  :
elif [ -r "$kernel" ] && command -v qemu-system-x86_64 >/dev/null; then
  echo 'int main(void) { return 0; }' > "$work/t.c"
  boot() { /usr/bin/time -f '%e %U %S' -o "$work/boot.time" "$bin/farm" boot --kernel "$kernel" \
    --test "$work/t.c" --work-dir "$work/boot" --console "$work/console" --accel tcg > "$work/boot.out" 2>&1; }
  boot  # caches: the compiled test, the initramfs, the ELF unpacked for PVH
  : > "$work/walls"; : > "$work/cpus"; : > "$work/qemus"
  for i in $(seq "${BOOTS:-5}"); do
    boot
    grep -q 'outcome: passed' "$work/boot.out" || { cat "$work/boot.out" >&2; exit 1; }
    read -r w u s < "$work/boot.time"
    echo "$w" >> "$work/walls"
    python3 -c "print($u + $s)" >> "$work/cpus"
    grep -o 'qemu total [0-9.]*' "$work/boot.out" | awk '{print $3}' >> "$work/qemus"
  done
  row "farm boot, Debian cloud kernel, TCG, whole process (median of ${BOOTS:-5}) | wall $(median < "$work/walls") s, CPU $(median < "$work/cpus") s, qemu total $(median < "$work/qemus") s (target <= 1.8 s wall) | load $(load)"
else
  row "farm boot | not measured: $kernel or qemu-system-x86_64 is missing (tests/e2e/fetch-kernel.sh) | "
fi

# --- cold kernel build ---------------------------------------------------------------------------------
if [ "$kernel_build" = 1 ]; then
  echo "cold kernel build: bench/kernel_steps.sh (minutes) (load $(load))"
  bash "$here/kernel_steps.sh" "$build" > "$work/ks.txt" 2>&1 || { cat "$work/ks.txt" >&2; exit 1; }
  row "cold kernel build, empty ccache (kernel_steps.sh) | $(grep -i '^| cold' "$work/ks.txt" | head -1 | cut -d'|' -f3- | sed 's/|/;/g') | load $(load)"
fi

echo
echo "| row | figures | |"
echo "|---|---|---|"
cat "$rows"
