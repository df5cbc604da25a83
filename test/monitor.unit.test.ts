/** Attribution of smbd I/O to shares, the error sources, and the Prometheus text (checked by promtool). */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFile, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { cgroupSmbdIo, MonotonicCounter, NativeIoTracker } from '../src/monitor/attribution.ts';
import type { ShareState } from '../src/monitor/collector.ts';
import { globalParam } from '../src/monitor/collector.ts';
import { LogTail, logSourcesFrom, parseAuthAuditLine, parseRefusedTcon } from '../src/monitor/logs.ts';
import type { IoCounters, ProcFs } from '../src/monitor/procio.ts';
import { parseProcIo } from '../src/monitor/procio.ts';
import { renderPrometheus } from '../src/monitor/prometheus.ts';
import { parseTconLine, tconLogFrom } from '../src/monitor/tcon.ts';
import { fullAuditLogged } from '../src/monitor/logs.ts';

/** A /proc stand-in: the master 100 and its children, with counters the test moves. */
function fakeProc() {
  const io = new Map<number, IoCounters>([[100, { rchar: 0, wchar: 0, syscr: 0, syscw: 0 }]]);
  const cwd = new Map<number, string>();
  const kids = new Set<number>();
  const proc: ProcFs = {
    io: (pid) => io.get(pid), children: () => [...kids], cwd: (pid) => cwd.get(pid), comm: () => 'smbd', start: () => 1,
  };
  const add = (pid: number, w: number) => { const c = io.get(pid)!; io.set(pid, { ...c, wchar: c.wchar + w, syscw: c.syscw + 1 }); };
  return {
    proc,
    fork: (pid: number, path?: string) => { kids.add(pid); io.set(pid, { rchar: 0, wchar: 0, syscr: 0, syscw: 0 }); if (path) cwd.set(pid, path); },
    write: add,
    /** The child ends: the kernel adds its counters to the master's. */
    exit: (pid: number) => { const c = io.get(pid)!; kids.delete(pid); io.delete(pid); const m = io.get(100)!; io.set(100, { rchar: m.rchar + c.rchar, wchar: m.wchar + c.wchar, syscr: m.syscr + c.syscr, syscw: m.syscw + c.syscw }); },
  };
}

const shareOf = (p: string) => (p.startsWith('/srv/a') ? 'a' : p.startsWith('/srv/b') ? 'b' : undefined);

test('a child is credited to the share it serves; its tail after the last cycle comes from the master when it ends', () => {
  const f = fakeProc();
  const t = new NativeIoTracker(f.proc, 100, shareOf);
  t.tick();
  f.fork(201, '/srv/a');
  t.tick();
  f.write(201, 1000);
  t.cycle();
  assert.equal(t.totals.get('a')?.wchar, 1000);
  f.write(201, 500);
  f.exit(201);
  t.tick();
  assert.equal(t.totals.get('a')?.wchar, 1500);
  assert.equal(t.totals.get('b'), undefined);
  assert.equal(t.unattributed.wchar, 0);
});

test('a child serving two shares is split by the weights (open files); a child never placed counts as unattributed', () => {
  const f = fakeProc();
  const t = new NativeIoTracker(f.proc, 100, shareOf);
  t.tick();
  f.fork(301, '/srv/a');
  f.fork(302); // no tree connect yet: cwd outside every share
  t.tick();
  t.setShares(new Map([[301, new Map([['a', 3], ['b', 1]])]]));
  f.write(301, 4000);
  f.write(302, 700);
  t.cycle();
  assert.equal(t.totals.get('a')?.wchar, 3000);
  assert.equal(t.totals.get('b')?.wchar, 1000);
  f.exit(302);
  t.tick();
  assert.equal(t.unattributed.wchar, 700);
});

test('a connection that starts and ends between two ticks is placed by its tree connect event; without one it stays unattributed', () => {
  const f = fakeProc();
  const t = new NativeIoTracker(f.proc, 100, shareOf);
  t.tick();
  // Two short connections on a, back to back, both gone before the next tick.
  f.fork(501); f.write(501, 5000); f.exit(501);
  f.fork(502); f.write(502, 5000); f.exit(502);
  t.tick([{ pid: 501, share: 'a' }, { pid: 502, share: 'a' }]);
  assert.equal(t.totals.get('a')?.wchar, 10000);
  assert.equal(t.totals.get('b'), undefined);
  assert.equal(t.unattributed.wchar, 0);
  // One that was seen (placed by its event while live) and ends with a tail, beside one never seen.
  f.fork(503); f.write(503, 100);
  t.tick([{ pid: 503, share: 'b' }]);
  t.cycle();
  assert.equal(t.totals.get('b')?.wchar, 100);
  f.write(503, 900); f.exit(503);
  t.tick();
  assert.equal(t.totals.get('b')?.wchar, 1000);
  f.fork(504); f.write(504, 700); f.exit(504);
  t.tick();
  assert.equal(t.unattributed.wchar, 700);
  assert.equal(t.totals.get('a')?.wchar, 10000);
});

test('tree connect lines of full_audit are parsed; other lines are not', () => {
  assert.deepEqual(parseTconLine('  smbgw-tcon|14230|connect|ok|Share1'), { pid: 14230, share: 'Share1' });
  assert.equal(parseTconLine('  smbgw-tcon|14230|connect|fail (x)|s1'), undefined);
  // An audited share's line (the audit preset's prefix: share, user, client, pid).
  assert.deepEqual(parseTconLine('  smbgw-audit|Aud|alice|127.0.0.1|14231|connect|ok|Aud'), { pid: 14231, share: 'Aud' });
  assert.equal(parseTconLine('  smbgw-audit|Aud|alice|127.0.0.1|14231|unlinkat|ok|/srv/aud/x'), undefined);
  assert.equal(parseTconLine('[2026/11/30 19:38:46.444644,  1] ../../source3/modules/vfs_full_audit.c:643(do_log)'), undefined);
  assert.equal(tconLogFrom('1 auth_json_audit:3@/var/log/samba/auth.json full_audit:1@/var/log/samba/tcon.log'), '/var/log/samba/tcon.log');
  assert.equal(tconLogFrom('1 auth_json_audit:3@/x'), undefined);
});

test('full_audit lines are kept by a class file, or by a level of 1 into smbd\'s log files; not at level 0', () => {
  assert.equal(fullAuditLogged('/var/log/samba/log.%m', '1 auth_json_audit:3@/a full_audit:1@/var/log/samba/tcon.log'), true);
  assert.equal(fullAuditLogged('', '0 full_audit:1@/var/log/samba/tcon.log'), true);
  assert.equal(fullAuditLogged('/var/log/samba/log.%m', '1'), true);
  assert.equal(fullAuditLogged('/var/log/samba/log.%m', ''), false);
  assert.equal(fullAuditLogged('/var/log/samba/log.%m', '0 auth_json_audit:3@/a'), false);
  assert.equal(fullAuditLogged('/var/log/samba/log.%m', '2 full_audit:0'), false);
  assert.equal(fullAuditLogged('', '1'), false, 'no log file: nothing to read');
});

test('children already running when the tracker starts count from then on, not from their start', () => {
  const f = fakeProc();
  f.fork(401, '/srv/a');
  f.write(401, 9999);
  const t = new NativeIoTracker(f.proc, 100, shareOf);
  t.tick();
  f.write(401, 1);
  t.cycle();
  assert.equal(t.totals.get('a')?.wchar, 1);
});

test('lxc mode: a connection that ended but is not reaped yet (a zombie, gone from cgroup.procs) still counts; a reap is counted once, even while it is being read; a restarted smbd starts again from zero', () => {
  // The container's smbd master 100 and one connection 201 (its child), as /proc shows them.
  const io = new Map<number, IoCounters>([[100, { rchar: 0, wchar: 0, syscr: 0, syscw: 0 }], [201, { rchar: 0, wchar: 0, syscr: 0, syscw: 0 }]]);
  const kids = new Map<number, number[]>([[100, [201]]]);
  let start = 1;
  let afterMasterRead: (() => void) | undefined;
  const proc: ProcFs = {
    io: (pid) => { const x = io.get(pid); if (pid === 100 && afterMasterRead) { afterMasterRead(); afterMasterRead = undefined; } return x; },
    children: (pid) => kids.get(pid) ?? [], cwd: () => undefined,
    comm: (pid) => (io.has(pid) ? 'smbd' : undefined), start: (pid) => (pid === 100 ? start : 2),
  };
  const reap = () => { const m = io.get(100)!; const k = io.get(201)!; io.set(100, { rchar: m.rchar + k.rchar, wchar: m.wchar + k.wchar, syscr: m.syscr + k.syscr, syscw: m.syscw + k.syscw }); io.delete(201); kids.set(100, []); };
  const c = new MonotonicCounter();
  const step = (cgroupProcs: number[]) => { const x = cgroupSmbdIo(proc, cgroupProcs); return c.update(x.io, x.masters).rchar; };
  assert.equal(step([100, 201]), 0);
  io.set(201, { rchar: 5000, wchar: 0, syscr: 5, syscw: 0 });
  // 201 has exited: not in cgroup.procs any more, still its parent's (unreaped) child.
  assert.equal(step([100]), 5000, 'the zombie\'s reads count');
  // The master reaps it right after its own counters were read: this sum misses 201, nothing is lost.
  afterMasterRead = reap;
  assert.equal(step([100]), 5000);
  assert.equal(step([100]), 5000, 'counted once');
  io.set(100, { rchar: 7000, wchar: 0, syscr: 6, syscw: 0 });
  assert.equal(step([100]), 7000);
  // A connection reaped between two collections: in the master's counters.
  kids.set(100, [202]); io.set(202, { rchar: 1000, wchar: 0, syscr: 1, syscw: 0 });
  assert.equal(step([100, 202]), 8000);
  const m = io.get(100)!; io.set(100, { ...m, rchar: m.rchar + 1500 }); io.delete(202); kids.set(100, []);
  assert.equal(step([100]), 8500);
  // smbd restarts (same pid, new start time): its counters begin again and all of them are new I/O.
  start = 9; io.set(100, { rchar: 300, wchar: 0, syscr: 1, syscw: 0 });
  assert.equal(step([100]), 8800);
});

test('/proc/<pid>/io is parsed', () => {
  assert.deepEqual(parseProcIo('rchar: 10\nwchar: 20\nsyscr: 3\nsyscw: 4\nread_bytes: 0\nwrite_bytes: 8192\n'), { rchar: 10, wchar: 20, syscr: 3, syscw: 4 });
});

test('failed logons come from the JSON auth audit; refused tree connects from the smbd log', () => {
  const line = '  {"timestamp": "2026-01-01T00:00:00.000000+0000", "type": "Authentication", "Authentication": {"status": "NT_STATUS_WRONG_PASSWORD", "clientDomain": "WORKGROUP", "clientAccount": "Alice", "remoteAddress": "ipv4:127.0.0.1:5000"}}';
  assert.deepEqual(parseAuthAuditLine(line), { account: 'alice', domain: 'WORKGROUP', status: 'NT_STATUS_WRONG_PASSWORD', remote: 'ipv4:127.0.0.1:5000' });
  assert.equal(parseAuthAuditLine(line.replace('NT_STATUS_WRONG_PASSWORD', 'NT_STATUS_OK')), undefined);
  assert.equal(parseAuthAuditLine('garbage {'), undefined);
  assert.equal(parseRefusedTcon("  create_connection_session_info: user 'bob' (from session setup) not permitted to access this share (projects)"), 'projects');
  assert.equal(parseRefusedTcon('  smbd version 4.17.12 started.'), undefined);
  assert.deepEqual(logSourcesFrom('/var/log/samba/log.%m', '1 auth_json_audit:3@/var/log/samba/auth.json'),
    { logDir: '/var/log/samba', logPrefix: 'log.', authJson: '/var/log/samba/auth.json' });
});

test('the per-class log level is read from smb.conf and its includes (testparm shows only the global level)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'smbgw-conf-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'inc.conf'), '[global]\n  log level = 1 auth_json_audit:3@/x/auth.json\n[share]\n  log level = 9\n');
  await writeFile(join(dir, 'smb.conf'), `[global]\n  debug level = 0\n  include = ${dir}/inc.conf\n`);
  assert.equal(globalParam(join(dir, 'smb.conf'), 'log level'), '1 auth_json_audit:3@/x/auth.json');
});

test('log files are followed from their end, through rotation to .old and truncation', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'smbgw-tail-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const f = join(dir, 'log.x');
  await writeFile(f, 'old line\n');
  const tail = new LogTail(f);
  assert.deepEqual(tail.read(), []);
  await appendFile(f, 'one\ntw');
  assert.deepEqual(tail.read(), ['one']);
  await appendFile(f, 'o\n');
  assert.deepEqual(tail.read(), ['two']);
  await appendFile(f, 'before rotation\n');
  await rename(f, f + '.old');
  await writeFile(f, 'after rotation\n');
  assert.deepEqual(tail.read(), ['before rotation', 'after rotation']);
  await writeFile(f, 'x\n');
  assert.deepEqual(tail.read(), ['x']);
});

test('the Prometheus text passes promtool check metrics with nothing to report', () => {
  const st = (share: string, mode: string): ShareState => ({
    share, mode, readBytes: 10, writtenBytes: 104857600, readOps: 3, writeOps: 100, failedLogons: 2, refusedTreeConnects: 1, sessions: 1, treeConnects: 2,
    sample: { share, time: 1700000000, throughput_read: 1.5, throughput_write: 1e7, iops_read: 0.3, iops_write: 10, connections: 1, errors: 3, storage_used: 5e9, storage_total: 1e10 },
  });
  const text = renderPrometheus('pve1', [st('a', 'native'), st('we "quote"\\', 'lxc')], {
    cycles: 5, lastCycleSeconds: 0.01, lastCycleCpuSeconds: 0.002, lastTime: 1700000000, lastIntervalSeconds: 10, unattributedReadBytes: 0, unattributedWrittenBytes: 4096, failedLogonsUnknownAccount: 1, errors: [],
  });
  assert.match(text, /^smbgateway_written_bytes_total\{share="a",node="pve1",mode="native"\} 104857600$/m);
  assert.match(text, /share="we \\"quote\\"\\\\"/);
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(r.error, undefined, 'promtool must be installed (Debian package prometheus, scripts/apt/monitor.txt)');
  assert.equal(r.stdout + r.stderr, '');
  assert.equal(r.status, 0);
});
