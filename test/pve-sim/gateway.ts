/**
 * A gateway configured as on a Proxmox VE node, against the simulator: settings with is_pve, the
 * transport (pvesh shim as root@pam, or the HTTPS API with a token), the node's `pct` shim and, for
 * the fake backend, an `smbclient` shim that asks the simulator. `cli()` runs the real command.
 */
import { invoke } from '../../src/core/operation.ts';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeGateway, type Gateway } from '../../src/provision/context.ts';
import { operations } from '../../src/api/registry.ts';
import { execRunner, type Runner } from '../../src/core/exec.ts';
import { defaultSettings, settingsJson, type Settings } from '../../src/core/settings.ts';
import { CLI, sh, type CliResult } from '../helpers/gateway.ts';
import type { GuestBackend } from './backend.ts';
import { startPveSim, type PveSim } from './sim.ts';

export interface SimGateway {
  id: string;
  dir: string;
  storage: string;
  sim: PveSim;
  settings: Settings;
  settingsFile: string;
  env: Record<string, string>;
  gw: Gateway;
  cli: (args: string[], opts?: { env?: Record<string, string>; input?: string }) => Promise<CliResult>;
  /**
   * The same gateway in this process (fast loops): HTTPS API as root@pam with a ticket; `pct` and the
   * fake `smbclient` answered by the simulator directly. `op(name, params, failAt?)` runs an operation.
   */
  op: (command: string, params: Record<string, unknown>, failAt?: string) => Promise<any>;
  /** A fresh 0600 file holding the password, for --password-file. */
  passwordFile: (password: string) => Promise<string>;
  cleanup: () => Promise<void>;
}

export interface SimGatewayOptions {
  backend?: GuestBackend;
  /** 'pvesh' (root@pam on the node) or 'token' (HTTPS API with a privilege-separated token). */
  transport?: 'pvesh' | 'token' | 'ticket';
  tokenAcl?: { path: string; privs: string[] }[];
  /** Real smbclient (real guests) instead of the simulator's fake one. */
  realSmbclient?: string;
  extraEnv?: Record<string, string>;
  taskMs?: number;
  /** pve_task_timeout in seconds (default 60). */
  taskTimeout?: number;
}

export const TOKEN_PRIVS = ['VM.Allocate', 'VM.Clone', 'VM.Config.Disk', 'VM.Config.CPU', 'VM.Config.Memory', 'VM.Config.Network', 'VM.Config.Options',
  'VM.Config.Cloudinit', 'VM.Config.HWType', 'VM.PowerMgmt', 'VM.Audit', 'VM.GuestAgent.Audit', 'VM.GuestAgent.Unrestricted', 'Datastore.AllocateSpace', 'Datastore.Audit', 'Datastore.Allocate', 'Mapping.Modify', 'Mapping.Use', 'Mapping.Audit', 'Sys.Audit'];

export async function startSimGateway(opts: SimGatewayOptions = {}): Promise<SimGateway> {
  const id = randomBytes(3).toString('hex');
  const dir = await mkdtemp(join(tmpdir(), `smbgw-pve${id}-`));
  await chmod(dir, 0o755);
  const storage = join(dir, 'tank');
  await mkdir(storage, { recursive: true });
  const sim = await startPveSim({ dir: join(dir, 'sim'), backend: opts.backend, taskMs: opts.taskMs });
  const transport = opts.transport ?? 'pvesh';
  const settings: Settings = {
    ...defaultSettings(),
    isPve: true,
    node: sim.localNode,
    storeDir: join(dir, 'etc'),
    lockDir: join(dir, 'lock'),
    stateDir: join(dir, 'state'),
    smbConf: join(dir, 'samba', 'smb.conf'),
    managedConf: join(dir, 'samba', 'smbgateway.conf'),
    allowedRoots: [storage],
    pveTransport: transport === 'pvesh' ? 'pvesh' : 'api',
    pveBridge: 'vmbr0',
    pveTaskTimeout: opts.taskTimeout ?? 60,
  };
  if (transport !== 'pvesh') {
    settings.pveApi = sim.url;
    settings.pveFingerprint = sim.fingerprint;
    if (transport === 'token') {
      const tokenId = 'smbgw@pve!gateway';
      const secret = sim.addToken(tokenId, opts.tokenAcl ?? [{ path: '/', privs: TOKEN_PRIVS }]);
      settings.pveTokenFile = join(dir, 'etc', 'pve-token');
      await mkdir(join(dir, 'etc'), { recursive: true });
      await writeFile(settings.pveTokenFile, `${tokenId}=${secret}\n`, { mode: 0o600 });
    } else {
      settings.pveUser = 'root@pam';
      settings.pvePasswordFile = join(dir, 'etc', 'pve-password');
      await mkdir(join(dir, 'etc'), { recursive: true });
      await writeFile(settings.pvePasswordFile, sim.rootPassword + '\n', { mode: 0o600 });
    }
  }
  const settingsFile = join(dir, 'gateway.json');
  const text = JSON.parse(settingsJson(settings)) as Record<string, unknown>;
  for (const [k, v] of Object.entries({
    pve_transport: settings.pveTransport, pve_api: settings.pveApi, pve_fingerprint: settings.pveFingerprint, pve_token_file: settings.pveTokenFile,
    pve_user: settings.pveUser, pve_password_file: settings.pvePasswordFile, pve_bridge: settings.pveBridge, pve_task_timeout: settings.pveTaskTimeout,
  })) if (v !== undefined) text[k] = v;
  await writeFile(settingsFile, JSON.stringify(text, null, 2));
  const env: Record<string, string> = {
    SMBGATEWAY_CONFIG: settingsFile,
    SMBGW_BIN_PVESH: join(sim.binDir, 'pvesh'),
    SMBGW_BIN_PCT: join(sim.binDir, 'pct'),
    SMBGW_BIN_QM: join(sim.binDir, 'qm'),
    SMBGW_BIN_SMBCLIENT: opts.realSmbclient ?? join(sim.binDir, 'smbclient'),
    ...opts.extraEnv,
  };
  const cli = (args: string[], o: { env?: Record<string, string>; input?: string } = {}) =>
    sh(CLI, args, { env: { ...env, ...o.env }, input: o.input, timeoutMs: 15 * 60_000 }).then((r) => {
      if (args.includes('--json')) { try { r.json = JSON.parse(r.stdout); } catch { /* left undefined */ } }
      return r;
    });
  const runner: Runner = async (tool, args, o = {}) => {
    if (tool === 'pct') {
      const body: Record<string, unknown> = { args };
      if (args[0] === 'push') body.data = (await readFile(args[2]!)).toString('base64');
      if (args[0] === 'exec' && o.input !== undefined) body.stdin = Buffer.from(o.input).toString('base64');
      const r = await sim.simCall('/sim/pct', body) as { code: number; stdout: string; stderr: string };
      if (r.code !== 0 && !o.allowFail) throw new Error(`pct ${args[0]} failed (exit ${r.code}): ${r.stderr.trim()}`);
      return r;
    }
    if (tool === 'smbclient' && !opts.realSmbclient) {
      const unc = /^\/\/([^/]+)\/(.+)$/.exec(args.find((a) => a.startsWith('//')) ?? '');
      const auth = await readFile(args[args.indexOf('-A') + 1]!, 'utf8');
      const user = /username = (.*)/.exec(auth)?.[1] ?? '';
      const password = /password = (.*)/.exec(auth)?.[1] ?? '';
      const r = await sim.simCall('/sim/probe', { host: unc?.[1], share: unc?.[2], user, password }) as { ok: boolean; output: string };
      return { code: r.ok ? 0 : 1, stdout: r.output, stderr: '' };
    }
    return execRunner(tool, args, o);
  };
  if (!sim.users.get('root@pam')) throw new Error('no root@pam in the simulator');
  const inSettings: Settings = { ...settings, pveTransport: 'api', pveApi: sim.url, pveFingerprint: sim.fingerprint, pveUser: 'root@pam', pvePasswordFile: join(dir, 'root-password'), pveTokenFile: undefined };
  await writeFile(inSettings.pvePasswordFile!, sim.rootPassword + '\n', { mode: 0o600 });
  const inGw = makeGateway(inSettings, runner);
  const op = async (command: string, params: Record<string, unknown>, failAt?: string) => {
    const o = operations.find((x) => x.command.join(' ') === command);
    if (!o) throw new Error(`no operation ${command}`);
    const saved = process.env.SMBGW_FAIL_AT;
    if (failAt) process.env.SMBGW_FAIL_AT = failAt; else delete process.env.SMBGW_FAIL_AT;
    try { return await invoke(o, params, inGw); } finally { if (saved === undefined) delete process.env.SMBGW_FAIL_AT; else process.env.SMBGW_FAIL_AT = saved; }
  };
  const cleanup = async () => {
    await sim.stop();
    await rm(dir, { recursive: true, force: true });
  };
  const passwordFile = async (password: string) => {
    const f = join(dir, `pw-${randomBytes(4).toString('hex')}`);
    await writeFile(f, password + '\n', { mode: 0o600 });
    return f;
  };
  return { id, dir, storage, sim, settings, settingsFile, env, gw: makeGateway(settings), cli, op, passwordFile, cleanup };
}
