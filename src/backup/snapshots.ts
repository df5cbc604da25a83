/**
 * Snapshots of native-mode shares, coordinated with the filesystem that holds the data (a ZFS
 * dataset, a btrfs subvolume), named so that Samba's shadow_copy2 shows them to Windows clients as
 * "Previous Versions" (naming: core/snapshot.ts). The steps that run commands.
 */
import { lstat, mkdir, readdir, rename } from 'node:fs/promises';
import { zfsDestroy, zfsList, zfsRollback, zfsSnapshot } from '../core/zfs.ts';
import { cephSnapshot, cephSnapshotDelete, cephSnapshots } from '../core/ceph.ts';
import { btrfsQgroupLimit, btrfsSnapshot, btrfsSubvolumeDelete, btrfsSubvolumesBelow } from '../core/btrfs.ts';
import { dirname, join } from 'node:path';
import { GatewayError, invalid } from '../core/errors.ts';
import type { Runner } from '../core/exec.ts';
import type { Step } from '../core/plan.ts';
import type { Share } from '../core/share.ts';
import { snapshottable, SNAPSHOT_RE, type Snapshottable } from '../core/snapshot.ts';


export function requireSnapshottable(s: Share): Snapshottable {
  if (s.mode !== 'native') throw new GatewayError('unavailable', `sharename: snapshots of ${s.mode} shares are taken with vzdump (not available here)`, 'sharename');
  const t = snapshottable(s);
  if (!t) throw invalid('sharename', `share "${s.sharename}" is a plain directory: snapshots need a ZFS dataset or a btrfs subvolume`);
  return t;
}

export async function listSnapshots(run: Runner, t: Snapshottable): Promise<string[]> {
  if (t.kind === 'zfs') {
    const rows = (await zfsList(run, { props: ['name'], types: ['snapshot'], depth: 1, root: t.dataset })) ?? [];
    return rows.map(([n]) => n ?? '').filter((l) => l.startsWith(`${t.dataset}@`)).map((l) => l.slice(t.dataset.length + 1)).filter((n) => SNAPSHOT_RE.test(n)).sort();
  }
  if (t.kind === 'cephfs') return (await cephSnapshots(t.path)).filter((n) => SNAPSHOT_RE.test(n));
  return (await readdir(t.snapdir).catch(() => [] as string[])).filter((n) => SNAPSHOT_RE.test(n)).sort();
}

export function snapshotStep(run: Runner, s: Share, t: Snapshottable, name: string): Step {
  if (t.kind === 'zfs') {
    return {
      name: 'snapshot',
      do: async () => { await zfsSnapshot(run, t.dataset, name); },
      undo: async () => { await zfsDestroy(run, `${t.dataset}@${name}`); },
    };
  }
  if (t.kind === 'cephfs') {
    return { name: 'snapshot', do: async () => { await cephSnapshot(t.path, name); }, undo: async () => { await cephSnapshotDelete(t.path, name); } };
  }
  return {
    name: 'snapshot',
    do: async () => {
      await mkdir(t.snapdir, { recursive: true, mode: 0o755 });
      await btrfsSnapshot(run, s.path, join(t.snapdir, name), { readOnly: true });
    },
    undo: async () => { await btrfsSubvolumeDelete(run, join(t.snapdir, name)); },
  };
}

export async function deleteSnapshot(run: Runner, t: Snapshottable, name: string): Promise<void> {
  if (t.kind === 'zfs') await zfsDestroy(run, `${t.dataset}@${name}`);
  else if (t.kind === 'cephfs') await cephSnapshotDelete(t.path, name);
  else {
    // Checked as it is deleted: a real directory in the share's own snapshot directory, never a link put in its place.
    const p = join(t.snapdir, name);
    const st = await lstat(p).catch(() => undefined);
    if (!st?.isDirectory()) throw new GatewayError('failed', `snapshot ${name}: ${p} is not the snapshot directory it was (${st ? 'a link or a file' : 'gone'}); left as it is`);
    await btrfsSubvolumeDelete(run, p);
  }
}

/**
 * The snapshots of a ZFS dataset taken after `name`, oldest first, whatever their names (creation
 * order, by transaction group): what `zfs rollback -r` to `name` destroys.
 */
export async function zfsSnapshotsAfter(run: Runner, dataset: string, name: string): Promise<string[]> {
  const rows = (await zfsList(run, { props: ['name', 'createtxg'], types: ['snapshot'], sortBy: 'createtxg', depth: 1, root: dataset })) ?? [];
  const all = rows.map((r) => r[0] ?? '').filter((n) => n.startsWith(`${dataset}@`)).map((n) => n.slice(dataset.length + 1));
  const i = all.indexOf(name);
  return i < 0 ? [] : all.slice(i + 1);
}

/** Subvolumes below a btrfs path (`btrfs subvolume list -o`), as paths relative to the filesystem. */
export async function btrfsNestedSubvolumes(run: Runner, path: string): Promise<string[]> {
  return btrfsSubvolumesBelow(run, path);
}

/** Refuse a ZFS rollback that would destroy snapshots the gateway did not make (or any, without force). */
export function checkZfsRollback(s: Share, dataset: string, name: string, newer: readonly string[], force: boolean): void {
  const foreign = newer.filter((n) => !SNAPSHOT_RE.test(n));
  if (foreign.length) {
    throw invalid('snapshot', `ZFS can only roll back ${s.sharename} to ${name} by destroying the newer snapshots, and ${foreign.map((n) => `${dataset}@${n}`).join(', ')} ${foreign.length > 1 ? 'were' : 'was'} not made by the gateway: it destroys only its own (smbgw-...). Move them out of the way (zfs destroy, or zfs send them elsewhere) or restore from an older state by other means`);
  }
  if (newer.length && !force) {
    throw invalid('force', `ZFS can only roll back to ${name} by destroying the newer snapshots (${newer.join(', ')}): add --force to do so`);
  }
}

/**
 * Restore a whole share to a snapshot. btrfs: the live subvolume is set aside, a writable snapshot of
 * the chosen one takes its place (with the quota limit again), then the old one is deleted. ZFS:
 * `zfs rollback`, which can only go back past newer snapshots by destroying them (force), and only
 * when every one of them is the gateway's (checked again when the step runs). `newer`: for ZFS, every
 * snapshot taken after `name` (zfsSnapshotsAfter).
 */
export function restoreSteps(run: Runner, s: Share, t: Snapshottable, name: string, opts: { force: boolean; limitBytes?: number; newer: string[] }): Step[] {
  if (t.kind === 'zfs') {
    checkZfsRollback(s, t.dataset, name, opts.newer, opts.force);
    return [{
      name: 'rollback',
      do: async () => {
        // What -r destroys is decided now, not when the plan was made: a snapshot taken since counts.
        const newer = await zfsSnapshotsAfter(run, t.dataset, name);
        checkZfsRollback(s, t.dataset, name, newer, opts.force);
        await zfsRollback(run, t.dataset, name, newer.length > 0);
      },
    }];
  }
  if (t.kind === 'cephfs') {
    throw invalid('snapshot', `a CephFS share is not restored as a whole: its snapshots are read-only directories; copy files back from Previous Versions (or ${join(s.path, '.snap', name)})`);
  }
  const aside = join(dirname(s.path), `.${s.path.split('/').pop()}.smbgw-restore-${Date.now()}`);
  return [
    {
      name: 'set-aside-live',
      do: async () => {
        // A snapshot does not descend into nested subvolumes: the restored share would lose them from
        // view and the old one could not be deleted. The gateway never makes any there: refuse.
        const nested = await btrfsNestedSubvolumes(run, s.path);
        if (nested.length) {
          throw invalid('snapshot', `share "${s.sharename}" contains btrfs subvolumes the gateway did not make (${nested.join(', ')}); a snapshot does not include them, so a restore would drop them: move them out of the share first`);
        }
        await rename(s.path, aside);
      },
      undo: () => rename(aside, s.path),
    },
    {
      name: 'restore-subvolume',
      do: async () => { await btrfsSnapshot(run, join(t.snapdir, name), s.path, { readOnly: false }); },
      undo: async () => { await btrfsSubvolumeDelete(run, s.path); },
    },
    ...(opts.limitBytes ? [{
      name: 'set-quota',
      do: async () => { await btrfsQgroupLimit(run, opts.limitBytes!, s.path); },
    }] : []),
    // Last, cannot be undone: the state before the restore is kept as the snapshot taken first.
    { name: 'drop-old-live', do: async () => { await btrfsSubvolumeDelete(run, aside); } },
  ];
}
