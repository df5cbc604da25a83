/**
 * A held-open smbclient session (as a real client keeps its connection): commands go on stdin,
 * the password in a 0600 auth file; stdbuf makes smbclient's output unbuffered so that waitFor sees it. close() sends exit and waits for smbclient to end.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SmbSession {
  send: (cmd: string) => void;
  output: () => string;
  waitFor: (re: RegExp, timeoutMs?: number) => Promise<void>;
  close: () => Promise<number | null>;
}

export async function openSession(port: number, share: string, user: string, password: string): Promise<SmbSession> {
  const dir = await mkdtemp(join(tmpdir(), 'smbgw-sess-'));
  const auth = join(dir, 'auth');
  await writeFile(auth, `username = ${user}\npassword = ${password}\n`, { mode: 0o600 });
  const c = spawn('stdbuf', ['-o0', '-e0', 'smbclient', '-s', '/dev/null', `//127.0.0.1/${share}`, '-p', String(port), '-A', auth], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  c.stdout.on('data', (d) => (out += d));
  c.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => c.on('exit', (code) => r(code)));
  const waitFor = async (re: RegExp, timeoutMs = 30_000) => {
    const end = Date.now() + timeoutMs;
    while (!re.test(out)) {
      if (Date.now() > end) throw new Error(`smbclient: no ${re} within ${timeoutMs} ms; output: ${JSON.stringify(out.slice(-1500))}`);
      if (c.exitCode !== null) throw new Error(`smbclient ended (${c.exitCode}): ${out.slice(-500)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return {
    send: (cmd) => { c.stdin.write(cmd + '\n'); },
    output: () => out,
    waitFor,
    close: async () => {
      if (c.exitCode === null) { c.stdin.end('exit\n'); }
      const t = setTimeout(() => c.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(t);
      await rm(dir, { recursive: true, force: true });
      return code;
    },
  };
}
