/** The audit preset's events of a share: who created, renamed, deleted or wrote what, from where. */
import { GatewayError, invalid } from '../../core/errors.ts';
import { defineOperation } from '../../core/operation.ts';
import { accountRule, shareSchema } from '../../core/share.ts';
import { readAuditLog } from '../../monitor/audit.ts';
import { fullAuditLogged, logSourcesFrom } from '../../monitor/logs.ts';
import { globalParam } from '../../monitor/collector.ts';
import type { Gateway } from '../../provision/context.ts';
import { readSharePrivileges } from '../privileges.ts';

const op = defineOperation<Gateway>();

/** ISO-8601 or epoch seconds. */
function parseSince(v: string): number | undefined {
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : t;
}

export const auditOp = op({
  command: ['audit'],
  method: 'GET',
  path: '/nodes/{node}/smbgateway/{sharename}/audit',
  description: 'Audit events of a share with the audit preset: files and directories created, renamed, deleted and written, with user and client address (from smbd\'s log, as far back as it reaches).',
  parameters: {
    sharename: shareSchema.sharename,
    since: { type: 'string', optional: true, check: (v: string) => (parseSince(v) === undefined ? 'must be an ISO-8601 time or epoch seconds' : undefined), description: 'Only events at or after this time (ISO-8601 or epoch seconds)' },
    user: { type: 'string', optional: true, check: accountRule, description: 'Only events of this user' },
  },
  positional: ['sharename'],
  returns: { description: 'Events, oldest first', schema: { type: 'array', items: { type: 'object', properties: { time: { type: 'string' }, user: { type: 'string' }, client: { type: 'string' }, action: { type: 'string' }, path: { type: 'string' }, to: { type: 'string' } } } } },
  privilege: readSharePrivileges,
  handler: async (p, g) => {
    const share = await g.store.require(p.sharename);
    if (!share.presets.includes('audit')) throw invalid('sharename', `share ${share.sharename} has no audit preset (add it: update ${share.sharename} --preset audit)`);
    // `log level` as written (testparm shows only its global level): a full_audit class file is read too.
    const logFile = await g.samba.parameter('log file');
    const level = globalParam(g.settings.smbConf, 'log level');
    if (!fullAuditLogged(logFile, level)) throw new GatewayError('unavailable', `smbd keeps no audit records: its log level "${level || '0'}" drops full_audit's lines; add full_audit:1@/var/log/samba/tcon.log to log level in [global] of ${g.settings.smbConf} (pve-smbgateway doctor shows the line)`);
    const sources = logSourcesFrom(logFile, level);
    const rel = (x: string) => (x === share.path ? '/' : x.startsWith(share.path + '/') ? x.slice(share.path.length) : x);
    return readAuditLog(sources, { share: share.sharename, user: p.user, since: p.since === undefined ? undefined : parseSince(p.since) })
      .map((e) => ({ time: new Date(e.time).toISOString(), user: e.user, client: e.client, action: e.action, path: rel(e.path), ...(e.to ? { to: rel(e.to) } : {}) }));
  },
});
