/**
 * The HA cluster settings the gateway deployed (nodes, interface, cluster lock, NetBIOS name, VIP
 * range) and the VIP each HA share got, kept as ha.json beside shares.cfg (cluster-wide on Proxmox
 * through pmxcfs), so that `failover` and `status` know the cluster without asking again.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GatewayError, invalid } from '../core/errors.ts';
import type { Runner } from '../core/exec.ts';
import type { Share } from '../core/share.ts';
import { atomicWrite } from '../core/store.ts';
import type { Services } from './ctdb.ts';
import type { AdConf } from '../samba/ads.ts';
import { checkNodes, isIpv4, parseVip, parseVipRange, pickVip, type ClusterNode, type PublicAddress } from './plan.ts';

export interface HaConfig {
  nodes: ClusterNode[];
  interface: string;
  /** As the user gave it: a file path, rados:..., or none (with force_no_lock). */
  cluster_lock: string;
  force_no_lock: boolean;
  netbios_name: string;
  vip_range?: string;
  vip_prefix: number;
  services: Services;
  /** ctdbd log location (syslog, or file:/path). */
  log_location?: string;
  /** Lease of a rados: cluster lock (seconds), the helper's 5th argument. */
  cluster_lock_duration?: number;
  /** ctdb.conf [cluster] leader timeout (seconds), when not CTDB's default. */
  leader_timeout?: number;
  /** Share name → VIP address/prefix given to it. */
  vips: Record<string, string>;
  /** Shares the gateway put into CTDB's registry. */
  registry_shares: string[];
  /** The cluster's Active Directory membership (ha ad join; docs/ad.md). */
  ad?: HaAdMembership;
}

/** One machine account for the cluster's NetBIOS name, joined once; secrets.tdb replicated by CTDB. */
export interface HaAdMembership extends AdConf {
  /** DNS domain (lower case). */
  domain: string;
  /** The computer account's name (the cluster's NetBIOS name). */
  netbios: string;
  dc?: string;
  /** The node that ran `net ads join`. */
  join_node: string;
  /** The addresses `<netbios>.<domain>` has in the domain's DNS: the VIPs (ha deploy keeps them so). */
  dns?: string[];
  /** Nodes whose nsswitch.conf the join gave winbind (leave takes it back only there). */
  nsswitch_added: string[];
  joined_at: string;
}

export function haConfigPath(storeDir: string): string {
  return join(storeDir, 'ha.json');
}

export async function loadHaConfig(storeDir: string): Promise<HaConfig | undefined> {
  let text: string;
  try {
    text = await readFile(haConfigPath(storeDir), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const c = JSON.parse(text) as HaConfig;
    checkNodes(c.nodes);
    return { ...c, vips: c.vips ?? {}, registry_shares: c.registry_shares ?? [] };
  } catch (e) {
    throw new GatewayError('failed', `${haConfigPath(storeDir)}: ${(e as Error).message}`);
  }
}

export async function saveHaConfig(storeDir: string, c: HaConfig): Promise<void> {
  await atomicWrite(haConfigPath(storeDir), JSON.stringify(c, null, 2) + '\n', 0o640);
}

export async function requireHaConfig(storeDir: string): Promise<HaConfig> {
  const c = await loadHaConfig(storeDir);
  if (!c) throw new GatewayError('unavailable', 'no HA cluster is set up: run `pve-smbgateway ha deploy` first');
  return c;
}

/** Whether an address answers on the network (one ping from a node). */
export async function addressAnswers(run: Runner, address: string): Promise<boolean> {
  const r = await run('ping', ['-c', '1', '-W', '1', '-n', '-q', address], { allowFail: true, timeoutMs: 5_000 });
  if (r.code === 0) return true;
  if (r.code === 1) return false; // no reply
  throw new GatewayError('failed', `cannot check whether ${address} is in use: ping failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().split('\n').slice(-1)[0] ?? ''}`);
}

/**
 * The VIP of every HA share: a given address as is; `auto` keeps the address it got before, or takes
 * the first address of the range that is not a node address, not another share's VIP and does not
 * answer a ping. Returns the public addresses and the updated share → VIP map.
 */
export async function resolveVips(shares: readonly Share[], cfg: HaConfig, answers: (ip: string) => Promise<boolean>): Promise<{ addrs: PublicAddress[]; vips: Record<string, string> }> {
  const vips: Record<string, string> = {};
  const taken = new Set<string>(cfg.nodes.map((n) => n.address));
  const fixed = shares.filter((s) => s.ctdb_vip && s.ctdb_vip !== 'auto');
  for (const s of fixed) {
    const v = parseVip(s.ctdb_vip!, cfg.vip_prefix);
    if (taken.has(v.address) && cfg.nodes.some((n) => n.address === v.address)) throw invalid('ctdb_vip', `${v.address} (share ${s.sharename}) is a node's own address`);
    vips[s.sharename] = `${v.address}/${v.prefix}`;
    taken.add(v.address);
  }
  for (const s of shares) {
    if (s.ctdb_vip !== 'auto') continue;
    const prev = cfg.vips[s.sharename];
    if (prev && isIpv4(prev.split('/')[0]!) && !taken.has(prev.split('/')[0]!)) {
      vips[s.sharename] = prev;
      taken.add(prev.split('/')[0]!);
    }
  }
  for (const s of shares) {
    if (s.ctdb_vip !== 'auto' || vips[s.sharename]) continue;
    if (!cfg.vip_range) throw invalid('vip_range', `share ${s.sharename} has ctdb_vip auto: give a vip_range to choose from`);
    parseVipRange(cfg.vip_range);
    for (;;) {
      const v = pickVip(cfg.vip_range, taken);
      taken.add(v.address);
      if (await answers(v.address)) continue; // in use on the network
      vips[s.sharename] = `${v.address}/${v.prefix}`;
      break;
    }
  }
  const addrs = Object.values(vips).map((v) => {
    const [address, prefix] = v.split('/');
    return { address: address!, prefix: Number(prefix), iface: cfg.interface };
  });
  return { addrs, vips };
}
