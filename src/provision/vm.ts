/**
 * VM mode: each share is served by its own VM, a clone (linked where the storage allows, else full)
 * of the cloud-init gateway template (Debian with Samba and the QEMU guest agent).
 *
 * The Samba config and the users reach the VM in a cloud-init user-data snippet that the gateway writes
 * into a snippets-capable storage's snippets/ directory on the node (the API cannot upload snippets),
 * mode 0600, named by `cicustom`. Users travel as NT hashes (pdbedit import), never as plain passwords.
 *
 * The share path reaches the VM according to its backend:
 *  - virtiofs through a cluster directory mapping (local filesystems: ZFS, btrfs, ext4/xfs, dir);
 *  - an RBD disk on a Ceph RBD storage (paths on Ceph): the data lives in that image, sized by the quota;
 *  - NFS from the node otherwise (network filesystems), exported to the VM's static address only.
 * The VM's address comes from the guest agent; a health check logs on over SMB from the host.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { GatewayError, invalid } from '../core/errors.ts';
import type { Step } from '../core/plan.ts';
import { parseSize, shareUsers, type Made, type Share } from '../core/share.ts';
import { atomicWrite } from '../core/store.ts';
import { fileRecord, type RemoveFileRecord } from '../core/journal.ts';
import type { Params } from '../pve/client.ts';
import {
  assignGuestUids, checkGuestShare, firstWriter, findTemplate, GUEST_MANAGED_CONF, guestAclSpec, guestBaseSmbConf, guestPermissionSteps,
  healthCheckStep, parseGuestUids, PATH_INSIDE, revokeSteps, smbpasswdLine, waitForIp, type GuestCtx, type MutableShare,
} from './guest.ts';
import { chooseClone, guestHostname, guestManagedConf, guestRecord, netSpec, planGuestDeleteCommon, guestPurgeStep } from './lxc.ts';
import type { DirMappingRecord, GuestRunningRecord, NfsExportRecord } from './repair.ts';
import type { CreatePlan } from './native.ts';
import { preStorageQuotaSteps, quotaSteps, storageSteps } from './quota.ts';
import { CEPHFS_GUEST_REFUSAL } from '../core/cephfs.ts';
import { backingTag, placeNewShare, requireQuotaSupport, type Backing } from './storage.ts';
import { guestSnapshotMount, SNAPSHOTS_INSIDE } from '../samba/guestshadow.ts';
import { snapshotDirSteps } from './guest-snapshots.ts';
import { isDomainPrincipal } from '../core/share.ts';
import { IDMAP, type AdCredentials } from '../samba/ads.ts';
import { agentShell } from './guest-exec.ts';
import { checkLxcDomainShare, domainAclSpec, lxcDomainServeSteps, lxcJoinSteps, lxcLeaveSteps, type JoinGuest } from './lxc-ad.ts';

export type Attachment = 'virtiofs' | 'rbd' | 'nfs';

const NETWORK_FS = /^(nfs4?|cifs|smb3|fuse\.sshfs|glusterfs|fuse\.glusterfs|9p)$/;
const CEPH_FS = /^(ceph|fuse\.ceph|fuse\.ceph-fuse)$/;

/** Which attachment a path's backend calls for (or the one asked for). */
export function chooseAttachment(requested: string | undefined, backing: Backing): Attachment {
  if (requested && requested !== 'auto') return requested as Attachment;
  if (backing.kind === 'cephfs') return 'rbd';
  if (backing.kind !== 'plain') return 'virtiofs';
  const fs = backing.fstype.split(' ')[0]!;
  if (CEPH_FS.test(fs)) return 'rbd';
  if (NETWORK_FS.test(fs)) return 'nfs';
  return 'virtiofs';
}

/** Directory-mapping id for a VM's share (pve-configid: letters, digits, - and _). */
export function mappingId(vmid: number): string { return `smbgw-${vmid}`; }
/** The host directory of a btrfs share's snapshots, passed to its VM. */
function snapshotHost(share: Share): string | undefined {
  const m = guestSnapshotMount(share);
  return m?.kind === 'btrfs' ? m.host : undefined;
}
/** Directory-mapping id of a btrfs share's snapshot directory, mounted read-only in the VM (Previous Versions). */
export function snapshotMappingId(vmid: number): string { return `smbgw-${vmid}-snapshots`; }

export interface UserDataInput {
  hostname: string;
  managedConf: string;
  users: { name: string; uid: number; password: string }[];
  attachment: Attachment;
  /** virtiofs tag, NFS source host:path, or block device. */
  source: string;
  /** virtiofs tag of the share's snapshot directory (btrfs), mounted read-only at SNAPSHOTS_INSIDE. */
  snapshots?: string;
}

/** YAML double-quoted scalar (JSON strings are valid YAML). */
const q = (s: string) => JSON.stringify(s);

function block(text: string, indent: string): string {
  return text.replace(/\n$/, '').split('\n').map((l) => indent + l).join('\n');
}

/** cloud-init user-data for the share's VM (pure). Contains NT hashes: the file must be 0600. */
export function buildUserData(i: UserDataInput): string {
  const passdb = i.users.map((u) => smbpasswdLine(u.name, u.uid, u.password)).join('\n') + '\n';
  const mount = i.attachment === 'virtiofs'
    ? `  - [${q(i.source)}, ${q(PATH_INSIDE)}, "virtiofs", "defaults,nofail", "0", "0"]`
    : i.attachment === 'nfs'
      ? `  - [${q(i.source)}, ${q(PATH_INSIDE)}, "nfs", "vers=4.2,_netdev,nofail", "0", "0"]`
      : `  - [${q(i.source)}, ${q(PATH_INSIDE)}, "ext4", "defaults,nofail", "0", "2"]`;
  const snapMount = i.snapshots ? [`  - [${q(i.snapshots)}, ${q(SNAPSHOTS_INSIDE)}, "virtiofs", "ro,nofail", "0", "0"]`] : [];
  const runcmd: string[][] = [['mkdir', '-p', PATH_INSIDE, ...(i.snapshots ? [SNAPSHOTS_INSIDE] : [])]];
  for (const u of i.users) {
    runcmd.push(['groupadd', '--gid', String(u.uid), u.name]);
    runcmd.push(['useradd', '--no-create-home', '--shell', '/usr/sbin/nologin', '--uid', String(u.uid), '--gid', String(u.uid), u.name]);
  }
  runcmd.push(['mount', '-a']);
  runcmd.push(['pdbedit', '-i', 'smbpasswd:/root/smbgw.smbpasswd', '-e', 'tdbsam']);
  runcmd.push(['rm', '-f', '/root/smbgw.smbpasswd']);
  runcmd.push(['systemctl', 'restart', 'smbd']);
  return [
    '#cloud-config',
    '# Written by pve-smbgateway (contains password hashes: keep it 0600)',
    `hostname: ${q(i.hostname)}`,
    'manage_etc_hosts: true',
    'package_update: false',
    'package_upgrade: false',
    ...(i.attachment === 'rbd' ? ['fs_setup:', `  - {label: smbshare, filesystem: ext4, device: ${q(i.source)}, overwrite: false}`] : []),
    'mounts:',
    mount,
    ...snapMount,
    'write_files:',
    `  - path: ${q('/etc/samba/smb.conf')}`,
    `    permissions: "0644"`,
    '    content: |',
    block(guestBaseSmbConf(), '      '),
    `  - path: ${q(GUEST_MANAGED_CONF)}`,
    `    permissions: "0644"`,
    '    content: |',
    block(i.managedConf, '      '),
    `  - path: "/root/smbgw.smbpasswd"`,
    `    permissions: "0600"`,
    '    content: |',
    block(passdb, '      '),
    'runcmd:',
    ...runcmd.map((c) => `  - [${c.map(q).join(', ')}]`),
    '',
  ].join('\n');
}

/** Parameters for PUT /nodes/{node}/qemu/{vmid}/config after the clone (pure). */
export function vmConfigParams(share: Share, o: { bridge: string; cicustom: string; attachment: Attachment; dirid?: string; snapshotsDirid?: string; rbd?: { storage: string; sizeGiB: number } }): Params {
  const p: Params = {
    name: guestHostname(share.sharename),
    memory: share.vm_memory ?? 2048,
    cores: share.vm_cores ?? 2,
    agent: 'enabled=1',
    onboot: 1,
    net0: netSpec('qemu', o.bridge, undefined, undefined),
    ipconfig0: share.ip && share.ip !== 'dhcp' ? `ip=${share.ip}${share.gateway ? `,gw=${share.gateway}` : ''}` : 'ip=dhcp',
    cicustom: o.cicustom,
    description: `SMB share ${share.sharename} (pve-smbgateway)`,
    tags: 'smbgateway-share',
  };
  if (o.attachment === 'virtiofs') p.virtiofs0 = `dirid=${o.dirid},cache=auto,expose-acl=1`;
  if (o.attachment === 'virtiofs' && o.snapshotsDirid) p.virtiofs1 = `dirid=${o.snapshotsDirid},cache=auto,expose-acl=1`; // the snapshots keep the share's ACLs
  if (o.attachment === 'rbd') p.scsi1 = `${o.rbd!.storage}:${o.rbd!.sizeGiB},backup=1,discard=on`;
  return p;
}

/**
 * The guest agent shell of a vm share's VM, for the domain steps (made when a step runs: the vmid is known then).
 * idmap: the native ranges (1000000+). virtiofs/NFS pass the VM's ids to the host path unchanged, so they
 * must stay clear of the node's local accounts and its containers' ids, as a joined node's own do.
 */
function vmJoinGuest(ctx: GuestCtx, node: string, vmid: () => number): JoinGuest {
  return { shell: () => agentShell(ctx.api, ctx.run, node, vmid(), (ctx.settings.pveTaskTimeout ?? 600) * 1000), shift: 0, idmap: IDMAP.native };
}

export async function planVmCreate(ctx: GuestCtx, req: Share, existing: readonly Share[], passwords: Map<string, string>, adCred?: AdCredentials): Promise<CreatePlan> {
  const { run, store, api, settings } = ctx;
  checkGuestShare(req);
  // A domain share (docs/ad.md): the VM joins after its first boot through the guest agent, as an lxc
  // share's container does through pct exec (the password as the agent's input-data, never in cloud-init).
  if (req.ad_domain) {
    checkLxcDomainShare(req, existing);
    if (!adCred) throw invalid('ad_password', `the VM of a vm share joins ${req.ad_domain.toLowerCase()} itself: give the join credentials (ad_user, ad_password; on the command line --ad-user and --ad-password-file)`);
  } else if (adCred) throw invalid('ad_password', 'is only used with ad_domain');
  const { path, exists, backing } = await placeNewShare(run, req, existing, settings.allowedRoots);
  const attachment = chooseAttachment(req.vm_attach, backing);
  if (backing.kind === 'cephfs' && attachment !== 'rbd') throw invalid('vm_attach', CEPHFS_GUEST_REFUSAL('vm'));
  if (attachment !== 'rbd') requireQuotaSupport(backing, req.quota);
  if (req.ad_domain && attachment === 'rbd') throw invalid('vm_attach', 'a vm share with ad_domain needs its data on the host (virtiofs or nfs): the domain principals\' ACL entries are set on the host path, which an RBD disk does not have');
  const users = shareUsers(req).filter((u) => !isDomainPrincipal(u));
  for (const u of users) if (!passwords.has(u)) throw invalid('password', `user ${u} needs a password: the VM keeps its own Samba accounts (on the command line: --password-file)`);
  for (const u of passwords.keys()) if (!users.includes(u)) throw invalid('passwords', `names user ${u}, who is not given access to this share`);

  const tmpl = await findTemplate(api, 'qemu', req.vm_template);
  const node = req.node ?? tmpl.node;
  if (node !== settings.node) throw invalid('node', `vm mode writes the cloud-init snippet on this node (${settings.node}): create the share from the node that will run it`);
  const linked = node === tmpl.node ? await chooseClone(ctx, req, 'qemu', tmpl.node, tmpl.vmid) : false;
  const bridge = req.bridge ?? settings.pveBridge ?? 'vmbr0';
  const timeoutMs = (settings.pveTaskTimeout ?? 600) * 1000;

  // Snippets: a storage with the snippets content type and a directory on this node.
  const snipId = settings.pveSnippetsStorage ?? 'local';
  const snip = await api.storage(snipId).catch(() => undefined);
  if (!snip?.path || !(snip.content ?? '').split(',').includes('snippets')) {
    throw new GatewayError('unavailable', `the storage "${snipId}" (pve_snippets_storage) must be a directory storage with the "snippets" content type (pvesm set ${snipId} --content ...,snippets)`, 'pve_snippets_storage');
  }
  let rbd: { storage: string; sizeGiB: number } | undefined;
  if (attachment === 'rbd') {
    const size = req.quota ? parseSize(req.quota) : undefined;
    if (!size) throw invalid('quota', 'is required with an RBD disk (it is the size of the disk)');
    const st = (await api.resources('storage')).find((r) => r.plugintype === 'rbd' && (r.content ?? '').includes('images') && r.node === node);
    if (!st?.storage) throw new GatewayError('unavailable', 'vm_attach rbd: no Ceph RBD storage with the images content type on this node', 'vm_attach');
    rbd = { storage: st.storage, sizeGiB: Math.max(1, Math.ceil(size / 2 ** 30)) };
  }
  let nfsHost: string | undefined;
  if (attachment === 'nfs') {
    if (!req.ip || req.ip === 'dhcp') throw invalid('ip', 'NFS exports the path to the VM\'s address only: give a static ip');
    nfsHost = (await api.clusterStatus()).find((e) => e.type === 'node' && e.name === node)?.ip;
    if (!nfsHost) throw new GatewayError('unavailable', `no address for node ${node} in the cluster status (needed as NFS server)`);
  }

  const created: Made[] = [];
  const guest_uids = req.ad_domain ? [] : await assignGuestUids(run, req, existing);
  // virtiofs: the backing is recorded (as for a native share) and a btrfs share's snapshot directory
  // is passed to the VM too, read-only: the VM's smb.conf shows the snapshots as Previous Versions.
  const share: MutableShare = { ...req, path, node, created, guest_uids, vm_attach: attachment, ...(attachment === 'virtiofs' ? { backing: backingTag(backing, backing.kind === 'btrfs' && !backing.exists) } : {}) };
  const snapHost = snapshotHost(share);
  const uids = parseGuestUids(guest_uids);
  const warnings: string[] = [];
  if (attachment === 'rbd') warnings.push(`the share's data lives in an RBD disk on ${rbd!.storage} (${rbd!.sizeGiB} GiB), not in ${path}`);
  let vmid = 0;
  const joinGuest = vmJoinGuest(ctx, node, () => vmid);
  const ad = req.ad_domain ? lxcJoinSteps(ctx, share, path, adCred!, () => vmid, warnings, joinGuest) : undefined;
  let snippetFile = '';
  let userData = '';

  const steps: Step[] = [
    ...preStorageQuotaSteps(run, backing, share.quota),
    ...(attachment !== 'rbd' ? [...storageSteps(run, path, backing, created), ...quotaSteps(run, path, backing, share.quota)] : []),
    // virtiofs and NFS pass uids through unchanged: grant the guest uids themselves.
    ...(attachment !== 'rbd' ? guestPermissionSteps(run, path, guestAclSpec(share, uids, 0), firstWriter(share, uids, 0, exists)) : []),
    { name: 'allocate-vmid', do: async () => { vmid = await api.nextId(); share.vmid = vmid; } },
  ];
  if (attachment === 'virtiofs') {
    steps.push({
      name: 'create-dir-mapping',
      journal: () => [{ kind: 'dir-mapping', id: mappingId(vmid), path } satisfies DirMappingRecord],
      do: async () => {
        await api.createDirMapping(mappingId(vmid), [`node=${node},path=${path}`], `SMB share ${share.sharename} (pve-smbgateway)`);
        created.push({ kind: 'mapping', id: mappingId(vmid) });
      },
      undo: () => api.deleteDirMapping(mappingId(vmid)),
    });
  }
  if (attachment === 'virtiofs' && snapHost) {
    steps.push(...snapshotDirSteps(share), {
      name: 'create-snapshot-dir-mapping',
      journal: () => [{ kind: 'dir-mapping', id: snapshotMappingId(vmid), path: snapHost } satisfies DirMappingRecord],
      do: async () => {
        await api.createDirMapping(snapshotMappingId(vmid), [`node=${node},path=${snapHost}`], `Snapshots of SMB share ${share.sharename} (pve-smbgateway)`);
        created.push({ kind: 'mapping', id: snapshotMappingId(vmid) });
      },
      undo: () => api.deleteDirMapping(snapshotMappingId(vmid)),
    });
  }
  if (attachment === 'nfs') {
    const client = () => `${share.ip!.split('/')[0]}:${path}`;
    steps.push({
      name: 'export-nfs',
      journal: () => [{ kind: 'nfs-export', client: client() } satisfies NfsExportRecord],
      do: async () => { await run('exportfs', ['-o', 'rw,sync,no_subtree_check,root_squash', client()]); created.push({ kind: 'nfs', client: client() }); },
      undo: async () => { await run('exportfs', ['-u', client()]); },
    });
  }
  steps.push(
    {
      name: 'clone-vm',
      journal: () => [guestRecord(node, 'qemu', vmid, share.sharename)],
      do: async () => {
        await api.clone(tmpl.node, 'qemu', tmpl.vmid, { newid: vmid, name: guestHostname(share.sharename), full: !linked });
        created.push({ kind: 'vm', vmid });
      },
      undo: () => api.removeGuest(node, 'qemu', vmid),
    },
    {
      name: 'write-user-data',
      journal: async () => {
        snippetFile = join(snip.path!, 'snippets', `smbgw-${vmid}-user.yaml`);
        userData = buildUserData({
          hostname: guestHostname(share.sharename),
          managedConf: guestManagedConf(share),
          users: users.map((u) => ({ name: u, uid: uids.get(u)!, password: passwords.get(u)! })),
          attachment,
          source: attachment === 'virtiofs' ? mappingId(vmid) : attachment === 'nfs' ? `${nfsHost}:${path}` : '/dev/sdb',
          ...(attachment === 'virtiofs' && snapHost ? { snapshots: snapshotMappingId(vmid) } : {}),
        });
        return [await fileRecord(snippetFile, userData)];
      },
      do: async () => {
        await atomicWrite(snippetFile, userData, 0o600);
        created.push({ kind: 'snippet', path: snippetFile });
      },
      undo: async () => { await rm(snippetFile, { force: true }); },
    },
    {
      name: 'configure-vm',
      do: () => api.setConfig(node, 'qemu', vmid, vmConfigParams(share, {
        bridge, attachment, rbd, dirid: mappingId(vmid), ...(snapHost ? { snapshotsDirid: snapshotMappingId(vmid) } : {}), cicustom: `user=${snipId}:snippets/smbgw-${vmid}-user.yaml`,
      })),
    },
    { name: 'start-vm', do: () => api.start(node, 'qemu', vmid), undo: () => api.stopIfRunning(node, 'qemu', vmid) },
    { name: 'wait-guest-agent', do: async () => { share.guest_ip = await waitForIp(api, node, 'qemu', vmid, timeoutMs); } },
  );
  if (ad) {
    // After the first boot, through the guest agent: the checks, the member smb.conf, the join, nsswitch,
    // winbind, the principals, their ACL entries; the VM's undo (destroy) takes everything inside it along.
    steps.push(
      ...ad.before,
      {
        name: 'push-smb-conf',
        shows: `in the VM: ${GUEST_MANAGED_CONF} with the member settings (guest agent file-write), testparm`,
        do: async () => {
          const sh = joinGuest.shell();
          await sh.write(GUEST_MANAGED_CONF, guestManagedConf(share, ad.conf()), '0644');
          await sh.exec(['testparm', '-s', '--suppress-prompt', '/etc/samba/smb.conf']);
        },
      },
      ...ad.after,
      ...lxcDomainServeSteps(ctx, () => vmid, Math.min(timeoutMs, 60_000), joinGuest),
      store.saveStep(() => [...existing, share]),
    );
    return { steps, share, warnings };
  }
  steps.push(
    store.storeSecretsStep(share.sharename, passwords),
    store.saveStep(() => [...existing, share]),
    ...healthCheckStep(ctx, share, () => share.guest_ip, passwords, timeoutMs),
  );
  return { steps, share, warnings };
}

export async function planVmDelete(ctx: GuestCtx, share: Share, existing: readonly Share[], opts: { purge: boolean; adCred?: AdCredentials }): Promise<Step[]> {
  const { api, run } = ctx;
  const node = share.node ?? ctx.settings.node;
  const vmid = share.vmid;
  const madeVm = vmid !== undefined && share.created.some((m) => m.kind === 'vm' && m.vmid === vmid);
  if (opts.adCred && !(share.ad_domain && madeVm)) throw invalid('ad_password', 'is only used to delete an lxc or vm share with ad_domain (its guest leaves the domain)');
  // A domain share's VM leaves the domain first (guest agent), while everything else is still in place.
  const steps = [
    ...(share.ad_domain && madeVm ? lxcLeaveSteps(ctx, share, node, vmid!, opts.adCred, vmJoinGuest(ctx, node, () => vmid!)) : []),
    ...await planGuestDeleteCommon(ctx, share, existing, opts),
  ];
  const wasRunning = { v: false };
  if (madeVm) {
    steps.push({
      name: 'stop-vm',
      journal: async () => [{ kind: 'guest-running', node, type: 'qemu', vmid, wasRunning: (await api.status(node, 'qemu', vmid).catch(() => undefined))?.status === 'running' } satisfies GuestRunningRecord],
      do: async () => {
        const st = await api.status(node, 'qemu', vmid).catch(() => undefined);
        if (st?.status === 'running') { wasRunning.v = true; await api.stop(node, 'qemu', vmid); }
      },
      undo: async () => { if (wasRunning.v) await api.start(node, 'qemu', vmid); },
    });
  }
  if (share.vm_attach !== 'rbd') steps.push(...revokeSteps(run, share.path, share.ad_domain ? domainAclSpec(share, 0) : guestAclSpec(share, parseGuestUids(share.guest_uids), 0)));
  // Irreversible from here on: the VM, then what only it used.
  if (madeVm) steps.push({ name: 'destroy-vm', irreversible: true, redo: [guestRecord(node, 'qemu', vmid, share.sharename)], do: () => api.removeGuest(node, 'qemu', vmid) });
  for (const { id } of share.created.filter((m) => m.kind === 'mapping')) {
    steps.push({
      name: 'remove-dir-mapping',
      redo: [{ kind: 'dir-mapping', id, path: id === snapshotMappingId(vmid ?? 0) ? snapshotHost(share) ?? share.path : share.path } satisfies DirMappingRecord],
      do: async () => { await api.deleteDirMapping(id).catch((e: Error) => { if (!/not found/.test(e.message)) throw e; }); },
    });
  }
  for (const { client: c } of share.created.filter((m) => m.kind === 'nfs')) {
    steps.push({ name: 'unexport-nfs', redo: [{ kind: 'nfs-export', client: c } satisfies NfsExportRecord], do: async () => { await run('exportfs', ['-u', c], { allowFail: true }); } });
  }
  for (const { path: f } of share.created.filter((m) => m.kind === 'snippet')) {
    steps.push({ name: 'remove-user-data', redo: [{ kind: 'remove-file', path: f } satisfies RemoveFileRecord], do: () => rm(f, { force: true }) });
  }
  if (opts.purge) steps.push(guestPurgeStep(ctx, share, existing));
  return steps;
}
