/**
 * Scheduled backups, run by the daemon: every share with backup_enabled and a schedule (its own
 * backup_schedule, else the gateway's backup_schedule setting) is backed up when its next calendar
 * event after the last run has come. A run missed while the daemon was down is caught up once when it
 * starts again; two runs of one share never overlap (the share's run lock, here and across processes);
 * each run is a task with its log (type `backup`, as `backup` from the API). The clock is injected.
 */
import { existsSync } from 'node:fs';
import { nextEvent } from '../core/calendar.ts';
import { snapshottable } from '../core/snapshot.ts';
import type { Share } from '../core/share.ts';
import { formatPruneOptions } from '../core/prune.ts';
import { readBackupState, shareRunLockOwner, updateBackupState, type ShareBackupState } from '../backup/state.ts';
import type { Gateway } from '../provision/context.ts';
import { retentionOf, runShareBackup, scheduleOf } from '../provision/backup.ts';
import type { TaskManager } from './tasks.ts';

export interface SchedulerOptions {
  /** The clock (epoch ms); default Date.now. */
  now?: () => number;
  /** How often due runs are looked for, ms (default 1000). */
  tickMs?: number;
  /** Schedules in UTC instead of the host's local time (tests). */
  utc?: boolean;
}

export interface ScheduleInfo { schedule: string; next?: number; due: boolean }

/** When a share's next scheduled run is (epoch ms), from its record; undefined: never again. */
export function nextRun(schedule: string, st: ShareBackupState, nowMs: number, utc = false): number | undefined {
  const base = st.schedule === schedule && st.since !== undefined
    ? Math.max(st.since, st.last_start ?? 0) * 1000
    : nowMs;
  return nextEvent(schedule, base, { utc });
}

/** Shares the default schedule reaches but cannot snapshot (a native share on a plain directory) are left out, not failed every time. */
function defaultReaches(s: Share): boolean {
  return s.mode !== 'native' || !!snapshottable(s);
}

export class BackupScheduler {
  readonly running = new Map<string, Promise<void>>();
  private timer?: NodeJS.Timeout;
  private ticking?: Promise<unknown>;
  private stopped = false;
  readonly now: () => number;

  constructor(private readonly g: Gateway, private readonly tasks: TaskManager, private readonly o: SchedulerOptions = {}) {
    this.now = o.now ?? Date.now;
  }

  /** The schedule of each share (and whether it is due now). */
  async schedules(): Promise<Map<string, ScheduleInfo>> {
    const out = new Map<string, ScheduleInfo>();
    const now = this.now();
    const state = await readBackupState(this.g.settings.stateDir);
    for (const s of await this.g.store.list()) {
      if ((s.node ?? this.g.settings.node) !== this.g.settings.node) continue;
      // Native shares record no node (shares.cfg is cluster-wide): a node runs those whose data it has.
      if (!s.node && !existsSync(s.path)) continue;
      const schedule = scheduleOf(this.g, s);
      if (!schedule || (!s.backup_schedule && !defaultReaches(s))) continue;
      const next = nextRun(schedule, state[s.sharename] ?? {}, now, this.o.utc);
      out.set(s.sharename, { schedule, next, due: next !== undefined && next <= now });
    }
    return out;
  }

  /** Start the runs that are due; returns their task ids. */
  async tick(): Promise<string[]> {
    const started: string[] = [];
    const now = this.now();
    const state = await readBackupState(this.g.settings.stateDir);
    for (const [name, info] of await this.schedules()) {
      const st = state[name] ?? {};
      if (st.schedule !== info.schedule || st.since === undefined) {
        // A schedule seen for the first time (or changed) counts from now.
        await updateBackupState(this.g.settings.stateDir, name, (s) => ({ ...s, schedule: info.schedule, since: Math.floor(now / 1000) }));
        continue;
      }
      if (!info.due || this.running.has(name)) continue;
      let resolve!: () => void;
      const done = new Promise<void>((r) => { resolve = r; });
      this.running.set(name, done);
      const upid = this.tasks.start('backup', name, 'root@pam', async (log) => {
        try {
          log(`scheduled backup of ${name} (${info.schedule}), due ${new Date(info.next!).toISOString()}`);
          return await runShareBackup(this.g, name, { trigger: 'schedule', now: new Date(now), log, upid });
        } finally {
          this.running.delete(name);
          resolve();
        }
      });
      started.push(upid);
    }
    return started;
  }

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      this.ticking = this.tick().catch((e: Error) => this.g.log(`backup scheduler: ${e.message}`)).finally(() => {
        if (!this.stopped) this.timer = setTimeout(tick, this.o.tickMs ?? 1000);
      });
    };
    tick();
  }

  /** Stop looking for due runs and wait for the running ones. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.ticking;
    await Promise.all(this.running.values());
  }
}

export interface BackupStatus {
  enabled: boolean;
  schedule?: string;
  /** Where the schedule comes from: the share or the gateway's default. */
  schedule_from?: 'share' | 'default';
  retention: string;
  next_run?: string;
  running?: string;
  last_run?: { start?: string; end?: string; status?: string; error?: string; trigger?: string; snapshot?: string; duration?: number; upid?: string };
  last_success?: string;
  guest?: ShareBackupState['guest'];
}

const isoS = (s: number | undefined) => (s === undefined ? undefined : new Date(s * 1000).toISOString());

/** The backup part of `status`: schedule, next run, the last run and the last success. */
export async function backupStatus(g: Gateway, share: Share, nowMs = Date.now()): Promise<{ backup: BackupStatus; warnings: string[] }> {
  const st = (await readBackupState(g.settings.stateDir))[share.sharename] ?? {};
  const schedule = scheduleOf(g, share);
  const warnings: string[] = [];
  let retention = '';
  try { retention = formatPruneOptions(retentionOf(g, share)) || 'keep-all=1'; } catch (e) { warnings.push(`backup: ${(e as Error).message}`); }
  const next = schedule ? nextRun(schedule, st, nowMs) : undefined;
  const running = await shareRunLockOwner(g.settings.lockDir, share.sharename);
  if (st.last_status === 'error') warnings.push(`backup: the last ${st.last_trigger ?? ''} run failed at ${isoS(st.last_end ?? st.last_start)}: ${st.last_error}`.replace('last  run', 'last run'));
  const backup: BackupStatus = {
    enabled: share.backup_enabled !== false,
    ...(schedule ? { schedule, schedule_from: share.backup_schedule ? 'share' as const : 'default' as const } : {}),
    retention,
    ...(next !== undefined ? { next_run: new Date(next).toISOString() } : {}),
    ...(running ? { running } : {}),
    ...(st.last_start !== undefined ? { last_run: { start: isoS(st.last_start), end: isoS(st.last_end), status: st.last_status ?? 'running', error: st.last_error, trigger: st.last_trigger, snapshot: st.last_snapshot, duration: st.last_duration, upid: st.last_upid } } : {}),
    ...(st.last_success !== undefined ? { last_success: isoS(st.last_success) } : {}),
    ...(st.guest ? { guest: st.guest } : {}),
  };
  return { backup, warnings };
}
