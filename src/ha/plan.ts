/**
 * High availability with CTDB: pure planners. From the cluster membership and the shares' VIPs they
 * build the files CTDB reads (ctdb.conf, nodes, public_addresses), the clustered smb.conf fragment
 * and the `net conf` commands that put a share into CTDB's replicated registry. They also parse what
 * `ctdb -X status` and `ctdb -X ip` print. Nothing here does I/O.
 */
import { adGlobalParams, type AdConf } from '../samba/ads.ts';
import { GatewayError, invalid } from '../core/errors.ts';
import { netConfShareArgs } from '../samba/netconf.ts';
import { NODE_RE } from '../core/formats.ts';
import type { Share } from '../core/share.ts';
import { shareParams } from '../samba/render.ts';
import { cephfsRecord } from '../core/cephfs.ts';

export interface ClusterNode {
  /** Node name (Proxmox node name, or a host name on a plain Debian cluster). */
  name: string;
  /** Address on the private cluster network (what goes into the nodes file). */
  address: string;
}

/** Where CTDB keeps its cluster lock (the split-brain guard). */
export type ClusterLock =
  | { kind: 'file'; path: string }
  | { kind: 'rados'; cluster: string; user: string; pool: string; object: string; helper?: string; duration?: number }
  | { kind: 'none' };

export const RADOS_HELPER = '/usr/libexec/ctdb/ctdb_mutex_ceph_rados_helper';

/**
 * The RADOS lock's lease (seconds): the helper takes the lock for this long and renews it every half of
 * it, so a holder that dies without unlocking (kill -9, power loss) blocks the next leader for up to
 * this long. The helper's own default is 10 s, which made failover from a dead leader 11-12 s (its
 * successor waits for the leader timeout, 5 s, then for the lease). 4 s: the lease has run out by the
 * time the survivors elect a new leader (measured: bench/README.md), while a renewal still has 2 s to
 * reach Ceph before the lock is lost.
 */
export const RADOS_LOCK_DURATION_DEFAULT = 4;
export const RADOS_LOCK_DURATION_MIN = 2;
export const RADOS_LOCK_DURATION_MAX = 120;

export interface CtdbConfOptions {
  lock: ClusterLock;
  /** HA without a cluster lock risks split brain: refused unless this is set. */
  forceNoLock?: boolean;
  /** ctdbd's log: `syslog` or `file:/path`. */
  logLocation?: string;
  logLevel?: string;
  /** Seconds without a leader broadcast before an election (CTDB default 5). */
  leaderTimeout?: number;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
const IFACE = /^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,14}$/;
const LOCK_WORD = /^[A-Za-z0-9_.:@-]{1,128}$/;

export function isIpv4(s: string): boolean {
  return IPV4.test(s);
}

function noBreak(field: string, v: string): void {
  if (/[\r\n\0]/.test(v)) throw invalid(field, 'must not contain a line break or NUL character');
}

/** The cluster lock line's value, checked: a file must be an absolute path; RADOS words must be plain. */
export function clusterLockValue(lock: ClusterLock, forceNoLock = false): string | undefined {
  switch (lock.kind) {
    case 'file':
      noBreak('cluster_lock', lock.path);
      if (!lock.path.startsWith('/')) throw invalid('cluster_lock', 'must be an absolute path to a file on storage shared by all nodes');
      if (lock.path.startsWith('!')) throw invalid('cluster_lock', 'a helper command is only accepted through the rados lock kind');
      if (/\s/.test(lock.path)) throw invalid('cluster_lock', 'must not contain white space');
      return lock.path;
    case 'rados': {
      for (const [k, v] of [['cluster', lock.cluster], ['user', lock.user], ['pool', lock.pool], ['object', lock.object]] as const)
        if (!LOCK_WORD.test(v)) throw invalid(`cluster_lock`, `rados ${k} ${JSON.stringify(v)} must be letters, digits and _ . : @ - only`);
      const helper = lock.helper ?? RADOS_HELPER;
      if (!helper.startsWith('/') || /\s/.test(helper)) throw invalid('cluster_lock', 'the RADOS helper must be an absolute path without spaces');
      const d = lock.duration;
      if (d !== undefined && (!Number.isInteger(d) || d < RADOS_LOCK_DURATION_MIN || d > RADOS_LOCK_DURATION_MAX))
        throw invalid('cluster_lock_duration', `must be a whole number of seconds, ${RADOS_LOCK_DURATION_MIN}..${RADOS_LOCK_DURATION_MAX}`);
      return `!${helper} ${lock.cluster} ${lock.user} ${lock.pool} ${lock.object}${d !== undefined ? ` ${d}` : ''}`;
    }
    case 'none':
      if (!forceNoLock)
        throw invalid('cluster_lock', 'HA without a cluster lock is refused: a partitioned node could take over the VIP while the others still serve it (split brain); give a lock file on shared storage, a Ceph RADOS lock, or force it explicitly');
      return undefined;
  }
}

/** Parse the user's spelling of a cluster lock: `/shared/file`, `rados:<cluster>:<user>:<pool>:<object>`, or `none`. */
export function parseClusterLock(v: string): ClusterLock {
  noBreak('cluster_lock', v);
  if (v === 'none') return { kind: 'none' };
  if (v.startsWith('rados:')) {
    const parts = v.slice(6).split(':');
    // the user name (client.admin) has no colon; an object name may not have one either
    if (parts.length !== 4 || parts.some((p) => !p)) throw invalid('cluster_lock', 'rados lock must be rados:<ceph cluster>:<ceph user>:<pool>:<object>');
    const [cluster, user, pool, object] = parts as [string, string, string, string];
    return { kind: 'rados', cluster, user, pool, object };
  }
  return { kind: 'file', path: v };
}

/** ctdb.conf in the INI format of CTDB 4.9+ ([logging], [cluster], ...). */
export function renderCtdbConf(o: CtdbConfOptions): string {
  const lock = clusterLockValue(o.lock, o.forceNoLock);
  const location = o.logLocation ?? 'syslog';
  noBreak('log_location', location);
  if (!/^(syslog(:(nonblocking|udp|udp-rfc5424))?|file:\/\S+)$/.test(location)) throw invalid('log_location', 'must be syslog[:method] or file:/absolute/path');
  const level = o.logLevel ?? 'NOTICE';
  if (!/^(ERROR|WARNING|NOTICE|INFO|DEBUG)$/.test(level)) throw invalid('log_level', 'must be ERROR, WARNING, NOTICE, INFO or DEBUG');
  const lines = [
    '# Managed by pve-smbgateway: do not edit; changes are overwritten.',
    '[logging]',
    `\tlocation = ${location}`,
    `\tlog level = ${level}`,
    '[cluster]',
  ];
  if (lock !== undefined) lines.push(`\tcluster lock = ${lock}`);
  else lines.push('\t# no cluster lock: forced by the administrator (split brain is possible)');
  if (o.leaderTimeout !== undefined) {
    if (!Number.isInteger(o.leaderTimeout) || o.leaderTimeout < 1 || o.leaderTimeout > 600) throw invalid('leader_timeout', 'must be 1..600 seconds');
    lines.push(`\tleader timeout = ${o.leaderTimeout}`);
  }
  return lines.join('\n') + '\n';
}

/** Check a node list: names and addresses unique, addresses IPv4. */
export function checkNodes(nodes: readonly ClusterNode[]): void {
  if (nodes.length === 0) throw invalid('nodes', 'at least one node is needed');
  const names = new Set<string>();
  const addrs = new Set<string>();
  for (const n of nodes) {
    if (!NODE_RE.test(n.name)) throw invalid('nodes', `${JSON.stringify(n.name)} is not a node name`);
    if (!isIpv4(n.address)) throw invalid('nodes', `${n.name}: ${JSON.stringify(n.address)} is not an IPv4 address`);
    if (names.has(n.name)) throw invalid('nodes', `node ${n.name} is listed twice`);
    if (addrs.has(n.address)) throw invalid('nodes', `address ${n.address} is listed twice`);
    names.add(n.name);
    addrs.add(n.address);
  }
}

/** `name=address` items (CLI / API) as nodes. */
export function parseNodeList(items: readonly string[]): ClusterNode[] {
  const out = items.map((it) => {
    const eq = it.indexOf('=');
    if (eq <= 0) throw invalid('nodes', `${JSON.stringify(it)} must be name=address`);
    return { name: it.slice(0, eq).trim(), address: it.slice(eq + 1).trim() };
  });
  checkNodes(out);
  return out;
}

/** Node names and addresses from Proxmox's GET /cluster/status (entries of type node with an ip). */
export function nodesFromPveClusterStatus(entries: readonly Record<string, unknown>[]): ClusterNode[] {
  const out: ClusterNode[] = [];
  for (const e of entries) {
    if (e.type !== 'node') continue;
    if (typeof e.name !== 'string' || typeof e.ip !== 'string')
      throw new GatewayError('failed', `cluster status: node entry ${JSON.stringify(e.name ?? e.id)} has no ip`);
    out.push({ name: e.name, address: e.ip, ...(typeof e.nodeid === 'number' ? {} : {}) });
  }
  // Sort by corosync node id, then name, so every node computes the same nodes file.
  const id = (n: ClusterNode) => Number((entries.find((e) => e.name === n.name)?.nodeid as number | undefined) ?? 0);
  out.sort((a, b) => id(a) - id(b) || a.name.localeCompare(b.name));
  checkNodes(out);
  return out;
}

/**
 * The nodes file. CTDB numbers nodes by line (PNN), so an existing file keeps its order: nodes that
 * stay keep their line, removed nodes are commented out (never deleted, which would renumber the
 * rest) and new nodes are appended. The same text must be written on every node.
 */
export function renderNodesFile(nodes: readonly ClusterNode[], previous?: string): string {
  checkNodes(nodes);
  const want = new Set(nodes.map((n) => n.address));
  const lines: string[] = [];
  const placed = new Set<string>();
  for (const raw of (previous ?? '').split('\n')) {
    const l = raw.trim();
    if (l === '') continue;
    const commented = l.startsWith('#');
    const addr = l.replace(/^#+\s*/, '').split(/\s+/)[0] ?? '';
    if (!isIpv4(addr)) continue; // our own header comments etc.
    if (!commented && want.has(addr) && !placed.has(addr)) { lines.push(addr); placed.add(addr); }
    else lines.push(`#${addr}`);
  }
  for (const n of nodes) if (!placed.has(n.address)) { lines.push(n.address); placed.add(n.address); }
  return lines.join('\n') + '\n';
}

/** Addresses of the nodes file that are live (not commented), in PNN order with their PNN. */
export function parseNodesFile(text: string): { pnn: number; address: string; deleted: boolean }[] {
  const out: { pnn: number; address: string; deleted: boolean }[] = [];
  for (const raw of text.split('\n')) {
    const l = raw.trim();
    if (!l) continue;
    const deleted = l.startsWith('#');
    const addr = l.replace(/^#+\s*/, '').split(/\s+/)[0] ?? '';
    if (!isIpv4(addr)) continue;
    out.push({ pnn: out.length, address: addr, deleted });
  }
  return out;
}

export interface Vip { address: string; prefix: number }

export function parseVip(v: string, defaultPrefix = 24): Vip {
  noBreak('ctdb_vip', v);
  const [ip, prefix, ...rest] = v.split('/');
  if (rest.length || !ip || !isIpv4(ip)) throw invalid('ctdb_vip', 'must be an IPv4 address (optionally /prefix) or "auto"');
  const p = prefix === undefined ? defaultPrefix : Number(prefix);
  if (!Number.isInteger(p) || p < 8 || p > 32) throw invalid('ctdb_vip', 'prefix must be 8..32');
  return { address: ip, prefix: p };
}

export function ipToInt(ip: string): number {
  return ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
}
export function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

/**
 * A VIP range: `a.b.c.d-a.b.c.e` or a CIDR `a.b.c.0/24` (network and broadcast addresses left out).
 * Returns the candidates in order and the prefix to give the VIP.
 */
export function parseVipRange(v: string): { first: number; last: number; prefix: number } {
  noBreak('vip_range', v);
  const m = /^([\d.]+)-([\d.]+)(?:\/(\d+))?$/.exec(v);
  if (m) {
    if (!isIpv4(m[1]!) || !isIpv4(m[2]!)) throw invalid('vip_range', 'must be first-last (IPv4) or a CIDR such as 10.0.0.0/24');
    const first = ipToInt(m[1]!);
    const last = ipToInt(m[2]!);
    if (last < first) throw invalid('vip_range', 'the last address must not be before the first');
    if (last - first > 65535) throw invalid('vip_range', 'must hold at most 65536 addresses');
    const prefix = m[3] === undefined ? 24 : Number(m[3]);
    if (prefix < 8 || prefix > 32) throw invalid('vip_range', 'prefix must be 8..32');
    return { first, last, prefix };
  }
  const c = /^([\d.]+)\/(\d+)$/.exec(v);
  if (!c || !isIpv4(c[1]!)) throw invalid('vip_range', 'must be first-last (IPv4) or a CIDR such as 10.0.0.0/24');
  const prefix = Number(c[2]);
  if (prefix < 16 || prefix > 30) throw invalid('vip_range', 'CIDR prefix must be 16..30');
  const size = 2 ** (32 - prefix);
  const net = Math.floor(ipToInt(c[1]!) / size) * size;
  return { first: net + 1, last: net + size - 2, prefix };
}

/**
 * `auto`: the first address of the range that is not taken (node addresses, other shares' VIPs,
 * addresses seen answering). The caller checks the candidate on the network and calls again with it
 * added to `taken` when it turns out to be in use.
 */
export function pickVip(range: string, taken: Iterable<string>): Vip {
  const r = parseVipRange(range);
  const t = new Set(taken);
  for (let n = r.first; n <= r.last; n++) {
    const ip = intToIp(n);
    if (!t.has(ip)) return { address: ip, prefix: r.prefix };
  }
  throw new GatewayError('failed', `ctdb_vip: no free address left in the range ${range}`, 'ctdb_vip');
}

export interface PublicAddress { address: string; prefix: number; iface: string }

/** public_addresses: `VIP/prefix interface` lines, sorted by address, identical on every node. */
export function renderPublicAddresses(addrs: readonly PublicAddress[]): string {
  const seen = new Set<string>();
  const lines: string[] = [];
  for (const a of [...addrs].sort((x, y) => ipToInt(x.address) - ipToInt(y.address))) {
    if (!isIpv4(a.address)) throw invalid('ctdb_vip', `${a.address} is not an IPv4 address`);
    if (!IFACE.test(a.iface)) throw invalid('interface', `${JSON.stringify(a.iface)} is not an interface name`);
    if (seen.has(a.address)) continue;
    seen.add(a.address);
    lines.push(`${a.address}/${a.prefix} ${a.iface}`);
  }
  return lines.join('\n') + (lines.length ? '\n' : '');
}

export function parsePublicAddresses(text: string): PublicAddress[] {
  const out: PublicAddress[] = [];
  for (const raw of text.split('\n')) {
    const l = raw.replace(/#.*/, '').trim();
    if (!l) continue;
    const [cidr, iface] = l.split(/\s+/);
    const [address, prefix] = (cidr ?? '').split('/');
    if (address && isIpv4(address) && iface) out.push({ address, prefix: Number(prefix ?? 32), iface: iface.split(',')[0]! });
  }
  return out;
}

export interface ClusteredSmbOptions {
  /** The same NetBIOS name on all nodes: clients see one server. */
  netbiosName: string;
  workgroup?: string;
  /** The cluster's domain membership (docs/ad.md, HA): one machine account for the NetBIOS name. */
  ad?: AdConf;
  /** Extra [global] lines kept by the deployment (e.g. private directories of a test node). */
  extra?: [string, string][];
}

const NETBIOS = /^[A-Za-z0-9][A-Za-z0-9-]{0,14}$/;

/**
 * The clustered [global] block: clustering on, configuration in CTDB's replicated registry, one
 * NetBIOS name for the cluster, and file ids from the file system id (fileid:algorithm = fsid) so
 * that every node computes the same id for a file on the shared storage.
 */
export function clusteredGlobalParams(o: ClusteredSmbOptions): [string, string][] {
  if (!NETBIOS.test(o.netbiosName)) throw invalid('netbios_name', 'must be 1..15 letters, digits or -, starting with a letter or digit');
  const p: [string, string][] = [
    ['clustering', 'yes'],
    ['netbios name', o.netbiosName.toUpperCase()],
    ['workgroup', o.ad?.workgroup.toUpperCase() ?? o.workgroup ?? 'WORKGROUP'],
    ['server role', o.ad ? 'member server' : 'standalone server'],
    ['vfs objects', 'fileid'],
    ['fileid:algorithm', 'fsid'],
    ['disable netbios', 'yes'],
    ['load printers', 'no'],
    ['printing', 'bsd'],
    ['printcap name', '/dev/null'],
    ['disable spoolss', 'yes'],
  ];
  // a domain member: security = ads, realm, winbind's idmap (rid: the same ids on every node)
  if (o.ad) p.push(...adGlobalParams(o.ad).filter(([k]) => k !== 'workgroup' && k !== 'server role'));
  for (const [k, v] of o.extra ?? []) {
    noBreak('smb_conf', k + v);
    p.push([k, v]);
  }
  return p;
}

export const CLUSTER_HEADER = '# Managed by pve-smbgateway (CTDB cluster): do not edit; changes are overwritten.';

/** The smb.conf of a clustered node: [global] as above, then `include = registry` for the shares. */
export function renderClusteredSmbConf(o: ClusteredSmbOptions, includes: readonly string[] = []): string {
  const lines = [CLUSTER_HEADER, '[global]', ...clusteredGlobalParams(o).map(([k, v]) => `   ${k} = ${v}`)];
  for (const inc of includes) { noBreak('include', inc); lines.push(`   include = ${inc}`); }
  lines.push('   include = registry');
  return lines.join('\n') + '\n';
}

/**
 * Parameters of a clustered share: the share's own (its VFS modules too: snapshots as Previous
 * Versions, presets, the collector's tree connect events) plus the cluster-wide file id module.
 */
export function clusteredShareParams(s: Share): [string, string][] {
  // vfs_ceph shares keep their own VFS stack (libcephfs gives the same file ids on every node).
  if (cephfsRecord(s)) return shareParams(s);
  const own = shareParams(s).find(([k]) => k === 'vfs objects')?.[1];
  const p = shareParams(s).filter(([k]) => k !== 'vfs objects');
  p.push(['vfs objects', own ? `${own} fileid` : 'fileid']);
  return p;
}

/**
 * The `net conf` argument lists that make the registry hold exactly this share's parameters:
 * the share is dropped and re-created, then each parameter set (`net conf` writes to CTDB's
 * replicated registry, so one node suffices). Run them in order.
 */
/** The `net` commands that make the clustered registry share of `s`. */
export function netConfShareCommands(s: Share, exists: boolean): string[][] {
  return netConfShareArgs(s.sharename, s.path, clusteredShareParams(s), exists);
}

/** Names the registry stores under another spelling (Samba synonyms). */
const SYNONYMS: Record<string, string> = { 'smb encrypt': 'server smb encrypt', browsable: 'browseable', public: 'guest ok' };
const canon = (k: string) => SYNONYMS[k.toLowerCase()] ?? k.toLowerCase();

/** Whether the registry's parameters equal what the share wants (order-insensitive, synonyms and case of names folded). */
export function registryMatches(s: Share, current: readonly [string, string][]): boolean {
  const want = clusteredShareParams(s).map(([k, v]) => `${canon(k)}=${v}`).sort();
  const have = current.map(([k, v]) => `${canon(k)}=${v}`).sort();
  return want.length === have.length && want.every((w, i) => w === have[i]);
}

// ---------------------------------------------------------------------------------------------
// Parsing CTDB's machine-readable output (`ctdb -X ...`: `|`-separated, a header line first).

export interface CtdbNodeState {
  pnn: number;
  address: string;
  /** Flag names that are set: DISCONNECTED, UNKNOWN, BANNED, DISABLED, UNHEALTHY, STOPPED, INACTIVE, ... */
  flags: string[];
  ok: boolean;
  thisNode: boolean;
}

function xTable(text: string): { header: string[]; rows: string[][] } {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('|'));
  const cells = (l: string) => l.replace(/^\|/, '').replace(/\|$/, '').split('|');
  const [head, ...rows] = lines;
  if (!head) return { header: [], rows: [] };
  return { header: cells(head).map((h) => h.trim()), rows: rows.map(cells) };
}

/** `ctdb -X status` (or `ctdb -X nodestatus all`): one row per node, 0/1 per flag. */
export function parseCtdbStatus(text: string): CtdbNodeState[] {
  const { header, rows } = xTable(text);
  const iNode = header.indexOf('Node');
  const iIp = header.indexOf('IP');
  const iThis = header.indexOf('ThisNode');
  if (iNode < 0 || iIp < 0) throw new GatewayError('failed', `ctdb status: unexpected output: ${text.split('\n')[0] ?? ''}`);
  const out: CtdbNodeState[] = [];
  for (const r of rows) {
    if (!/^\d+$/.test(r[iNode] ?? '')) continue;
    const flags: string[] = [];
    header.forEach((h, i) => {
      if (i === iNode || i === iIp || i === iThis || h === '') return;
      if (r[i] === '1') flags.push(h.toUpperCase());
    });
    // PartiallyOnline is informative (an interface down), not a reason to call the node not OK.
    const ok = flags.every((f) => f === 'PARTIALLYONLINE');
    out.push({ pnn: Number(r[iNode]), address: r[iIp] ?? '', flags, ok, thisNode: (r[iThis] ?? '').trim() === 'Y' });
  }
  return out;
}

export interface CtdbIp { address: string; pnn: number }

/** `ctdb -X ip all`: public address and the PNN hosting it (-1 = nobody). */
export function parseCtdbIps(text: string): CtdbIp[] {
  const { header, rows } = xTable(text);
  const iIp = header.findIndex((h) => /public ip/i.test(h));
  const iNode = header.findIndex((h) => /^node$/i.test(h));
  if (iIp < 0 || iNode < 0) throw new GatewayError('failed', `ctdb ip: unexpected output: ${text.split('\n')[0] ?? ''}`);
  return rows.filter((r) => isIpv4(r[iIp] ?? '')).map((r) => ({ address: r[iIp]!, pnn: Number(r[iNode]) }));
}

export interface ClusterVerdict {
  ok: boolean;
  /** What is wrong, each naming the node. */
  problems: string[];
}

/**
 * Every node OK and each VIP hosted exactly once, by a node that is OK. Node names come from the
 * nodes list (by address); `hosts` maps VIP → the addresses of nodes that have it on an interface
 * (seen from the nodes themselves, to catch a VIP held twice).
 */
export function judgeCluster(nodes: readonly ClusterNode[], status: readonly CtdbNodeState[], ips: readonly CtdbIp[], vips: readonly string[], hosts?: ReadonlyMap<string, string[]>): ClusterVerdict {
  const problems: string[] = [];
  const nameOf = (addr: string) => nodes.find((n) => n.address === addr)?.name ?? addr;
  for (const n of nodes) {
    const st = status.find((s) => s.address === n.address);
    if (!st) problems.push(`node ${n.name} (${n.address}) is not in the CTDB node map`);
    else if (!st.ok) problems.push(`node ${n.name} (${n.address}) is ${st.flags.join(',')}`);
  }
  for (const vip of vips) {
    const ip = ips.find((i) => i.address === vip);
    if (!ip) { problems.push(`VIP ${vip} is not a public address of the cluster`); continue; }
    if (ip.pnn < 0) { problems.push(`VIP ${vip} is not hosted by any node`); continue; }
    const st = status.find((s) => s.pnn === ip.pnn);
    if (!st) problems.push(`VIP ${vip} is assigned to unknown PNN ${ip.pnn}`);
    else if (!st.ok) problems.push(`VIP ${vip} is on node ${nameOf(st.address)}, which is ${st.flags.join(',')}`);
    const h = hosts?.get(vip);
    if (h && h.length !== 1) problems.push(h.length === 0 ? `VIP ${vip}: no node has it on an interface` : `VIP ${vip} is configured on ${h.length} nodes at once: ${h.map(nameOf).join(', ')}`);
  }
  return { ok: problems.length === 0, problems };
}
