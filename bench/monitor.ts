/**
 * Monitoring and API benchmarks (figures, not pass/fail; goals from issue #4 in brackets):
 * 1. collection cost per cycle for 50 and 500 shares on a real sandboxed smbd with sessions held
 *    open: CPU ms of the daemon and of the commands it runs [500 shares < 100 ms CPU];
 * 2. a 7-day metrics query at 10 s resolution [< 50 ms];
 * 3. requests/s on the metrics endpoint from a loopback load generator (bounded: a few seconds);
 * 4. the daemon's RSS [< 100 MB] (a real pve-smbgatewayd process).
 *   node --import tsx bench/monitor.ts [collect|query|daemon]...   (default: all)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { join, resolve } from 'node:path';
import { TokenStore } from '../src/api/tokens.ts';
import type { Share } from '../src/core/share.ts';
import { parseShare } from '../src/core/share.ts';
import { Collector } from '../src/monitor/collector.ts';
import { MetricsDb, type Sample } from '../src/monitor/db.ts';
import { renderManagedConf } from '../src/samba/render.ts';
import { freePort, waitPort } from '../src/demo/sandbox.ts';
import { openSession, type SmbSession } from '../test/helpers/smbsession.ts';
import { sh, startGateway, type TestGateway } from '../test/helpers/gateway.ts';

const ROOT = resolve(import.meta.dirname, '..');
const TICK_S = 0.01; // /proc/self/stat times are in clock ticks (USER_HZ = 100)
const PW = 'Bench-mon-pass1';

function childCpu(): number {
  const f = readFileSync('/proc/self/stat', 'utf8').slice(readFileSync('/proc/self/stat', 'utf8').lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) * TICK_S; // cutime + cstime
}

async function withShares(g: TestGateway, n: number, user: string): Promise<Share[]> {
  const shares: Share[] = [];
  for (let i = 0; i < n; i++) {
    const path = join(g.storage, `s${i}`);
    await mkdir(path, { recursive: true });
    shares.push(parseShare({ sharename: `s${i}`, mode: 'native', path, users: [user] }));
  }
  await g.gw.store.write(shares);
  await writeFile(g.settings.managedConf, renderManagedConf(shares));
  await sh('smbcontrol', ['-s', g.settings.smbConf, 'smbd', 'reload-config']);
  return shares;
}

async function collectionCost(n: number): Promise<{ n: number; ownMs: number; childMs: number; wallMs: number; tickUs: number; sessions: number }> {
  const g = await startGateway();
  const sessions: SmbSession[] = [];
  try {
    const user = g.user('b');
    await sh('useradd', ['--no-create-home', '--shell', '/usr/sbin/nologin', '--user-group', user]);
    await sh('smbpasswd', ['-c', g.settings.smbConf, '-s', '-a', user], { input: `${PW}\n${PW}\n` });
    await withShares(g, n, user);
    // 20 clients connected to 20 different shares, as a busy node would have.
    for (let i = 0; i < 20; i++) {
      const s = await openSession(g.sandbox.port, `s${(i * 7) % n}`, user, PW);
      s.send('ls');
      await s.waitFor(/blocks available/);
      sessions.push(s);
    }
    const db = new MetricsDb(join(g.dir, 'state', 'metrics.db'));
    const c = new Collector(g.gw, { db });
    await c.collect();
    await c.collect();
    const cycles = 10;
    let own = 0;
    let wall = 0;
    const child0 = childCpu();
    for (let i = 0; i < cycles; i++) {
      const t0 = performance.now();
      await c.collect();
      wall += performance.now() - t0;
      own += c.stats.lastCycleCpuSeconds * 1000;
    }
    const childMs = ((childCpu() - child0) * 1000) / cycles;
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < 100; i++) c.tick();
    const tc = process.cpuUsage(cpu0);
    db.close();
    return { n, ownMs: own / cycles, childMs, wallMs: wall / cycles, tickUs: (tc.user + tc.system) / 100, sessions: sessions.length };
  } finally {
    for (const s of sessions) await s.close();
    await g.cleanup();
  }
}

async function queryCost(dir: string): Promise<{ rows: number; rawMs: number; weekMs: number; hourMs: number; monthMs: number; fileMb: number }> {
  const now = 1_800_000_000;
  const db = new MetricsDb(join(dir, 'q.db'), { now: () => now });
  const shares = 20;
  const per = 7 * 8640;
  for (let s = 0; s < shares; s++) {
    const rows: Sample[] = [];
    for (let i = 0; i < per; i++) {
      const v = (i * 7919) % 1000;
      rows.push({ share: `s${s}`, time: now - 7 * 86400 + i * 10, throughput_read: v * 1000, throughput_write: v * 500, iops_read: v, iops_write: v / 2, connections: 3, errors: 0, storage_used: 1e9 + v, storage_total: 1e10 });
    }
    db.insert(rows);
  }
  db.maintain(true);
  const time = (fn: () => unknown) => { fn(); const xs: number[] = []; for (let i = 0; i < 5; i++) { const t = performance.now(); fn(); xs.push(performance.now() - t); } return xs.sort((a, b) => a - b)[2]!; };
  const raw = db.db.prepare('SELECT timestamp AS time, throughput_read, throughput_write, iops_read, iops_write, connections, errors, storage_used, storage_total FROM share_metrics WHERE share_id = ? AND timestamp > ? ORDER BY timestamp');
  let n = 0;
  const rawMs = time(() => { n = raw.all('s7', now - 7 * 86400).length; });
  const weekMs = time(() => db.query('s7', 'week'));
  const hourMs = time(() => db.query('s7', 'hour'));
  const monthMs = time(() => db.query('s7', 'month'));
  db.db.pragma('wal_checkpoint(TRUNCATE)');
  const fileMb = Number(db.db.pragma('page_count', { simple: true })) * Number(db.db.pragma('page_size', { simple: true })) / 2 ** 20;
  db.close();
  return { rows: n, rawMs, weekMs, hourMs, monthMs, fileMb };
}

function rss(pid: number): { rssMb: number; hwmMb: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? 0);
  return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 };
}

async function load(url: string, path: string, auth: string, seconds: number, concurrency: number): Promise<{ rps: number; errors: number; p50: number; p99: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency, rejectUnauthorized: false });
  const end = Date.now() + seconds * 1000;
  const lat: number[] = [];
  let errors = 0;
  const one = () => new Promise<void>((res) => {
    const t = performance.now();
    const r = request(new URL(path, url), { agent, headers: { authorization: auth } }, (resp) => {
      resp.resume();
      resp.on('end', () => { if (resp.statusCode !== 200) errors++; lat.push(performance.now() - t); res(); });
    });
    r.on('error', () => { errors++; res(); });
    r.end();
  });
  const worker = async () => { while (Date.now() < end) await one(); };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const took = (performance.now() - t0) / 1000;
  agent.destroy();
  lat.sort((a, b) => a - b);
  return { rps: lat.length / took, errors, p50: lat[Math.floor(lat.length * 0.5)] ?? 0, p99: lat[Math.floor(lat.length * 0.99)] ?? 0 };
}

async function daemonUnderLoad(): Promise<Record<string, unknown>> {
  const g = await startGateway();
  let d: ChildProcess | undefined;
  try {
    const user = g.user('d');
    await sh('useradd', ['--no-create-home', '--shell', '/usr/sbin/nologin', '--user-group', user]);
    await withShares(g, 50, user);
    const port = await freePort();
    const dconf = join(g.dir, 'daemon.json');
    await writeFile(dconf, JSON.stringify({ listen: '127.0.0.1', port, interval: 10 }));
    const tok = await new TokenStore(g.settings).create('bench', ['Datastore.Audit']);
    d = spawn(join(ROOT, 'bin/pve-smbgatewayd'), [], { env: { ...process.env, SMBGATEWAY_CONFIG: g.settingsFile, SMBGATEWAYD_CONFIG: dconf }, stdio: 'ignore', detached: true });
    await waitPort('127.0.0.1', port);
    const url = `https://127.0.0.1:${port}`;
    await new Promise((r) => setTimeout(r, 1500));
    const idle = rss(d.pid!);
    const hist = await load(url, '/api2/json/nodes/testnode/smbgateway/s3/metrics?timeframe=hour', tok.header, 4, 16);
    const prom = await load(url, '/metrics', tok.header, 3, 16);
    const loaded = rss(d.pid!);
    return { idleRssMb: idle.rssMb, peakRssMb: loaded.hwmMb, rssAfterLoadMb: loaded.rssMb, metricsHistory: hist, prometheus: prom };
  } finally {
    if (d?.pid) { try { process.kill(-d.pid, 'SIGTERM'); } catch { /* gone */ } }
    await new Promise((r) => setTimeout(r, 500));
    await g.cleanup();
  }
}

const f = (x: number) => x.toFixed(1);
const scratch = await (async () => { const g = join('/tmp', `smbgw-bench-${process.pid}`); await mkdir(g, { recursive: true }); return g; })();
const only = process.argv.slice(2);
const want = (x: string) => !only.length || only.includes(x);
try {
  if (want('collect')) for (const n of [50, 500]) {
    const r = await collectionCost(n);
    console.log(`collection cycle, ${r.n} shares, ${r.sessions} sessions: daemon CPU ${f(r.ownMs)} ms + commands (smbstatus) ${f(r.childMs)} ms = ${f(r.ownMs + r.childMs)} ms CPU [goal < 100 ms for 500]; wall ${f(r.wallMs)} ms; tick ${f(r.tickUs)} us CPU`);
  }
  if (want('query')) {
  const q = await queryCost(scratch);
  console.log(`7-day query at 10 s resolution (${q.rows} raw rows of one share, 20 shares in a ${f(q.fileMb)} MiB file): raw ${f(q.rawMs)} ms [goal < 50 ms]; week (30 min steps) ${f(q.weekMs)} ms; hour ${f(q.hourMs)} ms; month (rollups) ${f(q.monthMs)} ms`);
  }
  if (want('daemon')) {
  // As installed: compiled JavaScript (bin/pve-smbgatewayd uses dist/ when it is up to date).
  await sh('npx', ['tsc', '-p', join(ROOT, 'tsconfig.json')], { timeoutMs: 300_000 });
  const l = await daemonUnderLoad() as { idleRssMb: number; peakRssMb: number; rssAfterLoadMb: number; metricsHistory: { rps: number; errors: number; p50: number; p99: number }; prometheus: { rps: number; errors: number; p50: number; p99: number } };
  console.log(`metrics endpoint, 16 keep-alive clients on loopback: ${f(l.metricsHistory.rps)} req/s (p50 ${f(l.metricsHistory.p50)} ms, p99 ${f(l.metricsHistory.p99)} ms, ${l.metricsHistory.errors} errors); /metrics ${f(l.prometheus.rps)} req/s`);
  console.log(`daemon RSS: idle ${f(l.idleRssMb)} MB, peak ${f(l.peakRssMb)} MB under load [goal < 100 MB]`);
  }
} finally {
  await sh('rm', ['-rf', scratch]);
}
