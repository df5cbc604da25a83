/**
 * What an API caller needs for each operation, in Proxmox VE's terms (ACL paths and privileges, see
 * docs/api.md for the table). Storage privileges are asked on the storage that holds the share
 * (/storage/<id>, else /storage); guest modes add what Proxmox VE itself asks for the calls the
 * gateway makes on the caller's behalf (permissions of POST /nodes/{node}/lxc, .../clone,
 * PUT .../config, .../status/start, DELETE /nodes/{node}/{lxc,qemu}/{vmid}, /cluster/mapping/dir in
 * the official API schema); lxc mode binds a host path into the container, which Proxmox allows to
 * root@pam only.
 */
import type { Privilege, PrivilegeRule } from '../core/operation.ts';
import type { Settings } from '../core/settings.ts';
import type { Share } from '../core/share.ts';
import type { Gateway } from '../provision/context.ts';

export const AUDIT_PRIVS = ['Datastore.Audit', 'Datastore.Allocate'];
/** Reading: the privilege over all storages (lists, tasks, metrics of every share). */
export const AUDIT: Privilege = { path: '/storage', privs: AUDIT_PRIVS };
export const SYS_MODIFY: Privilege = { path: '/', privs: ['Sys.Modify'] };
/** Bind mounts of host paths: root@pam with Proxmox VE credentials; a gateway token needs Sys.Modify. */
export const ROOT_PAM: Privilege = { path: '/', privs: ['Sys.Modify'], pveUser: 'root@pam' };

const on = (path: string, ...privs: string[]): Privilege => ({ path, privs });
const each = (path: string, privs: string[]): Privilege[] => privs.map((p) => on(path, p));

type GuestShare = Pick<Share, 'mode'> & Partial<Pick<Share, 'bridge' | 'vm_attach' | 'vmid'>>;

/**
 * What Proxmox VE asks for the guest the gateway clones, configures and starts (create) or stops and
 * destroys (delete) for an lxc or vm share. Its disks' storage is found at run time (the template's),
 * so Datastore.AllocateSpace is asked on /storage.
 */
export function guestPrivileges(share: GuestShare, action: 'create' | 'delete', settings: Pick<Settings, 'pveBridge'>): Privilege[] {
  if (share.mode !== 'lxc' && share.mode !== 'vm') return [];
  const attach = share.vm_attach ?? 'auto';
  const mapping = share.mode === 'vm' && (attach === 'auto' || attach === 'virtiofs');
  if (action === 'delete') {
    const vms = share.vmid ? `/vms/${share.vmid}` : '/vms';
    return [
      ...each(vms, ['VM.Allocate', 'VM.PowerMgmt']),
      ...(mapping ? [on('/mapping/dir', 'Mapping.Modify')] : []),
      ...(share.mode === 'lxc' ? [ROOT_PAM] : []),
    ];
  }
  const bridge = share.bridge ?? settings.pveBridge ?? 'vmbr0';
  const common = [
    // clone (VM.Clone on the template, VM.Allocate on the new id), PUT config, start
    ...each('/vms', ['VM.Allocate', 'VM.Clone', 'VM.Config.CPU', 'VM.Config.Memory', 'VM.Config.Network', 'VM.Config.Options', 'VM.PowerMgmt']),
    on('/storage', 'Datastore.AllocateSpace'),
    on(`/sdn/zones/localnetwork/${bridge}`, 'SDN.Use'),
  ];
  if (share.mode === 'lxc') return [...common, on('/vms', 'VM.Config.Disk'), ROOT_PAM];
  return [
    ...common,
    on('/vms', 'VM.Config.Cloudinit'),
    // virtiofs: a directory mapping made for the VM (Mapping.Modify), used by it (Mapping.Use on /mapping/dir/<id>)
    ...(mapping ? [on('/mapping/dir', 'Mapping.Modify'), on('/mapping/dir', 'Mapping.Use')] : []),
    // rbd: a disk on the Ceph storage
    ...(attach === 'auto' || attach === 'rbd' ? [on('/vms', 'VM.Config.Disk')] : []),
  ];
}

const GUEST_TEXT = 'lxc and vm modes also what Proxmox VE asks for the guest (docs/api.md); lxc mode root@pam';

/** create: Datastore.Allocate on the storage holding `path`, plus the guest's privileges. */
export const createPrivileges: PrivilegeRule<Gateway> = {
  description: `Datastore.Allocate on /storage/<storage holding path> (else /storage); ${GUEST_TEXT}`,
  required: async (p, g, acl) => [
    on(await acl.storage(String(p.path)), 'Datastore.Allocate'),
    ...guestPrivileges(p as unknown as GuestShare, 'create', g.settings),
  ],
};

/** Any of `privs` on the storage holding the stored share (an unknown share: /storage; the handler answers 404). */
export function onShareStorage(privs: string[], o: { guest?: 'delete'; agent?: boolean } = {}): PrivilegeRule<Gateway> {
  return {
    description: `${privs.join(' or ')} on /storage/<storage holding the share's path> (else /storage)${o.guest ? `; ${GUEST_TEXT}` : ''}${o.agent ? '; vm shares also VM.GuestAgent.Unrestricted on /vms/<vmid> (the change is made inside the VM through its guest agent)' : ''}`,
    required: async (p, g, acl) => {
      const share = await g.store.get(String(p.sharename));
      if (!share) return [on('/storage', ...privs)];
      return [
        on(await acl.storage(share.path), ...privs),
        ...(o.guest ? guestPrivileges(share, o.guest, g.settings) : []),
        ...(o.agent && share.mode === 'vm' && share.vmid ? [on(`/vms/${share.vmid}`, 'VM.GuestAgent.Unrestricted')] : []),
      ];
    },
  };
}

export const deletePrivileges = onShareStorage(['Datastore.Allocate'], { guest: 'delete' });
export const readSharePrivileges = onShareStorage(AUDIT_PRIVS);
export const changeSharePrivileges = onShareStorage(['Datastore.Allocate']);
/** access and update: as any change, and on a vm share what its guest agent asks (the change is made inside the VM). */
export const accessPrivileges = onShareStorage(['Datastore.Allocate'], { agent: true });
/** A snapshot takes space on the share's storage (as vzdump asks Datastore.AllocateSpace on its target). */
export const backupPrivileges = onShareStorage(['Datastore.AllocateSpace', 'Datastore.Allocate']);
/** Going back to a snapshot replaces the data (and with force destroys newer snapshots). */
export const restorePrivileges = onShareStorage(['Datastore.Allocate']);

/** template create: a new guest (VM.Allocate) with its disk on the storage given (else any: /storage). */
export const templateCreatePrivileges: PrivilegeRule<Gateway> = {
  description: 'VM.Allocate on /vms, and Datastore.AllocateSpace on /storage/<storage> (/storage when no storage is given)',
  required: async (p) => [on('/vms', 'VM.Allocate'), on(p.storage ? `/storage/${String(p.storage)}` : '/storage', 'Datastore.AllocateSpace')],
};

/**
 * token create: Permissions.Modify on /access, and every privilege the new token will carry on /
 * (a gateway token holds its privileges on every path): nobody hands out more than they have.
 */
export const tokenCreatePrivileges: PrivilegeRule<Gateway> = {
  description: 'Permissions.Modify on /access, and each privilege given to the token on /',
  required: async (p) => [on('/access', 'Permissions.Modify'), ...((p.privs as string[] | undefined) ?? []).map((x) => on('/', x))],
};
