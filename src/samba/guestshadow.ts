/**
 * Previous Versions inside a guest (lxc container, VM), pure: the guest sees the share's data at
 * PATH_INSIDE and, for btrfs, the share's snapshot directory (on the host, outside the data) as a
 * second read-only mount; ZFS snapshots are inside the data (`.zfs/snapshot` of the dataset). The
 * snapshot names and shadow_copy2's format are the same as for native shares (core/snapshot.ts).
 */
import type { Share } from '../core/share.ts';
import { SNAPSHOT_FORMAT, snapshottable } from '../core/snapshot.ts';
import type { Params } from './profiles.ts';

/** Where a guest sees its share's snapshots (the second, read-only mount of a btrfs share). */
export const SNAPSHOTS_INSIDE = '/srv/snapshots';

/**
 * What the guest must be given to see the snapshots: btrfs, the host's snapshot directory mounted
 * read-only at SNAPSHOTS_INSIDE; ZFS, nothing more (they are below the data). Undefined where the
 * share's data cannot be snapshotted (a plain directory) or its backing is not recorded (a share made
 * before guests showed Previous Versions).
 */
export function guestSnapshotMount(s: Share): { kind: 'btrfs'; host: string } | { kind: 'zfs' } | undefined {
  if (s.mode === 'native') return undefined;
  const t = snapshottable(s);
  if (t?.kind === 'btrfs') return { kind: 'btrfs', host: t.snapdir };
  if (t?.kind === 'zfs') return { kind: 'zfs' };
  return undefined;
}

/** shadow_copy2 for the guest's smb.conf: the same names and format as a native share, the guest's paths. */
export function guestShadowCopyParams(s: Share, pathInside: string): Params {
  const m = guestSnapshotMount(s);
  if (!m) return [];
  const common: Params = [['shadow:format', SNAPSHOT_FORMAT], ['shadow:sort', 'desc'], ['shadow:localtime', 'no']];
  if (m.kind === 'zfs') return [['vfs objects', 'shadow_copy2'], ['shadow:snapdir', '.zfs/snapshot'], ...common];
  return [['vfs objects', 'shadow_copy2'], ['shadow:snapdir', SNAPSHOTS_INSIDE], ['shadow:mountpoint', pathInside], ...common];
}
