/**
 * Gateway templates (the Debian guests every lxc/vm share is cloned from): finding them, and the
 * plans that build them through the Proxmox VE API. Declared as operations in api/operations/templates.ts.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { GatewayError, invalid } from '../core/errors.ts';
import { type Step } from '../core/plan.ts';
import { atomicWrite } from '../core/store.ts';
import type { PveApi } from '../pve/api.ts';
import { guestBaseSmbConf, LXC_TEMPLATE_PACKAGES, pctExec, pctPush, TEMPLATE_TAG, waitForIp } from './guest.ts';

/** The VM template's packages: the container template's (Samba, shadow_copy2, the domain member's winbind) and the guest agent. */
const VM_TEMPLATE_PACKAGES = [...LXC_TEMPLATE_PACKAGES, 'qemu-guest-agent'];
import { guestCtx } from './index.ts';
import type { Gateway } from './context.ts';

export interface TemplateInfo { vmid: number; mode: 'lxc' | 'vm'; node: string; name?: string; tags?: string }

export async function listTemplates(api: PveApi, mode?: string): Promise<TemplateInfo[]> {
  const res = await api.resources('vm');
  return res
    .filter((r) => r.template === 1 && (r.tags ?? '').split(/[;, ]/).includes(TEMPLATE_TAG))
    .map((r) => ({ vmid: r.vmid!, mode: r.type === 'lxc' ? 'lxc' as const : 'vm' as const, node: r.node!, name: r.name, tags: r.tags }))
    .filter((t) => !mode || t.mode === mode)
    .sort((a, b) => a.vmid - b.vmid);
}

export function requirePve(g: Gateway): void {
  if (!g.settings.isPve) throw new GatewayError('unavailable', 'templates need a Proxmox VE node (no /etc/pve here)');
}

async function pickStorage(api: PveApi, node: string, content: string, want?: string): Promise<string> {
  const st = (await api.resources('storage')).filter((r) => r.node === node && (r.content ?? '').split(',').includes(content));
  if (want) {
    if (!st.some((r) => r.storage === want)) throw invalid('storage', `storage "${want}" on ${node} does not hold ${content === 'rootdir' ? 'container volumes (rootdir)' : 'VM disks (images)'}`);
    return want;
  }
  const best = st.find((r) => ['zfspool', 'rbd', 'lvmthin'].includes(r.plugintype ?? '')) ?? st[0];
  if (!best?.storage) throw invalid('storage', `no storage on ${node} holds ${content}`);
  return best.storage;
}

async function pickSource(api: PveApi, node: string, content: 'vztmpl' | 'import', want?: string): Promise<string> {
  const stores = (await api.resources('storage')).filter((r) => r.node === node && (r.content ?? '').split(',').includes(content));
  const vols: string[] = [];
  for (const s of stores) for (const v of await api.storageContent(node, s.storage!, content)) vols.push(v.volid);
  if (want) {
    if (!vols.includes(want)) throw invalid('source', `${want} is not in the ${content} content of ${node}'s storages (have: ${vols.join(', ') || 'none'})`);
    return want;
  }
  const re = content === 'vztmpl' ? /\/debian-\d+-standard_[^/]+$/ : /\/debian-\d+-(genericcloud|generic)-amd64[^/]*\.(qcow2|raw|img)$/;
  const pick = vols.filter((v) => re.test(v)).sort().reverse()[0];
  if (!pick) throw invalid('source', content === 'vztmpl' ? `no Debian standard CT template on ${node} (pveam download local debian-12-standard_...)` : `no Debian cloud image in an import storage on ${node}`);
  return pick;
}

/** Steps that build an lxc-mode template from a Debian standard CT template. */
export async function lxcTemplatePlan(g: Gateway, p: { node: string; storage?: string; source?: string; name?: string; bridge?: string }): Promise<{ steps: Step[]; result: () => TemplateInfo }> {
  const { api, run } = guestCtx(g);
  const node = p.node;
  const storage = await pickStorage(api, node, 'rootdir', p.storage);
  const source = await pickSource(api, node, 'vztmpl', p.source);
  const name = p.name ?? 'smbgw-lxc-template';
  const timeoutMs = (g.settings.pveTaskTimeout ?? 600) * 1000;
  let vmid = 0;
  const steps: Step[] = [
    { name: 'allocate-vmid', do: async () => { vmid = await api.nextId(); } },
    {
      name: 'create-container',
      do: () => api.create(node, 'lxc', {
        vmid, ostemplate: source, hostname: name, unprivileged: 1, rootfs: `${storage}:2`, cores: 1, memory: 256, swap: 0,
        net0: `name=eth0,bridge=${p.bridge ?? g.settings.pveBridge ?? 'vmbr0'},ip=dhcp,type=veth`, ostype: 'debian', tags: TEMPLATE_TAG,
        description: 'pve-smbgateway lxc template: Debian with Samba and winbind',
      }),
      undo: () => api.removeGuest(node, 'lxc', vmid),
    },
    { name: 'start-container', do: () => api.start(node, 'lxc', vmid), undo: () => api.stopIfRunning(node, 'lxc', vmid) },
    {
      name: 'install-samba',
      do: async () => {
        // every package installed already (a template image that carries them): nothing to fetch
        const have = await pctExec(run, vmid, ['dpkg-query', '-W', '-f=${Status}\\n', ...LXC_TEMPLATE_PACKAGES]).catch(() => '');
        if (have.split('\n').filter((l) => l.includes('install ok installed')).length === LXC_TEMPLATE_PACKAGES.length) return;
        await waitForIp(api, node, 'lxc', vmid, timeoutMs);
        await pctExec(run, vmid, ['apt-get', 'update', '-q']);
        await pctExec(run, vmid, ['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'install', '-y', '-q', '--no-install-recommends', ...LXC_TEMPLATE_PACKAGES]);
      },
    },
    {
      name: 'configure-samba',
      do: async () => {
        await pctPush(run, vmid, guestBaseSmbConf(), '/etc/samba/smb.conf', '0644');
        await pctPush(run, vmid, '# pve-smbgateway: replaced for each share\n', '/etc/samba/smbgateway.conf', '0644');
        await pctExec(run, vmid, ['systemctl', 'enable', 'smbd']);
        await pctExec(run, vmid, ['systemctl', 'disable', 'nmbd']).catch(() => undefined);
        // winbindd runs only in the containers of domain shares: their join enables it (docs/ad.md)
        await pctExec(run, vmid, ['systemctl', 'disable', 'winbind']).catch(() => undefined);
      },
    },
    { name: 'stop-container', do: () => api.stop(node, 'lxc', vmid) },
    { name: 'convert-template', do: () => api.template(node, 'lxc', vmid) },
  ];
  return { steps, result: () => ({ vmid, mode: 'lxc', node, name, tags: TEMPLATE_TAG }) };
}

/** cloud-init user-data that prepares the VM template once, then powers it off (pure). */
export function templateUserData(): string {
  const conf = guestBaseSmbConf().replace(/\n$/, '').split('\n').map((l) => '      ' + l).join('\n');
  return `#cloud-config
# Written by pve-smbgateway: prepares the vm-mode template once
package_update: false
write_files:
  - path: "/etc/samba/smb.conf"
    permissions: "0644"
    content: |
${conf}
  - path: "/etc/samba/smbgateway.conf"
    permissions: "0644"
    content: |
      # pve-smbgateway: replaced for each share
runcmd:
  - ["sh", "-c", "dpkg-query -W -f='\${Status}\\\\n' ${VM_TEMPLATE_PACKAGES.join(' ')} 2>/dev/null | grep -c 'install ok installed' | grep -qx ${VM_TEMPLATE_PACKAGES.length} || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ${VM_TEMPLATE_PACKAGES.join(' ')})"]
  - ["systemctl", "enable", "smbd", "qemu-guest-agent"]
  - ["systemctl", "disable", "nmbd"]
  # Clones must run cloud-init as new instances (their own hostname, users, Samba config): forget this one.
  - ["cloud-init", "clean", "--logs", "--machine-id"]
power_state:
  mode: poweroff
  delay: now
  message: "pve-smbgateway template prepared"
`;
}

/** Steps that build a vm-mode template from a Debian cloud image. */
export async function vmTemplatePlan(g: Gateway, p: { node: string; storage?: string; source?: string; name?: string; bridge?: string }): Promise<{ steps: Step[]; result: () => TemplateInfo }> {
  const { api } = guestCtx(g);
  const node = p.node;
  if (node !== g.settings.node) throw invalid('node', `the setup snippet is written on this node (${g.settings.node}): run template create there`);
  const storage = await pickStorage(api, node, 'images', p.storage);
  const source = await pickSource(api, node, 'import', p.source);
  const name = p.name ?? 'smbgw-vm-template';
  const snipId = g.settings.pveSnippetsStorage ?? 'local';
  const snip = await api.storage(snipId);
  if (!snip.path || !(snip.content ?? '').split(',').includes('snippets')) throw new GatewayError('unavailable', `the storage "${snipId}" must be a directory storage with the snippets content type`, 'pve_snippets_storage');
  const timeoutMs = (g.settings.pveTaskTimeout ?? 600) * 1000;
  let vmid = 0;
  let file = '';
  const steps: Step[] = [
    { name: 'allocate-vmid', do: async () => { vmid = await api.nextId(); file = join(snip.path!, 'snippets', `smbgw-template-${vmid}.yaml`); } },
    { name: 'write-setup-user-data', do: () => atomicWrite(file, templateUserData(), 0o600), undo: () => rm(file, { force: true }) },
    {
      name: 'create-vm',
      do: () => api.create(node, 'qemu', {
        vmid, name, memory: 1024, cores: 1, ostype: 'l26', scsihw: 'virtio-scsi-single',
        scsi0: `${storage}:0,import-from=${source}`, ide2: `${storage}:cloudinit`, boot: 'order=scsi0',
        serial0: 'socket', vga: 'serial0', agent: 'enabled=1', net0: `virtio,bridge=${p.bridge ?? g.settings.pveBridge ?? 'vmbr0'}`,
        ipconfig0: 'ip=dhcp', cicustom: `user=${snipId}:snippets/smbgw-template-${vmid}.yaml`, tags: TEMPLATE_TAG,
        description: 'pve-smbgateway vm template: Debian cloud image with Samba and the QEMU guest agent',
      }),
      undo: () => api.removeGuest(node, 'qemu', vmid),
    },
    { name: 'start-vm', do: () => api.start(node, 'qemu', vmid), undo: () => api.stopIfRunning(node, 'qemu', vmid) },
    {
      name: 'wait-setup',
      do: async () => {
        const deadline = Date.now() + timeoutMs;
        while ((await api.status(node, 'qemu', vmid)).status === 'running') {
          if (Date.now() > deadline) throw new GatewayError('failed', `VM ${vmid} did not power off within ${timeoutMs / 1000} s after its setup (see its serial console)`);
          await new Promise((r) => setTimeout(r, 500));
        }
      },
    },
    { name: 'detach-setup-user-data', do: async () => { await api.setConfig(node, 'qemu', vmid, { delete: 'cicustom' }); await rm(file, { force: true }); } },
    { name: 'convert-template', do: () => api.template(node, 'qemu', vmid) },
  ];
  return { steps, result: () => ({ vmid, mode: 'vm', node, name, tags: TEMPLATE_TAG }) };
}
