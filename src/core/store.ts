/**
 * The config store: one section-config file of `smbgateway: <name>` sections (cluster-wide through
 * pmxcfs on Proxmox VE), secrets in a 0600 priv/ directory beside it. Writes are atomic
 * (temp file + rename); read-modify-write happens under the mkdir lock.
 */
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { withLock } from './lock.ts';
import { parseSectionConfig, renderSectionConfig, type Section } from './sectionconfig.ts';
import { parseShare, shareSchema, type Share } from './share.ts';
import type { Settings } from './settings.ts';
import { GatewayError } from './errors.ts';
import type { Step } from './plan.ts';

export const SECTION_TYPE = 'smbgateway';

export async function atomicWrite(path: string, text: string, mode = 0o644): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp.${process.pid}.${Math.random().toString(36).slice(2)}`;
  await writeFile(tmp, text, { mode });
  await chmod(tmp, mode);
  await rename(tmp, path);
}

export function shareToSection(s: Share): Section {
  const props: Record<string, string> = {};
  for (const key of Object.keys(shareSchema) as (keyof Share)[]) {
    if (key === 'sharename') continue;
    const v = s[key];
    if (v === undefined) continue;
    if (Array.isArray(v)) { if (v.length) props[key] = v.join(','); continue; }
    props[key] = typeof v === 'boolean' ? (v ? '1' : '0') : String(v);
  }
  return { type: SECTION_TYPE, id: s.sharename, props };
}

export function sectionToShare(sec: Section): Share {
  try {
    return parseShare({ ...sec.props, sharename: sec.id }, { allowInternal: true });
  } catch (e) {
    const err = e as GatewayError;
    throw new GatewayError('invalid', `stored share "${sec.id}": ${err.message}`, err.field);
  }
}

export class ShareStore {
  readonly cfgPath: string;
  readonly privDir: string;
  constructor(private readonly settings: Pick<Settings, 'storeDir' | 'lockDir'>) {
    this.cfgPath = join(settings.storeDir, 'shares.cfg');
    this.privDir = join(settings.storeDir, 'priv');
  }

  async list(): Promise<Share[]> {
    let text: string;
    try {
      text = await readFile(this.cfgPath, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    return parseSectionConfig(text).filter((s) => s.type === SECTION_TYPE).map(sectionToShare);
  }

  async get(name: string): Promise<Share | undefined> {
    return findShare(await this.list(), name);
  }

  async require(name: string): Promise<Share> {
    return requireShare(await this.list(), name);
  }

  async write(shares: readonly Share[]): Promise<void> {
    const text = '# pve-smbgateway shares (managed; edit with pve-smbgateway)\n\n' + renderSectionConfig(shares.map(shareToSection));
    await atomicWrite(this.cfgPath, text, 0o640);
  }

  /** The file as it is now (undefined when it does not exist), to put back exactly on rollback. */
  async readRaw(): Promise<string | undefined> {
    return readFile(this.cfgPath, 'utf8').catch((e: NodeJS.ErrnoException) => { if (e.code === 'ENOENT') return undefined; throw e; });
  }

  async restoreRaw(text: string | undefined): Promise<void> {
    if (text === undefined) await rm(this.cfgPath, { force: true });
    else await atomicWrite(this.cfgPath, text, 0o640);
  }

  /** The plan step that saves the shares; its undo restores the file byte for byte. */
  saveStep(shares: () => readonly Share[]): Step {
    let before: string | undefined;
    return {
      name: 'save-config',
      do: async () => { before = await this.readRaw(); await this.write(shares()); },
      undo: () => this.restoreRaw(before),
    };
  }

  /** The plan step that keeps the share users' passwords in priv/ (0600). */
  storeSecretsStep(share: string, passwords: ReadonlyMap<string, string>): Step {
    return {
      name: 'store-secrets',
      do: async () => { for (const [u, pw] of passwords) await this.writeSecret(share, u, pw); },
      undo: async () => { for (const u of passwords.keys()) await this.deleteSecret(share, u); },
    };
  }

  /** The plan step that removes the users' passwords of a share being deleted; its undo puts them back. */
  removeSecretsStep(share: string, users: readonly string[]): Step {
    const kept = new Map<string, string>();
    return {
      name: 'remove-secrets',
      do: async () => {
        for (const u of users) {
          const f = this.secretPath(share, u);
          const v = await readFile(f, 'utf8').catch(() => undefined);
          if (v !== undefined) { kept.set(u, v); await rm(f, { force: true }); }
        }
      },
      undo: async () => { for (const [u, v] of kept) await this.writeSecret(share, u, v); },
    };
  }

  /** Run fn while holding the store's lock (the lock Proxmox tools would take for this file). */
  locked<T>(fn: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
    return withLock(this.settings.lockDir, 'file-smbgateway_cfg', fn, { timeoutMs });
  }

  secretPath(share: string, user: string): string {
    return join(this.privDir, `${encodeURIComponent(share)}.${user}.pw`);
  }

  async writeSecret(share: string, user: string, secret: string): Promise<void> {
    await mkdir(this.privDir, { recursive: true, mode: 0o700 });
    await chmod(this.privDir, 0o700);
    await atomicWrite(this.secretPath(share, user), secret, 0o600);
  }

  async deleteSecret(share: string, user: string): Promise<void> {
    await rm(this.secretPath(share, user), { force: true });
  }
}

/** The share of that name (ignoring case), or the not-found error every operation gives. */
export function requireShare(shares: readonly Share[], name: string): Share {
  const s = findShare(shares, name);
  if (!s) throw new GatewayError('not_found', `share "${name}" does not exist`, 'sharename');
  return s;
}

/** Share names are unique ignoring case, as SMB clients see them. */
export function findShare(shares: readonly Share[], name: string): Share | undefined {
  const lc = name.toLowerCase();
  return shares.find((s) => s.sharename.toLowerCase() === lc);
}
