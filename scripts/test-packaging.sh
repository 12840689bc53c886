#!/usr/bin/env bash
# Tests that other projects can use rill: builds the small consumer in tests/packaging/ (one
# echo over loopback) four ways and runs each, bounded by `timeout 60`:
#   find_package      find_package(rill) after `cmake --install` into a temporary prefix
#   add_subdirectory  this source tree embedded (only the library may get built)
#   pkg_config        a plain Makefile using `pkg-config --static --cflags --libs rill`
#   without_tls       embedded with -DRILL_WITH_TLS=OFF: builds without OpenSSL, links no libssl
# Prints one line per consumer (with its log when it fails); exits 1 if any fails.
# Run by scripts/test.sh; needs what scripts/install-deps.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
source_dir=$PWD
consumers=$source_dir/tests/packaging
jobs=$(nproc)
build=build/packaging

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
prefix=$scratch/prefix

echo "=== packaging: build rill (Release, library only) and install it into a temporary prefix" >&2
if ! { cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DRILL_INSTALL=ON \
         -DRILL_BUILD_TESTS=OFF -DRILL_BUILD_TOOLS=OFF -DRILL_BUILD_BENCH=OFF -DRILL_BUILD_FUZZ=OFF &&
       cmake --build "$build" -j"$jobs" &&
       cmake --install "$build" --prefix "$prefix"; } >"$scratch/rill.log" 2>&1; then
  cat "$scratch/rill.log" >&2
  echo "packaging: building or installing rill failed" >&2
  exit 1
fi

# Each build_* function builds $1/consumer_echo; a failing step fails the function (they are
# called where `set -e` does not apply, hence the &&).
build_find_package() {
  cmake -S "$consumers/find_package" -B "$1" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$prefix" &&
    cmake --build "$1" -j"$jobs" &&
    # The rill found must be the one just installed, not one elsewhere on the machine.
    grep -qx "rill_DIR:PATH=$prefix/.*/cmake/rill" "$1/CMakeCache.txt"
}

build_add_subdirectory() {
  cmake -S "$consumers/add_subdirectory" -B "$1" -DCMAKE_BUILD_TYPE=Release &&
    cmake --build "$1" -j"$jobs"
}

build_without_tls() {
  cmake -S "$consumers/add_subdirectory" -B "$1" -DCMAKE_BUILD_TYPE=Release -DRILL_WITH_TLS=OFF &&
    cmake --build "$1" -j"$jobs" &&
    if ldd "$1/consumer_echo" | grep -q libssl; then
      echo "consumer_echo links libssl although rill was built with RILL_WITH_TLS=OFF"
      false
    fi
}

build_pkg_config() {
  local pc_file
  pc_file=$(find "$prefix" -name rill.pc -path '*/pkgconfig/*') &&
    [ -n "$pc_file" ] &&
    PKG_CONFIG_PATH="$(dirname "$pc_file")" make -C "$1" -f "$consumers/pkg_config/Makefile"
}

failures=0
for consumer in find_package add_subdirectory pkg_config without_tls; do
  dir=$scratch/$consumer
  mkdir -p "$dir"
  start=$SECONDS
  if "build_$consumer" "$dir" >"$dir.log" 2>&1 &&
     timeout 60 "$dir/consumer_echo" >>"$dir.log" 2>&1; then
    echo "packaging: $consumer: ok ($((SECONDS - start)) s)"
  else
    echo "packaging: $consumer: FAILED ($((SECONDS - start)) s)"
    sed 's/^/    /' "$dir.log"
    failures=$((failures + 1))
  fi
done
[ "$failures" -eq 0 ]
