#!/bin/bash
# The whole test suite on a fresh Debian 12 machine: install, build (warnings are errors), run
# every test. Ends with ctest's summary. Usage: bash tests/run-suite.sh [ctest args...]
# As root or as a user with sudo (only apt-get runs through it). After a first run it needs no
# network: without one and without the kernels, the boot tests are SKIPPED, saying why.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup-debian.sh
# Real kernels for the boot tests, cached: Debian's cloud kernel, and the generic one for its 9p
# modules (the --share/--result-file boot test). Root's cache is /var/cache, another user's their
# own (the tests read FARM_KERNEL_CACHE).
if [ -z "${FARM_KERNEL_CACHE:-}" ] && [ "$(id -u)" -ne 0 ]; then
  FARM_KERNEL_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/farm-test-kernels
fi
[ -z "${FARM_KERNEL_CACHE:-}" ] || export FARM_KERNEL_CACHE
for flavour in cloud generic; do
  if ! bash tests/e2e/fetch-kernel.sh "$flavour" >/dev/null; then
    echo "run-suite: no $flavour kernel (see above): the boot tests that need it will be SKIPPED"
  fi
done
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFARM_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)"
cd build
exec ctest --output-on-failure -j"$(nproc)" "$@"
