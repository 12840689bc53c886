#!/usr/bin/env bash
# Checks that the include arrows between the layers point one way (README, Layout):
#   runtime/ <- io/ <- stream/ (uses text/) <- net/ <- tools/, examples/
# A file may include its own layer and the layers below it, and the public headers
# (<rill/...>) only include each other. Exits non-zero naming every forbidden include.
set -euo pipefail
cd "$(dirname "$0")/.."

failures=0
# check DIR ALLOWED_REGEX [FORBIDDEN_SYSTEM_REGEX]: every #include "..." in DIR must match
# ALLOWED_REGEX; every #include <...> must not match FORBIDDEN_SYSTEM_REGEX.
check() {
  local dir=$1 allowed=$2 forbidden_system=${3:-}
  while IFS=: read -r file line text; do
    local target
    target=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*//' <<<"$text")
    if [[ $target == \"* ]]; then
      local path=${target#\"}
      path=${path%%\"*}
      if ! [[ $path =~ $allowed ]]; then
        echo "check-layers: $file:$line includes \"$path\": $dir may include only $allowed" >&2
        failures=$((failures + 1))
      fi
    elif [[ -n $forbidden_system && $target =~ $forbidden_system ]]; then
      echo "check-layers: $file:$line includes $target, which $dir must not use" >&2
      failures=$((failures + 1))
    fi
  done < <(grep -rn -E '^[[:space:]]*#[[:space:]]*include' "$dir" || true)
}

check src/runtime '^runtime/'
check src/text '^text/'
check src/io '^(io|runtime)/'
# The stream layer knows no TCP: no addresses, no sockets.
check src/stream '^(stream|io|runtime|text)/' '<(rill/(tcp|address)\.hpp|netinet/|arpa/|netdb\.h|sys/socket\.h)>'
check src/net '^(net|stream|io|runtime|text)/'
check include/rill '^$'

if ((failures)); then
  echo "check-layers: $failures forbidden include(s)" >&2
  exit 1
fi
echo "check-layers: the include arrows point one way" >&2
