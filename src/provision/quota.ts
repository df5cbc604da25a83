/**
 * Filesystem objects and quotas as plan steps: ZFS datasets with `quota=`, btrfs subvolumes with
 * qgroup limits, or a plain directory. Each step records what it created so rollback and delete undo it.
 */
import { lstat, mkdir, readdir, rmdir } from 'node:fs/promises';
import { zfsCreate, zfsDestroyWhenFree, zfsGet, zfsGetMany, zfsSet } from '../core/zfs.ts';
import { btrfsQgroupLimit, btrfsQgroupShow, btrfsQuota, btrfsQuotaEnabled, btrfsQuotaRescan, btrfsSubvolumeCreate, btrfsSubvolumeDelete, btrfsSubvolumeUuid } from '../core/btrfs.ts';
import { GatewayError } from '../core/errors.ts';
import type { Runner } from '../core/exec.ts';
import type { Step } from '../core/plan.ts';
import { parseSize, type Made } from '../core/share.ts';
import { humanToBytes, type Backing } from './storage.ts';
import { cephQuota, cephRbytes, setCephQuota } from '../core/ceph.ts';

/** The identity of a dataset (its GUID never repeats, even for one of the same name made later). */
export async function datasetGuid(run: Runner, dataset: string): Promise<string | undefined> {
  return (await zfsGet(run, 'guid', dataset)) || undefined;
}

/** Storage a step is about to make, with its identity once it is made (for the undo after a crash). */
export type DirRecord = { kind: 'dir'; path: string; dev?: number; ino?: number };
export type SubvolumeRecord = { kind: 'subvolume'; path: string; uuid?: string };
export type DatasetRecord = { kind: 'dataset'; name: string; guid?: string };

/**
 * Whether an object whose identity was never recorded (the step was killed between making it and
 * writing its identity down) can be the one the step made: it was born after the step started.
 */
function youngEnough(bornMs: number | undefined, startedAt: number | undefined): boolean {
  if (!bornMs || startedAt === undefined) return false;
  return bornMs >= startedAt - 2000;
}

/** Remove a directory the step made: the same inode, and empty (rmdir, never a recursive remove). */
export async function undoDir(r: DirRecord, startedAt?: number): Promise<string> {
  const st = await lstat(r.path).catch(() => undefined);
  if (!st) return `${r.path} is not there`;
  if (!st.isDirectory()) throw new GatewayError('failed', `${r.path} is no longer a directory: left as it is`);
  if (r.ino !== undefined ? st.ino !== r.ino || st.dev !== r.dev : !youngEnough(st.birthtimeMs, startedAt)) {
    throw new GatewayError('failed', `${r.path} is not the directory the operation made (${r.ino !== undefined ? 'its inode changed' : 'it is older than the operation'}): left as it is`);
  }
  try {
    await rmdir(r.path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOTEMPTY') throw new GatewayError('failed', `${r.path} is not empty (files were put in it since): left as it is`);
    throw e;
  }
  return `removed directory ${r.path}`;
}

async function isEmptyDir(path: string): Promise<boolean> {
  return (await readdir(path).catch(() => ['?'])).length === 0;
}

/** Delete a subvolume the step made: the same UUID (or, unrecorded, young and empty). */
export async function undoSubvolume(run: Runner, r: SubvolumeRecord, startedAt?: number): Promise<string> {
  const st = await lstat(r.path).catch(() => undefined);
  if (!st) return `${r.path} is not there`;
  if (!st.isDirectory() || st.ino !== 256) throw new GatewayError('failed', `${r.path} is not a subvolume: left as it is`);
  if (r.uuid !== undefined) {
    if ((await btrfsSubvolumeUuid(run, r.path)) !== r.uuid) throw new GatewayError('failed', `${r.path} is not the subvolume the operation made (its UUID changed): left as it is`);
  } else if (!youngEnough(st.birthtimeMs, startedAt) || !(await isEmptyDir(r.path))) {
    throw new GatewayError('failed', `${r.path} may not be the subvolume the operation made (no UUID recorded, and it is older or not empty): left as it is`);
  }
  await btrfsSubvolumeDelete(run, r.path);
  return `deleted subvolume ${r.path}`;
}

/** Destroy a dataset the step made: the same GUID (or, unrecorded, created after the step started); never recursive. */
export async function undoDataset(run: Runner, r: DatasetRecord, startedAt?: number): Promise<string> {
  const guid = await datasetGuid(run, r.name);
  if (!guid) return `dataset ${r.name} is not there`;
  if (r.guid !== undefined ? guid !== r.guid : false) throw new GatewayError('failed', `dataset ${r.name} is not the one the operation made (its GUID changed): left as it is`);
  if (r.guid === undefined) {
    const c = await zfsGet(run, 'creation', r.name, { parsable: true });
    if (!youngEnough(Number(c) * 1000 + 999, startedAt)) throw new GatewayError('failed', `dataset ${r.name} is older than the operation: left as it is`);
  }
  await zfsDestroyWhenFree(run, r.name, { force: true }, { tries: 20, intervalMs: 250 }, (err) => new GatewayError('failed', `zfs destroy ${r.name} failed: ${err}`));
  return `destroyed dataset ${r.name}`;
}

/**
 * Steps that make the share's directory (dataset / subvolume / dir) when it does not exist yet. Each
 * records what it made, with its identity (GUID, UUID, inode), for the undo and for a later purge; the
 * journal has the name before it is made and the identity as soon as it is known.
 */
export function storageSteps(run: Runner, path: string, b: Backing, created: Made[]): Step[] {
  if (b.exists) return [];
  if (b.kind === 'zfs') {
    const rec: DatasetRecord = { kind: 'dataset', name: b.dataset };
    return [{
      name: 'create-dataset',
      shows: `zfs create ${b.dataset}`,
      journal: () => [rec],
      do: async (progress) => {
        await zfsCreate(run, b.dataset);
        rec.guid = await datasetGuid(run, b.dataset);
        await progress?.();
        created.push({ kind: 'dataset', name: b.dataset, guid: rec.guid });
      },
      undo: async () => { await undoDataset(run, rec); },
    }];
  }
  if (b.kind === 'btrfs') {
    const rec: SubvolumeRecord = { kind: 'subvolume', path };
    return [{
      name: 'create-subvolume',
      shows: `btrfs subvolume create ${path}`,
      journal: () => [rec],
      do: async (progress) => {
        await btrfsSubvolumeCreate(run, path);
        rec.uuid = await btrfsSubvolumeUuid(run, path);
        await progress?.();
        created.push({ kind: 'subvolume', path, uuid: rec.uuid });
      },
      undo: async () => { await undoSubvolume(run, rec); },
    }];
  }
  const rec: DirRecord = { kind: 'dir', path };
  return [{
    name: 'create-directory',
    shows: `mkdir ${path}`,
    journal: () => [rec],
    do: async (progress) => {
      await mkdir(path, { mode: 0o755 });
      const st = await lstat(path);
      Object.assign(rec, { dev: st.dev, ino: st.ino });
      await progress?.();
      created.push({ kind: 'dir', path, dev: st.dev, ino: st.ino });
    },
    undo: async () => { await undoDir(rec); },
  }];
}

/**
 * Destroy a dataset the gateway made. An smbd child that served the share may still hold it for a
 * moment after its client left ("dataset is busy"): force the unmount, and retry briefly.
 */
export async function destroyDataset(run: Runner, dataset: string): Promise<void> {
  await zfsDestroyWhenFree(run, dataset, { recursive: true, force: true }, { tries: 20, intervalMs: 250 }, (err) => new GatewayError('failed', `zfs destroy ${dataset} failed: ${err}`));
}


/** Quotas switched on for a btrfs file system (off again on undo, unless they were on before). */
export type BtrfsQuotaRecord = { kind: 'btrfs-quota'; mountpoint: string; enabledBefore: boolean };

export async function undoBtrfsQuota(run: Runner, r: BtrfsQuotaRecord): Promise<string> {
  if (r.enabledBefore || !(await btrfsQuotaEnabled(run, r.mountpoint))) return `btrfs quotas on ${r.mountpoint} are as before`;
  await btrfsQuota(run, 'disable', r.mountpoint);
  return `switched btrfs quotas off again on ${r.mountpoint}`;
}

/** A quota about to be set: the ZFS quota it had, or (btrfs) the subvolume whose limit goes again. */
export type QuotaRecord = { kind: 'quota'; fs: 'zfs'; dataset: string; before: string } | { kind: 'quota'; fs: 'btrfs'; path: string } | { kind: 'quota'; fs: 'cephfs'; path: string; before: number };

export async function undoQuota(run: Runner, r: QuotaRecord): Promise<string> {
  if (r.fs === 'zfs') {
    if (!(await datasetGuid(run, r.dataset))) return `dataset ${r.dataset} is not there`;
    const v = r.before === '-' || r.before === '0' ? 'none' : r.before;
    await zfsSet(run, 'quota', v, r.dataset);
    return `quota of ${r.dataset} is ${v} again`;
  }
  if (!(await lstat(r.path).catch(() => undefined))) return `${r.path} is not there`;
  if (r.fs === 'cephfs') { await setCephQuota(run, r.path, r.before); return `ceph.quota.max_bytes of ${r.path} is ${r.before} again`; }
  await btrfsQgroupLimit(run, 'none', r.path, { allowFail: true });
  return `removed the qgroup limit of ${r.path}`;
}

/** Steps that come before storage creation (btrfs quota must be on before a subvolume is made). */
export function preStorageQuotaSteps(run: Runner, b: Backing, quota: string | undefined): Step[] {
  if (!quota || b.kind !== 'btrfs') return [];
  let rec: BtrfsQuotaRecord | undefined;
  return [{
    name: 'enable-btrfs-quota',
    shows: `btrfs quota enable ${b.mountpoint} (unless it is on)`,
    journal: async () => {
      rec = { kind: 'btrfs-quota', mountpoint: b.mountpoint, enabledBefore: await btrfsQuotaEnabled(run, b.mountpoint) };
      return [rec];
    },
    do: async () => {
      if (rec?.enabledBefore ?? await btrfsQuotaEnabled(run, b.mountpoint)) return;
      await btrfsQuota(run, 'enable', b.mountpoint);
      await btrfsQuotaRescan(run, b.mountpoint);
    },
    undo: async () => { if (rec) await undoBtrfsQuota(run, rec); },
  }];
}

export function quotaSteps(run: Runner, path: string, b: Backing, quota: string | undefined): Step[] {
  if (!quota) return [];
  const bytes = parseSize(quota)!;
  if (b.kind === 'zfs') {
    let rec: QuotaRecord | undefined;
    return [{
      name: 'set-quota',
      shows: `zfs set quota=${quota} ${b.dataset}`,
      journal: async () => {
        rec = { kind: 'quota', fs: 'zfs', dataset: b.dataset, before: (await zfsGet(run, 'quota', b.dataset)) || 'none' };
        return [rec];
      },
      do: async () => { await zfsSet(run, 'quota', String(bytes), b.dataset); },
      undo: async () => { if (rec) await undoQuota(run, rec); },
    }];
  }
  if (b.kind === 'btrfs') {
    const rec: QuotaRecord = { kind: 'quota', fs: 'btrfs', path };
    return [{
      name: 'set-quota',
      shows: `btrfs qgroup limit ${quota} ${path}`,
      journal: () => [rec],
      do: async () => { await btrfsQgroupLimit(run, bytes, path); },
      undo: async () => { await undoQuota(run, rec); },
    }];
  }
  if (b.kind === 'cephfs') {
    const rec: QuotaRecord = { kind: 'quota', fs: 'cephfs', path, before: 0 };
    return [{
      name: 'set-quota',
      shows: `setfattr -n ceph.quota.max_bytes -v ${bytes} ${path}`,
      journal: async () => { rec.before = (await cephQuota(run, path).catch(() => undefined)) ?? 0; return [rec]; },
      do: async () => { await setCephQuota(run, path, bytes); },
      undo: async () => { await undoQuota(run, rec); },
    }];
  }
  throw new GatewayError('invalid', 'quota: this filesystem cannot enforce a quota', 'quota');
}

export interface Usage { used: number; limit?: number; total?: number; source: string }

/** Used bytes and the enforced limit, from the filesystem that enforces it. */
export async function usageOf(run: Runner, path: string, b: Backing): Promise<Usage> {
  if (b.kind === 'zfs') {
    const v = await zfsGetMany(run, ['used', 'available', 'quota'], b.dataset);
    const used = humanToBytes(v.used ?? '0') ?? 0;
    const quota = v.quota && v.quota !== 'none' && v.quota !== '0' ? humanToBytes(v.quota) : undefined;
    const avail = humanToBytes(v.available ?? '0') ?? 0;
    return { used, limit: quota, total: quota ?? used + avail, source: `zfs dataset ${b.dataset}` };
  }
  if (b.kind === 'btrfs') {
    await btrfsQuotaRescan(run, b.mountpoint, { allowFail: true });
    const table = (await btrfsQgroupShow(run, path, { own: true })) ?? '';
    // qgroupid rfer excl max_rfer max_excl; the first data line is the subvolume's own qgroup.
    const line = table.split('\n').find((l) => /^0\/\d+\s/.test(l));
    if (line) {
      const f = line.trim().split(/\s+/);
      const limit = f[3] && f[3] !== 'none' ? Number(f[3]) : undefined;
      return { used: Number(f[1]), limit, total: limit, source: `btrfs qgroup ${f[0]}` };
    }
  }
  if (b.kind === 'cephfs') {
    // The MDS's recursive statistics: no tree walk, and what the quota is checked against.
    const [used, limit] = await Promise.all([cephRbytes(run, path), cephQuota(run, path)]);
    return { used, limit, total: limit, source: `cephfs ceph.dir.rbytes${limit ? ' / ceph.quota.max_bytes' : ''}` };
  }
  const r = await run('df', ['-B1', '--output=used,size', path]);
  const [used, size] = (r.stdout.trim().split('\n')[1] ?? '').trim().split(/\s+/).map(Number);
  return { used: used ?? 0, total: size, source: 'filesystem (no quota)' };
}
