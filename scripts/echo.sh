#!/usr/bin/env bash
# Builds rill (release) and runs the seed's echo server on 127.0.0.1:2020.
# Try it with: build/release/examples/echo_client   (or: printf 'hello\n' | nc 127.0.0.1 2020)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target echo echo_client
echo "echo server listening on 127.0.0.1:2020 (Ctrl-C stops it)" >&2
exec build/release/examples/echo
