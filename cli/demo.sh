#!/bin/bash
# The main job on a fresh Debian 12 machine: install, build, then bisect a generated repository
# of 2,000 commits (merge-heavy, like the kernel's history) with 4 local agents and a test that
# takes about a second, next to `git bisect run` doing the same.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup-debian.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target farm farm-coordinator farm-agent
demo=$(mktemp -d /tmp/farm-demo.XXXXXX)
python3 tests/lib/make_repo.py "$demo/repo" --shape merges --commits 2000 --seed 42 > "$demo/repo.json"
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
time build/bin/farm bisect --repo "$demo/repo" --good "$good" --bad main --agents 4 \
  --log "$demo/farm-bisect.log" -- "$demo/test.sh"
echo
echo "== git bisect run, for comparison"
cd "$demo/repo"
git bisect start main "$good" >/dev/null
time git bisect run "$demo/test.sh" | grep -A3 "is the first bad commit"
git bisect reset >/dev/null 2>&1
echo "demo files in $demo"
