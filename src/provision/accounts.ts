/** Local unix accounts that Samba maps SMB users onto (native mode). */
import { GatewayError } from '../core/errors.ts';
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

/** A unix account as the passwd and group databases hold it (enough to make it again exactly). */
export interface UnixAccount { name: string; uid: number; gid: number; gecos: string; home: string; shell: string; group?: string }

export async function getUnixAccount(run: Runner, name: string): Promise<UnixAccount | undefined> {
  const r = await run('getent', ['passwd', name], { allowFail: true });
  if (r.code !== 0) return undefined;
  const f = r.stdout.trim().split('\n')[0]!.split(':');
  const gid = Number(f[3]);
  const g = await run('getent', ['group', String(gid)], { allowFail: true });
  const group = g.code === 0 ? g.stdout.trim().split(':')[0] : undefined;
  return { name, uid: Number(f[2]), gid, gecos: f[4] ?? '', home: f[5] ?? '', shell: f[6] ?? '', ...(group ? { group } : {}) };
}

/**
 * The id the next new account gets (as useradd picks it: one above the highest uid or gid in the
 * range, else the lowest free one), chosen before the account is made so that the journal holds it.
 */
export async function nextFreeId(run: Runner, min: number, max: number, taken: ReadonlySet<number> = new Set()): Promise<number> {
  const used = new Set(taken);
  for (const db of ['passwd', 'group']) {
    const r = await run('getent', [db], { allowFail: true });
    for (const l of r.stdout.split('\n')) { const id = Number(l.split(':')[2]); if (Number.isInteger(id)) used.add(id); }
  }
  const inRange = [...used].filter((id) => id >= min && id <= max);
  const next = inRange.length ? Math.max(...inRange) + 1 : min;
  if (next <= max && !used.has(next)) return next;
  for (let id = min; id <= max; id++) if (!used.has(id)) return id;
  throw new GatewayError('failed', `no free uid left in ${min}..${max} (account_uid_min..account_uid_max)`);
}

/**
 * A unix account a step is about to make (`before` null, `after` the uid it gets) or remove (`before`
 * the account as it was, `after` null).
 */
export type UnixAccountRecord = { kind: 'unix-account'; name: string; before: UnixAccount | null; after: { uid: number } | null };

/** Make an account again exactly as it was (its group too, when it was its own). */
export async function restoreUnixAccount(run: Runner, a: UnixAccount): Promise<void> {
  if (a.group === a.name && !(await getUnixGroup(run, a.name))) await run('groupadd', ['--gid', String(a.gid), a.name]);
  await run('useradd', ['--no-create-home', '--uid', String(a.uid), '--gid', String(a.gid), '--comment', a.gecos, '--home-dir', a.home, '--shell', a.shell, a.name]);
}

/** Undo one record: only the account the step made (by its uid), or put back the one it removed. */
export async function undoUnixAccount(run: Runner, r: UnixAccountRecord): Promise<string> {
  const cur = await getUnixAccount(run, r.name);
  if (r.before === null) {
    if (!cur) {
      // useradd makes the group first: a kill in between leaves it alone, with the gid useradd gave it.
      const g = await run('getent', ['group', r.name], { allowFail: true });
      if (g.code === 0 && r.after && Number(g.stdout.split(':')[2]) === r.after.uid && g.stdout.trim().split(':')[3] === '') {
        await run('groupdel', [r.name]);
        return `removed group ${r.name}`;
      }
      return `unix account ${r.name} is not there`;
    }
    if (!r.after || cur.uid !== r.after.uid) throw new GatewayError('failed', `unix account ${r.name} has uid ${cur.uid}, not the uid ${r.after?.uid ?? '?'} it was made with: left as it is`);
    await deleteUnixUser(run, r.name);
    return `removed unix account ${r.name} (uid ${cur.uid})`;
  }
  if (cur) {
    if (cur.uid === r.before.uid) return `unix account ${r.name} is there`;
    throw new GatewayError('failed', `unix account ${r.name} exists again with uid ${cur.uid} (it had ${r.before.uid}): left as it is`);
  }
  await restoreUnixAccount(run, r.before);
  return `made unix account ${r.name} again (uid ${r.before.uid})`;
}
