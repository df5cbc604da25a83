/**
 * Plan steps of CephFS shares: on create the gateway's CephX client gets read-write caps on the new
 * share's directory (made when it is the first CephFS share, with its keyring in the private store);
 * on delete the directory leaves the caps again (the client goes with the last CephFS share). The caps
 * are always computed from the whole share list, so a failed step is undone by putting back the caps
 * read before it.
 */
import { GatewayError, invalid } from '../core/errors.ts';
import type { Step } from '../core/plan.ts';
import type { Share } from '../core/share.ts';
import type { Backing } from './storage.ts';
import { Ceph } from '../core/ceph.ts';
import { cephfsRecord, cephPathOf, clientCaps, type CephfsRecord } from '../core/cephfs.ts';

/** The file system a CephFS mount shows: named by the mount source, else the only one there is. */
export async function cephfsName(ceph: Ceph, source: string): Promise<string> {
  const names = await ceph.fsNames().catch((e: Error) => {
    throw new GatewayError('unavailable', `path is on CephFS, but the Ceph cluster does not answer as ${ceph.t.admin} with ${ceph.t.conf} (setting ceph_conf): ${e.message}`);
  });
  const named = /\.([A-Za-z0-9_.-]+)=\//.exec(source)?.[1];
  if (named && names.includes(named)) return named;
  if (names.length === 1) return names[0]!;
  throw invalid('path', `the Ceph cluster has ${names.length ? `several CephFS file systems (${names.join(', ')})` : 'no CephFS file system'} and the mount (${source}) does not say which one this is`);
}

/** The record a new CephFS share carries, checked before anything changes. */
export async function planCephfs(ceph: Ceph, path: string, b: Extract<Backing, { kind: 'cephfs' }>): Promise<CephfsRecord> {
  const fs = await cephfsName(ceph, b.source);
  const cephpath = cephPathOf(path, b.mountpoint, b.root);
  clientCaps([{ fs, cephpath }]); // refuses a path caps cannot carry
  return { kind: 'cephx', client: ceph.t.client, conf: ceph.clientConfFile, fs, cephpath };
}

function capsFor(shares: readonly Share[]): string[] | undefined {
  return clientCaps(shares.map(cephfsRecord).filter((r): r is CephfsRecord => !!r));
}

/** After the shares list changed: the client's caps for `after` (or no client when none is on CephFS). */
export function cephCapsStep(ceph: Ceph, after: () => readonly Share[], what: string): Step {
  let before: Record<string, string> | undefined;
  let read = false;
  return {
    name: 'cephx-caps',
    shows: `ceph auth caps ${ceph.t.client} (${what}); keyring 0600 in ${ceph.t.dir}`,
    do: async () => {
      before = await ceph.caps();
      read = true;
      const caps = capsFor(after());
      if (caps) await ceph.setClientCaps(caps);
      else if (before !== undefined) await ceph.removeClient();
    },
    undo: async () => {
      if (!read) return;
      if (before === undefined) { await ceph.removeClient(); return; }
      const had = await ceph.caps();
      await ceph.restoreClientCaps(before);
      if (had === undefined) await ceph.writeKeyring();
    },
  };
}
