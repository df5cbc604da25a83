/**
 * Proxmox calendar events and prune options, table-driven: the schedule examples of Proxmox's
 * documentation (Schedule Format, "Schedule Examples" and "Special Values") with the times they name,
 * and the keep-* options against a fixed list of snapshot times.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { calendarEventRule, nextEvent, parseCalendarEvent } from '../src/core/calendar.ts';
import { formatPruneOptions, parsePruneOptions, pruneMarks, type PruneOptions } from '../src/core/prune.ts';

const T = (s: string) => Date.parse(`${s.replace(' ', 'T')}Z`);
const iso = (ms: number | undefined) => (ms === undefined ? 'never' : new Date(ms).toISOString().slice(0, 16).replace('T', ' '));

/** The next `n` events after `from` (UTC). */
function upcoming(schedule: string, from: string, n: number): string[] {
  const out: string[] = [];
  let t = T(from);
  for (let i = 0; i < n; i++) {
    const next = nextEvent(schedule, t, { utc: true });
    out.push(iso(next));
    if (next === undefined) break;
    t = next;
  }
  return out;
}

describe('calendar events (Proxmox schedule format)', () => {
  // 2025-06-13 is a Friday.
  const table: { schedules: string[]; meaning: string; from: string; next: string[] }[] = [
    { schedules: ['mon,tue,wed,thu,fri', 'mon..fri'], meaning: 'Every working day at 00:00', from: '2025-06-13 10:00', next: ['2025-06-16 00:00', '2025-06-17 00:00', '2025-06-18 00:00', '2025-06-19 00:00', '2025-06-20 00:00', '2025-06-23 00:00'] },
    { schedules: ['sat,sun', 'sat..sun'], meaning: 'Only on weekends at 00:00', from: '2025-06-13 10:00', next: ['2025-06-14 00:00', '2025-06-15 00:00', '2025-06-21 00:00'] },
    { schedules: ['mon,wed,fri'], meaning: 'Monday, Wednesday and Friday at 00:00', from: '2025-06-13 10:00', next: ['2025-06-16 00:00', '2025-06-18 00:00', '2025-06-20 00:00'] },
    { schedules: ['12:05'], meaning: 'Every day at 12:05 PM', from: '2025-06-13 10:00', next: ['2025-06-13 12:05', '2025-06-14 12:05'] },
    { schedules: ['*/5', '0/5', '*:00/5', '0/1:0/5'], meaning: 'Every five minutes', from: '2025-06-13 10:31', next: ['2025-06-13 10:35', '2025-06-13 10:40', '2025-06-13 10:45'] },
    { schedules: ['mon..wed 30/10', 'mon,tue,wed 30/10', 'mon..wed *:30/10'], meaning: 'Mon, Tue, Wed 30, 40 and 50 minutes after every full hour', from: '2025-06-15 23:55', next: ['2025-06-16 00:30', '2025-06-16 00:40', '2025-06-16 00:50', '2025-06-16 01:30'] },
    { schedules: ['mon..fri 8..17,22:0/15'], meaning: 'Every working day every 15 minutes between 8 AM and 6 PM and between 10 PM and 11 PM', from: '2025-06-13 17:40', next: ['2025-06-13 17:45', '2025-06-13 22:00', '2025-06-13 22:15', '2025-06-13 22:30', '2025-06-13 22:45', '2025-06-16 08:00'] },
    { schedules: ['fri 12..13:5/20', 'fri 12,13:5/20'], meaning: 'Friday at 12:05, 12:25, 12:45, 13:05, 13:25 and 13:45', from: '2025-06-13 00:00', next: ['2025-06-13 12:05', '2025-06-13 12:25', '2025-06-13 12:45', '2025-06-13 13:05', '2025-06-13 13:25', '2025-06-13 13:45', '2025-06-20 12:05'] },
    { schedules: ['12,14,16,18,20,22:5', '12/2:5'], meaning: 'Every day starting at 12:05 until 22:05, every 2 hours', from: '2025-06-13 00:00', next: ['2025-06-13 12:05', '2025-06-13 14:05', '2025-06-13 16:05', '2025-06-13 18:05', '2025-06-13 20:05', '2025-06-13 22:05', '2025-06-14 12:05'] },
    { schedules: ['*', '*/1', '*:*', '0/1:0/1', 'minutely'], meaning: 'Every minute (minimum interval)', from: '2025-06-13 23:58', next: ['2025-06-13 23:59', '2025-06-14 00:00', '2025-06-14 00:01'] },
    { schedules: ['*-05'], meaning: 'On the 5th day of every month', from: '2025-06-13 00:00', next: ['2025-07-05 00:00', '2025-08-05 00:00'] },
    { schedules: ['Sat *-1..7 15:00'], meaning: 'First Saturday each month at 15:00', from: '2025-06-13 00:00', next: ['2025-07-05 15:00', '2025-08-02 15:00', '2025-09-06 15:00'] },
    { schedules: ['2015-10-21'], meaning: '21st October 2015 at 00:00', from: '2015-01-01 00:00', next: ['2015-10-21 00:00', 'never'] },
    // Special values
    { schedules: ['hourly', '*-*-* *:00:00'], meaning: 'hourly', from: '2025-06-13 10:30', next: ['2025-06-13 11:00', '2025-06-13 12:00'] },
    { schedules: ['daily', '*-*-* 00:00:00'], meaning: 'daily', from: '2025-06-13 10:30', next: ['2025-06-14 00:00', '2025-06-15 00:00'] },
    { schedules: ['weekly', 'mon *-*-* 00:00:00'], meaning: 'weekly', from: '2025-06-13 10:30', next: ['2025-06-16 00:00', '2025-06-23 00:00'] },
    { schedules: ['monthly', '*-*-01 00:00:00'], meaning: 'monthly', from: '2025-06-13 10:30', next: ['2025-07-01 00:00', '2025-08-01 00:00'] },
    { schedules: ['yearly', 'annually', '*-01-01 00:00:00'], meaning: 'yearly', from: '2025-06-13 10:30', next: ['2026-01-01 00:00', '2027-01-01 00:00'] },
    { schedules: ['quarterly', '*-01,04,07,10-01 00:00:00'], meaning: 'quarterly', from: '2025-06-13 10:30', next: ['2025-07-01 00:00', '2025-10-01 00:00', '2026-01-01 00:00'] },
    { schedules: ['semiannually', 'semi-annually', '*-01,07-01 00:00:00'], meaning: 'semiannually', from: '2025-06-13 10:30', next: ['2025-07-01 00:00', '2026-01-01 00:00'] },
    // Others the gateway's users write
    { schedules: ['mon..fri 02:00'], meaning: 'working days at 2 AM', from: '2025-06-13 02:00', next: ['2025-06-16 02:00', '2025-06-17 02:00'] },
    { schedules: ['*-02-29'], meaning: 'leap days only', from: '2025-01-01 00:00', next: ['2028-02-29 00:00', '2032-02-29 00:00'] },
    { schedules: ['*-*-31 12:00'], meaning: 'months with 31 days', from: '2025-04-01 00:00', next: ['2025-05-31 12:00', '2025-07-31 12:00'] },
    { schedules: ['sat..mon 03:00'], meaning: 'a weekday range wrapping over Sunday', from: '2025-06-13 00:00', next: ['2025-06-14 03:00', '2025-06-15 03:00', '2025-06-16 03:00', '2025-06-21 03:00'] },
    { schedules: ['*:*:0/20'], meaning: 'every 20 seconds', from: '2025-06-13 10:00', next: ['2025-06-13 10:00', '2025-06-13 10:00', '2025-06-13 10:01'] },
  ];
  for (const row of table) {
    for (const s of row.schedules) {
      it(`${JSON.stringify(s)}: ${row.meaning}`, () => {
        assert.deepEqual(upcoming(s, row.from, row.next.length), row.next);
      });
    }
  }

  it('counts from strictly after the given time, to the second', () => {
    assert.equal(nextEvent('12:05', T('2025-06-13 12:05'), { utc: true }), T('2025-06-14 12:05'));
    assert.equal(nextEvent('*:*:0/20', T('2025-06-13 10:00') + 20_500, { utc: true }), T('2025-06-13 10:00') + 40_000);
  });

  it('uses local time unless told UTC (as Proxmox)', () => {
    const local = nextEvent('daily', Date.now())!;
    const d = new Date(local);
    assert.deepEqual([d.getHours(), d.getMinutes(), d.getSeconds()], [0, 0, 0]);
  });

  const bad: [string, RegExp][] = [
    ['', /empty schedule/],
    ['foo', /"foo" is not a weekday/],
    ['mon..fri 25:00', /hour 25 is out of range \(0\.\.23\)/],
    ['12:60', /minute 60 is out of range/],
    ['5..3', /start is after end/],
    ['mon 02:00 extra', /unexpected "extra"/],
    ['1-2-3-4', /is not a date/],
    ['*:0/0', /minute step 0 is out of range/],
  ];
  for (const [s, re] of bad) {
    it(`refuses ${JSON.stringify(s)} naming the problem`, () => {
      assert.throws(() => parseCalendarEvent(s), re);
      assert.match(calendarEventRule(s)!, /is not a Proxmox calendar event/);
    });
  }
});

describe('prune options (Proxmox keep-* semantics)', () => {
  // A fixed list of snapshot times (UTC), newest last. 2025-06-16 is a Monday (ISO week 25).
  const snaps: Record<string, string> = {
    a: '2025-01-01 10:00', // Wed, ISO 2025-W01
    b: '2025-06-01 09:00', // Sun, W22
    c: '2025-06-09 09:00', // Mon, W24
    d: '2025-06-14 09:00', // Sat, W24
    e: '2025-06-15 08:00', // Sun, W24
    f: '2025-06-15 20:00', // Sun, W24
    g: '2025-06-16 01:00', // Mon, W25
    h: '2025-06-16 01:30', // Mon, W25, same hour as g
    i: '2025-06-16 02:00', // Mon, W25
  };
  const items = Object.entries(snaps).map(([item, t]) => ({ item, time: T(t) }));
  const kept = (o: PruneOptions, list = items) => pruneMarks(list, o, { utc: true }).filter((m) => m.keep).map((m) => m.item).join('');

  const table: [string, string, string][] = [
    // options, kept (newest first), why
    ['', 'ihgfedcba', 'no option: everything is kept'],
    ['keep-all=1', 'ihgfedcba', 'keep-all'],
    ['keep-last=3', 'ihg', 'the three newest'],
    ['keep-last=20', 'ihgfedcba', 'fewer backups than asked for'],
    ['keep-hourly=2', 'ih', 'newest of 02:00, newest of 01:00 (h, not g)'],
    ['keep-daily=3', 'ifd', 'newest of 06-16, 06-15, 06-14'],
    ['keep-weekly=2', 'if', 'newest of ISO weeks 25 and 24'],
    ['keep-monthly=2', 'ia', 'newest of June and of January (months without backups do not count)'],
    ['keep-yearly=5', 'i', 'one year with backups'],
    ['keep-last=1,keep-daily=2', 'ifd', 'the day keep-last covered does not count again: two more days'],
    ['keep-hourly=1,keep-daily=2', 'ifd', 'hourly keeps i; daily skips the rest of 06-16'],
    ['keep-hourly=3,keep-daily=3', 'ihfdcb', 'hourly keeps i, h, f (g shares h\'s hour); daily: 06-14, 06-09, 06-01'],
    ['keep-daily=1,keep-weekly=2,keep-monthly=3', 'ifba', 'daily i (W25); weekly adds f (W24) and b (W22); monthly adds a (January)'],
    ['keep-last=2,keep-weekly=1,keep-yearly=1', 'ihf', 'weekly skips W25 (covered by keep-last) and adds f; yearly is covered'],
  ];
  for (const [opts, want, why] of table) {
    it(`${opts || '(none)'} keeps ${want}: ${why}`, () => {
      assert.equal(kept(parsePruneOptions(opts)), want);
    });
  }

  it('weeks are ISO weeks across the turn of the year', () => {
    const list = [
      { item: 'x', time: T('2024-12-28 12:00') }, // Sat, ISO 2024-W52
      { item: 'y', time: T('2024-12-30 12:00') }, // Mon, ISO 2025-W01
      { item: 'z', time: T('2025-01-01 12:00') }, // Wed, ISO 2025-W01
    ];
    assert.equal(kept({ 'keep-weekly': 5 }, list), 'zx');
    assert.equal(kept({ 'keep-yearly': 5 }, list), 'zy');
  });

  it('says which option kept a backup', () => {
    const m = pruneMarks(items, parsePruneOptions('keep-last=1,keep-daily=2'), { utc: true });
    assert.deepEqual(m.filter((x) => x.keep).map((x) => `${x.item}:${x.by}`), ['i:keep-last', 'f:keep-daily', 'd:keep-daily']);
  });

  it('parses and prints Proxmox property strings, refusing what Proxmox refuses', () => {
    assert.equal(formatPruneOptions(parsePruneOptions(' keep-daily=7, keep-last=3 ')), 'keep-last=3,keep-daily=7');
    assert.throws(() => parsePruneOptions('keep-daily=0'), /keep-daily must be between 1 and 100000/);
    assert.throws(() => parsePruneOptions('keep-minutely=3'), /unknown option "keep-minutely"/);
    assert.throws(() => parsePruneOptions('keep-last=1,keep-last=2'), /given twice/);
    assert.throws(() => parsePruneOptions('keep-all=1,keep-last=2'), /cannot be combined/);
    assert.throws(() => parsePruneOptions('keep-last'), /is not key=number/);
  });
});
