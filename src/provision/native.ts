/**
 * Native mode: Samba on the host. Planning (what to do, from the request and what exists) is
 * kept apart from applying it (applyPlan, with rollback).
 */
import { GatewayError, invalid } from '../core/errors.ts';
import type { Runner } from '../core/exec.ts';
import type { Step } from '../core/plan.ts';
import { isDomainPrincipal, shareUsers, type Made, type Share } from '../core/share.ts';
import type { Account, ShareStore } from '../core/store.ts';
import { smbConfInstall, smbConfSteps } from '../samba/apply.ts';
import type { Samba } from '../samba/samba.ts';
import { sambaAccountRecord, sambaAccountRecordOf, undoSambaAccount, type SambaAccountRecord } from '../samba/repair.ts';
import { ntOfLine, type SambaAccount } from '../samba/samba.ts';
import { ntHash } from '../samba/nthash.ts';
import { addUnixUser, deleteUnixUser, getUnixAccount, getUnixGroup, getUnixUser, nextFreeId, undoUnixAccount, type UnixAccountRecord } from './accounts.ts';
import { permissionSteps, revokePermissionsStep } from './permissions.ts';
import { aclRecords, aclTreeRecords, withRecords } from './repair.ts';
import { preStorageQuotaSteps, quotaSteps, storageSteps } from './quota.ts';
import { checkPurge, purgeStep } from './purge.ts';
import { backingTag, placeNewShare, requireQuotaSupport } from './storage.ts';
import type { Ceph } from '../core/ceph.ts';
import { cephfsRecord } from '../core/cephfs.ts';
import { cephCapsStep, planCephfs } from './cephfs.ts';

export interface NativeCtx {
  run: Runner;
  store: ShareStore;
  samba: Samba;
  allowedRoots: readonly string[];
  /** Accounts the gateway may make or adopt have uids (and groups gids) in this range. */
  uidMin: number;
  uidMax: number;
  /** Ceph, for shares on CephFS (served through vfs_ceph). */
  ceph?: Ceph;
}

/**
 * Passwords as given: `blanket` is the password of every user (one line in --password-file, or the
 * API's password), `explicit` holds `user:password` lines. They set the password of new accounts and of
 * accounts the gateway made (for another share); adopted accounts (--adopt) keep theirs, so a blanket
 * password passes them by and a `user:password` line for one is refused.
 */
export interface Passwords { explicit: Map<string, string>; blanket?: string }

/** The password each of these users gets when their account is new. */
export function newAccountPasswords(p: Passwords, users: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const u of users) { const pw = p.explicit.get(u) ?? p.blanket; if (pw !== undefined) out.set(u, pw); }
  return out;
}

export interface CreatePlan { steps: Step[]; share: Share; warnings: string[] }

/** Who may be given access on the host, decided before anything changes. */
export interface AccountPlan {
  /** Unix accounts to make (login-less, own group). */
  newUnix: string[];
  /** Samba accounts to make, with the password given. */
  newSamba: string[];
  /** Accounts the gateway made earlier (for another share) whose password is set again. */
  resetSamba: string[];
  /** The registry after the create. */
  accounts: Account[];
  /** The password each new or reset account gets. */
  passwords: Map<string, string>;
  /** Each local user's passdb entry as planning read it (undefined: none), for the password step's journal. */
  sambaBefore: Map<string, SambaAccount | undefined>;
}

/**
 * Accounts for a native share. The gateway makes new accounts and shares the ones it made itself;
 * an account that existed before (the admin's, or a system account) is refused unless the admin adopts
 * it (`adopt`), and an adopted account's password is never touched. Root and system accounts (uid
 * outside the configured range) are always refused. Groups must exist and not be system groups.
 */
export async function planAccounts(ctx: NativeCtx, share: Share, given: Passwords, adopt: readonly string[]): Promise<AccountPlan> {
  const { run, samba, store } = ctx;
  // Domain principals (DOMAIN\\name) are the domain's: no local account, no password (provision/ad.ts).
  const users = shareUsers(share).filter((u) => !isDomainPrincipal(u));
  const registry = await store.accounts();
  const out: AccountPlan = { newUnix: [], newSamba: [], resetSamba: [], accounts: registry.map((a) => ({ ...a })), passwords: new Map(), sambaBefore: new Map() };
  const passwords = newAccountPasswords(given, users);
  const need = (u: string) => { out.passwords.set(u, passwords.get(u)!); };
  for (const a of adopt) if (!users.includes(a)) throw invalid('adopt', `names ${a}, who is not given access to this share (list it in users or read_users too)`);
  for (const u of users) {
    const field = share.users.includes(u) ? 'users' : 'read_users';
    // The whole passdb entry, not only whether there is one: the journal of a password step needs it.
    const [unix, sambaNow] = await Promise.all([getUnixUser(run, u), samba.account(u)]);
    const hasSamba = sambaNow !== undefined;
    out.sambaBefore.set(u, sambaNow);
    const own = registry.find((a) => a.name === u);
    if (unix && (unix.uid < ctx.uidMin || unix.uid > ctx.uidMax)) {
      throw invalid(field, `${u} is a system account (uid ${unix.uid}, outside ${ctx.uidMin}..${ctx.uidMax}) and cannot be given SMB access`);
    }
    if (own) {
      if (adopt.includes(u)) throw invalid('adopt', `${u} was made by pve-smbgateway (for another share): it needs no adopting`);
      if (own.unix && own.uid !== undefined && unix && unix.uid !== own.uid) throw invalid(field, `${u} was made by pve-smbgateway with uid ${own.uid}, but now has uid ${unix.uid}: fix or remove the account by hand`);
      if (!unix) out.newUnix.push(u);
      if (!hasSamba) {
        if (!passwords.has(u)) throw invalid('password', `user ${u} has no Samba account yet: give a password for it (on the command line: --password-file)`);
        out.newSamba.push(u);
        need(u);
      } else if (passwords.has(u)) {
        // Given the password it has already: nothing to set (smbpasswd would only move its last-set time).
        if (!sambaNow || ntOfLine(sambaNow.line) !== ntHash(passwords.get(u)!)) out.resetSamba.push(u);
        need(u);
      }
      continue;
    }
    if (unix || hasSamba) {
      if (!adopt.includes(u)) {
        throw invalid(field, `${u} is an existing account that pve-smbgateway did not create; to give it access as it is (its password unchanged), adopt it explicitly (--adopt ${u})`);
      }
      if (!unix) throw invalid('adopt', `${u} has a Samba account but no unix account: it cannot be adopted`);
      if (hasSamba && given.explicit.has(u)) throw invalid('passwords', `${u} is adopted: pve-smbgateway does not change the password of an account it did not create`);
      if (!hasSamba) {
        if (!passwords.has(u)) throw invalid('password', `adopted user ${u} has no Samba account yet: give a password for it (on the command line: --password-file)`);
        out.newSamba.push(u);
        need(u);
      }
      continue;
    }
    if (adopt.includes(u)) throw invalid('adopt', `${u} does not exist: only existing accounts can be adopted`);
    if (await getUnixGroup(run, u)) {
      throw invalid(field, `${u} is the name of an existing group: pve-smbgateway makes each new user a group of its own name`);
    }
    if (!passwords.has(u)) throw invalid('password', `user ${u} has no Samba account yet: give a password for it (on the command line: --password-file)`);
    out.newUnix.push(u);
    out.newSamba.push(u);
    need(u);
  }
  for (const u of given.explicit.keys()) if (!users.includes(u)) throw invalid('passwords', `names user ${u}, who is not given access to this share`);
  for (const [field, list] of [['groups', share.groups], ['read_groups', share.read_groups]] as const) {
    for (const gname of list.filter((x) => !isDomainPrincipal(x))) {
      const grp = await getUnixGroup(run, gname);
      if (!grp) throw invalid(field, `group ${gname} does not exist (create it first; the gateway makes no groups)`);
      const gid = grp.gid;
      if (!(gid >= ctx.uidMin && gid <= ctx.uidMax)) throw invalid(field, `${gname} is a system group (gid ${gid}, outside ${ctx.uidMin}..${ctx.uidMax}) and cannot be given SMB access`);
    }
  }
  return out;
}

/**
 * The account steps of a plan (create, access): unix accounts made with the uid the journal holds, then
 * the passdb accounts made or given their password again. Their journal records passdb as planning read
 * it (under the same lock: nothing of the gateway's changed it since).
 */
export function accountSteps(ctx: NativeCtx, acc: AccountPlan): Step[] {
  const { run, samba } = ctx;
  const { newUnix, newSamba, resetSamba, accounts, passwords } = acc;
  const steps: Step[] = [];
  if (newUnix.length) {
    // Each account's uid is chosen before it is made, so that the journal holds it: an undo after a
    // crash removes an account of that name only when it has that uid.
    let recs: UnixAccountRecord[] = [];
    steps.push({
      name: 'add-unix-users',
      shows: `useradd (login-less, own group): ${newUnix.join(', ')}`,
      journal: async () => {
        recs = [];
        for (const u of newUnix) recs.push({ kind: 'unix-account', name: u, before: null, after: { uid: await nextFreeId(run, ctx.uidMin, ctx.uidMax, new Set(recs.map((r) => r.after!.uid))) } });
        return recs;
      },
      do: async () => {
        for (const r of recs) {
          const uid = r.after!.uid;
          await addUnixUser(run, r.name, uid);
          const entry = accounts.find((a) => a.name === r.name);
          if (entry) Object.assign(entry, { unix: true, uid });
          else accounts.push({ name: r.name, unix: true, samba: false, uid });
        }
      },
      undo: async () => { for (const r of [...recs].reverse()) await undoUnixAccount(run, r); },
    });
  }
  if (newSamba.length || resetSamba.length) {
    let recs: SambaAccountRecord[] = [];
    steps.push({
      name: 'set-samba-passwords',
      shows: [newSamba.length ? `new Samba accounts: ${newSamba.join(', ')}` : '', resetSamba.length ? `password set again: ${resetSamba.join(', ')}` : ''].filter(Boolean).join('; '),
      // Each account as it was (a reset one: its passdb line and SID) and the NT hash it gets.
      journal: async () => {
        recs = [];
        for (const u of [...newSamba, ...resetSamba]) recs.push(sambaAccountRecordOf(u, acc.sambaBefore.get(u), passwords.get(u)!));
        return recs;
      },
      do: async () => {
        for (const u of newSamba) {
          await samba.setPassword(u, passwords.get(u)!, true);
          const entry = accounts.find((a) => a.name === u);
          if (entry) entry.samba = true;
          else accounts.push({ name: u, unix: false, samba: true });
        }
        for (const u of resetSamba) await samba.setPassword(u, passwords.get(u)!, false);
      },
      undo: async () => { for (const r of [...recs].reverse()) await undoSambaAccount(samba, r); },
    });
  }
  return steps;
}

/** Everything a create needs to know, checked before anything changes. */
export async function planNativeCreate(ctx: NativeCtx, req: Share, existing: readonly Share[], given: Passwords, adopt: readonly string[] = [], domainIds?: () => ReadonlyMap<string, number>): Promise<CreatePlan> {
  const { run, store, samba } = ctx;
  const { path, backing } = await placeNewShare(run, req, existing, ctx.allowedRoots);
  requireQuotaSupport(backing, req.quota);

  const created: Made[] = [];
  const share: Share = { ...req, path, created, backing: backingTag(backing, backing.kind === 'btrfs' && !backing.exists) };
  // CephFS: smbd reaches the directory through libcephfs, as the gateway's CephX client.
  const ceph = backing.kind === 'cephfs' ? ctx.ceph : undefined;
  if (backing.kind === 'cephfs') {
    if (!ceph) throw new GatewayError('unavailable', 'path is on CephFS, but no Ceph access is configured');
    created.push(await planCephfs(ceph, path, backing));
  }
  const warnings: string[] = [];
  const users = shareUsers(share);
  const after = [...existing, share];
  // The new smb.conf is rendered and checked by testparm while the accounts are looked up.
  const conf = smbConfInstall(samba, () => after, undefined, { checkNow: true });
  const acc = await planAccounts(ctx, share, given, adopt).catch(async (e: unknown) => { await conf.checked.catch(() => undefined); throw e; });
  await conf.checked;
  const { accounts, passwords } = acc;

  const steps: Step[] = [
    ...preStorageQuotaSteps(run, backing, share.quota),
    ...storageSteps(run, path, backing, created),
    ...quotaSteps(run, path, backing, share.quota),
  ];
  steps.push(...accountSteps(ctx, acc));
  const noAcl = ceph ? 'Samba\'s vfs_ceph does not read POSIX ACLs' : undefined;
  steps.push(...permissionSteps(run, path, share, warnings, { fresh: !backing.exists, noAcl, ids: domainIds }).map((st) => withRecords(st, () => aclRecords(run, path))));
  if (passwords.size) steps.push(store.storeSecretsStep(share.sharename, passwords));
  if (ceph) steps.push(cephCapsStep(ceph, () => after, `read-write on ${share.path}`));
  steps.push(store.saveStep(() => after, () => accounts));
  steps.push(...conf.steps);
  const probeUser = users.find((u) => passwords.has(u));
  if (probeUser) {
    steps.push({
      name: 'health-check',
      shows: `smbclient lists the share as ${probeUser}`,
      do: async () => {
        // The probe first: smbd is asked whether it runs only when the probe fails (one tool less).
        const p = await samba.probe(share.sharename, probeUser, passwords.get(probeUser)!);
        if (!p.ok && !(await samba.running())) { warnings.push('smbd is not running: the share is configured and will be served when smbd starts'); return; }
        if (!p.ok) throw new GatewayError('failed', `health check: smbclient as ${probeUser} could not list the share: ${p.output.split('\n').slice(-1)[0]}`);
      },
    });
  }
  return { steps, share, warnings };
}

export async function planNativeDelete(ctx: NativeCtx, share: Share, existing: readonly Share[], opts: { purge: boolean }): Promise<Step[]> {
  const { run, store, samba } = ctx;
  const rest = existing.filter((s) => s !== share);
  const registry = await store.accounts();
  // The last share that uses an account the gateway made removes it; accounts it did not make stay.
  const stillUsed = new Set(rest.flatMap((s) => (s.mode === 'native' ? shareUsers(s) : [])));
  const gone = registry.filter((a) => shareUsers(share).includes(a.name) && !stillUsed.has(a.name));
  const accountsAfter = registry.filter((a) => !gone.includes(a));
  const purgeCtx = { run, allowedRoots: ctx.allowedRoots };
  if (opts.purge) await checkPurge(purgeCtx, share, rest);
  const steps: Step[] = [
    store.saveStep(() => rest, () => accountsAfter),
    ...smbConfSteps(samba, () => rest),
    // After the reload no new tree connect can reach the share; now drop the ones still open.
    { name: 'close-share', shows: `smbcontrol smbd close-share ${share.sharename}`, do: () => samba.closeShare(share.sharename) },
  ];
  // No access through the CephX client once the share is gone (the client goes with the last one).
  if (cephfsRecord(share) && ctx.ceph) steps.push(cephCapsStep(ctx.ceph, () => rest, `without ${share.path}`));
  steps.push(store.removeSecretsStep(share.sharename, shareUsers(share)));
  // Before the accounts go (their ids stay in ACLs); journaled as the whole tree's ACLs.
  steps.push(withRecords(revokePermissionsStep(run, share, rest), () => aclTreeRecords(run, share.path)));
  steps.push(...accountRemovalSteps(ctx, gone));
  // Destroying data cannot be undone: it is the last step, and only what this share's create made.
  if (opts.purge) steps.push(purgeStep(purgeCtx, share, () => rest));
  return steps;
}

/**
 * Removing accounts the gateway made that no share uses any more (delete, and access changes): the
 * Samba account (kept whole in the journal) then the unix one (uid checked again when it runs).
 */
export function accountRemovalSteps(ctx: Pick<NativeCtx, 'run' | 'samba'>, gone: readonly Account[]): Step[] {
  const { run, samba } = ctx;
  const steps: Step[] = [];
  const sambaUsers = gone.filter((a) => a.samba).map((a) => a.name);
  if (sambaUsers.length) {
    let recs: SambaAccountRecord[] = [];
    steps.push({
      name: 'remove-samba-users',
      shows: `remove Samba accounts the gateway made: ${sambaUsers.join(', ')}`,
      // The whole account (passdb line, NT hash, SID) is kept in the journal, to be put back exactly.
      journal: async () => {
        recs = [];
        for (const u of sambaUsers) { const r = await sambaAccountRecord(samba, u, null); if (r.before) recs.push(r); }
        return recs;
      },
      do: async () => { for (const r of recs) await samba.deleteUser(r.name); },
      undo: async () => { for (const r of [...recs].reverse()) await undoSambaAccount(samba, r); },
    });
  }
  const unixUsers = gone.filter((a) => a.unix);
  if (unixUsers.length) {
    let recs: UnixAccountRecord[] = [];
    steps.push({
      name: 'remove-unix-users',
      shows: `userdel (accounts the gateway made, uid checked): ${unixUsers.map((a) => a.name).join(', ')}`,
      journal: async () => {
        recs = [];
        for (const a of unixUsers) {
          // Checked again now: an account of that name with another uid is not the one the gateway made.
          const x = await getUnixAccount(run, a.name);
          if (!x || (a.uid !== undefined && x.uid !== a.uid)) continue;
          recs.push({ kind: 'unix-account', name: a.name, before: x, after: null });
        }
        return recs;
      },
      do: async () => { for (const r of recs) await deleteUnixUser(run, r.name); },
      undo: async () => { for (const r of [...recs].reverse()) await undoUnixAccount(run, r); },
    });
  }
  return steps;
}
