/**
 * A lock that Proxmox's own tools respect: a directory created with mkdir (atomic, also on pmxcfs,
 * where /etc/pve/priv/lock/<name> is cluster-wide), retried until a timeout; a lock older than the
 * stale limit (pmxcfs expires locks after 120 s) is broken.
 *
 * Breaking is serialized: two waiters that both saw the stale lock must not both remove "it", since
 * the second removal would hit the fresh lock the first one has taken meanwhile. A waiter breaks the
 * lock only while it holds a second mkdir lock (`<name>.break`), and only if, checked again under it,
 * the lock is still stale.
 */
import { mkdir, rmdir, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { GatewayError } from './errors.ts';

export interface LockOptions {
  timeoutMs?: number;
  staleMs?: number;
  retryMs?: number;
}

export async function withLock<T>(lockDir: string, name: string, fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
  const { timeoutMs = 10_000, staleMs = 120_000, retryMs = 50 } = opts;
  const path = join(lockDir, name);
  await mkdir(lockDir, { recursive: true });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await mkdir(path);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const st = await stat(path).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > staleMs && (await breakStale(path, staleMs))) continue;
      if (Date.now() > deadline) throw new GatewayError('locked', `could not get lock ${path} within ${timeoutMs / 1000} s (held by another operation)`);
      await new Promise((r) => setTimeout(r, retryMs + Math.random() * retryMs));
    }
  }
  // Keep the lock fresh while we hold it, as PVE does, so that a long operation is not taken as stale.
  const keepAlive = setInterval(() => { const now = new Date(); utimes(path, now, now).catch(() => undefined); }, Math.max(1000, staleMs / 4));
  keepAlive.unref();
  try {
    return await fn();
  } finally {
    clearInterval(keepAlive);
    await rmdir(path).catch(() => undefined);
  }
}

/**
 * Remove the lock at `path` if it is (still) stale, holding the break guard. Returns whether this
 * waiter broke it; false when another waiter holds the guard (the caller waits and tries again).
 */
async function breakStale(path: string, staleMs: number): Promise<boolean> {
  const guard = `${path}.break`;
  try {
    await mkdir(guard);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    // A guard is held for a stat and an rmdir; one older than that was left by a waiter that died
    // while breaking, and would keep everyone from ever breaking the lock.
    const g = await stat(guard).catch(() => undefined);
    if (g && Date.now() - g.mtimeMs > Math.min(staleMs, GUARD_STALE_MS)) await rmdir(guard).catch(() => undefined);
    return false;
  }
  try {
    const st = await stat(path).catch(() => undefined);
    if (!st || Date.now() - st.mtimeMs <= staleMs) return false;
    await rmdir(path).catch(() => undefined);
    return true;
  } finally {
    await rmdir(guard).catch(() => undefined);
  }
}

const GUARD_STALE_MS = 5_000;
