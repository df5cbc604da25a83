/**
 * Active Directory membership: the pure parts (the [global] parameters of a joined host, the idmap
 * ranges, nsswitch.conf edits, parsers of `net ads` output) and ONE adapter, `Ads`, that builds every
 * `net ads`, `wbinfo` and winbindd command line. The join password only ever travels on net's stdin
 * (net prompts "Password for [DOM\user]:" and reads it there), never in argv, the environment or a log.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GatewayError, invalid } from '../core/errors.ts';
import type { Runner } from '../core/exec.ts';
import type { Params } from './profiles.ts';

/** An id range [low, high], inclusive. */
export type Range = readonly [number, number];

/**
 * Where winbind puts domain principals on a host. `domain`: the joined domain, `rid` backend (uid =
 * low + RID: the same on every node, no database to replicate); `other`: the `*` default range (tdb)
 * for BUILTIN and trusted domains, kept apart from it.
 */
export interface Idmap { backend: 'rid'; domain: Range; other: Range }

/**
 * The ranges per mode. native: above the local accounts (account_uid_max, 60000 by default) and above
 * Proxmox VE's unprivileged-container ids (100000-165535 by default in /etc/subuid), checked against
 * /etc/subuid and /etc/subgid at join time. lxc: inside the container's 65536 ids (container uid N is
 * host uid 100000+N), above its local accounts, below nobody (65534): RIDs up to 49999.
 */
export const IDMAP: Record<'native' | 'lxc', Idmap> = {
  native: { backend: 'rid', domain: [1_000_000, 1_999_999], other: [2_000_000, 2_099_999] },
  lxc: { backend: 'rid', domain: [10_000, 59_999], other: [60_000, 64_999] },
};

export function overlaps(a: Range, b: Range): boolean {
  return a[0] <= b[1] && b[0] <= a[1];
}

/** The joined-host settings the managed [global] carries. */
export interface AdConf {
  realm: string;
  workgroup: string;
  idmap: Idmap;
  /** The computer name, where the gateway chooses it (an lxc share's container); native: the admin's smb.conf. */
  netbios?: string;
}

/** The [global] parameters of a domain member (rendered after the hardening block). */
export function adGlobalParams(ad: AdConf): Params {
  const wg = ad.workgroup.toUpperCase();
  return [
    ...(ad.netbios ? [['netbios name', ad.netbios.toUpperCase()] as [string, string]] : []),
    ['security', 'ads'],
    ['server role', 'member server'],
    ['workgroup', wg],
    ['realm', ad.realm.toUpperCase()],
    ['kerberos method', 'secrets and keytab'],
    ['winbind use default domain', 'no'],
    ['winbind refresh tickets', 'yes'],
    ['winbind enum users', 'no'],
    ['winbind enum groups', 'no'],
    ['idmap config * : backend', 'tdb'],
    ['idmap config * : range', `${ad.idmap.other[0]}-${ad.idmap.other[1]}`],
    [`idmap config ${wg} : backend`, ad.idmap.backend],
    [`idmap config ${wg} : range`, `${ad.idmap.domain[0]}-${ad.idmap.domain[1]}`],
  ];
}

/** nsswitch.conf with `winbind` added to the passwd and group lines (unchanged if it is there). */
export function nsswitchWithWinbind(text: string): string {
  return text.split('\n').map((l) => {
    const m = /^(\s*(?:passwd|group)\s*:)(.*)$/.exec(l);
    if (!m || /(^|\s)winbind(\s|$)/.test(m[2]!.replace(/#.*/, ''))) return l;
    return `${m[1]}${m[2]!.replace(/\s*$/, '')} winbind`;
  }).join('\n');
}

/** Whether nsswitch.conf resolves passwd and group through winbind. */
export function nsswitchHasWinbind(text: string): boolean {
  const lines = text.split('\n').map((l) => l.replace(/#.*/, ''));
  return ['passwd', 'group'].every((db) => lines.some((l) => new RegExp(`^\\s*${db}\\s*:.*(\\s|:)winbind(\\s|$)`).test(l)));
}

/** What `net ads lookup` (CLDAP netlogon ping) says about the domain. */
export interface DcInfo { dc: string; dcAddress: string; domain: string; forest: string; workgroup: string }

export function parseAdsLookup(text: string): DcInfo | undefined {
  const f = (k: string) => new RegExp(`^${k}:\\s*(.+?)\\s*$`, 'm').exec(text)?.[1];
  const workgroup = f('Pre-Win2k Domain');
  const domain = f('Domain');
  if (!workgroup || !domain) return undefined;
  return { dc: f('Domain Controller') ?? '', dcAddress: f('Information for Domain Controller') ?? '', domain, forest: f('Forest') ?? domain, workgroup };
}

/** `net ads info`: the DC's realm and how far its clock is from ours (seconds). */
export function parseAdsInfo(text: string): { realm?: string; offset?: number; ldapServer?: string } {
  const f = (k: string) => new RegExp(`^${k}:\\s*(.+?)\\s*$`, 'm').exec(text)?.[1];
  const off = f('Server time offset');
  return { realm: f('Realm'), ldapServer: f('LDAP server name'), offset: off !== undefined && /^-?\d+$/.test(off) ? Number(off) : undefined };
}

/** Kerberos allows this much clock difference (seconds). */
export const MAX_SKEW = 300;

const BAD_CREDENTIALS = /Preauthentication failed|logon is invalid|LOGON_FAILURE|password is incorrect|wrong password|Client not found in Kerberos database|NT_STATUS_WRONG_PASSWORD|user name or password/i;
const SKEW = /clock skew|KRB5KRB_AP_ERR_SKEW|time.*out of sync/i;
const NO_DC = /No logon servers|Didn't find the cldap server|Cannot contact any KDC|NT_STATUS_(IO_TIMEOUT|HOST_UNREACHABLE|NETWORK_UNREACHABLE|CONNECTION_REFUSED)|Can't contact LDAP server/i;

/** A failed `net ads` call as an error that says which of the usual causes it was. */
export function adsFailure(what: string, out: string, ctx: { user?: string; realm: string }): GatewayError {
  const last = out.split('\n').map((l) => l.trim()).filter((l) => l && !/^Password for \[/.test(l)).slice(-2).join(' | ');
  if (SKEW.test(out)) return new GatewayError('failed', `${what}: this host's clock differs from the domain controller's by more than Kerberos allows (${MAX_SKEW} s): synchronise the time (e.g. chrony against the DC) and retry (${last})`, 'domain');
  if (BAD_CREDENTIALS.test(out)) return invalid('password', `${what}: the domain controller of ${ctx.realm} refused the credentials of ${ctx.user ?? 'the join user'} (wrong user name or password) (${last})`);
  if (NO_DC.test(out)) return new GatewayError('unreachable', `${what}: no domain controller of ${ctx.realm} answers (${last}); this host's DNS resolver must be the domain's DNS, or give the DC's address (dc)`, 'domain');
  return new GatewayError('failed', `${what} failed: ${last}`);
}

/** A domain principal resolved by winbind. */
export interface Resolved { name: string; sid: string; kind: 'user' | 'group'; id: number }

/** How winbind runs on this host: under systemd (a real node) or started directly (containers, tests). */
export type WinbindControl = 'systemd' | 'daemon';

export interface AdsTarget { smbConf: string }

/** Credentials for the calls that change the domain (join, leave) or read it as a user (checks). */
export interface AdCredentials { user: string; password: string }

export class Ads {
  /**
   * `scratchVia`: where the throwaway config of the checks is written: `local` (this host's /tmp) or
   * `runner` (through the runner itself, e.g. inside a container reached with `pct exec`).
   */
  constructor(private readonly run: Runner, private readonly target: AdsTarget, private readonly control: WinbindControl = 'systemd',
    private readonly scratchVia: 'local' | 'runner' = 'local') {}

  /** `net ads` with the admin password on stdin; `conf` defaults to the host's smb.conf. */
  private async netAds(args: string[], cred: AdCredentials | undefined, opts: { conf?: string; timeoutMs?: number } = {}) {
    return this.run('net', ['-s', opts.conf ?? this.target.smbConf, 'ads', ...args, ...(cred ? ['-U', cred.user] : [])],
      { allowFail: true, timeoutMs: opts.timeoutMs ?? 60_000, ...(cred ? { input: `${cred.password}\n` } : {}) });
  }

  private static dcArgs(dc: string | undefined): string[] { return dc ? ['-S', dc] : []; }

  /**
   * A throwaway config with its own state, lock and cache dirs (under /tmp) for the checks before a
   * join: they change nothing on the host, not even Samba's caches (a negative "no DC" answer cached
   * there would outlive the DC's outage).
   */
  private async scratch<T>(globals: Record<string, string>, f: (conf: string) => Promise<T>): Promise<T> {
    if (this.scratchVia === 'runner') return this.scratchViaRunner(globals, f);
    const dir = await mkdtemp(join(tmpdir(), 'smbgw-adcheck-'));
    try {
      const conf = join(dir, 'smb.conf');
      await writeFile(conf, Ads.scratchConf(dir, globals), { mode: 0o600 });
      return await f(conf);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  private static scratchConf(dir: string, globals: Record<string, string>): string {
    const dirs = ['lock directory', 'state directory', 'cache directory', 'private dir', 'pid directory', 'ncalrpc dir'].map((k) => `  ${k} = ${dir}`);
    return ['[global]', ...Object.entries(globals).map(([k, v]) => `  ${k} = ${v}`), ...dirs, ''].join('\n');
  }

  /** The same scratch config made where the runner runs (mktemp, a 0600 file written from stdin, rm). */
  private async scratchViaRunner<T>(globals: Record<string, string>, f: (conf: string) => Promise<T>): Promise<T> {
    const dir = (await this.run('mktemp', ['-d', '/tmp/smbgw-adcheck-XXXXXX'])).stdout.trim();
    if (!/^\/tmp\/smbgw-adcheck-[A-Za-z0-9]+$/.test(dir)) throw new GatewayError('failed', `mktemp gave an unexpected directory: ${dir}`);
    try {
      const conf = `${dir}/smb.conf`;
      await this.run('sh', ['-c', 'umask 077 && cat > "$1"', 'sh', conf], { input: Ads.scratchConf(dir, globals) });
      return await f(conf);
    } finally {
      await this.run('rm', ['-rf', '--', dir], { allowFail: true });
    }
  }

  /** Find a DC of the realm (DNS SRV + CLDAP), before anything is configured. */
  async lookup(realm: string, dc?: string): Promise<DcInfo> {
    const r = await this.scratch({}, (conf) => this.netAds(['lookup', `--realm=${realm}`, ...Ads.dcArgs(dc)], undefined, { conf, timeoutMs: 30_000 }));
    const info = r.code === 0 ? parseAdsLookup(r.stdout) : undefined;
    if (!info) throw adsFailure(`finding a domain controller for ${realm}`, r.stdout + r.stderr + (r.code === 0 ? '\nNo logon servers' : ''), { realm });
    return info;
  }

  /** The DC's clock offset and realm (LDAP rootDSE, anonymous). */
  async info(realm: string, dc?: string): Promise<{ realm?: string; offset?: number; ldapServer?: string }> {
    const r = await this.scratch({}, (conf) => this.netAds(['info', `--realm=${realm}`, ...Ads.dcArgs(dc)], undefined, { conf, timeoutMs: 30_000 }));
    if (r.code !== 0) throw adsFailure(`asking ${realm}'s domain controller for its time`, r.stdout + r.stderr, { realm });
    return parseAdsInfo(r.stdout);
  }

  /**
   * Checks the credentials and whether a computer account `netbios$` exists, against the domain's LDAP
   * (scratch config): nothing on the host or the DC changes.
   */
  async computerExists(realm: string, workgroup: string, netbios: string, cred: AdCredentials, dc?: string): Promise<boolean> {
    const r = await this.scratch({ security: 'ads', realm, workgroup, 'netbios name': netbios },
      (conf) => this.netAds(['search', ...Ads.dcArgs(dc), `(sAMAccountName=${netbios}$)`, 'sAMAccountName'], cred, { conf }));
    if (r.code !== 0) throw adsFailure('checking the join credentials', r.stdout + r.stderr, { realm, user: `${workgroup}\\${cred.user}` });
    const m = /Got (\d+) replies/.exec(r.stdout);
    if (!m) throw new GatewayError('failed', `checking for the computer account ${netbios}$: unexpected answer from net ads search: ${r.stdout.trim().split('\n').slice(-1)[0]}`);
    return Number(m[1]) > 0;
  }

  /** The join; returns what net said (e.g. whether its DNS update worked). */
  async join(realm: string, workgroup: string, cred: AdCredentials, dc?: string, opts: { dnsHostName?: string; noDnsUpdates?: boolean } = {}): Promise<string> {
    const r = await this.netAds(['join', ...Ads.dcArgs(dc), ...(opts.dnsHostName ? [`dnshostname=${opts.dnsHostName}`] : []), ...(opts.noDnsUpdates ? ['--no-dns-updates'] : [])], cred, { timeoutMs: 120_000 });
    if (r.code !== 0) throw adsFailure(`joining ${realm}`, r.stdout + r.stderr, { realm, user: `${workgroup}\\${cred.user}` });
    return (r.stdout + r.stderr).split('\n').filter((l) => l.trim() && !/^Password for \[/.test(l)).join('\n');
  }

  /** Leave: the DC deletes the computer account; the machine secret and keytab entries go. */
  async leave(realm: string, workgroup: string, cred: AdCredentials, dc?: string): Promise<void> {
    const r = await this.netAds(['leave', ...Ads.dcArgs(dc)], cred, { timeoutMs: 60_000 });
    if (r.code !== 0) throw adsFailure(`leaving ${realm}`, r.stdout + r.stderr, { realm, user: `${workgroup}\\${cred.user}` });
  }

  /**
   * Add (register) or remove (unregister) the A records of `fqdn` in the domain's DNS, as the join user
   * (a secure update). Registered by the join user rather than by the new machine account, because a
   * name that an earlier, deleted account registered stays owned by that account: the new one's update
   * is refused (measured: `DNS Update ... failed: ERROR_DNS_UPDATE_FAILED` after a delete and create of
   * the same share). `net ads leave` leaves the records: unregister them first. Each returns the
   * failure text, if any (callers go on: SMB by address works without the record).
   */
  async dnsRegister(fqdn: string, addresses: string[], cred: AdCredentials): Promise<string | undefined> {
    const r = await this.run('net', ['-s', this.target.smbConf, 'ads', 'dns', 'register', fqdn, ...addresses, '-U', cred.user], { allowFail: true, timeoutMs: 30_000, input: `${cred.password}\n` });
    return r.code === 0 ? undefined : (r.stdout + r.stderr).trim().split('\n').filter((l) => l && !/^Password for \[/.test(l)).slice(-1)[0] ?? `exit ${r.code}`;
  }

  async dnsUnregister(fqdn: string, cred: AdCredentials): Promise<string | undefined> {
    const r = await this.run('net', ['-s', this.target.smbConf, 'ads', 'dns', 'unregister', fqdn, '-U', cred.user], { allowFail: true, timeoutMs: 30_000, input: `${cred.password}\n` });
    return r.code === 0 ? undefined : (r.stdout + r.stderr).trim().split('\n').filter((l) => l && !/^Password for \[/.test(l)).slice(-1)[0] ?? `exit ${r.code}`;
  }

  /**
   * Remove this machine's entries from the system keytab (`net ads leave` leaves them there), as the
   * machine account itself (-P), before it is deleted.
   */
  async keytabFlush(): Promise<void> {
    const r = await this.run('net', ['-s', this.target.smbConf, 'ads', 'keytab', 'flush', '-P'], { allowFail: true, timeoutMs: 30_000 });
    if (r.code !== 0) throw new GatewayError('failed', `net ads keytab flush failed: ${(r.stdout + r.stderr).trim().split('\n').slice(-1)[0]}`);
  }

  /** Put the machine's keytab entries back (undo of a flush while still joined). */
  async keytabCreate(): Promise<void> {
    await this.run('net', ['-s', this.target.smbConf, 'ads', 'keytab', 'create', '-P'], { allowFail: true, timeoutMs: 30_000 });
  }

  /**
   * The A records of `fqdn` in the domain's DNS become exactly `ips` (none: removed), as the machine
   * account (-P). `net ads join` registers the joining host's own addresses; a cluster's name must
   * point at its floating addresses instead.
   */
  async dnsSet(fqdn: string, ips: readonly string[]): Promise<void> {
    // no record yet is fine
    await this.run('net', ['-s', this.target.smbConf, 'ads', 'dns', 'unregister', fqdn, '-P'], { allowFail: true, timeoutMs: 30_000 });
    if (!ips.length) return;
    const r = await this.run('net', ['-s', this.target.smbConf, 'ads', 'dns', 'register', fqdn, ...ips, '-P'], { allowFail: true, timeoutMs: 30_000 });
    if (r.code !== 0) throw new GatewayError('failed', `registering ${fqdn} -> ${ips.join(' ')} in the domain's DNS failed: ${(r.stdout + r.stderr).trim().split('\n').slice(-1)[0]}`);
  }

  /** Whether the machine account works (`net ads testjoin`: Kerberos with the machine secret). */
  async testJoin(): Promise<{ ok: boolean; output: string }> {
    const r = await this.netAds(['testjoin'], undefined, { timeoutMs: 30_000 });
    return { ok: r.code === 0, output: (r.stdout + r.stderr).trim() };
  }

  // --- winbindd ---

  private wbinfo(args: string[], timeoutMs = 15_000) {
    return this.run('wbinfo', args, { allowFail: true, timeoutMs });
  }

  async winbindRunning(): Promise<boolean> {
    return (await this.wbinfo(['-p'], 5_000)).code === 0;
  }

  /** Whether winbind reaches a DC (netlogon ping). */
  async dcOnline(): Promise<boolean> {
    return (await this.wbinfo(['-P'], 15_000)).code === 0;
  }

  /** Start (or restart) winbindd after a join and wait until it talks to the DC. */
  async startWinbind(): Promise<void> {
    if (this.control === 'systemd') {
      await this.run('systemctl', ['enable', 'winbind'], { allowFail: true });
      await this.run('systemctl', ['restart', 'winbind']);
    } else {
      if (await this.winbindRunning()) await this.stopWinbind();
      await this.run('winbindd', ['-D', '-s', this.target.smbConf]);
    }
    const end = Date.now() + 30_000;
    while (!(await this.dcOnline())) {
      if (Date.now() > end) throw new GatewayError('failed', 'winbindd started but does not reach the domain controller (wbinfo -P) after 30 s');
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async stopWinbind(): Promise<void> {
    if (this.control === 'systemd') {
      await this.run('systemctl', ['disable', 'winbind'], { allowFail: true });
      await this.run('systemctl', ['stop', 'winbind'], { allowFail: true });
      return;
    }
    if (!(await this.winbindRunning())) return;
    await this.run('smbcontrol', ['-s', this.target.smbConf, 'winbindd', 'shutdown'], { allowFail: true });
    const end = Date.now() + 15_000;
    while (await this.winbindRunning()) {
      if (Date.now() > end) throw new GatewayError('failed', 'winbindd does not stop (smbcontrol winbindd shutdown)');
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /**
   * A `DOMAIN\name` as winbind resolves it: its SID, whether it is a user or a group, and its unix id.
   * Undefined when the domain has no such name.
   */
  async resolve(name: string): Promise<Resolved | undefined> {
    const n = await this.wbinfo(['--name-to-sid', name]);
    if (n.code !== 0) return undefined;
    const m = /^(S-[0-9-]+)\s+(SID_\w+)/m.exec(n.stdout);
    if (!m) return undefined;
    const [, sid, type] = m as unknown as [string, string, string];
    const kind = type === 'SID_USER' ? 'user' : /^SID_(DOM_GROUP|ALIAS|WKN_GROUP)$/.test(type) ? 'group' : undefined;
    if (!kind) return undefined;
    const x = await this.wbinfo([kind === 'user' ? '--sid-to-uid' : '--sid-to-gid', sid]);
    const id = Number(x.stdout.trim());
    if (x.code !== 0 || !Number.isInteger(id)) throw new GatewayError('failed', `winbind resolves ${name} to ${sid} but gives it no ${kind === 'user' ? 'uid' : 'gid'} (is the idmap range full?): ${(x.stdout + x.stderr).trim()}`);
    return { name, sid, kind, id };
  }
}

/** What this node's join left: enough to render the config, to leave again and to tell status. */
export interface AdState extends AdConf {
  /** DNS domain as given (lower case). */
  domain: string;
  netbios: string;
  /** The DC address given at join, if any (else DNS finds one). */
  dc?: string;
  /** Whether the join added winbind to nsswitch.conf (leave removes it only then). */
  nsswitch_added: boolean;
  joined_at: string;
  /** native: this host's own machine account; ha: the CTDB cluster's (ha ad join), this node one of its members. */
  mode: 'native' | 'ha';
}

export const adStatePath = (stateDir: string): string => join(stateDir, 'ad.json');

export async function readAdState(stateDir: string | undefined): Promise<AdState | undefined> {
  if (!stateDir) return undefined;
  const text = await readFile(adStatePath(stateDir), 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw new GatewayError('failed', `cannot read ${adStatePath(stateDir)}: ${e.message}`);
  });
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as AdState;
  } catch (e) {
    throw new GatewayError('failed', `${adStatePath(stateDir)} is not valid JSON (${(e as Error).message}): fix or remove it (pve-smbgateway ad status shows what the host's Samba says)`);
  }
}

/** nsswitch.conf without the `winbind` source on the passwd and group lines (what a join added). */
export function nsswitchWithoutWinbind(text: string): string {
  return text.split('\n').map((l) => {
    const m = /^(\s*(?:passwd|group)\s*:)(.*)$/.exec(l);
    return m ? `${m[1]}${m[2]!.replace(/\s+winbind(?=\s|$)/g, '')}` : l;
  }).join('\n');
}

/** Ranges of /etc/subuid or /etc/subgid (`user:start:count` lines). */
export function parseSubIds(text: string): { owner: string; range: Range }[] {
  return text.split('\n').map((l) => l.trim().split(':')).filter((f) => f.length === 3 && /^\d+$/.test(f[1]!) && /^\d+$/.test(f[2]!))
    .map((f) => ({ owner: f[0]!, range: [Number(f[1]), Number(f[1]) + Number(f[2]) - 1] as const }));
}
