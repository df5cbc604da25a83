/**
 * Storage used/total for many shares at a small cost: one `zfs list` for all ZFS datasets, one
 * `btrfs qgroup show` per btrfs filesystem, statfs for the rest. Quota-aware: a ZFS quota or a
 * btrfs qgroup limit is the share's total.
 */
import { statfsSync } from 'node:fs';
import { zfsList } from '../core/zfs.ts';
import { btrfsQgroupShow, btrfsRootId } from '../core/btrfs.ts';
import type { Runner } from '../core/exec.ts';
import type { Share } from '../core/share.ts';
import { detectBacking, type Backing } from '../provision/storage.ts';

export interface Usage { used: number; total: number | null; source: string }

export function parseZfsList(text: string): Map<string, { used: number; avail: number; quota: number }> {
  const out = new Map<string, { used: number; avail: number; quota: number }>();
  for (const l of text.split('\n')) {
    const [name, used, avail, quota] = l.split('\t');
    if (name && used !== undefined) out.set(name, { used: Number(used), avail: Number(avail ?? 0), quota: Number(quota ?? 0) || 0 });
  }
  return out;
}

/** `btrfs qgroup show -re --raw`: qgroupid rfer excl max_rfer max_excl. */
export function parseQgroups(text: string): Map<string, { rfer: number; limit: number | null }> {
  const out = new Map<string, { rfer: number; limit: number | null }>();
  for (const l of text.split('\n')) {
    const f = l.trim().split(/\s+/);
    if (!f[0] || !/^0\/\d+$/.test(f[0])) continue;
    const lim = f[3];
    out.set(f[0], { rfer: Number(f[1]), limit: lim && /^\d+$/.test(lim) ? Number(lim) : null });
  }
  return out;
}

function statfsUsage(path: string): Usage | undefined {
  try {
    const s = statfsSync(path);
    return { used: (s.blocks - s.bfree) * s.bsize, total: s.blocks * s.bsize, source: 'filesystem' };
  } catch {
    return undefined;
  }
}

export class UsageCache {
  private backing = new Map<string, { b: Backing; rootid?: string }>();
  private values = new Map<string, Usage>();
  private last = 0;
  constructor(private readonly run: Runner, private readonly refreshMs = 60_000, private readonly nowMs: () => number = Date.now) {}

  /** Usage per share (by name); ZFS and btrfs figures are refreshed every refreshMs, statfs every call. */
  async get(shares: readonly Share[]): Promise<Map<string, Usage>> {
    const due = this.nowMs() - this.last >= this.refreshMs;
    const out = new Map<string, Usage>();
    const zfsShares: [Share, string][] = [];
    const btrfs = new Map<string, [Share, string][]>();
    for (const s of shares) {
      let b = this.backing.get(s.path);
      if (!b) {
        const bk = await detectBacking(this.run, s.path, true).catch(() => ({ kind: 'plain', fstype: 'unknown', exists: true }) as Backing);
        b = { b: bk };
        if (bk.kind === 'btrfs' && bk.subvolume) {
          const id = await btrfsRootId(this.run, s.path);
          if (id !== undefined) b.rootid = `0/${id}`;
        }
        this.backing.set(s.path, b);
      }
      if (b.b.kind === 'zfs') zfsShares.push([s, b.b.dataset]);
      else if (b.b.kind === 'btrfs' && b.rootid) {
        const list = btrfs.get(b.b.mountpoint) ?? [];
        list.push([s, b.rootid]);
        btrfs.set(b.b.mountpoint, list);
      } else {
        const u = statfsUsage(s.path);
        if (u) out.set(s.sharename, u);
      }
    }
    if (due) {
      this.last = this.nowMs();
      if (zfsShares.length) {
        const rows = await zfsList(this.run, { props: ['name', 'used', 'avail', 'quota'], types: ['filesystem'], parsable: true, allowFail: true }).catch(() => undefined);
        const ds = parseZfsList((rows ?? []).map((r) => r.join('\t')).join('\n'));
        for (const [s, name] of zfsShares) {
          const d = ds.get(name);
          if (d) this.values.set(s.sharename, { used: d.used, total: d.quota || d.used + d.avail, source: `zfs ${name}` });
        }
      }
      for (const [mp, list] of btrfs) {
        const table = await btrfsQgroupShow(this.run, mp);
        const q = table !== undefined ? parseQgroups(table) : new Map();
        for (const [s, id] of list) {
          const g = q.get(id);
          const fs = statfsUsage(s.path);
          if (g) this.values.set(s.sharename, { used: g.rfer, total: g.limit ?? fs?.total ?? null, source: `btrfs qgroup ${id}` });
          else if (fs) this.values.set(s.sharename, fs);
        }
      }
    }
    for (const [s] of [...zfsShares, ...[...btrfs.values()].flat()]) {
      const v = this.values.get(s.sharename) ?? statfsUsage(s.path);
      if (v) out.set(s.sharename, v);
    }
    return out;
  }
}
