/**
 * What the share operations do (create, delete, status, migrate); their declarations are in shares.ts,
 * which imports this module only when one of them runs (the CLI's other commands, help and the
 * declarations themselves load none of the provisioning code: bench/README.md, "CLI start").
 */
import { readFile } from 'node:fs/promises';
import { GatewayError, invalid, toGatewayError } from '../../core/errors.ts';
import { applyPlan, describePlan, failAtFromEnv, type Step } from '../../core/plan.ts';
import type { Infer } from '../../core/schema.ts';
import { parseSectionConfig, type Section } from '../../core/sectionconfig.ts';
import { checkShare, isDomainPrincipal, parseShare, shareSchema, shareUsers, type Share } from '../../core/share.ts';
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
import { haState, type HaState } from '../../ha/service.ts';
import { checkNewShare, requireMode, type createParams, type deleteParams, type Imported, type migrateParams, type nameParam } from './shares.ts';

export async function create(p: Infer<typeof createParams>, g: Gateway) {
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
}

export async function remove(p: Infer<typeof deleteParams>, g: Gateway) {
  const { sharename, purge, dry_run, ad_user, ad_password } = p;
  return g.store.locked(async () => {
    const existing = await g.store.list();
    const share = requireShare(existing, sharename);
    requireMode(g, share.mode);
    // lxc/vm domain shares: the guest leaves the domain with these credentials (docs/ad.md)
    const adCred = ad_password !== undefined ? { user: ad_user ?? 'Administrator', password: ad_password } : undefined;
    const steps = await planDelete(g, share, existing, { purge, ...(adCred ? { adCred } : {}) });
    if (dry_run) return { dry_run: true, sharename: share.sharename, plan: describePlan(steps) };
    return { sharename: share.sharename, steps: await applyPlan(steps, { failAt: failAtFromEnv(), log: g.log, journal: g.store.journalFor(purge ? 'delete --purge' : 'delete', share.sharename) }) };
  });
}

export async function status(p: Infer<typeof nameParam>, g: Gateway): Promise<ShareStatus & { ha?: HaState; backup: BackupStatus }> {
  const share = await g.store.require(p.sharename);
  const st0 = await shareStatus(g, share);
  // Scheduled backups: schedule, next run, the last run (a failed one is also a warning).
  const b = await backupStatus(g, share);
  const st = { ...st0, backup: b.backup, warnings: [...st0.warnings, ...b.warnings] };
  // HA shares: the node holding the VIP and each node's CTDB flags.
  return share.ha_enabled ? { ...st, ha: await haState(g, share) } : st;
}

/** Keys of the older Perl plugin's storage.cfg entries that have no place in a share (storage-generic). */
const STORAGE_ONLY_KEYS = new Set(['content', 'disable', 'shared', 'nodes', 'prune-backups', 'maxfiles']);

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

export async function migrate(p: Infer<typeof migrateParams>, g: Gateway) {
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
}
