/**
 * Thin adapter over one node's CTDB and clustered smbd, through that node's Runner: start/stop,
 * `ctdb -X status` / `ctdb -X ip all`, moving a public address. Cluster-wide questions can be asked
 * of any node whose ctdbd runs.
 */
import { GatewayError } from '../core/errors.ts';
import type { Runner } from '../core/exec.ts';
import { judgeCluster, parseCtdbIps, parseCtdbStatus, type ClusterNode, type ClusterVerdict, type CtdbIp, type CtdbNodeState } from './plan.ts';
import { readNodeFile } from './transport.ts';

/** How daemons are started on the nodes: systemd units (Proxmox/Debian hosts) or the daemons directly (no init system). */
export type Services = 'systemd' | 'direct';

export interface HaNode extends ClusterNode {
  run: Runner;
}

export const EVENT_SCRIPTS = ['00.ctdb', '01.reclock', '05.system', '10.interface'];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function ctdbRunning(n: HaNode): Promise<boolean> {
  const r = await n.run('ctdb', ['-X', 'pnn'], { allowFail: true, timeoutMs: 10_000 });
  return r.code === 0;
}

/** ctdbd's version, or why it is not there. */
export async function ctdbVersion(n: HaNode): Promise<{ ok: boolean; why: string }> {
  const r = await n.run('ctdb', ['version'], { allowFail: true, timeoutMs: 15_000 }).catch((e: Error) => ({ code: -1, stdout: '', stderr: e.message }));
  return { ok: r.code === 0, why: r.stderr.trim().split('\n').slice(-1)[0] ?? '' };
}

/** `ctdb reloadnodes` (after the nodes file changed): ok, or the last line of its complaint. */
export async function ctdbReloadNodes(n: HaNode): Promise<{ ok: boolean; code: number; why: string }> {
  const r = await n.run('ctdb', ['reloadnodes'], { timeoutMs: 60_000, allowFail: true });
  return { ok: r.code === 0, code: r.code, why: (r.stderr || r.stdout).trim().split('\n').slice(-1)[0] ?? '' };
}

/** Every node re-reads its public_addresses (without a PNN list, CTDB 4.17 reloads only the node it runs on). */
export async function ctdbReloadIps(n: HaNode): Promise<void> {
  await n.run('ctdb', ['reloadips', 'all'], { timeoutMs: 60_000 });
}

export async function smbdReload(n: HaNode): Promise<void> {
  await n.run('smbcontrol', ['smbd', 'reload-config']);
}

export async function smbdRunning(n: HaNode): Promise<boolean> {
  const r = await n.run('smbcontrol', ['smbd', 'ping'], { allowFail: true, timeoutMs: 10_000 });
  return r.code === 0 && /PONG/i.test(r.stdout);
}

/**
 * Start ctdbd. After a crash (SIGKILL) the old ctdb-eventd lingers for a few seconds and a new
 * ctdbd started meanwhile fails: wait for it to go first.
 */
export async function startCtdb(n: HaNode, services: Services): Promise<void> {
  if (services === 'systemd') {
    await n.run('systemctl', ['start', 'ctdb']);
    return;
  }
  const old = Number((await readNodeFile(n.run, '/run/ctdb/ctdbd.pid'))?.trim() ?? '');
  if (Number.isInteger(old) && old > 1) {
    for (let i = 0; i < 50; i++) {
      const r = await n.run('pgrep', ['-f', `ctdb-eventd -P ${old}$`], { allowFail: true });
      if (r.code !== 0) break;
      await sleep(200);
    }
  }
  await n.run('mkdir', ['-p', '/run/ctdb', '/var/lib/ctdb/volatile', '/var/lib/ctdb/persistent', '/var/lib/ctdb/state']);
  await n.run('ctdbd', [], { timeoutMs: 30_000 });
}

/** Stop ctdbd cleanly: `ctdb shutdown` releases the node's public addresses (SIGTERM does not). */
export async function stopCtdb(n: HaNode, services: Services): Promise<void> {
  if (services === 'systemd') { await n.run('systemctl', ['stop', 'ctdb']); return; }
  await n.run('ctdb', ['shutdown'], { allowFail: true, timeoutMs: 30_000 });
}

export async function startSmbd(n: HaNode, services: Services): Promise<void> {
  if (services === 'systemd') { await n.run('systemctl', ['start', 'smbd']); return; }
  await n.run('mkdir', ['-p', '/run/samba', '/var/lib/samba/private', '/var/cache/samba', '/var/log/samba']);
  await n.run('smbd', ['-D'], { timeoutMs: 30_000 });
}

export async function stopSmbd(n: HaNode, services: Services): Promise<void> {
  if (services === 'systemd') { await n.run('systemctl', ['stop', 'smbd']); return; }
  await n.run('smbcontrol', ['smbd', 'shutdown'], { allowFail: true });
}

export async function ctdbStatus(run: Runner): Promise<CtdbNodeState[]> {
  const r = await run('ctdb', ['-X', 'status'], { timeoutMs: 15_000 });
  return parseCtdbStatus(r.stdout);
}

export async function ctdbIps(run: Runner): Promise<CtdbIp[]> {
  const r = await run('ctdb', ['-X', 'ip', 'all'], { timeoutMs: 15_000 });
  return parseCtdbIps(r.stdout);
}

/** Which nodes have the address configured on an interface (seen on the nodes themselves). */
export async function addressHolders(nodes: readonly HaNode[], vip: string): Promise<string[]> {
  const out: string[] = [];
  for (const n of nodes) {
    const r = await n.run('ip', ['-4', '-o', 'addr', 'show'], { allowFail: true, timeoutMs: 10_000 });
    if (r.code === 0 && r.stdout.split('\n').some((l) => l.includes(` ${vip}/`))) out.push(n.address);
  }
  return out;
}

export interface ClusterSnapshot {
  status: CtdbNodeState[];
  ips: CtdbIp[];
  verdict: ClusterVerdict;
  /** The node that answered. */
  via: string;
}

/** Ask the first node whose ctdbd answers; judge membership and VIPs. */
export async function snapshot(nodes: readonly HaNode[], vips: readonly string[], opts: { checkInterfaces?: boolean } = {}): Promise<ClusterSnapshot> {
  let lastErr: unknown;
  for (const n of nodes) {
    try {
      const status = await ctdbStatus(n.run);
      const ips = await ctdbIps(n.run);
      let hosts: Map<string, string[]> | undefined;
      if (opts.checkInterfaces) {
        hosts = new Map();
        for (const v of vips) hosts.set(v, await addressHolders(nodes, v));
      }
      return { status, ips, verdict: judgeCluster(nodes, status, ips, vips, hosts), via: n.name };
    } catch (e) {
      lastErr = e;
    }
  }
  throw new GatewayError('failed', `no node's ctdbd answers (${nodes.map((n) => n.name).join(', ')}): ${(lastErr as Error | undefined)?.message ?? ''}`);
}

/**
 * Wait until every node is OK and each VIP is hosted exactly once; otherwise fail after the timeout
 * with what is still wrong, naming the nodes.
 */
export async function waitHealthy(nodes: readonly HaNode[], vips: readonly string[], timeoutMs: number, opts: { checkInterfaces?: boolean } = {}): Promise<ClusterSnapshot> {
  const deadline = Date.now() + timeoutMs;
  let last: ClusterSnapshot | undefined;
  let lastErr = '';
  for (;;) {
    try {
      last = await snapshot(nodes, vips, opts);
      if (last.verdict.ok) return last;
    } catch (e) {
      lastErr = (e as Error).message;
    }
    if (Date.now() > deadline) break;
    await sleep(500);
  }
  const why = last ? last.verdict.problems.join('; ') : lastErr;
  throw new GatewayError('failed', `CTDB cluster not healthy after ${Math.round(timeoutMs / 1000)} s: ${why}`);
}

export interface FailoverResult { vip: string; from: string; to: string; seconds: number }

/**
 * Move a VIP to another node with `ctdb moveip` (to the named node, or else the first other node
 * that is OK), then wait until CTDB reports it there.
 */
export async function moveVip(nodes: readonly HaNode[], run: Runner, vip: string, to?: string, timeoutMs = 30_000): Promise<FailoverResult> {
  const status = await ctdbStatus(run);
  const ips = await ctdbIps(run);
  const nameOf = (pnn: number) => nodes.find((n) => n.address === status.find((s) => s.pnn === pnn)?.address)?.name ?? `pnn ${pnn}`;
  const ip = ips.find((i) => i.address === vip);
  if (!ip) throw new GatewayError('failed', `VIP ${vip} is not a public address of the CTDB cluster`);
  let target: CtdbNodeState | undefined;
  if (to !== undefined) {
    const node = nodes.find((n) => n.name === to);
    if (!node) throw new GatewayError('invalid', `to: ${to} is not a node of the HA cluster (nodes: ${nodes.map((n) => n.name).join(', ')})`, 'to');
    target = status.find((s) => s.address === node.address);
    if (!target) throw new GatewayError('failed', `node ${to} is not in the CTDB node map`);
    if (!target.ok) throw new GatewayError('failed', `node ${to} cannot take the VIP: it is ${target.flags.join(',')}`);
    if (target.pnn === ip.pnn) return { vip, from: to, to, seconds: 0 };
  } else {
    target = status.find((s) => s.ok && s.pnn !== ip.pnn);
    if (!target) throw new GatewayError('failed', `no other healthy node can take VIP ${vip}`);
  }
  const from = ip.pnn < 0 ? '(none)' : nameOf(ip.pnn);
  const t0 = Date.now();
  await run('ctdb', ['moveip', vip, String(target.pnn)], { timeoutMs });
  const deadline = t0 + timeoutMs;
  for (;;) {
    const now = (await ctdbIps(run)).find((i) => i.address === vip);
    if (now?.pnn === target.pnn) break;
    if (Date.now() > deadline) throw new GatewayError('failed', `VIP ${vip} did not arrive on node ${nameOf(target.pnn)} within ${timeoutMs / 1000} s`);
    await sleep(100);
  }
  return { vip, from, to: nameOf(target.pnn), seconds: (Date.now() - t0) / 1000 };
}
