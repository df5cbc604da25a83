/**
 * Two commands joined by a pipe (`a | b`) without a shell: argument arrays, the first's stdout into
 * the second's stdin; fails with the failing side's stderr. For `zfs send | zfs recv` and
 * `btrfs send | btrfs receive` (the command lines come from their adapters, core/zfs.ts, core/btrfs.ts).
 */
import { spawn } from 'node:child_process';
import { binaryFor } from './exec.ts';
import { GatewayError } from './errors.ts';

export interface Cmd { tool: string; args: readonly string[] }

export function runPipe(a: Cmd, b: Cmd, o: { timeoutMs?: number } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, LC_ALL: 'C' };
    const pa = spawn(binaryFor(a.tool), [...a.args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const pb = spawn(binaryFor(b.tool), [...b.args], { env, stdio: ['pipe', 'ignore', 'pipe'] });
    pa.stdout.pipe(pb.stdin);
    pb.stdin.on('error', () => undefined); // the receiver gone: its own exit status says why
    const err = { a: '', b: '' };
    pa.stderr.on('data', (d) => { err.a = (err.a + String(d)).slice(-4000); });
    pb.stderr.on('data', (d) => { err.b = (err.b + String(d)).slice(-4000); });
    const timer = setTimeout(() => { pa.kill(); pb.kill(); }, o.timeoutMs ?? 6 * 3600_000);
    const exit = (p: import('node:child_process').ChildProcess) => new Promise<number>((res) => { p.on('error', () => res(127)); p.on('close', (c) => res(c ?? 1)); });
    Promise.all([exit(pa), exit(pb)]).then(([ca, cb]) => {
      clearTimeout(timer);
      const line = (s: string) => s.trim().split('\n').slice(-3).join(' | ');
      if (ca !== 0) reject(new GatewayError('failed', `${a.tool} ${a.args[0] ?? ''} failed (exit ${ca}): ${line(err.a)}`));
      else if (cb !== 0) reject(new GatewayError('failed', `${b.tool} ${b.args[0] ?? ''} failed (exit ${cb}): ${line(err.b)}`));
      else resolve();
    }, reject);
  });
}
