#!/bin/bash
# The real kernel bisect fixture: a git repository of Linux 6.1 made from Debian's
# linux-source-6.1 package, with a short series of small commits on top. One of them, the culprit,
# breaks sethostname() for a name of the full 64 bytes (an off-by-one, EINVAL instead of success);
# tests/e2e/kernel/hostname-test.c observes it when run in the guest. The other commits touch
# documentation or comments in other files, so builds between neighbours are incremental.
#
# Made once and cached (the base commit of ~80,000 files takes a few minutes): under
# $FARM_KERNEL_CACHE, default /var/cache/farm-test-kernels:
#   linux-6.1/          the repository (branch main; HEAD is the bad end)
#   linux-6.1.base      sha of "v6.1 (Debian)", the good end
#   linux-6.1.head      sha of the last commit
#   linux-6.1.culprit   sha of the first bad commit
# Commit dates and authors are fixed, so the shas are the same on every machine with the same
# package version. Safe to run concurrently (flock) and again (a stamp records a finished fixture).
#
# Usage: make-linux-repo.sh      prints repo=, base=, head=, culprit= lines on stdout
# Exit status 77 (and a reason on stderr) when linux-source-6.1 is not installed and cannot be.
set -euo pipefail

cache=${FARM_KERNEL_CACHE:-/var/cache/farm-test-kernels}
tarball=${FARM_LINUX_SOURCE_TARBALL:-/usr/src/linux-source-6.1.tar.xz}
fixture_version=1  # bump when the series below changes
repo=$cache/linux-6.1
stamp=$cache/linux-6.1.stamp

print_paths() {
  echo "repo=$repo"
  echo "base=$(cat "$cache/linux-6.1.base")"
  echo "head=$(cat "$cache/linux-6.1.head")"
  echo "culprit=$(cat "$cache/linux-6.1.culprit")"
}

mkdir -p "$cache" || { echo "cannot create $cache (set FARM_KERNEL_CACHE)" >&2; exit 77; }
exec 9>"$cache/.linux-6.1.lock"
flock 9
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$fixture_version" ]; then
  print_paths
  exit 0
fi

if [ ! -f "$tarball" ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "installing linux-source-6.1 ..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-source-6.1 >&2 || true
  fi
  if [ ! -f "$tarball" ]; then
    echo "no $tarball: install Debian's linux-source-6.1 package (apt-get install linux-source-6.1)" >&2
    exit 77
  fi
fi

now() { date +%s.%N; }
t0=$(now)
rm -rf "$repo" "$repo.tmp" "$stamp"
mkdir -p "$repo.tmp"
echo "extracting $tarball ..." >&2
tar -xJf "$tarball" -C "$repo.tmp" --strip-components=1
t1=$(now)

export GIT_AUTHOR_NAME="Farm Fixture" GIT_AUTHOR_EMAIL="fixture@bisect-farm.invalid"
export GIT_COMMITTER_NAME="Farm Fixture" GIT_COMMITTER_EMAIL="fixture@bisect-farm.invalid"
# Fixed dates: one day apart from 2023-01-01 on.
day=0
commit() {  # message
  local date
  date="$((1672531200 + day * 86400)) +0000"
  day=$((day + 1))
  GIT_AUTHOR_DATE=$date GIT_COMMITTER_DATE=$date \
    git -C "$repo.tmp" -c user.name="$GIT_AUTHOR_NAME" -c user.email="$GIT_AUTHOR_EMAIL" \
    commit -q -m "$1"
  git -C "$repo.tmp" rev-parse HEAD
}
# Applies a perl substitution to a file and stages it; fails loudly if nothing changed.
edit() {  # file perl-expression
  perl -0pi -e "$2" "$repo.tmp/$1"
  if git -C "$repo.tmp" diff --quiet -- "$1"; then
    echo "fixture edit did not apply to $1: the linux-source-6.1 version is unexpected" >&2
    exit 1
  fi
  git -C "$repo.tmp" add -f -- "$1"  # -f: Debian's .gitignore ignores the top level
}

echo "creating the base commit (a few minutes) ..." >&2
git -C "$repo.tmp" init -q -b main
git -C "$repo.tmp" config core.autocrlf false
git -C "$repo.tmp" config gc.auto 0
# -f: the tarball's content as it is, even files a .gitignore would skip.
git -C "$repo.tmp" add -A -f .
base=$(commit "v6.1 (Debian)

The content of Debian's linux-source-6.1 package, $(basename "$tarball").")
t2=$(now)

edit Documentation/admin-guide/README.rst \
  's/(These are the release notes for Linux version 6\.)/$1 This tree is a test fixture of\nthe bisect farm./'
commit "Documentation: README: say that this tree is a fixture" >/dev/null

edit lib/string.c 's{(\n \* \(Specifically, this file is built with __NO_FORTIFY\.\)\n)}{$1 * Keep this list in the order of <linux/string.h>.\n}'
commit "lib/string: note the order of the routines" >/dev/null

edit MAINTAINERS 's/(\nTHE REST\n)/\nBISECT FARM FIXTURE\nM:\tFarm Fixture <fixture\@bisect-farm.invalid>\nS:\tMaintained\nF:\tDocumentation\/admin-guide\/README.rst\n$1/'
commit "MAINTAINERS: add the bisect farm fixture" >/dev/null

edit fs/open.c 's{( \*  Copyright \(C\) 1991, 1992  Linus Torvalds\n \*/\n)}{$1\n/* open(), close(), truncate() and friends. */\n}'
commit "fs/open: say what the file holds" >/dev/null

edit kernel/sys.c 's{(/\*\n \* Only setdomainname; getdomainname can be implemented by calling\n \* uname\(\)\n \*/)}{/*\n * Only setdomainname: getdomainname can be implemented by calling\n * uname().\n */}'
commit "kernel/sys: punctuation in a comment" >/dev/null

# The culprit: an off-by-one that rejects a hostname of exactly __NEW_UTS_LEN (64) bytes.
edit kernel/sys.c 's{(SYSCALL_DEFINE2\(sethostname.*?)if \(len < 0 \|\| len > __NEW_UTS_LEN\)}{$1if (len < 0 || len >= __NEW_UTS_LEN)}s'
culprit=$(commit "kernel/sys: leave room for the terminating NUL in sethostname()

nodename is __NEW_UTS_LEN + 1 bytes long; reject names that would not
leave room for the NUL.")

edit mm/mmap.c 's{( \* Address space accounting code\t<alan\@lxorguk\.ukuu\.org\.uk>\n \*/\n)}{$1\n/* See Documentation/mm/ for the overview. */\n}'
commit "mm/mmap: point at the documentation" >/dev/null

edit Documentation/admin-guide/README.rst 's/(  Linux is a clone of the operating system Unix, written from scratch by)/$1/; s/loosely-knit team/loosely knit team/'
commit "Documentation: README: hyphenation" >/dev/null

edit kernel/exit.c 's{( \*  Copyright \(C\) 1991, 1992  Linus Torvalds\n \*/\n)}{$1\n/* exit(), wait() and the reaping of tasks. */\n}'
commit "kernel/exit: say what the file holds" >/dev/null

edit lib/string.c 's{ \* Keep this list in the order of <linux/string.h>\.\n}{ * Keep these routines in the order of <linux/string.h>.\n}'
head=$(commit "lib/string: reword the note on the order")
t3=$(now)

# One pack instead of ~80,000 loose objects: faster to open, check out and copy. No delta
# search (--window=0): it would cost minutes for little gain on a single snapshot.
git -C "$repo.tmp" -c pack.threads=2 repack -a -d -q --window=0
git -C "$repo.tmp" prune-packed
t4=$(now)

mv "$repo.tmp" "$repo"
echo "$base" >"$cache/linux-6.1.base"
echo "$head" >"$cache/linux-6.1.head"
echo "$culprit" >"$cache/linux-6.1.culprit"
echo "$fixture_version" >"$stamp"
printf 'fixture made in %.0fs (extract %.0fs, base commit %.0fs, series %.0fs, repack %.0fs)\n' \
  "$(echo "$t4 - $t0" | bc)" "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" \
  "$(echo "$t3 - $t2" | bc)" "$(echo "$t4 - $t3" | bc)" >&2
print_paths
