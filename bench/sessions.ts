/**
 * N concurrent SMB sessions on one gateway share, each doing checked I/O (it writes its own file;
 * once all N are open, each reads its file back and compares), on one sandboxed smbd configured by
 * `pve-smbgateway create`. Load generator: bench/sessions-client.py, one process holding every session
 * through Samba's own client library (python3-samba), so the client side costs one socket per session
 * rather than one process. Samba's client library always connects to port 445: the bench runs in a
 * private network namespace of its own (`unshare --net`, loopback only).
 * While all sessions are open it times one metrics collection (`smbstatus --json` and /proc for every
 * child) and sums the smbd children's proportional memory (Pss).
 *   node --import tsx bench/sessions.ts [N=1000] [KiB per session=64]
 * SMBGW_BENCH_GLOBAL='max smbd processes = 0;...' adds [global] lines to the gateway's smbd.
 * SMBGW_BENCH_CGROUP_MIB=<m> runs the smbd in a memory cgroup of its own (cgroup v1, as an LXC
 * container's) limited to m MiB (0: no limit) and prints what it charged: with all sessions open, the
 * peak, and usage minus page cache (what Proxmox shows as a container's memory). A session that does
 * not fit fails its I/O (smbd children are killed by the cgroup's OOM killer).
 * Last line: `sessions_reached=<n> setup_per_s=<x> mib_per_session=<y> collector_cycle_ms=<z>`.
 */
import { spawnSync, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Collector } from '../src/monitor/collector.ts';
import { MetricsDb } from '../src/monitor/db.ts';
import { startGateway } from '../test/helpers/gateway.ts';
import { startSessionsClient } from './sessions-driver.ts';

const N = Number(process.argv[2] ?? 1000);
const KIB = Number(process.argv[3] ?? 64);
if (process.env.SMBGW_BENCH_NETNS !== '1') {
  const r = spawnSync('unshare', ['--net', process.execPath, '--import', 'tsx', import.meta.filename, ...process.argv.slice(2)], { stdio: 'inherit', env: { ...process.env, SMBGW_BENCH_NETNS: '1' } });
  process.exit(r.status ?? 1);
}
execFileSync('ip', ['link', 'set', 'lo', 'up']);

const PW = 'Sess10ns-pass';
const g = await startGateway({ port: 445 });
let db: MetricsDb | undefined;
try {
  const add = (process.env.SMBGW_BENCH_GLOBAL ?? '').split(';').map((x) => x.trim()).filter(Boolean);
  if (add.length) {
    const conf = await readFile(g.sandbox.smbConf, 'utf8');
    await writeFile(g.sandbox.smbConf, conf.replace(/^(\s*include = )/m, add.map((l) => `   ${l}\n`).join('') + '$1'));
    execFileSync('smbcontrol', ['-s', g.sandbox.smbConf, String(g.sandbox.pid), 'reload-config']);
  }
  const cgMib = process.env.SMBGW_BENCH_CGROUP_MIB;
  const cg = cgMib === undefined ? undefined : `/sys/fs/cgroup/memory/smbgw-bench-${g.id}`;
  if (cg) {
    execFileSync('mkdir', ['-p', cg]);
    if (Number(cgMib) > 0) await writeFile(join(cg, 'memory.limit_in_bytes'), `${Number(cgMib)}M`);
    for (const pid of [String(g.sandbox.pid), ...readFileSync(`/proc/${g.sandbox.pid}/task/${g.sandbox.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)]) await writeFile(join(cg, 'cgroup.procs'), pid).catch(() => undefined); // a child may have ended
  }
  const cgRead = () => {
    if (!cg) return undefined;
    const n = (f: string) => Number(readFileSync(join(cg, f), 'utf8').trim());
    const st = Object.fromEntries(readFileSync(join(cg, 'memory.stat'), 'utf8').trim().split('\n').map((l) => l.split(' ')).map(([k, v]) => [k!, Number(v)]));
    const mib = (b: number) => (b / 2 ** 20).toFixed(1);
    // Kernel memory (cgroup v1 counts it in usage): page tables, VMAs, task structs, socket buffers.
    const kmem = existsSync(join(cg, 'memory.kmem.usage_in_bytes')) ? `, kernel ${mib(n('memory.kmem.usage_in_bytes'))}` : '';
    return `usage ${mib(n('memory.usage_in_bytes'))} MiB (page cache ${mib(st.total_cache ?? 0)}, anon ${mib(st.total_rss ?? 0)}${kmem}; usage - cache ${mib(n('memory.usage_in_bytes') - (st.total_cache ?? 0))} MiB), peak ${mib(n('memory.max_usage_in_bytes'))} MiB, limit ${Number(cgMib) > 0 ? `${cgMib} MiB` : 'none'}, OOM kills ${/oom_kill (\d+)/.exec(readFileSync(join(cg, 'memory.oom_control'), 'utf8'))?.[1] ?? '?'}, failcnt ${n('memory.failcnt')}`;
  };
  if (cg) console.log(`cgroup before the sessions: ${cgRead()}`);
  const user = g.user('ss');
  const r = await g.cli(['create', 'sess', '--mode', 'native', '--path', join(g.storage, 'sess'), '--user', user, '--password-file', await g.passwordFile(PW), '--json']);
  if (r.code !== 0) throw new Error(r.stdout + r.stderr);
  db = new MetricsDb(join(g.dir, 'state', 'metrics.db'));
  const collector = new Collector(g.gw, { db });
  await collector.collect();

  const client = startSessionsClient(['127.0.0.1', 'sess', user, String(N), String(KIB)], PW);
  const { next } = client;
  const cpuOf = (pid: number | string) => { try { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' '); return (Number(f[11]) + Number(f[12])) / 100; } catch { return 0; } };
  const held = await next('held');
  // Where set-up time goes: CPU of smbd (master and its children so far) and of the client, per session.
  const smbdCpu = cpuOf(g.sandbox.pid) + readFileSync(`/proc/${g.sandbox.pid}/task/${g.sandbox.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).reduce((a, k) => a + cpuOf(k), 0);
  const clientCpu = cpuOf(client.child.pid!);
  const reached = Number(held[1]);
  const setup = Number(held[2]);
  const why = held.slice(3).join(' ');
  console.log(`held ${reached} sessions after ${setup} s${why ? `; stopped by: ${why}` : ''}; CPU per session set-up: smbd ${(smbdCpu * 1000 / Math.max(1, reached)).toFixed(1)} ms, client ${(clientCpu * 1000 / Math.max(1, reached)).toFixed(1)} ms`);
  // All sessions open: one collection, and the children's memory.
  const t0 = performance.now();
  const samples = await collector.collect();
  const cycleMs = performance.now() - t0;
  const seen = samples.find((s) => s.share === 'sess')?.connections ?? 0;
  const t1 = performance.now();
  await g.gw.samba.status();
  const statusMs = performance.now() - t1;
  const kids = readFileSync(`/proc/${g.sandbox.pid}/task/${g.sandbox.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  let pssKb = 0;
  let anonKb = 0;
  let ptKb = 0;
  for (const k of [String(g.sandbox.pid), ...kids]) {
    try {
      const r = readFileSync(`/proc/${k}/smaps_rollup`, 'utf8');
      const v = (f: string) => Number(new RegExp(`^${f}:\\s+(\\d+)`, 'm').exec(r)?.[1] ?? 0);
      if (k !== String(g.sandbox.pid)) pssKb += v('Pss');
      anonKb += v('Pss_Anon');
      ptKb += Number(/^VmPTE:\s+(\d+)/m.exec(readFileSync(`/proc/${k}/status`, 'utf8'))?.[1] ?? 0);
    } catch { /* ended */ }
  }
  if (cg) console.log(`cgroup with ${reached} sessions open: ${cgRead()}`);
  if (process.env.SMBGW_BENCH_SMAPS) {
    // Where one session's smbd child keeps its own memory: private dirty pages by mapping.
    const kid = readFileSync(`/proc/${g.sandbox.pid}/task/${g.sandbox.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).at(-1)!;
    const by = new Map<string, number>();
    let name = '';
    for (const l of readFileSync(`/proc/${kid}/smaps`, 'utf8').split('\n')) {
      const h = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(l);
      if (h) { name = h[1] || '[anon]'; continue; }
      const m = /^Private_Dirty:\s+(\d+)/.exec(l);
      if (m) by.set(name, (by.get(name) ?? 0) + Number(m[1]));
    }
    console.log(`child ${kid} private dirty KiB by mapping: ${[...by].sort((a, b) => b[1] - a[1]).slice(0, 10).map(([k, v]) => `${k.split('/').pop()} ${v}`).join(', ')}`);
  }
  client.send('verify');
  const v = await next('verified');
  client.send('close');
  await next('closed');
  console.log(`collector: ${seen} connections counted, cycle ${cycleMs.toFixed(0)} ms (of which smbstatus --json alone: ${statusMs.toFixed(0)} ms); smbd children: ${kids.length}, Pss ${(pssKb / 1024).toFixed(0)} MiB`);
  // What a memory cgroup (an lxc share's container) must hold for smbd besides reclaimable page cache:
  // anonymous memory (proportional: pages shared copy-on-write with the master count once) and page tables.
  console.log(`smbd anonymous memory (Pss_Anon) ${(anonKb / 1024).toFixed(1)} MiB + page tables ${(ptKb / 1024).toFixed(1)} MiB (master and ${kids.length} children)`);
  console.log(`verified: ${v[1]} sessions read back their own ${KIB} KiB, ${v[2]} wrong or failed`);
  if (cg) console.log(`cgroup after the read-back: ${cgRead()}`);
  const ok = Number(v[1]);
  console.log(`sessions_reached=${Math.min(ok, reached)} setup_per_s=${(reached / setup).toFixed(1)} mib_per_session=${(pssKb / 1024 / Math.max(1, kids.length)).toFixed(2)} collector_cycle_ms=${cycleMs.toFixed(0)}`);
} finally {
  db?.close();
  await g.cleanup();
  if (process.env.SMBGW_BENCH_CGROUP_MIB !== undefined) spawnSync('rmdir', [`/sys/fs/cgroup/memory/smbgw-bench-${g.id}`]);
}
