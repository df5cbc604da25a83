/** Cluster membership: where another node's daemon answers, and the certificate to pin for it. */
import { existsSync, readFileSync } from 'node:fs';
import { fingerprintOf } from './tls.ts';

/** Another node's daemon: its URL and its certificate's SHA-256 fingerprint. */
export interface Peer { url: string; fingerprint: string }

/** Peers of a Proxmox VE cluster: node addresses from /etc/pve/.members, certificates pinned from /etc/pve/nodes/<node>/. */
export function pveClusterPeer(port: number): (node: string) => Peer | undefined {
  return (node) => {
    try {
      const members = JSON.parse(readFileSync('/etc/pve/.members', 'utf8')) as { nodelist?: Record<string, { ip?: string }> };
      const ip = members.nodelist?.[node]?.ip;
      if (!ip) return undefined;
      for (const f of ['pveproxy-ssl.pem', 'pve-ssl.pem']) {
        const p = `/etc/pve/nodes/${node}/${f}`;
        if (existsSync(p)) return { url: `https://${ip.includes(':') ? `[${ip}]` : ip}:${port}`, fingerprint: fingerprintOf(readFileSync(p)) };
      }
    } catch { /* not a cluster */ }
    return undefined;
  };
}
