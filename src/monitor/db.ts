/**
 * The metrics history: a node-local SQLite file (better-sqlite3, WAL mode), never under /etc/pve
 * (pmxcfs has no locks, no mmap and a 1 MiB file limit). Raw samples (the seed's `share_metrics`
 * table) are kept 7 days; hourly rollups (average and maximum of every column) 30 days, daily ones a
 * year (366 days: Proxmox's `year` timeframe; one row per share and day).
 * Rollups and pruning run from `maintain()`, which the collector calls after every insert; it does
 * real work once per hour. Pages freed by pruning are given back with incremental vacuum, so the
 * file's size stays bounded by the retention windows.
 */
import type Database from 'better-sqlite3';
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { invalid } from '../core/errors.ts';

/** The seed's columns, in order. */
export const METRIC_COLUMNS = [
  'throughput_read', 'throughput_write', 'iops_read', 'iops_write', 'connections', 'errors', 'storage_used', 'storage_total',
] as const;
export type MetricColumn = (typeof METRIC_COLUMNS)[number];

export type MetricValues = Record<MetricColumn, number | null>;
export interface Sample extends MetricValues { share: string; time: number }
export type Point = { time: number } & MetricValues;

export const TIMEFRAMES = ['hour', 'day', 'week', 'month', 'year'] as const;
export type Timeframe = (typeof TIMEFRAMES)[number];
export const CFS = ['AVERAGE', 'MAX'] as const;
export type Cf = (typeof CFS)[number];

export interface Retention { rawSeconds: number; hourlySeconds: number; dailySeconds: number }
export const DEFAULT_RETENTION: Retention = { rawSeconds: 7 * 86400, hourlySeconds: 30 * 86400, dailySeconds: 366 * 86400 };

/** What each timeframe covers, from which table and at which step (seconds). */
const FRAMES: Record<Timeframe, { span: number; table: 'raw' | 'hourly' | 'daily'; step: number }> = {
  hour: { span: 3600, table: 'raw', step: 0 },        // every raw sample
  day: { span: 86400, table: 'raw', step: 300 },
  week: { span: 7 * 86400, table: 'raw', step: 1800 },
  month: { span: 30 * 86400, table: 'hourly', step: 3600 },
  year: { span: 365 * 86400, table: 'daily', step: 86400 },
};

const HOUR = 3600;
const DAY = 86400;

export interface MetricsDbOptions {
  retention?: Partial<Retention>;
  /** Epoch seconds; tests inject their own clock. */
  now?: () => number;
  readonly?: boolean;
}

export class MetricsDb {
  readonly db: Database.Database;
  readonly retention: Retention;
  private readonly now: () => number;
  private readonly insertStmt: Database.Statement;
  private lastMaintainHour = -1;

  constructor(readonly path: string, opts: MetricsDbOptions = {}) {
    if (path.startsWith('/etc/pve/')) throw invalid('metrics_db', 'must not lie under /etc/pve (pmxcfs has no locks, no mmap and a 1 MiB file limit)');
    if (!opts.readonly && path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    // Loaded on first use: the native module costs ~0.1 s of every CLI start that never opens the database.
    const Sqlite = createRequire(import.meta.url)('better-sqlite3') as typeof Database;
    this.db = new Sqlite(path, { readonly: !!opts.readonly, fileMustExist: !!opts.readonly });
    this.retention = { ...DEFAULT_RETENTION, ...(opts.retention ?? {}) };
    this.now = opts.now ?? (() => Math.floor(Date.now() / 1000));
    if (!opts.readonly) this.migrate();
    this.db.pragma('busy_timeout = 5000');
    this.insertStmt = opts.readonly
      ? this.db.prepare('SELECT 1')
      : this.db.prepare(`INSERT INTO share_metrics (share_id, timestamp, ${METRIC_COLUMNS.join(', ')}) VALUES (?, ?, ${METRIC_COLUMNS.map(() => '?').join(', ')})`);
  }

  private migrate(): void {
    // auto_vacuum must be chosen before the first table exists.
    this.db.pragma('auto_vacuum = INCREMENTAL');
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('journal_size_limit = 4194304');
    const cols = (prefix: string, type: string) => METRIC_COLUMNS.map((c) => `${prefix}${c} ${type}`).join(',\n      ');
    this.db.exec(`
    CREATE TABLE IF NOT EXISTS share_metrics (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      share_id TEXT NOT NULL,
      timestamp INTEGER NOT NULL,
      throughput_read REAL,
      throughput_write REAL,
      iops_read INTEGER,
      iops_write INTEGER,
      connections INTEGER,
      errors INTEGER,
      storage_used INTEGER,
      storage_total INTEGER
    );
    -- Covering index: a share's samples over a time range are read in order from the index alone
    -- (samples of all shares are interleaved in the table, one cycle after the other).
    CREATE INDEX IF NOT EXISTS share_metrics_share_time_all ON share_metrics (share_id, timestamp, ${METRIC_COLUMNS.join(', ')});
    CREATE INDEX IF NOT EXISTS share_metrics_time ON share_metrics (timestamp);
    ${['share_metrics_hourly', 'share_metrics_daily'].map((t) => `CREATE TABLE IF NOT EXISTS ${t} (
      share_id TEXT NOT NULL,
      timestamp INTEGER NOT NULL,
      samples INTEGER NOT NULL,
      ${cols('avg_', 'REAL')},
      ${cols('max_', 'REAL')},
      PRIMARY KEY (share_id, timestamp)
    ) WITHOUT ROWID;`).join('\n    ')}
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    `);
  }

  insert(samples: readonly Sample[]): void {
    const tx = this.db.transaction((rows: readonly Sample[]) => {
      for (const s of rows) this.insertStmt.run(s.share, s.time, ...METRIC_COLUMNS.map((c) => s[c]));
    });
    tx(samples);
  }

  private meta(key: string): number | undefined {
    const r = this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
    return r ? Number(r.value) : undefined;
  }
  private setMeta(key: string, v: number): void {
    this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, String(v));
  }

  /**
   * Roll complete hours up into share_metrics_hourly, complete days into share_metrics_daily, and
   * drop what is older than the retention windows. Cheap when nothing is due (once per hour).
   */
  maintain(force = false): { rolledHours: number; rolledDays: number; pruned: number } {
    const now = this.now();
    const hourNow = Math.floor(now / HOUR);
    if (!force && hourNow === this.lastMaintainHour) return { rolledHours: 0, rolledDays: 0, pruned: 0 };
    this.lastMaintainHour = hourNow;
    let rolledHours = 0;
    let rolledDays = 0;
    let pruned = 0;
    const avg = METRIC_COLUMNS.map((c) => `AVG(${c})`).join(', ');
    const max = METRIC_COLUMNS.map((c) => `MAX(${c})`).join(', ');
    const names = [...METRIC_COLUMNS.map((c) => `avg_${c}`), ...METRIC_COLUMNS.map((c) => `max_${c}`)].join(', ');
    this.db.transaction(() => {
      // Hours: from the first raw hour not yet rolled up to the last complete hour.
      const hourEnd = hourNow * HOUR;
      const firstRaw = (this.db.prepare('SELECT MIN(timestamp) t FROM share_metrics').get() as { t: number | null }).t;
      const hourFrom = Math.max(this.meta('rolled_hour_until') ?? 0, firstRaw === null ? hourEnd : Math.floor(firstRaw / HOUR) * HOUR);
      if (hourFrom < hourEnd) {
        rolledHours = this.db.prepare(`INSERT OR REPLACE INTO share_metrics_hourly (share_id, timestamp, samples, ${names})
          SELECT share_id, (timestamp / ${HOUR}) * ${HOUR}, COUNT(*), ${avg}, ${max}
          FROM share_metrics WHERE timestamp >= ? AND timestamp < ? GROUP BY share_id, timestamp / ${HOUR}`).run(hourFrom, hourEnd).changes;
      }
      this.setMeta('rolled_hour_until', Math.max(hourEnd, this.meta('rolled_hour_until') ?? 0));
      // Days: from complete hourly rows, weighted by their sample counts.
      const dayEnd = Math.floor(now / DAY) * DAY;
      const firstHourly = (this.db.prepare('SELECT MIN(timestamp) t FROM share_metrics_hourly').get() as { t: number | null }).t;
      const dayFrom = Math.max(this.meta('rolled_day_until') ?? 0, firstHourly === null ? dayEnd : Math.floor(firstHourly / DAY) * DAY);
      if (dayFrom < dayEnd) {
        const wavg = METRIC_COLUMNS.map((c) => `SUM(avg_${c} * samples) / SUM(CASE WHEN avg_${c} IS NULL THEN 0 ELSE samples END)`).join(', ');
        const wmax = METRIC_COLUMNS.map((c) => `MAX(max_${c})`).join(', ');
        rolledDays = this.db.prepare(`INSERT OR REPLACE INTO share_metrics_daily (share_id, timestamp, samples, ${names})
          SELECT share_id, (timestamp / ${DAY}) * ${DAY}, SUM(samples), ${wavg}, ${wmax}
          FROM share_metrics_hourly WHERE timestamp >= ? AND timestamp < ? GROUP BY share_id, timestamp / ${DAY}`).run(dayFrom, dayEnd).changes;
      }
      this.setMeta('rolled_day_until', Math.max(dayEnd, this.meta('rolled_day_until') ?? 0));
      pruned += this.db.prepare('DELETE FROM share_metrics WHERE timestamp < ?').run(now - this.retention.rawSeconds).changes;
      pruned += this.db.prepare('DELETE FROM share_metrics_hourly WHERE timestamp < ?').run(now - this.retention.hourlySeconds).changes;
      pruned += this.db.prepare('DELETE FROM share_metrics_daily WHERE timestamp < ?').run(now - this.retention.dailySeconds).changes;
    })();
    if (pruned > 0) {
      // Give freed pages back to the filesystem and keep the WAL from growing.
      this.db.pragma('incremental_vacuum');
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    }
    return { rolledHours, rolledDays, pruned };
  }

  /** Forget a share's history (after it is deleted). */
  forget(share: string): void {
    for (const t of ['share_metrics', 'share_metrics_hourly', 'share_metrics_daily']) this.db.prepare(`DELETE FROM ${t} WHERE share_id = ?`).run(share);
  }

  /**
   * Samples of one share, oldest first, as Proxmox's rrddata: `hour` gives every raw sample,
   * `day` and `week` consolidate raw samples into 5 and 30 minute steps, `month` reads the
   * hourly rollups, `year` the daily ones (today, not rolled up yet, from today's hourly rows).
   * `cf` picks the average or the maximum within each step.
   */
  query(share: string, timeframe: Timeframe = 'hour', cf: Cf = 'AVERAGE'): Point[] {
    const f = FRAMES[timeframe];
    const now = this.now();
    const from = now - f.span;
    let rows: Record<string, number | null>[];
    if (f.table === 'raw' && f.step === 0) {
      rows = this.db.prepare(`SELECT timestamp AS time, ${METRIC_COLUMNS.join(', ')} FROM share_metrics
        WHERE share_id = ? AND timestamp > ? AND timestamp <= ? ORDER BY timestamp`).all(share, from, now) as typeof rows;
    } else if (f.table === 'raw') {
      const agg = METRIC_COLUMNS.map((c) => `${cf === 'MAX' ? 'MAX' : 'AVG'}(${c}) AS ${c}`).join(', ');
      rows = this.db.prepare(`SELECT (timestamp / ${f.step}) * ${f.step} AS time, ${agg} FROM share_metrics
        WHERE share_id = ? AND timestamp > ? AND timestamp <= ? GROUP BY timestamp / ${f.step} ORDER BY time`).all(share, from, now) as typeof rows;
    } else if (f.table === 'daily') {
      const p = cf === 'MAX' ? 'max_' : 'avg_';
      const sel = METRIC_COLUMNS.map((c) => `${p}${c} AS ${c}`).join(', ');
      rows = this.db.prepare(`SELECT timestamp AS time, ${sel} FROM share_metrics_daily
        WHERE share_id = ? AND timestamp > ? AND timestamp <= ? ORDER BY timestamp`).all(share, from, now) as typeof rows;
      // The current day, not rolled up yet: its hourly rows, weighted by their sample counts (as the daily rollup is).
      const rolledUntil = this.meta('rolled_day_until') ?? 0;
      const agg = METRIC_COLUMNS.map((c) => (cf === 'MAX' ? `MAX(max_${c}) AS ${c}` : `SUM(avg_${c} * samples) / SUM(CASE WHEN avg_${c} IS NULL THEN 0 ELSE samples END) AS ${c}`)).join(', ');
      const recent = this.db.prepare(`SELECT (timestamp / ${DAY}) * ${DAY} AS time, ${agg} FROM share_metrics_hourly
        WHERE share_id = ? AND timestamp >= ? AND timestamp <= ? GROUP BY timestamp / ${DAY} ORDER BY time`).all(share, Math.max(rolledUntil, from), now) as typeof rows;
      rows = [...rows, ...recent];
    } else {
      const p = cf === 'MAX' ? 'max_' : 'avg_';
      // The current, not yet rolled-up hour comes from the raw samples.
      const rolledUntil = this.meta('rolled_hour_until') ?? 0;
      const sel = METRIC_COLUMNS.map((c) => `${p}${c} AS ${c}`).join(', ');
      rows = this.db.prepare(`SELECT timestamp AS time, ${sel} FROM share_metrics_hourly
        WHERE share_id = ? AND timestamp > ? AND timestamp <= ? ORDER BY timestamp`).all(share, from, now) as typeof rows;
      const agg = METRIC_COLUMNS.map((c) => `${cf === 'MAX' ? 'MAX' : 'AVG'}(${c}) AS ${c}`).join(', ');
      const recent = this.db.prepare(`SELECT (timestamp / ${HOUR}) * ${HOUR} AS time, ${agg} FROM share_metrics
        WHERE share_id = ? AND timestamp >= ? AND timestamp <= ? GROUP BY timestamp / ${HOUR} ORDER BY time`).all(share, Math.max(rolledUntil, from), now) as typeof rows;
      rows = [...rows, ...recent];
    }
    return rows.map((r) => {
      const p = { time: Number(r.time) } as Point;
      for (const c of METRIC_COLUMNS) p[c] = r[c] === null || r[c] === undefined ? null : Number(r[c]);
      return p;
    });
  }

  /** Row counts per table (tests, status). */
  counts(): { raw: number; hourly: number; daily: number } {
    const n = (t: string) => (this.db.prepare(`SELECT COUNT(*) n FROM ${t}`).get() as { n: number }).n;
    return { raw: n('share_metrics'), hourly: n('share_metrics_hourly'), daily: n('share_metrics_daily') };
  }

  close(): void {
    this.db.close();
  }
}

const open = new Map<string, MetricsDb>();

/** One handle per file and process (the daemon's collector and its API share it). */
export function metricsDbFor(path: string, opts: MetricsDbOptions = {}): MetricsDb {
  let db = open.get(path);
  if (!db) {
    db = new MetricsDb(path, opts);
    open.set(path, db);
  }
  return db;
}

/** Close one file's handle (the daemon, when it stops). */
export function releaseMetricsDb(path: string): void {
  open.get(path)?.close();
  open.delete(path);
}

export function closeMetricsDbs(): void {
  for (const db of open.values()) db.close();
  open.clear();
}
