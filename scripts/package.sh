#!/usr/bin/env bash
# Builds the Debian package with dpkg-deb (run through `npm run package`, after the bootstrap):
#   build/pve-smbgateway_<version>_amd64.deb
# - compiled JavaScript (tsc, src/ only) under /usr/lib/pve-smbgateway/dist;
# - a private Node.js runtime, /usr/lib/pve-smbgateway/bin/node: a copy of the node this is built with,
#   the one the tests run on (Debian 12 ships Node 18, the code needs 20; see README);
# - the production dependencies (npm ci --omit=dev), better-sqlite3's addon compiled for that runtime
#   (the checkout's own build when it loads in it), cached per lockfile and Node ABI;
# - man pages and bash completion generated from the operation declarations (scripts/gen-docs.ts);
# - systemd unit, conffile, maintainer scripts from packaging/deb/.
# A package whose inputs did not change is not built again (PKG_REBUILD=1 forces it): the compiled
# dependencies and the packages are kept per input hash in $PKG_CACHE (default ~/.cache/pve-smbgateway-pkg),
# shared by every checkout on the machine (CI's fresh clones too). Prints the path.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
out=${PKG_OUT:-$top/build}
version=$(node -p 'require("./package.json").version')
arch=amd64
deb=$out/pve-smbgateway_${version}_${arch}.deb
node_bin=$(readlink -f "$(command -v node)")
cache=${PKG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pve-smbgateway-pkg}
mkdir -p "$out" "$cache"

# Inputs of the package: the tracked and untracked files that go into it, and the runtime.
key=$( { git ls-files -co --exclude-standard -- src packaging scripts/package.sh scripts/bundle-cli.mjs scripts/gen-docs.ts tsconfig.json tsconfig.pkg.json package.json package-lock.json \
	| LC_ALL=C sort | xargs sha256sum; sha256sum "$node_bin"; } | sha256sum | cut -c1-16)
if [ -z "${PKG_REBUILD:-}" ] && [ -f "$deb" ] && [ "$(cat "$deb.key" 2>/dev/null)" = "$key" ]; then
	echo "package: $deb is up to date" >&2
	echo "$deb"
	exit 0
fi
if [ -z "${PKG_REBUILD:-}" ] && [ -f "$cache/debs/$key.deb" ]; then
	cp "$cache/debs/$key.deb" "$deb.tmp" && mv "$deb.tmp" "$deb"
	echo "$key" > "$deb.key"
	echo "package: $deb from the cache (same inputs)" >&2
	echo "$deb"
	exit 0
fi

t0=$(date +%s)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
stage=$out/stage
rm -rf "$stage"
lib=$stage/usr/lib/pve-smbgateway
mkdir -p "$lib/bin" "$stage/DEBIAN"

# 1. JavaScript, and the web UI beside it: its page and its bundle (script and stylesheet, uPlot
# included), built here so that the package needs no esbuild (web/static.ts looks in ui/ first).
npx tsc -p tsconfig.pkg.json --outDir "$lib/dist"
# The command runs bundled (fewer files for Node to load; scripts/bundle-cli.mjs).
node scripts/bundle-cli.mjs "$lib/dist/cli"
node --import tsx src/web/build.ts >&2
mkdir -p "$lib/dist/src/web/ui"
cp src/web/ui/index.html "$lib/dist/src/web/ui/"
cp dist/web/app.js dist/web/app.css "$lib/dist/src/web/ui/"
# The entry points run through the wrappers below, not as scripts of their own.
find "$lib/dist" -name '*.js' -exec sed -i '1{/^#!/d}' {} +
printf '{\n  "name": "pve-smbgateway",\n  "version": "%s",\n  "private": true,\n  "type": "module"\n}\n' "$version" > "$lib/package.json"

# 2. The runtime (debug symbols stripped: 99 MB -> ~90 MB).
install -m 0755 "$node_bin" "$lib/bin/node"
strip --strip-unneeded "$lib/bin/node"

# 3. Production dependencies, compiled once per lockfile and Node ABI.
mkey=$( { cat package-lock.json; "$node_bin" -p 'process.version + process.versions.modules'; } | sha256sum | cut -c1-16)
mods=$cache/prod-modules-$mkey
if [ ! -d "$mods" ]; then
	tmp=$cache/.tmp-$$
	rm -rf "$tmp" && mkdir -p "$tmp"
	cp package.json package-lock.json "$tmp/"
	(cd "$tmp" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
	# The addon: the checkout's own build when it is of the same version and loads in this runtime (the
	# bootstrap compiled it with this node), else compiled here. Compiling takes minutes on 2 cores.
	addon=node_modules/better-sqlite3/build/Release/better_sqlite3.node
	v() { "$node_bin" -p "require('./$1/better-sqlite3/package.json').version" 2>/dev/null; }
	if [ -f "$addon" ] && [ "$(v node_modules)" = "$(cd "$tmp" && v node_modules)" ] \
		&& "$node_bin" -e "new (require('$top/node_modules/better-sqlite3'))(':memory:')" 2>/dev/null; then
		install -D -m 0644 "$addon" "$tmp/$addon"
	else
		(cd "$tmp" && npm rebuild better-sqlite3 --loglevel=error >&2)
	fi
	rm -rf "$mods" && mv "$tmp" "$mods"
	find "$cache" -maxdepth 1 -name 'prod-modules-*' ! -name "prod-modules-$mkey" -exec rm -rf {} +
fi
# Only what runs: better-sqlite3 (its JS and the addon) and what it requires at run time, and yaml. tsx is
# for running the TypeScript sources from a checkout; the package runs the compiled JavaScript.
nm=$lib/node_modules
mkdir -p "$nm/better-sqlite3/build/Release"
cp -r "$mods/node_modules/better-sqlite3/lib" "$mods/node_modules/better-sqlite3/package.json" "$mods/node_modules/better-sqlite3/LICENSE" "$nm/better-sqlite3/"
install -m 0644 "$mods/node_modules/better-sqlite3/build/Release/better_sqlite3.node" "$nm/better-sqlite3/build/Release/"
strip --strip-unneeded "$nm/better-sqlite3/build/Release/better_sqlite3.node"
# yaml: apply -f and show --format yaml (pure JavaScript, no dependencies of its own).
for m in bindings file-uri-to-path yaml; do cp -r "$mods/node_modules/$m" "$nm/$m"; done
find "$nm" -name '.*' -type f -delete
# Library code only: yaml's command-line entry (a `#!/usr/bin/env node` script, which lintian rightly says
# no dependency satisfies) is not used; the gateway imports the library.
rm -f "$nm/yaml/bin.mjs"

# 4. Commands.
install -d "$stage/usr/bin" "$stage/usr/sbin"
cat > "$stage/usr/bin/pve-smbgateway" <<'SH'
#!/bin/sh
exec /usr/lib/pve-smbgateway/bin/node /usr/lib/pve-smbgateway/dist/cli/main.js "$@"
SH
# A small young generation keeps the daemon's resident size low (its allocations are short-lived).
cat > "$stage/usr/sbin/pve-smbgatewayd" <<'SH'
#!/bin/sh
exec /usr/lib/pve-smbgateway/bin/node --max-semi-space-size=1 --max-old-space-size=64 /usr/lib/pve-smbgateway/dist/src/web/main.js "$@"
SH
# The vzdump hook (docs/backup.md): `script: /usr/lib/pve-smbgateway/bin/pve-smbgateway-vzdump-hook`.
cat > "$lib/bin/pve-smbgateway-vzdump-hook" <<'SH'
#!/bin/sh
exec /usr/lib/pve-smbgateway/bin/node /usr/lib/pve-smbgateway/dist/src/cli/vzdump-hook.js "$@"
SH
chmod 0755 "$stage/usr/bin/pve-smbgateway" "$stage/usr/sbin/pve-smbgatewayd" "$lib/bin/pve-smbgateway-vzdump-hook"

# 5. Man pages and completion, from the operation declarations.
gen=$out/gen-docs
rm -rf "$gen"
node --import tsx scripts/gen-docs.ts "$gen"
install -d "$stage/usr/share/man/man1" "$stage/usr/share/man/man8" "$stage/usr/share/bash-completion/completions"
gzip -9n < "$gen/pve-smbgateway.1" > "$stage/usr/share/man/man1/pve-smbgateway.1.gz"
gzip -9n < "$gen/pve-smbgatewayd.8" > "$stage/usr/share/man/man8/pve-smbgatewayd.8.gz"
install -m 0644 "$gen/pve-smbgateway.bash" "$stage/usr/share/bash-completion/completions/pve-smbgateway"

# 6. systemd, config, docs.
install -D -m 0644 packaging/deb/pve-smbgatewayd.service "$stage/lib/systemd/system/pve-smbgatewayd.service"
install -D -m 0644 packaging/deb/daemon.json "$stage/etc/smbgateway/daemon.json"
doc=$stage/usr/share/doc/pve-smbgateway
install -d "$doc"
node_licence=$(dirname "$node_bin")/../share/doc/nodejs/LICENSE
[ -f "$node_licence" ] || { echo "package: no licence file of the Node.js runtime at $node_licence" >&2; exit 1; }
{ cat packaging/deb/copyright
  printf '\nFiles: usr/lib/pve-smbgateway/bin/node\nCopyright: Node.js contributors and others\nLicense: Node.js\n'
  printf ' Node.js is MIT-licensed; it bundles libraries under their own licences (MIT, BSD,\n Apache-2.0, ISC, zlib, ...). Their full texts are in\n /usr/share/doc/pve-smbgateway/nodejs-LICENSE.gz (Node.js'"'"'s LICENSE file as shipped).\n'
} > "$doc/copyright"
gzip -9n < "$node_licence" > "$doc/nodejs-LICENSE.gz"
install -D -m 0644 packaging/deb/lintian-overrides "$stage/usr/share/lintian/overrides/pve-smbgateway"
date_rfc=$(date -u -R -d "@$SOURCE_DATE_EPOCH")
printf 'pve-smbgateway (%s) unstable; urgency=medium\n\n  * Release %s.\n\n -- pve-smbgateway developers <pve-smbgateway@lists.example.org>  %s\n' \
	"$version" "$version" "$date_rfc" | gzip -9n > "$doc/changelog.gz"

# 7. Control area.
for f in postinst prerm postrm; do install -m 0755 "packaging/deb/$f" "$stage/DEBIAN/$f"; done
echo /etc/smbgateway/daemon.json > "$stage/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@SIZE@/$size/" packaging/deb/control.in > "$stage/DEBIAN/control"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) > "$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/md5sums" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/control"

# Smoke test before packing: the shipped runtime loads the compiled CLI and the native addon.
"$lib/bin/node" -e "const D = (await import('$nm/better-sqlite3/lib/index.js')).default; new D(':memory:').prepare('select 1').get();" --input-type=module
"$lib/bin/node" "$lib/dist/cli/main.js" help >/dev/null

find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb.tmp" >&2
mv "$deb.tmp" "$deb"
echo "$key" > "$deb.key"
# Kept for other checkouts: the last few packages only.
mkdir -p "$cache/debs"
cp "$deb" "$cache/debs/.$key.tmp" && mv "$cache/debs/.$key.tmp" "$cache/debs/$key.deb"
ls -1t "$cache/debs"/*.deb | tail -n +4 | xargs -r rm -f
echo "package: built $deb ($(du -h "$deb" | cut -f1), installed ${size} KiB) in $(( $(date +%s) - t0 )) s" >&2
echo "$deb"
