/**
 * Changing an existing share (update, access, apply): one plan from the share as it is to the share as
 * it will be. Settings that live only in smb.conf are the config saved and smb.conf rendered again;
 * who has access (native mode) adds the account and permission steps of access.ts around them.
 */
import { GatewayError, invalid } from '../core/errors.ts';
import type { Step } from '../core/plan.ts';
import type { Share } from '../core/share.ts';
import { servedHere, smbConfSteps } from '../samba/apply.ts';
import { planNativeAccess, principalDiff } from './access.ts';
import type { Gateway } from './context.ts';
import { nativeCtx } from './index.ts';
import type { Passwords } from './native.ts';

export interface ChangeOptions {
  /** Passwords of users being added (new accounts, or the gateway's own set again). */
  passwords?: Passwords;
  adopt?: readonly string[];
  /** Grant new entries on existing files below the root too. */
  recursive?: boolean;
}

export async function planShareChange(g: Gateway, before: Share, next: Share, existing: readonly Share[], o: ChangeOptions = {}): Promise<{ steps: Step[]; warnings: string[]; after: Share[] }> {
  const after = existing.map((s) => (s === before ? next : s));
  const diff = principalDiff(before, next);
  const privateToggled = before.presets.includes('private') !== next.presets.includes('private');
  const given: Passwords = o.passwords ?? { explicit: new Map() };
  const hasPasswords = given.blanket !== undefined || given.explicit.size > 0;
  if (before.mode !== 'native' && (diff.changed || hasPasswords)) {
    // The guest keeps its own accounts and smb.conf: refused, not half-done.
    throw new GatewayError('unavailable', `users: who has access to ${before.mode === 'lxc' ? 'an lxc' : 'a vm'} share cannot be changed yet (its accounts and smb.conf live in the guest); delete and create it again`, 'users');
  }
  if (hasPasswords && !diff.addedUsers.length) throw invalid('password', 'passwords are given only for users being added; to change a user\'s password use `pve-smbgateway passwd`');
  if (o.adopt?.length && !diff.addedUsers.length) throw invalid('adopt', 'adopt names users being added to the share');
  if (o.recursive && !diff.changed) throw invalid('recursive', 'applies to a change of users or groups');
  const others = after.filter((s) => s !== next);
  const access = diff.changed || privateToggled || hasPasswords
    ? await planNativeAccess(nativeCtx(g), before, next, others, given, o.adopt ?? [], { recursive: o.recursive, log: g.log })
    : undefined;
  const steps: Step[] = [
    ...(access?.before ?? []),
    g.store.saveStep(() => after, access ? access.accounts : undefined),
    ...(servedHere([before]).length ? smbConfSteps(g.samba, () => after) : []),
    ...(access?.after ?? []),
  ];
  return { steps, warnings: access?.warnings ?? [], after };
}
