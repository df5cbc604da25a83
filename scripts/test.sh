#!/usr/bin/env bash
# The whole test suite: type check, then every test/**/*.test.ts with node:test through tsx.
# Extra arguments select test files (e.g. scripts/test.sh test/native.test.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
# Type check and build in one: the CLI and daemon then run as compiled JavaScript (bin/ picks dist/
# when it is newer than the sources), as they do when installed.
echo "typecheck and build: tsc" >&2
npx tsc -p tsconfig.json
node scripts/bundle-cli.mjs
# Imports point one way (core < samba < pve < backup < provision < ha < monitor < api < cli < web < demo).
node scripts/deps.mjs >&2
# A test that hangs fails after 20 minutes instead of holding CI to its limit.
runner=(node --import tsx --test --test-reporter=spec --test-timeout=1200000)
if [ $# -gt 0 ]; then exec "${runner[@]}" "$@"; fi
# The whole suite. The files run one after the other (they share one host: accounts, loop devices,
# CPU-sensitive timings), except the real QEMU/TCG VM test: it spends ~4 minutes waiting on the
# emulated guest while the suite as a whole keeps about half of the 2 cores idle, so it runs beside
# the rest. Its report follows the others'; the exit status fails if either run fails.
mapfile -t files < <(find test -name '*.test.ts' ! -name 'vm-real.test.ts' | sort)
side=$(mktemp)
trap 'rm -f "$side"' EXIT
"${runner[@]}" test/vm-real.test.ts >"$side" 2>&1 &
sidepid=$!
rc=0
"${runner[@]}" "${files[@]}" || rc=$?
siderc=0
wait "$sidepid" || siderc=$?
echo "--- test/vm-real.test.ts (ran beside the others) ---"
cat "$side"
[ "$rc" -ne 0 ] && exit "$rc"
exit "$siderc"
