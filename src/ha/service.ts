/**
 * HA with CTDB as a service over the cluster: deploy (plan, then bring every node to it over its
 * Runner), and the cluster's state as the status commands show it. Declared as operations in
 * api/operations/ha.ts.
 */
import { GatewayError, invalid } from '../core/errors.ts';
import { pveApi } from '../pve/connect.ts';
import type { Runner } from '../core/exec.ts';
import { failAtFromEnv } from '../core/plan.ts';
import { type Schema, type Infer } from '../core/schema.ts';
import { type Share } from '../core/share.ts';
import { addressAnswers, loadHaConfig, resolveVips, saveHaConfig, type HaConfig } from './config.ts';
import { snapshot, type HaNode } from './ctdb.ts';
import { deployCluster, type DeployReport, type HaDeployment } from './deploy.ts';
import { readFile } from 'node:fs/promises';
import {
  nodesFromPveClusterStatus, parseClusterLock, parseNodeList, parseVip, parseVipRange, RADOS_LOCK_DURATION_DEFAULT, RADOS_LOCK_DURATION_MAX, RADOS_LOCK_DURATION_MIN, type ClusterNode,
} from './plan.ts';
import { sshRunner } from './transport.ts';
import { clusterFqdn, ensureWinbind, nodeAds, vipAddresses } from './winbind.ts';
import { globalParams } from '../samba/profiles.ts';
import type { Gateway } from '../provision/context.ts';
import { Ceph, cephTarget } from '../core/ceph.ts';
import { cephfsRecord } from '../core/cephfs.ts';
import type { CephEvictOptions } from './cephevict.ts';

export const haDeploySchema = {
  nodes: { type: 'list', optional: true, description: 'Cluster nodes as name=address (private network); default: the Proxmox cluster members from /cluster/status, or the nodes deployed before' },
  interface: { type: 'string', optional: true, description: 'Network interface that carries the VIPs on every node', pattern: /^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,14}$/, patternText: 'must be an interface name' },
  cluster_lock: { type: 'string', optional: true, description: 'CTDB cluster lock: a file on storage shared by all nodes, rados:<cluster>:<user>:<pool>:<object> for Ceph, or none (needs force_no_lock)' },
  cluster_lock_duration: { type: 'integer', optional: true, minimum: RADOS_LOCK_DURATION_MIN, maximum: RADOS_LOCK_DURATION_MAX, description: `With a rados: cluster lock, the lock's lease in seconds (renewed every half of it): a dead leader's lock blocks its successor up to this long (default ${RADOS_LOCK_DURATION_DEFAULT}; kept from the last deploy unless given)` },
  create_lock_pool: { type: 'boolean', optional: true, description: 'With a rados: cluster lock, create its Ceph pool when it does not exist (as the admin of ceph_conf)' },
  force_no_lock: { type: 'boolean', optional: true, description: 'Accept running without a cluster lock (risk of split brain); kept from the last deploy unless given' },
  netbios_name: { type: 'string', optional: true, description: 'NetBIOS name all nodes answer to (default SMBGW)', pattern: /^[A-Za-z0-9][A-Za-z0-9-]{0,14}$/, patternText: 'must be 1..15 letters, digits or -' },
  vip_range: { type: 'string', optional: true, description: 'Addresses for ctdb_vip auto: first-last or a CIDR', check: (v) => { try { parseVipRange(v); return undefined; } catch (e) { return (e as GatewayError).message.replace(/^vip_range: /, ''); } } },
  vip_prefix: { type: 'integer', optional: true, minimum: 8, maximum: 32, description: 'Prefix length of VIPs given without one (default 24)' },
  services: { type: 'string', optional: true, enum: ['systemd', 'direct'], description: 'Start ctdbd/smbd through systemd (default) or directly (hosts without an init system)' },
  log_location: { type: 'string', optional: true, description: 'ctdbd log: syslog (default) or file:/path' },
  leader_timeout: { type: 'integer', optional: true, minimum: 1, maximum: 60, description: 'Seconds without a leader broadcast before an election (CTDB default 5; bounds failover time when the leader dies)' },
  timeout: { type: 'integer', optional: true, default: 120, minimum: 10, maximum: 3600, description: 'Seconds to wait for the cluster to become healthy' },
} as const satisfies Schema;

/** The runner for a node: this node's own Runner, SSH as root for the others. */
export function defaultRunnerFor(g: Gateway): (n: ClusterNode) => Runner {
  return (n) => (n.name === g.settings.node ? g.run : sshRunner(g.run, n.address, `node ${n.name}`));
}

/** The cluster's nodes and their addresses, from Proxmox VE's /cluster/status. */
async function pveNodes(g: Gateway): Promise<ClusterNode[]> {
  return nodesFromPveClusterStatus((await pveApi(g.settings, g.run).clusterStatus()) as unknown as Record<string, unknown>[]);
}

export interface HaDeployResult {
  nodes: ClusterNode[];
  vips: Record<string, string>;
  changes: DeployReport['changes'];
  steps: string[];
  holders: Record<string, string>;
}

/**
 * Deploy (or re-deploy, idempotently) the CTDB cluster and every HA share. `runnerFor` gives the
 * Runner of each node (tests pass namespace runners; the default is SSH).
 */
export async function deployHa(g: Gateway, p: Infer<typeof haDeploySchema>, runnerFor: (n: ClusterNode) => Runner = defaultRunnerFor(g)): Promise<HaDeployResult> {
  return g.store.locked(() => deployHaLocked(g, p, runnerFor));
}

/** deployHa, with the store's lock already held (ha ad join/leave deploy inside their own plan). */
export async function deployHaLocked(g: Gateway, p: Infer<typeof haDeploySchema>, runnerFor: (n: ClusterNode) => Runner): Promise<HaDeployResult> {
  {
    const prev = await loadHaConfig(g.settings.storeDir);
    const nodes = p.nodes?.length ? parseNodeList(p.nodes) : prev?.nodes ?? (g.settings.isPve ? await pveNodes(g) : undefined);
    if (!nodes) throw invalid('nodes', 'give the cluster nodes as name=address (no Proxmox cluster to read them from)');
    const iface = p.interface ?? prev?.interface;
    if (!iface) throw invalid('interface', 'give the network interface that carries the VIPs');
    const lockText = p.cluster_lock ?? prev?.cluster_lock;
    if (!lockText) throw invalid('cluster_lock', 'give a cluster lock file on shared storage (or rados:..., or none with force_no_lock)');
    const cfg: HaConfig = {
      nodes,
      interface: iface,
      cluster_lock: lockText,
      force_no_lock: p.force_no_lock ?? !!prev?.force_no_lock,
      netbios_name: p.netbios_name ?? prev?.netbios_name ?? 'SMBGW',
      vip_range: p.vip_range ?? prev?.vip_range,
      vip_prefix: p.vip_prefix ?? prev?.vip_prefix ?? 24,
      services: (p.services as HaConfig['services'] | undefined) ?? prev?.services ?? 'systemd',
      log_location: p.log_location ?? prev?.log_location,
      leader_timeout: p.leader_timeout ?? prev?.leader_timeout,
      vips: prev?.vips ?? {},
      registry_shares: prev?.registry_shares ?? [],
      ...(prev?.ad ? { ad: prev.ad } : {}),
    };
    const parsed = parseClusterLock(cfg.cluster_lock);
    // A lease only a RADOS lock has: refused with another lock rather than ignored.
    if (p.cluster_lock_duration !== undefined && parsed.kind !== 'rados')
      throw invalid('cluster_lock_duration', `is the lease of a rados: cluster lock; the cluster lock is ${parsed.kind === 'file' ? 'a file' : 'none'}`);
    if (parsed.kind === 'rados') cfg.cluster_lock_duration = p.cluster_lock_duration ?? prev?.cluster_lock_duration ?? RADOS_LOCK_DURATION_DEFAULT;
    const lock = parsed.kind === 'rados' ? { ...parsed, duration: cfg.cluster_lock_duration } : parsed;
    if (lock.kind === 'rados' && p.create_lock_pool) {
      const ceph = new Ceph(runnerFor(nodes.find((n) => n.name === g.settings.node) ?? nodes[0]!), cephTarget(g.settings));
      if (!(await ceph.poolExists(lock.pool))) { await ceph.createPool(lock.pool); g.log(`created Ceph pool ${lock.pool} for the cluster lock`); }
    }
    const shares = (await g.store.list()).filter((s) => s.ha_enabled);
    const haNodes: HaNode[] = nodes.map((n) => ({ ...n, run: runnerFor(n) }));
    const probe = haNodes.find((n) => n.name === g.settings.node) ?? haNodes[0]!;
    const { addrs, vips } = await resolveVips(shares, cfg, (ip) => addressAnswers(probe.run, ip));
    const removed: HaNode[] = (prev?.nodes ?? []).filter((o) => !nodes.some((n) => n.address === o.address)).map((n) => ({ ...n, run: runnerFor(n) }));
    const report = await deployCluster({
      nodes: haNodes,
      removed,
      ctdb: { lock, forceNoLock: cfg.force_no_lock, logLocation: cfg.log_location, leaderTimeout: cfg.leader_timeout },
      // the same hardening as native mode ([global] of the security profiles), one NetBIOS name for all nodes
      smb: { netbiosName: cfg.netbios_name, extra: globalParams(shares), ...(cfg.ad ? { ad: cfg.ad } : {}) },
      publicAddresses: addrs,
      shares,
      cephEvict: cephEvictFor(g, shares, nodes),
      cephClient: await cephClientFor(g, shares),
      dropShares: cfg.registry_shares,
      services: cfg.services,
      timeoutMs: p.timeout * 1000,
      failAt: failAtFromEnv(),
      log: g.log,
    });
    // a joined cluster: every node (a new or restarted one too) runs winbindd and resolves domain users
    if (cfg.ad?.joined_at) {
      const wb = await ensureWinbind(haNodes, cfg.services);
      for (const n of wb.nsswitch) (report.changes[n] ??= []).push('added winbind to nsswitch.conf');
      for (const n of wb.started) (report.changes[n] ??= []).push('started winbindd');
      cfg.ad = { ...cfg.ad, nsswitch_added: [...new Set([...cfg.ad.nsswitch_added, ...wb.nsswitch])] };
      // the cluster's name in the domain's DNS follows its VIPs
      const dns = vipAddresses(vips);
      if (JSON.stringify(dns) !== JSON.stringify(cfg.ad.dns ?? [])) {
        await nodeAds(probe, cfg.services).dnsSet(clusterFqdn(cfg.ad.netbios, cfg.ad.domain), dns);
        report.changes[probe.name]!.push(`DNS ${clusterFqdn(cfg.ad.netbios, cfg.ad.domain)}: ${dns.join(' ') || 'removed'}`);
        cfg.ad = { ...cfg.ad, dns };
      }
    }
    await saveHaConfig(g.settings.storeDir, { ...cfg, vips, registry_shares: shares.map((s) => s.sharename) });
    const holders: Record<string, string> = {};
    for (const [share, v] of Object.entries(vips)) {
      const ip = report.cluster.ips.find((i) => i.address === v.split('/')[0]);
      const st = report.cluster.status.find((s) => s.pnn === ip?.pnn);
      holders[share] = nodes.find((n) => n.address === st?.address)?.name ?? '-';
    }
    return { nodes, vips, changes: report.changes, steps: report.steps, holders };
  }
}

/** With CephFS HA shares: what the event script that evicts dead nodes' CephFS sessions needs. */
function cephEvictFor(g: Gateway, shares: readonly Share[], nodes: readonly ClusterNode[]): CephEvictOptions | undefined {
  const rec = shares.map(cephfsRecord).find((r) => r !== undefined);
  if (!rec) return undefined;
  const t = cephTarget(g.settings);
  return { conf: t.conf, admin: t.admin, client: rec.client, nodes };
}

/** With CephFS HA shares: the client's ceph.conf and keyring (read here) that every node's smbd needs. */
async function cephClientFor(g: Gateway, shares: readonly Share[]): Promise<HaDeployment['cephClient']> {
  const rec = shares.map(cephfsRecord).find((r) => r !== undefined);
  if (!rec) return undefined;
  const ceph = new Ceph(g.run, cephTarget(g.settings));
  const read = async (path: string) => readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new GatewayError('failed', `the CephFS shares' client files are missing here (${path}: ${e.code ?? e.message}); a CephFS share's create writes them`);
  });
  return {
    client: rec.client,
    conf: rec.conf,
    files: [
      { path: rec.conf, text: await read(rec.conf), mode: '0644' },
      { path: ceph.keyring, text: await read(ceph.keyring), mode: '0600' },
    ],
  };
}

/** The VIP (address only) of an HA share, as deployed. */
export function shareVip(cfg: HaConfig, s: Share): string {
  const v = cfg.vips[s.sharename] ?? (s.ctdb_vip && s.ctdb_vip !== 'auto' ? `${parseVip(s.ctdb_vip).address}` : undefined);
  if (!v) throw new GatewayError('failed', `share ${s.sharename} has no VIP deployed yet: run \`pve-smbgateway ha deploy\``);
  return v.split('/')[0]!;
}

export interface HaNodeState { name: string; address: string; pnn: number | null; flags: string[]; ok: boolean }
export interface HaState {
  vip?: string;
  /** The node holding the VIP, or null when nobody does. */
  holder?: string | null;
  nodes: HaNodeState[];
  ok: boolean;
  problems: string[];
  /** The cluster's domain membership (ha ad join), when joined. */
  ad?: { domain: string; workgroup: string; netbios_name: string; joined_at: string };
}

/** The HA state of a share (or of the cluster when no share is given), asked of the local ctdbd. */
export async function haState(g: Gateway, share?: Share): Promise<HaState> {
  const cfg = await loadHaConfig(g.settings.storeDir);
  if (!cfg) return { nodes: [], ok: false, problems: ['no HA cluster is set up (pve-smbgateway ha deploy)'] };
  let vip: string | undefined;
  try {
    vip = share ? shareVip(cfg, share) : undefined;
  } catch (e) {
    return { nodes: [], ok: false, problems: [(e as Error).message] };
  }
  const self: HaNode[] = cfg.nodes.map((n) => ({ ...n, run: g.run }));
  const ad = cfg.ad?.joined_at ? { ad: { domain: cfg.ad.domain, workgroup: cfg.ad.workgroup, netbios_name: cfg.ad.netbios, joined_at: cfg.ad.joined_at } } : {};
  try {
    const snap = await snapshot(self.slice(0, 1), vip ? [vip] : []);
    const nodes = cfg.nodes.map((n) => {
      const st = snap.status.find((s) => s.address === n.address);
      return { name: n.name, address: n.address, pnn: st?.pnn ?? null, flags: st ? (st.flags.length ? st.flags : ['OK']) : ['NOT-IN-NODEMAP'], ok: !!st?.ok };
    });
    // Judge against the configured nodes (nodemap rows of removed nodes do not count).
    const problems = snap.verdict.problems;
    let holder: string | null | undefined;
    if (vip) {
      const ip = snap.ips.find((i) => i.address === vip);
      const st = snap.status.find((s) => s.pnn === ip?.pnn);
      holder = st ? cfg.nodes.find((n) => n.address === st.address)?.name ?? st.address : null;
    }
    return { ...(vip ? { vip, holder } : {}), nodes, ok: problems.length === 0, problems, ...ad };
  } catch (e) {
    return { ...(vip ? { vip, holder: null } : {}), nodes: cfg.nodes.map((n) => ({ name: n.name, address: n.address, pnn: null, flags: ['UNKNOWN'], ok: false })), ok: false, problems: [(e as Error).message], ...ad };
  }
}
