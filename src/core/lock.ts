/**
 * A lock that Proxmox's own tools respect: a directory created with mkdir (atomic, also on pmxcfs,
 * where /etc/pve/priv/lock/<name> is cluster-wide), retried until a timeout; a lock older than the
 * stale limit (pmxcfs expires locks after 120 s) is broken.
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
      if (st && Date.now() - st.mtimeMs > staleMs) {
        await rmdir(path).catch(() => undefined);
        continue;
      }
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
