/**
 * winbindd and nsswitch on the nodes of a domain-joined CTDB cluster (docs/ad.md, HA): every node runs
 * its own winbindd against the one machine account whose secret CTDB replicates (secrets.tdb is a
 * persistent clustered database), and resolves domain users through nsswitch.
 */
import { GatewayError } from '../core/errors.ts';
import { Ads, nsswitchHasWinbind, nsswitchWithWinbind, nsswitchWithoutWinbind } from '../samba/ads.ts';
import type { HaNode, Services } from './ctdb.ts';
import { readNodeFile, writeNodeFile } from './transport.ts';

export const CLUSTER_SMB_CONF = '/etc/samba/smb.conf';
export const NSSWITCH = '/etc/nsswitch.conf';

/** The one `net ads`/`wbinfo` adapter, on a node, against its clustered smb.conf. */
export function nodeAds(n: HaNode, services: Services): Ads {
  return new Ads(n.run, { smbConf: CLUSTER_SMB_CONF }, services === 'direct' ? 'daemon' : 'systemd');
}

/**
 * Every node resolves domain users through winbind (nsswitch) and runs winbindd, which reaches a DC.
 * Idempotent: returns the nodes where nsswitch.conf was changed and where winbindd was started.
 */
export async function ensureWinbind(nodes: readonly HaNode[], services: Services): Promise<{ nsswitch: string[]; started: string[] }> {
  const out = { nsswitch: [] as string[], started: [] as string[] };
  for (const n of nodes) {
    const ns = await readNodeFile(n.run, NSSWITCH);
    if (ns === undefined) throw new GatewayError('failed', `node ${n.name}: ${NSSWITCH} is missing`);
    if (!nsswitchHasWinbind(ns)) { await writeNodeFile(n.run, NSSWITCH, nsswitchWithWinbind(ns)); out.nsswitch.push(n.name); }
    const ads = nodeAds(n, services);
    if (!(await ads.winbindRunning())) {
      await ads.startWinbind().catch((e: Error) => { throw new GatewayError('failed', `node ${n.name}: ${e.message}`); });
      out.started.push(n.name);
    }
  }
  return out;
}

/** Stop winbindd on the nodes and take winbind out of nsswitch.conf where the join put it. */
export async function dropWinbind(nodes: readonly HaNode[], services: Services, nsswitchNodes: readonly string[]): Promise<void> {
  for (const n of nodes) {
    await nodeAds(n, services).stopWinbind();
    if (!nsswitchNodes.includes(n.name)) continue;
    const ns = await readNodeFile(n.run, NSSWITCH);
    if (ns !== undefined) await writeNodeFile(n.run, NSSWITCH, nsswitchWithoutWinbind(ns));
  }
}

/** The cluster's DNS name in the domain. */
export const clusterFqdn = (netbios: string, domain: string): string => `${netbios.toLowerCase()}.${domain.toLowerCase()}`;

/** The VIP addresses (without prefix), sorted: what the cluster's name resolves to. */
export const vipAddresses = (vips: Record<string, string>): string[] => [...new Set(Object.values(vips).map((v) => v.split('/')[0]!))].sort();
