/**
 * Thin adapter over the Samba tools for one smbd instance (named by its smb.conf).
 * Every call goes through the Runner; passwords go on stdin.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GatewayError } from '../core/errors.ts';
import type { Runner } from '../core/exec.ts';
import { parseTestparmGlobals, withoutManagedInclude } from './render.ts';
import { globalsKey, readGlobals, writeGlobals } from './globalscache.ts';

export interface SambaTarget {
  smbConf: string;
  managedConf: string;
  smbHost: string;
  smbPort: number;
  /** Node-local state (the AD join's ad.json, docs/ad.md). */
  stateDir?: string;
}

export interface SmbSession { id: string; username: string; remote: string; dialect?: string; encrypted?: boolean; signed?: boolean }
export interface SmbTcon { service: string; sessionId: string; machine: string; encrypted?: boolean; /** The smbd serving it. */ pid: number }
/** A passdb account as saved for an undo: the smbpasswd line and the SID. */
export interface SambaAccount { line: string; sid?: string }

/** The NT hash field of an smbpasswd line. */
export function ntOfLine(line: string): string | undefined {
  const f = line.split(':')[3];
  return f && /^[0-9A-F]{32}$/i.test(f) ? f.toUpperCase() : undefined;
}

export interface SmbStatus {
  sessions: SmbSession[];
  tcons: SmbTcon[];
  openFiles: number;
  /** Open files per smbd pid and share path (what the monitor attributes I/O by). */
  openByPidPath: Map<number, Map<string, number>>;
}

/** Parse `smbstatus --json` (Samba 4.16+). */
export function parseSmbStatus(text: string): SmbStatus {
  const j = JSON.parse(text) as Record<string, Record<string, Record<string, unknown>> | undefined>;
  const sessions = Object.entries(j.sessions ?? {}).map(([id, s]) => ({
    id,
    username: String(s.username ?? ''),
    remote: String(s.remote_machine ?? s.hostname ?? ''),
    dialect: s.session_dialect === undefined ? undefined : String(s.session_dialect),
    encrypted: (s.encryption as { degree?: string } | undefined)?.degree ? (s.encryption as { degree: string }).degree !== 'none' : undefined,
    signed: (s.signing as { degree?: string } | undefined)?.degree ? (s.signing as { degree: string }).degree !== 'none' : undefined,
  }));
  const tcons = Object.values(j.tcons ?? {}).map((t) => ({
    service: String(t.service ?? ''),
    sessionId: String(t.session_id ?? ''),
    machine: String(t.machine ?? ''),
    encrypted: (t.encryption as { degree?: string } | undefined)?.degree ? (t.encryption as { degree: string }).degree !== 'none' : undefined,
    pid: Number((t.server_id as { pid?: string } | undefined)?.pid),
  }));
  const openByPidPath = new Map<number, Map<string, number>>();
  for (const f of Object.values(j.open_files ?? {}) as { service_path?: string; opens?: Record<string, { server_id?: { pid?: string } }> }[]) {
    for (const o of Object.values(f.opens ?? {})) {
      const pid = Number(o.server_id?.pid);
      const m = openByPidPath.get(pid) ?? new Map<string, number>();
      m.set(f.service_path ?? '', (m.get(f.service_path ?? '') ?? 0) + 1);
      openByPidPath.set(pid, m);
    }
  }
  return { sessions, tcons, openFiles: Object.keys(j.open_files ?? {}).length, openByPidPath };
}

const TESTPARM_PROBLEM = /Unknown parameter|Ignoring unknown|badly formed|Error loading|not boolean|Invalid|Can't find include/i;

export class Samba {
  constructor(private readonly run: Runner, readonly target: SambaTarget) {}

  /** Check a config file with testparm; throws with testparm's complaint. */
  async check(file: string): Promise<void> {
    const r = await this.run('testparm', ['-s', '--suppress-prompt', file], { allowFail: true });
    const problems = r.stderr.split('\n').filter((l) => TESTPARM_PROBLEM.test(l));
    if (r.code !== 0 || problems.length) {
      throw new GatewayError('failed', `testparm rejected ${file}: ${(problems.length ? problems : r.stderr.trim().split('\n').slice(-2)).join(' | ')}`);
    }
  }

  /** Check a candidate managed fragment as text, before it replaces the live one. */
  async checkText(text: string): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), 'smbgw-check-'));
    try {
      const f = join(dir, 'candidate.conf');
      await writeFile(f, text, { mode: 0o600 });
      await this.check(f);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * The [global] parameters the admin set (those differing from Samba's defaults), as testparm reads
   * smb.conf without the line that includes the managed file: what the managed [global] must not weaken.
   * Kept in the state directory by the text it was made from (globalscache.ts).
   */
  async adminGlobals(): Promise<Record<string, string>> {
    const text = await readFile(this.target.smbConf, 'utf8').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw new GatewayError('failed', `cannot read ${this.target.smbConf}: ${e.message}`);
    });
    if (text === undefined) return {};
    const conf = withoutManagedInclude(text, this.target.managedConf);
    const stateDir = this.target.stateDir;
    const key = stateDir ? await globalsKey(conf) : undefined;
    const known = stateDir && key ? await readGlobals(stateDir, key) : undefined;
    if (known) return known;
    const dir = await mkdtemp(join(tmpdir(), 'smbgw-admin-'));
    try {
      const f = join(dir, 'smb.conf');
      await writeFile(f, conf, { mode: 0o600 });
      const r = await this.run('testparm', ['-s', '--suppress-prompt', f], { allowFail: true });
      if (r.code !== 0) {
        throw new GatewayError('failed', `testparm rejected ${this.target.smbConf} (read without the gateway's include line): ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
      }
      const globals = parseTestparmGlobals(r.stdout);
      if (stateDir && key) await writeGlobals(stateDir, key, globals);
      return globals;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** Whether an smbd for this config is running (smbcontrol finds its pid). */
  async running(): Promise<boolean> {
    const r = await this.run('smbcontrol', ['-s', this.target.smbConf, 'smbd', 'ping'], { allowFail: true, timeoutMs: 10_000 });
    return r.code === 0 && /PONG/i.test(r.stdout);
  }

  /** Make smbd re-read its config; a stopped smbd reads it when it starts. */
  async reload(): Promise<void> {
    await this.toSmbd(['reload-config']);
  }

  /** Drop every client connected to a share (before the share is removed). */
  async closeShare(name: string): Promise<void> {
    await this.toSmbd(['close-share', name]);
  }

  /**
   * A message to the running smbd; nothing when none runs. The message is sent first and smbd pinged
   * only when that failed (one smbcontrol instead of two on the usual path); when smbd answers the ping,
   * the message is sent again and a second failure is an error.
   */
  private async toSmbd(msg: string[]): Promise<void> {
    const r = await this.run('smbcontrol', ['-s', this.target.smbConf, 'smbd', ...msg], { allowFail: true });
    if (r.code === 0 || !(await this.running())) return;
    await this.run('smbcontrol', ['-s', this.target.smbConf, 'smbd', ...msg]);
  }

  /** Drop one client's connection to a share: the smbd child (pid) serving it closes its tree connects there. */
  async closeShareOf(pid: number, name: string): Promise<void> {
    await this.run('smbcontrol', ['-s', this.target.smbConf, String(pid), 'close-share', name]);
  }

  /** One parameter as smbd sees it (`testparm --parameter-name`); '' when unset or unreadable. */
  async parameter(name: string): Promise<string> {
    return (await this.run('testparm', ['-s', '--suppress-prompt', '--parameter-name', name, this.target.smbConf], { allowFail: true })).stdout.trim();
  }

  /** The share sections smbd loads from its smb.conf (includes followed), names in lower case. */
  async loadedShares(): Promise<string[]> {
    const r = await this.run('testparm', ['-s', '--suppress-prompt', this.target.smbConf], { allowFail: true });
    return r.stdout.split('\n').map((l) => /^\[(.+)\]$/.exec(l.trim())?.[1]?.toLowerCase()).filter((x): x is string => !!x && x !== 'global');
  }

  async status(): Promise<SmbStatus> {
    const r = await this.run('smbstatus', ['-s', this.target.smbConf, '--json'], { timeoutMs: 15_000 });
    return parseSmbStatus(r.stdout);
  }

  // --- Samba accounts (passdb) ---

  async userExists(name: string): Promise<boolean> {
    const r = await this.run('pdbedit', ['-s', this.target.smbConf, '-L', '-u', name], { allowFail: true });
    return r.code === 0;
  }

  /** The account's NT hash (to restore a password we changed). */
  async ntHash(name: string): Promise<string | undefined> {
    const r = await this.run('pdbedit', ['-s', this.target.smbConf, '-L', '-w', '-u', name], { allowFail: true });
    if (r.code !== 0) return undefined;
    const f = r.stdout.trim().split(':');
    return f[3] && /^[0-9A-F]{32}$/i.test(f[3]) ? f[3] : undefined;
  }

  async setNtHash(name: string, hash: string): Promise<void> {
    await this.run('pdbedit', ['-s', this.target.smbConf, '-u', name, '--set-nt-hash', hash]);
  }

  /** Add the account, or set its password; the password goes on stdin. */
  async setPassword(name: string, password: string, add: boolean): Promise<void> {
    await this.run('smbpasswd', ['-c', this.target.smbConf, '-s', ...(add ? ['-a'] : []), name], { input: `${password}\n${password}\n` });
  }

  /**
   * The whole passdb account as `pdbedit -L -w` prints it (an smbpasswd line: uid, NT hash, flags, last
   * change time) and its SID: enough to put it back exactly (restoreAccount). Secret: keep it 0600.
   */
  async account(name: string): Promise<SambaAccount | undefined> {
    // Both read at once (two processes, one wait).
    const [w, v] = await Promise.all([
      this.run('pdbedit', ['-s', this.target.smbConf, '-L', '-w', '-u', name], { allowFail: true }),
      this.run('pdbedit', ['-s', this.target.smbConf, '-L', '-v', '-u', name], { allowFail: true }),
    ]);
    const line = w.stdout.split('\n').find((l) => l.startsWith(name + ':'));
    if (w.code !== 0 || !line) return undefined;
    const sid = /^User SID:\s*(S-[0-9-]+)\s*$/m.exec(v.stdout)?.[1];
    return { line, ...(sid ? { sid } : {}) };
  }

  /** Put an account back as account() saw it (imported from a 0600 smbpasswd file, then its SID). */
  async restoreAccount(name: string, a: SambaAccount): Promise<void> {
    if (!a.line.startsWith(name + ':') || a.line.includes('\n')) throw new GatewayError('failed', `restoring Samba account ${name}: not its passdb line`);
    const dir = await mkdtemp(join(tmpdir(), 'smbgw-pdb-'));
    try {
      const f = join(dir, 'smbpasswd');
      await writeFile(f, a.line + '\n', { mode: 0o600 });
      await this.run('pdbedit', ['-s', this.target.smbConf, '-i', `smbpasswd:${f}`]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    if (a.sid) await this.run('pdbedit', ['-s', this.target.smbConf, '-u', name, '-U', a.sid]);
  }

  async deleteUser(name: string): Promise<void> {
    await this.run('pdbedit', ['-s', this.target.smbConf, '-x', '-u', name], { allowFail: true });
  }

  /**
   * Log on to a share with smbclient as a real client would; the password goes in a 0600 auth file.
   * Returns smbclient's result (code 0 = connected and the command ran).
   */
  async probe(share: string, user: string, password: string, command = 'ls', extra: string[] = []): Promise<{ ok: boolean; output: string }> {
    const dir = await mkdtemp(join(tmpdir(), 'smbgw-probe-'));
    try {
      const auth = join(dir, 'auth');
      await writeFile(auth, `username = ${user}\npassword = ${password}\n`, { mode: 0o600 });
      const r = await this.run('smbclient', [
        '-s', '/dev/null', `//${this.target.smbHost}/${share}`, '-p', String(this.target.smbPort), '-A', auth,
        '--option=client min protocol=SMB2_10', ...extra, '-c', command,
      ], { allowFail: true, timeoutMs: 30_000 });
      return { ok: r.code === 0, output: (r.stdout + r.stderr).trim() };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}
