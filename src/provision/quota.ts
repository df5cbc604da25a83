/**
 * Filesystem objects and quotas as plan steps: ZFS datasets with `quota=`, btrfs subvolumes with
 * qgroup limits, or a plain directory. Each step records what it created so rollback and delete undo it.
 */
import { lstat, mkdir, rmdir } from 'node:fs/promises';
import { GatewayError } from '../core/errors.ts';
import type { Runner } from '../core/exec.ts';
import type { Step } from '../core/plan.ts';
import { parseSize, type Made } from '../core/share.ts';
import { humanToBytes, type Backing } from './storage.ts';

/** The identity of a dataset (its GUID never repeats, even for one of the same name made later). */
export async function datasetGuid(run: Runner, dataset: string): Promise<string | undefined> {
  const r = await run('zfs', ['get', '-H', '-o', 'value', 'guid', dataset], { allowFail: true });
  return r.code === 0 && r.stdout.trim() ? r.stdout.trim() : undefined;
}

/** The identity of a btrfs subvolume (its UUID). */
export async function subvolumeUuid(run: Runner, path: string): Promise<string | undefined> {
  const r = await run('btrfs', ['subvolume', 'show', path], { allowFail: true });
  const m = /^\s*UUID:\s*([0-9a-f-]{36})\s*$/m.exec(r.stdout);
  return r.code === 0 && m ? m[1] : undefined;
}

/**
 * Steps that make the share's directory (dataset / subvolume / dir) when it does not exist yet. Each
 * records what it made, with its identity (GUID, UUID, inode), for the undo and for a later purge.
 */
export function storageSteps(run: Runner, path: string, b: Backing, created: Made[]): Step[] {
  if (b.exists) return [];
  if (b.kind === 'zfs') {
    return [{
      name: 'create-dataset',
      do: async () => {
        await run('zfs', ['create', b.dataset]);
        created.push({ kind: 'dataset', name: b.dataset, guid: await datasetGuid(run, b.dataset) });
      },
      undo: () => destroyDataset(run, b.dataset),
    }];
  }
  if (b.kind === 'btrfs') {
    return [{
      name: 'create-subvolume',
      do: async () => {
        await run('btrfs', ['subvolume', 'create', path]);
        created.push({ kind: 'subvolume', path, uuid: await subvolumeUuid(run, path) });
      },
      undo: async () => { await run('btrfs', ['subvolume', 'delete', path]); },
    }];
  }
  return [{
    name: 'create-directory',
    do: async () => {
      await mkdir(path, { mode: 0o755 });
      const st = await lstat(path);
      created.push({ kind: 'dir', path, dev: st.dev, ino: st.ino });
    },
    undo: async () => { await rmdir(path); },
  }];
}

/**
 * Destroy a dataset the gateway made. An smbd child that served the share may still hold it for a
 * moment after its client left ("dataset is busy"): force the unmount, and retry briefly.
 */
export async function destroyDataset(run: Runner, dataset: string): Promise<void> {
  for (let i = 0; ; i++) {
    const r = await run('zfs', ['destroy', '-r', '-f', dataset], { allowFail: true });
    if (r.code === 0) return;
    if (i >= 20 || !/busy/i.test(r.stderr)) throw new GatewayError('failed', `zfs destroy ${dataset} failed: ${r.stderr.trim()}`);
    await new Promise((res) => setTimeout(res, 250));
  }
}

async function btrfsQuotaEnabled(run: Runner, mountpoint: string): Promise<boolean> {
  return (await run('btrfs', ['qgroup', 'show', mountpoint], { allowFail: true })).code === 0;
}

/** Steps that come before storage creation (btrfs quota must be on before a subvolume is made). */
export function preStorageQuotaSteps(run: Runner, b: Backing, quota: string | undefined): Step[] {
  if (!quota || b.kind !== 'btrfs') return [];
  let enabledByUs = false;
  return [{
    name: 'enable-btrfs-quota',
    do: async () => {
      if (await btrfsQuotaEnabled(run, b.mountpoint)) return;
      await run('btrfs', ['quota', 'enable', b.mountpoint]);
      enabledByUs = true;
      await run('btrfs', ['quota', 'rescan', '-w', b.mountpoint]);
    },
    undo: async () => { if (enabledByUs) await run('btrfs', ['quota', 'disable', b.mountpoint]); },
  }];
}

export function quotaSteps(run: Runner, path: string, b: Backing, quota: string | undefined): Step[] {
  if (!quota) return [];
  const bytes = parseSize(quota)!;
  if (b.kind === 'zfs') {
    let before = 'none';
    return [{
      name: 'set-quota',
      do: async () => {
        const r = await run('zfs', ['get', '-H', '-o', 'value', 'quota', b.dataset]);
        before = r.stdout.trim() || 'none';
        await run('zfs', ['set', `quota=${bytes}`, b.dataset]);
      },
      undo: async () => { await run('zfs', ['set', `quota=${before === '-' || before === '0' ? 'none' : before}`, b.dataset]); },
    }];
  }
  if (b.kind === 'btrfs') {
    return [{
      name: 'set-quota',
      do: async () => { await run('btrfs', ['qgroup', 'limit', String(bytes), path]); },
      undo: async () => { await run('btrfs', ['qgroup', 'limit', 'none', path], { allowFail: true }); },
    }];
  }
  throw new GatewayError('invalid', 'quota: this filesystem cannot enforce a quota', 'quota');
}

export interface Usage { used: number; limit?: number; total?: number; source: string }

/** Used bytes and the enforced limit, from the filesystem that enforces it. */
export async function usageOf(run: Runner, path: string, b: Backing): Promise<Usage> {
  if (b.kind === 'zfs') {
    const r = await run('zfs', ['get', '-H', '-o', 'property,value', 'used,available,quota', b.dataset]);
    const v: Record<string, string> = {};
    for (const l of r.stdout.split('\n')) { const [k, x] = l.split('\t'); if (k && x) v[k] = x; }
    const used = humanToBytes(v.used ?? '0') ?? 0;
    const quota = v.quota && v.quota !== 'none' && v.quota !== '0' ? humanToBytes(v.quota) : undefined;
    const avail = humanToBytes(v.available ?? '0') ?? 0;
    return { used, limit: quota, total: quota ?? used + avail, source: `zfs dataset ${b.dataset}` };
  }
  if (b.kind === 'btrfs') {
    await run('btrfs', ['quota', 'rescan', '-w', b.mountpoint], { allowFail: true });
    const r = await run('btrfs', ['qgroup', 'show', '-reF', '--raw', path], { allowFail: true });
    // qgroupid rfer excl max_rfer max_excl; the first data line is the subvolume's own qgroup.
    const line = r.stdout.split('\n').find((l) => /^0\/\d+\s/.test(l));
    if (line) {
      const f = line.trim().split(/\s+/);
      const limit = f[3] && f[3] !== 'none' ? Number(f[3]) : undefined;
      return { used: Number(f[1]), limit, total: limit, source: `btrfs qgroup ${f[0]}` };
    }
  }
  const r = await run('df', ['-B1', '--output=used,size', path]);
  const [used, size] = (r.stdout.trim().split('\n')[1] ?? '').trim().split(/\s+/).map(Number);
  return { used: used ?? 0, total: size, source: 'filesystem (no quota)' };
}
