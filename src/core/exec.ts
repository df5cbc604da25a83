/**
 * Every external command goes through one Runner, by tool name, with an argument array (never a shell).
 * Tests substitute binaries by tool name (SMBGW_BIN_<TOOL>=/path) or swap the whole Runner.
 * Secrets travel on stdin (`input`), never in argv, and argv is what gets logged.
 */
import { execFile } from 'node:child_process';
import { GatewayError } from './errors.ts';

export interface RunOptions {
  /** Written to the child's stdin (secrets go here). */
  input?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
  /** Return the result instead of throwing on a non-zero exit. */
  allowFail?: boolean;
  cwd?: string;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export type Runner = (tool: string, args: readonly string[], opts?: RunOptions) => Promise<RunResult>;

/** Binary for a tool name; SMBGW_BIN_SMBCONTROL=/x/smbcontrol overrides `smbcontrol`. */
export function binaryFor(tool: string): string {
  const key = 'SMBGW_BIN_' + tool.toUpperCase().replace(/[^A-Z0-9]/g, '_');
  return process.env[key] ?? tool;
}

export const execRunner: Runner = (tool, args, opts = {}) =>
  new Promise((resolve, reject) => {
    const bin = binaryFor(tool);
    const child = execFile(
      bin,
      [...args],
      {
        env: { ...process.env, LC_ALL: 'C', ...(opts.env ?? {}) },
        timeout: opts.timeoutMs ?? 60_000,
        maxBuffer: 64 * 1024 * 1024,
        cwd: opts.cwd,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as NodeJS.ErrnoException & { code?: unknown }).code === 'number' ? Number((err as { code: number }).code) : 1) : 0;
        if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
          reject(new GatewayError('unavailable', `${tool}: command not found (${bin})`));
          return;
        }
        const res = { code, stdout: String(stdout), stderr: String(stderr) };
        if (code !== 0 && !opts.allowFail) {
          const why = (res.stderr.trim() || res.stdout.trim() || (err?.message ?? '')).split('\n').slice(-3).join(' | ');
          reject(new GatewayError('failed', `${tool} ${args[0] ?? ''} failed (exit ${code}): ${why}`));
          return;
        }
        resolve(res);
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
