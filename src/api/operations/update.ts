/**
 * Reading one share's configuration, and changing the settings that need no new accounts or
 * storage: smb.conf is rendered again through the same plan (testparm check, atomic swap, reload,
 * rollback on failure) as create and delete.
 */
import { GatewayError, invalid } from '../../core/errors.ts';
import { defineOperation } from '../../core/operation.ts';
import { applyPlan, describePlan, failAtFromEnv } from '../../core/plan.ts';
import { optionalNoDefault, type Schema } from '../../core/schema.ts';
import { checkShare, MODE_OPTIONS, shareSchema, type Share } from '../../core/share.ts';
import { requireShare } from '../../core/store.ts';
import { planShareChange } from '../../provision/change.ts';
import { resourcesDocument, showAllParams } from './apply.ts';
import { ACCESS_ALIASES, ACCESS_FIELDS, accessUpdateParams, changeOptions, PRESET_FIELDS } from './access.ts';
import type { Gateway } from '../../provision/context.ts';
import { accessPrivileges, readSharePrivileges } from '../privileges.ts';
import { publicShare } from '../../provision/status.ts';

const op = defineOperation<Gateway>();

const nameParam = { sharename: shareSchema.sharename } satisfies Schema;

export const showOp = op({
  command: ['show'],
  method: 'GET',
  path: '/nodes/{node}/smbgateway/{sharename}',
  description: 'The configuration of one share, with the digest of the whole configuration (give it to update to refuse a change on top of another).',
  parameters: { sharename: { ...shareSchema.sharename, optional: true }, ...showAllParams },
  positional: ['sharename'],
  returns: { description: 'The share and digest', schema: { type: 'object' } },
  privilege: readSharePrivileges,
  handler: async (p, g) => {
    if (p.all) return resourcesDocument(g, p.format as 'json' | 'yaml');
    if (p.sharename === undefined) throw invalid('sharename', 'missing: name a share, or give --all');
    const digest = await g.store.digest();
    return { ...publicShare(await g.store.require(p.sharename)), digest };
  },
});

/** Settings an update may change. */
const UPDATABLE = ['comment', 'read_only', 'guest_ok', 'security_profile', 'options', 'monitoring_enabled', 'backup_enabled', 'backup_schedule', 'backup_prune', 'backup_storage', ...ACCESS_FIELDS, ...PRESET_FIELDS] as const;
/** Settings `delete` may reset to their default (Proxmox's convention). */
const DELETABLE = ['comment', 'options', 'backup_schedule', 'backup_prune', 'backup_storage', 'presets', 'timemachine_max_size', 'recycle_keep_days'];
const LIST_DEFAULTS = ['options', 'presets'];

const updateParams = {
  ...nameParam,
  comment: optionalNoDefault(shareSchema.comment),
  read_only: optionalNoDefault(shareSchema.read_only),
  guest_ok: optionalNoDefault(shareSchema.guest_ok),
  security_profile: optionalNoDefault(shareSchema.security_profile),
  options: optionalNoDefault(shareSchema.options),
  monitoring_enabled: optionalNoDefault(shareSchema.monitoring_enabled),
  backup_enabled: optionalNoDefault(shareSchema.backup_enabled),
  backup_schedule: shareSchema.backup_schedule,
  backup_prune: shareSchema.backup_prune,
  backup_storage: shareSchema.backup_storage,
  ...accessUpdateParams,
  delete: { type: 'list', optional: true, description: `Settings to reset (${DELETABLE.join(', ')})`, item: (v: string) => (DELETABLE.includes(v) ? undefined : `must be one of ${DELETABLE.join(', ')}`) },
    dry_run: { type: 'boolean', optional: true, default: false, description: 'Plan only: check everything and show each step it would take, change nothing' },
  digest: { type: 'string', optional: true, pattern: /^[0-9a-f]{40}$/, patternText: 'must be the digest `show` returned (40 hex digits)', description: 'Refuse the change if the configuration changed since `show` returned this digest (Proxmox\'s convention)' },
} as const satisfies Schema;

export const updateOp = op({
  command: ['update'],
  method: 'PUT',
  path: '/nodes/{node}/smbgateway/{sharename}',
  description: 'Change settings of a share (comment, read_only, guest_ok, security_profile, options, monitoring, backup and its schedule and retention, presets, and who has access: users, read_users, groups, read_groups).',
  parameters: updateParams,
  positional: ['sharename'],
  aliases: { option: 'options', profile: 'security_profile', guest: 'guest_ok', ...ACCESS_ALIASES },
  apiOnly: ['password', 'passwords'],
  returns: { description: 'The share after the change and the steps applied', schema: { type: 'object', properties: { share: { type: 'object', description: 'The share (as `show` returns it)' }, steps: { type: 'array', items: { type: 'string' } } } } },
  privilege: accessPrivileges,
  async: true,
  handler: async (p, g) => {
    const v = p;
    const changes: Record<string, unknown> = {};
    for (const k of UPDATABLE) if (v[k] !== undefined) changes[k] = v[k];
    for (const k of v.delete ?? []) {
      if (k in changes) throw invalid('delete', `${k} is both set and deleted`);
      changes[k] = LIST_DEFAULTS.includes(k) ? [] : undefined;
    }
    if (!Object.keys(changes).length) throw invalid('sharename', 'nothing to change: give at least one setting');
    return g.store.locked(async () => {
      if (v.digest !== undefined && v.digest !== await g.store.digest()) throw invalid('digest', 'the configuration was changed since it was read: show the share again and retry');
      const existing = await g.store.list();
      const share = requireShare(existing, v.sharename);
      const merged: Record<string, unknown> = { ...share, ...changes };
      for (const k of Object.keys(merged)) if (merged[k] === undefined) delete merged[k];
      const next: Share = checkShare(merged as Share);
      const fixed = Object.keys(changes).find((k) => !MODE_OPTIONS[share.mode as keyof typeof MODE_OPTIONS].updatable.includes(k as never));
      if (fixed) {
        throw new GatewayError('unavailable', `${fixed}: cannot be changed on ${share.mode === 'lxc' ? 'an' : 'a'} ${share.mode} share${share.mode !== 'native' ? ' yet (its Samba config lives in the guest)' : ''}; delete and create it again`, fixed);
      }
      const { steps: plan, warnings } = await planShareChange(g, share, next, existing, changeOptions(v));
      if (v.dry_run) return { dry_run: true, share: publicShare(next), plan: describePlan(plan), warnings };
      const steps = await applyPlan(plan, { failAt: failAtFromEnv(), log: g.log, journal: g.store.journalFor('update', share.sharename) });
      return { share: publicShare(next), steps, warnings };
    });
  },
});
