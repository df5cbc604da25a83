/**
 * What lies under a share path: which filesystem, which ZFS dataset or btrfs subvolume, and
 * whether it can enforce a quota. Path checks (allowed roots, `..`, symlinks) live here too.
 */
import { readFile, realpath, stat } from 'node:fs/promises';
import { zfsList } from '../core/zfs.ts';
import { basename, dirname, resolve, sep } from 'node:path';
import { GatewayError, invalid } from '../core/errors.ts';
import { pathRule } from '../core/share.ts';
import type { Runner } from '../core/exec.ts';
import { CEPH_FSTYPES, mountedCephRoot } from '../core/cephfs.ts';

export interface Mount { mountpoint: string; fstype: string; source: string }

/** Parse /proc/self/mountinfo (mount point is field 5; the fs type follows " - "). */
export function parseMountinfo(text: string): Mount[] {
  const out: Mount[] = [];
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const mp = left.split(' ')[4];
    const [fstype, source] = right.split(' ');
    if (mp && fstype) out.push({ mountpoint: unescapeMount(mp), fstype, source: source ?? '' });
  }
  return out;
}
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function within(path: string, root: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);
}

/** The mount that holds a path (longest mount point that contains it). */
export function mountOf(mounts: readonly Mount[], path: string): Mount | undefined {
  let best: Mount | undefined;
  for (const m of mounts) if (within(path, m.mountpoint) && (!best || m.mountpoint.length >= best.mountpoint.length)) best = m;
  return best;
}

/**
 * Resolve a share path: the deepest existing ancestor through realpath (so symlinks count where
 * they point), the rest appended. It must lie inside an allowed root, itself resolved.
 */
export async function resolveSharePath(path: string, allowedRoots: readonly string[]): Promise<{ path: string; exists: boolean }> {
  const rule = pathRule(path);
  if (rule) throw invalid('path', rule);
  let existing = resolve(path);
  const rest: string[] = [];
  let real: string | undefined;
  for (;;) {
    try {
      real = await realpath(existing);
      break;
    } catch {
      if (existing === '/') break;
      rest.unshift(basename(existing));
      existing = dirname(existing);
    }
  }
  const full = resolve(real ?? '/', ...rest);
  const roots = await Promise.all(allowedRoots.map((r) => realpath(r).catch(() => resolve(r))));
  if (!roots.some((r) => within(full, r) && full !== r)) {
    throw invalid('path', `${path} resolves to ${full}, which is not inside an allowed storage root (${allowedRoots.join(', ') || 'none configured'})`);
  }
  const st = await stat(full).catch(() => undefined);
  if (st && !st.isDirectory()) throw invalid('path', `${full} exists and is not a directory`);
  if (!st) {
    // Only the share's own directory is made: a typo in a parent must not grow a new tree.
    const parent = await stat(dirname(full)).catch(() => undefined);
    if (!parent?.isDirectory()) throw invalid('path', `the parent directory ${dirname(full)} does not exist: create it first (the gateway makes only the share's own directory)`);
  }
  const rule2 = pathRule(full);
  if (rule2) throw invalid('path', `${path} resolves to ${full}, which ${rule2}`);
  return { path: full, exists: !!st };
}

export type Backing =
  | { kind: 'zfs'; dataset: string; exists: boolean }
  /** A directory on the node's CephFS mount (`root`: the CephFS directory the mount shows). */
  | { kind: 'cephfs'; mountpoint: string; root: string; source: string; exists: boolean }
  | { kind: 'btrfs'; mountpoint: string; subvolume: boolean; exists: boolean }
  | { kind: 'plain'; fstype: string; exists: boolean };

export interface ZfsDataset { name: string; mountpoint: string }

export async function zfsDatasets(run: Runner): Promise<ZfsDataset[]> {
  const rows = await zfsList(run, { props: ['name', 'mountpoint'], types: ['filesystem'], allowFail: true }).catch(() => undefined);
  return (rows ?? []).map(([name, mountpoint]) => ({ name: name ?? '', mountpoint: mountpoint ?? '' })).filter((d) => d.mountpoint.startsWith('/'));
}

const ZFS_COMPONENT = /^[A-Za-z0-9_.:-]+$/;

/** Work out what backs a (resolved) share path. */
export async function detectBacking(run: Runner, path: string, exists: boolean): Promise<Backing> {
  const mounts = parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'));
  const m = mountOf(mounts, exists ? path : dirname(path));
  const fstype = m?.fstype ?? 'unknown';
  if (fstype === 'zfs' || fstype === 'fuse.zfs' || fstype === 'fuse') {
    const ds = await zfsDatasets(run);
    const own = ds.find((d) => d.mountpoint === path);
    if (own) return { kind: 'zfs', dataset: own.name, exists: true };
    const parent = ds.find((d) => d.mountpoint === dirname(path));
    if (!exists && parent) {
      const child = basename(path);
      if (!ZFS_COMPONENT.test(child)) throw invalid('path', `"${child}" is not a valid ZFS dataset name component (letters, digits, _ . : -)`);
      return { kind: 'zfs', dataset: `${parent.name}/${child}`, exists: false };
    }
    if (ds.length) return { kind: 'plain', fstype: 'zfs (directory inside a dataset)', exists };
  }
  if (CEPH_FSTYPES.has(fstype)) return { kind: 'cephfs', mountpoint: m!.mountpoint, root: mountedCephRoot(m!.source), source: m!.source, exists };
  if (fstype === 'btrfs') {
    const st = exists ? await stat(path) : undefined;
    // A btrfs subvolume's root directory has inode number 256.
    return { kind: 'btrfs', mountpoint: m!.mountpoint, subvolume: !!st && st.ino === 256, exists };
  }
  return { kind: 'plain', fstype, exists };
}

/**
 * Where a new share goes, checked before anything changes (every mode): the name is free ignoring
 * case, the path resolves inside an allowed root and is not shared yet; what backs it.
 */
export async function placeNewShare(run: Runner, req: { sharename: string; path: string }, existing: readonly { sharename: string; path: string }[], allowedRoots: readonly string[]): Promise<{ path: string; exists: boolean; backing: Backing }> {
  const lc = req.sharename.toLowerCase();
  const dup = existing.find((s) => s.sharename.toLowerCase() === lc);
  if (dup) throw invalid('sharename', `a share named "${dup.sharename}" already exists (names are unique ignoring case)`);
  const { path, exists } = await resolveSharePath(req.path, allowedRoots);
  checkNoOverlap(path, existing);
  return { path, exists, backing: await detectBacking(run, path, exists) };
}

/**
 * Share paths never overlap: a share inside another (or around it) would hand the outer share's users
 * the inner share's files, and a purge of one would reach into the other.
 */
export function checkNoOverlap(path: string, others: readonly { sharename: string; path: string }[]): void {
  for (const s of others) {
    if (s.path === path) throw invalid('path', `${path} is already shared as "${s.sharename}"`);
    if (within(path, s.path)) throw invalid('path', `${path} lies inside share "${s.sharename}" (${s.path}): share paths must not be nested`);
    if (within(s.path, path)) throw invalid('path', `${path} contains share "${s.sharename}" (${s.path}): share paths must not be nested`);
  }
}

/** The tag stored with the share (`backing`), from what the provisioner found. */
export function backingTag(b: Backing, willBeSubvolume: boolean): string {
  if (b.kind === 'zfs') return `zfs:${b.dataset}`;
  if (b.kind === 'btrfs' && (b.subvolume || willBeSubvolume)) return `btrfs:${b.mountpoint}`;
  if (b.kind === 'cephfs') return 'cephfs';
  return 'dir';
}

/** Convert ZFS/btrfs human sizes (1.5G, 512M, 100K) to bytes. */
export function humanToBytes(v: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)([KMGTPE]?)i?B?$/i.exec(v.trim());
  if (!m) return undefined;
  const pow = ' KMGTPE'.indexOf((m[2] || ' ').toUpperCase());
  return Math.round(Number(m[1]) * 1024 ** Math.max(0, pow));
}

export function requireQuotaSupport(b: Backing, quota: string | undefined): void {
  if (!quota) return;
  if (b.kind === 'plain') {
    throw new GatewayError('invalid',
      `quota: the filesystem under this path (${b.fstype}) cannot enforce a quota; use a path that is (or will be created as) a ZFS dataset or a btrfs subvolume`, 'quota');
  }
  if (b.kind === 'btrfs' && b.exists && !b.subvolume) {
    throw new GatewayError('invalid', 'quota: the path is a plain directory on btrfs; quotas apply to subvolumes: use a new path (created as a subvolume) or an existing subvolume', 'quota');
  }
}
