/**
 * Who has access to an existing share: users, read users, groups and read groups changed after create,
 * through the same plan with rollback as create and delete. New accounts are made (or the gateway's own
 * shared) as create makes them; accounts no share uses any more are removed as delete removes them
 * (the account registry is the reference count); the share root's ACL gets the new entries (existing
 * files too when asked) and loses the removed principals' entries in the whole tree; the removed users'
 * open connections to the share are closed.
 *
 * Principals are handled here in one place (`principalDiff`): local accounts and groups today; domain
 * principals (DOMAIN\user, once AD joins exist) are to be told apart there and skip the account steps.
 */
import { lstat, readFile, rm } from 'node:fs/promises';
import { GatewayError, invalid } from '../core/errors.ts';
import type { Runner } from '../core/exec.ts';
import { fileRecord } from '../core/journal.ts';
import type { Step } from '../core/plan.ts';
import { isDomainPrincipal, shareUsers, type Share } from '../core/share.ts';
import type { Account } from '../core/store.ts';
import { sambaAccountRecord, undoSambaAccount, type SambaAccountRecord } from '../samba/repair.ts';
import { getUnixGroup, getUnixUser } from './accounts.ts';
import { accountRemovalSteps, accountSteps, planAccounts, type NativeCtx, type Passwords } from './native.ts';
import { aclSpec, revokeList } from './permissions.ts';
import { aclRecords, aclTreeRecords, withRecords } from './repair.ts';

export const PRINCIPAL_FIELDS = ['users', 'read_users', 'groups', 'read_groups'] as const;
export type PrincipalField = (typeof PRINCIPAL_FIELDS)[number];

/** What an access change adds and removes, by kind of principal. */
export interface PrincipalDiff {
  addedUsers: string[];
  removedUsers: string[];
  addedGroups: string[];
  removedGroups: string[];
  /** Whether anything in the four lists differs (a user moved between read and write counts). */
  changed: boolean;
}

export function principalDiff(before: Share, after: Share): PrincipalDiff {
  const bu = shareUsers(before);
  const au = shareUsers(after);
  const bg = [...before.groups, ...before.read_groups];
  const ag = [...after.groups, ...after.read_groups];
  const changed = PRINCIPAL_FIELDS.some((f) => JSON.stringify([...before[f]].sort()) !== JSON.stringify([...after[f]].sort()));
  return {
    addedUsers: au.filter((u) => !bu.includes(u)),
    removedUsers: bu.filter((u) => !au.includes(u)),
    addedGroups: ag.filter((x) => !bg.includes(x)),
    removedGroups: bg.filter((x) => !ag.includes(x)),
    changed,
  };
}

/** Additive edits (`access --add-user ... --remove-group ...`) applied to a share's lists. */
export interface AccessEdits {
  add_users?: string[]; remove_users?: string[];
  add_read_users?: string[]; remove_read_users?: string[];
  add_groups?: string[]; remove_groups?: string[];
  add_read_groups?: string[]; remove_read_groups?: string[];
}

export function editAccess(s: Share, e: AccessEdits): Record<PrincipalField, string[]> {
  const out: Record<PrincipalField, string[]> = { users: [...s.users], read_users: [...s.read_users], groups: [...s.groups], read_groups: [...s.read_groups] };
  const apply = (field: PrincipalField, other: PrincipalField, add: string[] = [], remove: string[] = []) => {
    for (const x of remove) {
      if (!out[field].includes(x)) throw invalid(`remove_${field}`, `${x} is not in ${field} of share ${s.sharename}`);
      out[field] = out[field].filter((y) => y !== x);
    }
    for (const x of add) {
      if (out[field].includes(x)) throw invalid(`add_${field}`, `${x} is already in ${field} of share ${s.sharename}`);
      // Adding a user with the other access moves it (write <-> read).
      out[other] = out[other].filter((y) => y !== x);
      out[field].push(x);
    }
  };
  apply('users', 'read_users', e.add_users, e.remove_users);
  apply('read_users', 'users', e.add_read_users, e.remove_read_users);
  apply('groups', 'read_groups', e.add_groups, e.remove_groups);
  apply('read_groups', 'groups', e.add_read_groups, e.remove_read_groups);
  return out;
}

export interface AccessPlan {
  /** Steps before the config is saved (accounts made, ACLs granted and revoked, secrets kept). */
  before: Step[];
  /** Steps after smbd has the new config (sessions closed, secrets and accounts removed). */
  after: Step[];
  /** The account registry after the change (the reference counts). */
  accounts: () => Account[];
  warnings: string[];
}

/**
 * Native mode. `others`: the other shares after the change (their users keep shared accounts alive).
 * `recursive`: grant the new entries on existing files and directories below the root too (the removed
 * principals' entries always go from the whole tree, before their accounts may go).
 */
export async function planNativeAccess(ctx: NativeCtx, before: Share, after: Share, others: readonly Share[], given: Passwords, adopt: readonly string[], opts: { recursive?: boolean; log?: (m: string) => void; domain?: DomainIds } = {}): Promise<AccessPlan> {
  const { run, store } = ctx;
  const diff = principalDiff(before, after);
  // Domain principals (docs/ad.md) take their ACL entries by winbind id, resolved by the caller (change.ts).
  const domainIn = (x: Share) => [...x.users, ...x.read_users, ...x.groups, ...x.read_groups].find(isDomainPrincipal);
  const dom = domainIn(before) ?? domainIn(after);
  if (dom && !opts.domain && (diff.changed || before.presets.includes('private') !== after.presets.includes('private'))) {
    throw new GatewayError('failed', `users: the domain principals (${dom}) were not resolved through winbind`, 'users');
  }
  const warnings: string[] = [];
  // Only the principals that are new to this share are checked and given accounts, as create would.
  const addedOnly: Share = {
    ...after,
    users: after.users.filter((u) => diff.addedUsers.includes(u)),
    read_users: after.read_users.filter((u) => diff.addedUsers.includes(u)),
    groups: after.groups.filter((x) => diff.addedGroups.includes(x)),
    read_groups: after.read_groups.filter((x) => diff.addedGroups.includes(x)),
  };
  for (const u of adopt) if (!diff.addedUsers.includes(u)) throw invalid('adopt', `names ${u}, who is not being added to this share`);
  const acc = await planAccounts(ctx, addedOnly, given, adopt);
  const accounts = acc.accounts;
  const steps: Step[] = [];

  steps.push(...accountSteps(ctx, acc));

  // Numeric ids of the removed principals, read now (their accounts may be gone when the step undoes).
  const removedUids: number[] = [];
  const removedGids: number[] = [];
  for (const u of diff.removedUsers.filter((x) => !isDomainPrincipal(x))) { const x = await getUnixUser(run, u); if (x) removedUids.push(x.uid); }
  for (const g of diff.removedGroups.filter((x) => !isDomainPrincipal(x))) { const x = await getUnixGroup(run, g); if (x) removedGids.push(x.gid); }
  removedUids.push(...(opts.domain?.removedUids ?? []));
  removedGids.push(...(opts.domain?.removedGids ?? []));
  // Entries other shares in the same tree grant stay.
  for (const o of others) {
    if (o.mode !== 'native' || !(within(o.path, after.path) || within(after.path, o.path))) continue;
    for (const u of shareUsers(o)) { const x = opts.domain?.others.get(u) ?? (isDomainPrincipal(u) ? undefined : (await getUnixUser(run, u))?.uid); if (x !== undefined) removeFrom(removedUids, x); }
    for (const g of [...o.groups, ...o.read_groups]) { const x = opts.domain?.others.get(g) ?? (isDomainPrincipal(g) ? undefined : (await getUnixGroup(run, g))?.gid); if (x !== undefined) removeFrom(removedGids, x); }
  }
  if (diff.changed || before.presets.includes('private') !== after.presets.includes('private')) steps.push(aclStep(run, after.path, aclSpec(after, opts.domain?.ids), revokeList(removedUids, removedGids), !!opts.recursive, warnings, opts.log, after.presets.includes('private')));

  const stored = [...acc.passwords].filter(([u]) => diff.addedUsers.includes(u));
  if (stored.length) steps.push(store.storeSecretsStep(after.sharename, new Map(stored)));

  // After: connections closed, the removed users' secrets and (unreferenced) accounts removed.
  const post: Step[] = [];
  if (diff.removedUsers.length) {
    post.push({
      name: 'close-sessions',
      shows: `close the connections of ${diff.removedUsers.join(', ')} to ${after.sharename} (smbstatus, smbcontrol close-share)`,
      do: async () => {
        const n = await closeUserConnections(ctx, after.sharename, diff.removedUsers);
        if (n) opts.log?.(`closed ${n} connection(s) of removed users to ${after.sharename}`);
      },
    });
    const localRemoved = diff.removedUsers.filter((u) => !isDomainPrincipal(u));
    if (localRemoved.length) post.push(store.removeSecretsStep(after.sharename, localRemoved));
    const stillUsed = new Set([...others, after].flatMap((s) => (s.mode === 'native' ? shareUsers(s) : [])));
    const gone = accounts.filter((a) => diff.removedUsers.includes(a.name) && !stillUsed.has(a.name));
    post.push(...accountRemovalSteps(ctx, gone));
    return { before: steps, after: post, accounts: () => accounts.filter((a) => !gone.includes(a)), warnings };
  }
  return { before: steps, after: post, accounts: () => accounts, warnings };
}

/**
 * Winbind ids of the domain principals of an access change: of the share after it (its ACL entries), of
 * those it removes (their entries go), and of other shares' domain principals (entries they still grant).
 */
export interface DomainIds { ids: ReadonlyMap<string, number>; removedUids: number[]; removedGids: number[]; others: ReadonlyMap<string, number> }

function within(path: string, root: string): boolean {
  return path === root || path.startsWith(root.endsWith('/') ? root : root + '/');
}
function removeFrom(list: number[], id: number): void {
  const i = list.indexOf(id);
  if (i >= 0) list.splice(i, 1);
}

/**
 * The share root gets the share's entries as they are now (access and default); with `recursive`, every
 * file and directory below gets them too (rwX: execute only where there was some). The removed ids'
 * entries go from the whole tree (no symlinks followed). The undo restores the ACLs saved before.
 */
export function aclStep(run: Runner, path: string, grant: string, revoke: string, recursive: boolean, warnings: string[], log?: (m: string) => void, dropDefaults = false): Step {
  const treeWide = recursive || !!revoke;
  let saved: string | undefined;
  const step: Step = {
    name: 'update-permissions',
    shows: [grant ? `setfacl ${recursive ? '-R ' : ''}-m ${grant} ${path}` : '', revoke ? `setfacl -R -x ${revoke} ${path}` : ''].filter(Boolean).join('; '),
    do: async () => {
      const st = await lstat(path).catch(() => undefined);
      if (!st?.isDirectory()) throw new GatewayError('failed', `path: ${path} is not a directory any more`, 'path');
      const before = await run('getfacl', [...(treeWide ? ['-R'] : []), '-P', '-n', '--absolute-names', '--', path], { allowFail: true });
      if (before.code !== 0 && /not supported/i.test(before.stderr)) {
        warnings.push(`the filesystem under ${path} has no POSIX ACLs: smb.conf's lists decide who gets in; unix permissions were not changed`);
        return;
      }
      if (before.code !== 0) throw new GatewayError('failed', `cannot read the ACLs of ${path}: ${before.stderr.trim().split('\n').slice(-1)[0]}`);
      saved = before.stdout;
      try {
        if (revoke) {
          log?.(`removing ${revoke} below ${path}`);
          const r = await run('setfacl', ['-R', '-P', '-x', revoke, '--', path], { allowFail: true });
          if (r.code !== 0) throw new GatewayError('failed', `removing ACL entries below ${path} failed: ${r.stderr.trim().split('\n').slice(-1)[0]}`);
        }
        // A private share's root hands nothing down: each user's directory (made on connect) is theirs alone.
        if (dropDefaults) {
          const k = await run('setfacl', ['-k', '--', path], { allowFail: true });
          if (k.code !== 0) throw new GatewayError('failed', `removing the default ACL of ${path} failed: ${k.stderr.trim()}`);
        }
        if (grant) {
          const r = await run('setfacl', ['-m', grant, '--', path], { allowFail: true });
          if (r.code !== 0) throw new GatewayError('failed', `setfacl on ${path} failed: ${r.stderr.trim()}`);
          if (recursive) {
            const count = (saved.match(/^# file:/gm) ?? []).length;
            log?.(`granting ${grant} on ${count} files and directories below ${path}`);
            const rx = grant.replace(/:rwx/g, ':rwX').replace(/:rx/g, ':rX');
            const rr = await run('setfacl', ['-R', '-P', '-m', rx, '--', path], { allowFail: true, timeoutMs: 3_600_000 });
            if (rr.code !== 0) throw new GatewayError('failed', `setfacl -R below ${path} failed: ${rr.stderr.trim().split('\n').slice(-1)[0]}`);
            log?.(`granted on ${count} files and directories`);
          }
        }
      } catch (e) {
        // A failing step leaves nothing of its own behind.
        await run('setfacl', ['--restore=-'], { input: saved, allowFail: true });
        throw e;
      }
    },
    undo: async () => { if (saved) await run('setfacl', ['--restore=-'], { input: saved }); },
  };
  return withRecords(step, () => (treeWide ? aclTreeRecords(run, path) : aclRecords(run, path)));
}

/**
 * Close the tree connects of these users to the share: each smbd serving one is told to close the
 * share (`smbcontrol <pid> close-share`); their other shares stay connected. Returns how many.
 */
export async function closeUserConnections(ctx: Pick<NativeCtx, 'samba'>, sharename: string, users: readonly string[]): Promise<number> {
  const { samba } = ctx;
  if (!(await samba.running())) return 0;
  const st = await samba.status();
  // A local user is matched by name (smbstatus may prefix the server's name); a domain user as DOMAIN\\name.
  const same = (session: string, u: string) => (u.includes('\\') ? session.toLowerCase() === u.toLowerCase() : session.split('\\').pop()!.toLowerCase() === u.toLowerCase());
  const sessions = new Set(st.sessions.filter((s) => users.some((u) => same(s.username, u))).map((s) => s.id));
  const pids = new Set(st.tcons.filter((t) => t.service.toLowerCase() === sharename.toLowerCase() && sessions.has(t.sessionId) && Number.isInteger(t.pid)).map((t) => t.pid));
  // A connection that ended since smbstatus looked is not an error.
  for (const pid of pids) await samba.closeShareOf(pid, sharename).catch(() => undefined);
  return pids.size;
}

/** A step that sets one password again, with the old passdb entry and secrets kept for its undo. */
export function passwdSteps(ctx: Pick<NativeCtx, 'samba' | 'store'>, user: string, password: string, shares: readonly string[]): Step[] {
  const { samba, store } = ctx;
  let rec: SambaAccountRecord | undefined;
  const old = new Map<string, string | undefined>();
  return [
    {
      name: 'set-samba-password',
      shows: `smbpasswd -s ${user} (password on stdin)`,
      journal: async () => { rec = await sambaAccountRecord(samba, user, password); return [rec]; },
      do: () => samba.setPassword(user, password, false),
      undo: async () => { if (rec) await undoSambaAccount(samba, rec); },
    },
    {
      name: 'store-secrets',
      shows: `0600 secret files of ${user} for ${shares.join(', ')}`,
      journal: () => Promise.all(shares.map((s) => fileRecord(store.secretPath(s, user), password))),
      do: async () => {
        for (const s of shares) {
          old.set(s, await readFile(store.secretPath(s, user), 'utf8').catch(() => undefined));
          await store.writeSecret(s, user, password);
        }
      },
      undo: async () => {
        for (const [s, v] of old) { if (v === undefined) await rm(store.secretPath(s, user), { force: true }); else await store.writeSecret(s, user, v); }
      },
    },
  ];
}
