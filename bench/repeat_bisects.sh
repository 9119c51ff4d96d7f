#!/bin/bash
# Repeated local bisects on the same repository: RUNS farm runs in a row (1 agent, trivial test,
# state directory kept) interleaved with RUNS `git bisect run`s in one kept clone, which does the
# same checkouts in the same kind of directory: whatever the filesystem does to the farm (ext4
# without a journal skips inodes freed in the last 30 s) it does to git too. Issue 14's target:
# farm <= 1.05x git, and run 10 no slower than run 2. Give several build directories to compare
# builds (before/after) in one run, each with its own state and clone.
# Usage: bench/repeat_bisects.sh RUNS BUILD_DIR...    (TMPDIR chooses the filesystem)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
runs=${1:-10}
shift
[ $# -gt 0 ] || set -- "$here/../build"
work=$(mktemp -d "${TMPDIR:-/tmp}/farm-repeat.XXXXXX")
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }

python3 "$here/../tests/lib/make_repo.py" "$work/repo" --shape merges --commits 10000 \
  --culprit 0.37 --seed 7 > /dev/null
good=$(git -C "$work/repo" rev-list --max-parents=0 main)
printf '#!/bin/sh\ntest -f bug && exit 1\nexit 0\n' > "$work/trivial.sh"
chmod +x "$work/trivial.sh"

farm_run() {  # build state -> seconds
  local t0 t1 out
  t0=$(now)
  out=$("$1/bin/farm" bisect --repo "$work/repo" --good "$good" --bad main --agents 1 \
        --workdir "$2" --no-reuse -- "$work/trivial.sh" 2>&1)
  t1=$(now)
  grep -q "is the first bad commit" <<<"$out" || { echo "farm failed: $out" >&2; exit 1; }
  echo "$t0 $t1"
}
git_run() {  # clone -> seconds
  local t0 t1
  t0=$(now)
  (cd "$1" && git bisect start main "$good" >/dev/null && git bisect run "$work/trivial.sh" >/dev/null 2>&1)
  t1=$(now)
  git -C "$1" bisect log | grep -q "first bad commit" || { echo "git failed" >&2; exit 1; }
  git -C "$1" bisect reset >/dev/null 2>&1
  echo "$t0 $t1"
}

b=0
for build in "$@"; do
  b=$((b + 1))
  git clone -q "$work/repo" "$work/clone$b"
  farm_run "$build" "$work/state$b" > /dev/null  # the worktree, as git's clone has one
done
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$runs"); do
  line="run $(printf %2d "$i")"
  b=0
  for build in "$@"; do
    b=$((b + 1))
    read -r f0 f1 <<<"$(farm_run "$build" "$work/state$b")"
    read -r g0 g1 <<<"$(git_run "$work/clone$b")"
    line+=$(python3 -c 'import sys; f0,f1,g0,g1=map(float,sys.argv[1:5]); print("   [%s] farm %5.2fs git %5.2fs farm/git %.2fx" % (sys.argv[5], f1-f0, g1-g0, (f1-f0)/(g1-g0)))' \
      "$f0" "$f1" "$g0" "$g1" "$b")
  done
  echo "$line"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
for b in $(seq $#); do echo "[$b] ${!b}"; done
