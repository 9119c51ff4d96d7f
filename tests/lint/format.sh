#!/bin/bash
# `clang-format --dry-run -Werror` over the tree's C, C++ and proto sources (git ls-files: nothing
# under build/ or generated), with the repository's .clang-format.
#
# Usage: tests/lint/format.sh SOURCE_DIR
# Exit: 0 formatted; 1 files differ (each named, with clang-format's first complaints);
#       77 skipped (no clang-format-14, or SOURCE_DIR is not a git checkout).
set -uo pipefail
src=${1:?usage: format.sh SOURCE_DIR}
formatter=$(command -v clang-format-14 || true)
if [ -z "$formatter" ]; then
  echo "SKIPPED: clang-format-14 is not installed (apt-get install clang-format-14)"
  exit 77
fi
cd "$src" || exit 1
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "SKIPPED: $src is not a git checkout"
  exit 77
fi
start=$(date +%s%N)
files=()
while IFS= read -r -d '' f; do
  [ -f "$f" ] && files+=("$f")  # a file deleted in the work tree is not checked
done < <(git ls-files -z -- '*.cc' '*.h' '*.c' '*.proto')
# One process for every file; each complaint is "FILE:LINE:COL: error: code should be
# clang-formatted".
out=$("$formatter" --dry-run -Werror --style=file "${files[@]}" 2>&1)
rc=$?
mapfile -t bad < <(printf '%s\n' "$out" | sed -n 's/^\(.*\):[0-9]*:[0-9]*: error: .*/\1/p' | sort -u)
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
echo "clang-format: ${#files[@]} files, ${#bad[@]} not formatted, ${elapsed} ms"
if [ $rc -ne 0 ] || [ ${#bad[@]} -gt 0 ]; then
  printf '%s\n' "$out" | head -n 40
  printf '  not formatted: %s\n' "${bad[@]}"
  echo "fix with: clang-format-14 -i FILE (the repository's .clang-format)"
  exit 1
fi
