/**
 * N concurrent SMB sessions on an lxc share served by a real unprivileged container (test/guests:
 * cached Debian rootfs with Samba, Proxmox idmap; the PVE simulator), each doing checked I/O with
 * bench/sessions-client.py from the bridge's network namespace, and what the container's memory cgroup
 * charged: idle, with all sessions open (usage, usage minus page cache as Proxmox shows it, peak), and
 * whether its OOM killer struck. The container gets the gateway's default memory unless --ct-memory.
 *   node --import tsx bench/lxc-sessions.ts [N=100] [KiB=64] [--ct-memory <MiB>]
 * Last line: `lxc_sessions_reached=<n> ct_memory_mib=<m> used_mib=<u> peak_mib=<p> oom_kills=<k>`.
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { realBackend } from '../test/guests/pve-backend.ts';
import { startSimGateway } from '../test/pve-sim/gateway.ts';
import { startSessionsClient } from './sessions-driver.ts';

const args = process.argv.slice(2);
const ctAt = args.indexOf('--ct-memory');
const ctMemory = ctAt >= 0 ? args.splice(ctAt, 2)[1] : undefined;
const N = Number(args[0] ?? 100);
const KIB = Number(args[1] ?? 64);
const cleanups: (() => Promise<void>)[] = [];
const mib = (b: number) => (b / 2 ** 20).toFixed(1);
try {
  const backend = await realBackend({ after: (fn) => cleanups.push(fn) });
  const g = await startSimGateway({ backend, taskMs: 5 });
  cleanups.push(() => g.cleanup());
  const tpl = await g.cli(['template', 'create', '--mode', 'lxc', '--json']);
  if (tpl.code !== 0) throw new Error(tpl.stdout + tpl.stderr);
  const pw = `Pw-${randomBytes(6).toString('hex')}`;
  const pwf = join(g.dir, 'pw');
  await writeFile(pwf, pw + '\n', { mode: 0o600 });
  const r = await g.cli(['create', 'sess', '--mode', 'lxc', '--path', join(g.storage, 'sess'), '--user', 'alice', '--password-file', pwf, ...(ctMemory ? ['--ct-memory', ctMemory] : []), '--json']);
  if (r.code !== 0) throw new Error(r.stdout + r.stderr);
  const share = r.json!.data.share;
  const ct = backend.container(share.vmid)!;
  // The container's own memory cgroup (cgroup v1 here; the limit Proxmox's `memory` sets).
  const cgLine = (await readFile(`/proc/${await ct.pid()}/cgroup`, 'utf8')).split('\n').find((l) => /:memory:/.test(l))!;
  const cgDir = join('/sys/fs/cgroup/memory', /^(.*\/lxc\.payload\.[^/]+)/.exec(cgLine.split(':')[2]!)?.[1] ?? cgLine.split(':')[2]!);
  const num = async (f: string) => Number((await readFile(join(cgDir, f), 'utf8')).trim());
  const oomKills = async () => Number(/oom_kill (\d+)/.exec(await readFile(join(cgDir, 'memory.oom_control'), 'utf8'))?.[1] ?? 0);
  const show = async (what: string) => {
    const m = await ct.memory();
    console.log(`${what}: used ${mib(m.used)} MiB (usage ${mib(m.usage)}, page cache ${mib(m.cache)}, anon ${mib(m.rss)}), peak ${mib(await num('memory.max_usage_in_bytes'))} MiB, limit ${m.limit === undefined ? 'none' : mib(m.limit)} MiB, OOM kills ${await oomKills()}`);
    return m;
  };
  await new Promise((res) => setTimeout(res, 2000));
  await show('idle');
  await writeFile(join(cgDir, 'memory.max_usage_in_bytes'), '0');
  const net = backend.bridgeNetwork('vmbr0')!;
  const client = startSessionsClient([share.guest_ip, 'sess', 'alice', String(N), String(KIB)], pw, ['ip', 'netns', 'exec', net.ns]);
  const { next } = client;
  const held = await next('held');
  console.log(`held ${held[1]} sessions after ${held[2]} s ${held.slice(3).join(' ')}`);
  await new Promise((res) => setTimeout(res, 1000));
  const busy = await show(`${held[1]} sessions open`);
  client.send('verify');
  const v = await next('verified');
  console.log(`verified: ${v[1]} sessions read back their own ${KIB} KiB, ${v[2]} wrong or failed`);
  const peak = await num('memory.max_usage_in_bytes');
  const kills = await oomKills();
  client.send('close');
  await next('closed').catch(() => undefined);
  client.child.stdin!.end();
  const d = await g.cli(['delete', 'sess', '--json']);
  if (d.code !== 0) console.log(`delete failed: ${d.stdout}`);
  console.log(`lxc_sessions_reached=${Math.min(Number(held[1]), Number(v[1]))} ct_memory_mib=${busy.limit === undefined ? 'none' : mib(busy.limit)} used_mib=${mib(busy.used)} peak_mib=${mib(peak)} oom_kills=${kills}`);
} finally {
  for (const c of cleanups.reverse()) await c().catch((e) => console.error(`cleanup: ${(e as Error).message}`));
}
