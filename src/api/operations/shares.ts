/** Share operations: list, create, delete, status, migrate. */
import { readFile } from 'node:fs/promises';
import { GatewayError, invalid, toGatewayError } from '../../core/errors.ts';
import { allOf, defineOperation } from '../../core/operation.ts';
import { applyPlan, describePlan, failAtFromEnv, type Step } from '../../core/plan.ts';
import { type Schema } from '../../core/schema.ts';
import { parseSectionConfig, type Section } from '../../core/sectionconfig.ts';
import { accountRule, checkShare, isDomainPrincipal, parsePasswords, parseShare, passwordRule, shareSchema, shareUsers, type Share } from '../../core/share.ts';
import { findShare, requireShare } from '../../core/store.ts';
import { planAccounts, type Passwords } from '../../provision/native.ts';
import { nativeCtx, planCreate, planDelete } from '../../provision/index.ts';
import { planShareDomain } from '../../provision/ad.ts';
import { publicShare, shareStatus, type ShareStatus } from '../../provision/status.ts';
import { backupStatus, type BackupStatus } from '../scheduler.ts';
import { quotaSteps } from '../../provision/quota.ts';
import { backingTag, placeNewShare, requireQuotaSupport } from '../../provision/storage.ts';
import { smbConfSteps } from '../../samba/apply.ts';
import type { Gateway } from '../../provision/context.ts';
import { AUDIT, createPrivileges, deletePrivileges, readSharePrivileges, SYS_MODIFY } from '../privileges.ts';
import { haState, type HaState } from '../../ha/service.ts';

const op = defineOperation<Gateway>();

const createAdUser = { type: 'string', optional: true, pattern: /^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$/, patternText: 'must be a domain account name such as Administrator' } as const;

/** What a new share must have, whether created or imported by migrate. */
export function checkNewShare(req: Share): void {
  // lxc: the container joins itself; vm: the VM joins through the guest agent after its first boot (docs/ad.md), not cloud-init.
  if (!req.guest_ok && shareUsers(req).length + req.groups.length + req.read_groups.length === 0) throw invalid('users', 'at least one user or group must have access (or enable guest_ok)');
}

const nameParam = { sharename: shareSchema.sharename } satisfies Schema;

const { created: _c, ...userShareSchema } = shareSchema;

export function requireMode(g: Gateway, mode: string): void {
  if (mode === 'native') return;
  if (!g.settings.isPve) throw new GatewayError('unavailable', `mode: ${mode} mode is not available on this host: it needs a Proxmox VE node (no /etc/pve here); use --mode native`, 'mode');
}

export const listOp = op({
  command: ['list'],
  method: 'GET',
  path: '/nodes/{node}/smbgateway',
  description: 'List the SMB shares of the gateway.',
  parameters: {},
  returns: { description: 'The shares', schema: { type: 'array', items: { type: 'object', description: 'The share (as `show` returns it)' } } },
  privilege: AUDIT,
  handler: async (_p, g) => (await g.store.list()).map(publicShare),
});

export const createOp = op({
  command: ['create'],
  method: 'POST',
  path: '/nodes/{node}/smbgateway',
  description: 'Create an SMB share on a storage path.',
  parameters: {
    ...userShareSchema,
    password: { type: 'string', optional: true, keepSpace: true, check: passwordRule, description: 'Password of the share\'s users that get one from the gateway (8 to 256 characters; on the command line: --password-file)' },
    passwords: { type: 'json', optional: true, parse: parsePasswords, description: 'Per-user passwords, {"user": "password", ...} (on the command line: user:password lines in --password-file)' },
    adopt: { type: 'list', optional: true, default: [], item: accountRule, description: 'Existing local accounts (not made by the gateway) to give access as they are; their passwords are not changed (native mode)' },
    dry_run: { type: 'boolean', optional: true, default: false, description: 'Plan only: check everything and show each step it would take, change nothing' },
    ad_user: { ...createAdUser, description: 'With ad_domain on a node not joined yet, or in lxc and vm mode: the domain account that joins it (docs/ad.md; default Administrator)' },
    ad_password: { type: 'string', optional: true, keepSpace: true, description: 'Its password (on the command line: --ad-password-file); used for the join only, never stored' },
  },
  positional: ['sharename'],
  aliases: { user: 'users', 'read-user': 'read_users', group: 'groups', 'read-group': 'read_groups', option: 'options', profile: 'security_profile', guest: 'guest_ok', preset: 'presets' },
  apiOnly: ['password', 'passwords', 'ad_password'],
  returns: { description: 'The share created, the steps applied and any warnings', schema: { type: 'object', properties: { share: { type: 'object', description: 'The share (as `show` returns it)' }, steps: { type: 'array', items: { type: 'string' } }, warnings: { type: 'array', items: { type: 'string' } } } } },
  privilege: createPrivileges,
  async: true,
  handler: async (p, g) => {
    const { password, passwords: perUser, adopt, dry_run, ad_user, ad_password, ...rest } = p;
    const req = checkShare({ ...rest, created: [] });
    checkNewShare(req);
    requireMode(g, req.mode);
    if (perUser !== undefined && password !== undefined) throw invalid('passwords', 'give either password (one for all) or passwords (per user), not both');
    const passwords: Passwords = { explicit: new Map(Object.entries(perUser ?? {})), blanket: password };
    return g.store.locked(async () => {
      const existing = await g.store.list();
      const adCred = ad_password !== undefined ? { user: ad_user ?? 'Administrator', password: ad_password } : undefined;
      if (ad_password !== undefined && !req.ad_domain) throw invalid('ad_password', 'is only used with ad_domain (to join the node to it)');
      const plan = await planCreate(g, req, existing, passwords, adopt, adCred);
      if (dry_run) return { dry_run: true, share: publicShare(plan.share), plan: describePlan(plan.steps), warnings: plan.warnings };
      const steps = await applyPlan(plan.steps, { failAt: failAtFromEnv(), log: g.log, journal: g.store.journalFor('create', plan.share.sharename) });
      return { share: publicShare(plan.share), steps, warnings: plan.warnings };
    });
  },
});

export const deleteOp = op({
  command: ['delete'],
  method: 'DELETE',
  path: '/nodes/{node}/smbgateway/{sharename}',
  description: 'Delete a share: clients are disconnected, the config and the accounts the gateway added are removed. Data stays unless purge is set.',
  parameters: {
    ...nameParam,
    purge: { type: 'boolean', optional: true, default: false, description: 'Also destroy the dataset, subvolume or directory the gateway created (data is lost)' },
    dry_run: { type: 'boolean', optional: true, default: false, description: 'Plan only: check everything and show each step it would take, change nothing' },
    ad_user: { ...createAdUser, description: 'lxc or vm share with ad_domain: the domain account that deletes its guest\'s computer account (docs/ad.md; default Administrator)' },
    ad_password: { type: 'string', optional: true, keepSpace: true, description: 'Its password (on the command line: --ad-password-file); used for the leave only, never stored' },
  },
  positional: ['sharename'],
  apiOnly: ['ad_password'],
  returns: { description: 'The steps applied', schema: { type: 'object', properties: { sharename: { type: 'string' }, steps: { type: 'array', items: { type: 'string' } } } } },
  privilege: deletePrivileges,
  async: true,
  handler: async (p, g) => {
    const { sharename, purge, dry_run, ad_user, ad_password } = p;
    return g.store.locked(async () => {
      const existing = await g.store.list();
      const share = requireShare(existing, sharename);
      requireMode(g, share.mode);
      const adCred = ad_password !== undefined ? { user: ad_user ?? 'Administrator', password: ad_password } : undefined;
      const steps = await planDelete(g, share, existing, { purge, ...(adCred ? { adCred } : {}) });
      if (dry_run) return { dry_run: true, sharename: share.sharename, plan: describePlan(steps) };
      return { sharename: share.sharename, steps: await applyPlan(steps, { failAt: failAtFromEnv(), log: g.log, journal: g.store.journalFor(purge ? 'delete --purge' : 'delete', share.sharename) }) };
    });
  },
});

export const statusOp = op({
  command: ['status'],
  method: 'GET',
  path: '/nodes/{node}/smbgateway/{sharename}/status',
  description: 'Whether smbd serves the share, its usage against the quota, and its sessions.',
  parameters: nameParam,
  positional: ['sharename'],
  returns: { description: 'Share status', schema: { type: 'object', properties: { share: { type: 'object', description: 'The share (as `show` returns it)' }, smbd_running: { type: 'boolean' }, in_config: { type: 'boolean' }, served: { type: 'boolean' }, probe: { type: 'string' }, usage: { type: 'object' }, sessions: { type: 'array', items: { type: 'object' } }, warnings: { type: 'array', items: { type: 'string' } }, ha: { type: 'object' }, backup: { type: 'object', description: 'Scheduled backups: schedule, retention, next_run, last_run, last_success' } } } },
  privilege: readSharePrivileges,
  handler: async (p, g): Promise<ShareStatus & { ha?: HaState; backup: BackupStatus }> => {
    const share = await g.store.require(p.sharename);
    const st0 = await shareStatus(g, share);
    // Scheduled backups: schedule, next run, the last run (a failed one is also a warning).
    const b = await backupStatus(g, share);
    const st = { ...st0, backup: b.backup, warnings: [...st0.warnings, ...b.warnings] };
    // HA shares: the node holding the VIP and each node's CTDB flags.
    return share.ha_enabled ? { ...st, ha: await haState(g, share) } : st;
  },
});

/** Keys of the older Perl plugin's storage.cfg entries that have no place in a share (storage-generic). */
const STORAGE_ONLY_KEYS = new Set(['content', 'disable', 'shared', 'nodes', 'prune-backups', 'maxfiles']);

export interface Imported { storage: string; sharename: string; mode: string; path: string; unmapped: Record<string, string> }

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
  checkNewShare(req);
  // A domain share is imported only onto a node joined to its domain, its principals resolving (docs/ad.md).
  if (req.ad_domain) await planShareDomain(g, req, others, undefined);
  const placed = await placeNewShare(g.run, req, others, g.settings.allowedRoots);
  if (!placed.exists) throw invalid('path', `${placed.path} does not exist: migrate imports shares whose data is already there`);
  requireQuotaSupport(placed.backing, req.quota);
  const share: Share = { ...req, path: placed.path, created: [], backing: backingTag(placed.backing, false) };
  // The old plugin's accounts are used as they are (adopted), never changed, never removed by the gateway.
  const registry = await g.store.accounts();
  const adopt = shareUsers(share).filter((u) => !isDomainPrincipal(u) && !registry.some((a) => a.name === u));
  const acc = await planAccounts(nativeCtx(g), share, { explicit: new Map() }, adopt);
  if (acc.newUnix.length || acc.newSamba.length) throw invalid('users', `${[...acc.newUnix, ...acc.newSamba][0]} has no account: migrate makes none`);
  return { share, steps: quotaSteps(g.run, placed.path, placed.backing, share.quota), unmapped };
}

export const migrateOp = op({
  command: ['migrate'],
  method: 'POST',
  path: '/nodes/{node}/smbgateway/migrate',
  description: 'Import the smbgateway entries of the cluster\'s storage.cfg (the older Perl plugin) into the gateway, each checked as create checks a new share.',
  parameters: {
    dry_run: { type: 'boolean', optional: true, default: false, description: 'Report only, change nothing' },
  },
  returns: { description: 'What was imported, skipped or kept aside', schema: { type: 'object', properties: { source: { type: 'string' }, dry_run: { type: 'boolean' }, imported: { type: 'array', items: { type: 'object' } }, skipped: { type: 'array', items: { type: 'object' } } } } },
  // It adds many shares at once, wherever storage.cfg says.
  privilege: allOf({ path: '/storage', privs: ['Datastore.Allocate'] }, SYS_MODIFY),
  handler: async (p, g) => {
    const { dry_run } = p;
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
});

export const shareOperations = [listOp, createOp, deleteOp, statusOp, migrateOp];
