/**
 * Data path: the same file through a gateway share and through minimal hand-configured smbds on the
 * same data (tmpfs), smbclient over SMB3, interleaved rounds. The gateway side is a sandboxed smbd
 * with the setup the docs recommend (log level 1, auth audit and tree connect audit files) and the
 * managed include written by `pve-smbgateway create`; the baselines have nothing but their paths and
 * port: `signed` with `server signing = mandatory` (what the gateway's standard profile requires),
 * `unsigned` with Samba's defaults. Speeds are smbclient's own average (kb/s, connection set-up not
 * included); the ratio of each round is gateway/baseline and the median over rounds is printed, and
 * each smbd's CPU time per GiB moved (its own and its reaped children's: steadier than speed on a busy host).
 *   node --import tsx bench/throughput.ts [MiB=256] [rounds=9]
 * Extra [global] lines for the gateway (to measure one setting): SMBGW_BENCH_GLOBAL='aio read size = 0;use sendfile = yes';
 * its share's VFS modules: SMBGW_BENCH_VFS=io_uring (before full_audit) or none (without the tree connect audit).
 * Its last lines: `speed_ratio_put=<x> speed_ratio_get=<y> baseline=signed`, then `... baseline=unsigned`.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, startSandbox, type Sandbox } from '../src/demo/sandbox.ts';
import { sh, startGateway } from '../test/helpers/gateway.ts';

const MiB = Number(process.argv[2] ?? 256);
const rounds = Number(process.argv[3] ?? 9);
const PW = 'Thr0ughput-pass';
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };

const shm = await mkdtemp('/dev/shm/smbgw-bench-perf-');
await chmod(shm, 0o755);
const g = await startGateway({ storage: shm });
const extra: Sandbox[] = [];
try {
  // The gateway's extra [global] settings under test (before the managed include, as an admin's would be).
  const add = (process.env.SMBGW_BENCH_GLOBAL ?? '').split(';').map((x) => x.trim()).filter(Boolean);
  if (add.length) {
    const conf = await readFile(g.sandbox.smbConf, 'utf8');
    await writeFile(g.sandbox.smbConf, conf.replace(/^(\s*include = )/m, add.map((l) => `   ${l}\n`).join('') + '$1'));
  }
  const user = g.user('tp');
  const pwf = await g.passwordFile(PW);
  const data = join(shm, 'data');
  const r = await g.cli(['create', 'tput', '--mode', 'native', '--path', data, '--user', user, '--password-file', pwf, '--json']);
  if (r.code !== 0) throw new Error(r.stdout + r.stderr);
  // The share's VFS modules under test: SMBGW_BENCH_VFS='io_uring' puts io_uring before full_audit, 'none' drops the audit.
  const vfs = process.env.SMBGW_BENCH_VFS;
  if (vfs !== undefined) {
    const conf = await readFile(g.sandbox.managedConf, 'utf8');
    await writeFile(g.sandbox.managedConf, conf.replace(/^(\s*vfs objects = )full_audit$/m, vfs === 'none' ? '' : `$1${vfs} full_audit`));
  }
  // Share settings under test, after the rendered ones (Samba keeps the last): SMBGW_BENCH_SHARE='aio write size = 1'.
  const shareAdd = (process.env.SMBGW_BENCH_SHARE ?? '').split(';').map((x) => x.trim()).filter(Boolean);
  if (shareAdd.length) {
    const conf = await readFile(g.sandbox.managedConf, 'utf8');
    await writeFile(g.sandbox.managedConf, conf.replace(/^(\[tput\]\n(?:   .*\n)*)/m, `$1${shareAdd.map((l) => `   ${l}\n`).join('')}`));
  }
  if (add.length || vfs !== undefined || shareAdd.length) execFileSync('smbcontrol', ['-s', g.sandbox.smbConf, String(g.sandbox.pid), 'reload-config']);
  console.log(`gateway extra: global ${JSON.stringify(add)} share ${JSON.stringify(shareAdd)} vfs ${vfs ?? '(default)'}`);
  // Minimal hand-configured smbds serving the same directory as the same account.
  const baseline = async (name: string, lines: string[], shareLines = ['read only = no']) => {
    const dir = join(g.dir, name);
    const port = await freePort();
    const sb = await startSandbox(dir, { port, netbios: `B${g.id}${name.slice(0, 3)}`.toUpperCase() });
    extra.push(sb);
    const d = (x: string) => join(dir, x);
    await writeFile(sb.smbConf, `[global]
   smb ports = ${port}
   interfaces = 127.0.0.1
   bind interfaces only = yes
   private dir = ${d('private')}
   lock directory = ${d('lock')}
   state directory = ${d('state')}
   cache directory = ${d('cache')}
   pid directory = ${d('pid')}
   ncalrpc dir = ${d('ncalrpc')}
   log file = ${d('log')}/log.%m
   passdb backend = tdbsam:${d('private')}/passdb.tdb
${lines.map((l) => `   ${l}\n`).join('')}
[tput]
   path = ${data}
${shareLines.map((l) => `   ${l}\n`).join('')}`);
    execFileSync('smbcontrol', ['-s', sb.smbConf, String(sb.pid), 'reload-config']);
    execFileSync('smbpasswd', ['-c', sb.smbConf, '-s', '-a', user], { input: `${PW}\n${PW}\n` });
    return sb;
  };
  const targets: [string, number][] = [
    ['gateway', g.sandbox.port],
    ['signed', (await baseline('signed', ['server signing = mandatory'])).port],
    ['unsigned', (await baseline('unsigned', [])).port],
  ];
  if (process.env.SMBGW_BENCH_NOSIGN) {
    // The gateway's own [global] and share section without `server signing = mandatory`: what is left
    // between the gateway and the unsigned default once signing is taken out (the standard profile needs it).
    const managed = await readFile(g.sandbox.managedConf, 'utf8');
    const section = (name: string) => (new RegExp(`^\\[${name}\\]\n((?:   .*\n?)*)`, 'm').exec(managed)?.[1] ?? '').split('\n').map((l) => l.trim()).filter(Boolean);
    const globals = section('global').filter((l) => !/^server signing\b/.test(l));
    const shareLines = section('tput').filter((l) => !/^path\b/.test(l)).map((l) => l.replace(/^write list = .*/, 'read only = no')).filter((l) => !/^read only = yes/.test(l));
    targets.push(['gw-nosign', (await baseline('gwnosign', globals, shareLines)).port]);
    console.log(`gw-nosign: [global] ${JSON.stringify(globals)} share ${JSON.stringify(shareLines)}`);
  }
  // Server CPU: each smbd's own and its reaped children's (one child per connection) user+system time.
  const cpu = (pid: number) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' '); return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100; };
  const pids: Record<string, number> = { gateway: g.sandbox.pid, signed: extra[0]!.pid, unsigned: extra[1]!.pid, ...(extra[2] ? { 'gw-nosign': extra[2].pid } : {}) };
  const cpu0 = Object.fromEntries(targets.map(([n]) => [n, cpu(pids[n]!)]));
  const src = join(g.dir, 'src');
  execFileSync('dd', ['if=/dev/urandom', `of=${src}`, 'bs=1M', `count=${MiB}`, 'status=none']);
  const kbs = (out: string) => { const m = /\(average ([\d.]+) (?:kb\/s|KiloBytes\/sec)\)/.exec(out); if (!m) throw new Error(`no speed in: ${out}`); return Number(m[1]) / 1024; };
  // The client's CPU too (bash's `time`): a client that signs every write may be what limits the speed.
  const clientCpu: Record<string, number> = {};
  const run = async (port: number, cmd: string, name: string) => {
    const x = await sh('bash', ['-c', 'TIMEFORMAT="client-cpu %U %S"; time smbclient "$@"', 'smbclient', '-s', '/dev/null', '//127.0.0.1/tput', '-p', String(port), '-U', `${user}%${PW}`, '-c', cmd]);
    if (x.code !== 0) throw new Error(x.stdout + x.stderr);
    const c = /client-cpu ([\d.]+) ([\d.]+)/.exec(x.stderr);
    if (c) clientCpu[name] = (clientCpu[name] ?? 0) + Number(c[1]) + Number(c[2]);
    return kbs(x.stdout + x.stderr);
  };
  const speed: Record<string, { put: number[]; get: number[] }> = Object.fromEntries(targets.map(([n]) => [n, { put: [], get: [] }]));
  for (let i = 0; i < rounds; i++) {
    // Interleaved, the order rotated every round so that none always runs first.
    const order = targets.map((_, k) => targets[(k + i) % targets.length]!);
    for (const [name, port] of order) {
      speed[name]!.put.push(await run(port, `put ${src} f-${name}`, name));
      speed[name]!.get.push(await run(port, `get f-${name} /dev/null`, name));
      await rm(join(data, `f-${name}`), { force: true });
    }
    console.log(`round ${i + 1}: ` + targets.map(([n]) => `${n} put ${speed[n]!.put.at(-1)!.toFixed(0)} get ${speed[n]!.get.at(-1)!.toFixed(0)} MiB/s`).join(', '));
  }
  await new Promise((r) => setTimeout(r, 1000)); // the last children reaped
  const gib = (rounds * 2 * MiB) / 1024;
  for (const [n] of targets) console.log(`${n}: median put ${median(speed[n]!.put).toFixed(0)} MiB/s, get ${median(speed[n]!.get).toFixed(0)} MiB/s; smbd CPU ${((cpu(pids[n]!) - cpu0[n]!) / gib).toFixed(2)} s/GiB, client CPU ${((clientCpu[n] ?? 0) / gib).toFixed(2)} s/GiB`);
  // The connection's dialect and signing, as smbd reports them.
  // The spread of the per-round ratios (min..max), for a machine whose load changes from round to round.
  const spread = (a: string, base: string, k: 'put' | 'get') => { const r = speed[a]![k].map((v, j) => v / speed[base]![k][j]!).sort((x, y) => x - y); return `${r[0]!.toFixed(2)}..${r.at(-1)!.toFixed(2)}`; };
  if (speed['gw-nosign']) console.log(`gw-nosign vs unsigned: put ${median(speed['gw-nosign'].put.map((v, j) => v / speed.unsigned!.put[j]!)).toFixed(2)} (${spread('gw-nosign', 'unsigned', 'put')}), get ${median(speed['gw-nosign'].get.map((v, j) => v / speed.unsigned!.get[j]!)).toFixed(2)} (${spread('gw-nosign', 'unsigned', 'get')})`);
  for (const base of ['signed', 'unsigned']) console.log(`per-round ratio spread vs ${base}: put ${spread('gateway', base, 'put')}, get ${spread('gateway', base, 'get')}`);
  for (const base of ['signed', 'unsigned']) {
    const ratio = (k: 'put' | 'get') => median(speed.gateway![k].map((v, j) => v / speed[base]![k][j]!));
    console.log(`speed_ratio_put=${ratio('put').toFixed(2)} speed_ratio_get=${ratio('get').toFixed(2)} baseline=${base}`);
  }
} finally {
  for (const sb of extra) await sb.stop();
  await g.cleanup();
  await rm(shm, { recursive: true, force: true });
}
