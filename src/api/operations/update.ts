/**
 * Reading one share's configuration, and changing the settings that need no new accounts or
 * storage: smb.conf is rendered again through the same plan (testparm check, atomic swap, reload,
 * rollback on failure) as create and delete.
 */
import { GatewayError, invalid } from '../../core/errors.ts';
import type { Operation } from '../../core/operation.ts';
import { applyPlan, failAtFromEnv } from '../../core/plan.ts';
import { validate, type Schema } from '../../core/schema.ts';
import { checkShare, shareSchema, type Share } from '../../core/share.ts';
import { requireShare } from '../../core/store.ts';
import { servedHere, smbConfSteps } from '../../samba/apply.ts';
import type { Gateway } from '../context.ts';
import { publicShare } from './shares.ts';

const AUDIT = { path: '/storage', privs: ['Datastore.Audit', 'Datastore.Allocate'] };
const ALLOCATE = { path: '/storage', privs: ['Datastore.Allocate'] };

const nameParam = { sharename: shareSchema.sharename } satisfies Schema;

export const showOp: Operation<Gateway> = {
  command: ['show'],
  method: 'GET',
  path: '/nodes/{node}/smbgateway/{sharename}',
  description: 'The configuration of one share.',
  parameters: nameParam,
  positional: ['sharename'],
  returns: { description: 'The share', schema: { type: 'object' } },
  privilege: AUDIT,
  handler: async (p, g) => {
    const { sharename } = validate(nameParam, p);
    return publicShare(await g.store.require(sharename));
  },
  format: (r) => Object.entries(r as Record<string, unknown>).map(([k, v]) => `${k.padEnd(20)} ${Array.isArray(v) ? v.join(',') : String(v)}`).join('\n'),
};

/** Settings an update may change. */
const UPDATABLE = ['comment', 'read_only', 'guest_ok', 'security_profile', 'options', 'monitoring_enabled', 'backup_enabled'] as const;
/** Settings `delete` may reset to their default (Proxmox's convention). */
const DELETABLE = ['comment', 'options'];

const updateParams = {
  ...nameParam,
  ...Object.fromEntries(UPDATABLE.map((k) => [k, { ...shareSchema[k], optional: true, default: undefined }])),
  delete: { type: 'list', optional: true, description: `Settings to reset (${DELETABLE.join(', ')})`, item: (v: string) => (DELETABLE.includes(v) ? undefined : `must be one of ${DELETABLE.join(', ')}`) },
  digest: { type: 'string', optional: true, maxLength: 64, description: 'Reserved (Proxmox-style config digest); ignored' },
} as Schema;

export const updateOp: Operation<Gateway> = {
  command: ['update'],
  method: 'PUT',
  path: '/nodes/{node}/smbgateway/{sharename}',
  description: 'Change settings of a share (comment, read_only, guest_ok, security_profile, options, monitoring, backup).',
  parameters: updateParams,
  positional: ['sharename'],
  aliases: { option: 'options', profile: 'security_profile', guest: 'guest_ok' },
  returns: { description: 'The share after the change and the steps applied' },
  privilege: ALLOCATE,
  async: true,
  handler: async (p, g) => {
    const v = validate(updateParams, p, { defaults: false }) as Record<string, unknown> & { sharename: string; delete?: string[] };
    const changes: Record<string, unknown> = {};
    for (const k of UPDATABLE) if (v[k] !== undefined) changes[k] = v[k];
    for (const k of v.delete ?? []) {
      if (k in changes) throw invalid('delete', `${k} is both set and deleted`);
      changes[k] = k === 'options' ? [] : undefined;
    }
    if (!Object.keys(changes).length) throw invalid('sharename', 'nothing to change: give at least one setting');
    return g.store.locked(async () => {
      const existing = await g.store.list();
      const share = requireShare(existing, v.sharename);
      const merged: Record<string, unknown> = { ...share, ...changes };
      for (const k of Object.keys(merged)) if (merged[k] === undefined) delete merged[k];
      const next: Share = checkShare(merged as Share);
      const smbKeys = Object.keys(changes).filter((k) => !['monitoring_enabled', 'backup_enabled'].includes(k));
      if (!servedHere([share]).length && smbKeys.length) {
        throw new GatewayError('unavailable', `${smbKeys[0]}: changing the Samba settings of a ${share.mode} share is not supported yet (its config lives in the guest); delete and create it again`, smbKeys[0]);
      }
      const after = existing.map((s) => (s === share ? next : s));
      const steps = await applyPlan([
        g.store.saveStep(() => after),
        ...(servedHere([share]).length ? smbConfSteps(g.samba, () => after) : []),
      ], { failAt: failAtFromEnv(), log: g.log, journal: g.store.journalFor('update', share.sharename) });
      return { share: publicShare(next), steps };
    });
  },
  format: (r) => `updated share ${(r as { share: Share }).share.sharename}`,
};
