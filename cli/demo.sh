#!/bin/bash
# The main job on a fresh Debian 12 machine: install, build, then bisect a generated repository
# of 2,000 commits (merge-heavy, like the kernel's history) with 4 local agents and a test that
# takes about a second, next to `git bisect run` doing the same. Fails when the two answers
# differ.
#
# Usage: bash cli/demo.sh [COMMITS]    (default 2000)
# FARM_DEMO_BUILD_DIR: a build directory that already has farm, farm-coordinator and farm-agent;
# set-up and build are then skipped (the ctest `demo` runs it that way, on 200 commits).
set -euo pipefail
cd "$(dirname "$0")/.."
commits=${1:-2000}
build=${FARM_DEMO_BUILD_DIR:-}
if [ -z "$build" ]; then
  bash tests/setup-debian.sh
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j"$(nproc)" --target farm farm-coordinator farm-agent
  build=build
fi
demo=$(mktemp -d "${TMPDIR:-/tmp}/farm-demo.XXXXXX")
python3 tests/lib/make_repo.py "$demo/repo" --shape merges --commits "$commits" --seed 42 \
  > "$demo/repo.json"
good=$(git -C "$demo/repo" rev-list --max-parents=0 main)
cat > "$demo/test.sh" <<'SCRIPT'
#!/bin/sh
# A test that takes about a second: the bug is the file `bug`.
sleep 1
test -f bug && exit 1
exit 0
SCRIPT
chmod +x "$demo/test.sh"
echo "== farm bisect --agents 4 on $demo/repo"
time "$build/bin/farm" bisect --repo "$demo/repo" --good "$good" --bad main --agents 4 \
  --log "$demo/farm-bisect.log" -- "$demo/test.sh" | tee "$demo/farm.out"
echo
echo "== git bisect run, for comparison"
cd "$demo/repo"
git bisect start main "$good" >/dev/null
time git bisect run "$demo/test.sh" > "$demo/git.out"
grep -A3 "is the first bad commit" "$demo/git.out"
git bisect reset >/dev/null 2>&1
first_bad() { sed -n 's/^\([0-9a-f]\{40\}\) is the first bad commit$/\1/p' "$1" | head -n 1; }
farm_answer=$(first_bad "$demo/farm.out")
git_answer=$(first_bad "$demo/git.out")
echo "demo files in $demo"
if [ -z "$farm_answer" ] || [ "$farm_answer" != "$git_answer" ]; then
  echo "demo: farm said '${farm_answer:-nothing}', git bisect run said '${git_answer:-nothing}'" >&2
  exit 1
fi
echo "demo: both name $farm_answer"
