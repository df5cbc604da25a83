/** Share operations: list, create, delete, status, migrate. */
import { readFile } from 'node:fs/promises';
import { GatewayError, invalid, toGatewayError } from '../../core/errors.ts';
import type { Operation } from '../../core/operation.ts';
import { applyPlan, failAtFromEnv, type Step } from '../../core/plan.ts';
import { validate, type Schema } from '../../core/schema.ts';
import { parseSectionConfig, type Section } from '../../core/sectionconfig.ts';
import { accountRule, parseShare, shareSchema, shareUsers, type Share } from '../../core/share.ts';
import { findShare, requireShare } from '../../core/store.ts';
import { checkPasswords, planAccounts, readPasswordFile, type Passwords } from '../../provision/native.ts';
import { guestShareStatus, nativeCtx, planCreate, planDelete } from '../../provision/index.ts';
import { quotaSteps, usageOf } from '../../provision/quota.ts';
import { detectBacking, placeNewShare, requireQuotaSupport } from '../../provision/storage.ts';
import { backingTag } from '../../backup/snapshots.ts';
import { smbConfSteps } from '../../samba/apply.ts';
import { includesManaged } from '../../samba/render.ts';
import { humanBytes, table } from '../../cli/table.ts';
import type { Gateway } from '../context.ts';
import { haState, type HaState } from './ha.ts';

/** The share as users see it (internal bookkeeping left out). */
export function publicShare(s: Share): Omit<Share, 'created'> {
  const { created: _created, ...rest } = s;
  return rest;
}

const nameParam = { sharename: shareSchema.sharename } satisfies Schema;
const AUDIT = { path: '/storage', privs: ['Datastore.Audit', 'Datastore.Allocate'] };
const ALLOCATE = { path: '/storage', privs: ['Datastore.Allocate'] };

const { created: _c, ...userShareSchema } = shareSchema;

function requireMode(g: Gateway, mode: string): void {
  if (mode === 'native') return;
  if (!g.settings.isPve) throw new GatewayError('unavailable', `mode: ${mode} mode is not available on this host: it needs a Proxmox VE node (no /etc/pve here); use --mode native`, 'mode');
}

export const listOp: Operation<Gateway> = {
  command: ['list'],
  method: 'GET',
  path: '/nodes/{node}/smbgateway',
  description: 'List the SMB shares of the gateway.',
  parameters: {},
  returns: { description: 'The shares' },
  privilege: AUDIT,
  handler: async (_p, g) => (await g.store.list()).map(publicShare),
  format: (r) => {
    const rows = (r as Share[]).map((s) => [s.sharename, s.mode, s.path, s.quota, s.security_profile, [...s.users, ...s.read_users.map((u) => u + '(ro)')].join(',') || (s.guest_ok ? 'guest' : ''), s.ha_enabled ? 'yes' : 'no']);
    return rows.length ? table(['NAME', 'MODE', 'PATH', 'QUOTA', 'PROFILE', 'USERS', 'HA'], rows) : 'no shares';
  },
};

export const createOp: Operation<Gateway> = {
  command: ['create'],
  method: 'POST',
  path: '/nodes/{node}/smbgateway',
  description: 'Create an SMB share on a storage path.',
  parameters: {
    ...userShareSchema,
    password_file: { type: 'string', optional: true, description: 'File with the password of new users (one line), or user:password lines; - for stdin' },
    password: { type: 'string', optional: true, keepSpace: true, description: 'Password for the new users (API only; at least 8 characters)' },
    adopt: { type: 'list', optional: true, default: [], item: accountRule, description: 'Existing local accounts (not made by the gateway) to give access as they are; their passwords are not changed (native mode)' },
  },
  positional: ['sharename'],
  aliases: { user: 'users', 'read-user': 'read_users', group: 'groups', 'read-group': 'read_groups', option: 'options', profile: 'security_profile', guest: 'guest_ok' },
  cliOnly: ['password_file'],
  apiOnly: ['password'],
  returns: { description: 'The share created, the steps applied and any warnings' },
  privilege: ALLOCATE,
  async: true,
  handler: async (p, g) => {
    const { password_file, password, adopt, ...rest } = p as Record<string, unknown> & { password_file?: string; password?: string; adopt?: unknown };
    const req = parseShare(rest);
    const adopted = validate({ adopt: createOp.parameters.adopt! }, { adopt: adopt ?? [] }).adopt as string[];
    if (req.ad_domain) throw invalid('ad_domain', 'joining an Active Directory domain is not supported yet: give local users or groups instead');
    if (!req.guest_ok && shareUsers(req).length + req.groups.length + req.read_groups.length === 0)
      throw invalid('users', 'at least one user or group must have access (or enable guest_ok)');
    requireMode(g, req.mode);
    if (password_file !== undefined && password !== undefined) throw invalid('password', 'give either password or password_file, not both');
    const passwords: Passwords = password_file !== undefined ? await readPasswordFile(password_file, shareUsers(req)) : { explicit: new Map(), blanket: password };
    checkPasswords(passwords, 'password');
    return g.store.locked(async () => {
      const existing = await g.store.list();
      const plan = await planCreate(g, req, existing, passwords, adopted);
      const steps = await applyPlan(plan.steps, { failAt: failAtFromEnv(), log: g.log, journal: g.store.journalFor('create', plan.share.sharename) });
      return { share: publicShare(plan.share), steps, warnings: plan.warnings };
    });
  },
  format: (r) => {
    const x = r as { share: Share; warnings: string[] };
    return [`created share ${x.share.sharename} (${x.share.mode}) on ${x.share.path}`, ...x.warnings.map((w) => `warning: ${w}`)].join('\n');
  },
};

export const deleteOp: Operation<Gateway> = {
  command: ['delete'],
  method: 'DELETE',
  path: '/nodes/{node}/smbgateway/{sharename}',
  description: 'Delete a share: clients are disconnected, the config and the accounts the gateway added are removed. Data stays unless purge is set.',
  parameters: {
    ...nameParam,
    purge: { type: 'boolean', optional: true, default: false, description: 'Also destroy the dataset, subvolume or directory the gateway created (data is lost)' },
  },
  positional: ['sharename'],
  returns: { description: 'The steps applied' },
  privilege: ALLOCATE,
  async: true,
  handler: async (p, g) => {
    const { sharename, purge } = validate({ ...nameParam, purge: { type: 'boolean', default: false, optional: true, description: '' } }, p);
    return g.store.locked(async () => {
      const existing = await g.store.list();
      const share = requireShare(existing, sharename);
      requireMode(g, share.mode);
      const steps = await planDelete(g, share, existing, { purge: !!purge });
      return { sharename: share.sharename, steps: await applyPlan(steps, { failAt: failAtFromEnv(), log: g.log, journal: g.store.journalFor(purge ? 'delete --purge' : 'delete', share.sharename) }) };
    });
  },
  format: (r) => `deleted share ${(r as { sharename: string }).sharename}`,
};

export interface ShareStatus {
  share: Omit<Share, 'created'>;
  smbd_running: boolean;
  in_config: boolean;
  served: boolean;
  probe?: string;
  usage?: { used: number; limit?: number; total?: number; source: string };
  sessions: { user: string; machine: string; encrypted?: boolean }[];
  warnings: string[];
  /** HA shares: the node holding the VIP and each node's CTDB flags. */
  ha?: HaState;
}

export async function shareStatus(g: Gateway, share: Share): Promise<ShareStatus> {
  if (share.mode !== 'native') return guestShareStatus(g, share);
  const warnings: string[] = [];
  const { samba, settings, run } = g;
  const smbConfText = await readFile(settings.smbConf, 'utf8').catch(() => '');
  if (!includesManaged(smbConfText, settings.managedConf)) warnings.push(`${settings.smbConf} does not load the gateway's shares: add the line "include = ${settings.managedConf}" at its end`);
  const loaded = await run('testparm', ['-s', '--suppress-prompt', settings.smbConf], { allowFail: true });
  const in_config = loaded.stdout.split('\n').some((l) => l.trim().toLowerCase() === `[${share.sharename.toLowerCase()}]`);
  const running = await samba.running();
  const sessions: ShareStatus['sessions'] = [];
  let probe: string | undefined;
  if (running) {
    const st = await samba.status().catch((e: Error) => { warnings.push(`smbstatus: ${e.message}`); return undefined; });
    for (const t of st?.tcons ?? []) {
      if (t.service.toLowerCase() !== share.sharename.toLowerCase()) continue;
      const sess = st!.sessions.find((s) => s.id === t.sessionId);
      sessions.push({ user: sess?.username ?? '', machine: t.machine, encrypted: t.encrypted });
    }
    const user = shareUsers(share)[0];
    const pw = user ? await g.store.readSecret(share.sharename, user) : undefined;
    if (user && pw !== undefined) {
      const r = await samba.probe(share.sharename, user, pw, 'ls', share.security_profile === 'high' ? ['--client-protection=encrypt'] : []);
      probe = r.ok ? `ok (logged on as ${user})` : `failed: ${r.output.split('\n').slice(-1)[0]}`;
      // smbclient's own session shows up in smbstatus: count only the others.
    }
  } else warnings.push('smbd is not running');
  let usage: ShareStatus['usage'];
  try {
    usage = await usageOf(run, share.path, await detectBacking(run, share.path, true));
  } catch (e) {
    warnings.push(`usage: ${(e as Error).message}`);
  }
  const served = running && in_config && (probe === undefined || probe.startsWith('ok'));
  return { share: publicShare(share), smbd_running: running, in_config, served, probe, usage, sessions, warnings, ...(share.ha_enabled ? { ha: await haState(g, share) } : {}) };
}

export const statusOp: Operation<Gateway> = {
  command: ['status'],
  method: 'GET',
  path: '/nodes/{node}/smbgateway/{sharename}/status',
  description: 'Whether smbd serves the share, its usage against the quota, and its sessions.',
  parameters: nameParam,
  positional: ['sharename'],
  returns: { description: 'Share status' },
  privilege: AUDIT,
  handler: async (p, g) => shareStatus(g, await g.store.require(validate(nameParam, p).sharename)),
  format: (r) => {
    const s = r as ShareStatus;
    const u = s.usage;
    return [
      `share:    ${s.share.sharename} (${s.share.mode}, ${s.share.security_profile}) on ${s.share.path}`,
      `served:   ${s.served ? 'yes' : 'NO'} (smbd ${s.smbd_running ? 'running' : 'stopped'}, ${s.in_config ? 'in smb.conf' : 'NOT in smb.conf'}${s.probe ? `, probe ${s.probe}` : ''})`,
      `usage:    ${u ? `${humanBytes(u.used)} used${u.limit ? ` of ${humanBytes(u.limit)} quota` : u.total ? ` of ${humanBytes(u.total)}` : ''} (${u.source})` : '-'}`,
      `sessions: ${s.sessions.length}${s.sessions.length ? ' (' + s.sessions.map((x) => `${x.user}@${x.machine}`).join(', ') + ')' : ''}`,
      ...(s.ha ? [`ha:       VIP ${s.ha.vip ?? '-'} on ${s.ha.holder ?? 'NO NODE'}; ${s.ha.nodes.map((n) => `${n.name} ${n.flags.join(',')}`).join(', ')}${s.ha.problems.length ? `; ${s.ha.problems.join('; ')}` : ''}`] : []),
      ...s.warnings.map((w) => `warning:  ${w}`),
    ].join('\n');
  },
};

/** Keys of the older Perl plugin's storage.cfg entries that have no place in a share (storage-generic). */
const STORAGE_ONLY_KEYS = new Set(['content', 'disable', 'shared', 'nodes', 'prune-backups', 'maxfiles']);

interface Imported { storage: string; sharename: string; mode: string; path: string; unmapped: Record<string, string> }

/**
 * One storage.cfg entry as a share, through the checks create makes: the schema (internal fields such
 * as `created` are refused), the path (resolved, inside an allowed root, existing, not nested with
 * another share), the accounts (existing, not system accounts, used as they are) and the quota (applied).
 */
async function importEntry(g: Gateway, e: Section, others: readonly Share[]): Promise<{ share: Share; steps: Step[]; unmapped: Record<string, string> }> {
  const props: Record<string, string> = {};
  const unmapped: Record<string, string> = {};
  for (const [k, v] of Object.entries(e.props)) {
    if (k === 'sharename') continue;
    if (k in shareSchema) props[k] = v;
    else if (k === 'nodes' && !v.includes(',')) props.node = v;
    else if (!STORAGE_ONLY_KEYS.has(k)) unmapped[k] = v;
  }
  const sharename = e.props.sharename ?? e.id;
  if (findShare(others, sharename)) throw invalid('sharename', `a share named "${sharename}" already exists`);
  const req = parseShare({ mode: 'native', ...props, sharename });
  if (req.mode !== 'native') throw invalid('mode', `${req.mode} shares are not imported (their guest was not made by pve-smbgateway): create the share again with pve-smbgateway create`);
  if (req.ad_domain) throw invalid('ad_domain', 'joining an Active Directory domain is not supported yet');
  if (!req.guest_ok && shareUsers(req).length + req.groups.length + req.read_groups.length === 0) throw invalid('users', 'at least one user or group must have access (or enable guest_ok)');
  const placed = await placeNewShare(g.run, req, others, g.settings.allowedRoots);
  if (!placed.exists) throw invalid('path', `${placed.path} does not exist: migrate imports shares whose data is already there`);
  requireQuotaSupport(placed.backing, req.quota);
  const share: Share = { ...req, path: placed.path, created: [], backing: backingTag(placed.backing, false) };
  // The old plugin's accounts are used as they are (adopted), never changed, never removed by the gateway.
  const registry = await g.store.accounts();
  const adopt = shareUsers(share).filter((u) => !registry.some((a) => a.name === u));
  const acc = await planAccounts(nativeCtx(g), share, { explicit: new Map() }, adopt);
  if (acc.newUnix.length || acc.newSamba.length) throw invalid('users', `${[...acc.newUnix, ...acc.newSamba][0]} has no account: migrate makes none`);
  return { share, steps: quotaSteps(g.run, placed.path, placed.backing, share.quota), unmapped };
}

export const migrateOp: Operation<Gateway> = {
  command: ['migrate'],
  method: 'POST',
  path: '/nodes/{node}/smbgateway/migrate',
  description: 'Import the smbgateway entries of the cluster\'s storage.cfg (the older Perl plugin) into the gateway, each checked as create checks a new share.',
  parameters: {
    dry_run: { type: 'boolean', optional: true, default: false, description: 'Report only, change nothing' },
  },
  returns: { description: 'What was imported, skipped or kept aside' },
  privilege: ALLOCATE,
  handler: async (p, g) => {
    const { dry_run } = validate(migrateOp.parameters, p) as { dry_run: boolean };
    const source = g.settings.storageCfg;
    let text: string;
    try { text = await readFile(source, 'utf8'); } catch { throw new GatewayError('unavailable', `storage_cfg: cannot read ${source} (the storage_cfg setting)`, 'storage_cfg'); }
    const entries = parseSectionConfig(text).filter((s) => s.type === 'smbgateway');
    return g.store.locked(async () => {
      const existing = await g.store.list();
      const imported: Imported[] = [];
      const skipped: { storage: string; reason: string }[] = [];
      const toAdd: Share[] = [];
      const steps: Step[] = [];
      for (const e of entries) {
        try {
          const x = await importEntry(g, e, [...existing, ...toAdd]);
          toAdd.push(x.share);
          steps.push(...x.steps);
          imported.push({ storage: e.id, sharename: x.share.sharename, mode: x.share.mode, path: x.share.path, unmapped: x.unmapped });
        } catch (err) {
          skipped.push({ storage: e.id, reason: toGatewayError(err).message });
        }
      }
      if (!dry_run && toAdd.length) {
        const after = [...existing, ...toAdd];
        await applyPlan([...steps, g.store.saveStep(() => after), ...smbConfSteps(g.samba, () => after)], { failAt: failAtFromEnv(), log: g.log, journal: g.store.journalFor('migrate') });
      }
      return { source, dry_run, imported, skipped };
    });
  },
  format: (r) => {
    const x = r as { dry_run: boolean; imported: Imported[]; skipped: { storage: string; reason: string }[] };
    const lines = [`${x.dry_run ? 'would import' : 'imported'} ${x.imported.length} share(s), skipped ${x.skipped.length}`];
    for (const i of x.imported) lines.push(`  + ${i.sharename} (${i.mode}) ${i.path}${Object.keys(i.unmapped).length ? `  kept aside: ${JSON.stringify(i.unmapped)}` : ''}`);
    for (const s of x.skipped) lines.push(`  - ${s.storage}: ${s.reason}`);
    return lines.join('\n');
  },
};

export const shareOperations = [listOp, createOp, deleteOp, statusOp, migrateOp];
