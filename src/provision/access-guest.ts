/**
 * Who has access to an lxc or vm share, and its presets, changed inside its guest (as create configures
 * it), through one guest shell (guest-exec.ts: `pct exec` for containers, the QEMU guest agent for VMs):
 * new users get a unix and Samba account in the guest (uids as create assigns them; password on stdin),
 * the smb.conf fragment is rendered again and written (testparm inside), Samba reloads, the removed
 * users' tree connects are closed and their accounts in the guest removed. The host path's ACL follows
 * the guest ids (shifted for an unprivileged container; a VM's virtiofs/NFS pass them through; an RBD
 * disk holds the data itself). Each step journals what it changes in the guest, for `repair`.
 */
import { GatewayError, invalid } from '../core/errors.ts';
import type { Step } from '../core/plan.ts';
import type { Share } from '../core/share.ts';
import { parseSmbStatus } from '../samba/samba.ts';
import { aclStep, principalDiff } from './access.ts';
import {
  addGuestAccount, agentShell, pctShell, readGuestFile, reloadGuestSamba, removeGuestAccount, guestUid,
  type GuestAccountRecord, type GuestFileRecord, type GuestPasswordRecord, type GuestShell,
} from './guest-exec.ts';
import { assignGuestUids, GUEST_MANAGED_CONF, guestAclSpec, LXC_ID_SHIFT, parseGuestUids, type GuestCtx } from './guest.ts';
import { guestManagedConf } from './lxc.ts';

export interface GuestAccessPlan { before: Step[]; after: Step[]; share: Share; warnings: string[] }

/** The shell into a share's guest. */
export function guestShell(ctx: GuestCtx, share: Share): GuestShell {
  const vmid = share.vmid;
  if (vmid === undefined) throw new GatewayError('failed', `share ${share.sharename} has no guest recorded`);
  const node = share.node ?? ctx.settings.node;
  if (share.mode === 'lxc') return pctShell(ctx.run, node, vmid);
  return agentShell(ctx.api, ctx.run, node, vmid, (ctx.settings.pveTaskTimeout ?? 600) * 1000);
}

export async function planGuestAccess(ctx: GuestCtx, before: Share, next: Share, existing: readonly Share[], passwords: Map<string, string>, opts: { recursive?: boolean } = {}): Promise<GuestAccessPlan> {
  const { run, store } = ctx;
  // A domain share's container maps its principals through winbind (provision/lxc-ad.ts): not changed here yet.
  if (before.ad_domain) throw invalid('users', `changing who may access an ${before.mode} share with ad_domain is not supported yet: delete the share and create it again (docs/ad.md)`);
  const sh = guestShell(ctx, before);
  const kind = before.mode === 'lxc' ? 'container' : 'VM';
  if (next.groups.length || next.read_groups.length) throw invalid('groups', `groups are not supported in ${before.mode} mode (the ${kind} has its own accounts): list the users`);
  const diff = principalDiff(before, next);
  for (const u of diff.addedUsers) if (!passwords.has(u)) throw invalid('password', `user ${u} needs a password: the ${kind} keeps its own Samba accounts (on the command line: --password-file)`);
  for (const u of passwords.keys()) if (!diff.addedUsers.includes(u)) throw invalid('passwords', `names user ${u}, who is not being added to this share`);
  // Kept users keep their uid (this share's own list is consulted first), new ones get one as create gives it.
  const oldUids = parseGuestUids(before.guest_uids);
  const guest_uids = (await assignGuestUids(run, next, [before, ...existing.filter((s) => s !== before)]))
    .map((e) => { const u = e.split(':')[0]!; return oldUids.has(u) ? `${u}:${oldUids.get(u)}` : e; });
  const share: Share = { ...next, guest_uids };
  const uids = parseGuestUids(guest_uids);
  const warnings: string[] = [];
  // Ids as the host path sees them: shifted in an unprivileged container; an RBD disk's files are not on the host.
  const shift = before.mode === 'lxc' ? LXC_ID_SHIFT : 0;
  const hostAcl = !(before.mode === 'vm' && before.vm_attach === 'rbd');
  const removedIds = diff.removedUsers.map((u) => oldUids.get(u)).filter((x): x is number => x !== undefined).map((x) => x + shift);
  const steps: Step[] = [];
  if (diff.changed && hostAcl) steps.push(aclStep(run, share.path, guestAclSpec(share, uids, shift), revokeList(removedIds), !!opts.recursive, warnings, ctx.log));
  if (diff.changed && !hostAcl && opts.recursive) throw invalid('recursive', 'the share\'s data is on an RBD disk inside the VM: there is no host tree to grant on');
  if (diff.addedUsers.length) {
    let recs: GuestAccountRecord[] = [];
    steps.push({
      name: 'add-guest-users',
      shows: `in ${sh.what}: useradd and smbpasswd -a ${diff.addedUsers.join(', ')} (passwords on stdin)`,
      journal: async () => {
        recs = [];
        for (const u of diff.addedUsers) {
          const had = await guestUid(sh, u);
          if (had !== undefined) throw new GatewayError('failed', `users: ${u} already has an account in ${sh.what} (uid ${had}), one the gateway did not make for this share: left as it is`, 'users');
          recs.push({ kind: 'guest-account', guest: sh.ref, name: u, uid: uids.get(u)!, before: false, after: true });
        }
        return recs;
      },
      do: async () => { for (const r of recs) await addGuestAccount(sh, r.name, r.uid, passwords.get(r.name)!); },
      undo: async () => { for (const r of [...recs].reverse()) await removeGuestAccount(sh, r.name); },
    });
  }
  const conf = guestManagedConf(share);
  let oldConf: string | null = null;
  if (conf !== guestManagedConf(before)) {
    steps.push({
      name: 'push-smb-conf',
      shows: `in ${sh.what}: ${GUEST_MANAGED_CONF} rendered again, testparm, reload`,
      journal: async () => {
        oldConf = await readGuestFile(sh, GUEST_MANAGED_CONF);
        return [{ kind: 'guest-file', guest: sh.ref, path: GUEST_MANAGED_CONF, before: oldConf, perms: '0644' } satisfies GuestFileRecord];
      },
      do: async () => {
        await sh.write(GUEST_MANAGED_CONF, conf, '0644');
        try {
          await sh.exec(['testparm', '-s', '--suppress-prompt', '/etc/samba/smb.conf']);
        } catch (e) {
          await sh.write(GUEST_MANAGED_CONF, oldConf ?? guestManagedConf(before), '0644').catch(() => undefined);
          throw e;
        }
        await reloadGuestSamba(sh);
      },
      undo: async () => { await sh.write(GUEST_MANAGED_CONF, oldConf ?? guestManagedConf(before), '0644'); await reloadGuestSamba(sh); },
    });
  }
  const stored = [...passwords].filter(([u]) => diff.addedUsers.includes(u));
  if (stored.length) steps.push(store.storeSecretsStep(share.sharename, new Map(stored)));

  const post: Step[] = [];
  if (diff.removedUsers.length) {
    post.push({
      name: 'close-sessions',
      shows: `in ${sh.what}: close the connections of ${diff.removedUsers.join(', ')} (smbstatus, smbcontrol close-share)`,
      do: async () => {
        const st = parseSmbStatus(await sh.exec(['smbstatus', '--json']));
        const sessions = new Set(st.sessions.filter((x) => diff.removedUsers.includes(x.username.split('\\').pop()!)).map((x) => x.id));
        for (const pid of new Set(st.tcons.filter((t) => sessions.has(t.sessionId) && Number.isInteger(t.pid)).map((t) => t.pid))) {
          await sh.exec(['smbcontrol', String(pid), 'close-share', share.sharename]).catch(() => undefined);
        }
      },
    });
    // The passwords are read before their secret files go: an account removed in the guest is put back with it.
    const kept = new Map<string, string | undefined>();
    for (const u of diff.removedUsers) kept.set(u, await store.readSecret(before.sharename, u));
    post.push(store.removeSecretsStep(share.sharename, diff.removedUsers));
    let recs: GuestAccountRecord[] = [];
    post.push({
      name: 'remove-guest-users',
      shows: `in ${sh.what}: pdbedit -x and userdel ${diff.removedUsers.join(', ')}`,
      journal: async () => {
        recs = [];
        for (const u of diff.removedUsers) {
          const uid = await guestUid(sh, u);
          if (uid === undefined) continue;
          const pw = kept.get(u);
          recs.push({ kind: 'guest-account', guest: sh.ref, name: u, uid, before: true, after: false, ...(pw !== undefined ? { password: pw } : {}) });
        }
        return recs;
      },
      do: async () => { for (const r of recs) await removeGuestAccount(sh, r.name); },
      undo: async () => { for (const r of [...recs].reverse()) if (r.password !== undefined) await addGuestAccount(sh, r.name, r.uid, r.password); },
    });
  }
  return { before: steps, after: post, share, warnings };
}

/**
 * `passwd` for a user of guest shares: the Samba password set again in each guest (stdin), undone with
 * the password the gateway kept for the share (the store-secrets step follows in the caller's plan).
 */
export async function guestPasswdSteps(ctx: GuestCtx, user: string, password: string, shares: readonly Share[]): Promise<Step[]> {
  const steps: Step[] = [];
  for (const s of shares) {
    const sh = guestShell(ctx, s);
    const before = await ctx.store.readSecret(s.sharename, user);
    if (before === undefined) throw new GatewayError('failed', `user: no password of ${user} is kept for share ${s.sharename}: run \`pve-smbgateway repair\` or give the user access again`, 'user');
    steps.push({
      name: 'set-guest-password',
      shows: `in ${sh.what} (share ${s.sharename}): smbpasswd -s ${user} (password on stdin)`,
      journal: () => [{ kind: 'guest-password', guest: sh.ref, name: user, before } satisfies GuestPasswordRecord],
      do: async () => {
        if ((await guestUid(sh, user)) === undefined) throw new GatewayError('failed', `user: ${user} has no account in ${sh.what} (share ${s.sharename}): give the user access again`, 'user');
        await sh.exec(['smbpasswd', '-s', user], `${password}\n${password}\n`);
      },
      undo: async () => { await sh.exec(['smbpasswd', '-s', user], `${before}\n${before}\n`); },
    });
  }
  return steps;
}

function revokeList(ids: readonly number[]): string {
  return ids.flatMap((id) => [`u:${id}`, `d:u:${id}`]).join(',');
}
