/**
 * What testparm made of the admin's smb.conf (its [global] parameters), kept in the node's state
 * directory by everything it was made from: the text testparm read, the testparm binary (a Samba
 * upgrade changes defaults) and the host name (the default `netbios name`). Every operation renders
 * the managed file with these, and testparm costs a process start (25–40 ms) on the operation's
 * critical path; the admin's smb.conf rarely changes. A file that pulls in others (`include`,
 * `config file`, `config backend = registry`) is never cached: those could change under the same text.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { delimiter, isAbsolute, join } from 'node:path';
import { binaryFor } from '../core/exec.ts';
import { atomicWrite } from '../core/store.ts';

export const GLOBALS_CACHE = 'admin-globals.json';

async function binaryPath(tool: string): Promise<string | undefined> {
  const bin = binaryFor(tool);
  const candidates = isAbsolute(bin) ? [bin] : (process.env.PATH ?? '').split(delimiter).filter(Boolean).map((d) => join(d, bin));
  for (const c of candidates) if ((await stat(c).catch(() => undefined))?.isFile()) return c;
  return undefined;
}

/** The cache key of what testparm makes of `conf`, or undefined when it must be asked each time. */
export async function globalsKey(conf: string): Promise<string | undefined> {
  if (/^[ \t]*(include|config[ \t]*file|config[ \t]*backend)[ \t]*=/im.test(conf)) return undefined;
  const bin = await binaryPath('testparm');
  const st = bin ? await stat(bin).catch(() => undefined) : undefined;
  if (!bin || !st) return undefined;
  return createHash('sha256').update(JSON.stringify([conf, bin, st.size, st.mtimeMs, st.ino, hostname()])).digest('hex');
}

export async function readGlobals(stateDir: string, key: string): Promise<Record<string, string> | undefined> {
  try {
    const c = JSON.parse(await readFile(join(stateDir, GLOBALS_CACHE), 'utf8')) as { key?: unknown; globals?: unknown };
    if (c.key !== key || typeof c.globals !== 'object' || c.globals === null) return undefined;
    const g = c.globals as Record<string, unknown>;
    return Object.values(g).every((v) => typeof v === 'string') ? (g as Record<string, string>) : undefined;
  } catch {
    return undefined; // missing or unreadable: testparm is asked
  }
}

export async function writeGlobals(stateDir: string, key: string, globals: Record<string, string>): Promise<void> {
  await atomicWrite(join(stateDir, GLOBALS_CACHE), JSON.stringify({ key, globals }) + '\n', 0o600).catch(() => undefined);
}
