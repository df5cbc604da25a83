/**
 * What lxc and vm mode share: the Proxmox VE context, the ids SMB users get inside a guest, ownership
 * on the host path (ACL entries for those ids as the host sees them), NT hashes, the guest's base
 * smb.conf and the health check over SMB from the host.
 */
import { chmod, chown, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GatewayError, invalid } from '../core/errors.ts';
import type { Runner } from '../core/exec.ts';
import type { Step } from '../core/plan.ts';
import type { Settings } from '../core/settings.ts';
import { shareUsers, type Share } from '../core/share.ts';
import type { ShareStore } from '../core/store.ts';
import type { PveApi, GuestKind } from '../pve/api.ts';
import { getUnixUser } from './accounts.ts';
import { aclRecords, aclTreeRecords } from './repair.ts';
import { ntHash } from '../samba/nthash.ts';

export { ntHash };

/** A share whose guest fields (vmid, guest_ip) are filled in while the plan runs. */
export type MutableShare = { -readonly [K in keyof Share]: Share[K] };

export interface GuestCtx {
  settings: Settings;
  run: Runner;
  store: ShareStore;
  api: PveApi;
  log: (msg: string) => void;
}

/** Where the share's directory appears inside the guest (bind mount / virtiofs mount point). */
export const PATH_INSIDE = '/srv/share';
/** The fragment the guest's smb.conf includes (same renderer as native mode). */
export const GUEST_MANAGED_CONF = '/etc/samba/smbgateway.conf';
/** Tag that marks gateway templates in Proxmox VE. */
export const TEMPLATE_TAG = 'smbgateway';
/**
 * Debian packages of the lxc gateway template: Samba with samba-vfs-modules (shadow_copy2: Previous
 * Versions; Debian's samba only recommends it), and for Active Directory shares (docs/ad.md) the
 * container's own winbindd, its NSS module (domain users as unix ids inside the container) and the
 * Kerberos tools. The test rootfs (test/guests/rootfs.ts) installs the same list: its cache key
 * changes with it.
 */
export const LXC_TEMPLATE_PACKAGES = ['samba', 'samba-common-bin', 'samba-vfs-modules', 'winbind', 'libnss-winbind', 'krb5-user'] as const;
/** Unprivileged containers shift every id by this much (Proxmox's default idmap 0 100000 65536). */
export const LXC_ID_SHIFT = 100000;

/** The guest's main smb.conf (written into the template once): standalone server, no NetBIOS, our include. */
export function guestBaseSmbConf(): string {
  return `# Written by pve-smbgateway into the gateway template
[global]
   workgroup = WORKGROUP
   server role = standalone server
   disable netbios = yes
   smb ports = 445
   load printers = no
   printing = bsd
   printcap name = /dev/null
   disable spoolss = yes
   log file = /var/log/samba/log.%m
   max log size = 1000
   logging = file
   passdb backend = tdbsam
   include = ${GUEST_MANAGED_CONF}
`;
}

/** Parse the stored `user:uid` list. */
export function parseGuestUids(list: readonly string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const e of list) { const [u, id] = e.split(':'); if (u && id && /^\d+$/.test(id)) m.set(u, Number(id)); }
  return m;
}

/**
 * The uid each share user gets inside the guest: the uid the account has on this host (so that lxc, vm
 * and native shares of the same user agree), else the uid the same name got in another guest share,
 * else the first free id from 1000. Returned as the stored `user:uid` list.
 */
export async function assignGuestUids(run: Runner, share: Share, existing: readonly Share[]): Promise<string[]> {
  const known = new Map<string, number>();
  for (const s of existing) for (const [u, id] of parseGuestUids((s as Share & { guest_uids?: string[] }).guest_uids ?? [])) if (!known.has(u)) known.set(u, id);
  const taken = new Set<number>();
  const out: string[] = [];
  const want: [string, number | undefined][] = [];
  for (const u of shareUsers(share)) {
    const host = await getUnixUser(run, u);
    const id = host && host.uid >= 1000 && host.uid < 65534 ? host.uid : known.get(u);
    want.push([u, id]);
    if (id !== undefined) taken.add(id);
  }
  let next = 1000;
  for (const [u, id] of want) {
    let uid = id;
    if (uid === undefined) { while (taken.has(next) || [...known.values()].includes(next)) next++; uid = next; taken.add(uid); }
    out.push(`${u}:${uid}`);
  }
  return out;
}

/** Refuse what guest modes cannot do (yet), before anything changes. */
export function checkGuestShare(s: Share): void {
  // lxc with ad_domain: domain groups, resolved by the container's winbind (docs/ad.md)
  if (s.mode === 'lxc' && s.ad_domain) return;
  if (s.groups.length || s.read_groups.length) throw invalid(s.groups.length ? 'groups' : 'read_groups', `groups are not supported in ${s.mode} mode (the guest has its own accounts): list the users`);
}

/** ACL spec granting the guest ids (as the host sees them: shifted for unprivileged containers). */
export function guestAclSpec(share: Share, uids: Map<string, number>, shift: number): string {
  const e: string[] = [];
  const w = share.read_only ? 'rx' : 'rwx';
  for (const u of share.users) { const id = uids.get(u); if (id !== undefined) e.push(`u:${id + shift}:${w}`, `d:u:${id + shift}:${w}`); }
  for (const u of share.read_users) { const id = uids.get(u); if (id !== undefined) e.push(`u:${id + shift}:rx`, `d:u:${id + shift}:rx`); }
  return e.join(',');
}

/**
 * Grant the guest ids on the host path (POSIX ACLs, with defaults so new files inherit). A directory the
 * gateway has just created also gets the first writer as owner, so that the share works where the guest
 * cannot see ACLs (e.g. a virtiofs daemon without ACL support). The undo restores ACL and owner.
 */
export function guestPermissionSteps(run: Runner, path: string, spec: string, owner?: { uid: number; gid: number }): Step[] {
  if (!spec && !owner) return [];
  let saved: string | undefined;
  let savedOwner: { uid: number; gid: number; mode: number } | undefined;
  return [{
    name: 'grant-permissions',
    journal: () => aclRecords(run, path),
    do: async () => {
      if (owner) {
        const st = await stat(path);
        savedOwner = { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 };
        await chown(path, owner.uid, owner.gid);
        // Closed to other local accounts (and to enclosing shares): the guest's users get in by owner or ACL.
        await chmod(path, 0o770);
      }
      if (!spec) return;
      saved = (await run('getfacl', ['--absolute-names', '--', path])).stdout;
      const r = await run('setfacl', ['-m', `${spec},o::---,d:o::---`, '--', path], { allowFail: true });
      if (r.code !== 0) throw new GatewayError('failed', `setfacl on ${path} failed: ${r.stderr.trim()} (the share path needs a filesystem with POSIX ACLs in guest modes)`);
    },
    undo: async () => {
      if (saved !== undefined) await run('setfacl', ['--restore=-'], { input: saved });
      if (savedOwner) { await chown(path, savedOwner.uid, savedOwner.gid); await chmod(path, savedOwner.mode); }
    },
  }];
}

/** Owner for a directory the gateway creates: the first user with write access (ids as the host sees them). */
export function firstWriter(share: Share, uids: Map<string, number>, shift: number, pathExisted: boolean): { uid: number; gid: number } | undefined {
  if (pathExisted || share.read_only) return undefined;
  const u = share.users[0];
  const id = u === undefined ? undefined : uids.get(u);
  return id === undefined ? undefined : { uid: id + shift, gid: id + shift };
}

/**
 * Remove the guest ids' ACL entries (delete) from the share's whole tree (files inherited them through
 * the default ACL): a host account that later gets one of those ids must not find access left behind.
 */
export function revokeSteps(run: Runner, path: string, spec: string): Step[] {
  if (!spec) return [];
  const entries = [...new Set(spec.split(',').map((e) => e.split(':').slice(0, -1).join(':')))].join(',');
  let saved: string | undefined;
  return [{
    name: 'revoke-permissions',
    journal: () => aclTreeRecords(run, path),
    do: async () => {
      const before = await run('getfacl', ['-R', '--absolute-names', '--', path], { allowFail: true });
      if (before.code !== 0) return; // the path is gone: nothing to revoke
      saved = before.stdout;
      await run('setfacl', ['-R', '-x', entries, '--', path], { allowFail: true });
    },
    undo: async () => { if (saved !== undefined) await run('setfacl', ['--restore=-'], { input: saved }); },
  }];
}

/** An smbpasswd(5) line for `pdbedit -i smbpasswd:FILE`: no LM hash, the NT hash, a normal account. */
export function smbpasswdLine(user: string, uid: number, password: string): string {
  return `${user}:${uid}:${'X'.repeat(32)}:${ntHash(password)}:[U          ]:LCT-${Math.floor(Date.now() / 1000).toString(16).toUpperCase().padStart(8, '0')}:`;
}

// --- health check ---

/** Log on to //host/share over SMB as a client would (password in a 0600 auth file). */
export async function probeGuest(run: Runner, host: string, share: string, user: string, password: string, highProfile: boolean): Promise<{ ok: boolean; output: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'smbgw-probe-'));
  try {
    const auth = join(dir, 'auth');
    await writeFile(auth, `username = ${user}\npassword = ${password}\n`, { mode: 0o600 });
    const r = await run('smbclient', ['-s', '/dev/null', `//${host}/${share}`, '-A', auth, '--option=client min protocol=SMB2_10',
      ...(highProfile ? ['--client-protection=encrypt'] : []), '-c', 'ls'], { allowFail: true, timeoutMs: 30_000 });
    return { ok: r.code === 0, output: (r.stdout + r.stderr).trim() };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Retry the probe until it works or the time is up (smbd and cloud-init need a moment after boot). */
export function healthCheckStep(ctx: GuestCtx, share: Share, ip: () => string | undefined, passwords: Map<string, string>, timeoutMs: number): Step[] {
  const user = shareUsers(share).find((u) => passwords.has(u));
  if (!user) return [];
  return [{
    name: 'health-check',
    do: async () => {
      const host = ip();
      if (!host) throw new GatewayError('failed', 'health check: the guest has no IPv4 address');
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const p = await probeGuest(ctx.run, host, share.sharename, user, passwords.get(user)!, share.security_profile === 'high');
        if (p.ok) return;
        if (Date.now() > deadline) throw new GatewayError('failed', `health check: smbclient as ${user} could not list //${host}/${share.sharename}: ${p.output.split('\n').slice(-1)[0]}`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    },
  }];
}

/** Run a command inside a container through `pct exec` on this node (stdin carries secrets). */
export async function pctExec(run: Runner, vmid: number, argv: string[], input?: string, timeoutMs = 10 * 60_000): Promise<string> {
  const r = await run('pct', ['exec', String(vmid), '--', ...argv], { input, allowFail: true, timeoutMs });
  if (r.code !== 0) throw new GatewayError('failed', `in CT ${vmid}: ${argv.slice(0, 3).join(' ')} failed (exit ${r.code}): ${(r.stderr.trim() || r.stdout.trim()).split('\n').slice(-3).join(' | ')}`);
  return r.stdout;
}

/** Put a file into a container (`pct push`), from a private temporary file. */
export async function pctPush(run: Runner, vmid: number, content: string, dest: string, perms = '0644'): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'smbgw-push-'));
  try {
    const f = join(dir, 'file');
    await writeFile(f, content, { mode: 0o600 });
    await run('pct', ['push', String(vmid), f, dest, '--perms', perms]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Wait until a guest reports an IPv4 address (container interfaces or the VM's guest agent). */
export async function waitForIp(api: PveApi, node: string, kind: GuestKind, vmid: number, timeoutMs: number): Promise<string> {
  const { firstIpv4 } = await import('../pve/api.ts');
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const ip = firstIpv4(kind === 'lxc' ? await api.ctInterfaces(node, vmid) : await api.agentInterfaces(node, vmid));
      if (ip) return ip;
      last = 'no IPv4 address yet';
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > deadline) throw new GatewayError('failed', `${kind === 'lxc' ? 'CT' : 'VM'} ${vmid} has no IPv4 address after ${Math.round(timeoutMs / 1000)} s (${last})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Find a gateway template by VMID or name, or the newest tagged one of that kind. */
export async function findTemplate(api: PveApi, kind: GuestKind, want: string | undefined): Promise<{ vmid: number; node: string; name?: string }> {
  const all = (await api.resources('vm')).filter((r) => r.type === kind && r.template === 1);
  const tagged = (r: { tags?: string }) => (r.tags ?? '').split(/[;, ]/).includes(TEMPLATE_TAG);
  const mode = kind === 'lxc' ? 'lxc' : 'vm';
  let t;
  if (want) {
    t = all.find((r) => String(r.vmid) === want || r.name === want);
    if (!t) throw invalid('vm_template', `no ${kind === 'lxc' ? 'container' : 'VM'} template "${want}" (see pve-smbgateway template list)`);
  } else {
    t = all.filter(tagged).sort((a, b) => (b.vmid ?? 0) - (a.vmid ?? 0))[0];
    if (!t) throw new GatewayError('unavailable', `no ${mode} gateway template yet: run "pve-smbgateway template create --mode ${mode}" first`, 'vm_template');
  }
  return { vmid: t.vmid!, node: t.node!, name: t.name };
}
