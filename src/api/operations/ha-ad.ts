/** The HA cluster in Active Directory: one machine account for the cluster (docs/ad.md, HA). */
import { defineOperation } from '../../core/operation.ts';
import { shareSchema } from '../../core/share.ts';
import { haAdJoin, haAdLeave } from '../../ha/ad.ts';
import type { Gateway } from '../../provision/context.ts';
import { SYS_MODIFY } from '../privileges.ts';
import { adJoinOp, adLeaveOp } from './ad.ts';

const op = defineOperation<Gateway>();
const { username, password } = adJoinOp.parameters;

export const haAdJoinOp = op({
  command: ['ha', 'ad', 'join'],
  method: 'POST',
  path: '/nodes/{node}/smbgateway/ha/ad/join',
  description: 'Join the CTDB cluster to an Active Directory domain: one computer account for its NetBIOS name, joined once, the secret replicated by CTDB, winbind on every node. Everything is checked first; a failed join leaves nothing behind.',
  parameters: {
    domain: { ...shareSchema.ad_domain, optional: false, description: 'DNS name of the domain, e.g. example.com (realm and NetBIOS domain come from its DC)' },
    username, password,
    dc: adJoinOp.parameters.dc,
    dry_run: { type: 'boolean', optional: true, default: false, description: 'Check everything (DC, clock, credentials, computer name) and show the steps, change nothing' },
  },
  positional: ['domain'],
  apiOnly: ['password'],
  returns: { description: 'The membership, the node that joined, the steps applied and how long it took', schema: { type: 'object', properties: { domain: { type: 'string' }, realm: { type: 'string' }, workgroup: { type: 'string' }, netbios_name: { type: 'string' }, join_node: { type: 'string' }, nodes: { type: 'array', items: { type: 'string' } }, steps: { type: 'array', items: { type: 'string' } }, seconds: { type: 'number' } } } },
  privilege: SYS_MODIFY,
  async: true,
  handler: (p, g) => haAdJoin(g, { domain: p.domain, cred: { user: p.username, password: p.password }, dry_run: p.dry_run, ...(p.dc ? { dc: p.dc } : {}) }),
});

export const haAdLeaveOp = op({
  command: ['ha', 'ad', 'leave'],
  method: 'POST',
  path: '/nodes/{node}/smbgateway/ha/ad/leave',
  description: 'Take the CTDB cluster out of the domain: the DC deletes its computer account, winbind stops on every node, smb.conf goes back. Refused while HA shares rely on the domain, unless forced.',
  parameters: { username, password, force: adLeaveOp.parameters.force },
  apiOnly: ['password'],
  returns: { description: 'The steps applied', schema: { type: 'object', properties: { domain: { type: 'string' }, netbios_name: { type: 'string' }, steps: { type: 'array', items: { type: 'string' } }, seconds: { type: 'number' } } } },
  privilege: SYS_MODIFY,
  async: true,
  handler: (p, g) => haAdLeave(g, { user: p.username, password: p.password }, p.force),
});

export const haAdOperations = [haAdJoinOp, haAdLeaveOp];
