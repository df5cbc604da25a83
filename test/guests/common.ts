/**
 * Shared plumbing of the real-guest machinery (test side): where caches live, how commands run,
 * small waiting/timing helpers. Every command is an argument array (never a shell string): either
 * through the project's Runner (src/core/exec.ts) or, for pipes and daemons, child_process.spawn.
 */
import { spawn, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { execRunner, type RunOptions, type RunResult } from '../../src/core/exec.ts';

/** Caches (rootfs, VM image, templates) live outside the repo so that runs and clones share them. */
export function cacheRoot(): string {
  return process.env.SMBGW_GUEST_CACHE ?? '/var/cache/pve-smbgateway-test';
}

/** Runs a tool (argument array) through the project's Runner; throws with the tool's stderr on failure. */
export function run(tool: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return execRunner(tool, args, { timeoutMs: 120_000, ...opts });
}

/** A short random suffix for names that must be unique per run (containers, namespaces, dirs). */
export function uid(bytes = 3): string {
  return randomBytes(bytes).toString('hex');
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Seconds since `t0` (a Date.now() value), rounded to 10 ms. */
export function since(t0: number): number {
  return Math.round((Date.now() - t0) / 10) / 100;
}

/** Polls `probe` until it returns a truthy value or the timeout passes (then throws `what`). */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | null | false>, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${last ? ` (last error: ${(last as Error).message ?? last})` : ''}`);
    await sleep(everyMs);
  }
}

/**
 * Runs `producer | consumer` (two argument arrays, no shell) and resolves when both exit 0;
 * rejects with the stderr of the side that failed.
 */
export async function pipe(producer: [string, ...string[]], consumer: [string, ...string[]], opts: SpawnOptions = {}): Promise<void> {
  const a = spawn(producer[0], producer.slice(1), { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
  const b = spawn(consumer[0], consumer.slice(1), { ...opts, stdio: ['pipe', 'ignore', 'pipe'] });
  a.stdout!.pipe(b.stdin!);
  let ea = '';
  let eb = '';
  a.stderr!.on('data', (d) => { ea += d; });
  b.stderr!.on('data', (d) => { eb += d; });
  const [[ca], [cb]] = await Promise.all([once(a, 'close'), once(b, 'close')]);
  if (ca !== 0) throw new Error(`${producer.join(' ')} failed (exit ${ca}): ${ea.trim().slice(-500)}`);
  if (cb !== 0) throw new Error(`${consumer.join(' ')} failed (exit ${cb}): ${eb.trim().slice(-500)}`);
}

/** Runs a command with a binary or text stdin (the Runner takes strings only). */
export async function runWithInput(bin: string, args: readonly string[], input: string | Buffer, timeoutMs = 60_000): Promise<RunResult> {
  const c = spawn(bin, [...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
  let stdout = '';
  let stderr = '';
  c.stdout!.on('data', (d) => { stdout += d; });
  c.stderr!.on('data', (d) => { stderr += d; });
  c.stdin!.on('error', () => undefined);
  c.stdin!.end(input);
  const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
  const [code] = await once(c, 'close');
  clearTimeout(t);
  const res = { code: typeof code === 'number' ? code : 1, stdout, stderr };
  if (res.code !== 0) throw new Error(`${bin} ${args.join(' ')} failed (exit ${res.code}): ${stderr.trim().slice(-500)}`);
  return res;
}

/** True if a process with this pid exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Optional progress output: set SMBGW_GUEST_VERBOSE=1 to see build/boot steps on stderr. */
export function note(msg: string): void {
  if (process.env.SMBGW_GUEST_VERBOSE) process.stderr.write(`[guests] ${msg}\n`);
}
