#!/bin/bash
# The whole test suite on a fresh Debian 12 machine: install, build (warnings are errors), run
# every test. Ends with ctest's summary. Usage: bash tests/run-suite.sh [ctest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup-debian.sh
# A real kernel (Debian's cloud kernel) for the boot tests; cached, idempotent.
bash tests/e2e/fetch-kernel.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFARM_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)"
cd build
exec ctest --output-on-failure -j"$(nproc)" "$@"
