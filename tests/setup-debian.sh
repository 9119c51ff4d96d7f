#!/bin/bash
# Installs what the farm needs to build, test and run on Debian 12. Safe to run again: apt-get
# only installs what is missing (and is skipped entirely when nothing is).
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config git ccache python3
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libgit2-dev libabsl-dev libsqlite3-dev libcli11-dev libspdlog-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  openssl libssl-dev zlib1g-dev libyaml-cpp-dev libcpp-httplib-dev
  clang-14 clang-format-14
  qemu-system-x86 busybox-static cpio libc6-dev musl-tools lz4 xz-utils zstd
  bc bison flex libelf-dev linux-source-6.1 redis-server
  clang-14 libclang-rt-14-dev file sudo
  # kexec agents (farm-agent --kexec) and their e2e test, which copies kexec into a VM
  kexec-tools e2fsprogs
)
# Installed without their recommended packages too: chromium (headless) is the browser of the
# dashboard's test (tests/browser), driven over its DevTools pipe by node (nodejs).
lean_browser=(chromium nodejs)
# Installed without their recommended packages: ansible-core recommends the 260 MB `ansible`
# collection bundle, which the roles (ansible/, ansible.builtin only) do not use.
lean_packages=(ansible-core "${lean_browser[@]}")
missing=() missing_lean=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
for p in "${lean_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing_lean+=("$p")
done
if [ $((${#missing[@]} + ${#missing_lean[@]})) -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "installing: ${missing[*]} ${missing_lean[*]}"
  $sudo apt-get update -qq
  if [ ${#missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if [ ${#missing_lean[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
      "${missing_lean[@]}" >/dev/null
  fi
fi
