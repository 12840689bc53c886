#!/usr/bin/env bash
# Installs the Debian 12 packages rill needs to build, test and benchmark (as root).
# Does nothing when everything is already there, so it is cheap to call before every build.
set -euo pipefail

packages=(
  g++ cmake make pkg-config          # toolchain
  clang-14 libclang-rt-14-dev        # the clang build, libFuzzer and clang's sanitizers
  clang-tidy-14 clang-format-14      # scripts/check-tidy.sh, scripts/check-format.sh
  liburing-dev libboost-context-dev  # io_uring and fiber switches
  libssl-dev openssl                 # TLS (OpenSSL 3); the openssl command for the TLS tests
  libgtest-dev libgmock-dev          # tests
  libbenchmark-dev                   # micro-benchmarks
  gambc                              # Gambit Scheme 4.9: the reference implementation
  netcat-openbsd iproute2 procps     # nc, ss and ps for the interop and option tests
  curl python3-prometheus-client     # the rill echo --metrics test: a scrape, parsed as Prometheus does
)

missing=()
for p in "${packages[@]}"; do
  if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}; run this script as root (or install them)" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
