/**
 * Where a share's snapshots live and how they are named (pure): shadow_copy2's format, so that Windows
 * clients see them as "Previous Versions". Taking, listing and restoring them is backup/snapshots.ts.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Share } from './share.ts';

/** shadow_copy2's format and the matching name of a snapshot taken at `date` (UTC). */
export const SNAPSHOT_FORMAT = 'smbgw-%Y.%m.%d-%H.%M.%S';
export const SNAPSHOT_RE = /^smbgw-(\d{4})\.(\d{2})\.(\d{2})-(\d{2})\.(\d{2})\.(\d{2})$/;

export function snapshotName(date: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `smbgw-${date.getUTCFullYear()}.${p(date.getUTCMonth() + 1)}.${p(date.getUTCDate())}-${p(date.getUTCHours())}.${p(date.getUTCMinutes())}.${p(date.getUTCSeconds())}`;
}

export function snapshotTime(name: string): Date | undefined {
  const m = SNAPSHOT_RE.exec(name);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m.map(Number) as number[];
  return new Date(Date.UTC(y!, mo! - 1, d!, h!, mi!, s!));
}

export type Snapshottable = { kind: 'zfs'; dataset: string } | { kind: 'btrfs'; mountpoint: string; snapdir: string } | { kind: 'cephfs'; path: string };

/** Where a share's snapshots live; undefined where the filesystem cannot snapshot it. */
export function snapshottable(s: Share): Snapshottable | undefined {
  const tag = s.backing ?? '';
  if (tag.startsWith('zfs:')) return { kind: 'zfs', dataset: tag.slice(4) };
  // CephFS: snapshots are the entries of the directory's .snap (on the node's CephFS mount).
  if (tag === 'cephfs') return { kind: 'cephfs', path: s.path };
  if (tag.startsWith('btrfs:')) {
    const mountpoint = tag.slice(6);
    // A directory name Samba will not expand (no %) and that stays unique per share.
    const safe = s.sharename.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 40);
    const hash = createHash('sha256').update(s.sharename).digest('hex').slice(0, 8);
    return { kind: 'btrfs', mountpoint, snapdir: join(mountpoint, '.smbgateway-snapshots', `${safe}-${hash}`) };
  }
  return undefined;
}
