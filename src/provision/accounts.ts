/** Local unix accounts that Samba maps SMB users onto (native mode). */
import type { Runner } from '../core/exec.ts';

export interface UnixUser { name: string; uid: number; gid: number }

export async function getUnixUser(run: Runner, name: string): Promise<UnixUser | undefined> {
  const r = await run('getent', ['passwd', name], { allowFail: true });
  if (r.code !== 0) return undefined;
  const f = r.stdout.trim().split(':');
  return { name, uid: Number(f[2]), gid: Number(f[3]) };
}

/** A login-less system account with its own group and no home directory. */
export async function addUnixUser(run: Runner, name: string, uid?: number): Promise<void> {
  await run('useradd', ['--no-create-home', '--shell', '/usr/sbin/nologin', '--user-group', ...(uid !== undefined ? ['--uid', String(uid)] : []), name]);
}

export async function deleteUnixUser(run: Runner, name: string): Promise<void> {
  await run('userdel', [name], { allowFail: true });
  await run('groupdel', [name], { allowFail: true });
}

export async function getUnixGroup(run: Runner, name: string): Promise<{ name: string; gid: number } | undefined> {
  const r = await run('getent', ['group', name], { allowFail: true });
  if (r.code !== 0) return undefined;
  const gid = Number(r.stdout.trim().split(':')[2]);
  return Number.isInteger(gid) ? { name, gid } : undefined;
}
