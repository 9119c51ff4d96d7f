#!/bin/bash
# Builds the fuzz targets with clang + libFuzzer + AddressSanitizer + UBSan in their own build
# directory and runs each for a fixed time, starting from the checked-in inputs
# (tests/fuzz/corpus/<target>). Prints each target's executions per second and any crash, leak,
# timeout, undefined behaviour or broken property, with the reproducer. The ctest fuzz.libfuzzer
# runs it.
#
# Usage: bench/run-fuzz.sh [SECONDS_PER_TARGET] [TARGET...]    (default 60 s; all targets)
# Needs: clang, libclang-rt-14-dev (Debian 12). gRPC, protobuf and Abseil stay Debian's gcc builds;
# only the farm's own code is instrumented.
# Environment: FARM_FUZZ_BUILD (build dir, default build-fuzz), FARM_FUZZ_JOBS (default 2),
# FARM_FUZZ_STRICT=0 (a survey: report each kind of broken property once and carry on, instead of
# stopping at the first as a crash).
# Exit status: 0 when no target crashed or broke a property, 1 otherwise, 77 (SKIPPED) when clang
# or its sanitizer runtime is missing, 2 when the build fails.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(jobfile submit_bisect agent_stream grpc_services small_inflate)
build=$(realpath -m "${FARM_FUZZ_BUILD:-build-fuzz}")
jobs=${FARM_FUZZ_JOBS:-2}

for tool in clang clang++; do
  command -v $tool >/dev/null || { echo "SKIPPED: $tool is missing (apt-get install clang-14)"; exit 77; }
done
sanitizers=fuzzer-no-link,address,undefined
if ! echo 'int main(){}' | clang -x c - -fsanitize=$sanitizers -o /dev/null 2>/dev/null; then
  echo "SKIPPED: clang cannot link its sanitizers (apt-get install libclang-rt-14-dev)"
  exit 77
fi

# UBSan stops at the first report (-fno-sanitize-recover), so that libFuzzer keeps the input.
flags="-fsanitize=$sanitizers -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DFARM_FUZZ=ON -DFARM_BUILD_BENCH=OFF \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >"$build.configure.log" 2>&1 \
  || { echo "run-fuzz: configure failed, see $build.configure.log"; tail -20 "$build.configure.log"; exit 2; }
start=$(date +%s)
ninja -C "$build" -j"$jobs" $(printf 'fuzz_%s ' "${targets[@]}") >"$build.build.log" 2>&1 \
  || { echo "run-fuzz: build failed, see $build.build.log"; grep -m20 -E 'error|FAILED' "$build.build.log"; exit 2; }
echo "run-fuzz: build took $(( $(date +%s) - start )) s"

status=0
printf '%-15s %8s %10s %10s %8s  %s\n' target seconds execs exec/s corpus result
for t in "${targets[@]}"; do
  out="$build/fuzz-out/$t"
  rm -rf "$out"
  mkdir -p "$out/corpus" "$out/artifacts" "$out/findings"
  cp tests/fuzz/corpus/"$t"/* "$out/corpus/"
  log="$out/fuzz.log"
  # -rss_limit_mb: the coordinator targets keep a repository and a store per input.
  FARM_FUZZ_FINDINGS="$out/findings" ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    LSAN_OPTIONS="suppressions=$PWD/tests/fuzz/lsan.supp:print_suppressions=0" \
    "$build/bin/fuzz_$t" "$out/corpus" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2560 \
    -max_len=4096 -print_final_stats=1 -artifact_prefix="$out/artifacts/" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  units=$(ls "$out/corpus" | wc -l)
  artifacts=$(ls "$out/artifacts" 2>/dev/null)
  findings=$(grep -c '^FINDING [^ ]*: [^i]' "$log" 2>/dev/null || true)
  result="ok"
  if [ $rc -ne 0 ] || [ -n "$artifacts" ]; then
    result="CRASH (exit $rc)"
    status=1
  elif [ "${findings:-0}" -gt 0 ]; then
    result="$findings finding(s)"
    status=1
  fi
  printf '%-15s %8s %10s %10s %8s  %s\n' "$t" "$seconds" "${execs:-?}" "${rate:-?}" "$units" "$result"
  for a in $artifacts; do
    echo "  reproducer: $out/artifacts/$a  (replay: $build/bin/fuzz_$t $out/artifacts/$a)"
  done
  if [ "$result" != ok ]; then
    grep -E '^(==[0-9]+==ERROR|SUMMARY|FINDING|    #[0-9]+ )' "$log" | head -40 | sed 's/^/  /'
    echo "  full log: $log"
  fi
done
exit $status
