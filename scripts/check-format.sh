#!/usr/bin/env bash
# Checks that the C and C++ sources follow .clang-format (clang-format 14) without changing
# them; exits non-zero and names each file that would change. Run by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
git ls-files -z -- 'src/*' 'include/*' 'tools/*' 'examples/*' 'tests/*' 'fuzz/*' 'bench/*' |
  grep -zE '\.(cpp|hpp|c)$' |
  xargs -0 -P"${JOBS:-2}" -n16 clang-format-14 --dry-run -Werror --ferror-limit=1
