/**
 * Pure rendering of the gateway's managed smb.conf fragment: a [global] hardening block and one
 * section per share. The admin's own smb.conf is never rewritten; it loads this file with one
 * `include =` line (see README). No value can carry a line break, a section header or a second parameter.
 */
import { shareOptions, type Share } from '../core/share.ts';
import { shadowCopyParams } from '../backup/snapshots.ts';
import { globalParams, shareProfileParams, type Params } from './profiles.ts';

export const MANAGED_HEADER = '# Managed by pve-smbgateway: do not edit; changes are overwritten.';

function line(k: string, v: string): string {
  if (/[\r\n\0]/.test(k + v)) throw new Error(`refusing to render a line break in smb.conf parameter ${JSON.stringify(k)}`);
  return `   ${k} = ${v}`;
}

function section(name: string, params: Params): string {
  if (/[\r\n\0\]]/.test(name)) throw new Error(`refusing to render share name ${JSON.stringify(name)}`);
  return [`[${name}]`, ...params.map(([k, v]) => line(k, v))].join('\n');
}

/** The smb.conf parameters of one share, in a fixed order. `pathInside` overrides the path (guest modes). */
export function shareParams(s: Share, pathInside?: string): Params {
  const p: Params = [['path', pathInside ?? s.path]];
  if (s.comment) p.push(['comment', s.comment]);
  const writers = [...s.users, ...s.groups.map((g) => '@' + g)];
  const readers = [...s.read_users, ...s.read_groups.map((g) => '@' + g)];
  p.push(['read only', 'yes']);
  if (!s.read_only && writers.length) p.push(['write list', writers.join(' ')]);
  if (!s.guest_ok) {
    // An empty `valid users` would let every account in: a share nobody was given stays unavailable.
    if (writers.length + readers.length) p.push(['valid users', [...writers, ...readers].join(' ')]);
    else p.push(['available', 'no']);
  }
  p.push(['guest ok', s.guest_ok ? 'yes' : 'no']);
  p.push(...shareProfileParams(s));
  if (pathInside === undefined) p.push(...shadowCopyParams(s));
  p.push(...shareOptions(s.options));
  return p;
}

export function renderManagedConf(shares: readonly Share[], opts: { pathInside?: (s: Share) => string | undefined } = {}): string {
  const sorted = [...shares].sort((a, b) => a.sharename.localeCompare(b.sharename));
  const parts = [MANAGED_HEADER, section('global', globalParams(sorted))];
  for (const s of sorted) parts.push(section(s.sharename, shareParams(s, opts.pathInside?.(s))));
  return parts.join('\n\n') + '\n';
}

/** Whether an smb.conf text loads the managed file through an `include =` line in effect. */
export function includesManaged(smbConfText: string, managedPath: string): boolean {
  return smbConfText.split('\n').some((l) => {
    const m = /^\s*include\s*=\s*(.+?)\s*$/i.exec(l);
    return !!m && m[1] === managedPath;
  });
}
