#!/bin/bash
# Times `farm next --timing` against `git rev-list --bisect` on the same generated merge-heavy
# repository, in one run, and prints the ratio. The repository is kernel-shaped
# (bench/history_repo: a first-parent main line, subsystem trees and topics merged in, ~21%
# merges; no file contents). Both are timed with git's commit-graph file (git's fastest case,
# and what `git gc` leaves behind) and without it.
#
# Usage: bench/next_vs_git.sh [BUILD_DIR] [COMMITS=80000] [AGENTS=8]
# Uses BUILD_DIR/bin/farm (`farm next`) when it has the command, else BUILD_DIR/bin/farm_next.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
commits=${2:-80000}
agents=${3:-8}
work=$(mktemp -d /tmp/farm-next-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

if "$build/bin/farm" next --help >/dev/null 2>&1; then
  next=("$build/bin/farm" next)
else
  next=("$build/bin/farm_next")
fi
repo=$work/repo
"$build/bin/history_repo" "$repo" "$commits" 1 > "$work/repo.json"
root=$(git -C "$repo" rev-list --max-parents=0 main)
n=$(git -C "$repo" rev-list --count main "^$root")
merges=$(git -C "$repo" rev-list --merges --count main "^$root")
printf 'repository: %d commits, range %d candidates, %d merges; %s cores, load %s\n' \
  "$commits" "$n" "$merges" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"

TIMEFORMAT='%R %U'
timed() {  # command... -> stdout of command in $work/out, "wall user" in $work/time
  { time "$@" > "$work/out" 2> "$work/err"; } 2> "$work/time"
}

run_pair() {  # label
  # git: --bisect-vars does what --bisect does and also prints the split it found.
  timed git -C "$repo" rev-list --bisect-vars main "^$root"
  read -r git_wall git_user < "$work/time"
  eval "$(grep -E '^bisect_(rev|good|bad)=' "$work/out")"
  local git_dist=$(( (bisect_good < bisect_bad ? bisect_good : bisect_bad) + 1 ))
  timed "${next[@]}" --repo "$repo" --good "$root" --bad main --agents "$agents" --timing
  read -r farm_wall farm_user < "$work/time"
  local farm_first farm_dist
  farm_first=$(head -1 "$work/out" | cut -d' ' -f1)
  farm_dist=$(head -1 "$work/out" | sed -e 's/.*dist=\([0-9]*\).*/\1/')
  echo "$1"
  printf '  git rev-list --bisect      %8.3f s wall %8.3f s user   -> %s dist=%d\n' \
    "$git_wall" "$git_user" "${bisect_rev:0:12}" "$git_dist"
  printf '  farm next --agents %-3d     %8.3f s wall %8.3f s user   -> %s dist=%d (+%d more)\n' \
    "$agents" "$farm_wall" "$farm_user" "${farm_first:0:12}" "$farm_dist" \
    "$(( $(wc -l < "$work/out") - 1 ))"
  sed -e 's/^/    /' "$work/err"
  python3 -c 'import sys; gw,gu,fw,fu=map(float,sys.argv[1:]); print("  ratio git/farm: %.0fx wall, %.0fx user" % (gw/max(fw,1e-3), gu/max(fu,1e-3)))' \
    "$git_wall" "$git_user" "$farm_wall" "$farm_user"
  # git stops at the first commit it finds within N/1024 of halfway (bisect.c approx_halfway);
  # farm next prints the best split, `git rev-list --bisect-all`'s first line.
  if [ "$farm_dist" -lt "$git_dist" ]; then
    echo "  WORSE THAN GIT: git's split is dist=$git_dist" >&2
    exit 1
  fi
}

git -C "$repo" commit-graph write --reachable 2>/dev/null
run_pair "with a commit-graph file (git commit-graph write --reachable):"
rm -f "$repo/.git/objects/info/commit-graph"
run_pair "without a commit-graph file:"
