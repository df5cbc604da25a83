/**
 * Active Directory for lxc shares (docs/ad.md): the share's container joins the domain with its own
 * machine account, the same `Ads` adapter run inside it through `pct exec` (the join password on
 * net's stdin, through pct's stdin: never in argv, the environment or a log). Its idmap (`rid`,
 * IDMAP.lxc) lies inside the unprivileged container's 65536 ids: a domain user's files on the
 * bind-mounted data belong, on the host, to 100000 + 10000 + RID. The host itself does not join.
 *
 * The checks a native join makes before anything changes (a DC answers, the clocks agree, the
 * credentials work, the computer name is free) run inside the new container, before its join: the
 * container is what reaches the domain (its own DNS, `nameserver`). A failure there rolls the whole
 * create back, container included, and leaves no computer account on the DC.
 */
import { createHash } from 'node:crypto';
import { GatewayError, invalid } from '../core/errors.ts';
import type { Runner } from '../core/exec.ts';
import type { Step } from '../core/plan.ts';
import { isDomainPrincipal, principalDomain, type Share } from '../core/share.ts';
import { Ads, IDMAP, MAX_SKEW, nsswitchHasWinbind, nsswitchWithWinbind, type AdConf, type AdCredentials, type Idmap } from '../samba/ads.ts';
import type { GuestShell } from './guest-exec.ts';
import { resolvePrincipalsWith } from './ad.ts';
import { LXC_ID_SHIFT, parseGuestUids, pctExec, pctPush, type GuestCtx, type MutableShare } from './guest.ts';
import { aclSpec } from './permissions.ts';
import { guestHostname } from './lxc.ts';

/** A runner whose commands run inside CT `vmid` (`pct exec`; stdin passes through to the command). */
export function ctRunner(run: Runner, vmid: () => number): Runner {
  return (tool, args, opts = {}) => run('pct', ['exec', String(vmid()), '--', tool, ...args], opts);
}

/** The Ads adapter inside a share's container (its smb.conf, winbind under its systemd, checks in its /tmp). */
export function ctAds(run: Runner, vmid: () => number): Ads {
  return new Ads(ctRunner(run, vmid), { smbConf: '/etc/samba/smb.conf' }, 'systemd', 'runner');
}

/**
 * A runner over a guest shell (vm shares: the QEMU guest agent; docs/ad.md): the Ads adapter inside
 * the VM, standard input as the agent's input-data. A command that fails gives exit 1 and the shell's
 * message (its last lines of output) to callers that allow failure.
 */
export function shellRunner(sh: GuestShell): Runner {
  return async (tool, args, opts = {}) => {
    try {
      return { code: 0, stdout: await sh.exec([tool, ...args], opts.input === undefined ? undefined : String(opts.input)), stderr: '' };
    } catch (e) {
      if (!opts.allowFail) throw e;
      return { code: 1, stdout: '', stderr: (e as Error).message };
    }
  };
}

/**
 * Where the join steps run: inside a container through `pct exec` (lxc, the default), or inside a VM
 * through a guest shell (vm: the guest agent), with the host ids of the guest's ids (`shift`: 100000
 * for an unprivileged container, 0 for a VM's virtiofs/NFS, which pass ids through).
 */
export interface JoinGuest { shell: () => GuestShell; shift: number; idmap: Idmap }

/** exec/push/Ads inside the guest: pct for containers, else the guest shell. */
function inGuest(run: Runner, vmid: () => number, guest?: JoinGuest) {
  if (!guest) {
    return {
      what: () => `CT ${vmid()}`,
      exec: (argv: string[]) => pctExec(run, vmid(), argv),
      push: (content: string, dest: string, perms: string) => pctPush(run, vmid(), content, dest, perms),
      ads: ctAds(run, vmid),
      shift: LXC_ID_SHIFT,
      idmap: IDMAP.lxc,
    };
  }
  return {
    what: () => guest.shell().what,
    exec: (argv: string[]) => guest.shell().exec(argv),
    push: (content: string, dest: string, perms: string) => guest.shell().write(dest, content, perms),
    // the shell is made when a step runs (the vmid is known by then)
    ads: new Ads((tool, args, opts) => shellRunner(guest.shell())(tool, args, opts), { smbConf: '/etc/samba/smb.conf' }, 'systemd', 'runner'),
    shift: guest.shift,
    idmap: guest.idmap,
  };
}

/**
 * The container's computer name: its hostname (smb-<share>) in upper case when that fits NetBIOS's 15
 * characters; longer ones keep their first 10 and add 4 hex digits of a hash of the share name, so the
 * same share always gets the same name and two long names rarely meet (when they do, create refuses).
 */
export function lxcNetbiosName(sharename: string): string {
  const label = sharename.toUpperCase().replace(/[^A-Z0-9-]+/g, '-').replace(/^-+|-+$/g, '') || 'SHARE';
  const full = `SMB-${label}`.replace(/-+$/, '');
  if (full.length <= 15) return full;
  const h = createHash('sha256').update(sharename.toLowerCase()).digest('hex').slice(0, 4).toUpperCase();
  return `${full.slice(0, 10).replace(/-+$/, '')}-${h}`;
}

/** The container's name in the domain's DNS (and its Kerberos service name): smb-<share>.<domain>. */
export function lxcDnsName(s: Share): string {
  return `${guestHostname(s.sharename)}.${s.ad_domain!.toLowerCase()}`;
}

/** Domain principals of a share: all its users and groups must be (the container has no local accounts for them). */
export function checkLxcDomainShare(s: Share, existing: readonly Share[]): void {
  for (const [field, list] of [['users', s.users], ['read_users', s.read_users], ['groups', s.groups], ['read_groups', s.read_groups]] as const) {
    const local = list.find((x) => !isDomainPrincipal(x));
    if (local) throw invalid(field, `${local} is a local name: an lxc share with ad_domain takes domain principals only (DOMAIN\\name; its container is a domain member with no local SMB accounts, docs/ad.md)`);
  }
  if (s.guest_ok) throw invalid('guest_ok', 'guest access is not offered on an lxc share with ad_domain');
  const nb = lxcNetbiosName(s.sharename);
  const clash = existing.find((o) => (o.mode === 'lxc' || o.mode === 'vm') && o.ad_domain && lxcNetbiosName(o.sharename) === nb);
  if (clash) throw invalid('sharename', `its container's computer name would be ${nb}, which share ${clash.sharename}'s container has already: choose another share name`);
}

/** `user:id` entries of the domain principals (groups as `@DOMAIN\\group:gid`), ids as the container sees them. */
export function domainGuestIds(s: Share, ids: ReadonlyMap<string, number>): string[] {
  return [
    ...[...s.users, ...s.read_users].filter(isDomainPrincipal).map((u) => `${u}:${ids.get(u)}`),
    ...[...s.groups, ...s.read_groups].filter(isDomainPrincipal).map((g) => `@${g}:${ids.get(g)}`),
  ];
}

/** The host's ACL entries for a domain share's principals: their container ids shifted (host = 100000 + id). */
export function domainAclSpec(s: Share, shift = LXC_ID_SHIFT): string {
  const stored = parseGuestUids(s.guest_uids);
  const shifted = new Map<string, number>();
  for (const u of [...s.users, ...s.read_users]) { const id = stored.get(u); if (id !== undefined) shifted.set(u, id + shift); }
  for (const g of [...s.groups, ...s.read_groups]) { const id = stored.get(`@${g}`); if (id !== undefined) shifted.set(g, id + shift); }
  const all = [...s.users, ...s.read_users, ...s.groups, ...s.read_groups];
  if (!all.every((x) => shifted.has(x))) return '';
  return aclSpec({ ...s, presets: s.presets.filter((p) => p !== 'private') }, shifted);
}

/** /etc/krb5.conf of the container: the realm, KDCs from DNS (as the join finds them). */
export function ctKrb5Conf(realm: string): string {
  return `# Written by pve-smbgateway (docs/ad.md)\n[libdefaults]\n    default_realm = ${realm}\n    dns_lookup_realm = false\n    dns_lookup_kdc = true\n    rdns = false\n`;
}

/** What a domain member container needs besides Samba (part of the template's LXC_TEMPLATE_PACKAGES). */
const AD_PACKAGES = ['winbind', 'libnss-winbind', 'krb5-user'] as const;

const secs = (t0: number) => ((Date.now() - t0) / 1000).toFixed(1);

/** A computer account a join step made in the domain (the journal's record of `ads-join`). */
export type AdComputerRecord = { kind: 'ad-computer'; realm: string; account: string };

/**
 * What repair can say of a computer account a crashed create made: removing it needs the domain
 * credentials, which the gateway never keeps, so it stays on the DC, and a create of the same share is
 * refused while it exists (ad-check-domain). The admin is told the account and how to remove it.
 */
export function adComputerLeft(r: AdComputerRecord): string {
  const name = r.account.replace(/\$$/, '');
  return `left on the domain controller: the computer account ${r.account} in ${r.realm} (a crash leaves no domain credentials to remove it with; creating this share again is refused while it exists): remove it on the DC, e.g. samba-tool computer delete ${name}`;
}

/**
 * The steps that make the new container a domain member, in order: checks, config (the managed
 * smb.conf with the member settings is pushed by the caller's push step, from `conf()`), join,
 * nsswitch, winbind, the principals resolved, their ACL entries on the host path. `conf()` is
 * undefined until the checks have asked the DC for its NetBIOS domain.
 */
export function lxcJoinSteps(ctx: GuestCtx, share: MutableShare, path: string, cred: AdCredentials, vmid: () => number, warnings: string[], guest?: JoinGuest): { before: Step[]; after: Step[]; conf: () => AdConf | undefined } {
  const { run, log } = ctx;
  const g = inGuest(run, vmid, guest);
  const ads = g.ads;
  const domain = share.ad_domain!.toLowerCase();
  const realm = domain.toUpperCase();
  const netbios = lxcNetbiosName(share.sharename);
  // The container's DNS name: its hostname in the domain (Proxmox puts hostname.searchdomain into its
  // /etc/hosts; the join registers it in the domain's DNS and makes it the Kerberos service name).
  const fqdn = lxcDnsName(share);
  let conf: AdConf | undefined;
  const before: Step[] = [
    {
      name: 'ad-check-domain',
      shows: `in the container: a DC of ${realm} answers (DNS + CLDAP), clocks within ${MAX_SKEW} s, ${cred.user}'s credentials work, no computer account ${netbios}$ yet`,
      do: async () => {
        const t0 = Date.now();
        // a template made before domain shares (docs/ad.md) has no winbind
        const have = await g.exec(['dpkg-query', '-W', '-f=${Package} ${Status}\\n', ...AD_PACKAGES]).catch((e: Error) => e.message);
        const missing = AD_PACKAGES.filter((p) => !new RegExp(`^${p} .*install ok installed`, 'm').test(have));
        if (missing.length) {
          // the vm template's cloud-init installs Samba only (docs/ad.md): its packages go in by hand for now
          if (share.mode === 'vm') throw new GatewayError('unavailable', `vm_template: the VM's template lacks ${missing.join(', ')} (templates made before Active Directory support in vm mode): make a new one (pve-smbgateway template create --mode vm) or install them in it (apt-get install ${missing.join(' ')})`, 'vm_template');
          throw new GatewayError('unavailable', `vm_template: the container's template lacks ${missing.join(', ')} (templates made before Active Directory support in lxc mode): make a new one (pve-smbgateway template create --mode lxc) or install them in it`, 'vm_template');
        }
        await g.push(ctKrb5Conf(realm), '/etc/krb5.conf', '0644');
        const dc = await ads.lookup(realm).catch((e: unknown) => {
          // the container resolves the domain, not the node: say which setting to fix
          if (!(e instanceof GatewayError) || e.code !== 'unreachable') throw e;
          throw new GatewayError('unreachable', e.message.replace(/this host's DNS resolver must be the domain's DNS, or give the DC's address \(dc\)/,
            `the container's DNS servers (nameserver: ${share.nameserver ?? 'the node\'s resolver'}) must answer for ${domain}, e.g. its DCs`), 'nameserver');
        });
        if (dc.domain.toLowerCase() !== domain) throw invalid('ad_domain', `the domain controller that answers (${dc.dc}) is for ${dc.domain}, not ${domain}`);
        const wg = dc.workgroup.toUpperCase();
        for (const p of [...share.users, ...share.read_users, ...share.groups, ...share.read_groups]) {
          if (principalDomain(p) !== wg) throw invalid([...share.users, ...share.read_users].includes(p) ? 'users' : 'groups', `${p} is in domain ${principalDomain(p)}, but ${domain}'s NetBIOS domain is ${wg}`);
        }
        const info = await ads.info(realm);
        if (info.offset !== undefined && Math.abs(info.offset) > MAX_SKEW) {
          throw new GatewayError('failed', `ad_domain: clock skew: the node's clock is ${Math.abs(info.offset)} s ${info.offset > 0 ? 'behind' : 'ahead of'} the domain controller's (${dc.dc}); Kerberos allows ${MAX_SKEW} s: synchronise the time (e.g. chrony against the DC) and retry`, 'ad_domain');
        }
        if (await ads.computerExists(realm, wg, netbios, cred)) {
          throw new GatewayError('exists', `sharename: a computer account ${netbios}$ already exists in ${domain} (the name of this share's container; another machine uses it): choose another share name, or delete the stale account on the DC (samba-tool computer delete ${netbios}) and retry`, 'sharename');
        }
        conf = { realm, workgroup: wg, idmap: g.idmap, netbios };
        log(`ad-check-domain: ${realm} (${wg}) reachable from ${g.what()}, DC ${dc.dc}, in ${secs(t0)} s`);
      },
    },
  ];
  let ids = new Map<string, number>();
  let savedAcl: string | undefined;
  let nssBefore: string | undefined;
  const after: Step[] = [
    {
      name: 'ads-join',
      shows: `in the container: net ads join ${realm} as ${cred.user} (password on stdin), computer account ${netbios}$`,
      // After a crash the guest goes with the clone's record; the account cannot (see adComputerLeft).
      journal: () => [{ kind: 'ad-computer', realm, account: `${netbios}$` } satisfies AdComputerRecord],
      do: async () => {
        const t0 = Date.now();
        const said = await ads.join(realm, conf!.workgroup, cred, undefined, { dnsHostName: fqdn, noDnsUpdates: true });
        log(`ads-join: ${g.what()} joined ${realm} as ${netbios}$ in ${secs(t0)} s: ${said.replace(/\s*\n\s*/g, ' | ')}`);
        const dns = await ads.dnsRegister(fqdn, share.guest_ip ? [share.guest_ip] : [], cred);
        if (dns) warnings.push(`the DNS record ${fqdn} -> ${share.guest_ip} could not be registered in ${domain} (${dns}): clients reach the share by address (NTLM), Kerberos needs the name: add the record on the DNS server`);
        else log(`ads-join: ${fqdn} -> ${share.guest_ip} registered in ${domain}'s DNS`);
      },
      // a later step failed: the computer account and its DNS record go again (the container goes with the clone's undo)
      undo: async () => {
        const dns = await ads.dnsUnregister(fqdn, cred);
        if (dns) log(`ads-join undo: the DNS record of ${fqdn} stays: ${dns}`);
        await ads.leave(realm, conf!.workgroup, cred);
      },
    },
    {
      name: 'nsswitch-winbind',
      shows: 'in the container: winbind in the passwd and group lines of /etc/nsswitch.conf',
      do: async () => {
        const text = await g.exec(['cat', '/etc/nsswitch.conf']);
        if (!nsswitchHasWinbind(text)) { await g.push(nsswitchWithWinbind(text), '/etc/nsswitch.conf', '0644'); nssBefore = text; }
      },
      undo: async () => { if (nssBefore !== undefined) await g.push(nssBefore, '/etc/nsswitch.conf', '0644'); },
    },
    {
      name: 'start-winbind',
      shows: 'in the container: enable and start winbindd, wait until it reaches the DC (wbinfo -P)',
      do: async () => {
        const t0 = Date.now();
        await ads.startWinbind();
        log(`start-winbind: winbindd in ${g.what()} online in ${secs(t0)} s`);
      },
      undo: () => ads.stopWinbind(),
    },
    {
      name: 'resolve-domain-principals',
      shows: 'resolve the share\'s DOMAIN\\names through the container\'s winbind (ids inside the container)',
      do: async () => {
        ids = await resolvePrincipalsWith(ads, share, { workgroup: conf!.workgroup, domain });
        const [lo, hi] = g.idmap.domain;
        for (const [name, id] of ids) {
          if (id < lo || id > hi) throw invalid('users', `${name} maps to id ${id} in ${g.what()}, outside the domain's range ${lo}-${hi} (its RID is too large for the share's idmap, docs/ad.md)`);
        }
        share.guest_uids = domainGuestIds(share, ids);
      },
    },
    {
      name: 'grant-domain-permissions',
      shows: `POSIX ACL entries on ${path} for the principals' ids as the host sees them (100000 + id in the container)`,
      do: async () => {
        const spec = domainAclSpec(share, g.shift);
        if (!spec) throw new GatewayError('failed', 'the domain principals have no ids (resolve-domain-principals)');
        savedAcl = (await run('getfacl', ['--absolute-names', '--', path])).stdout;
        const r = await run('setfacl', ['-m', `${spec},o::---,d:o::---`, '--', path], { allowFail: true });
        if (r.code !== 0) throw new GatewayError('failed', `setfacl on ${path} failed: ${r.stderr.trim()} (the share path needs a filesystem with POSIX ACLs in lxc mode)`);
      },
      undo: async () => { if (savedAcl !== undefined) await run('setfacl', ['--restore=-'], { input: savedAcl }); },
    },
  ];
  return { before, after, conf: () => conf };
}

/** smbd restarted (not reloaded: the server role changes) and answering, winbind online: the container serves the domain share. */
export function lxcDomainServeSteps(ctx: GuestCtx, vmid: () => number, timeoutMs: number, guest?: JoinGuest): Step[] {
  const g = inGuest(ctx.run, vmid, guest);
  const ads = g.ads;
  return [{
    name: 'restart-samba',
    shows: 'in the guest: restart smbd as a domain member',
    do: async () => { await g.exec(['systemctl', 'restart', 'smbd']); },
  }, {
    name: 'health-check',
    shows: 'in the container: smbd answers (smbcontrol smbd ping) and winbind reaches the DC (wbinfo -P)',
    do: async () => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const ping = guest
          ? await shellRunner(guest.shell())('smbcontrol', ['smbd', 'ping'], { allowFail: true })
          : await ctx.run('pct', ['exec', String(vmid()), '--', 'smbcontrol', 'smbd', 'ping'], { allowFail: true, timeoutMs: 15_000 });
        if (ping.code === 0 && (await ads.dcOnline())) return;
        if (Date.now() > deadline) throw new GatewayError('failed', `health check: in ${g.what()}, ${ping.code !== 0 ? `smbd does not answer (${(ping.stdout + ping.stderr).trim()})` : 'winbind does not reach the domain controller (wbinfo -P)'}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    },
  }];
}

/**
 * Delete: the container leaves the domain first (the DC deletes its computer account), while
 * everything else is still in place; if a later step fails, the undo joins it again. An account
 * already gone from the DC (deleted there by an admin) is not an error.
 */
export function lxcLeaveSteps(ctx: GuestCtx, share: Share, node: string, vmid: number, cred: AdCredentials | undefined, guest?: JoinGuest): Step[] {
  const domain = share.ad_domain!.toLowerCase();
  const realm = domain.toUpperCase();
  const netbios = lxcNetbiosName(share.sharename);
  const kind = guest ? 'VM' : 'container';
  if (!cred) throw invalid('ad_password', `the ${kind} of ${share.sharename} is joined to ${domain} as ${netbios}$: give the credentials that may delete its computer account (ad_user, ad_password; on the command line --ad-user and --ad-password-file) so that it leaves the domain`);
  const g = inGuest(ctx.run, () => vmid, guest);
  const ads = g.ads;
  const fqdn = lxcDnsName(share);
  const wg = principalDomain([...share.users, ...share.read_users, ...share.groups, ...share.read_groups].find(isDomainPrincipal) ?? '');
  let left = false;
  return [{
    name: 'ads-leave',
    shows: `in ${guest ? 'VM' : 'CT'} ${vmid}: net ads leave ${realm} as ${cred.user} (password on stdin): the DC deletes ${netbios}$`,
    do: async () => {
      const st = await ctx.api.status(node, guest ? 'qemu' : 'lxc', vmid).catch(() => undefined);
      if (st?.status !== 'running') throw new GatewayError('failed', `ad_domain: ${g.what()} is ${st?.status ?? 'gone'}: it must run to leave ${domain} (start it, then delete the share again)`, 'ad_domain');
      const t0 = Date.now();
      if (!(await ads.computerExists(realm, wg, netbios, cred))) { ctx.log(`ads-leave: ${netbios}$ is not in ${domain} any more`); return; }
      // its DNS record first (net ads leave keeps it; a later share of this name could not update it)
      const dns = await ads.dnsUnregister(fqdn, cred);
      if (dns) ctx.log(`ads-leave: the DNS record of ${fqdn} stays: ${dns}`);
      await ads.leave(realm, wg, cred);
      left = true;
      ctx.log(`ads-leave: ${g.what()} left ${realm} (${netbios}$ deleted) in ${secs(t0)} s`);
    },
    undo: async () => {
      if (!left) return;
      await ads.join(realm, wg, cred, undefined, { dnsHostName: fqdn, noDnsUpdates: true });
      if (share.guest_ip) await ads.dnsRegister(fqdn, [share.guest_ip], cred);
      await ads.startWinbind();
    },
  }];
}
