/**
 * Unix permissions so that Samba's access lists can work: POSIX ACLs (with defaults, so new files
 * inherit) where the filesystem has them; else the share root is owned by the first writer.
 */
import { chmod, chown, stat } from 'node:fs/promises';
import type { Runner } from '../core/exec.ts';
import type { Step } from '../core/plan.ts';
import type { Share } from '../core/share.ts';
import { getUnixUser } from './accounts.ts';

export function aclSpec(s: Share): string {
  const e: string[] = [];
  const w = s.read_only ? 'rx' : 'rwx';
  for (const u of s.users) e.push(`u:${u}:${w}`, `d:u:${u}:${w}`);
  for (const u of s.read_users) e.push(`u:${u}:rx`, `d:u:${u}:rx`);
  for (const g of s.groups) e.push(`g:${g}:${w}`, `d:g:${g}:${w}`);
  for (const g of s.read_groups) e.push(`g:${g}:rx`, `d:g:${g}:rx`);
  return e.join(',');
}

export function permissionSteps(run: Runner, path: string, share: Share, warnings: string[]): Step[] {
  const spec = aclSpec(share);
  if (!spec) return [];
  let savedAcl: string | undefined;
  let savedOwner: { uid: number; gid: number; mode: number } | undefined;
  return [{
    name: 'grant-permissions',
    do: async () => {
      const before = await run('getfacl', ['--absolute-names', '--', path], { allowFail: true });
      const r = await run('setfacl', ['-m', spec, '--', path], { allowFail: true });
      if (r.code === 0) { savedAcl = before.stdout; return; }
      if (!/not supported/i.test(r.stderr)) throw new Error(`setfacl on ${path} failed: ${r.stderr.trim()}`);
      // No POSIX ACLs (e.g. zfs-fuse): the first writer owns the share root.
      const owner = share.users[0] ?? share.read_users[0];
      const u = owner ? await getUnixUser(run, owner) : undefined;
      if (!u) return;
      const st = await stat(path);
      savedOwner = { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 };
      await chown(path, u.uid, u.gid);
      await chmod(path, 0o755);
      const others = [...share.users.slice(1), ...share.groups];
      if (others.length) warnings.push(`the filesystem has no POSIX ACLs: ${path} is owned by ${owner}; ${others.join(', ')} can write only where unix permissions allow`);
    },
    undo: async () => {
      if (savedAcl !== undefined) await run('setfacl', ['--restore=-'], { input: savedAcl });
      if (savedOwner) { await chown(path, savedOwner.uid, savedOwner.gid); await chmod(path, savedOwner.mode); }
    },
  }];
}
