/**
 * What the backups of this node did, per share: the last run (scheduled, manual or by the vzdump
 * hook), its outcome and the last success; the scheduler's bookkeeping (since when a schedule is
 * known). Node-local state (<state_dir>/backup-state.json, written whole and renamed into place), read
 * by `status`, the metrics and the scheduler. A per-share run lock (a directory in the lock dir,
 * holding the owner's pid) keeps two runs of one share from overlapping across processes.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { GatewayError } from '../core/errors.ts';

export interface GuestBackupRecord { vmid: number; storage: string; upid?: string; archive?: string; status: 'ok' | 'error'; error?: string }

export interface ShareBackupState {
  /** Schedule the bookkeeping below belongs to (a changed schedule starts afresh). */
  schedule?: string;
  /** When the scheduler first saw this schedule (epoch s): the first run is the first event after it. */
  since?: number;
  last_start?: number;
  last_end?: number;
  last_status?: 'ok' | 'error';
  last_error?: string;
  /** What started the last run: schedule, manual, vzdump-hook. */
  last_trigger?: string;
  last_upid?: string;
  last_success?: number;
  last_snapshot?: string;
  last_duration?: number;
  last_cpu?: number;
  snapshots?: number;
  failures_total?: number;
  runs_total?: number;
  guest?: GuestBackupRecord;
  /** Guest archives and the data snapshot each belongs to, newest last (the last 100). */
  guest_history?: { snapshot: string; archive: string; storage: string; time: number }[];
}

/** Add a guest archive with its data snapshot to a share's history. */
export function withGuestArchive(s: ShareBackupState, e: { snapshot: string; archive: string; storage: string; time: number }): ShareBackupState {
  return { ...s, guest_history: [...(s.guest_history ?? []).filter((x) => x.archive !== e.archive), e].slice(-100) };
}

export type BackupState = Record<string, ShareBackupState>;

export function backupStatePath(stateDir: string): string {
  return join(stateDir, 'backup-state.json');
}

export async function readBackupState(stateDir: string): Promise<BackupState> {
  const text = await readFile(backupStatePath(stateDir), 'utf8').catch(() => '');
  if (!text) return {};
  try {
    const v = JSON.parse(text) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? v as BackupState : {};
  } catch { return {}; }
}

let chain: Promise<unknown> = Promise.resolve();

/** Change one share's record (read, modify, write whole, rename: a reader never sees half a file). */
export function updateBackupState(stateDir: string, sharename: string, f: (s: ShareBackupState) => ShareBackupState | undefined): Promise<void> {
  const next = chain.then(async () => {
    const all = await readBackupState(stateDir);
    const v = f({ ...(all[sharename] ?? {}) });
    if (v === undefined) delete all[sharename]; else all[sharename] = v;
    await mkdir(stateDir, { recursive: true });
    const file = backupStatePath(stateDir);
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(all, null, 1) + '\n', { mode: 0o644 });
    await rename(tmp, file);
  });
  chain = next.catch(() => undefined);
  return next;
}

function lockPath(lockDir: string, sharename: string): string {
  return join(lockDir, `backup-${createHash('sha256').update(sharename).digest('hex').slice(0, 16)}`);
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

/**
 * Hold the run lock of one share while fn runs; a second run is refused (not queued) naming who holds
 * it. A lock left by a process that died is taken over.
 */
export async function withShareRunLock<T>(lockDir: string, sharename: string, what: string, fn: () => Promise<T>): Promise<T> {
  const dir = lockPath(lockDir, sharename);
  await mkdir(lockDir, { recursive: true });
  for (let attempt = 0; ; attempt++) {
    try {
      await mkdir(dir);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw e;
      const owner = await readFile(join(dir, 'owner'), 'utf8').catch(() => '');
      const [pidText, host, ...what] = owner.split(' ');
      const pid = Number(pidText);
      // No owner written yet: another run has just taken it. A lock on a cluster file system held from
      // another host is never taken over from here (its pid means nothing on this one).
      if (!owner || host !== hostname() || (pid && alive(pid))) {
        throw new GatewayError('locked', `sharename: a backup of share "${sharename}" is already running (${what.join(' ') || 'pid ' + pid}${host && host !== hostname() ? ` on ${host}` : ''}); runs of one share never overlap`, 'sharename');
      }
      await rm(dir, { recursive: true, force: true });
    }
  }
  try {
    await writeFile(join(dir, 'owner'), `${process.pid} ${hostname()} ${what}`);
    return await fn();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Whether a run of the share holds its lock now (a live owner), and what it is. */
export async function shareRunLockOwner(lockDir: string, sharename: string): Promise<string | undefined> {
  const owner = await readFile(join(lockPath(lockDir, sharename), 'owner'), 'utf8').catch(() => '');
  const [pidText, host, ...what] = owner.split(' ');
  const pid = Number(pidText);
  if (!owner) return undefined;
  return host !== hostname() ? `${what.join(' ')} on ${host}` : pid && alive(pid) ? what.join(' ') : undefined;
}
