/** The metrics history: rollups, retention and bounded size with an injected clock; queries as rrddata. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { METRIC_COLUMNS, MetricsDb, type Sample } from '../src/monitor/db.ts';

const DAY = 86400;
const T0 = 1_700_006_400; // a UTC midnight

function sample(share: string, time: number, v: number): Sample {
  return { share, time, throughput_read: v, throughput_write: 2 * v, iops_read: v, iops_write: v, connections: 1, errors: 0, storage_used: 1000, storage_total: 2000 };
}

async function tmpDb(now: { t: number }) {
  const dir = await mkdtemp(join(tmpdir(), 'smbgw-mdb-'));
  const db = new MetricsDb(join(dir, 'metrics.db'), { now: () => now.t });
  return { dir, db, cleanup: async () => { db.close(); await rm(dir, { recursive: true, force: true }); } };
}

test('the file is SQLite in WAL mode with the seed share_metrics table and its columns', async (t) => {
  const now = { t: T0 };
  const { db, cleanup } = await tmpDb(now);
  t.after(cleanup);
  assert.equal(db.db.pragma('journal_mode', { simple: true }), 'wal');
  const cols = (db.db.prepare('PRAGMA table_info(share_metrics)').all() as { name: string }[]).map((c) => c.name);
  assert.deepEqual(cols, ['id', 'share_id', 'timestamp', ...METRIC_COLUMNS]);
});

test('a metrics database under /etc/pve is refused (pmxcfs)', () => {
  assert.throws(() => new MetricsDb('/etc/pve/smbgateway/metrics.db'), /must not lie under \/etc\/pve/);
});

test('hourly and daily rollups hold the average and the maximum; raw samples go after 7 days, hourly rollups after 30, daily ones after a year', async (t) => {
  const now = { t: T0 };
  const { db, cleanup } = await tmpDb(now);
  t.after(cleanup);
  // 40 days of samples every 10 minutes; value = minute of the hour (0,10,...,50): avg 25, max 50.
  for (let day = 0; day < 40; day++) {
    const rows: Sample[] = [];
    for (let s = 0; s < DAY; s += 600) rows.push(sample('a', T0 + day * DAY + s, (s % 3600) / 60));
    db.insert(rows);
    now.t = T0 + (day + 1) * DAY + 5;
    db.maintain();
  }
  const c = db.counts();
  // Raw: only the last 7 days (7 * 144 samples, the boundary sample included or not).
  assert.ok(c.raw >= 7 * 144 - 1 && c.raw <= 7 * 144 + 1, `raw rows ${c.raw}`);
  assert.ok(c.hourly >= 30 * 24 - 1 && c.hourly <= 30 * 24 + 1, `hourly rows ${c.hourly}`);
  assert.ok(c.daily >= 39 && c.daily <= 41, `daily rows ${c.daily} (40 days, all kept)`);
  const h = db.db.prepare('SELECT * FROM share_metrics_hourly ORDER BY timestamp DESC LIMIT 1').get() as Record<string, number>;
  assert.equal(h.samples, 6);
  assert.equal(h.avg_throughput_read, 25);
  assert.equal(h.max_throughput_read, 50);
  assert.equal(h.max_throughput_write, 100);
  const d = db.db.prepare('SELECT * FROM share_metrics_daily ORDER BY timestamp DESC LIMIT 1').get() as Record<string, number>;
  assert.equal(d.samples, 144);
  assert.equal(d.avg_throughput_read, 25);
  assert.equal(d.max_iops_read, 50);
  const oldest = db.db.prepare('SELECT MIN(timestamp) t FROM share_metrics').get() as { t: number };
  assert.ok(oldest.t >= now.t - 7 * DAY, 'no raw sample older than 7 days');
});

test('queries: hour gives every sample oldest first, day/week consolidate, month and year read the rollups; AVERAGE and MAX', async (t) => {
  const now = { t: T0 + 10 * DAY };
  const { db, cleanup } = await tmpDb(now);
  t.after(cleanup);
  const rows: Sample[] = [];
  for (let s = 10 * DAY - 8 * DAY; s < 10 * DAY; s += 10) rows.push(sample('a', T0 + s, (s / 10) % 2 === 0 ? 10 : 30));
  rows.push(sample('b', T0 + 10 * DAY - 5, 999));
  db.insert(rows);
  db.maintain(true);
  const hour = db.query('a', 'hour');
  assert.ok(hour.length >= 359 && hour.length <= 360, `hour points ${hour.length}`);
  assert.deepEqual(Object.keys(hour[0]!), ['time', ...METRIC_COLUMNS]);
  assert.ok(hour.every((p, i) => i === 0 || p.time > hour[i - 1]!.time), 'oldest first');
  assert.ok(hour.every((p) => p.throughput_read === 10 || p.throughput_read === 30));
  const day = db.query('a', 'day');
  assert.ok(day.length >= 288 && day.length <= 289, `day points ${day.length}`);
  assert.equal(day[5]!.throughput_read, 20);
  assert.equal(db.query('a', 'day', 'MAX')[5]!.throughput_read, 30);
  const week = db.query('a', 'week');
  assert.ok(week.length >= 336 && week.length <= 337, `week points ${week.length}`);
  const month = db.query('a', 'month');
  assert.ok(month.length >= 8 * 24 - 1 && month.length <= 8 * 24 + 1, `month points ${month.length}`);
  assert.equal(month[3]!.throughput_write, 40);
  assert.equal(db.query('a', 'month', 'MAX')[3]!.throughput_write, 60);
  // year: one point per day, the complete days from the daily rollups, today from its hourly rows.
  const year = db.query('a', 'year');
  assert.ok(year.length >= 8 && year.length <= 9, `year points ${year.length}`);
  assert.ok(year.every((p, i) => i === 0 || p.time - year[i - 1]!.time === DAY), 'one point a day');
  assert.equal(year[3]!.throughput_write, 40);
  assert.equal(db.query('a', 'year', 'MAX')[3]!.throughput_write, 60);
  assert.equal(db.query('b', 'hour').length, 1);
  assert.equal(db.query('nosuch', 'hour').length, 0);
});

test('the file size stays bounded: pruning gives pages back', async (t) => {
  const now = { t: T0 };
  const { db, dir, cleanup } = await tmpDb(now);
  t.after(cleanup);
  const fill = (from: number) => {
    for (let k = 0; k < 20; k++) {
      const rows: Sample[] = [];
      for (let i = 0; i < 2000; i++) rows.push(sample(`s${i % 50}`, from + k * 2000 + i, i));
      db.insert(rows);
    }
  };
  fill(T0);
  db.db.pragma('wal_checkpoint(TRUNCATE)');
  const pagesFull = db.db.pragma('page_count', { simple: true }) as number;
  now.t = T0 + 8 * DAY; // every sample is now older than 7 days
  const r = db.maintain(true);
  assert.equal(r.pruned > 0, true);
  assert.equal(db.counts().raw, 0);
  const pagesAfter = db.db.pragma('page_count', { simple: true }) as number;
  assert.ok(pagesAfter < pagesFull / 2, `pages ${pagesFull} -> ${pagesAfter}`);
  assert.equal(db.db.pragma('freelist_count', { simple: true }), 0);
  const size = (await stat(join(dir, 'metrics.db'))).size;
  assert.ok(size < pagesFull * 4096 / 2, `file ${size} bytes`);
});
