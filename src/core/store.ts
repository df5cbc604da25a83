/**
 * The config store: one section-config file of `smbgateway: <name>` sections (cluster-wide through
 * pmxcfs on Proxmox VE), secrets in a 0600 priv/ directory beside it. Writes are atomic
 * (temp file + rename); read-modify-write happens under the mkdir lock.
 */
import { createHash } from 'node:crypto';
import { chmod, mkdir, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { withLock } from './lock.ts';
import { fileRecord, journalDirOf, listJournals, type JournalEntry } from './journal.ts';
import { breakDeadLock, recordLockOwner } from './lockowner.ts';
import { parseSectionConfig, renderSectionConfig, type Section } from './sectionconfig.ts';
import { ACCOUNT_RE, parseShare, shareSchema, type Made, type Share } from './share.ts';
import { privDirOf, type Settings } from './settings.ts';
import { GatewayError } from './errors.ts';
import { checkStoreFormat, FORMAT_LINE } from './storeformat.ts';
import type { ApplyOptions, Step } from './plan.ts';

export const SECTION_TYPE = 'smbgateway';
export const ACCOUNT_TYPE = 'smbgateway-account';
const LOCK_NAME = 'file-smbgateway_cfg';

/**
 * A local account the gateway itself made (native mode). Accounts are shared between shares: the last
 * share that uses one removes it. Accounts the admin had before are never in here, so never removed.
 */
export interface Account { name: string; unix: boolean; samba: boolean; uid?: number }

function accountToSection(a: Account): Section {
  return { type: ACCOUNT_TYPE, id: a.name, props: { unix: a.unix ? '1' : '0', samba: a.samba ? '1' : '0', ...(a.uid !== undefined ? { uid: String(a.uid) } : {}) } };
}
function sectionToAccount(sec: Section): Account {
  if (!ACCOUNT_RE.test(sec.id)) throw new GatewayError('invalid', `stored account "${sec.id}": not an account name`);
  const uid = sec.props.uid !== undefined && /^\d+$/.test(sec.props.uid) ? Number(sec.props.uid) : undefined;
  return { name: sec.id, unix: sec.props.unix === '1', samba: sec.props.samba === '1', ...(uid !== undefined ? { uid } : {}) };
}

/** Everything the store file holds. */
export interface StoreState { shares: Share[]; accounts: Account[] }

/** A file name part that cannot collide: only [A-Za-z0-9_-] stay as they are. */
function fileSafe(s: string): string {
  return [...Buffer.from(s, 'utf8')].map((b) => (/[A-Za-z0-9_-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
}

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
    if (shareSchema[key].type === 'json') { if (!Array.isArray(v) || v.length) props[key] = JSON.stringify(v); continue; }
    if (Array.isArray(v)) { if (v.length) props[key] = v.join(','); continue; }
    props[key] = typeof v === 'boolean' ? (v ? '1' : '0') : String(v);
  }
  return { type: SECTION_TYPE, id: s.sharename, props };
}

/**
 * `created` as version 0.1 wrote it (comma-joined `kind:value`, which a comma or space in a path broke):
 * read as records without identity, so that purge refuses to destroy them (nothing proves they are still
 * what was made); its account entries are not taken as ownership (the accounts are then never removed).
 */
function legacyCreated(v: string): string {
  const out: Made[] = [];
  for (const item of v.split(',')) {
    const i = item.indexOf(':');
    const kind = item.slice(0, i);
    const val = item.slice(i + 1);
    if (kind === 'dir' || kind === 'subvolume' || kind === 'snippet') out.push({ kind, path: val });
    else if (kind === 'dataset') out.push({ kind, name: val });
    else if ((kind === 'ct' || kind === 'vm') && /^\d+$/.test(val)) out.push({ kind, vmid: Number(val) });
    else if (kind === 'mapping') out.push({ kind, id: val });
    else if (kind === 'nfs') out.push({ kind, client: val });
  }
  return JSON.stringify(out);
}

/** Defaults version 0.1 wrote into every share, whatever its mode (now options of vm mode only). */
const LEGACY_DEFAULTS: Record<string, string> = { vm_memory: '2048', vm_cores: '2' };

export function sectionToShare(sec: Section): Share {
  try {
    const props = { ...sec.props };
    if (props.created !== undefined && !props.created.startsWith('[')) props.created = legacyCreated(props.created);
    if (props.mode !== 'vm') for (const [k, v] of Object.entries(LEGACY_DEFAULTS)) if (props[k] === v) delete props[k];
    return parseShare({ ...props, sharename: sec.id }, { allowInternal: true });
  } catch (e) {
    const err = e as GatewayError;
    throw new GatewayError('invalid', `stored share "${sec.id}": ${err.message}`, err.field);
  }
}

export class ShareStore {
  readonly cfgPath: string;
  readonly privDir: string;
  /** Journals of running (or interrupted) operations, see core/journal.ts. */
  readonly journalDir: string;
  constructor(private readonly settings: Pick<Settings, 'storeDir' | 'lockDir' | 'privDir'>) {
    this.cfgPath = join(settings.storeDir, 'shares.cfg');
    this.privDir = privDirOf(settings);
    this.journalDir = journalDirOf(this.privDir);
  }

  /** applyPlan's journal option for an operation on the store. */
  journalFor(operation: string, share?: string): NonNullable<ApplyOptions['journal']> {
    return { dir: this.journalDir, operation, ...(share !== undefined ? { share } : {}) };
  }

  async load(): Promise<StoreState> {
    const text = await this.readRaw();
    if (text === undefined) return { shares: [], accounts: [] };
    // One operation reads the file several times (list, accounts, render): parsed and checked once per
    // text, each caller getting its own copy (a copy costs a tenth of a parse with hundreds of shares).
    if (this.parsed?.text !== text) {
      checkStoreFormat(text, this.cfgPath);
      const secs = parseSectionConfig(text);
      this.parsed = {
        text,
        state: {
          shares: secs.filter((s) => s.type === SECTION_TYPE).map(sectionToShare),
          accounts: secs.filter((s) => s.type === ACCOUNT_TYPE).map(sectionToAccount),
        },
      };
    }
    return structuredClone(this.parsed.state);
  }

  /** The last text read and what it parsed to. */
  private parsed?: { text: string; state: StoreState };

  async list(): Promise<Share[]> {
    return (await this.load()).shares;
  }

  async accounts(): Promise<Account[]> {
    return (await this.load()).accounts;
  }

  async get(name: string): Promise<Share | undefined> {
    return findShare(await this.list(), name);
  }

  async require(name: string): Promise<Share> {
    return requireShare(await this.list(), name);
  }

  /** Write the shares; the account registry is kept as it is unless given. */
  async write(shares: readonly Share[], accounts?: readonly Account[]): Promise<void> {
    await atomicWrite(this.cfgPath, await this.render(shares, accounts), 0o640);
  }

  /** The file's text for these shares (and accounts; else the registry as it is). */
  async render(shares: readonly Share[], accounts?: readonly Account[]): Promise<string> {
    const acc = accounts ?? (await this.accounts());
    return `# pve-smbgateway shares (managed; edit with pve-smbgateway)\n${FORMAT_LINE}\n\n` + renderSectionConfig([...shares.map(shareToSection), ...acc.map(accountToSection)]);
  }

  /** SHA-1 of the file as it is now, as Proxmox's config digests (changes whenever anything changes). */
  async digest(): Promise<string> {
    return createHash('sha1').update((await this.readRaw()) ?? '').digest('hex');
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
  saveStep(shares: () => readonly Share[], accounts?: () => readonly Account[]): Step {
    let before: string | undefined;
    let text: string | undefined;
    return {
      name: 'save-config',
      shows: `write ${this.cfgPath}`,
      // The text is fixed when the step starts, so that the journal knows what the file will hold.
      journal: async () => { text = await this.render(shares(), accounts?.()); return [await fileRecord(this.cfgPath, text)]; },
      do: async () => { before = await this.readRaw(); await atomicWrite(this.cfgPath, text ?? await this.render(shares(), accounts?.()), 0o640); },
      undo: () => this.restoreRaw(before),
    };
  }

  /** The plan step that keeps the share users' passwords in priv/ (0600). */
  storeSecretsStep(share: string, passwords: ReadonlyMap<string, string>): Step {
    return {
      name: 'store-secrets',
      shows: `0600 secret files for ${[...passwords.keys()].join(', ')}`,
      journal: () => Promise.all([...passwords].map(([u, pw]) => fileRecord(this.secretPath(share, u), pw))),
      do: async () => { for (const [u, pw] of passwords) await this.writeSecret(share, u, pw); },
      undo: async () => { for (const u of passwords.keys()) await this.deleteSecret(share, u); },
    };
  }

  /** The plan step that removes the users' passwords of a share being deleted; its undo puts them back. */
  removeSecretsStep(share: string, users: readonly string[]): Step {
    const kept = new Map<string, string>();
    return {
      name: 'remove-secrets',
      shows: `remove the secret files of ${users.join(', ')}`,
      journal: () => Promise.all(users.map((u) => fileRecord(this.secretPath(share, u), null))),
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

  /**
   * Run fn while holding the store's lock (the lock Proxmox tools would take for this file). A lock left
   * by a process of this host that was killed is broken at once (see lockowner.ts). An operation that
   * was interrupted and left changes behind (a pending journal of this host) must be repaired first:
   * fn is refused until `pve-smbgateway repair` has run.
   */
  locked<T>(fn: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
    return this.lockedAs(fn, timeoutMs, true);
  }

  /** The lock without the check for interrupted operations (for the repair itself). */
  lockedForRepair<T>(fn: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
    return this.lockedAs(fn, timeoutMs, false);
  }

  private async lockedAs<T>(fn: () => Promise<T>, timeoutMs: number, guard: boolean): Promise<T> {
    const { lockDir } = this.settings;
    const ownerFile = join(this.journalDir, 'lock.owner');
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let entered = false;
      try {
        return await withLock(lockDir, LOCK_NAME, async () => {
          entered = true;
          // The first directory mkdir made: the private directory too when it was not there yet.
          let made: string | undefined;
          const owned = await mkdir(this.journalDir, { recursive: true, mode: 0o700 })
            .then((m) => { made = m; return recordLockOwner(ownerFile, join(lockDir, LOCK_NAME)); }).then(() => true, () => false);
          try {
            if (guard) await this.refuseIfInterrupted();
            return await fn();
          } finally {
            if (owned) await rm(ownerFile, { force: true });
            // Left as found: the journal directory goes when empty, the private one when this made it and it is empty.
            await rmdir(this.journalDir).catch(() => undefined);
            if (made === this.privDir) await rmdir(this.privDir).catch(() => undefined);
          }
        }, { timeoutMs: Math.max(0, Math.min(1000, deadline - Date.now())) });
      } catch (e) {
        if (entered || !(e instanceof GatewayError) || e.code !== 'locked') throw e;
        if (await breakDeadLock(ownerFile, lockDir, LOCK_NAME).catch(() => false)) continue;
        if (Date.now() >= deadline) throw new GatewayError('locked', `could not get lock ${join(lockDir, LOCK_NAME)} within ${timeoutMs / 1000} s (held by another operation)`);
      }
    }
  }

  /** Journals of this host whose operation was interrupted (its process is gone, or gave up). */
  async interrupted(): Promise<JournalEntry[]> {
    return (await listJournals(this.journalDir)).filter((e) => !e.journal || e.journal.pending());
  }

  private async refuseIfInterrupted(): Promise<void> {
    const left = await this.interrupted();
    if (!left.length) return;
    const what = left.map((e) => (e.journal ? `the ${e.journal.describe()}` : `an operation whose journal ${e.id} cannot be read (${e.error})`));
    throw new GatewayError('locked', `${what[0]} was interrupted and left changes behind${what.length > 1 ? ` (and ${what.length - 1} more)` : ''}: run \`pve-smbgateway repair\` first, which undoes it (or finishes it when it had gone past a step that cannot be undone)`);
  }

  /** One file per (share, user): share names are unique ignoring case, and neither part can carry the separator. */
  secretPath(share: string, user: string): string {
    return join(this.privDir, `${fileSafe(share.toLowerCase())}+${fileSafe(user)}.pw`);
  }

  async readSecret(share: string, user: string): Promise<string | undefined> {
    return readFile(this.secretPath(share, user), 'utf8').catch(() => undefined);
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
