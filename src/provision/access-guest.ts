/**
 * Who has access to an lxc share, changed inside its container (`pct exec`, as create configures it):
 * new users get a unix and Samba account in the container (uids as create assigns them), the smb.conf
 * fragment is rendered again and pushed (testparm inside), Samba reloads, the removed users' tree connects
 * are closed and their accounts in the container removed. The host path's ACL follows the guest ids
 * (shifted for the unprivileged container). vm shares are refused: their guest has no `pct exec`.
 */
import { GatewayError, invalid } from '../core/errors.ts';
import type { Step } from '../core/plan.ts';
import type { Share } from '../core/share.ts';
import { parseSmbStatus } from '../samba/samba.ts';
import { aclStep, principalDiff } from './access.ts';
import { assignGuestUids, GUEST_MANAGED_CONF, guestAclSpec, LXC_ID_SHIFT, parseGuestUids, pctExec, pctPush, type GuestCtx } from './guest.ts';
import { guestManagedConf } from './lxc.ts';

export interface GuestAccessPlan { before: Step[]; after: Step[]; share: Share; warnings: string[] }

export async function planLxcAccess(ctx: GuestCtx, before: Share, next: Share, existing: readonly Share[], passwords: Map<string, string>, opts: { recursive?: boolean } = {}): Promise<GuestAccessPlan> {
  const { run, store } = ctx;
  const vmid = before.vmid;
  if (vmid === undefined) throw new GatewayError('failed', `share ${before.sharename} has no container recorded`);
  // A domain share's container maps its principals through winbind (provision/lxc-ad.ts): not changed here yet.
  if (before.ad_domain) throw invalid('users', `changing who may access an lxc share with ad_domain is not supported yet: delete the share and create it again (docs/ad.md)`);
  if (next.groups.length || next.read_groups.length) throw invalid('groups', 'groups are not supported in lxc mode (the container has its own accounts): list the users');
  const diff = principalDiff(before, next);
  for (const u of diff.addedUsers) if (!passwords.has(u)) throw invalid('password', `user ${u} needs a password: the container keeps its own Samba accounts (on the command line: --password-file)`);
  for (const u of passwords.keys()) if (!diff.addedUsers.includes(u)) throw invalid('passwords', `names user ${u}, who is not being added to this share`);
  // Kept users keep their uid (this share's own list is consulted first), new ones get one as create gives it.
  const oldUids = parseGuestUids(before.guest_uids);
  const guest_uids = (await assignGuestUids(run, next, [before, ...existing.filter((s) => s !== before)]))
    .map((e) => { const u = e.split(':')[0]!; return oldUids.has(u) ? `${u}:${oldUids.get(u)}` : e; });
  const share: Share = { ...next, guest_uids };
  const uids = parseGuestUids(guest_uids);
  const warnings: string[] = [];
  const removedIds = diff.removedUsers.map((u) => oldUids.get(u)).filter((x): x is number => x !== undefined).map((x) => x + LXC_ID_SHIFT);
  const steps: Step[] = [aclStep(run, share.path, guestAclSpec(share, uids, LXC_ID_SHIFT), revokeList(removedIds), !!opts.recursive, warnings, ctx.log)];
  const added: string[] = [];
  if (diff.addedUsers.length) {
    steps.push({
      name: 'add-guest-users',
      shows: `in CT ${vmid}: useradd and smbpasswd -a ${diff.addedUsers.join(', ')} (passwords on stdin)`,
      do: async () => {
        for (const u of diff.addedUsers) {
          const id = String(uids.get(u)!);
          await pctExec(run, vmid, ['groupadd', '--gid', id, u]);
          await pctExec(run, vmid, ['useradd', '--no-create-home', '--shell', '/usr/sbin/nologin', '--uid', id, '--gid', id, u]);
          added.push(u);
          await pctExec(run, vmid, ['smbpasswd', '-s', '-a', u], `${passwords.get(u)}\n${passwords.get(u)}\n`);
        }
      },
      undo: async () => {
        for (const u of [...added].reverse()) {
          await pctExec(run, vmid, ['pdbedit', '-x', '-u', u]).catch(() => undefined);
          await pctExec(run, vmid, ['userdel', u]).catch(() => undefined);
          await pctExec(run, vmid, ['groupdel', u]).catch(() => undefined);
        }
      },
    });
  }
  const reload = () => pctExec(run, vmid, ['smbcontrol', 'smbd', 'reload-config']).catch((e: Error) => { if (!/Can't find pid for destination 'smbd'/.test(e.message)) throw e; });
  steps.push({
    name: 'push-smb-conf',
    shows: `in CT ${vmid}: ${GUEST_MANAGED_CONF} rendered again, testparm, reload`,
    do: async () => {
      await pctPush(run, vmid, guestManagedConf(share), GUEST_MANAGED_CONF, '0644');
      await pctExec(run, vmid, ['testparm', '-s', '--suppress-prompt', '/etc/samba/smb.conf']);
      await reload();
    },
    undo: async () => { await pctPush(run, vmid, guestManagedConf(before), GUEST_MANAGED_CONF, '0644'); await reload(); },
  });
  const stored = [...passwords].filter(([u]) => diff.addedUsers.includes(u));
  if (stored.length) steps.push(store.storeSecretsStep(share.sharename, new Map(stored)));

  const post: Step[] = [];
  if (diff.removedUsers.length) {
    post.push({
      name: 'close-sessions',
      shows: `in CT ${vmid}: close the connections of ${diff.removedUsers.join(', ')} (smbstatus, smbcontrol close-share)`,
      do: async () => {
        const st = parseSmbStatus(await pctExec(run, vmid, ['smbstatus', '--json']));
        const sessions = new Set(st.sessions.filter((x) => diff.removedUsers.includes(x.username.split('\\').pop()!)).map((x) => x.id));
        for (const pid of new Set(st.tcons.filter((t) => sessions.has(t.sessionId) && Number.isInteger(t.pid)).map((t) => t.pid))) {
          await pctExec(run, vmid, ['smbcontrol', String(pid), 'close-share', share.sharename]).catch(() => undefined);
        }
      },
    });
    post.push(store.removeSecretsStep(share.sharename, diff.removedUsers));
    // Last: a removed account's password hash cannot be put back (the container keeps no copy elsewhere).
    post.push({
      name: 'remove-guest-users',
      shows: `in CT ${vmid}: pdbedit -x and userdel ${diff.removedUsers.join(', ')}`,
      do: async () => {
        for (const u of diff.removedUsers) {
          await pctExec(run, vmid, ['pdbedit', '-x', '-u', u]).catch(() => undefined);
          await pctExec(run, vmid, ['userdel', u]).catch(() => undefined);
        }
      },
    });
  }
  return { before: steps, after: post, share, warnings };
}

function revokeList(ids: readonly number[]): string {
  return ids.flatMap((id) => [`u:${id}`, `d:u:${id}`]).join(',');
}
