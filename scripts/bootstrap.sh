#!/usr/bin/env bash
# Makes a fresh Debian 12 machine (as root) ready to run the gateway and its tests:
# the Debian packages listed in scripts/apt/*.txt and the npm dependencies (npm ci).
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

want=$(grep -hv '^\s*#' scripts/apt/*.txt | awk 'NF{print $1}' | sort -u)
# Packages installed without recommends (large recommends we do not need).
norec=$(grep -hv '^\s*#' scripts/apt/*.txt | awk '$2=="no-recommends"{print $1}' | sort -u)
missing=()
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "bootstrap: run as root to install: ${missing[*]}" >&2; exit 1; fi
  echo "bootstrap: installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  rec=(); plain=()
  for p in "${missing[@]}"; do if grep -qx "$p" <<<"$norec"; then rec+=("$p"); else plain+=("$p"); fi; done
  [ ${#plain[@]} -eq 0 ] || apt-get install -y -qq "${plain[@]}" >/dev/null
  [ ${#rec[@]} -eq 0 ] || apt-get install -y -qq --no-install-recommends "${rec[@]}" >/dev/null
fi

# npm dependencies: npm ci when package-lock.json changed since the last install.
stamp=node_modules/.bootstrap-lock-sha
sha=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sha" ]; then
  echo "bootstrap: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
  echo "$sha" > "$stamp"
fi
