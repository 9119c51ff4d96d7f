#!/bin/bash
# Times `git bisect run` and `farm bisect` side by side, in one run, on the same generated
# 10,000-commit merge-heavy repository with the same test script.
#   (a) a trivial test, 1 agent             target: farm's wall time <= 1.2x git's
#   (b) a test that takes ~1 s, 4 agents    target: farm >= 2x faster than git,
#                                           rounds <= ceil(log5 N) + 1
# Usage: bench/bisect_vs_git.sh [BUILD_DIR] [COMMITS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
commits=${2:-10000}
farm=$build/bin/farm
work=$(mktemp -d "${TMPDIR:-/tmp}/farm-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

python3 "$here/../tests/lib/make_repo.py" "$work/repo" --shape merges --commits "$commits" \
  --culprit 0.37 --seed 7 > "$work/repo.json"
good=$(git -C "$work/repo" rev-list --max-parents=0 main)
culprit=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["culprit"])' "$work/repo.json")
n=$(git -C "$work/repo" rev-list --count main "^$good")
printf 'repository: %d commits, %d candidates, %d merges\n' "$commits" "$n" \
  "$(git -C "$work/repo" rev-list --merges --count main)"

cat > "$work/trivial.sh" <<'S'
#!/bin/sh
test -f bug && exit 1
exit 0
S
cat > "$work/slow.sh" <<'S'
#!/bin/sh
sleep 1
test -f bug && exit 1
exit 0
S
chmod +x "$work/trivial.sh" "$work/slow.sh"

now() { date +%s.%N; }

run_git() {  # script -> prints seconds; checks the answer
  rm -rf "$work/gitclone"
  git clone -q "$work/repo" "$work/gitclone"
  local t0 t1 out
  t0=$(now)
  out=$(cd "$work/gitclone" && git bisect start main "$good" >/dev/null && git bisect run "$1" 2>&1)
  t1=$(now)
  grep -q "^$culprit is the first bad commit" <<<"$out" || { echo "git: wrong answer" >&2; exit 1; }
  steps=$(grep -c "^running" <<<"$out" || true)
  echo "$t1 $t0 $steps"
}

run_farm() {  # script agents -> prints seconds and tests
  # The state directory (worktrees) persists between runs, as it does for a developer; git's
  # checkout of its clone is likewise done before its clock starts. --no-reuse: every run really
  # tests (the verdicts of the previous run would otherwise be reused, same trees, same recipe).
  local t0 t1 out
  t0=$(now)
  out=$("$farm" bisect --repo "$work/repo" --good "$good" --bad main --agents "$2" \
        --workdir "$work/state" --no-reuse -- "$1" 2>&1)
  t1=$(now)
  grep -q "^$culprit is the first bad commit" <<<"$out" || { echo "farm: wrong answer:" >&2; echo "$out" >&2; exit 1; }
  tests=$(grep -o '^[0-9]* commits tested' <<<"$out" | cut -d' ' -f1)
  echo "$t1 $t0 $tests"
}

row() {  # label git_result farm_result
  read -r g1 g0 gsteps <<<"$2"
  read -r f1 f0 ftests <<<"$3"
  python3 - "$1" "$g1" "$g0" "$gsteps" "$f1" "$f0" "$ftests" "$n" "$4" <<'P'
import math, sys
label, g1, g0, gs, f1, f0, ft, n, test_s = sys.argv[1:]
g = float(g1) - float(g0); f = float(f1) - float(f0); n = int(n); test_s = float(test_s)
line = "%-28s git %7.2fs (%s steps)   farm %7.2fs (%s tests)   farm/git %.2fx" % (
    label, g, gs, f, ft, f / g)
if test_s > 0:
    rounds = f / test_s
    bound = math.ceil(math.log(n) / math.log(5)) + 1
    line += "   speedup %.2fx   rounds ~%.1f (bound ceil(log5 N)+1 = %d)" % (g / f, rounds, bound)
print(line)
P
}

# Warm the page cache and the binaries once, and check out the farm's worktrees (as git's clone is).
run_farm "$work/trivial.sh" 4 >/dev/null
echo "(a) trivial test, 1 agent"
for i in 1 2 3; do
  row "  run $i" "$(run_git "$work/trivial.sh")" "$(run_farm "$work/trivial.sh" 1)" 0
done
echo "(b) ~1 s test, 4 agents"
row "  run 1" "$(run_git "$work/slow.sh")" "$(run_farm "$work/slow.sh" 4)" 1
