/**
 * The dashboard in one call: every share with whether it is served, its sessions, usage against the
 * quota, throughput now (the collector's last sample), HA state and last snapshot, with the problems
 * that need an admin's eye; shares with problems first. Cheap enough to poll: one testparm and one
 * smbstatus for all native shares, the collector's state for the rest (no logon probe per share;
 * `status` does that for one share).
 */
import { defineOperation, type Operation } from '../../core/operation.ts';
import { parseSize, type Share } from '../../core/share.ts';
import { snapshottable } from '../../core/snapshot.ts';
import { listSnapshots } from '../../backup/snapshots.ts';
import { haState } from '../../ha/service.ts';
import type { SmbStatus } from '../../samba/samba.ts';
import { AUDIT } from '../privileges.ts';
import type { ApiCtx } from './daemon.ts';
import { sessionsOf } from './sessions.ts';

const op = defineOperation<ApiCtx>();

export interface DashboardRow {
  sharename: string;
  mode: string;
  path: string;
  comment: string;
  /** null: not known here (guest shares: see their status). */
  served: boolean | null;
  sessions: number | null;
  used: number | null;
  /** The quota in bytes, or the filesystem's size where there is none. */
  limit: number | null;
  quota: boolean;
  throughput_read: number | null;
  throughput_write: number | null;
  errors: number | null;
  ha: { holder: string | null; ok: boolean } | null;
  last_snapshot: string | null;
  problems: string[];
}

/** A share's problems from what the dashboard knows (pure). */
export function problemsOf(r: Omit<DashboardRow, 'problems'>): string[] {
  const out: string[] = [];
  if (r.served === false) out.push('not served');
  if (r.quota && r.used !== null && r.limit) {
    const pct = (100 * r.used) / r.limit;
    if (pct > 90) out.push(`quota ${pct.toFixed(0)} % used`);
  }
  if (r.errors) out.push(`${r.errors} failed logons or refused connections in the last interval`);
  if (r.ha && !r.ha.ok) out.push(r.ha.holder ? 'CTDB cluster unhealthy' : 'no node holds the VIP');
  return out;
}

/** Shares with problems first, then by name (pure). */
export function problemsFirst(rows: DashboardRow[]): DashboardRow[] {
  return [...rows].sort((a, b) => (b.problems.length > 0 ? 1 : 0) - (a.problems.length > 0 ? 1 : 0) || a.sharename.localeCompare(b.sharename));
}

export async function dashboard(ctx: ApiCtx): Promise<{ time: number; smbd_running: boolean; shares: DashboardRow[] }> {
  const shares = await ctx.store.list();
  const native = shares.some((s) => s.mode === 'native');
  const running = native ? await ctx.samba.running() : false;
  const loaded = running ? new Set(await ctx.samba.loadedShares()) : new Set<string>();
  const st: SmbStatus | undefined = running ? await ctx.samba.status().catch(() => undefined) : undefined;
  const rows = await Promise.all(shares.map(async (s: Share): Promise<DashboardRow> => {
    const sample = ctx.collector?.state.get(s.sharename)?.sample;
    const quota = s.quota ? parseSize(s.quota) ?? null : null;
    const t = snapshottable(s);
    const snaps = t && s.mode === 'native' ? await listSnapshots(ctx.run, t).catch(() => []) : [];
    const ha = s.ha_enabled ? await haState(ctx, s).then((h) => ({ holder: h.holder ?? null, ok: h.ok }), () => ({ holder: null, ok: false })) : null;
    const r = {
      sharename: s.sharename, mode: s.mode, path: s.path, comment: s.comment ?? '',
      served: s.mode === 'native' ? running && loaded.has(s.sharename.toLowerCase()) : null,
      sessions: s.mode === 'native' ? (st ? sessionsOf(st, s).length : running ? null : 0) : sample?.connections ?? null,
      used: sample?.storage_used ?? null,
      limit: quota ?? sample?.storage_total ?? null,
      quota: quota !== null,
      throughput_read: sample?.throughput_read ?? null,
      throughput_write: sample?.throughput_write ?? null,
      errors: sample?.errors ?? null,
      ha,
      last_snapshot: snaps.length ? snaps[snaps.length - 1]! : null,
    };
    return { ...r, problems: problemsOf(r) };
  }));
  return { time: Math.floor(Date.now() / 1000), smbd_running: running, shares: problemsFirst(rows) };
}

export const dashboardOp = op({
  command: [],
  method: 'GET',
  path: '/nodes/{node}/smbgateway/dashboard',
  description: 'Every share at a glance: served, sessions, usage against quota, throughput now, HA state, last snapshot and problems (shares with problems first).',
  parameters: {},
  returns: { description: 'Dashboard', schema: { type: 'object', properties: { time: { type: 'integer' }, smbd_running: { type: 'boolean' }, shares: { type: 'array', items: { type: 'object' } } } } },
  privilege: AUDIT,
  handler: async (_p, ctx) => dashboard(ctx),
});

export const dashboardOperations: Operation<ApiCtx>[] = [dashboardOp];
