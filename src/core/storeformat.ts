/**
 * The share store's format version. shares.cfg names it in its header comment (`# format: N`);
 * a file without one was written by 0.1 (format 1). Reading an older format is always possible
 * (store.ts normalises 0.1's values on read); `migrateStore` writes such a file back in the current
 * format, under the store's lock, as the package's postinst does on upgrade. A file of a newer
 * format than this version knows is refused rather than rewritten and narrowed.
 */
import { GatewayError } from './errors.ts';
import type { ShareStore } from './store.ts';

/** 1: 0.1 (no header; `created` comma-joined, vm defaults in every share). 2: versioned header. */
export const STORE_FORMAT = 2;
export const FORMAT_LINE = `# format: ${STORE_FORMAT}`;

/** The format a store file's text declares (1 when it declares none). */
export function storeFormat(text: string): number {
  for (const line of text.split('\n')) {
    if (!/^\s*#/.test(line)) { if (line.trim()) break; continue; }
    const m = /^\s*#\s*format:\s*(\d+)\s*$/.exec(line);
    if (m) return Number(m[1]);
  }
  return 1;
}

/** Refuses a file this version cannot read faithfully. */
export function checkStoreFormat(text: string, path: string): void {
  const f = storeFormat(text);
  if (f > STORE_FORMAT) throw new GatewayError('failed', `${path} is in store format ${f}, written by a newer pve-smbgateway (this one reads up to ${STORE_FORMAT}): upgrade pve-smbgateway on this node`);
}

export interface Migration { path: string; from: number; to: number; shares: number }

/** Rewrites the store in the current format if an older one wrote it; undefined when nothing was to do. */
export async function migrateStore(store: ShareStore): Promise<Migration | undefined> {
  return store.locked(async () => {
    const text = await store.readRaw();
    if (text === undefined) return undefined;
    const from = storeFormat(text);
    checkStoreFormat(text, store.cfgPath);
    if (from === STORE_FORMAT) return undefined;
    const { shares, accounts } = await store.load();
    await store.write(shares, accounts);
    return { path: store.cfgPath, from, to: STORE_FORMAT, shares: shares.length };
  });
}
