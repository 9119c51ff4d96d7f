#!/bin/bash
# The first local bisect with k agents (fresh state directory) vs the next one (worktrees kept)
# vs `git bisect run` (in a clone checked out before its clock starts), side by side, on
#   (1) a generated 3,000-commit linear repository (3,001 small files), ~1 s test;
#   (2) the kernel e2e fixture's linux-source-6.1 repository (78,635 files, 10 candidates),
#       ~1 s test, if tests/e2e/kernel/make-linux-repo.sh has cached it.
# Target (issue 14): first run within 1.2x of the next, and ahead of git on the first run.
# Usage: bench/cold_start.sh [BUILD_DIR] [AGENTS...]   (default agents: 4 8)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
shift || true
agent_counts=("$@")
[ ${#agent_counts[@]} -gt 0 ] || agent_counts=(4 8)
farm=$build/bin/farm
work=$(mktemp -d "${TMPDIR:-/tmp}/farm-cold.XXXXXX")
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }

python3 "$here/../tests/lib/make_repo.py" "$work/small" --shape linear --commits 3000 \
  --culprit 0.37 --seed 7 > "$work/small.json"
cat > "$work/small.sh" <<'S'
#!/bin/sh
sleep 1
test -f bug && exit 1
exit 0
S
linux=${FARM_KERNEL_CACHE:-/var/cache/farm-test-kernels}/linux-6.1
if [ -f "$linux.base" ]; then
  git clone -q --bare --shared "$linux" "$work/linux"  # read-only use of the cached objects
  cat > "$work/linux.sh" <<'S'
#!/bin/sh
sleep 1
grep -q 'len >= __NEW_UTS_LEN' kernel/sys.c && exit 1
exit 0
S
fi
chmod +x "$work"/*.sh

run_git() {  # repo good script -> seconds
  rm -rf "$work/gitclone"
  git clone -q "$1" "$work/gitclone"
  local t0 t1
  t0=$(now)
  (cd "$work/gitclone" && git bisect start main "$2" >/dev/null && git bisect run "$3" >/dev/null 2>&1)
  t1=$(now)
  git -C "$work/gitclone" bisect log | grep -q "first bad commit" || { echo "git failed" >&2; exit 1; }
  rm -rf "$work/gitclone"
  python3 -c 'import sys; print("%.2f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$t0" "$t1"
}

run_farm() {  # repo good script agents state -> seconds
  local t0 t1 out
  t0=$(now)
  out=$("$farm" bisect --repo "$1" --good "$2" --bad main --agents "$4" --workdir "$5" \
        --no-reuse -- "$3" 2>&1)
  t1=$(now)
  grep -q "is the first bad commit" <<<"$out" || { echo "farm failed:" >&2; echo "$out" >&2; exit 1; }
  python3 -c 'import sys; print("%.2f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$t0" "$t1"
}

bench() {  # label repo good script
  for k in "${agent_counts[@]}"; do
    rm -rf "$work/state"
    first=$(run_farm "$2" "$3" "$4" "$k" "$work/state")
    next=$(run_farm "$2" "$3" "$4" "$k" "$work/state")
    rm -rf "$work/state"
    git_s=$(run_git "$2" "$3" "$4")
    python3 -c 'import sys; l,k,f,n,g=sys.argv[1:]; f,n,g=float(f),float(n),float(g); print("%-22s %2s agents  first %6.2fs  next %6.2fs  git bisect run %6.2fs  first/next %.2fx  first/git %.2fx" % (l,k,f,n,g,f/n,f/g))' \
      "$1" "$k" "$first" "$next" "$git_s"
  done
}

uptime
bench "3,000 linear, 1 s" "$work/small" "$(git -C "$work/small" rev-list --max-parents=0 main)" "$work/small.sh"
if [ -f "$linux.base" ]; then
  bench "linux-6.1 fixture, 1 s" "$work/linux" "$(cat "$linux.base")" "$work/linux.sh"
else
  echo "linux-6.1 fixture: not cached (run tests/e2e/kernel/make-linux-repo.sh), skipped"
fi
uptime
