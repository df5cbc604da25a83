/**
 * Metrics from real SMB traffic on one sandboxed smbd serving two shares: bytes written to A are
 * A's (within 10 %) and B stays at zero; the connection count follows the sessions held open; a
 * wrong password and a refused tree connect raise the error counts.
 */
import assert from 'node:assert/strict';
import { writeFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Collector } from '../src/monitor/collector.ts';
import { MetricsDb } from '../src/monitor/db.ts';
import { sh, startGateway, type TestGateway } from './helpers/gateway.ts';
import { openSession } from './helpers/smbsession.ts';

const PW = 'Mon1tor-pass';
const MB100 = 100 * 1024 * 1024;
let t: TestGateway;
let c: Collector;
let db: MetricsDb;
let ua: string;
let ub: string;
let ticker: NodeJS.Timeout;

before(async () => {
  t = await startGateway();
  ua = t.user('a');
  ub = t.user('b');
  const pwf = join(t.dir, 'pw');
  await writeFile(pwf, PW + '\n', { mode: 0o600 });
  for (const [s, u] of [['mona', ua], ['monb', ub]] as const) {
    const r = await t.cli(['create', s, '--mode', 'native', '--path', join(t.storage, s), '--user', u, '--password-file', pwf, '--json']);
    assert.equal(r.json?.success, true, r.stdout + r.stderr);
  }
  db = new MetricsDb(join(t.dir, 'state', 'metrics.db'));
  c = new Collector(t.gw, { db });
  ticker = setInterval(() => c.tick(), 200);
  await c.collect(); // baseline
});

after(async () => {
  clearInterval(ticker);
  db?.close();
  await t?.cleanup();
});

test('100 MB written to share A show as A\'s written bytes and throughput (within 10 %); B stays at zero', async () => {
  const src = join(t.dir, 'big');
  await sh('dd', ['if=/dev/urandom', `of=${src}`, 'bs=1M', 'count=100', 'status=none']);
  const a0 = c.state.get('mona')!;
  const b0 = c.state.get('monb')!;
  const s = await openSession(t.sandbox.port, 'mona', ua, PW);
  try {
    s.send(`put ${src} big`);
    for (const end = Date.now() + 60_000; ;) {
      const st = await stat(join(t.storage, 'mona', 'big')).catch(() => undefined);
      if (st && st.size >= MB100) break;
      assert.ok(Date.now() < end, 'the upload did not finish within 60 s');
      await new Promise((r) => setTimeout(r, 50));
    }
    s.send('ls');
    await s.waitFor(/blocks available/);
    const samples = await c.collect();
    const a = c.state.get('mona')!;
    const b = c.state.get('monb')!;
    const written = a.writtenBytes - a0.writtenBytes;
    assert.ok(Math.abs(written - MB100) <= MB100 * 0.1, `A's written bytes ${written}`);
    const sa = samples.find((x) => x.share === 'mona')!;
    const byRate = sa.throughput_write! * c.stats.lastIntervalSeconds;
    assert.ok(Math.abs(byRate - MB100) <= MB100 * 0.1, `A's throughput ${sa.throughput_write} B/s over ${c.stats.lastIntervalSeconds} s`);
    assert.ok(sa.iops_write! > 0);
    assert.equal(b.writtenBytes - b0.writtenBytes, 0);
    assert.equal(b.readBytes - b0.readBytes, 0);
    const sb = samples.find((x) => x.share === 'monb')!;
    assert.equal(sb.throughput_write, 0);
    assert.equal(sb.throughput_read, 0);
    // The sample is in the database, as the API returns it.
    const hist = db.query('mona', 'hour');
    assert.equal(hist.at(-1)!.time, sa.time);
    assert.equal(hist.at(-1)!.throughput_write, sa.throughput_write);
    // Reading it back counts as A's reads.
    s.send('get big /dev/null');
    await s.waitFor(/getting file/);
    await c.collect();
    const read = c.state.get('mona')!.readBytes - a.readBytes;
    assert.ok(Math.abs(read - MB100) <= MB100 * 0.1, `A's read bytes ${read}`);
    assert.equal(c.state.get('monb')!.readBytes - b0.readBytes, 0);
  } finally {
    await s.close();
  }
});

test('a short session that ends between cycles is not lost: its bytes stay A\'s (or, if never seen, unattributed), never B\'s', async () => {
  const src = join(t.dir, 'ten');
  await sh('dd', ['if=/dev/zero', `of=${src}`, 'bs=1M', 'count=10', 'status=none']);
  await c.collect();
  const a0 = c.state.get('mona')!.writtenBytes;
  const b0 = c.state.get('monb')!.writtenBytes;
  const u0 = c.stats.unattributedWrittenBytes;
  const r = await t.smb('mona', ua, PW, `put ${src} ten`);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  await new Promise((res) => setTimeout(res, 500)); // ticks notice the end
  await c.collect();
  const gained = c.state.get('mona')!.writtenBytes - a0 + (c.stats.unattributedWrittenBytes - u0);
  assert.ok(gained >= 10 * 1024 * 1024 && gained <= 11 * 1024 * 1024, `accounted ${gained}`);
  assert.equal(c.state.get('monb')!.writtenBytes - b0, 0);
});

test('the connection count equals the smbclient sessions held open', async () => {
  const sessions = [];
  try {
    for (let i = 0; i < 3; i++) {
      const s = await openSession(t.sandbox.port, 'mona', ua, PW);
      s.send('ls');
      await s.waitFor(/blocks available/);
      sessions.push(s);
    }
    const b = await openSession(t.sandbox.port, 'monb', ub, PW);
    b.send('ls');
    await b.waitFor(/blocks available/);
    sessions.push(b);
    const samples = await c.collect();
    assert.equal(samples.find((x) => x.share === 'mona')!.connections, 3);
    assert.equal(samples.find((x) => x.share === 'monb')!.connections, 1);
  } finally {
    for (const s of sessions) await s.close();
  }
  const samples = await c.collect();
  assert.equal(samples.find((x) => x.share === 'mona')!.connections, 0);
});

test('a wrong password raises the error count of the shares of that account; a refused tree connect that of its share', async () => {
  await c.collect();
  const a0 = c.state.get('mona')!;
  const b0 = c.state.get('monb')!;
  const wrong = await t.smb('mona', ua, 'not-the-password', 'ls');
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stdout + wrong.stderr, /LOGON_FAILURE/);
  let samples = await c.collect();
  assert.equal(samples.find((x) => x.share === 'mona')!.errors, 1);
  assert.equal(samples.find((x) => x.share === 'monb')!.errors, 0);
  assert.equal(c.state.get('mona')!.failedLogons - a0.failedLogons, 1);
  // ua may not use monb: smbd refuses the tree connect.
  const refused = await t.smb('monb', ua, PW, 'ls');
  assert.match(refused.stdout + refused.stderr, /ACCESS_DENIED/);
  samples = await c.collect();
  assert.equal(samples.find((x) => x.share === 'monb')!.errors, 1);
  assert.equal(samples.find((x) => x.share === 'mona')!.errors, 0);
  assert.equal(c.state.get('monb')!.refusedTreeConnects - b0.refusedTreeConnects, 1);
  // Errors are per interval: the next sample is back to zero.
  samples = await c.collect();
  assert.equal(samples.find((x) => x.share === 'monb')!.errors, 0);
});

test('storage used/total are filled in for every share', async () => {
  const samples = await c.collect();
  for (const s of samples) {
    assert.ok(s.storage_used! > 0 && s.storage_total! >= s.storage_used!, JSON.stringify(s));
  }
});
