/**
 * Share presets: each a documented set of smb.conf parameters (docs/day2.md), rendered here as a pure
 * function of the share and merged into its section: the VFS modules of every preset and of the
 * snapshots (shadow_copy2) are stacked in one `vfs objects` line, in an order that works.
 */
import { parseSize, type Share } from '../core/share.ts';
import type { Params } from './profiles.ts';

/** Recycle bins live here, below the share root (the purge in provision/recycle.ts reads it too). */
export const RECYCLE_DIR = '.recycle';
/**
 * What full_audit records (prefix `smbgw-audit|share|user|client|pid`); see monitor/audit.ts. `connect`
 * is recorded too: on an audited share these lines are also the tree connect events the metrics
 * collector places connections by (monitor/tcon.ts), so the share needs no second full_audit setup.
 */
export const AUDIT_PREFIX = 'smbgw-audit';
export const AUDIT_OPERATIONS = ['connect', 'create_file', 'renameat', 'unlinkat', 'mkdirat', 'pwrite', 'pwrite_send', 'close'];

/** VFS module order: audit sees every call first; fruit before streams_xattr (vfs_fruit(8)). */
const VFS_ORDER = ['full_audit', 'shadow_copy2', 'recycle', 'catia', 'fruit', 'streams_xattr'];

const FRUIT_COMMON: Params = [['fruit:metadata', 'stream'], ['fruit:encoding', 'native']];

/** The parameters of each preset (without `vfs objects`), and the modules it needs. */
export function presetParams(s: Share): { vfs: string[]; params: Params; path?: string } {
  const vfs: string[] = [];
  const params: Params = [];
  let path: string | undefined;
  const has = (p: string) => s.presets.includes(p);
  if (has('macos') || has('timemachine')) {
    vfs.push('catia', 'fruit', 'streams_xattr');
    params.push(...FRUIT_COMMON, ['fruit:resource', 'file'], ['fruit:delete_empty_adfiles', 'yes'], ['fruit:wipe_intentionally_left_blank_rfork', 'yes']);
  }
  if (has('timemachine')) {
    params.push(['fruit:time machine', 'yes']);
    if (s.timemachine_max_size !== undefined) params.push(['fruit:time machine max size', String(parseSize(s.timemachine_max_size))]);
  }
  if (has('recycle')) {
    vfs.push('recycle');
    params.push(
      ['recycle:repository', `${RECYCLE_DIR}/%U`],
      ['recycle:keeptree', 'yes'],
      ['recycle:versions', 'yes'],
      // The deletion time is the mtime: retention (recycle_keep_days) counts from it.
      ['recycle:touch_mtime', 'yes'],
      ['recycle:directory_mode', '0770'],
      ['recycle:subdir_mode', '0700'],
    );
  }
  if (has('audit')) {
    vfs.push('full_audit');
    params.push(
      ['full_audit:prefix', `${AUDIT_PREFIX}|%S|%u|%I|%d`],
      ['full_audit:success', AUDIT_OPERATIONS.join(' ')],
      ['full_audit:failure', 'none'],
      // Into smbd's own log (debug level 1), which the collector follows: no syslog daemon needed.
      ['full_audit:syslog', 'false'],
    );
  }
  if (has('private')) {
    // Each user's own directory, made on the first connect (root preexec runs before smbd enters the path).
    path = `${s.path}/%u`;
    params.push(['root preexec', `/usr/bin/install -d -m 0700 -o %u -g %g '${s.path}/%u'`], ['root preexec close', 'yes']);
  }
  return { vfs, params, ...(path ? { path } : {}) };
}

/** A share's parameters with its presets merged in (one `vfs objects`, the private path). */
export function withPresets(s: Share, p: Params): Params {
  if (!s.presets.length) return p;
  const pre = presetParams(s);
  const vfs = new Set(pre.vfs);
  const out: Params = [];
  for (const [k, v] of p) {
    if (k === 'vfs objects') { for (const m of v.split(/\s+/)) vfs.add(m); continue; }
    if (k === 'path' && pre.path && !v.includes('%')) { out.push([k, v === s.path ? pre.path : `${v}/%u`]); continue; }
    out.push([k, v]);
  }
  const modules = [...vfs].sort((a, b) => VFS_ORDER.indexOf(a) - VFS_ORDER.indexOf(b));
  if (modules.length) out.splice(1, 0, ['vfs objects', modules.join(' ')]);
  return [...out, ...pre.params];
}
