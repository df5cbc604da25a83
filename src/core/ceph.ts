/**
 * The one adapter for Ceph: the `ceph` CLI (as the cluster's admin, from the cluster's ceph.conf),
 * CephFS quotas and recursive statistics through their virtual xattrs, and CephFS snapshots (`.snap`)
 * on the node's CephFS mount. A key never passes through argv, stdout or the logs: `ceph auth get
 * -o FILE` writes the keyring straight into a 0600 file of the private store.
 */
import { chmod, mkdir, open, readdir, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { GatewayError } from './errors.ts';
import type { Runner } from './exec.ts';
import { privDirOf, type Settings } from './settings.ts';
import { atomicWrite } from './store.ts';
import { CEPH_WORD, clientConf } from './cephfs.ts';

export interface CephTarget {
  /** The cluster's ceph.conf (with the admin keyring it names). */
  conf: string;
  /** The CephX identity the gateway administers the cluster as (e.g. admin). */
  admin: string;
  /** The gateway's own client for smbd (client.<name>). */
  client: string;
  /** Where its keyring and ceph.conf go (0700). */
  dir: string;
}

export function cephTarget(s: Settings): CephTarget {
  const name = s.cephClient ?? 'smbgateway';
  if (!CEPH_WORD.test(name)) throw new GatewayError('invalid', `ceph_client ${JSON.stringify(name)}: letters, digits, _ . - only`);
  return {
    conf: s.cephConf ?? (s.isPve ? '/etc/pve/ceph.conf' : '/etc/ceph/ceph.conf'),
    admin: s.cephAdmin ?? 'admin',
    client: `client.${name}`,
    dir: join(privDirOf(s), 'ceph'),
  };
}

export class Ceph {
  constructor(readonly run: Runner, readonly t: CephTarget) {}

  get keyring(): string { return join(this.t.dir, `ceph.${this.t.client}.keyring`); }
  get clientConfFile(): string { return join(this.t.dir, 'ceph.conf'); }

  async cmd(args: readonly string[], opts: { allowFail?: boolean } = {}) {
    return this.run('ceph', ['--conf', this.t.conf, '--id', this.t.admin, '--connect-timeout', '20', ...args], { timeoutMs: 60_000, ...opts });
  }

  async json<T>(args: readonly string[]): Promise<T> {
    const r = await this.cmd([...args, '--format', 'json']);
    try { return JSON.parse(r.stdout) as T; } catch { throw new GatewayError('failed', `ceph ${args.join(' ')}: unexpected output`); }
  }

  /** Names of the CephFS file systems. */
  async fsNames(): Promise<string[]> {
    return (await this.json<{ name: string }[]>(['fs', 'ls'])).map((f) => f.name);
  }

  /** The caps of a client (undefined: no such client). */
  async caps(client = this.t.client): Promise<Record<string, string> | undefined> {
    const r = await this.cmd(['auth', 'get', client, '--format', 'json'], { allowFail: true });
    if (r.code !== 0) {
      if (/ENOENT|does not exist|failed to find/i.test(r.stderr)) return undefined;
      throw new GatewayError('failed', `ceph auth get ${client} failed: ${r.stderr.trim().split('\n').pop()}`);
    }
    // The output holds the key: only the caps are kept, nothing of it is logged.
    const rows = JSON.parse(r.stdout) as { caps?: Record<string, string> }[];
    return rows[0]?.caps ?? {};
  }

  /** Give the gateway's client these caps (made when missing) and its keyring a 0600 file. */
  async setClientCaps(caps: readonly string[]): Promise<void> {
    const had = await this.caps();
    if (had === undefined) await this.cmd(['auth', 'add', this.t.client, ...caps]);
    else await this.cmd(['auth', 'caps', this.t.client, ...caps]);
    await this.writeKeyring();
  }

  /** Put caps back as they were (the undo), or remove the client when it did not exist. */
  async restoreClientCaps(before: Record<string, string> | undefined): Promise<void> {
    if (before === undefined) { await this.removeClient(); return; }
    const caps = Object.entries(before).flat();
    if (caps.length) await this.cmd(['auth', 'caps', this.t.client, ...caps]);
  }

  async removeClient(): Promise<void> {
    const r = await this.cmd(['auth', 'rm', this.t.client], { allowFail: true });
    if (r.code !== 0 && !/ENOENT|does not exist/i.test(r.stderr)) throw new GatewayError('failed', `ceph auth rm ${this.t.client} failed: ${r.stderr.trim()}`);
    await rm(this.keyring, { force: true });
    await rm(this.clientConfFile, { force: true });
  }

  /** The keyring, written by ceph itself into a file that is 0600 before the key reaches it. */
  async writeKeyring(): Promise<void> {
    await mkdir(this.t.dir, { recursive: true, mode: 0o700 });
    await chmod(this.t.dir, 0o700);
    const fh = await open(this.keyring, 'a', 0o600);
    await fh.chmod(0o600);
    await fh.close();
    await this.cmd(['auth', 'get', this.t.client, '-o', this.keyring]);
    const conf = clientConf((await this.cmd(['config', 'generate-minimal-conf'])).stdout, this.keyring, this.t.client);
    await atomicWrite(this.clientConfFile, conf, 0o644);
  }

  async poolExists(pool: string): Promise<boolean> {
    return (await this.json<string[] | { poolname: string }[]>(['osd', 'pool', 'ls'])).some((p) => (typeof p === 'string' ? p : p.poolname) === pool);
  }

  async createPool(pool: string): Promise<void> {
    if (!CEPH_WORD.test(pool)) throw new GatewayError('invalid', `pool ${JSON.stringify(pool)}: letters, digits, _ . - only`);
    await this.cmd(['osd', 'pool', 'create', pool, '8']);
  }
}

/** CephFS virtual xattrs, on the node's CephFS mount. */
async function getx(run: Runner, name: string, path: string): Promise<string | undefined> {
  const r = await run('getfattr', ['--only-values', '--absolute-names', '-n', name, '--', path], { allowFail: true });
  return r.code === 0 ? r.stdout.trim() : undefined;
}

/** Quota of a CephFS directory (0: none), enforced by every client: writers past it get EDQUOT. */
export async function setCephQuota(run: Runner, path: string, bytes: number): Promise<void> {
  await run('setfattr', ['-n', 'ceph.quota.max_bytes', '-v', String(Math.max(0, Math.floor(bytes))), '--', path]);
}

export async function cephQuota(run: Runner, path: string): Promise<number | undefined> {
  const v = Number(await getx(run, 'ceph.quota.max_bytes', path));
  return v > 0 ? v : undefined;
}

/** Bytes below a CephFS directory, from the MDS's recursive statistics (no tree walk). */
export async function cephRbytes(run: Runner, path: string): Promise<number> {
  return Number(await getx(run, 'ceph.dir.rbytes', path)) || 0;
}

/** CephFS snapshots of a directory: entries of its `.snap`, made by mkdir and removed by rmdir. */
export async function cephSnapshots(path: string): Promise<string[]> {
  return (await readdir(join(path, '.snap')).catch(() => [] as string[])).sort();
}
export async function cephSnapshot(path: string, name: string): Promise<void> {
  await mkdir(join(path, '.snap', name));
}
export async function cephSnapshotDelete(path: string, name: string): Promise<void> {
  await rmdir(join(path, '.snap', name));
}
