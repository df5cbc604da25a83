/**
 * Pure rendering of the gateway's managed smb.conf fragment: a [global] hardening block and one
 * section per share. The admin's own smb.conf is never rewritten; it loads this file with one
 * `include =` line (see README). No value can carry a line break, a section header or a second parameter.
 */
import { shareOptions, type Share } from '../core/share.ts';
import { SNAPSHOT_FORMAT, snapshottable } from '../core/snapshot.ts';
import { cephfsRecord, cephShareParams } from '../core/cephfs.ts';
import { adGlobalParams, type AdConf } from './ads.ts';
import { withPresets } from './presets.ts';
import { globalParams, shareProfileParams, type AdminGlobals, type Params } from './profiles.ts';
import { withTconAudit } from './tconaudit.ts';
import { guestShadowCopyParams } from './guestshadow.ts';
import { dataPathParams } from './tuning.ts';

export const MANAGED_HEADER = '# Managed by pve-smbgateway: do not edit; changes are overwritten.';

function line(k: string, v: string): string {
  if (/[\r\n\0]/.test(k + v)) throw new Error(`refusing to render a line break in smb.conf parameter ${JSON.stringify(k)}`);
  // A backslash at the end of a line makes Samba read the next line as part of this value.
  if (/\\\s*$/.test(v)) throw new Error(`refusing to render a trailing backslash in smb.conf parameter ${JSON.stringify(k)}`);
  return `   ${k} = ${v}`;
}

function section(name: string, params: Params): string {
  if (/[\r\n\0\]]/.test(name)) throw new Error(`refusing to render share name ${JSON.stringify(name)}`);
  return [`[${name}]`, ...params.map(([k, v]) => line(k, v))].join('\n');
}

/**
 * One item of an smb.conf user list: Samba splits lists at blanks and commas unless the item is in
 * double quotes ("@LAB\\Domain Users"); principals never contain a quote or a comma (share.ts).
 */
export function listItem(name: string): string {
  if (/["\r\n]/.test(name)) throw new Error(`refusing to render ${JSON.stringify(name)} in an smb.conf list`);
  return /[\s,]/.test(name) ? `"${name}"` : name;
}

/** The smb.conf parameters of one share, in a fixed order. `pathInside` overrides the path (guest modes). */
export function shareParams(s: Share, pathInside?: string): Params {
  // A CephFS share is served through libcephfs: its path is the directory inside CephFS.
  const ceph = pathInside === undefined ? cephfsRecord(s) : undefined;
  const p: Params = [['path', ceph ? ceph.cephpath : pathInside ?? s.path]];
  if (s.comment) p.push(['comment', s.comment]);
  const writers = [...s.users, ...s.groups.map((g) => '@' + g)].map(listItem);
  const readers = [...s.read_users, ...s.read_groups.map((g) => '@' + g)].map(listItem);
  p.push(['read only', 'yes']);
  if (!s.read_only && writers.length) p.push(['write list', writers.join(' ')]);
  if (!s.guest_ok) {
    // An empty `valid users` would let every account in: a share nobody was given stays unavailable.
    if (writers.length + readers.length) p.push(['valid users', [...writers, ...readers].join(' ')]);
    else p.push(['available', 'no']);
  }
  // root bypasses every file permission: never a session as root, whatever the lists (or guest access) allow.
  p.push(['invalid users', 'root']);
  p.push(['guest ok', s.guest_ok ? 'yes' : 'no']);
  p.push(...shareProfileParams(s));
  if (pathInside === undefined) p.push(...(ceph ? cephVfsParams(s, ceph) : withTconAudit(s, shadowCopyParams(s))));
  else p.push(...guestShadowCopyParams(s, pathInside));
  p.push(...dataPathParams());
  p.push(...shareOptions(s.options));
  return withPresets(s, p);
}

/** A CephFS share's vfs_ceph parameters (tcon audit included); vfs_ceph, the terminal module, stays last. */
function cephVfsParams(s: Share, ceph: NonNullable<ReturnType<typeof cephfsRecord>>): Params {
  return withTconAudit(s, cephShareParams(ceph).filter(([k]) => k !== 'path')).map(([k, v]) =>
    (k === 'vfs objects' ? [k, [...v.split(/\s+/).filter((m) => m !== 'ceph'), 'ceph'].join(' ')] : [k, v]));
}

/**
 * The managed file. `adminGlobals`: the admin's own [global] values (smb.conf without our include),
 * which the managed [global] must not weaken since it is read last.
 */
export function renderManagedConf(shares: readonly Share[], opts: { pathInside?: (s: Share) => string | undefined; adminGlobals?: AdminGlobals; ad?: AdConf } = {}): string {
  const sorted = [...shares].sort((a, b) => a.sharename.localeCompare(b.sharename));
  // A domain member (docs/ad.md): security = ads, realm, workgroup and winbind's idmap ranges.
  const parts = [MANAGED_HEADER, section('global', [...globalParams(sorted, opts.adminGlobals), ...(opts.ad ? adGlobalParams(opts.ad) : [])])];
  for (const s of sorted) parts.push(section(s.sharename, shareParams(s, opts.pathInside?.(s))));
  return parts.join('\n\n') + '\n';
}

/** Whether one smb.conf line is an `include =` of the managed file. */
export function isManagedInclude(line: string, managedPath: string): boolean {
  const m = /^\s*include\s*=\s*(.+?)\s*$/i.exec(line);
  return !!m && m[1] === managedPath;
}

/** Whether an smb.conf text loads the managed file through an `include =` line in effect. */
export function includesManaged(smbConfText: string, managedPath: string): boolean {
  return smbConfText.split('\n').some((l) => isManagedInclude(l, managedPath));
}

/** smb.conf as the admin wrote it, without the line that includes the managed file. */
export function withoutManagedInclude(smbConfText: string, managedPath: string): string {
  return smbConfText.split('\n').filter((l) => !isManagedInclude(l, managedPath)).join('\n');
}

/** The [global] section of `testparm -s` output as name -> value (names in lower case). */
export function parseTestparmGlobals(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  let inGlobal = false;
  for (const l of text.split('\n')) {
    const sec = /^\s*\[(.*)\]\s*$/.exec(l);
    if (sec) { inGlobal = sec[1]!.toLowerCase() === 'global'; continue; }
    const kv = /^\s*([^=#;]+?)\s*=\s*(.*?)\s*$/.exec(l);
    if (inGlobal && kv) out[kv[1]!.toLowerCase()] = kv[2]!;
  }
  return out;
}

/** smb.conf parameters that publish the snapshots as Previous Versions. */
export function shadowCopyParams(s: Share): [string, string][] {
  const t = s.backup_enabled && s.mode === 'native' ? snapshottable(s) : undefined;
  if (!t) return [];
  const common: [string, string][] = [['shadow:format', SNAPSHOT_FORMAT], ['shadow:sort', 'desc'], ['shadow:localtime', 'no']];
  if (t.kind === 'cephfs') return []; // with vfs_ceph, in cephShareParams
  if (t.kind === 'zfs') return [['vfs objects', 'shadow_copy2'], ['shadow:snapdir', '.zfs/snapshot'], ...common];
  return [['vfs objects', 'shadow_copy2'], ['shadow:snapdir', t.snapdir], ['shadow:mountpoint', s.path], ...common];
}
