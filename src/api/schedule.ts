/** The daemon's scheduled housekeeping: the recycle preset's retention (provision/recycle.ts). */
import { purgeAllRecycle } from '../provision/recycle.ts';
import type { Gateway } from '../provision/context.ts';

/** Hourly, and once a minute after start; returns the function that stops it. */
export function scheduleRecyclePurge(g: Gateway, everyMs = Number(process.env.SMBGW_RECYCLE_PURGE_MS) || 3_600_000): () => void {
  const run = async () => { await purgeAllRecycle(await g.store.list().catch(() => []), g.log); };
  const first = setTimeout(() => void run(), Math.min(everyMs, 60_000));
  const timer = setInterval(() => void run(), everyMs);
  first.unref(); timer.unref();
  return () => { clearTimeout(first); clearInterval(timer); };
}
