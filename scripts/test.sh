#!/usr/bin/env bash
# The whole test suite: type check, then every test/**/*.test.ts with node:test through tsx.
# Extra arguments select test files (e.g. scripts/test.sh test/native.test.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
# Type check and build in one: the CLI and daemon then run as compiled JavaScript (bin/ picks dist/
# when it is newer than the sources), as they do when installed.
echo "typecheck and build: tsc" >&2
npx tsc -p tsconfig.json
# Imports point one way (core < samba < pve < backup < provision < ha < monitor < api < cli < web < demo).
node scripts/deps.mjs >&2
if [ $# -gt 0 ]; then files=("$@"); else mapfile -t files < <(find test -name '*.test.ts' | sort); fi
# A test that hangs fails after 20 minutes instead of holding CI to its limit.
exec node --import tsx --test --test-reporter=spec --test-timeout=1200000 "${files[@]}"
