/**
 * Active Directory membership of this node (native mode, docs/ad.md): join, leave, status, and the
 * domain principals of a share resolved through winbind. Everything that can be checked is checked
 * before anything changes (the DC answers, the clocks agree, the credentials work, the computer name
 * is free, the idmap ranges collide with nothing): a failed join leaves no machine account on the DC
 * and no change on the host. The join password is held in memory only and reaches net on its stdin.
 */
import { readFile, rm } from 'node:fs/promises';
import { GatewayError, invalid } from '../core/errors.ts';
import type { Step } from '../core/plan.ts';
import { isDomainPrincipal, principalDomain, type Share } from '../core/share.ts';
import { atomicWrite } from '../core/store.ts';
import { smbConfSteps } from '../samba/apply.ts';
import {
  adStatePath, Ads, IDMAP, MAX_SKEW, nsswitchHasWinbind, nsswitchWithWinbind, nsswitchWithoutWinbind, overlaps, parseSubIds, readAdState,
  type AdCredentials, type AdState, type Range, type Resolved,
} from '../samba/ads.ts';
import type { Gateway } from './context.ts';

export function adsOf(g: Gateway): Ads {
  return new Ads(g.run, g.settings, g.settings.winbindControl ?? 'systemd');
}

const nsswitchPath = (g: Gateway) => g.settings.nsswitchConf ?? '/etc/nsswitch.conf';

/** Shares on this node that rely on the domain (an ad_domain, or a DOMAIN\name in their lists). */
export function domainShares(shares: readonly Share[]): Share[] {
  return shares.filter((s) => s.mode === 'native' && (s.ad_domain || [...s.users, ...s.read_users, ...s.groups, ...s.read_groups].some(isDomainPrincipal)));
}

export interface JoinRequest { domain: string; cred: AdCredentials; dc?: string }

/** What the idmap ranges must not touch: local accounts, and the ids of unprivileged containers. */
export async function checkIdmap(g: Gateway, ranges: Range[]): Promise<void> {
  const accounts: Range = [g.settings.accountUidMin, g.settings.accountUidMax];
  for (const r of ranges) {
    if (overlaps(r, accounts)) throw new GatewayError('invalid', `idmap: winbind's range ${r[0]}-${r[1]} overlaps the local accounts' ${accounts[0]}-${accounts[1]} (account_uid_min/max)`, 'domain');
  }
  for (const file of ['/etc/subuid', '/etc/subgid']) {
    const text = await readFile(file, 'utf8').catch(() => '');
    for (const sub of parseSubIds(text)) {
      const hit = ranges.find((r) => overlaps(r, sub.range));
      if (hit) throw new GatewayError('invalid', `idmap: winbind's range ${hit[0]}-${hit[1]} overlaps ${sub.owner}'s container ids ${sub.range[0]}-${sub.range[1]} in ${file}: two principals would share a uid`, 'domain');
    }
  }
}

/**
 * The join, checked first: already joined, a DC answers for the realm (its NetBIOS domain comes from
 * the DC's CLDAP answer, not guessed), the clock offset, the idmap ranges, the credentials and
 * whether the computer name is taken. Then the steps: config, `net ads join`, nsswitch, winbindd.
 */
export async function planJoin(g: Gateway, req: JoinRequest, shares: () => readonly Share[]): Promise<{ steps: Step[]; state: AdState; checks: Record<string, unknown> }> {
  const ads = adsOf(g);
  const domain = req.domain.toLowerCase();
  const realm = domain.toUpperCase();
  const joined = await readAdState(g.settings.stateDir);
  if (joined) {
    if (joined.domain === domain) throw new GatewayError('exists', `domain: this node is already joined to ${joined.domain} (pve-smbgateway ad status)`, 'domain');
    throw invalid('domain', `this node is joined to ${joined.domain}: leave it first (pve-smbgateway ad leave)`);
  }
  const dcInfo = await ads.lookup(realm, req.dc);
  if (dcInfo.domain.toLowerCase() !== domain) throw invalid('domain', `the domain controller that answers (${dcInfo.dc}) is for ${dcInfo.domain}, not ${domain}`);
  const info = await ads.info(realm, req.dc);
  if (info.offset !== undefined && Math.abs(info.offset) > MAX_SKEW) {
    throw new GatewayError('failed', `domain: clock skew: this host's clock is ${Math.abs(info.offset)} s ${info.offset > 0 ? 'behind' : 'ahead of'} the domain controller's (${dcInfo.dc}); Kerberos allows ${MAX_SKEW} s: synchronise the time (e.g. chrony against the DC) and retry`, 'domain');
  }
  const idmap = IDMAP.native;
  await checkIdmap(g, [idmap.domain, idmap.other]);
  const netbios = (await g.samba.parameter('netbios name')).toUpperCase();
  if (!/^[A-Z0-9][A-Z0-9-]{0,14}$/.test(netbios)) throw new GatewayError('invalid', `netbios name: "${netbios}" (from ${g.settings.smbConf}) is not a valid computer name (1-15 letters, digits, -)`, 'netbios_name');
  if (await ads.computerExists(realm, dcInfo.workgroup, netbios, req.cred, req.dc)) {
    throw new GatewayError('exists', `netbios name: a computer account ${netbios}$ already exists in ${domain} (another machine may use this name): set another "netbios name" in ${g.settings.smbConf}, or delete the stale account on the DC (samba-tool computer delete ${netbios}) and retry`, 'netbios_name');
  }
  const state: AdState = {
    mode: 'native', domain, realm, workgroup: dcInfo.workgroup.toUpperCase(), netbios, idmap, nsswitch_added: false, joined_at: new Date().toISOString(),
    ...(req.dc ? { dc: req.dc } : {}),
  };
  let nsBefore: string | undefined;
  const steps: Step[] = [
    // security = ads, realm, workgroup and the idmap ranges in the managed [global]
    ...smbConfSteps(g.samba, shares, () => state),
    {
      name: 'ads-join',
      shows: `net ads join ${realm} as ${state.workgroup}\\${req.cred.user} (password on stdin), computer account ${netbios}$`,
      do: async () => { await ads.join(realm, state.workgroup, req.cred, req.dc); },
      // a later step failed: the computer account goes again
      undo: () => ads.leave(realm, state.workgroup, req.cred, req.dc),
    },
    {
      name: 'nsswitch-winbind',
      shows: `add winbind to passwd and group in ${nsswitchPath(g)} (if missing)`,
      do: async () => {
        nsBefore = await readFile(nsswitchPath(g), 'utf8');
        if (nsswitchHasWinbind(nsBefore)) { nsBefore = undefined; return; }
        await atomicWrite(nsswitchPath(g), nsswitchWithWinbind(nsBefore));
        state.nsswitch_added = true;
      },
      undo: async () => { if (nsBefore !== undefined) await atomicWrite(nsswitchPath(g), nsBefore); },
    },
    { name: 'start-winbind', shows: 'start winbindd and wait until it reaches the DC (wbinfo -P)', do: () => ads.startWinbind(), undo: () => ads.stopWinbind() },
    {
      name: 'save-ad-state',
      shows: `record the membership in ${adStatePath(g.settings.stateDir)}`,
      do: () => atomicWrite(adStatePath(g.settings.stateDir), JSON.stringify(state, null, 2) + '\n', 0o600),
      undo: () => rm(adStatePath(g.settings.stateDir), { force: true }),
    },
  ];
  return { steps, state, checks: { dc: dcInfo.dc, dc_address: dcInfo.dcAddress, workgroup: state.workgroup, clock_offset: info.offset ?? null } };
}

/**
 * Leave: refused while shares rely on the domain, unless forced. The keytab entries go first (put back
 * if the leave fails), then `net ads leave`: if it fails, nothing changed.
 */
export async function planLeave(g: Gateway, cred: AdCredentials, shares: readonly Share[], force: boolean): Promise<{ steps: Step[]; state: AdState }> {
  const ads = adsOf(g);
  const state = await readAdState(g.settings.stateDir);
  if (!state) throw new GatewayError('not_found', 'this node is not joined to a domain (by pve-smbgateway)');
  if (state.mode === 'ha') throw invalid('domain', `this node is joined to ${state.domain} as a member of the HA cluster ${state.netbios}: leave with pve-smbgateway ha ad leave`);
  const using = domainShares(shares);
  if (using.length && !force) {
    throw invalid('force', `shares still rely on ${state.domain}: ${using.map((s) => s.sharename).join(', ')} (their domain users would lose access): delete them first, or leave anyway with force`);
  }
  let nsBefore: string | undefined;
  const steps: Step[] = [
    // `net ads leave` deletes the account but leaves its keys in the system keytab
    { name: 'keytab-flush', shows: `net ads keytab flush (as ${state.netbios}$)`, do: () => ads.keytabFlush(), undo: () => ads.keytabCreate() },
    { name: 'ads-leave', shows: `net ads leave ${state.realm} as ${state.workgroup}\\${cred.user} (password on stdin): the DC deletes ${state.netbios}$`, do: () => ads.leave(state.realm, state.workgroup, cred, state.dc) },
    { name: 'stop-winbind', shows: 'stop winbindd', do: () => ads.stopWinbind() },
    {
      name: 'nsswitch-winbind',
      shows: state.nsswitch_added ? `remove winbind from ${nsswitchPath(g)} (the join added it)` : `${nsswitchPath(g)} unchanged (winbind was there before the join)`,
      do: async () => {
        if (!state.nsswitch_added) return;
        nsBefore = await readFile(nsswitchPath(g), 'utf8');
        await atomicWrite(nsswitchPath(g), nsswitchWithoutWinbind(nsBefore));
      },
      undo: async () => { if (nsBefore !== undefined) await atomicWrite(nsswitchPath(g), nsBefore); },
    },
    {
      name: 'remove-ad-state',
      shows: `remove ${adStatePath(g.settings.stateDir)}`,
      do: () => rm(adStatePath(g.settings.stateDir), { force: true }),
      undo: () => atomicWrite(adStatePath(g.settings.stateDir), JSON.stringify(state, null, 2) + '\n', 0o600),
    },
    ...smbConfSteps(g.samba, () => shares, () => undefined),
  ];
  return { steps, state };
}

export interface AdStatus {
  joined: boolean;
  domain?: string;
  realm?: string;
  workgroup?: string;
  netbios_name?: string;
  joined_at?: string;
  idmap?: { backend: string; domain: string; other: string };
  /** `net ads testjoin`: the machine account works. */
  machine_account_ok?: boolean;
  testjoin?: string;
  winbind_running?: boolean;
  /** winbind reaches a DC now (wbinfo -P). */
  dc_online?: boolean;
  domain_shares: string[];
}

export async function adStatus(g: Gateway, shares: readonly Share[]): Promise<AdStatus> {
  const state = await readAdState(g.settings.stateDir);
  const using = domainShares(shares).map((s) => s.sharename);
  if (!state) return { joined: false, domain_shares: using };
  const ads = adsOf(g);
  const running = await ads.winbindRunning();
  const online = running ? await ads.dcOnline() : undefined;
  // testjoin needs a DC: when winbind already knows none answers, it is not asked (it would wait ~45 s)
  const tj = online === false ? undefined : await ads.testJoin();
  return {
    joined: true, domain: state.domain, realm: state.realm, workgroup: state.workgroup, netbios_name: state.netbios, joined_at: state.joined_at,
    idmap: { backend: state.idmap.backend, domain: state.idmap.domain.join('-'), other: state.idmap.other.join('-') },
    ...(tj ? { machine_account_ok: tj.ok, testjoin: tj.output.split('\n').slice(-1)[0] ?? '' } : { testjoin: 'not checked: no domain controller answers' }),
    winbind_running: running, dc_online: online ?? false,
    domain_shares: using,
  };
}

/**
 * The domain principals of a share as winbind resolves them (name -> uid or gid), each in the joined
 * domain and of the right kind (users are users, groups are groups); a name the domain does not know
 * is refused naming its field.
 */
export async function resolvePrincipals(g: Gateway, share: Share, state: AdState): Promise<Map<string, number>> {
  return resolvePrincipalsWith(adsOf(g), share, state);
}

/** The same through any winbind (the host's, or an lxc share's container's). */
export async function resolvePrincipalsWith(ads: Ads, share: Share, state: Pick<AdState, 'workgroup' | 'domain'>): Promise<Map<string, number>> {
  const ids = new Map<string, number>();
  const lists = [['users', share.users, 'user'], ['read_users', share.read_users, 'user'], ['groups', share.groups, 'group'], ['read_groups', share.read_groups, 'group']] as const;
  if (!lists.some(([, l]) => l.some(isDomainPrincipal))) return ids;
  if (!(await ads.winbindRunning())) throw new GatewayError('unavailable', `winbindd is not running: domain principals cannot be resolved (start winbind; pve-smbgateway ad status)`);
  for (const [field, list, kind] of lists) {
    for (const name of list.filter(isDomainPrincipal)) {
      if (principalDomain(name) !== state.workgroup) throw invalid(field, `${name} is in domain ${principalDomain(name)}, but this node is joined to ${state.workgroup} (${state.domain})`);
      const r: Resolved | undefined = await ads.resolve(name);
      if (!r) throw invalid(field, `${name} does not resolve in ${state.domain} (winbind): no such ${kind} in the domain`);
      if (r.kind !== kind) throw invalid(field, `${name} is a ${r.kind} in ${state.domain}, not a ${kind}${kind === 'group' ? ' (users go in users/read_users)' : ' (groups go in groups/read_groups)'}`);
      ids.set(name, r.id);
    }
  }
  return ids;
}

/**
 * AD for a new native share: the node is joined to its ad_domain already (its principals are resolved
 * now, before anything changes), or the join runs first in the same plan (credentials needed), its
 * principals resolved right after it (a name that does not resolve undoes the join too).
 */
export async function planShareDomain(g: Gateway, req: Share, existing: readonly Share[], cred: AdCredentials | undefined): Promise<{ steps: Step[]; ids: () => ReadonlyMap<string, number> }> {
  const domain = req.ad_domain!.toLowerCase();
  const state = await readAdState(g.settings.stateDir);
  // an HA share is served by every node of the cluster: it needs the cluster's membership, not this node's own
  if (req.ha_enabled && state?.mode !== 'ha') throw invalid('ad_domain', `an HA share uses the CTDB cluster's domain membership: join the cluster first (pve-smbgateway ha ad join ${domain}; docs/ad.md)`);
  if (state) {
    if (state.domain !== domain) throw invalid('ad_domain', `this node is joined to ${state.domain}, not ${domain}`);
    const ids = await resolvePrincipals(g, req, state);
    return { steps: [], ids: () => ids };
  }
  if (!cred) throw invalid('ad_password', `this node is not joined to ${domain}: give the join credentials (ad_user, ad_password; on the command line --ad-user and --ad-password-file) or run pve-smbgateway ad join first`);
  const join = await planJoin(g, { domain, cred }, () => existing);
  let ids = new Map<string, number>();
  return {
    steps: [...join.steps, { name: 'resolve-domain-principals', shows: 'resolve the share\'s DOMAIN\\names through winbind', do: async () => { ids = await resolvePrincipals(g, req, join.state); } }],
    ids: () => ids,
  };
}
