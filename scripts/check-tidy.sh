#!/usr/bin/env bash
# Runs clang-tidy 14 (checks in .clang-tidy) over src/ and tools/, two files at a time, with the
# compile commands of the clang preset (configured here when missing). Prints each finding once
# and exits non-zero when there is any.
set -euo pipefail
cd "$(dirname "$0")/.."
db=build/clang
if [ ! -f "$db/compile_commands.json" ]; then
  cmake --preset clang >/dev/null
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
find src tools -name '*.cpp' -print0 | sort -z |
  xargs -0 -n1 -P"${JOBS:-2}" clang-tidy-14 -p "$db" --quiet --warnings-as-errors='*' \
    >"$out" 2>/dev/null || status=$?
# A header's finding shows once per file that includes it: keep the first.
grep -E '^[^ ].*: (warning|error): ' "$out" | sort -u >&2 || true
if [ "$status" -ne 0 ]; then
  echo "check-tidy: findings above (or clang-tidy failed; rerun one file by hand)" >&2
  exit 1
fi
echo "check-tidy: clean" >&2
