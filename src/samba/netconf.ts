/**
 * Samba's registry configuration through `net conf` (clustered shares live there, replicated by CTDB):
 * the one place its command lines are built and its output parsed.
 */
import type { Runner } from '../core/exec.ts';

/** Parse `net conf showshare NAME` output into parameters. */
export function parseNetConfShare(text: string): [string, string][] {
  const out: [string, string][] = [];
  for (const raw of text.split('\n')) {
    const m = /^\s+([^=]+?)\s*=\s*(.*?)\s*$/.exec(raw);
    if (m) out.push([m[1]!.toLowerCase(), m[2]!]);
  }
  return out;
}

/**
 * The `net` argument lists that make a registry share with these parameters (dropping it first when it
 * exists). The share's `path` parameter, when given, wins over `path`: a share served through a VFS
 * module that is not the local file system (vfs_ceph) has its path inside that file system, not the
 * node's mount point of it (with the mount point, vfs_ceph's tree connect failed: no such directory).
 */
export function netConfShareArgs(name: string, path: string, params: readonly [string, string][], exists: boolean): string[][] {
  const cmds: string[][] = [];
  if (exists) cmds.push(['conf', 'delshare', name]);
  cmds.push(['conf', 'addshare', name, params.find(([k]) => k === 'path')?.[1] ?? path, 'writeable=n', 'guest_ok=n']);
  for (const [k, v] of params) if (k !== 'path') cmds.push(['conf', 'setparm', name, k, v]);
  return cmds;
}

/** A registry share's parameters, or undefined when there is none of that name. */
export async function netConfShow(run: Runner, name: string): Promise<[string, string][] | undefined> {
  const r = await run('net', ['conf', 'showshare', name], { allowFail: true, timeoutMs: 30_000 });
  return r.code === 0 ? parseNetConfShare(r.stdout) : undefined;
}

export async function netConfApply(run: Runner, name: string, path: string, params: readonly [string, string][], exists: boolean): Promise<void> {
  for (const args of netConfShareArgs(name, path, params, exists)) await run('net', args, { timeoutMs: 30_000 });
}

export async function netConfDelete(run: Runner, name: string, o: { allowFail?: boolean } = {}): Promise<void> {
  await run('net', ['conf', 'delshare', name], { timeoutMs: 30_000, allowFail: o.allowFail });
}

/** Put a registry share back as it was (its parameters as netConfShow gave them). */
export async function netConfRestore(run: Runner, name: string, params: readonly [string, string][]): Promise<void> {
  await run('net', ['conf', 'addshare', name, params.find(([k]) => k === 'path')?.[1] ?? '/nonexistent']);
  for (const [k, v] of params) if (k !== 'path') await run('net', ['conf', 'setparm', name, k, v]);
}
