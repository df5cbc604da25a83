/** Active Directory membership of the node: join, leave, status (docs/ad.md). */
import { domainAccountProp } from '../../core/formats.ts';
import { defineOperation } from '../../core/operation.ts';
import { applyPlan, describePlan, failAtFromEnv } from '../../core/plan.ts';
import { shareSchema } from '../../core/share.ts';
import type { Gateway } from '../../provision/context.ts';
import { adStatus, planJoin, planLeave } from '../../provision/ad.ts';
import { SYS_MODIFY } from '../privileges.ts';

const op = defineOperation<Gateway>();

const cred = {
  username: { ...domainAccountProp('Domain account allowed to join computers (or delete them, to leave)'), default: 'Administrator' },
  password: { type: 'string', keepSpace: true, description: 'Its password (on the command line: --password-file FILE, - for stdin); used for this call only, never stored or logged' },
} as const;

export const adJoinOp = op({
  command: ['ad', 'join'],
  method: 'POST',
  path: '/nodes/{node}/smbgateway/ad/join',
  description: 'Join this node to an Active Directory domain (security = ads, winbind with fixed idmap ranges). Everything is checked first; a failed join leaves nothing behind.',
  parameters: {
    domain: { ...shareSchema.ad_domain, optional: false, description: 'DNS name of the domain, e.g. example.com (realm and NetBIOS domain come from its DC)' },
    ...cred,
    dc: { type: 'string', optional: true, pattern: /^[A-Za-z0-9][A-Za-z0-9.:-]{0,252}$/, patternText: 'must be a host name or IP address', description: 'A domain controller to talk to (default: found through DNS)' },
    dry_run: { type: 'boolean', optional: true, default: false, description: 'Check everything (DC, clock, credentials, computer name) and show the steps, change nothing' },
  },
  positional: ['domain'],
  apiOnly: ['password'],
  returns: { description: 'The membership and the steps applied', schema: { type: 'object', properties: { domain: { type: 'string' }, realm: { type: 'string' }, workgroup: { type: 'string' }, netbios_name: { type: 'string' }, idmap: { type: 'object' }, checks: { type: 'object' }, steps: { type: 'array', items: { type: 'string' } } } } },
  privilege: SYS_MODIFY,
  async: true,
  handler: async (p, g) => g.store.locked(async () => {
    const shares = await g.store.list();
    const { steps, state, checks } = await planJoin(g, { domain: p.domain, cred: { user: p.username, password: p.password }, ...(p.dc ? { dc: p.dc } : {}) }, () => shares);
    const out = { domain: state.domain, realm: state.realm, workgroup: state.workgroup, netbios_name: state.netbios, idmap: { backend: state.idmap.backend, domain: state.idmap.domain.join('-'), other: state.idmap.other.join('-') }, checks };
    if (p.dry_run) return { dry_run: true, ...out, plan: describePlan(steps) };
    return { ...out, steps: await applyPlan(steps, { failAt: failAtFromEnv(), log: g.log }) };
  }),
});

export const adLeaveOp = op({
  command: ['ad', 'leave'],
  method: 'POST',
  path: '/nodes/{node}/smbgateway/ad/leave',
  description: 'Leave the domain: the DC deletes the computer account, winbind stops, the config goes back. Refused while shares rely on the domain, unless forced.',
  parameters: {
    ...cred,
    force: { type: 'boolean', optional: true, default: false, description: 'Leave even though shares rely on the domain (their domain users lose access)' },
  },
  apiOnly: ['password'],
  returns: { description: 'The steps applied', schema: { type: 'object', properties: { domain: { type: 'string' }, steps: { type: 'array', items: { type: 'string' } } } } },
  privilege: SYS_MODIFY,
  async: true,
  handler: async (p, g) => g.store.locked(async () => {
    const shares = await g.store.list();
    const { steps, state } = await planLeave(g, { user: p.username, password: p.password }, shares, p.force);
    return { domain: state.domain, steps: await applyPlan(steps, { failAt: failAtFromEnv(), log: g.log }) };
  }),
});

export const adStatusOp = op({
  command: ['ad', 'status'],
  method: 'GET',
  path: '/nodes/{node}/smbgateway/ad',
  description: 'Whether this node is joined, to what, whether its machine account works and winbind reaches a DC, and which shares rely on the domain.',
  parameters: {},
  returns: { description: 'Membership status', schema: { type: 'object', properties: { joined: { type: 'boolean' }, domain: { type: 'string' }, realm: { type: 'string' }, workgroup: { type: 'string' }, netbios_name: { type: 'string' }, machine_account_ok: { type: 'boolean' }, winbind_running: { type: 'boolean' }, dc_online: { type: 'boolean' }, idmap: { type: 'object' }, domain_shares: { type: 'array', items: { type: 'string' } } } } },
  privilege: SYS_MODIFY,
  handler: async (_p, g) => adStatus(g, await g.store.list()),
});

export const adOperations = [adJoinOp, adLeaveOp, adStatusOp];
