/**
 * Journal records of what provisioning changes on the host and in Proxmox VE, and the registry of
 * repairers by record kind that `pve-smbgateway repair` uses after a crash (see core/journal.ts).
 * Each repairer is idempotent, copes with a step that got only part of the way, and reaches only what
 * the step recorded making (an inode, a GUID, a uid, a guest's name).
 */
import { chmod, chown, lstat } from 'node:fs/promises';
import { GatewayError } from '../core/errors.ts';
import type { Runner } from '../core/exec.ts';
import { fileRepairers, type JournalRecord, type RepairRegistry } from '../core/journal.ts';
import type { Step } from '../core/plan.ts';
import type { Settings } from '../core/settings.ts';
import type { Share } from '../core/share.ts';
import type { ShareStore } from '../core/store.ts';
import type { GuestKind, PveApi } from '../pve/api.ts';
import { sambaRepairers } from '../samba/repair.ts';
import type { Samba } from '../samba/samba.ts';
import { undoUnixAccount, type UnixAccountRecord } from './accounts.ts';
import { guestRepairers } from './guest-exec.ts';
import { adComputerLeft, type AdComputerRecord } from './lxc-ad.ts';
import { purgeNow, type PurgeRecord } from './purge.ts';
import { undoBtrfsQuota, undoDataset, undoDir, undoQuota, undoSubvolume, type BtrfsQuotaRecord, type DatasetRecord, type DirRecord, type QuotaRecord, type SubvolumeRecord } from './quota.ts';

// --- ownership and ACL of a path ---

/** A path's owner, mode and ACL (getfacl text) before a step changes them. */
export type AclRecord = { kind: 'acl'; path: string; dev: number; ino: number; uid: number; gid: number; mode: number; acl: string | null };

export async function aclRecords(run: Runner, path: string): Promise<AclRecord[]> {
  const st = await lstat(path).catch(() => undefined);
  if (!st) return [];
  const r = await run('getfacl', ['-n', '--absolute-names', '--', path], { allowFail: true });
  return [{ kind: 'acl', path, dev: st.dev, ino: st.ino, uid: st.uid, gid: st.gid, mode: st.mode & 0o7777, acl: r.code === 0 ? r.stdout : null }];
}

export async function undoAcl(run: Runner, r: AclRecord): Promise<string> {
  const st = await lstat(r.path).catch(() => undefined);
  if (!st) return `${r.path} is not there`;
  if (st.dev !== r.dev || st.ino !== r.ino) throw new GatewayError('failed', `${r.path} is not the directory whose permissions the operation changed (its inode changed): left as it is`);
  if (r.acl !== null) {
    const x = await run('setfacl', ['--restore=-'], { input: r.acl, allowFail: true });
    if (x.code !== 0 && !/not supported/i.test(x.stderr)) throw new GatewayError('failed', `setfacl --restore on ${r.path} failed: ${x.stderr.trim()}`);
  }
  await chown(r.path, r.uid, r.gid);
  await chmod(r.path, r.mode);
  return `put back owner, mode and ACL of ${r.path}`;
}

/**
 * The ACLs of a whole tree (`getfacl -R`), for a step that changes entries below the share root too
 * (revoking a removed account's entries): put back with `setfacl --restore` while the root is still
 * the directory whose ACLs were recorded.
 */
export type AclTreeRecord = { kind: 'acl-tree'; path: string; dev: number; ino: number; acl: string };

export async function aclTreeRecords(run: Runner, path: string): Promise<AclTreeRecord[]> {
  const st = await lstat(path).catch(() => undefined);
  if (!st) return [];
  const r = await run('getfacl', ['-R', '-n', '--absolute-names', '--', path], { allowFail: true });
  return r.code === 0 ? [{ kind: 'acl-tree', path, dev: st.dev, ino: st.ino, acl: r.stdout }] : [];
}

export async function undoAclTree(run: Runner, r: AclTreeRecord): Promise<string> {
  const st = await lstat(r.path).catch(() => undefined);
  if (!st) return `${r.path} is not there`;
  if (st.dev !== r.dev || st.ino !== r.ino) throw new GatewayError('failed', `${r.path} is not the directory whose ACLs the operation changed (its inode changed): left as it is`);
  const x = await run('setfacl', ['--restore=-'], { input: r.acl, allowFail: true });
  if (x.code !== 0) throw new GatewayError('failed', `setfacl --restore below ${r.path} failed: ${x.stderr.trim()}`);
  return `put back the ACLs below ${r.path}`;
}

/** The step with more records in its journal entry (for steps defined where the journal is not known). */
export function withRecords(step: Step, more: () => Promise<JournalRecord[]>): Step {
  const own = step.journal;
  return { ...step, journal: async () => [...(own ? await own() : []), ...(await more())] };
}

// --- Proxmox VE ---

/** A guest the step clones (or a delete destroys): removed only while it still has the name it was given. */
export type GuestRecord = { kind: 'guest'; node: string; type: GuestKind; vmid: number; name: string; description?: string };
/** A guest a delete stops: started again on undo when it was running. */
export type GuestRunningRecord = { kind: 'guest-running'; node: string; type: GuestKind; vmid: number; wasRunning: boolean };
/** A directory mapping the step makes (or a delete removes). */
export type DirMappingRecord = { kind: 'dir-mapping'; id: string; path: string };
/** An NFS export the step adds (or a delete removes). */
export type NfsExportRecord = { kind: 'nfs-export'; client: string };

function notFound(e: unknown): boolean {
  return /does not exist|not exist|no such|not found/i.test((e as Error)?.message ?? '');
}

export async function removeRecordedGuest(api: PveApi, r: GuestRecord): Promise<string> {
  const what = `${r.type === 'lxc' ? 'CT' : 'VM'} ${r.vmid}`;
  let config;
  try { config = await api.config(r.node, r.type, r.vmid); } catch (e) { if (notFound(e)) return `${what} is not there`; throw e; }
  const name = String((r.type === 'lxc' ? config.hostname : config.name) ?? '');
  if (name !== r.name && !(r.description && String(config.description ?? '').trim() === r.description)) {
    throw new GatewayError('failed', `${what} is named "${name}", not "${r.name}" as the operation made it: left as it is`);
  }
  await api.removeGuest(r.node, r.type, r.vmid);
  return `removed ${what}`;
}

async function restartGuest(api: PveApi, r: GuestRunningRecord): Promise<string> {
  const what = `${r.type === 'lxc' ? 'CT' : 'VM'} ${r.vmid}`;
  if (!r.wasRunning) return `${what} was not running`;
  const st = await api.status(r.node, r.type, r.vmid).catch((e: unknown) => { if (notFound(e)) return undefined; throw e; });
  if (!st) throw new GatewayError('failed', `${what} is gone: it cannot be started again`);
  if (st.status === 'running') return `${what} is running`;
  await api.start(r.node, r.type, r.vmid);
  return `started ${what} again`;
}

async function removeDirMapping(api: PveApi, r: DirMappingRecord): Promise<string> {
  const m = (await api.dirMappings()).find((x) => x.id === r.id);
  if (!m) return `directory mapping ${r.id} is not there`;
  if (!m.map.some((e) => e.split(',').includes(`path=${r.path}`))) throw new GatewayError('failed', `directory mapping ${r.id} no longer maps ${r.path}: left as it is`);
  await api.deleteDirMapping(r.id);
  return `removed directory mapping ${r.id}`;
}

async function unexport(run: Runner, r: NfsExportRecord): Promise<string> {
  await run('exportfs', ['-u', r.client], { allowFail: true });
  return `NFS export ${r.client} removed`;
}

// --- the registry ---

export interface RepairCtx {
  run: Runner;
  store: ShareStore;
  samba: Samba;
  settings: Settings;
  /** The Proxmox VE API, made only when a record needs it. */
  api: () => PveApi;
}

/** Every record kind a journal can hold, and how to undo (or finish) it. */
export const repairers: RepairRegistry<RepairCtx> = {
  ...fileRepairers,
  ...sambaRepairers,
  ...guestRepairers,
  dir: { undo: (r, _c, s) => undoDir(r as DirRecord, s.startedAt) },
  subvolume: { undo: (r, c, s) => undoSubvolume(c.run, r as SubvolumeRecord, s.startedAt) },
  dataset: { undo: (r, c, s) => undoDataset(c.run, r as DatasetRecord, s.startedAt) },
  'btrfs-quota': { undo: (r, c) => undoBtrfsQuota(c.run, r as BtrfsQuotaRecord) },
  quota: { undo: (r, c) => undoQuota(c.run, r as QuotaRecord) },
  acl: { undo: (r, c) => undoAcl(c.run, r as AclRecord) },
  'acl-tree': { undo: (r, c) => undoAclTree(c.run, r as AclTreeRecord) },
  'unix-account': { undo: (r, c) => undoUnixAccount(c.run, r as UnixAccountRecord) },
  purge: {
    redo: async (r, c) => {
      const share = (r as PurgeRecord).share as Share;
      const others = (await c.store.list()).filter((s) => s.sharename.toLowerCase() !== share.sharename.toLowerCase());
      return (await purgeNow({ run: c.run, allowedRoots: c.settings.allowedRoots }, share, others, true)).join('; ') || 'nothing to purge';
    },
  },
  guest: { undo: (r, c) => removeRecordedGuest(c.api(), r as GuestRecord), redo: (r, c) => removeRecordedGuest(c.api(), r as GuestRecord) },
  'guest-running': { undo: (r, c) => restartGuest(c.api(), r as GuestRunningRecord) },
  'dir-mapping': { undo: (r, c) => removeDirMapping(c.api(), r as DirMappingRecord), redo: (r, c) => removeDirMapping(c.api(), r as DirMappingRecord) },
  'nfs-export': { undo: (r, c) => unexport(c.run, r as NfsExportRecord), redo: (r, c) => unexport(c.run, r as NfsExportRecord) },
  'ad-computer': { undo: async (r) => adComputerLeft(r as AdComputerRecord) },
};
