/**
 * `delete --purge`: destroying the share's storage, limited to what the share's own create made.
 * Each target is checked when planned and again at the moment it is destroyed:
 * - it is the share's own path (or dataset), recorded as structured data by create;
 * - it is still the object create made (inode for a directory, UUID for a subvolume, GUID for a dataset),
 *   not something that took its place since, and no symlink leads elsewhere;
 * - it lies inside an allowed storage root and is not a root itself;
 * - it is not a mount point (a directory), has nothing mounted below it and holds no other share;
 * - a dataset has no child datasets (only its own snapshots go with it).
 * A check that fails refuses the whole delete (it rolls back) with a sentence naming the target.
 */
import { lstat, readFile, realpath, rm, rmdir } from 'node:fs/promises';
import { zfsGet, zfsList } from '../core/zfs.ts';
import { btrfsSubvolumeDelete, btrfsSubvolumeUuid } from '../core/btrfs.ts';
import { dirname } from 'node:path';
import { GatewayError } from '../core/errors.ts';
import type { Runner } from '../core/exec.ts';
import type { Step } from '../core/plan.ts';
import type { Made, Share } from '../core/share.ts';
import { deleteSnapshot, listSnapshots } from '../backup/snapshots.ts';
import { snapshottable } from '../core/snapshot.ts';
import { datasetGuid, destroyDataset } from './quota.ts';
import { parseMountinfo, within } from './storage.ts';

export interface PurgeCtx { run: Runner; allowedRoots: readonly string[] }

type StorageMade = Extract<Made, { kind: 'dir' | 'subvolume' | 'dataset' }>;

function refuse(share: Share, what: string, why: string): GatewayError {
  return new GatewayError('failed', `purge of share "${share.sharename}" refused: ${what} ${why}; nothing was destroyed (remove it by hand if it really is to go)`, 'purge');
}

function storageRecords(share: Share): StorageMade[] {
  return share.created.filter((m): m is StorageMade => m.kind === 'dir' || m.kind === 'subvolume' || m.kind === 'dataset');
}

/** Checks a directory-like target (dir or subvolume) at share.path. */
async function checkPath(ctx: PurgeCtx, share: Share, others: readonly Share[], path: string): Promise<void> {
  if (path !== share.path) throw refuse(share, path, `is not the share's path (${share.path})`);
  const st = await lstat(path).catch(() => undefined);
  if (!st) throw refuse(share, path, 'no longer exists');
  if (st.isSymbolicLink() || !st.isDirectory()) throw refuse(share, path, 'is no longer a directory (a symbolic link or file took its place)');
  const real = await realpath(path).catch(() => undefined);
  if (real !== path) throw refuse(share, path, `now resolves to ${real ?? 'nothing'} (a parent was replaced by a link)`);
  const roots = await Promise.all(ctx.allowedRoots.map((r) => realpath(r).catch(() => r)));
  if (roots.includes(path)) throw refuse(share, path, 'is a storage root');
  if (!roots.some((r) => within(path, r))) throw refuse(share, path, `is outside the allowed storage roots (${ctx.allowedRoots.join(', ')})`);
  const mounts = parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'));
  const below = mounts.find((m) => within(m.mountpoint, path));
  if (below) throw refuse(share, path, `${below.mountpoint === path ? 'is a mount point' : `has a file system mounted below it (${below.mountpoint})`}`);
  const other = others.find((s) => s !== share && s.sharename !== share.sharename && (within(s.path, path) || within(path, s.path)));
  if (other) throw refuse(share, path, `overlaps share "${other.sharename}" (${other.path})`);
}

/** Check one record; throws with the reason when it may not be destroyed now. */
async function checkRecord(ctx: PurgeCtx, share: Share, others: readonly Share[], m: StorageMade): Promise<void> {
  const { run } = ctx;
  if (m.kind === 'dir') {
    await checkPath(ctx, share, others, m.path);
    const st = await lstat(m.path);
    const parent = await lstat(dirname(m.path));
    if (st.dev !== parent.dev) throw refuse(share, m.path, 'is on another file system than its parent (a mount point)');
    if (m.ino === undefined || m.dev === undefined || st.ino !== m.ino || st.dev !== m.dev) throw refuse(share, m.path, 'is not the directory the gateway made (its inode changed)');
    return;
  }
  if (m.kind === 'subvolume') {
    await checkPath(ctx, share, others, m.path);
    const uuid = await btrfsSubvolumeUuid(run, m.path);
    if (!m.uuid || uuid !== m.uuid) throw refuse(share, m.path, 'is not the subvolume the gateway made (its UUID changed)');
    return;
  }
  const want = share.backing === `zfs:${m.name}`;
  if (!want || !m.name.includes('/')) throw refuse(share, `dataset ${m.name}`, 'is not the share\'s own dataset');
  const guid = await datasetGuid(run, m.name);
  if (!guid) throw refuse(share, `dataset ${m.name}`, 'no longer exists');
  if (!m.guid || guid !== m.guid) throw refuse(share, `dataset ${m.name}`, 'is not the dataset the gateway made (its GUID changed)');
  const mp = (await zfsGet(run, 'mountpoint', m.name)) ?? '';
  if (mp !== share.path) throw refuse(share, `dataset ${m.name}`, `is mounted at ${mp}, not at the share's path ${share.path}`);
  const kids = (await zfsList(run, { props: ['name'], types: ['filesystem', 'volume'], recursive: true, root: m.name, allowFail: true })) ?? [];
  const children = kids.map(([n]) => n ?? '').filter((l) => l && l !== m.name);
  if (children.length) throw refuse(share, `dataset ${m.name}`, `has child datasets (${children.slice(0, 3).join(', ')})`);
  const other = others.find((s) => s !== share && s.sharename !== share.sharename && (within(s.path, share.path) || within(share.path, s.path)));
  if (other) throw refuse(share, `dataset ${m.name}`, `overlaps share "${other.sharename}" (${other.path})`);
}

/** Refuse a purge up front (before anything changes) when a target already fails its checks. */
export async function checkPurge(ctx: PurgeCtx, share: Share, others: readonly Share[]): Promise<void> {
  for (const m of storageRecords(share)) await checkRecord(ctx, share, others, m);
}

/** The purge as a journal record: the share as it was (a crash past this point is finished, not undone). */
export type PurgeRecord = { kind: 'purge'; share: Share };

async function gone(run: Runner, m: StorageMade): Promise<boolean> {
  if (m.kind === 'dataset') return !(await datasetGuid(run, m.name));
  return !(await lstat(m.path).catch(() => undefined));
}

/**
 * Destroy what the share's create made, each target checked again right before it goes. With
 * `resume` (finishing a purge that was interrupted) a target that is already gone is skipped.
 */
export async function purgeNow(ctx: PurgeCtx, share: Share, others: readonly Share[], resume = false): Promise<string[]> {
  const { run } = ctx;
  const did: string[] = [];
  for (const m of [...storageRecords(share)].reverse()) {
    const what = m.kind === 'dataset' ? `dataset ${m.name}` : m.path;
    if (resume && await gone(run, m)) { did.push(`${what} is gone`); continue; }
    await checkRecord(ctx, share, others, m);
    if (m.kind === 'dataset') await destroyDataset(run, m.name);
    else if (m.kind === 'subvolume') {
      const snaps = snapshottable(share);
      if (snaps?.kind === 'btrfs') {
        for (const n of await listSnapshots(run, snaps)) await deleteSnapshot(run, snaps, n);
        await rmdir(snaps.snapdir).catch(() => undefined);
      }
      await btrfsSubvolumeDelete(run, m.path);
    } else {
      // CephFS refuses to remove a directory that has snapshots: the gateway's own go first.
      const snaps = snapshottable(share);
      if (snaps?.kind === 'cephfs') for (const n of await listSnapshots(run, snaps)) await deleteSnapshot(run, snaps, n);
      await rm(m.path, { recursive: true, force: true });
    }
    did.push(`destroyed ${what}`);
  }
  return did;
}

/** The last step of a delete: irreversible, so each target is checked again right before it goes. */
export function purgeStep(ctx: PurgeCtx, share: Share, others: () => readonly Share[]): Step {
  return {
    name: 'purge-storage',
    shows: `destroy what create made (checked again first): ${storageRecords(share).map((m) => (m.kind === 'dataset' ? `dataset ${m.name}` : `${m.kind} ${m.path}`)).join(', ') || 'nothing'}`,
    irreversible: true,
    redo: [{ kind: 'purge', share } satisfies PurgeRecord],
    do: async () => { await purgeNow(ctx, share, others()); },
  };
}
