/** HA operations: deploy the CTDB cluster, show its state, move a share's VIP (failover). */
import { GatewayError, invalid } from '../../core/errors.ts';
import { deployHa, haDeploySchema, haState, shareVip } from '../../ha/service.ts';
import { nodeProp } from '../../core/formats.ts';
import { allOf, defineOperation } from '../../core/operation.ts';
import { applyPlan, failAtFromEnv } from '../../core/plan.ts';
import { type Schema } from '../../core/schema.ts';
import { shareSchema, type Share } from '../../core/share.ts';
import { requireHaConfig } from '../../ha/config.ts';
import { moveVip, type HaNode } from '../../ha/ctdb.ts';
import { guestHaRegistered, guestHaRemoveSteps, guestHaSteps, haResourceSid } from '../../ha/pveha.ts';
import { pveClient } from '../../pve/connect.ts';
import type { Gateway } from '../../provision/context.ts';
import { AUDIT, SYS_MODIFY } from '../privileges.ts';

const op = defineOperation<Gateway>();


const nameParam = { sharename: shareSchema.sharename } satisfies Schema;

async function haShare(g: Gateway, name: string): Promise<Share> {
  const s = await g.store.require(name);
  if (!s.ha_enabled) throw invalid('sharename', `share ${s.sharename} is not an HA share (ha_enabled is off)`);
  return s;
}

export const haDeployOp = op({
  command: ['ha', 'deploy'],
  method: 'POST',
  path: '/nodes/{node}/smbgateway/ha/deploy',
  description: 'Set up (or update) the CTDB cluster with clustered Samba on all nodes and serve the HA shares at their VIPs.',
  parameters: haDeploySchema,
  returns: { description: 'Nodes, VIPs, what changed on each node and where each VIP is', schema: { type: 'object', properties: { nodes: { type: 'array', items: { type: 'object' } }, vips: { type: 'object', additionalProperties: { type: 'string' } }, changed: { type: 'object' } } } },
  // root over SSH on every node
  privilege: SYS_MODIFY,
  async: true,
  handler: (p, g) => deployHa(g, p),
});

export const haStatusOp = op({
  command: ['ha', 'status'],
  method: 'GET',
  path: '/nodes/{node}/smbgateway/ha',
  description: 'State of the CTDB cluster: each node\'s flags and the problems seen.',
  parameters: {},
  returns: { description: 'Cluster state', schema: { type: 'object', properties: { vip: { type: 'string' }, holder: { type: 'string', nullable: true }, nodes: { type: 'array', items: { type: 'object' } }, ok: { type: 'boolean' }, problems: { type: 'array', items: { type: 'string' } }, ad: { type: 'object', description: 'The cluster\'s domain membership (ha ad join)' } } } },
  privilege: AUDIT,
  handler: (_p, g) => haState(g),
});

export const failoverOp = op({
  command: ['failover'],
  method: 'POST',
  path: '/nodes/{node}/smbgateway/{sharename}/failover',
  description: 'Move an HA share\'s VIP to another node (ctdb moveip), e.g. before maintenance.',
  parameters: {
    ...nameParam,
    to: nodeProp('Node to move the VIP to (default: the first other healthy node)'),
  },
  positional: ['sharename'],
  returns: { description: 'VIP, from which node to which, and how long the move took', schema: { type: 'object', properties: { vip: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' }, seconds: { type: 'number' } } } },
  privilege: SYS_MODIFY,
  handler: async (p, g) => {
    const { sharename, to } = p;
    const share = await haShare(g, sharename);
    const cfg = await requireHaConfig(g.settings.storeDir);
    const vip = shareVip(cfg, share);
    const nodes: HaNode[] = cfg.nodes.map((n) => ({ ...n, run: g.run }));
    return moveVip(nodes, g.run, vip, to);
  },
});

export const haGuestOp = op({
  command: ['ha', 'guest'],
  method: 'POST',
  path: '/nodes/{node}/smbgateway/{sharename}/ha-resource',
  description: 'Register the guest of an lxc/vm share as a Proxmox HA resource, so that Proxmox restarts it on another node when its node fails (or remove it).',
  parameters: {
    ...nameParam,
    max_restart: { type: 'integer', optional: true, default: 1, minimum: 0, maximum: 10, description: 'Restarts on the same node before relocating' },
    max_relocate: { type: 'integer', optional: true, default: 1, minimum: 0, maximum: 10, description: 'Relocations to other nodes' },
    remove: { type: 'boolean', optional: true, default: false, description: 'Remove the HA resource instead' },
  },
  positional: ['sharename'],
  returns: { description: 'The HA resource id and whether it is registered', schema: { type: 'object', properties: { sid: { type: 'string' }, registered: { type: 'boolean' } } } },
  // Proxmox asks Sys.Console on / for /cluster/ha/resources
  privilege: allOf(SYS_MODIFY, { path: '/', privs: ['Sys.Console'] }),
  handler: async (p, g) => {
    const x = p;
    const share = await g.store.require(x.sharename);
    const sid = haResourceSid(share);
    if (!g.settings.isPve) throw new GatewayError('unavailable', 'Proxmox HA needs a Proxmox VE node (no /etc/pve here)');
    const api = pveClient(g.settings, g.run);
    const o = { maxRestart: x.max_restart, maxRelocate: x.max_relocate };
    await applyPlan(x.remove ? guestHaRemoveSteps(api, share, o) : guestHaSteps(api, share, o), { failAt: failAtFromEnv(), log: g.log });
    return { sharename: share.sharename, sid, registered: !!(await guestHaRegistered(api, sid)) };
  },
});

export const haOperations = [haDeployOp, haStatusOp, failoverOp, haGuestOp];
