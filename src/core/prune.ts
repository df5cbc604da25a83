/**
 * Retention in Proxmox's terms (pure): the `prune-backups` options of vzdump and Proxmox Backup
 * Server (keep-last, keep-hourly, keep-daily, keep-weekly, keep-monthly, keep-yearly, keep-all),
 * with their semantics: backups newest first; the options are applied in that order; each keeps
 * the newest backup of each of the last N periods that have a backup (periods already covered by a
 * backup an earlier option kept do not count again); a backup an option passed over as a second one
 * of its period is removed and no later option brings it back; what no option keeps is removed.
 * Weeks are ISO weeks (Monday to Sunday). With no option at all, everything is kept.
 */

export const PRUNE_KEYS = ['keep-last', 'keep-hourly', 'keep-daily', 'keep-weekly', 'keep-monthly', 'keep-yearly'] as const;
export type PruneKey = (typeof PRUNE_KEYS)[number];
export type PruneOptions = Partial<Record<PruneKey, number>> & { 'keep-all'?: boolean };

/** Parse `keep-last=3,keep-daily=7` (Proxmox's property string); throws Error naming the bad part. */
export function parsePruneOptions(text: string): PruneOptions {
  const out: PruneOptions = {};
  const s = text.trim();
  if (!s) return out;
  for (const part of s.split(',')) {
    const m = /^\s*([a-z-]+)\s*=\s*(\d+)\s*$/.exec(part);
    if (!m) throw new Error(`"${part}" is not key=number (keys: ${PRUNE_KEYS.join(', ')}, keep-all)`);
    const [, key, v] = m;
    if (key === 'keep-all') {
      if (v !== '0' && v !== '1') throw new Error('keep-all must be 0 or 1');
      out['keep-all'] = v === '1';
      continue;
    }
    if (!(PRUNE_KEYS as readonly string[]).includes(key!)) throw new Error(`unknown option "${key}" (keys: ${PRUNE_KEYS.join(', ')}, keep-all)`);
    if (out[key as PruneKey] !== undefined) throw new Error(`"${key}" is given twice`);
    const n = Number(v);
    if (n < 1 || n > 100000) throw new Error(`${key} must be between 1 and 100000`);
    out[key as PruneKey] = n;
  }
  if (out['keep-all'] && PRUNE_KEYS.some((k) => out[k] !== undefined)) throw new Error('keep-all=1 cannot be combined with other keep options');
  return out;
}

export function formatPruneOptions(o: PruneOptions): string {
  if (o['keep-all']) return 'keep-all=1';
  return PRUNE_KEYS.filter((k) => o[k] !== undefined).map((k) => `${k}=${o[k]}`).join(',');
}

/** undefined when valid, else why not (schema check). */
export function pruneOptionsRule(v: string): string | undefined {
  try { parsePruneOptions(v); return undefined; } catch (e) { return `${(e as Error).message}; e.g. keep-last=3,keep-daily=7,keep-weekly=4`; }
}

interface Parts { y: number; mo: number; d: number; h: number; wd: number }
function parts(ms: number, utc: boolean): Parts {
  const t = new Date(ms);
  return utc
    ? { y: t.getUTCFullYear(), mo: t.getUTCMonth() + 1, d: t.getUTCDate(), h: t.getUTCHours(), wd: t.getUTCDay() }
    : { y: t.getFullYear(), mo: t.getMonth() + 1, d: t.getDate(), h: t.getHours(), wd: t.getDay() };
}

/** ISO 8601 week-based year and week (strftime %G/%V). */
function isoWeek(p: Parts): string {
  const d = new Date(Date.UTC(p.y, p.mo - 1, p.d));
  const dayNum = d.getUTCDay() || 7; // Monday 1 .. Sunday 7
  d.setUTCDate(d.getUTCDate() + 4 - dayNum); // the Thursday of this week decides the year
  const yearStart = Date.UTC(d.getUTCFullYear(), 0, 1);
  return `${d.getUTCFullYear()}/${Math.ceil(((d.getTime() - yearStart) / 86400000 + 1) / 7)}`;
}

const PERIOD: Record<PruneKey, (p: Parts, ms: number) => string> = {
  'keep-last': (_p, ms) => String(ms),
  'keep-hourly': (p) => `${p.y}/${p.mo}/${p.d}/${p.h}`,
  'keep-daily': (p) => `${p.y}/${p.mo}/${p.d}`,
  'keep-weekly': (p) => isoWeek(p),
  'keep-monthly': (p) => `${p.y}/${p.mo}`,
  'keep-yearly': (p) => `${p.y}`,
};

export interface PruneMark<T> { item: T; time: number; keep: boolean; by?: PruneKey | 'keep-all' }

/**
 * Mark each backup keep or remove. `items` in any order with their time (epoch ms); returned
 * newest first. Local time by default, as Proxmox.
 */
export function pruneMarks<T>(items: readonly { item: T; time: number }[], o: PruneOptions, opts: { utc?: boolean } = {}): PruneMark<T>[] {
  const list = [...items].sort((a, b) => b.time - a.time);
  const mark = new Map<number, { keep: boolean; by?: PruneKey }>();
  const keepAll = o['keep-all'] || PRUNE_KEYS.every((k) => !o[k]);
  if (keepAll) return list.map((x) => ({ ...x, keep: true, by: 'keep-all' }));
  for (const key of PRUNE_KEYS) {
    const n = o[key];
    if (!n) continue;
    const id = (i: number) => PERIOD[key](parts(list[i]!.time, !!opts.utc), list[i]!.time);
    const already = new Set<string>();
    list.forEach((_, i) => { if (mark.get(i)?.keep) already.add(id(i)); });
    const included = new Set<string>();
    for (let i = 0; i < list.length; i++) {
      if (mark.has(i)) continue;
      const sel = id(i);
      if (already.has(sel)) continue;
      if (!included.has(sel)) {
        if (included.size >= n) break;
        included.add(sel);
        mark.set(i, { keep: true, by: key });
      } else {
        mark.set(i, { keep: false });
      }
    }
  }
  return list.map((x, i) => ({ ...x, keep: !!mark.get(i)?.keep, ...(mark.get(i)?.by ? { by: mark.get(i)!.by } : {}) }));
}
