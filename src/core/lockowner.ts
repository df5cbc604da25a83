/**
 * Who holds a mkdir lock (lock.ts), so that the lock of a process that was killed need not wait out the
 * stale limit (120 s, pmxcfs' rule): the holder writes its host, pid (and the pid's start time) and the
 * lock directory's identity into an owner file beside its journal; a later operation on the same host
 * that finds the lock held by a process that no longer runs removes it. Breakers take turns through a
 * second lock, so that two of them never both take the lock the first one has just broken.
 */
import { readFile, rm, rmdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { withLock } from './lock.ts';
import { processAlive, processStart, thisHost, writeDurable } from './journal.ts';

interface LockOwner { host: string; pid: number; pidStart?: string; dev: number; ino: number; birth: number }

export async function recordLockOwner(ownerFile: string, lockPath: string): Promise<void> {
  const st = await stat(lockPath);
  const o: LockOwner = { host: thisHost(), pid: process.pid, pidStart: processStart(process.pid), dev: st.dev, ino: st.ino, birth: st.birthtimeMs };
  await writeDurable(ownerFile, JSON.stringify(o) + '\n', 0o600);
}

/**
 * Break the lock when its recorded owner ran on this host and is gone, and the lock directory is still
 * the one it made. Returns whether the lock was broken (or is free now).
 */
export async function breakDeadLock(ownerFile: string, lockDir: string, name: string, log: (m: string) => void = () => undefined): Promise<boolean> {
  const lockPath = join(lockDir, name);
  return withLock(lockDir, `${name}.break`, async () => {
    const o = await readFile(ownerFile, 'utf8').then((t) => JSON.parse(t) as LockOwner, () => undefined);
    if (!o || o.host !== thisHost() || processAlive(o.pid, o.pidStart)) return false;
    const st = await stat(lockPath).catch(() => undefined);
    if (!st) return true;
    if (st.dev !== o.dev || st.ino !== o.ino || (o.birth && st.birthtimeMs !== o.birth)) return false;
    // The owner file goes first: whoever takes the lock next finds no dead owner to break.
    await rm(ownerFile, { force: true });
    await rmdir(lockPath).catch(() => undefined);
    log(`broke lock ${lockPath} of pid ${o.pid}, which is no longer running`);
    return true;
  }, { timeoutMs: 5000 });
}
