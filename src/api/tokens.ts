/**
 * The gateway's own API tokens (for hosts without Proxmox VE, and for scrapers): made with
 * `pve-smbgateway token create`, kept in <store>/priv/api-tokens.json (0600, beside the share
 * secrets; cluster-wide on Proxmox VE), as a SHA-256 hash of the secret only. The secret is a
 * random UUID (122 random bits), shown once. A request sends it as Proxmox does for its tokens:
 *   Authorization: PVEAPIToken=smbgateway!<name>=<secret>
 * The token id has no "@realm": that is how the daemon tells its own tokens from Proxmox VE's.
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { chmod, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GatewayError, invalid } from '../core/errors.ts';
import { withLock } from '../core/lock.ts';
import type { Settings } from '../core/settings.ts';
import { atomicWrite } from '../core/store.ts';

export const TOKEN_PREFIX = 'smbgateway!';
export const TOKEN_NAME_RE = /^[A-Za-z][A-Za-z0-9._-]{1,63}$/;
/** The privileges a gateway token can carry (the ones the operations ask for; see docs/api.md). */
export const TOKEN_PRIVS = [
  'Datastore.Audit', 'Datastore.Allocate', 'Datastore.AllocateSpace', 'Sys.Audit', 'Sys.Modify', 'Sys.Console', 'Permissions.Modify',
  'VM.Audit', 'VM.Allocate', 'VM.Clone', 'VM.Config.Disk', 'VM.Config.CPU', 'VM.Config.Memory', 'VM.Config.Network', 'VM.Config.Options',
  'VM.Config.Cloudinit', 'VM.PowerMgmt', 'Mapping.Modify', 'Mapping.Use', 'SDN.Use', 'VM.GuestAgent.Unrestricted',
] as const;

export interface TokenEntry { name: string; hash: string; privs: string[]; comment?: string; created: number; expire?: number }
export type PublicToken = Omit<TokenEntry, 'hash'> & { tokenid: string };

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export class TokenStore {
  readonly file: string;
  constructor(private readonly settings: Pick<Settings, 'storeDir' | 'lockDir'>) {
    this.file = join(settings.storeDir, 'priv', 'api-tokens.json');
  }

  async list(): Promise<TokenEntry[]> {
    let text: string;
    try { text = await readFile(this.file, 'utf8'); } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    try { return (JSON.parse(text) as { tokens: TokenEntry[] }).tokens ?? []; } catch {
      throw new GatewayError('failed', `${this.file}: not valid JSON`);
    }
  }

  private async write(tokens: TokenEntry[]): Promise<void> {
    const dir = join(this.settings.storeDir, 'priv');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    await atomicWrite(this.file, JSON.stringify({ tokens }, null, 1) + '\n', 0o600);
  }

  private locked<T>(fn: () => Promise<T>): Promise<T> {
    return withLock(this.settings.lockDir, 'file-smbgateway_tokens', fn);
  }

  async create(name: string, privs: string[], opts: { comment?: string; expire?: number; now?: number } = {}): Promise<{ token: PublicToken; value: string; header: string }> {
    if (!TOKEN_NAME_RE.test(name)) throw invalid('tokenid', 'must start with a letter and have 2 to 64 letters, digits, . _ -');
    const secret = randomUUID();
    const entry: TokenEntry = { name, hash: hashSecret(secret), privs, created: opts.now ?? Math.floor(Date.now() / 1000) };
    if (opts.comment) entry.comment = opts.comment;
    if (opts.expire) entry.expire = opts.expire;
    await this.locked(async () => {
      const all = await this.list();
      if (all.some((t) => t.name === name)) throw new GatewayError('exists', `tokenid: token "${name}" already exists`, 'tokenid');
      await this.write([...all, entry]);
    });
    const tokenid = TOKEN_PREFIX + name;
    return { token: publicToken(entry), value: secret, header: `PVEAPIToken=${tokenid}=${secret}` };
  }

  async delete(name: string): Promise<void> {
    await this.locked(async () => {
      const all = await this.list();
      if (!all.some((t) => t.name === name)) throw new GatewayError('not_found', `token "${name}" does not exist`, 'tokenid');
      await this.write(all.filter((t) => t.name !== name));
    });
  }

  /** The token for name+secret when valid and not expired. */
  async verify(name: string, secret: string, now = Math.floor(Date.now() / 1000)): Promise<TokenEntry | undefined> {
    const t = (await this.list()).find((x) => x.name === name);
    if (!t) return undefined;
    const a = Buffer.from(hashSecret(secret), 'hex');
    const b = Buffer.from(t.hash, 'hex');
    if (a.length !== b.length || !timingSafeEqual(a, b)) return undefined;
    if (t.expire && t.expire <= now) return undefined;
    return t;
  }
}

export function publicToken(t: TokenEntry): PublicToken {
  const { hash: _h, ...rest } = t;
  return { tokenid: TOKEN_PREFIX + t.name, ...rest };
}
