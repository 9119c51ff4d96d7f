#!/bin/bash
# Fetches a Debian 12 kernel for the boot e2e tests into $FARM_KERNEL_CACHE (default
# /var/cache/farm-test-kernels for root, ~/.cache/farm-test-kernels for other users; the tests read
# $FARM_KERNEL_CACHE, which tests/run-suite.sh sets). Idempotent: does nothing when the kernel is
# already there, so it works offline after a first run.
#
#   fetch-kernel.sh [cloud]   linux-image-6.1.0-N-cloud-amd64 -> debian-cloud/   (27 MB download)
#   fetch-kernel.sh generic   linux-image-6.1.0-N-amd64       -> debian-generic/ (71 MB download;
#                             its 9p is a module, which the 9p result-file test needs)
#
# N is the newest the apt sources offer. Each directory gets vmlinuz, config, version,
# modules/ (the virtio, block and 9p modules of the package, with modules.builtin), which
# `farm boot --modules-dir` and the tests load into the initramfs, and vmlinux (the ELF inside
# vmlinuz, bootable through PVH) when it can be extracted. Needs apt-get and dpkg (no root: the
# package is downloaded, not installed) and the network. Prints the kernel's path; exits 1,
# saying why, when it cannot fetch it.
set -euo pipefail

flavour=${1:-cloud}
case "$flavour" in
  cloud) pattern='^linux-image-6\.1\.0-[0-9]+-cloud-amd64$' ;;
  generic) pattern='^linux-image-6\.1\.0-[0-9]+-amd64$' ;;
  *) echo "usage: $0 [cloud|generic]" >&2; exit 2 ;;
esac
if [ "$(id -u)" -eq 0 ]; then
  cache=${FARM_KERNEL_CACHE:-/var/cache/farm-test-kernels}
else
  cache=${FARM_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/farm-test-kernels}
fi
dest=$cache/debian-$flavour
if [ -s "$dest/vmlinuz" ]; then
  echo "$dest/vmlinuz"
  exit 0
fi
for tool in apt-get apt-cache dpkg flock; do
  command -v "$tool" >/dev/null || { echo "fetch-kernel.sh: $tool is needed (Debian)" >&2; exit 1; }
done
if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
  echo "fetch-kernel.sh: cannot write $cache: set FARM_KERNEL_CACHE to a directory you own" >&2
  exit 1
fi

# One fetch at a time (parallel test runs share the cache).
exec 9>"$cache/.debian-$flavour.lock"
flock 9
if [ -s "$dest/vmlinuz" ]; then
  echo "$dest/vmlinuz"
  exit 0
fi

newest() {
  apt-cache search --names-only "$pattern" 2>/dev/null | awk '{print $1}' | sort -V | tail -n 1
}
pkg=$(newest)
if [ -z "$pkg" ] && [ "$(id -u)" -eq 0 ]; then
  apt-get update -qq >/dev/null 2>&1 || true
  pkg=$(newest)
fi
if [ -z "$pkg" ]; then
  echo "fetch-kernel.sh: apt knows no package matching $pattern (Debian 12? apt-get update?)" >&2
  exit 1
fi

tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(
  cd "$tmp"
  # As root, apt drops to _apt for downloads, which cannot write here: download as root instead.
  sandbox=()
  [ "$(id -u)" -ne 0 ] || sandbox=(-o APT::Sandbox::User=root)
  apt-get download -qq "${sandbox[@]}" "$pkg" >/dev/null && dpkg -x ./*.deb x
) || {
  echo "fetch-kernel.sh: cannot download $pkg (no network? apt sources?)" >&2
  exit 1
}
vmlinuz=$(ls "$tmp"/x/boot/vmlinuz-* | head -n 1)
version=${vmlinuz##*/vmlinuz-}
mkdir -p "$tmp/out/modules/kernel"
cp "$vmlinuz" "$tmp/out/vmlinuz"
cp "$tmp/x/boot/config-$version" "$tmp/out/config"
echo "$version" >"$tmp/out/version"
src=$tmp/x/lib/modules/$version
cp "$src"/modules.builtin "$src"/modules.order "$tmp/out/modules/" 2>/dev/null || true
for d in drivers/virtio drivers/block net/9p fs/9p fs/netfs fs/fscache; do
  if [ -d "$src/kernel/$d" ]; then
    mkdir -p "$tmp/out/modules/kernel/$d"
    cp -r "$src/kernel/$d/." "$tmp/out/modules/kernel/$d/"
  fi
done
# The ELF inside the bzImage: with CONFIG_PVH (Debian has it) qemu boots it through the PVH entry,
# skipping the decompressor, a few tenths of a second under TCG. Optional: needs python3 and the
# payload's decompressor.
if command -v python3 >/dev/null; then
  python3 - "$tmp/out/vmlinuz" "$tmp/payload" <<'PY' || true
import struct, sys
data = open(sys.argv[1], 'rb').read()
if data[0x202:0x206] != b'HdrS':
    sys.exit(1)
start = ((data[0x1f1] or 4) + 1) * 512
offset, length = struct.unpack_from('<II', data, 0x248)
open(sys.argv[2], 'wb').write(data[start + offset:start + offset + length])
PY
  if [ -s "$tmp/payload" ]; then
    case "$(head -c 6 "$tmp/payload" | od -An -tx1 | tr -d ' \n')" in
      1f8b*) dec="gzip -dc" ;;
      fd377a585a00) dec="xz -dc" ;;
      02214c18*) dec="lz4 -dc" ;;
      28b52ffd*) dec="zstd -dc" ;;
      5d0000*) dec="xz --format=lzma -dc" ;;
      425a68*) dec="bzip2 -dc" ;;
      *) dec="" ;;
    esac
    # Decompressors complain about the size the kernel appends after the stream: check the ELF.
    if [ -n "$dec" ] && command -v "${dec%% *}" >/dev/null; then
      $dec <"$tmp/payload" >"$tmp/out/vmlinux" 2>/dev/null || true
      [ "$(head -c 4 "$tmp/out/vmlinux" | od -An -c | tr -d ' ')" = '177ELF' ] || rm -f "$tmp/out/vmlinux"
    fi
    rm -f "$tmp/payload"
  fi
fi
rm -rf "$dest"
mv "$tmp/out" "$dest"
echo "$dest/vmlinuz"
