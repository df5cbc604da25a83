/**
 * LXC mode: finding the container of a share and its smbd processes from the host.
 *
 * A share in lxc mode records its container as `vmid` (src/core/share.ts). Its cgroup is found:
 * 1. by name, as Proxmox VE lays it out: `lxc/<vmid>` under the cgroup v2 root (`/sys/fs/cgroup/lxc/<vmid>`,
 *    PVE 7 and later) or under a v1 hierarchy (`/sys/fs/cgroup/{unified,pids,systemd}/lxc/<vmid>`, hybrid
 *    PVE 6), or as plain LXC 4+ names it for a container called `<vmid>` (`lxc.payload.<vmid>`);
 * 2. else from the container's init: `lxc-info -n <vmid> -p -H` (the tool `pct` itself builds on) gives its
 *    host pid, `/proc/<pid>/cgroup` its cgroup, cut back to the container's top (`…/lxc/<vmid>` or
 *    `…/lxc.payload.<name>`; without either, Proxmox's inner `ns/…` and systemd's `init.scope` are dropped).
 *    This covers LXC whose container name is not the vmid (the real-guest test machinery names them
 *    `smbgw-ct<vmid>-<random>`, on a cgroup v1/v2 hybrid: `/sys/fs/cgroup/unified/lxc.payload.<name>`).
 * The directory found is remembered per vmid and looked up again once it is gone (container restarted).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Runner } from '../core/exec.ts';

/** Hierarchies where a container's processes are all listed (v2, or v1's pids / named systemd one). */
export const CGROUP_HIERARCHIES = ['', 'unified', 'pids', 'systemd'] as const;

/** Names the container's cgroup may have without asking anyone (Proxmox, plain LXC named by vmid). */
export function cgroupNamesFor(vmid: number): string[] {
  return [`lxc/${vmid}`, `lxc.payload.${vmid}`];
}

/**
 * The container's own cgroup (relative to its hierarchy) from the text of /proc/<init pid>/cgroup,
 * with the hierarchy it is in ('' = v2 at the root, 'unified' = v2 in a hybrid, 'pids', 'systemd').
 */
export function containerCgroupOf(text: string, vmid: number): { hierarchy: 'v2' | 'pids' | 'systemd'; path: string } | undefined {
  const lines = text.split('\n').filter(Boolean).map((l) => { const a = l.indexOf(':'); const b = l.indexOf(':', a + 1); return { ctrl: l.slice(a + 1, b), path: l.slice(b + 1) }; });
  const pick = lines.find((l) => l.ctrl === '' && l.path !== '/') ?? lines.find((l) => l.ctrl.split(',').includes('pids')) ?? lines.find((l) => l.ctrl === 'name=systemd');
  if (!pick || pick.path === '/') return undefined;
  const hierarchy = pick.ctrl === '' ? 'v2' : pick.ctrl === 'name=systemd' ? 'systemd' : 'pids';
  const top = new RegExp(`^(.*?/(?:lxc/${vmid}|lxc\\.payload\\.[^/]+))(?:/|$)`).exec(pick.path);
  const path = top ? top[1]! : pick.path.replace(/\/ns(\/.*)?$/, '').replace(/\/init\.scope$/, '');
  return path && path !== '/' ? { hierarchy, path } : undefined;
}

/** Every pid listed in cgroup.procs under `dir` (recursively); undefined if `dir` does not exist. */
export function cgroupPids(dir: string): number[] | undefined {
  try { if (!statSync(dir).isDirectory()) return undefined; } catch { return undefined; }
  const pids: number[] = [];
  const walk = (d: string) => {
    let entries;
    try { entries = readdirSync(d, { withFileTypes: true }); } catch { return; }
    for (const e of entries) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name === 'cgroup.procs') {
        try { pids.push(...readFileSync(join(d, e.name), 'utf8').split('\n').filter(Boolean).map(Number)); } catch { /* gone */ }
      }
    }
  };
  walk(dir);
  return pids;
}

export class LxcLocator {
  private readonly dirs = new Map<number, string>();

  constructor(
    private readonly run: Runner,
    private readonly cgroupRoot = '/sys/fs/cgroup',
    private readonly procRoot = '/proc',
  ) {}

  private hierarchyDir(h: string): string[] {
    if (h === 'v2') return [this.cgroupRoot, join(this.cgroupRoot, 'unified')];
    return [join(this.cgroupRoot, h)];
  }

  /** The container's cgroup directory, or undefined (not running, not found). */
  async locate(vmid: number): Promise<string | undefined> {
    for (const h of CGROUP_HIERARCHIES) {
      for (const name of cgroupNamesFor(vmid)) {
        const d = join(this.cgroupRoot, h, name);
        try { if (statSync(join(d, 'cgroup.procs')).isFile()) return d; } catch { /* next */ }
      }
    }
    const r = await this.run('lxc-info', ['-n', String(vmid), '-p', '-H'], { allowFail: true, timeoutMs: 15_000 }).catch(() => undefined);
    const pid = Number(r?.code === 0 ? r.stdout.trim() : NaN);
    if (!(pid > 0)) return undefined;
    let text: string;
    try { text = readFileSync(join(this.procRoot, String(pid), 'cgroup'), 'utf8'); } catch { return undefined; }
    const cg = containerCgroupOf(text, vmid);
    if (!cg) return undefined;
    for (const base of this.hierarchyDir(cg.hierarchy)) {
      const d = join(base, cg.path);
      try { if (statSync(join(d, 'cgroup.procs')).isFile()) return d; } catch { /* next */ }
    }
    return undefined;
  }

  /** Pids in the container's cgroup, undefined when it is not running. */
  async pids(vmid: number): Promise<number[] | undefined> {
    const known = this.dirs.get(vmid);
    if (known) {
      const p = cgroupPids(known);
      if (p?.length) return p;
      this.dirs.delete(vmid);
    }
    const dir = await this.locate(vmid);
    if (!dir) return undefined;
    this.dirs.set(vmid, dir);
    const p = cgroupPids(dir);
    return p?.length ? p : undefined;
  }
}
