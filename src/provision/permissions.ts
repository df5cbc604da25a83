/**
 * Unix permissions so that Samba's access lists can work: POSIX ACLs (with defaults, so new files
 * inherit) where the filesystem has them; else the share root is owned by the first writer.
 *
 * A share root is closed to everyone the share does not name: "other" gets nothing (except on a
 * guest share, which is public by design: guests are "other"), so that neither local accounts nor the
 * users of an enclosing share can read it. A root the gateway has just made also drops every entry it
 * inherited from an enclosing directory's default ACL: only the share's own entries are left.
 */
import { chmod, chown, lstat, stat } from 'node:fs/promises';
import { GatewayError } from '../core/errors.ts';
import type { Runner } from '../core/exec.ts';
import type { Step } from '../core/plan.ts';
import { shareUsers, type Share } from '../core/share.ts';
import { getUnixGroup, getUnixUser } from './accounts.ts';
import { LXC_ID_SHIFT, parseGuestUids } from './guest.ts';

/**
 * The share's named entries (access and default) for its users and groups. `ids`: numeric uids/gids
 * for names that setfacl cannot take as they are (domain principals DOMAIN\\name, resolved by winbind).
 */
export function aclSpec(s: Share, ids?: ReadonlyMap<string, number>): string {
  const e: string[] = [];
  const w = s.read_only ? 'rx' : 'rwx';
  const n = (x: string) => String(ids?.get(x) ?? x);
  // Private shares: users only pass through the root into their own directory (made 0700 on connect).
  if (s.presets.includes('private')) return [...shareUsers(s).map((u) => `u:${n(u)}:x`), ...[...s.groups, ...s.read_groups].map((g) => `g:${n(g)}:x`)].join(',');
  for (const u of s.users) e.push(`u:${n(u)}:${w}`, `d:u:${n(u)}:${w}`);
  for (const u of s.read_users) e.push(`u:${n(u)}:rx`, `d:u:${n(u)}:rx`);
  for (const g of s.groups) e.push(`g:${n(g)}:${w}`, `d:g:${n(g)}:${w}`);
  for (const g of s.read_groups) e.push(`g:${n(g)}:rx`, `d:g:${n(g)}:rx`);
  return e.join(',');
}

/**
 * Every entry set on the share root. `fresh`: a root the gateway has just made (root-owned): owner
 * rwx, owning group and other nothing, then the share's entries; setfacl computes the mask from them.
 * An existing root keeps the admin's entries and only loses "other".
 */
export function rootAclEntries(s: Share, fresh: boolean, ids?: ReadonlyMap<string, number>): string {
  const other = s.guest_ok ? 'r-x' : '---';
  const base = fresh
    ? ['u::rwx', 'g::---', `o::${other}`, 'd:u::rwx', 'd:g::---', `d:o::${other}`]
    : s.guest_ok ? [] : ['o::---', 'd:o::---'];
  const named = aclSpec(s, ids);
  return [...base, ...(named ? [named] : [])].join(',');
}

const notSupported = (stderr: string) => /not supported/i.test(stderr);

/**
 * The step that grants the share's users and groups the root and closes it to everyone else.
 * `fresh`: the gateway made the root in this plan (its inherited entries are dropped: setfacl -b).
 * The undo puts back owner, mode, flags and ACL exactly as getfacl saw them.
 */
export function permissionSteps(run: Runner, path: string, share: Share, warnings: string[], opts: { fresh: boolean; noAcl?: string; ids?: () => ReadonlyMap<string, number> }): Step[] {
  const entries = rootAclEntries(share, opts.fresh);
  if (!entries) return [];
  // domain principals: their winbind ids are known when the step runs (after a join in the same plan)
  const resolved = () => (opts.ids ? rootAclEntries(share, opts.fresh, opts.ids()) : entries);
  let savedAcl: string | undefined;
  let savedOwner: { uid: number; gid: number; mode: number } | undefined;
  return [{
    name: 'grant-permissions',
    shows: `setfacl ${opts.fresh ? "-b " : ""}-m ${entries} ${path}`,
    do: async () => {
      const before = await run('getfacl', ['--absolute-names', '--', path], { allowFail: true });
      // noAcl: the filesystem has ACLs but the server does not see them (vfs_ceph): unix permissions only.
      const r = opts.noAcl ? { code: 1, stderr: 'not supported' } : await run('setfacl', [...(opts.fresh ? ['-b'] : []), '-m', resolved(), '--', path], { allowFail: true });
      if (r.code === 0) { savedAcl = before.stdout; return; }
      if (!notSupported(r.stderr)) throw new GatewayError('failed', `setfacl on ${path} failed: ${r.stderr.trim()}`);
      // No POSIX ACLs (e.g. zfs-fuse): the first writer (else the first group) owns the share root, other gets nothing.
      const st = await stat(path);
      savedOwner = { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 };
      const other = share.guest_ok ? (opts.fresh ? 0o005 : st.mode & 0o007) : 0;
      const owner = await fallbackOwner(run, share);
      if (!owner) { await chmod(path, (st.mode & 0o7770) | other); return; }
      const mode = (opts.fresh ? 0 : st.mode & 0o7070) | 0o700 | owner.groupBits | other;
      await chown(path, owner.uid ?? st.uid, owner.gid);
      await chmod(path, mode);
      const others = [...shareUsers(share), ...share.groups, ...share.read_groups].filter((n) => n !== owner.name);
      warnings.push(`${opts.noAcl ?? 'the filesystem has no POSIX ACLs'}: ${path} belongs to ${owner.uid === undefined ? 'group ' : ''}${owner.name} (mode ${mode.toString(8).padStart(4, '0')})${others.length ? `; ${others.join(', ')} can reach it only where unix permissions allow` : ''}`);
    },
    undo: async () => {
      if (savedAcl !== undefined) await run('setfacl', ['--restore=-'], { input: savedAcl });
      if (savedOwner) { await chown(path, savedOwner.uid, savedOwner.gid); await chmod(path, savedOwner.mode); }
    },
  }];
}

/** Without ACLs: the first writer (or reader) owns the root; with no user, the first group does. */
async function fallbackOwner(run: Runner, share: Share): Promise<{ name: string; uid?: number; gid: number; groupBits: number } | undefined> {
  const user = share.users[0] ?? share.read_users[0];
  const u = user ? await getUnixUser(run, user) : undefined;
  if (u) return { name: u.name, uid: u.uid, gid: u.gid, groupBits: 0 };
  const group = share.groups[0] ?? share.read_groups[0];
  const g = group ? await getUnixGroup(run, group) : undefined;
  const writes = !share.read_only && share.groups[0] !== undefined;
  return g ? { name: g.name, gid: g.gid, groupBits: writes ? 0o070 : 0o050 } : undefined;
}

function within(path: string, root: string): boolean {
  return path === root || path.startsWith(root.endsWith('/') ? root : root + '/');
}

/** Numeric uids and gids a share's ACL entries name on the host (native: its accounts; guests: their mapped ids). */
async function shareIds(run: Runner, s: Share): Promise<{ uids: Set<number>; gids: Set<number> }> {
  const uids = new Set<number>();
  const gids = new Set<number>();
  if (s.mode === 'native') {
    for (const u of shareUsers(s)) { const x = await getUnixUser(run, u); if (x) uids.add(x.uid); }
    for (const g of [...s.groups, ...s.read_groups]) { const x = await getUnixGroup(run, g); if (x) gids.add(x.gid); }
  } else {
    const shift = s.mode === 'lxc' ? LXC_ID_SHIFT : 0;
    for (const id of parseGuestUids(s.guest_uids).values()) uids.add(id + shift);
  }
  return { uids, gids };
}

/** The setfacl -x list for these ids: access and default entries. */
export function revokeList(uids: Iterable<number>, gids: Iterable<number>): string {
  const e: string[] = [];
  for (const id of uids) e.push(`u:${id}`, `d:u:${id}`);
  for (const id of gids) e.push(`g:${id}`, `d:g:${id}`);
  return e.join(',');
}

/**
 * Delete: remove the share's named ACL entries (its users' and groups', access and default) from the
 * share path and everything below it, before its accounts are removed. The entries name numeric ids
 * and files inherit them through the default ACL: an account made later with the same uid would
 * otherwise get the access. Entries for ids that a remaining share in the same tree (its path above or
 * below this one) also grants are kept. Symbolic links are not followed; the mask is not recomputed
 * (never widened). The undo restores the ACLs saved by getfacl -R.
 */
export function revokePermissionsStep(run: Runner, share: Share, remaining: readonly Share[]): Step {
  let saved: string | undefined;
  return {
    name: 'revoke-permissions',
    shows: `remove this share's ACL entries below ${share.path}`,
    do: async () => {
      const path = share.path;
      // Checked when it runs: a real directory (not a symlink put in its place), else nothing to revoke.
      const st = await lstat(path).catch(() => undefined);
      if (!st?.isDirectory()) return;
      const mine = await shareIds(run, share);
      for (const other of remaining) {
        if (other.sharename === share.sharename || !(within(other.path, path) || within(path, other.path))) continue;
        const keep = await shareIds(run, other);
        for (const id of keep.uids) mine.uids.delete(id);
        for (const id of keep.gids) mine.gids.delete(id);
      }
      const list = revokeList(mine.uids, mine.gids);
      if (!list) return;
      const before = await run('getfacl', ['-R', '-P', '-s', '--absolute-names', '--', path], { allowFail: true });
      if (before.code !== 0) throw new GatewayError('failed', `cannot save the ACLs under ${path} before removing the share's entries: ${before.stderr.trim().split('\n').slice(-1)[0]}`);
      const r = await run('setfacl', ['-R', '-P', '-n', '-x', list, '--', path], { allowFail: true });
      if (r.code !== 0 && notSupported(r.stderr)) return; // no POSIX ACLs: no entries to remove
      if (r.code !== 0) {
        // A failed step leaves nothing behind: what it removed before the error goes back now.
        if (before.stdout) await run('setfacl', ['--restore=-'], { input: before.stdout, allowFail: true });
        throw new GatewayError('failed', `removing the share's ACL entries under ${path} failed: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
      }
      saved = before.stdout;
    },
    undo: async () => {
      if (saved) await run('setfacl', ['--restore=-'], { input: saved });
    },
  };
}
