/**
 * A private network for guests: a network namespace the test owns, holding a bridge with a 10.x address
 * (the "host side" of a Proxmox bridge such as vmbr0). Containers get a veth whose peer is moved into
 * their own network namespace; nothing is created in the host's namespace, and nothing routes out.
 * Clients (smbclient) run inside this namespace through `exec`.
 */
import { run, uid } from './common.ts';
import type { RunResult } from '../../src/core/exec.ts';
import { dropNetnsOwner, reapStale, writeNetnsOwner } from './reap.ts';

export interface GuestNetwork {
  /** Name of the network namespace (unique per run). */
  ns: string;
  /** The bridge inside it. */
  bridge: string;
  /** Address of the bridge (the client side), e.g. 10.77.12.1. */
  hostIp: string;
  prefix: number;
  /** The n-th guest address of the subnet (n >= 2). */
  guestIp: (n: number) => string;
  /** Runs a command inside the namespace (e.g. smbclient). */
  exec: (cmd: string[], opts?: { input?: string; timeoutMs?: number; allowFail?: boolean }) => Promise<RunResult>;
  /**
   * Plugs a veth into the network namespace of process `pid` (a container's init): the peer appears
   * there as `ifname` with address `cidr`, up; the other end joins the bridge. Returns the host-side name.
   */
  plug: (pid: number, cidr: string, opts?: { ifname?: string; gateway?: string }) => Promise<string>;
  /** Adds another address to the bridge (e.g. the gateway of a guest's static subnet); no error if present. */
  addAddress: (cidr: string) => Promise<void>;
  destroy: () => Promise<void>;
}

let plugCount = 0;

export async function createNetwork(opts: { name?: string; subnet?: string } = {}): Promise<GuestNetwork> {
  const ns = opts.name ?? `smbgw-net-${uid()}`;
  // One /24 in 10.0.0.0/8 per network; unique per run only for readability (namespaces are isolated).
  const subnet = opts.subnet ?? `10.${77 + (parseInt(uid(1), 16) % 100)}.${parseInt(uid(1), 16)}`;
  const hostIp = `${subnet}.1`;
  const bridge = 'br0';
  await reapStale();
  await run('ip', ['netns', 'add', ns]);
  await writeNetnsOwner(ns);
  try {
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    await run('ip', ['-n', ns, 'link', 'add', bridge, 'type', 'bridge']);
    await run('ip', ['-n', ns, 'addr', 'add', `${hostIp}/24`, 'dev', bridge]);
    await run('ip', ['-n', ns, 'link', 'set', bridge, 'up']);
  } catch (e) {
    await run('ip', ['netns', 'del', ns], { allowFail: true });
    await dropNetnsOwner(ns);
    throw e;
  }
  const exec: GuestNetwork['exec'] = (cmd, o = {}) => run('ip', ['netns', 'exec', ns, ...cmd], { timeoutMs: o.timeoutMs ?? 60_000, allowFail: o.allowFail ?? false, ...(o.input !== undefined ? { input: o.input } : {}) });
  const plug: GuestNetwork['plug'] = async (pid, cidr, o = {}) => {
    const host = `veth${process.pid % 10000}x${++plugCount}`;
    const ifname = o.ifname ?? 'eth0';
    await run('ip', ['-n', ns, 'link', 'add', host, 'type', 'veth', 'peer', 'name', ifname, 'netns', String(pid)]);
    await run('ip', ['-n', ns, 'link', 'set', host, 'master', bridge]);
    await run('ip', ['-n', ns, 'link', 'set', host, 'up']);
    // Configure the guest side from the host with nsenter (no tool needed inside the guest).
    const inside = (args: string[]) => run('nsenter', ['-t', String(pid), '-n', '--', 'ip', ...args]);
    await inside(['link', 'set', 'lo', 'up']);
    await inside(['addr', 'add', cidr, 'dev', ifname]);
    await inside(['link', 'set', ifname, 'up']);
    if (o.gateway) await inside(['route', 'add', 'default', 'via', o.gateway]);
    return host;
  };
  const destroy = async () => {
    await run('ip', ['netns', 'del', ns], { allowFail: true });
    await dropNetnsOwner(ns);
  };
  const addAddress = async (cidr: string) => {
    const r = await run('ip', ['-n', ns, 'addr', 'add', cidr, 'dev', bridge], { allowFail: true });
    if (r.code !== 0 && !/exists|already assigned/i.test(r.stderr)) throw new Error(`ip addr add ${cidr}: ${r.stderr.trim()}`);
  };
  return { ns, bridge, hostIp, prefix: 24, guestIp: (n) => `${subnet}.${n}`, exec, plug, addAddress, destroy };
}
