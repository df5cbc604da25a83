/**
 * User-namespace id maps of unprivileged containers, the way Proxmox VE writes them.
 *
 * Proxmox's default for an unprivileged CT is `lxc.idmap: u 0 100000 65536` + `g 0 100000 65536`:
 * container uid N is host uid 100000+N, so the container's alice (1000) owns files on a bind mount as
 * host uid 101000. A "passthrough" map (Proxmox wiki: "Unprivileged LXC containers") maps one id 1:1 so
 * that container uid 1000 is host uid 1000; root then also needs `root:1000:1` in /etc/subuid and subgid.
 */
import { readFile, appendFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';

export interface IdMapEntry {
  kind: 'u' | 'g';
  /** First id inside the container. */
  ns: number;
  /** First id on the host. */
  host: number;
  count: number;
}
export type IdMap = readonly IdMapEntry[];

/** Proxmox VE's map for unprivileged containers. */
export const PROXMOX_IDMAP: IdMap = [
  { kind: 'u', ns: 0, host: 100000, count: 65536 },
  { kind: 'g', ns: 0, host: 100000, count: 65536 },
];

/** Proxmox map with container uid `uid` and gid `gid` passed through to the same ids on the host. */
export function passthroughIdmap(uid: number, gid = uid): IdMap {
  const part = (kind: 'u' | 'g', id: number): IdMapEntry[] => [
    { kind, ns: 0, host: 100000, count: id },
    { kind, ns: id, host: id, count: 1 },
    { kind, ns: id + 1, host: 100000 + id + 1, count: 65536 - id - 1 },
  ];
  return [...part('u', uid), ...part('g', gid)].filter((e) => e.count > 0);
}

/** Host id of a container id under `map` (undefined: unmapped, shows as nobody/65534). */
export function toHost(map: IdMap, kind: 'u' | 'g', id: number): number | undefined {
  for (const e of map) if (e.kind === kind && id >= e.ns && id < e.ns + e.count) return e.host + (id - e.ns);
  return undefined;
}

/** `lxc.idmap = ...` config lines. */
export function lxcIdmapLines(map: IdMap): string[] {
  return map.map((e) => `lxc.idmap = ${e.kind} ${e.ns} ${e.host} ${e.count}`);
}

/** `-m u:0:100000:65536 ...` arguments of lxc-usernsexec for the same map. */
export function usernsexecArgs(map: IdMap): string[] {
  return map.flatMap((e) => ['-m', `${e.kind}:${e.ns}:${e.host}:${e.count}`]);
}

/** Short stable name of a map (cache keys). */
export function idmapKey(map: IdMap): string {
  return createHash('sha256').update(JSON.stringify(map)).digest('hex').slice(0, 8);
}

/** The /etc/subuid (kind u) or /etc/subgid (kind g) lines root needs for `map`: `root:<host>:<count>`. */
export function subidLines(map: IdMap, kind: 'u' | 'g'): string[] {
  return map.filter((e) => e.kind === kind).map((e) => `root:${e.host}:${e.count}`);
}

/** Which of `needed` ranges are not covered by a range already listed for root in `subidText`. */
export function missingSubids(subidText: string, needed: string[]): string[] {
  const have = subidText.split('\n').map((l) => l.trim().split(':')).filter((p) => p.length === 3 && p[0] === 'root')
    .map((p) => ({ start: Number(p[1]), count: Number(p[2]) }));
  return needed.filter((line) => {
    const [, s, c] = line.split(':');
    const start = Number(s);
    const end = start + Number(c);
    return !have.some((h) => h.start <= start && h.start + h.count >= end);
  });
}

/**
 * LXC started by root uses newuidmap/newgidmap (package uidmap), which only allow ranges delegated to
 * root in /etc/subuid and /etc/subgid. Appends the lines `map` needs, only those that are missing
 * (an existing, covering range is left as is). Returns the lines it added.
 */
export async function ensureSubids(map: IdMap): Promise<string[]> {
  const added: string[] = [];
  for (const [kind, file] of [['u', '/etc/subuid'], ['g', '/etc/subgid']] as const) {
    const text = await readFile(file, 'utf8').catch(() => '');
    const miss = missingSubids(text, subidLines(map, kind));
    if (miss.length) {
      await appendFile(file, (text && !text.endsWith('\n') ? '\n' : '') + miss.join('\n') + '\n');
      added.push(...miss.map((l) => `${file}: ${l}`));
    }
  }
  return added;
}
