#!/usr/bin/env bash
# The whole test suite: type check, then every test/**/*.test.ts with node:test through tsx.
# Extra arguments select test files (e.g. scripts/test.sh test/native.test.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "typecheck: tsc --noEmit" >&2
npx tsc --noEmit -p tsconfig.json
if [ $# -gt 0 ]; then files=("$@"); else mapfile -t files < <(find test -name '*.test.ts' | sort); fi
# A test that hangs fails after 20 minutes instead of holding CI to its limit.
exec node --import tsx --test --test-reporter=spec --test-timeout=1200000 "${files[@]}"
