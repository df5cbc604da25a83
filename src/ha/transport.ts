/**
 * Reaching the cluster's nodes. Each node gets a Runner of its own: the local Runner for this node,
 * SSH (root@node, as Proxmox clusters already allow) for the others, or any wrapper (tests run each
 * node in its own network + mount namespace through nsenter). Commands stay argument arrays: over
 * SSH every argument is quoted for the remote shell, so nothing is re-split there.
 */
import { dirname } from 'node:path';
import { GatewayError } from '../core/errors.ts';
import { binaryFor, type RunOptions, type RunResult, type Runner } from '../core/exec.ts';

/** Quote one argument for a POSIX shell (what sshd hands the command line to). */
export function shQuote(s: string): string {
  if (/^[A-Za-z0-9_./:=@%+-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function failure(where: string, tool: string, args: readonly string[], r: RunResult): GatewayError {
  const why = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-3).join(' | ');
  return new GatewayError('failed', `${where}: ${tool} ${args[0] ?? ''} failed (exit ${r.code})${why ? `: ${why}` : ''}`);
}

/**
 * A Runner that runs every command through a prefix command (e.g. `nsenter -t PID -m -n --`,
 * `ip netns exec NS`). Errors name the node.
 */
export function prefixRunner(base: Runner, where: string, prefixTool: string, prefixArgs: readonly string[]): Runner {
  return async (tool, args, opts: RunOptions = {}) => {
    const r = await base(prefixTool, [...prefixArgs, binaryFor(tool), ...args], { ...opts, allowFail: true });
    if (r.code !== 0 && !opts.allowFail) throw failure(where, tool, args, r);
    return r;
  };
}

/** A Runner on another node over SSH as root (key-based, no prompt). Environment goes through `env`. */
export function sshRunner(base: Runner, host: string, where = host): Runner {
  return async (tool, args, opts: RunOptions = {}) => {
    const env = Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`);
    const remote = [...(env.length ? ['env', ...env] : []), binaryFor(tool), ...args].map(shQuote).join(' ');
    const r = await base('ssh', ['-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', '-o', 'StrictHostKeyChecking=yes', `root@${host}`, '--', remote], {
      ...opts, env: undefined, allowFail: true,
    });
    if (r.code === 255 && !opts.allowFail) throw new GatewayError('failed', `${where}: cannot reach node over SSH (root@${host}): ${r.stderr.trim().split('\n').slice(-1)[0] ?? ''}`);
    if (r.code !== 0 && !opts.allowFail) throw failure(where, tool, args, r);
    return r;
  };
}

/** Read a file on a node; undefined when it does not exist. */
export async function readNodeFile(run: Runner, path: string): Promise<string | undefined> {
  const r = await run('cat', ['--', path], { allowFail: true });
  return r.code === 0 ? r.stdout : undefined;
}

/** Write a file on a node atomically (temporary file + rename) through the node's Runner. */
export async function writeNodeFile(run: Runner, path: string, text: string, mode = '0644'): Promise<void> {
  const tmp = `${path}.smbgw-tmp`;
  await run('mkdir', ['-p', '--', dirname(path)]);
  await run('tee', ['--', tmp], { input: text });
  await run('chmod', [mode, '--', tmp]);
  await run('mv', ['-f', '--', tmp, path]);
}

/** Write only when the content differs; returns the previous content (undefined: absent) and whether it changed. */
export async function syncNodeFile(run: Runner, path: string, text: string, mode = '0644'): Promise<{ changed: boolean; before: string | undefined }> {
  const before = await readNodeFile(run, path);
  if (before === text) return { changed: false, before };
  await writeNodeFile(run, path, text, mode);
  return { changed: true, before };
}

export async function removeNodeFile(run: Runner, path: string): Promise<void> {
  await run('rm', ['-f', '--', path]);
}
