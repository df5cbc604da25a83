/**
 * Off-host copies of a share's snapshots: `zfs send | zfs recv` or `btrfs send | btrfs receive`, to a
 * target the admin names (`[[user@]host:]dataset-or-directory`; a host is reached with ssh, keys set
 * up by the admin), incremental from the newest snapshot both sides have. Only the gateway's own
 * snapshots (smbgw-...) are sent; nothing on the target is ever destroyed or rolled back (a ZFS
 * replica is received unmounted, so that it does not change between increments).
 */
import { readdir } from 'node:fs/promises';
import { isAbsolute, join, normalize } from 'node:path';
import { GatewayError, invalid } from '../core/errors.ts';
import { btrfsReceiveArgs, btrfsSendArgs } from '../core/btrfs.ts';
import { runPipe, type Cmd } from '../core/pipe.ts';
import { SNAPSHOT_RE } from '../core/snapshot.ts';
import { zfsRecvArgs, zfsSendArgs } from '../core/zfs.ts';
import { listSnapshots } from '../backup/snapshots.ts';
import { withShareRunLock } from '../backup/state.ts';
import type { Gateway } from './context.ts';
import { snapshotTarget } from './backup.ts';

export interface ReplicaTarget { host?: string; path: string }

const HOST_RE = /^(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/;
const DATASET_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]*(?:\/[A-Za-z0-9][A-Za-z0-9_.:-]*)+$/;
// Passed to ssh (a remote shell reads it): letters, digits and / . _ - only.
const DIR_RE = /^\/[A-Za-z0-9/._-]*$/;

/** `[[user@]host:]path`: a ZFS dataset below a pool (never a pool itself) or an absolute directory on btrfs. */
export function parseReplicaTarget(kind: 'zfs' | 'btrfs', text: string): ReplicaTarget {
  const i = text.indexOf(':');
  const host = i > 0 && !text.slice(0, i).includes('/') ? text.slice(0, i) : undefined;
  const path = host !== undefined ? text.slice(i + 1) : text;
  if (host !== undefined && !HOST_RE.test(host)) throw invalid('target', `"${host}" is not a host name ([user@]host)`);
  if (kind === 'zfs') {
    if (!DATASET_RE.test(path)) throw invalid('target', 'must name a ZFS dataset below a pool (pool/name), optionally after host:');
  } else if (!isAbsolute(path) || !DIR_RE.test(path) || normalize(path) !== path || path === '/') {
    throw invalid('target', 'must be an absolute directory on a btrfs filesystem (letters, digits, / . _ -), optionally after host:');
  }
  return host !== undefined ? { host, path } : { path };
}

const onTarget = (t: ReplicaTarget, c: Cmd): Cmd => (t.host ? { tool: 'ssh', args: ['-o', 'BatchMode=yes', t.host, '--', c.tool, ...c.args] } : c);

/** The gateway's snapshots already on the target (none when a ZFS target does not exist yet). */
async function targetSnapshots(g: Gateway, kind: 'zfs' | 'btrfs', t: ReplicaTarget): Promise<string[]> {
  if (kind === 'zfs') {
    const c = onTarget(t, { tool: 'zfs', args: ['list', '-H', '-o', 'name', '-t', 'snapshot', '-d', '1', t.path] });
    const r = await g.run(c.tool, c.args, { allowFail: true });
    if (r.code !== 0) {
      if (/does not exist/.test(r.stderr)) return [];
      throw new GatewayError('failed', `target: cannot list ${t.host ? `${t.host}:` : ''}${t.path}: ${r.stderr.trim().split('\n').pop()}`, 'target');
    }
    return r.stdout.split('\n').filter((l) => l.startsWith(`${t.path}@`)).map((l) => l.slice(t.path.length + 1)).filter((n) => SNAPSHOT_RE.test(n));
  }
  if (!t.host) {
    const names = await readdir(t.path).catch(() => { throw invalid('target', `${t.path} does not exist: make the directory (on a btrfs filesystem) first`); });
    return names.filter((n) => SNAPSHOT_RE.test(n));
  }
  const r = await g.run('ssh', ['-o', 'BatchMode=yes', t.host, '--', 'ls', '-1', '--', t.path], { allowFail: true });
  if (r.code !== 0) throw new GatewayError('failed', `target: cannot list ${t.host}:${t.path}: ${r.stderr.trim().split('\n').pop()}`, 'target');
  return r.stdout.split('\n').filter((n) => SNAPSHOT_RE.test(n));
}

export interface ReplicateResult { sharename: string; target: string; snapshot?: string; base?: string; sent: string[] }

export async function replicateShare(g: Gateway, sharename: string, targetText: string, log: (m: string) => void = () => undefined): Promise<ReplicateResult> {
  // The share's run lock: no backup's retention deletes the base snapshot while it is being sent.
  return withShareRunLock(g.settings.lockDir, sharename, `replicate (pid ${process.pid})`, async () => {
    const share = await g.store.require(sharename);
    const t = await snapshotTarget(g, share);
    if (t.kind === 'cephfs') throw invalid('target', 'CephFS snapshots are not sent (replicate the CephFS pool with Ceph\'s own tools)');
    const target = parseReplicaTarget(t.kind, targetText);
    const mine = await listSnapshots(g.run, t);
    const latest = mine.at(-1);
    if (!latest) throw invalid('sharename', `share "${share.sharename}" has no snapshot to send yet (run backup first)`);
    const have = new Set(await targetSnapshots(g, t.kind, target));
    const where = `${target.host ? `${target.host}:` : ''}${target.path}`;
    if (have.has(latest)) { log(`${where} already has ${latest}`); return { sharename, target: where, snapshot: latest, sent: [] }; }
    const base = [...mine].reverse().find((n) => have.has(n));
    if (have.size && !base) throw invalid('target', `${where} holds snapshots of the gateway, but none of this share's: name a new target`);
    const sent: string[] = [];
    if (t.kind === 'zfs') {
      // -I: the snapshots between the base and the newest go too (the target keeps the same history).
      const send = { tool: 'zfs', args: zfsSendArgs(`${t.dataset}@${latest}`, base ? `${t.dataset}@${base}` : undefined, { intermediates: true }) };
      log(`zfs send ${base ? `-I @${base} ` : ''}${t.dataset}@${latest} | zfs recv ${where}`);
      await runPipe(send, onTarget(target, { tool: 'zfs', args: zfsRecvArgs(target.path) }));
      sent.push(...(base ? mine.slice(mine.indexOf(base) + 1) : [latest]));
    } else {
      // Each snapshot newer than the base, with the one before as parent (the first full: only the newest).
      const todo = base ? mine.slice(mine.indexOf(base) + 1) : [latest];
      let parent = base;
      for (const n of todo) {
        log(`btrfs send ${parent ? `-p ${parent} ` : ''}${n} | btrfs receive ${where}`);
        await runPipe({ tool: 'btrfs', args: btrfsSendArgs(join(t.snapdir, n), parent ? join(t.snapdir, parent) : undefined) }, onTarget(target, { tool: 'btrfs', args: btrfsReceiveArgs(target.path) }));
        sent.push(n);
        parent = n;
      }
    }
    return { sharename, target: where, snapshot: latest, ...(base ? { base } : {}), sent };
  });
}
