/**
 * Short connections are counted (native mode): each client connects, moves its data and disconnects
 * in well under the collector's one-second tick, back to back, as copy scripts and backup tools do.
 * The smbd child of such a connection is born and gone between two ticks; its tree connect event
 * (full_audit, src/monitor/tcon.ts) places it and the master's counters give its I/O.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Collector } from '../src/monitor/collector.ts';
import { MetricsDb } from '../src/monitor/db.ts';
import { sh, startGateway, type TestGateway } from './helpers/gateway.ts';

const PW = 'Sh0rt-conn-pass';
const MiB = 1024 * 1024;
let t: TestGateway;
let c: Collector;
let db: MetricsDb;
let ua: string;
let ticker: NodeJS.Timeout;

before(async () => {
  t = await startGateway();
  ua = t.user('a');
  const ub = t.user('b');
  const pwf = await t.passwordFile(PW);
  for (const [s, u] of [['shorta', ua], ['shortb', ub]] as const) {
    const r = await t.cli(['create', s, '--mode', 'native', '--path', join(t.storage, s), '--user', u, '--password-file', pwf, '--json']);
    assert.equal(r.json?.success, true, r.stdout + r.stderr);
  }
  db = new MetricsDb(join(t.dir, 'state', 'metrics.db'));
  c = new Collector(t.gw, { db });
  ticker = setInterval(() => c.tick(), c.tickMs); // the daemon's tick: 1 s
  await c.collect(); // baseline
});

after(async () => {
  clearInterval(ticker);
  db?.close();
  await t?.cleanup();
});

/** Runs `n` smbclient connections one after the other; returns the I/O counted meanwhile per share. */
async function backToBack(n: number, command: (i: number) => string) {
  await c.collect();
  const a0 = c.state.get('shorta')!;
  const b0 = c.state.get('shortb')!;
  const u0 = { r: c.stats.unattributedReadBytes, w: c.stats.unattributedWrittenBytes };
  const t0 = Date.now();
  for (let i = 0; i < n; i++) {
    const r = await t.smb('shorta', ua, PW, command(i));
    assert.equal(r.code, 0, r.stdout + r.stderr);
  }
  const perConnection = (Date.now() - t0) / n;
  await new Promise((res) => setTimeout(res, c.tickMs + 300)); // one more tick sees the last end
  await c.collect();
  const a = c.state.get('shorta')!;
  const b = c.state.get('shortb')!;
  return {
    perConnection,
    aWritten: a.writtenBytes - a0.writtenBytes, aRead: a.readBytes - a0.readBytes,
    bWritten: b.writtenBytes - b0.writtenBytes, bRead: b.readBytes - b0.readBytes,
    unWritten: c.stats.unattributedWrittenBytes - u0.w, unRead: c.stats.unattributedReadBytes - u0.r,
  };
}

test('20 clients each writing 5 MiB in their own short connection: counted for their share within 5 %, 0 for the other', async (tc) => {
  const src = join(t.dir, 'five');
  await sh('dd', ['if=/dev/urandom', `of=${src}`, 'bs=1M', 'count=5', 'status=none']);
  const m = await backToBack(20, (i) => `put ${src} f${i}`);
  const want = 20 * 5 * MiB;
  tc.diagnostic(`written to A ${m.aWritten} of ${want} (${(m.aWritten / want * 100).toFixed(2)} %), unattributed ${m.unWritten}, ${m.perConnection.toFixed(0)} ms per connection`);
  assert.ok(m.perConnection < c.tickMs, `connections are shorter than a tick (${m.perConnection} ms each)`);
  assert.ok(Math.abs(m.aWritten - want) <= want * 0.05, `written to A: ${m.aWritten} of ${want} (unattributed ${m.unWritten})`);
  assert.equal(m.bWritten, 0);
  assert.equal(m.bRead, 0);
});

test('100 short reads of 5 MiB, each in its own connection: counted for their share within 5 %, 0 for the other', async (tc) => {
  const m = await backToBack(100, (i) => `get f${i % 20} /dev/null`);
  const want = 100 * 5 * MiB;
  tc.diagnostic(`read from A ${m.aRead} of ${want} (${(m.aRead / want * 100).toFixed(2)} %), unattributed ${m.unRead}, ${m.perConnection.toFixed(0)} ms per connection`);
  assert.ok(Math.abs(m.aRead - want) <= want * 0.05, `read from A: ${m.aRead} of ${want} (unattributed ${m.unRead}, ${m.perConnection} ms per connection)`);
  assert.equal(m.bRead, 0);
  assert.equal(m.bWritten, 0);
});
