#!/usr/bin/env bash
# Builds rill and runs every test: the whole suite on both I/O backends (io_uring and epoll),
# in a debug build, under AddressSanitizer + UndefinedBehaviorSanitizer, and under
# ThreadSanitizer (all g++ 12), every build with -Werror (RILL_WERROR); everything is also
# built with clang 14 (-Werror: its warnings, and the compile commands clang-tidy reads);
# then clang-tidy (scripts/check-tidy.sh) and each libFuzzer target, a clang build, for 30 s
# (scripts/fuzz.sh). Installs what it needs first (Debian 12, as root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/check-layers.sh
bash scripts/check-format.sh
jobs=$(nproc)

build_preset() {
  local preset=$1
  echo "=== $preset: build" >&2
  cmake --preset "$preset" -DRILL_WERROR=ON >/dev/null
  cmake --build --preset "$preset" -j"$jobs"
}

run_suite() {
  local preset=$1
  build_preset "$preset"
  echo "=== $preset: ctest (io_uring and epoll)" >&2
  # Two at a time; the suites that measure time run alone (RUN_SERIAL, tests/CMakeLists.txt).
  ctest --test-dir "build/$preset" --output-on-failure --timeout 300 -j"$jobs"
}

run_suite debug
bash scripts/test-packaging.sh  # find_package, add_subdirectory and pkg-config consumers
# The clang build's tests would run the same code paths as the debug suite again (2.5 min of
# CI); its value is clang's own warnings, and the sanitizer runs below cover the rest.
build_preset clang
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_suite asan-ubsan
TSAN_OPTIONS=halt_on_error=1 run_suite tsan

echo "=== clang-tidy (src/, tools/)" >&2
JOBS=$jobs bash scripts/check-tidy.sh
echo "=== fuzz: each target for 30 s" >&2
RILL_WERROR=ON FUZZ_SECONDS=30 JOBS=$jobs bash scripts/fuzz.sh
