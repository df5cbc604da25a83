/**
 * Gateway templates for lxc and vm modes: `template list` and `template create`. A template is built
 * once (Samba installed inside, then converted with Proxmox's template function); every share is a
 * clone of it, never an apt-get per share. Templates carry the Proxmox tag `smbgateway`.
 */
import { listTemplates, lxcTemplatePlan, requirePve, vmTemplatePlan } from '../../provision/templates.ts';
import { nodeProp, storageIdProp } from '../../core/formats.ts';
import { defineOperation } from '../../core/operation.ts';
import { applyPlan, failAtFromEnv } from '../../core/plan.ts';
import { type Schema } from '../../core/schema.ts';
import { guestCtx } from '../../provision/index.ts';
import type { Gateway } from '../../provision/context.ts';
import { templateCreatePrivileges } from '../privileges.ts';

const op = defineOperation<Gateway>();

const AUDIT = { path: '/vms', privs: ['VM.Audit'] };

const listParams = {
  mode: { type: 'string', optional: true, enum: ['lxc', 'vm'], description: 'Only templates of this mode' },
} satisfies Schema;

export const templateListOp = op({
  command: ['template', 'list'],
  method: 'GET',
  path: '/nodes/{node}/smbgateway/templates',
  description: 'List the gateway templates (lxc and vm mode) in the cluster.',
  parameters: listParams,
  returns: { description: 'The templates', schema: { type: 'array', items: { type: 'object', properties: { vmid: { type: 'integer' }, mode: { type: 'string' }, node: { type: 'string' }, name: { type: 'string' } } } } },
  privilege: AUDIT,
  handler: async (p, g) => {
    requirePve(g);
    const { mode } = p;
    return listTemplates(guestCtx(g).api, mode);
  },
});

const createParams = {
  mode: { type: 'string', enum: ['lxc', 'vm'], description: 'Template for lxc or vm mode' },
  node: nodeProp('Node (default: this one)'),
  storage: storageIdProp('Storage for the template disk (default: the first zfspool/rbd/lvmthin storage, else local)'),
  source: {
    type: 'string', optional: true, pattern: /^[a-z][a-z0-9\-_.]*[a-z0-9]:(vztmpl|import)\/[^\s,]+$/i, patternText: 'must be a volume such as local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst',
    description: 'Debian standard CT template (lxc) or cloud image in import content (vm); default: the newest Debian one found',
  },
  name: { type: 'string', optional: true, pattern: /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, patternText: 'must be a DNS label', description: 'Template name' },
  bridge: { type: 'string', optional: true, pattern: /^[-_.\w]{1,64}$/, patternText: 'must be a bridge name', description: 'Bridge used while Samba is installed' },
} satisfies Schema;

export const templateCreateOp = op({
  command: ['template', 'create'],
  method: 'POST',
  path: '/nodes/{node}/smbgateway/templates',
  description: 'Build a gateway template: Samba installed once in a Debian container (lxc) or cloud-init VM (vm), then converted to a Proxmox VE template.',
  parameters: createParams,
  returns: { description: 'The template created and the steps applied', schema: { type: 'object', properties: { vmid: { type: 'integer' }, mode: { type: 'string' }, node: { type: 'string' }, name: { type: 'string' }, steps: { type: 'array', items: { type: 'string' } } } } },
  privilege: templateCreatePrivileges,
  async: true,
  handler: async (p, g) => {
    requirePve(g);
    const v = p;
    const args = { node: v.node ?? g.settings.node, storage: v.storage, source: v.source, name: v.name, bridge: v.bridge };
    const plan = v.mode === 'lxc' ? await lxcTemplatePlan(g, args) : await vmTemplatePlan(g, args);
    const steps = await applyPlan(plan.steps, { failAt: failAtFromEnv(), log: g.log });
    return { template: plan.result(), steps };
  },
});

export const templateOperations = [templateListOp, templateCreateOp];
