/** One entry point per operation, dispatching on the share's mode (native, lxc, vm). */
import type { Gateway } from './context.ts';
import { isDomainPrincipal, shareUsers } from '../core/share.ts';
import type { Step } from '../core/plan.ts';
import type { Share } from '../core/share.ts';
import { pveApi } from '../pve/connect.ts';
import { type GuestCtx } from './guest.ts';
import { planLxcCreate, planLxcDelete } from './lxc.ts';
import { newAccountPasswords, planNativeCreate, planNativeDelete, type CreatePlan, type NativeCtx, type Passwords } from './native.ts';
import { invalid } from '../core/errors.ts';
import { Ceph, cephTarget } from '../core/ceph.ts';
import { planVmCreate, planVmDelete } from './vm.ts';
import { planShareDomain } from './ad.ts';
import type { AdCredentials } from '../samba/ads.ts';

export function guestCtx(g: Gateway): GuestCtx {
  return { settings: g.settings, run: g.run, store: g.store, api: pveApi(g.settings, g.run), log: g.log };
}

function guestPasswords(p: Passwords, users: readonly string[]): Map<string, string> {
  for (const u of p.explicit.keys()) if (!users.includes(u)) throw invalid('passwords', `names user ${u}, who is not given access to this share`);
  return newAccountPasswords(p, users);
}

export function nativeCtx(g: Gateway): NativeCtx {
  return { ...g, allowedRoots: g.settings.allowedRoots, uidMin: g.settings.accountUidMin, uidMax: g.settings.accountUidMax, ceph: new Ceph(g.run, cephTarget(g.settings)) };
}

export async function planCreate(g: Gateway, req: Share, existing: readonly Share[], passwords: Passwords, adopt: readonly string[] = [], adCred?: AdCredentials): Promise<CreatePlan> {
  if (req.mode !== 'native' && adopt.length) throw invalid('adopt', `${req.mode} shares have their own accounts inside the guest: there is nothing on the host to adopt`);
  // Guests keep their own accounts: every user is new there.
  // lxc with ad_domain: its container joins the domain itself (provision/lxc-ad.ts); domain principals get no password.
  if (req.mode === 'lxc') return planLxcCreate(guestCtx(g), req, existing, guestPasswords(passwords, shareUsers(req).filter((u) => !isDomainPrincipal(u))), adCred);
  if (req.mode === 'vm') return planVmCreate(guestCtx(g), req, existing, guestPasswords(passwords, shareUsers(req).filter((u) => !isDomainPrincipal(u))), adCred);
  if (!req.ad_domain) return planNativeCreate(nativeCtx(g), req, existing, passwords, adopt);
  // A domain share: the node joins first if it is not joined yet; its DOMAIN\\names resolve through winbind.
  const ad = await planShareDomain(g, req, existing, adCred);
  const plan = await planNativeCreate(nativeCtx(g), req, existing, passwords, adopt, ad.ids);
  return { ...plan, steps: [...ad.steps, ...plan.steps] };
}

export async function planDelete(g: Gateway, share: Share, existing: readonly Share[], opts: { purge: boolean; adCred?: AdCredentials }): Promise<Step[]> {
  if (share.mode === 'lxc') return planLxcDelete(guestCtx(g), share, existing, opts);
  if (share.mode === 'vm') return planVmDelete(guestCtx(g), share, existing, opts);
  if (opts.adCred) throw invalid('ad_password', 'is only used to delete an lxc or vm share with ad_domain (its guest leaves the domain)');
  return planNativeDelete(nativeCtx(g), share, existing, opts);
}

