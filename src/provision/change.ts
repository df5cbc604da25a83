/**
 * Changing an existing share (update, access, apply): one plan from the share as it is to the share as
 * it will be. Settings that live only in smb.conf are the config saved and smb.conf rendered again;
 * who has access adds the account and permission steps of access.ts around them (native mode), or the
 * steps inside the guest of access-guest.ts (lxc and vm: presets too, the guest's smb.conf).
 */
import { GatewayError, invalid } from '../core/errors.ts';
import type { Step } from '../core/plan.ts';
import { isDomainPrincipal, type Share } from '../core/share.ts';
import { servedHere, smbConfSteps } from '../samba/apply.ts';
import { planNativeAccess, principalDiff, type DomainIds } from './access.ts';
import { adsOf, resolvePrincipals } from './ad.ts';
import { readAdState } from '../samba/ads.ts';
import type { Gateway } from './context.ts';
import { guestCtx, nativeCtx } from './index.ts';
import { newAccountPasswords, type Passwords } from './native.ts';
import { planGuestAccess } from './access-guest.ts';
import { guestManagedConf } from './lxc.ts';

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
  // Guests keep their own accounts and smb.conf: who has access and the presets are changed inside them.
  if ((before.mode === 'lxc' || before.mode === 'vm') && (diff.changed || hasPasswords || guestManagedConf(before) !== guestManagedConf(next))) {
    if (o.adopt?.length) throw invalid('adopt', `${before.mode} shares have their own accounts inside the guest: there is nothing on the host to adopt`);
    if (hasPasswords && !diff.addedUsers.length) throw invalid('password', 'passwords are given only for users being added');
    if (o.recursive && !diff.changed) throw invalid('recursive', 'applies to a change of users or groups');
    const guest = await planGuestAccess(guestCtx(g), before, next, existing, newAccountPasswords(given, diff.addedUsers), { recursive: o.recursive });
    const after = existing.map((s) => (s === before ? guest.share : s));
    return { steps: [...guest.before, g.store.saveStep(() => after), ...guest.after], warnings: guest.warnings, after };
  }
  if (hasPasswords && !diff.addedUsers.length) throw invalid('password', 'passwords are given only for users being added; to change a user\'s password use `pve-smbgateway passwd`');
  if (o.adopt?.length && !diff.addedUsers.length) throw invalid('adopt', 'adopt names users being added to the share');
  if (o.recursive && !diff.changed) throw invalid('recursive', 'applies to a change of users or groups');
  const others = after.filter((s) => s !== next);
  const domain = (diff.changed || privateToggled) && [before, next].some(hasDomainPrincipals) ? await resolveDomainChange(g, before, next, others) : undefined;
  const access = diff.changed || privateToggled || hasPasswords
    ? await planNativeAccess(nativeCtx(g), before, next, others, given, o.adopt ?? [], { recursive: o.recursive, log: g.log, domain })
    : undefined;
  const steps: Step[] = [
    ...(access?.before ?? []),
    g.store.saveStep(() => after, access ? access.accounts : undefined),
    ...(servedHere([before]).length ? smbConfSteps(g.samba, () => after) : []),
    ...(access?.after ?? []),
  ];
  return { steps, warnings: access?.warnings ?? [], after };
}

const hasDomainPrincipals = (s: Share) => [...s.users, ...s.read_users, ...s.groups, ...s.read_groups].some(isDomainPrincipal);

/**
 * The winbind ids an access change of a domain share needs: the share's principals after it (each must
 * resolve in the joined domain, or the change is refused naming its field), the removed ones (their ACL
 * entries go; one the domain no longer knows has no id to remove) and other shares' (entries they grant stay).
 */
async function resolveDomainChange(g: Gateway, before: Share, next: Share, others: readonly Share[]): Promise<DomainIds> {
  const state = await readAdState(g.settings.stateDir);
  if (!state) throw new GatewayError('unavailable', `ad_domain: this node is not joined to ${next.ad_domain ?? 'a domain'}: domain principals cannot be resolved (pve-smbgateway ad join)`, 'ad_domain');
  if (next.ad_domain && state.domain !== next.ad_domain.toLowerCase()) throw invalid('ad_domain', `this node is joined to ${state.domain}, not ${next.ad_domain}`);
  const ids = await resolvePrincipals(g, next, state);
  const ads = adsOf(g);
  const diff = principalDiff(before, next);
  const removedUids: number[] = [];
  const removedGids: number[] = [];
  for (const n of [...diff.removedUsers, ...diff.removedGroups].filter(isDomainPrincipal)) {
    const r = await ads.resolve(n).catch(() => undefined);
    if (r) (r.kind === 'user' ? removedUids : removedGids).push(r.id);
  }
  const otherIds = new Map<string, number>();
  const nested = (a: string, b: string) => a === b || a.startsWith(b.endsWith('/') ? b : b + '/');
  for (const o of others.filter((x) => x.mode === 'native' && (nested(x.path, next.path) || nested(next.path, x.path)))) {
    for (const n of [...o.users, ...o.read_users, ...o.groups, ...o.read_groups].filter(isDomainPrincipal)) {
      if (otherIds.has(n)) continue;
      const r = await ads.resolve(n).catch(() => undefined);
      if (r) otherIds.set(n, r.id);
    }
  }
  return { ids, removedUids, removedGids, others: otherIds };
}
