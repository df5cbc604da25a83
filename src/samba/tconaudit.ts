/**
 * Tree connect events for the metrics collector (src/monitor/tcon.ts): on a native share with
 * monitoring, Samba's full_audit VFS module logs each successful tree connect with the pid of the
 * smbd child serving it, and nothing else (no other operation, no failures; not to syslog but into
 * smbd's debug class `full_audit` at level 1, see docs/monitoring.md). The cost is one log line per
 * tree connect; every other VFS call passes through the module with a bitmap test.
 */
import type { Share } from '../core/share.ts';
import type { Params } from './profiles.ts';

export const TCON_PREFIX = 'smbgw-tcon';

/** `params` (the share's other VFS parameters) with the tree connect audit added, when the share is monitored. */
export function withTconAudit(s: Share, params: Params): Params {
  if (!s.monitoring_enabled || s.mode !== 'native') return params;
  // The audit preset's full_audit records connects with the pid as well (samba/presets.ts): one setup per share.
  if (s.presets.includes('audit')) return params;
  const vfs = params.find(([k]) => k === 'vfs objects');
  const rest = params.filter(([k]) => k !== 'vfs objects');
  return [
    ['vfs objects', vfs ? `${vfs[1]} full_audit` : 'full_audit'],
    ...rest,
    ['full_audit:syslog', 'no'],
    ['full_audit:prefix', `${TCON_PREFIX}|%d`],
    ['full_audit:success', 'connect'],
    ['full_audit:failure', 'none'],
  ];
}
