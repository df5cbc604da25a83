/**
 * One backup run of a share, whatever started it (the schedule, `backup`, the vzdump hook): a
 * snapshot of the data where it lives on the host (native, lxc and vm alike: the data is always on
 * the host), the retention applied, and for guest shares the guest itself through Proxmox (`vzdump`,
 * to the storage the share names). Recorded in the node's backup state; never two runs of one share
 * at once.
 */
import { realpath, stat } from 'node:fs/promises';
import { basename, isAbsolute, join, normalize, relative, sep } from 'node:path';
import { GatewayError, invalid } from '../core/errors.ts';
import { applyPlan, failAtFromEnv, type Step } from '../core/plan.ts';
import { formatPruneOptions, parsePruneOptions, pruneMarks, type PruneOptions } from '../core/prune.ts';
import type { Share } from '../core/share.ts';
import { snapshotName, snapshottable, snapshotTime, type Snapshottable } from '../core/snapshot.ts';
import { deleteSnapshot, listSnapshots, requireSnapshottable, snapshotStep } from '../backup/snapshots.ts';
import { updateBackupState, withGuestArchive, withShareRunLock, type GuestBackupRecord } from '../backup/state.ts';
import { pveApi } from '../pve/connect.ts';
import { zfsFileRestoreSteps } from '../backup/zfs-file.ts';
import type { Gateway } from './context.ts';
import { detectBacking } from './storage.ts';

/** A name one second later than the newest if two backups fall in the same second. */
export function freshSnapshotName(existing: readonly string[], now: Date): string {
  let t = Math.floor(now.getTime() / 1000) * 1000;
  while (existing.includes(snapshotName(new Date(t)))) t += 1000;
  return snapshotName(new Date(t));
}

/**
 * Where a share's snapshots go. Native: what create recorded. lxc/vm: the data directory on the host
 * (bind-mounted or passed to the guest), found now: a ZFS dataset or a btrfs subvolume.
 */
export async function snapshotTarget(g: Gateway, share: Share): Promise<Snapshottable> {
  if (share.mode === 'native') return requireSnapshottable(share);
  const b = await detectBacking(g.run, share.path, true).catch(() => undefined);
  const tag = b?.kind === 'zfs' ? `zfs:${b.dataset}` : b?.kind === 'btrfs' && b.subvolume ? `btrfs:${b.mountpoint}` : 'dir';
  const t = snapshottable({ ...share, backing: tag });
  if (!t) throw invalid('sharename', `share "${share.sharename}" keeps its data in a plain directory (${share.path}): snapshots need a ZFS dataset or a btrfs subvolume`);
  return t;
}

/** The retention that applies: the share's, else the gateway's default; none: keep all. */
export function retentionOf(g: Gateway, share: Share): PruneOptions {
  const text = share.backup_prune ?? g.settings.backupPrune ?? '';
  return parsePruneOptions(text);
}

/** The schedule that applies: the share's, else the default for every share with backup_enabled. */
export function scheduleOf(g: Gateway, share: Share): string | undefined {
  if (share.backup_enabled === false) return undefined;
  return share.backup_schedule ?? g.settings.backupSchedule;
}

export interface BackupRunOptions {
  /** The run's time (the snapshot is named after it): the scheduler's clock. */
  now?: Date;
  trigger: 'schedule' | 'manual' | 'vzdump-hook';
  /** Retention for this run (default: the share's). */
  prune?: PruneOptions;
  /** Back up the guest too (lxc/vm with backup_storage); the hook does not: vzdump is running it. */
  guest?: boolean;
  log?: (m: string) => void;
  upid?: string;
}

export interface BackupRunResult {
  sharename: string;
  snapshot: string;
  time: string;
  pruned: string[];
  kept: number;
  guest?: GuestBackupRecord;
}

/** The archive vzdump wrote, from its task log. */
export function vzdumpArchive(log: readonly string[]): string | undefined {
  for (const l of log) {
    const m = /creating (?:vzdump|Proxmox Backup Server) archive '([^']+)'/.exec(l);
    if (m) return m[1];
  }
  return undefined;
}

export async function runShareBackup(g: Gateway, sharename: string, o: BackupRunOptions): Promise<BackupRunResult> {
  const log = o.log ?? (() => undefined);
  const sd = g.settings.stateDir;
  return withShareRunLock(g.settings.lockDir, sharename, `${o.trigger} backup (pid ${process.pid})`, () => run()).catch(async (e: unknown) => {
    // A scheduled run that finds another run of the share going did not happen: a failure to see.
    if (o.trigger === 'schedule' && e instanceof GatewayError && e.code === 'locked' && /is already running/.test(e.message)) {
      const at = Math.floor((o.now ?? new Date()).getTime() / 1000);
      await updateBackupState(sd, sharename, (s) => ({ ...s, last_start: at, last_end: at, last_trigger: o.trigger, ...(o.upid ? { last_upid: o.upid } : {}), last_status: 'error', last_error: e.message, runs_total: (s.runs_total ?? 0) + 1, failures_total: (s.failures_total ?? 0) + 1 }));
      log(`backup failed: ${e.message}`);
    }
    throw e;
  });

  async function run(): Promise<BackupRunResult> {
    const started = o.now ?? new Date();
    const wall0 = Date.now();
    const cpu0 = process.cpuUsage();
    await updateBackupState(sd, sharename, (s) => ({ ...s, last_start: Math.floor(started.getTime() / 1000), last_trigger: o.trigger, ...(o.upid ? { last_upid: o.upid } : {}), runs_total: (s.runs_total ?? 0) + 1 }));
    try {
      const r = await g.store.locked(async () => {
        const share = await g.store.require(sharename);
        if (share.backup_enabled === false && o.trigger !== 'manual') throw invalid('backup_enabled', `backups of share "${share.sharename}" are off`);
        const t = await snapshotTarget(g, share);
        const before = await listSnapshots(g.run, t);
        const name = freshSnapshotName(before, started);
        const retention = o.prune ?? retentionOf(g, share);
        const pruned: string[] = [];
        let kept = before.length + 1;
        const steps: Step[] = [snapshotStep(g.run, share, t, name), {
          name: 'prune',
          do: async () => {
            const marks = pruneMarks([...before, name].map((item) => ({ item, time: snapshotTime(item)!.getTime() })), retention);
            for (const m of marks) if (!m.keep) { await deleteSnapshot(g.run, t, m.item); pruned.push(m.item); }
            kept = marks.filter((m) => m.keep).length;
          },
        }];
        log(`share ${share.sharename} (${share.mode}): snapshot ${name} of ${share.path} (${t.kind === 'zfs' ? `ZFS ${t.dataset}` : t.kind === 'cephfs' ? `CephFS, in ${t.path}/.snap` : `btrfs, in ${t.snapdir}`})`);
        await applyPlan(steps, { failAt: failAtFromEnv(), log: g.log });
        const rtext = formatPruneOptions(retention);
        log(pruned.length ? `retention ${rtext}: removed ${pruned.join(', ')}` : `retention ${rtext || 'keep-all'}: nothing to remove`);
        return { share, name, pruned, kept };
      });
      let guest: GuestBackupRecord | undefined;
      if (o.guest !== false && r.share.mode !== 'native' && r.share.backup_storage) {
        guest = await guestBackup(g, r.share, r.name, log);
      }
      const end = Date.now();
      const cpu = process.cpuUsage(cpu0);
      await updateBackupState(sd, sharename, (s0) => {
        const s = guest?.status === 'ok' && guest.archive ? withGuestArchive(s0, { snapshot: r.name, archive: guest.archive, storage: guest.storage, time: Math.floor(started.getTime() / 1000) }) : s0;
        return {
        ...s, last_end: Math.floor(end / 1000), last_status: guest?.status === 'error' ? 'error' : 'ok',
        ...(guest?.status === 'error' ? { last_error: `guest backup: ${guest.error}`, failures_total: (s.failures_total ?? 0) + 1 } : { last_error: undefined, last_success: Math.floor(started.getTime() / 1000) }),
        last_snapshot: r.name, last_duration: (end - wall0) / 1000, last_cpu: (cpu.user + cpu.system) / 1e6, snapshots: r.kept,
        ...(guest ? { guest } : {}),
        };
      });
      if (guest?.status === 'error') throw new GatewayError('failed', `backup_storage: the data snapshot ${r.name} was taken, but the backup of the guest failed: ${guest.error}`, 'backup_storage');
      return { sharename, snapshot: r.name, time: snapshotTime(r.name)!.toISOString(), pruned: r.pruned, kept: r.kept, ...(guest ? { guest } : {}) };
    } catch (e) {
      const msg = (e as Error).message;
      if (!(e instanceof GatewayError && e.field === 'backup_storage')) {
        await updateBackupState(sd, sharename, (s) => ({ ...s, last_end: Math.floor(Date.now() / 1000), last_status: 'error', last_error: msg, failures_total: (s.failures_total ?? 0) + 1 }));
      }
      log(`backup failed: ${msg}`);
      throw e;
    }
  }
}

/** vzdump of the share's guest (snapshot mode), its notes naming the data snapshot taken with it. */
async function guestBackup(g: Gateway, share: Share, snapshot: string, log: (m: string) => void): Promise<GuestBackupRecord> {
  const storage = share.backup_storage!;
  if (share.vmid === undefined) return { vmid: 0, storage, status: 'error', error: 'the share has no guest recorded' };
  const node = share.node ?? g.settings.node;
  log(`vzdump of ${share.mode === 'lxc' ? 'CT' : 'VM'} ${share.vmid} on ${node} to storage ${storage} (snapshot mode)`);
  try {
    const r = await pveApi(g.settings, g.run).vzdump(node, {
      vmid: String(share.vmid), storage, mode: 'snapshot', compress: 'zstd',
      'notes-template': `pve-smbgateway share ${share.sharename}, data snapshot ${snapshot}`,
    });
    const archive = vzdumpArchive(r.log);
    log(`vzdump done${archive ? `: ${archive}` : ''}`);
    return { vmid: share.vmid, storage, upid: r.upid, ...(archive ? { archive } : {}), status: 'ok' };
  } catch (e) {
    const error = (e as Error).message;
    log(`vzdump failed: ${error}`);
    return { vmid: share.vmid, storage, status: 'error', error };
  }
}

/**
 * A path inside the share, as given by a user (relative to the share, `/` or `\` separated): no
 * absolute path, no `..`, nothing outside.
 */
export function shareRelativePath(file: string): string {
  const p = file.replace(/\\/g, '/').replace(/^\/+/, '');
  if (!p || p.split('/').some((c) => c === '..')) throw invalid('file', 'must be a path inside the share (relative to it, without ..)');
  const n = normalize(p);
  if (isAbsolute(n) || n === '.' || n.startsWith('..')) throw invalid('file', 'must be a path inside the share (relative to it, without ..)');
  return n.replace(/\/+$/, '');
}

/** Where a snapshot's copy of the share is browsable: btrfs's read-only subvolume, ZFS's .zfs/snapshot. */
export function snapshotRoot(share: Share, t: Snapshottable, name: string): string {
  return t.kind === 'btrfs' ? join(t.snapdir, name) : join(share.path, '.zfs', 'snapshot', name);
}

/** The source in the snapshot, resolved, refusing symlinks that lead outside it. */
export async function snapshotSource(share: Share, t: Snapshottable, name: string, rel: string): Promise<string> {
  const root = snapshotRoot(share, t, name);
  const rootReal = await realpath(root).catch(() => { throw invalid('snapshot', `snapshot ${name} of share "${share.sharename}" cannot be browsed here (${root})`); });
  const src = join(rootReal, rel);
  const real = await realpath(src).catch(() => { throw invalid('file', `${rel} is not in snapshot ${name} of share "${share.sharename}"`); });
  if (real !== rootReal && !real.startsWith(rootReal + sep)) throw invalid('file', `${rel} leads outside the snapshot (a symbolic link)`);
  await stat(real);
  return real;
}

/** The destination in the live share; its parent must resolve inside the share. */
export async function liveDestination(share: Share, rel: string): Promise<string> {
  const root = await realpath(share.path);
  const dst = join(root, rel);
  const parent = await realpath(join(dst, '..')).catch(() => { throw invalid('file', `the folder of ${rel} no longer exists in the share: restore the folder instead`); });
  const r = relative(root, parent);
  if (r.startsWith('..') || isAbsolute(r)) throw invalid('file', `${rel} leads outside the share (a symbolic link)`);
  return dst;
}

/** Copy one file or folder back from a snapshot into the live share (cp -a: owner, mode, times, ACLs kept). */
export async function copyBack(g: Gateway, src: string, dst: string): Promise<void> {
  await g.run('cp', ['-a', '--reflink=auto', '-T', '--', src, dst]);
}

export function restoreFileStep(g: Gateway, src: string, dst: string): Step {
  return { name: 'copy-back', do: () => copyBack(g, src, dst) };
}

/**
 * The steps of `restore --file`: btrfs copies from the read-only snapshot subvolume; ZFS from a
 * temporary clone of the snapshot (backup/zfs-file.ts), since `.zfs/snapshot` is not always there.
 */
export async function fileRestoreSteps(g: Gateway, share: Share, t: Snapshottable, name: string, rel: string): Promise<Step[]> {
  const dst = await liveDestination(share, rel);
  if (t.kind === 'zfs') return zfsFileRestoreSteps(g.run, { dataset: t.dataset, snapshot: name, rel, stateDir: g.settings.stateDir }, (src) => copyBack(g, src, dst));
  return [restoreFileStep(g, await snapshotSource(share, t, name, rel), dst)];
}

/** The volume id of a vzdump archive as the task log names it (a path on a dir storage, or PBS's name). */
export function archiveVolid(storage: string, archive: string): string {
  if (/^[a-z][a-z0-9\-_.]*[a-z0-9]:/i.test(archive)) return archive;
  return `${storage}:backup/${archive.startsWith('/') ? basename(archive) : archive}`;
}

/**
 * A whole-share restore of a guest share: the guest is stopped while its data is put back (it holds
 * the data mounted), optionally put back itself from the vzdump archive taken with that snapshot,
 * then started again if it was running.
 */
export function guestRestoreSteps(g: Gateway, share: Share, o: { archive?: { volid: string } }): { before: Step[]; after: Step[] } {
  if (share.vmid === undefined) throw invalid('sharename', `share "${share.sharename}" has no guest recorded`);
  const api = pveApi(g.settings, g.run);
  const node = share.node ?? g.settings.node;
  const kind = share.mode === 'lxc' ? 'lxc' as const : 'qemu' as const;
  const vmid = share.vmid;
  const was = { running: false };
  return {
    before: [{
      name: 'stop-guest',
      do: async () => { was.running = (await api.status(node, kind, vmid)).status === 'running'; if (was.running) await api.stop(node, kind, vmid); },
      undo: async () => { if (was.running) await api.start(node, kind, vmid); },
    }],
    after: [
      ...(o.archive ? [{ name: 'restore-guest', do: () => api.restoreGuest(node, kind, vmid, o.archive!.volid) }] : []),
      { name: 'start-guest', do: async () => { if (was.running || o.archive) await api.start(node, kind, vmid); } },
    ],
  };
}
