#!/usr/bin/env bash
# Builds the libFuzzer targets with clang 14 (fuzz/CMakeLists.txt) and fuzzes each for a
# bounded time: FUZZ_SECONDS, default 30 s a target. Each run starts from its seed corpus
# (fuzz/corpus/<target>/, replayed first) and writes new inputs into a corpus in the build
# tree, never into the source tree. Exits non-zero when a target finds a failing input; the
# input is then in build/fuzz/fuzz/ (rerun it with build/fuzz/fuzz/<target> <that file>).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-30}
targets=(fuzz_decode fuzz_encode fuzz_read_line fuzz_tls)

cmake -S . -B build/fuzz -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
  -DCMAKE_BUILD_TYPE=Debug -DRILL_BUILD_FUZZ=ON -DRILL_BUILD_TESTS=OFF -DRILL_BUILD_TOOLS=OFF \
  -DRILL_BUILD_BENCH=OFF -DRILL_FUZZ_SECONDS="$seconds" -DRILL_WERROR="${RILL_WERROR:-OFF}" >/dev/null
cmake --build build/fuzz -j"${JOBS:-$(nproc)}" --target "${targets[@]}"
for target in "${targets[@]}"; do
  echo "=== fuzz: $target for ${seconds} s" >&2
  # libFuzzer prints a line per new input: keep it in a log, show its end (the final stats).
  log=build/fuzz/$target.log
  if ! cmake --build build/fuzz --target "${target}_run" >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz: $target failed; full output in $log" >&2
    exit 1
  fi
  tail -n 12 "$log" >&2
done
