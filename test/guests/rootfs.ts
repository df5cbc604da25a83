/**
 * A Debian bookworm root filesystem with Samba, built once with debootstrap and cached between runs.
 *
 * - Built from the Debian mirror apt is configured with on this machine (never a hard-coded host).
 * - Cached under <cache>/rootfs-bookworm-<key>, where the key hashes the recipe (suite, packages,
 *   recipe version): a changed recipe builds a new rootfs, an unchanged one is reused.
 * - Built in a temp dir next to the cache and renamed into place (atomic), under a lock, so that
 *   concurrent runs neither collide nor see a half-built tree.
 * - `shiftedRootfs(map)`: a cached copy whose owners are shifted into an unprivileged container's
 *   id range, done the way `pct create` extracts a template (tar inside the user namespace), which keeps
 *   hard links, setuid bits, ACLs and file capabilities right.
 * - `buildCtTemplate()`: a Proxmox-style CT template tarball (vztmpl, .tar.zst) of the same rootfs, and
 *   `extractTemplate()` to unpack such a tarball into a container's id range.
 */
import { mkdir, readFile, readdir, rename, rm, stat, symlink, unlink, writeFile, chown, chmod, truncate } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { withLock } from '../../src/core/lock.ts';
import { cacheRoot, note, pipe, run, since, uid } from './common.ts';
import { LXC_TEMPLATE_PACKAGES } from '../../src/provision/guest.ts';
import { ensureSubids, idmapKey, PROXMOX_IDMAP, toHost, usernsexecArgs, type IdMap } from './idmap.ts';

export const SUITE = 'bookworm';
/** Bump when the recipe below changes in a way the package list does not show. */
const RECIPE_VERSION = 1;
/**
 * Packages of the container rootfs: the gateway template's (Samba, samba-vfs-modules for shadow_copy2,
 * and winbind, libnss-winbind and krb5-user for Active Directory shares: src/provision/guest.ts), smbclient,
 * iproute2 and procps for the tests, systemd as init like a Proxmox standard template. The cache key hashes this list.
 */
export const ROOTFS_PACKAGES = [...LXC_TEMPLATE_PACKAGES, 'smbclient', 'iproute2', 'procps', 'systemd-sysv', 'acl'];

export interface AptSource { uri: string; suites: string[]; components: string[] }

/**
 * Debian sources from apt's configuration texts, both formats: deb822 (`*.sources`: Types/URIs/Suites)
 * and one-line (`sources.list`: `deb [opts] URI suite comps`). Only `deb` entries.
 */
export function parseAptSources(text: string): AptSource[] {
  const out: AptSource[] = [];
  const lines = text.split('\n').map((l) => l.replace(/#.*$/, '').trimEnd());
  if (lines.some((l) => /^(Types|URIs|Suites):/i.test(l))) {
    for (const stanza of text.split(/\n\s*\n/)) {
      const f: Record<string, string> = {};
      for (const l of stanza.split('\n')) {
        const m = /^([A-Za-z-]+):\s*(.*)$/.exec(l.replace(/#.*$/, '').trim());
        if (m) f[m[1]!.toLowerCase()] = m[2]!.trim();
      }
      if (!f.types?.split(/\s+/).includes('deb') || !f.uris || !f.suites) continue;
      if (f.enabled && /^no$/i.test(f.enabled)) continue;
      for (const uri of f.uris.split(/\s+/)) out.push({ uri, suites: f.suites.split(/\s+/), components: (f.components ?? '').split(/\s+/).filter(Boolean) });
    }
    return out;
  }
  for (const l of lines) {
    const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(l.trim());
    if (m) out.push({ uri: m[1]!, suites: [m[2]!], components: m[3]!.split(/\s+/).filter(Boolean) });
  }
  return out;
}

/** The mirror to debootstrap `suite` from: the first apt source that serves that exact suite with `main`. */
export function pickMirror(sources: AptSource[], suite = SUITE): string | undefined {
  return sources.find((s) => s.suites.includes(suite) && (s.components.length === 0 || s.components.includes('main')))?.uri;
}

/** Reads apt's configuration of this machine (SMBGW_GUEST_MIRROR overrides) and returns the mirror URI. */
export async function aptMirror(suite = SUITE): Promise<string> {
  if (process.env.SMBGW_GUEST_MIRROR) return process.env.SMBGW_GUEST_MIRROR;
  const files = ['/etc/apt/sources.list'];
  const dir = '/etc/apt/sources.list.d';
  for (const f of (await readdir(dir).catch(() => [] as string[])).sort()) if (/\.(sources|list)$/.test(f)) files.push(join(dir, f));
  const sources: AptSource[] = [];
  for (const f of files) sources.push(...parseAptSources(await readFile(f, 'utf8').catch(() => '')));
  const uri = pickMirror(sources, suite);
  if (!uri) throw new Error(`no apt source for Debian ${suite} (main) in ${files.join(', ')}; set SMBGW_GUEST_MIRROR`);
  return uri;
}

export function recipeKey(extra: unknown = null): string {
  return createHash('sha256').update(JSON.stringify({ SUITE, ROOTFS_PACKAGES, RECIPE_VERSION, extra })).digest('hex').slice(0, 10);
}

export interface Built {
  /** Path of the cached artefact. */
  path: string;
  key: string;
  /** true if this call built it, false if it came from the cache. */
  built: boolean;
  seconds: number;
}

export async function exists(p: string): Promise<boolean> {
  return stat(p).then(() => true, () => false);
}

/**
 * Builds (once) and caches an artefact: `make(tmp)` fills a temp path next to `final`, which is then
 * renamed into place. Serialised by a lock per artefact; a second caller waits and reuses the result.
 */
export async function cached(final: string, make: (tmp: string) => Promise<void>, opts: { timeoutMs?: number; prunePrefix?: string } = {}): Promise<{ built: boolean; seconds: number }> {
  const t0 = Date.now();
  if (await exists(final)) return { built: false, seconds: since(t0) };
  const root = cacheRoot();
  const parent = dirname(final);
  await mkdir(parent, { recursive: true });
  const name = basename(final);
  return withLock(join(root, '.locks'), name, async () => {
    if (await exists(final)) return { built: false, seconds: since(t0) };
    const tmp = join(parent, `.tmp-${name}-${uid()}`);
    try {
      note(`building ${final}`);
      await make(tmp);
      await rename(tmp, final);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
    if (opts.prunePrefix) await pruneOld(parent, opts.prunePrefix, name);
    note(`built ${final} in ${since(t0)} s`);
    return { built: true, seconds: since(t0) };
  }, { timeoutMs: opts.timeoutMs ?? 15 * 60_000, staleMs: 120_000 });
}

/**
 * Removes artefacts of older recipes (same prefix, other key) once a new one is in place, so the
 * cache does not grow with every recipe change. Derived entries (`<name>.shift-*`) go with their base.
 */
async function pruneOld(dir: string, prefix: string, keep: string): Promise<void> {
  for (const f of await readdir(dir).catch(() => [] as string[])) {
    if (f.startsWith(prefix) && f !== keep && !f.startsWith(keep + '.')) {
      note(`pruning old cache entry ${f}`);
      await rm(join(dir, f), { recursive: true, force: true });
    }
  }
}

/**
 * Runs a command chrooted into `dir` with /proc, /sys and /dev mounted in a private mount namespace
 * (the mounts vanish with the command, also if it is killed).
 */
export async function inChroot(dir: string, cmd: string[], timeoutMs = 10 * 60_000): Promise<string> {
  const r = await run('unshare', ['-m', '--propagation', 'private', '--',
    'sh', '-c', 'mount -t proc proc "$1/proc" && mount -t sysfs sys "$1/sys" && mount --rbind /dev "$1/dev" && shift && exec chroot "$@"',
    'sh', dir, dir, 'env', 'DEBIAN_FRONTEND=noninteractive', 'LC_ALL=C', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', ...cmd], { timeoutMs });
  return r.stdout;
}

/** Masks a systemd unit in a rootfs (link to /dev/null), as `systemctl mask` would. */
export async function maskUnit(dir: string, unit: string): Promise<void> {
  const p = join(dir, 'etc/systemd/system', unit);
  await unlink(p).catch(() => undefined);
  await symlink('/dev/null', p);
  for (const wants of ['multi-user.target.wants']) await unlink(join(dir, 'etc/systemd/system', wants, unit)).catch(() => undefined);
}

/**
 * The cached Debian rootfs with Samba (built with debootstrap on first use, ~1 min).
 * Samba and winbind are installed but only smbd is enabled (nmbd, samba-ad-dc masked, winbind disabled); /etc/machine-id is empty
 * (a template: systemd makes one at first boot). Its apt lists are kept for `buildVmImage`.
 */
export async function buildRootfs(): Promise<Built> {
  const key = recipeKey();
  const path = join(cacheRoot(), `rootfs-${SUITE}-${key}`);
  const r = await cached(path, async (tmp) => {
    const mirror = await aptMirror();
    await run('debootstrap', ['--variant=minbase', `--include=${ROOTFS_PACKAGES.join(',')}`, SUITE, tmp, mirror], { timeoutMs: 12 * 60_000 });
    // Services that do not belong in a gateway guest or fail in an unprivileged container.
    for (const u of ['nmbd.service', 'samba-ad-dc.service', 'sys-kernel-debug.mount']) await maskUnit(tmp, u);
    // winbindd runs only in the containers of domain shares: the join enables and starts it (as the
    // gateway's template create leaves it disabled)
    await unlink(join(tmp, 'etc/systemd/system/multi-user.target.wants/winbind.service')).catch(() => undefined);
    await truncate(join(tmp, 'etc/machine-id'), 0);
    await writeFile(join(tmp, 'etc/hostname'), 'localhost\n');
    await rm(join(tmp, 'var/cache/apt/archives'), { recursive: true, force: true });
    await mkdir(join(tmp, 'var/cache/apt/archives/partial'), { recursive: true });
    const samba = (await inChroot(tmp, ['dpkg-query', '-W', '-f', '${Version}', 'samba'])).trim();
    await writeFile(join(tmp, '.smbgw-rootfs.json'), JSON.stringify({ key, suite: SUITE, mirror, packages: ROOTFS_PACKAGES, samba, builtAt: new Date().toISOString() }, null, 2) + '\n');
  }, { prunePrefix: `rootfs-${SUITE}-` });
  return { path, key, ...r };
}

/** Paths left out of container copies and templates (apt caches; device nodes are made by LXC). */
const CT_EXCLUDES = ['--exclude=./dev/*', '--exclude=./var/lib/apt/lists/*', '--exclude=./var/cache/apt/*', '--exclude=./.smbgw-rootfs.json'];

/**
 * Unpacks a tar stream of a rootfs into `dest`, shifting owners into `map`: tar runs inside a user
 * namespace with that map (lxc-usernsexec), as `pct create` does. `dest` is created and owned by the
 * container's root.
 */
async function extractShifted(producer: [string, ...string[]], dest: string, map: IdMap): Promise<void> {
  await mkdir(dest, { recursive: true });
  await chown(dest, toHost(map, 'u', 0) ?? 0, toHost(map, 'g', 0) ?? 0);
  await chmod(dest, 0o755);
  const tarX = ['tar', '-C', dest, '--numeric-owner', '--xattrs', '--xattrs-include=*', '--acls', '--exclude=./dev/*', '-xpf', '-'] as const;
  if (map.length === 0) return pipe(producer, [...tarX]); // privileged: ids as they are
  await ensureSubids(map);
  await pipe(producer, ['lxc-usernsexec', ...usernsexecArgs(map), '--', ...tarX]);
}

/** The cached rootfs with owners shifted for `map` (default: Proxmox's 100000 offset). Read-only use (overlay lower dir). */
export async function shiftedRootfs(map: IdMap = PROXMOX_IDMAP): Promise<Built> {
  const base = await buildRootfs();
  const path = `${base.path}.shift-${idmapKey(map)}`;
  const r = await cached(path, async (tmp) => {
    await extractShifted(['tar', '-C', base.path, '--numeric-owner', '--xattrs', '--acls', ...CT_EXCLUDES, '-cpf', '-', '.'], tmp, map);
  });
  return { path, key: base.key, built: r.built || base.built, seconds: base.seconds + r.seconds };
}

/** File name of the CT template, Proxmox style (<os>-<version>-<name>_<version>_<arch>.tar.zst). */
export function templateName(key: string): string {
  return `debian-12-smbgw_12-${key}_amd64.tar.zst`;
}

/**
 * A Proxmox-style CT template (vztmpl) of the cached rootfs: tar.zst with numeric, unshifted owners,
 * xattrs and ACLs, no device nodes and no apt lists. Samba is already inside: guests here have no
 * network to a mirror, so "installing Samba into the template" cannot be done at template-create time.
 */
export async function buildCtTemplate(): Promise<Built> {
  const base = await buildRootfs();
  const path = join(cacheRoot(), 'templates', templateName(base.key));
  await mkdir(join(cacheRoot(), 'templates'), { recursive: true });
  const r = await cached(path, async (tmp) => {
    await pipe(['tar', '-C', base.path, '--numeric-owner', '--xattrs', '--acls', ...CT_EXCLUDES, '-cpf', '-', '.'], ['zstd', '-q', '-T0', '-3', '-o', tmp]);
  }, { prunePrefix: 'debian-12-smbgw_' });
  return { path, key: base.key, built: r.built || base.built, seconds: base.seconds + r.seconds };
}

/** Unpacks a CT template (.tar.zst/.tar.gz/.tar.xz) into `dest` with owners shifted for `map`, like `pct create` (empty map: privileged, unshifted). */
export async function extractTemplate(tarball: string, dest: string, map: IdMap = PROXMOX_IDMAP): Promise<void> {
  const dec: [string, ...string[]] = tarball.endsWith('.zst') ? ['zstd', '-dcq', tarball]
    : tarball.endsWith('.xz') ? ['xz', '-dc', tarball] : tarball.endsWith('.gz') ? ['gzip', '-dc', tarball] : ['cat', tarball];
  await extractShifted(dec, dest, map);
}
