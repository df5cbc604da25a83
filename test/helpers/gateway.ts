/**
 * A gateway under test: a private smbd (sandbox) on 127.0.0.1, its own store, lock dir, storage root
 * and settings file, unique names so that several runs can share a machine. `cli()` runs the real
 * pve-smbgateway command against it; `cleanup()` removes everything, users included.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { makeGateway, type Gateway } from '../../src/provision/context.ts';
import { defaultSettings, settingsJson, type Settings } from '../../src/core/settings.ts';
import { startSandbox, type Sandbox } from '../../src/demo/sandbox.ts';

export const ROOT = resolve(import.meta.dirname, '../..');
export const CLI = join(ROOT, 'bin/pve-smbgateway');
/** The built CLI of a checkout, as bin/pve-smbgateway picks it: the bundle, else the compiled files. */
export const cliEntry = (root: string): string => [join(root, 'dist/cli/main.js'), join(root, 'dist/src/cli/main.js')].find((f) => existsSync(f)) ?? join(root, 'dist/src/cli/main.js');

export interface CliResult { code: number; stdout: string; stderr: string; signal?: string; json?: { success: boolean; data: any; error?: { code: string; message: string; field?: string }; timestamp: string } }

export function sh(cmd: string, args: string[], opts: { input?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((res) => {
    const c = execFile(cmd, args, { env: { ...process.env, ...opts.env }, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const signal = (err as { signal?: string } | null)?.signal ?? undefined;
      res({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0, stdout: String(stdout), stderr: String(stderr), ...(signal ? { signal } : {}) });
    });
    c.stdin?.on('error', () => undefined); // the command may exit before reading its input
    c.stdin?.end(opts.input ?? '');
  });
}

export interface TestGateway {
  id: string;
  dir: string;
  storage: string;
  settings: Settings;
  settingsFile: string;
  sandbox: Sandbox;
  gw: Gateway;
  /** A unique local account name for this run. */
  user: (suffix: string) => string;
  /** A 0600 file holding one password (for --password-file). */
  passwordFile: (password: string) => Promise<string>;
  cli: (args: string[], opts?: { env?: Record<string, string>; input?: string }) => Promise<CliResult>;
  /** smbclient against the sandbox: `//127.0.0.1/<share>` as user%password. */
  smb: (share: string, user: string, password: string, command: string, extra?: string[]) => Promise<CliResult>;
  /** Write `text` into `remote` over SMB (must succeed). */
  putText: (share: string, user: string, password: string, remote: string, text: string) => Promise<void>;
  /** Read `remote` back over SMB as text (must succeed); `remote` may be an @GMT- path. */
  getText: (share: string, user: string, password: string, remote: string) => Promise<string>;
  /** An smbclient session held open until close() (for smbstatus, drop-on-delete, connection counts). */
  holdSession: (share: string, user: string, password: string, extra?: string[]) => Promise<HeldSession>;
  cleanup: () => Promise<void>;
}

export interface HeldSession { output: () => string; send: (cmd: string) => void; close: () => void }

/** Whether a live (non-zombie) process is left in process group `pgid`. */
export async function groupAlive(pgid: number): Promise<boolean> {
  for (const d of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(d)) continue;
    const stat = await readFile(`/proc/${d}/stat`, 'utf8').catch(() => '');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (f[0] !== 'Z' && Number(f[2]) === pgid) return true;
  }
  return false;
}

/** Wait until cond() holds, polling; throws after ms. */
export async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startGateway(opts: { storage?: string; extraRoots?: string[]; port?: number } = {}): Promise<TestGateway> {
  const id = randomBytes(3).toString('hex');
  const dir = await mkdtemp(join(tmpdir(), `smbgw-t${id}-`));
  await chmod(dir, 0o755);
  const storage = opts.storage ?? join(dir, 'storage');
  await mkdir(storage, { recursive: true });
  const sandbox = await startSandbox(join(dir, 'samba'), { netbios: `T${id}`.toUpperCase(), ...(opts.port ? { port: opts.port } : {}) });
  const settings: Settings = {
    ...defaultSettings(),
    isPve: false,
    node: 'testnode',
    storeDir: join(dir, 'etc'),
    lockDir: join(dir, 'lock'),
    stateDir: join(dir, 'state'),
    smbConf: sandbox.smbConf,
    managedConf: sandbox.managedConf,
    smbHost: sandbox.host,
    smbPort: sandbox.port,
    allowedRoots: [storage, ...(opts.extraRoots ?? [])],
  };
  const settingsFile = join(dir, 'gateway.json');
  await writeFile(settingsFile, settingsJson(settings));
  const users: string[] = [];
  const user = (suffix: string) => { const u = `t${id}${suffix}`.slice(0, 32); users.push(u); return u; };
  const cli = (args: string[], o: { env?: Record<string, string>; input?: string } = {}) =>
    sh(CLI, args, { env: { SMBGATEWAY_CONFIG: settingsFile, ...o.env }, input: o.input }).then((r) => {
      if (args.includes('--json')) {
        try { r.json = JSON.parse(r.stdout); } catch { /* left undefined: the test will say so */ }
      }
      return r;
    });
  const smb = (share: string, u: string, pw: string, command: string, extra: string[] = []) =>
    sh('smbclient', ['-s', '/dev/null', `//127.0.0.1/${share}`, '-p', String(sandbox.port), '-U', `${u}%${pw}`, ...extra, '-c', command]);
  const sessions: HeldSession[] = [];
  const holdSession = async (share: string, u: string, pw: string, extra: string[] = []): Promise<HeldSession> => {
    // stdbuf: smbclient's stdout is block-buffered on a pipe.
    const c = spawn('stdbuf', ['-oL', '-eL', 'smbclient', '-s', '/dev/null', `//127.0.0.1/${share}`, '-p', String(sandbox.port), '-U', `${u}%${pw}`, ...extra], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    c.stdin.on('error', () => undefined);
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (out += d));
    const h: HeldSession = { output: () => out, send: (cmd) => c.stdin.write(cmd + '\n'), close: () => { c.kill(); } };
    sessions.push(h);
    h.send('pwd');
    await waitFor(() => /Current directory is/.test(out) || /NT_STATUS_\w+/.test(out), 15_000, `smbclient session on ${share}`);
    if (!/Current directory is/.test(out)) throw new Error(`session on ${share} failed: ${out}`);
    return h;
  };
  const cleanup = async () => {
    for (const h of sessions) h.close();
    await sandbox.stop();
    for (const u of users) {
      await sh('userdel', [u]);
      await sh('groupdel', [u]);
    }
    await rm(dir, { recursive: true, force: true });
  };
  const passwordFile = async (password: string) => {
    const f = join(dir, `pw-${randomBytes(4).toString('hex')}`);
    await writeFile(f, password + '\n', { mode: 0o600 });
    return f;
  };
  const putText = async (share: string, u: string, pw: string, remote: string, text: string) => {
    const f = join(dir, `up-${randomBytes(4).toString('hex')}`);
    await writeFile(f, text);
    const r = await smb(share, u, pw, `put ${f} "${remote}"`);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  };
  const getText = async (share: string, u: string, pw: string, remote: string) => {
    const f = join(dir, `down-${randomBytes(4).toString('hex')}`);
    const r = await smb(share, u, pw, `get "${remote}" ${f}`);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return readFile(f, 'utf8');
  };
  return { id, dir, storage, settings, settingsFile, sandbox, gw: makeGateway(settings), user, passwordFile, cli, smb, putText, getText, holdSession, cleanup };
}
