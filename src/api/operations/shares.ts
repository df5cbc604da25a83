/** Share operations: list, create, delete, status, migrate. */
import { readFile } from 'node:fs/promises';
import { GatewayError, invalid } from '../../core/errors.ts';
import { allOf, type Operation } from '../../core/operation.ts';
import { applyPlan, failAtFromEnv } from '../../core/plan.ts';
import { validate, type Schema } from '../../core/schema.ts';
import { parseSectionConfig } from '../../core/sectionconfig.ts';
import { checkShare, parseShare, shareSchema, shareUsers, type Share } from '../../core/share.ts';
import { findShare, requireShare, sectionToShare } from '../../core/store.ts';
import { readPasswordFile } from '../../provision/native.ts';
import { guestShareStatus, planCreate, planDelete } from '../../provision/index.ts';
import { usageOf } from '../../provision/quota.ts';
import { detectBacking } from '../../provision/storage.ts';
import { smbConfSteps, servedHere } from '../../samba/apply.ts';
import { includesManaged } from '../../samba/render.ts';
import { humanBytes, table } from '../../cli/table.ts';
import type { Gateway } from '../context.ts';
import { AUDIT, createPrivileges, deletePrivileges, readSharePrivileges, SYS_MODIFY } from '../privileges.ts';
import { haState, type HaState } from './ha.ts';

/** The share as users see it (internal bookkeeping left out). */
export function publicShare(s: Share): Omit<Share, 'created'> {
  const { created: _created, ...rest } = s;
  return rest;
}

const nameParam = { sharename: shareSchema.sharename } satisfies Schema;

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
    password: { type: 'string', optional: true, description: 'Password for the new users (API only)' },
  },
  positional: ['sharename'],
  aliases: { user: 'users', 'read-user': 'read_users', group: 'groups', 'read-group': 'read_groups', option: 'options', profile: 'security_profile', guest: 'guest_ok' },
  cliOnly: ['password_file'],
  apiOnly: ['password'],
  returns: { description: 'The share created, the steps applied and any warnings' },
  privilege: createPrivileges,
  async: true,
  handler: async (p, g) => {
    const { password_file, password, ...rest } = p as Record<string, unknown> & { password_file?: string; password?: string };
    const req = parseShare(rest);
    if (!req.guest_ok && shareUsers(req).length + req.groups.length + req.read_groups.length === 0 && !req.ad_domain)
      throw invalid('users', 'at least one user or group must have access (or enable guest_ok)');
    requireMode(g, req.mode);
    if (password_file !== undefined && password !== undefined) throw invalid('password', 'give either password or password_file, not both');
    const passwords = password_file !== undefined
      ? await readPasswordFile(password_file, shareUsers(req))
      : new Map(password !== undefined ? shareUsers(req).map((u) => [u, password] as const) : []);
    return g.store.locked(async () => {
      const existing = await g.store.list();
      const plan = await planCreate(g, req, existing, passwords);
      const steps = await applyPlan(plan.steps, { failAt: failAtFromEnv(), log: g.log });
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
  privilege: deletePrivileges,
  async: true,
  handler: async (p, g) => {
    const { sharename, purge } = validate({ ...nameParam, purge: { type: 'boolean', default: false, optional: true, description: '' } }, p);
    return g.store.locked(async () => {
      const existing = await g.store.list();
      const share = requireShare(existing, sharename);
      requireMode(g, share.mode);
      const steps = await planDelete(g, share, existing, { purge: !!purge });
      return { sharename: share.sharename, steps: await applyPlan(steps, { failAt: failAtFromEnv(), log: g.log }) };
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
    const pw = user ? await readFile(g.store.secretPath(share.sharename, user), 'utf8').catch(() => undefined) : undefined;
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
  privilege: readSharePrivileges,
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

export const migrateOp: Operation<Gateway> = {
  command: ['migrate'],
  method: 'POST',
  path: '/nodes/{node}/smbgateway/migrate',
  description: 'Import the smbgateway entries of an existing storage.cfg (the older Perl plugin) into the gateway.',
  parameters: {
    storage_cfg: { type: 'string', optional: true, default: '/etc/pve/storage.cfg', description: 'storage.cfg to read' },
    dry_run: { type: 'boolean', optional: true, default: false, description: 'Report only, change nothing' },
  },
  returns: { description: 'What was imported, skipped or kept aside' },
  // It adds many shares at once, wherever storage.cfg says.
  privilege: allOf({ path: '/storage', privs: ['Datastore.Allocate'] }, SYS_MODIFY),
  handler: async (p, g) => {
    const { storage_cfg, dry_run } = validate(migrateOp.parameters, p) as { storage_cfg: string; dry_run: boolean };
    let text: string;
    try { text = await readFile(storage_cfg, 'utf8'); } catch { throw invalid('storage_cfg', `cannot read ${storage_cfg}`); }
    const entries = parseSectionConfig(text).filter((s) => s.type === 'smbgateway');
    return g.store.locked(async () => {
      const existing = await g.store.list();
      const imported: { storage: string; sharename: string; mode: string; path: string; unmapped: Record<string, string> }[] = [];
      const skipped: { storage: string; reason: string }[] = [];
      const toAdd: Share[] = [];
      for (const e of entries) {
        const props: Record<string, string> = {};
        const unmapped: Record<string, string> = {};
        for (const [k, v] of Object.entries(e.props)) {
          if (k === 'sharename') continue;
          if (k in shareSchema && k !== 'created') props[k] = v;
          else if (k === 'nodes' && !v.includes(',')) props.node = v;
          else unmapped[k] = v;
        }
        for (const k of Object.keys(unmapped)) if (STORAGE_ONLY_KEYS.has(k)) delete unmapped[k];
        const sharename = e.props.sharename ?? e.id;
        try {
          if (findShare([...existing, ...toAdd], sharename)) throw new Error(`a share named "${sharename}" already exists`);
          const share = checkShare(sectionToShare({ type: 'smbgateway', id: sharename, props: { mode: 'native', ...props } }));
          toAdd.push(share);
          imported.push({ storage: e.id, sharename, mode: share.mode, path: share.path, unmapped });
        } catch (err) {
          skipped.push({ storage: e.id, reason: (err as Error).message });
        }
      }
      if (!dry_run && toAdd.length) {
        const after = [...existing, ...toAdd];
        await applyPlan([
          g.store.saveStep(() => after),
          ...(toAdd.some((s) => servedHere([s]).length) ? smbConfSteps(g.samba, () => after) : []),
        ], { failAt: failAtFromEnv(), log: g.log });
      }
      return { source: storage_cfg, dry_run, imported, skipped };
    });
  },
  format: (r) => {
    const x = r as { dry_run: boolean; imported: { storage: string; sharename: string; mode: string; path: string; unmapped: Record<string, string> }[]; skipped: { storage: string; reason: string }[] };
    const lines = [`${x.dry_run ? 'would import' : 'imported'} ${x.imported.length} share(s), skipped ${x.skipped.length}`];
    for (const i of x.imported) lines.push(`  + ${i.sharename} (${i.mode}) ${i.path}${Object.keys(i.unmapped).length ? `  kept aside: ${JSON.stringify(i.unmapped)}` : ''}`);
    for (const s of x.skipped) lines.push(`  - ${s.storage}: ${s.reason}`);
    return lines.join('\n');
  },
};

export const shareOperations = [listOp, createOp, deleteOp, statusOp, migrateOp];
