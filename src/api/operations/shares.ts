/** Share operations: list, create, delete, status, migrate (declarations; what they do is in shares-handlers.ts). */
import { domainAccountProp } from '../../core/formats.ts';
import { GatewayError, invalid } from '../../core/errors.ts';
import { allOf, defineOperation } from '../../core/operation.ts';
import { type Schema } from '../../core/schema.ts';
import { accountRule, parsePasswords, passwordRule, shareSchema, shareUsers, type Share } from '../../core/share.ts';
import type { Gateway } from '../../provision/context.ts';
import { publicShare } from '../../provision/public.ts';
import { AUDIT, createPrivileges, deletePrivileges, readSharePrivileges, SYS_MODIFY } from '../privileges.ts';

/** What the operations do (shares-handlers.ts), imported when one of them runs. */
const handlers = () => import('./shares-handlers.ts');

const op = defineOperation<Gateway>();


/** What a new share must have, whether created or imported by migrate. */
export function checkNewShare(req: Share): void {
  // lxc: the container joins itself; vm: the VM joins through the guest agent after its first boot (docs/ad.md), not cloud-init.
  if (!req.guest_ok && shareUsers(req).length + req.groups.length + req.read_groups.length === 0) throw invalid('users', 'at least one user or group must have access (or enable guest_ok)');
}

export const nameParam = { sharename: shareSchema.sharename } satisfies Schema;

const { created: _c, ...userShareSchema } = shareSchema;

export function requireMode(g: Gateway, mode: string): void {
  if (mode === 'native') return;
  if (!g.settings.isPve) throw new GatewayError('unavailable', `mode: ${mode} mode is not available on this host: it needs a Proxmox VE node (no /etc/pve here); use --mode native`, 'mode');
}

export const listOp = op({
  command: ['list'],
  method: 'GET',
  path: '/nodes/{node}/smbgateway',
  description: 'List the SMB shares of the gateway.',
  parameters: {},
  returns: { description: 'The shares', schema: { type: 'array', items: { type: 'object', description: 'The share (as `show` returns it)' } } },
  privilege: AUDIT,
  handler: async (_p, g) => (await g.store.list()).map(publicShare),
});

export const createParams = {
  ...userShareSchema,
  password: { type: 'string', optional: true, keepSpace: true, check: passwordRule, description: 'Password of the share\'s users that get one from the gateway (8 to 256 characters; on the command line: --password-file)' },
  passwords: { type: 'json', optional: true, parse: parsePasswords, description: 'Per-user passwords, {"user": "password", ...} (on the command line: user:password lines in --password-file)' },
  adopt: { type: 'list', optional: true, default: [], item: accountRule, description: 'Existing local accounts (not made by the gateway) to give access as they are; their passwords are not changed (native mode)' },
  dry_run: { type: 'boolean', optional: true, default: false, description: 'Plan only: check everything and show each step it would take, change nothing' },
  ad_user: domainAccountProp('With ad_domain on a node not joined yet, or in lxc and vm mode: the domain account that joins it (docs/ad.md; default Administrator)'),
  ad_password: { type: 'string', optional: true, keepSpace: true, description: 'Its password (on the command line: --ad-password-file); used for the join only, never stored' },
} satisfies Schema;

export const createOp = op({
  command: ['create'],
  method: 'POST',
  path: '/nodes/{node}/smbgateway',
  description: 'Create an SMB share on a storage path.',
  parameters: createParams,
  positional: ['sharename'],
  aliases: { user: 'users', 'read-user': 'read_users', group: 'groups', 'read-group': 'read_groups', option: 'options', profile: 'security_profile', guest: 'guest_ok', preset: 'presets' },
  apiOnly: ['password', 'passwords', 'ad_password'],
  returns: { description: 'The share created, the steps applied and any warnings', schema: { type: 'object', properties: { share: { type: 'object', description: 'The share (as `show` returns it)' }, steps: { type: 'array', items: { type: 'string' } }, warnings: { type: 'array', items: { type: 'string' } } } } },
  privilege: createPrivileges,
  async: true,
  handler: async (p, g) => (await handlers()).create(p, g),
});

export const deleteParams = {
  ...nameParam,
  purge: { type: 'boolean', optional: true, default: false, description: 'Also destroy the dataset, subvolume or directory the gateway created (data is lost)' },
  dry_run: { type: 'boolean', optional: true, default: false, description: 'Plan only: check everything and show each step it would take, change nothing' },
  ad_user: domainAccountProp('lxc or vm share with ad_domain: the domain account that deletes its guest\'s computer account (docs/ad.md; default Administrator)'),
  ad_password: { type: 'string', optional: true, keepSpace: true, description: 'Its password (on the command line: --ad-password-file); used for the leave only, never stored' },
} satisfies Schema;

export const deleteOp = op({
  command: ['delete'],
  method: 'DELETE',
  path: '/nodes/{node}/smbgateway/{sharename}',
  description: 'Delete a share: clients are disconnected, the config and the accounts the gateway added are removed. Data stays unless purge is set.',
  parameters: deleteParams,
  positional: ['sharename'],
  apiOnly: ['ad_password'],
  returns: { description: 'The steps applied', schema: { type: 'object', properties: { sharename: { type: 'string' }, steps: { type: 'array', items: { type: 'string' } } } } },
  privilege: deletePrivileges,
  async: true,
  handler: async (p, g) => (await handlers()).remove(p, g),
});

export const statusOp = op({
  command: ['status'],
  method: 'GET',
  path: '/nodes/{node}/smbgateway/{sharename}/status',
  description: 'Whether smbd serves the share, its usage against the quota, and its sessions.',
  parameters: nameParam,
  positional: ['sharename'],
  returns: { description: 'Share status', schema: { type: 'object', properties: { share: { type: 'object', description: 'The share (as `show` returns it)' }, smbd_running: { type: 'boolean' }, in_config: { type: 'boolean' }, served: { type: 'boolean' }, probe: { type: 'string' }, usage: { type: 'object' }, sessions: { type: 'array', items: { type: 'object' } }, warnings: { type: 'array', items: { type: 'string' } }, ha: { type: 'object' }, backup: { type: 'object', description: 'Scheduled backups: schedule, retention, next_run, last_run, last_success' } } } },
  privilege: readSharePrivileges,
  handler: async (p, g) => (await handlers()).status(p, g),
});

export interface Imported { storage: string; sharename: string; mode: string; path: string; unmapped: Record<string, string> }

export const migrateParams = {
  dry_run: { type: 'boolean', optional: true, default: false, description: 'Report only, change nothing' },
} satisfies Schema;

export const migrateOp = op({
  command: ['migrate'],
  method: 'POST',
  path: '/nodes/{node}/smbgateway/migrate',
  description: 'Import the smbgateway entries of the cluster\'s storage.cfg (the older Perl plugin) into the gateway, each checked as create checks a new share.',
  parameters: migrateParams,
  returns: { description: 'What was imported, skipped or kept aside', schema: { type: 'object', properties: { source: { type: 'string' }, dry_run: { type: 'boolean' }, imported: { type: 'array', items: { type: 'object' } }, skipped: { type: 'array', items: { type: 'object' } } } } },
  // It adds many shares at once, wherever storage.cfg says.
  privilege: allOf({ path: '/storage', privs: ['Datastore.Allocate'] }, SYS_MODIFY),
  handler: async (p, g) => (await handlers()).migrate(p, g),
});

export const shareOperations = [listOp, createOp, deleteOp, statusOp, migrateOp];
