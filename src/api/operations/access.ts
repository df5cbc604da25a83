/**
 * Day two on a share: who has access (`access`: add and remove users and groups; `update` takes the
 * whole lists), and a user's password (`passwd`). Both run as plans with rollback (provision/access.ts).
 */
import { GatewayError, invalid } from '../../core/errors.ts';
import { defineOperation } from '../../core/operation.ts';
import { applyPlan, describePlan, failAtFromEnv } from '../../core/plan.ts';
import { optionalNoDefault, type Schema } from '../../core/schema.ts';
import { accountRule, checkShare, parsePasswords, passwordRule, principalRule, shareSchema, shareUsers, type Share } from '../../core/share.ts';
import { requireShare } from '../../core/store.ts';
import { editAccess, passwdSteps, type AccessEdits } from '../../provision/access.ts';
import { planShareChange, type ChangeOptions } from '../../provision/change.ts';
import { guestPasswdSteps } from '../../provision/access-guest.ts';
import { guestCtx } from '../../provision/index.ts';
import type { Gateway } from '../../provision/context.ts';
import { publicShare } from '../../provision/status.ts';
import { accessPrivileges } from '../privileges.ts';

const op = defineOperation<Gateway>();

export const ACCESS_FIELDS = ['users', 'read_users', 'groups', 'read_groups'] as const;
export const PRESET_FIELDS = ['presets', 'timemachine_max_size', 'recycle_keep_days'] as const;
export const ACCESS_ALIASES = { user: 'users', 'read-user': 'read_users', group: 'groups', 'read-group': 'read_groups', preset: 'presets' };

/** Parameters of a change that may add users: their passwords, adoption, and the recursive grant. */
const changeParams = {
  password: { type: 'string', optional: true, keepSpace: true, check: passwordRule, description: 'Password of the users being added that get one from the gateway (on the command line: --password-file)' },
  passwords: { type: 'json', optional: true, parse: parsePasswords, description: 'Per-user passwords of users being added, {"user": "password"} (on the command line: user:password lines in --password-file)' },
  adopt: { type: 'list', optional: true, default: [], item: accountRule, description: 'Existing local accounts (not made by the gateway) being added as they are' },
  recursive: { type: 'boolean', optional: true, default: false, description: 'Also grant the new entries on the files and directories already below the share root (removed users\' entries always go from the whole tree)' },
} as const satisfies Schema;

export const accessUpdateParams = {
  users: optionalNoDefault(shareSchema.users),
  read_users: optionalNoDefault(shareSchema.read_users),
  groups: optionalNoDefault(shareSchema.groups),
  read_groups: optionalNoDefault(shareSchema.read_groups),
  presets: optionalNoDefault(shareSchema.presets),
  timemachine_max_size: shareSchema.timemachine_max_size,
  recycle_keep_days: shareSchema.recycle_keep_days,
  ...changeParams,
} as const satisfies Schema;

export function changeOptions(p: { password?: string; passwords?: Record<string, string>; adopt?: string[]; recursive?: boolean }): ChangeOptions {
  if (p.password !== undefined && p.passwords !== undefined) throw invalid('passwords', 'give either password (one for all) or passwords (per user), not both');
  return { passwords: { explicit: new Map(Object.entries(p.passwords ?? {})), blanket: p.password }, adopt: p.adopt ?? [], recursive: p.recursive ?? false };
}

// Local names, or DOMAIN\\name on a share with ad_domain (resolved through winbind when the change is planned).
const listParam = (what: string) => ({ type: 'list' as const, optional: true as const, default: [] as string[], item: principalRule, description: what });

export const accessOp = op({
  command: ['access'],
  method: 'PUT',
  path: '/nodes/{node}/smbgateway/{sharename}/access',
  description: 'Give or take access to a share: add or remove users, read users, groups and read groups. New accounts are made, accounts no share uses any more removed, the share root\'s ACL updated, and the connections of removed users closed.',
  parameters: {
    sharename: shareSchema.sharename,
    add_users: listParam('Users to give read and write access (a read user moves to write)'),
    remove_users: listParam('Users with read and write access to remove'),
    add_read_users: listParam('Users to give read-only access (a writer moves to read-only)'),
    remove_read_users: listParam('Read-only users to remove'),
    add_groups: listParam('Groups to give read and write access'),
    remove_groups: listParam('Groups with read and write access to remove'),
    add_read_groups: listParam('Groups to give read-only access'),
    remove_read_groups: listParam('Read-only groups to remove'),
    ...changeParams,
    dry_run: { type: 'boolean', optional: true, default: false, description: 'Plan only: check everything and show each step it would take, change nothing' },
  },
  positional: ['sharename'],
  aliases: {
    'add-user': 'add_users', 'remove-user': 'remove_users', 'add-read-user': 'add_read_users', 'remove-read-user': 'remove_read_users',
    'add-group': 'add_groups', 'remove-group': 'remove_groups', 'add-read-group': 'add_read_groups', 'remove-read-group': 'remove_read_groups',
  },
  apiOnly: ['password', 'passwords'],
  returns: { description: 'The share after the change, the steps applied and any warnings', schema: { type: 'object', properties: { share: { type: 'object' }, steps: { type: 'array', items: { type: 'string' } }, warnings: { type: 'array', items: { type: 'string' } } } } },
  privilege: accessPrivileges,
  async: true,
  handler: async (p, g) => {
    const edits: AccessEdits = p;
    if (!Object.values(edits).some((v) => Array.isArray(v) && v.length)) throw invalid('add_users', 'nothing to change: give at least one user or group to add or remove');
    const opts = changeOptions(p);
    return g.store.locked(async () => {
      const existing = await g.store.list();
      const share = requireShare(existing, p.sharename);
      const lists = editAccess(share, edits);
      const next: Share = checkShare({ ...share, ...lists });
      if (!next.guest_ok && shareUsers(next).length + next.groups.length + next.read_groups.length === 0) throw invalid('remove_users', 'the share would have nobody left with access: remove the share instead, or give someone else access');
      const { steps: plan, warnings, after } = await planShareChange(g, share, next, existing, opts);
      // The share as saved (a guest share's new users have their uids in the guest).
      const saved = after.find((s) => s.sharename === share.sharename) ?? next;
      if (p.dry_run) return { dry_run: true, share: publicShare(saved), plan: describePlan(plan), warnings };
      const steps = await applyPlan(plan, { failAt: failAtFromEnv(), log: g.log, journal: g.store.journalFor('access', share.sharename) });
      return { share: publicShare(saved), steps, warnings };
    });
  },
});

export const passwdOp = op({
  command: ['passwd'],
  method: 'PUT',
  path: '/nodes/{node}/smbgateway/users/{user}/password',
  description: 'Set the SMB password of a user the gateway made, on the host and in the guest of each lxc/vm share the user has; the password is read from --password-file (- for stdin), never the command line.',
  parameters: {
    user: { type: 'string', check: accountRule, description: 'The user' },
    password: { type: 'string', keepSpace: true, check: passwordRule, description: 'The new password (on the command line: --password-file, - for stdin)' },
  },
  positional: ['user'],
  apiOnly: ['password'],
  returns: { description: 'The user, the shares it has access to and the steps applied', schema: { type: 'object', properties: { user: { type: 'string' }, shares: { type: 'array', items: { type: 'string' } }, steps: { type: 'array', items: { type: 'string' } } } } },
  privilege: { path: '/storage', privs: ['Datastore.Allocate'] },
  async: true,
  handler: async (p, g) => g.store.locked(async () => {
    const shares = await g.store.list();
    const using = shares.filter((s) => shareUsers(s).includes(p.user));
    if (!using.length) throw new GatewayError('not_found', `user ${p.user} has access to no share`, 'user');
    // Guest shares keep the user's account inside their guest: set there too (lxc: pct exec, vm: guest agent).
    const guests = using.filter((s) => s.mode !== 'native');
    const native = using.length > guests.length;
    if (native) {
      const own = (await g.store.accounts()).find((a) => a.name === p.user && a.samba);
      if (!own) throw invalid('user', `${p.user} is an account pve-smbgateway did not create (adopted): it does not change its password; use smbpasswd`);
      if (!(await g.samba.userExists(p.user))) throw new GatewayError('failed', `user: ${p.user} has no Samba account (made by the gateway, but gone): run \`pve-smbgateway repair\` or give it access again`, 'user');
    }
    const names = using.map((s) => s.sharename);
    const [setHost, storeAll] = passwdSteps(g, p.user, p.password, names);
    const inGuests = guests.length ? await guestPasswdSteps(guestCtx(g), p.user, p.password, guests) : [];
    const steps = await applyPlan([...(native ? [setHost!] : []), ...inGuests, storeAll!], { failAt: failAtFromEnv(), log: g.log, journal: g.store.journalFor('passwd') });
    return { user: p.user, shares: names, steps };
  }),
});

export const accessOperations = [accessOp, passwdOp];
