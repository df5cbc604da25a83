/**
 * LXC mode: each share is served by its own unprivileged container, a clone of the gateway template
 * (Debian with Samba, see templates), with the share path bind-mounted at /srv/share.
 *
 * Ownership: Proxmox's default idmap for unprivileged containers (container id N = host id 100000+N) is
 * kept; a share user gets the uid they have on this host (else one recorded in the share), so a file
 * alice (host uid 1000) writes over SMB lands on the host as uid/gid 101000. The gateway grants those
 * shifted ids on the share path with POSIX ACLs.
 *
 * Bind mounts (mp0 with a host path) are allowed by Proxmox to root@pam only: this mode needs the
 * pvesh transport (or a root@pam ticket), and `pct` on the node for exec/push.
 */
import { GatewayError, invalid } from '../core/errors.ts';
import type { Step } from '../core/plan.ts';
import { isDomainPrincipal, shareUsers, type Made, type Share } from '../core/share.ts';
import type { Params } from '../pve/client.ts';
import { CEPHFS_GUEST_REFUSAL } from '../core/cephfs.ts';
import { renderManagedConf } from '../samba/render.ts';
import { assignGuestUids, checkGuestShare, firstWriter, findTemplate, GUEST_MANAGED_CONF, guestAclSpec, guestPermissionSteps, healthCheckStep, LXC_ID_SHIFT, parseGuestUids, PATH_INSIDE, pctExec, pctPush, revokeSteps, waitForIp, type GuestCtx, type MutableShare } from './guest.ts';
import type { CreatePlan } from './native.ts';
import type { AdConf, AdCredentials } from '../samba/ads.ts';
import { checkLxcDomainShare, domainAclSpec, lxcDomainServeSteps, lxcJoinSteps, lxcLeaveSteps } from './lxc-ad.ts';
import { checkPurge, purgeStep } from './purge.ts';
import type { GuestRecord, GuestRunningRecord } from './repair.ts';
import { preStorageQuotaSteps, quotaSteps, storageSteps } from './quota.ts';
import { backingTag, placeNewShare, requireQuotaSupport } from './storage.ts';
import { guestSnapshotMount, SNAPSHOTS_INSIDE } from '../samba/guestshadow.ts';
import { snapshotDirSteps } from './guest-snapshots.ts';

export const CT_DEFAULT_MEMORY = 128;

/** The journal record of a share's guest (identified by the name create gave it, and its description). */
export function guestRecord(node: string, type: 'lxc' | 'qemu', vmid: number, sharename: string): GuestRecord {
  return { kind: 'guest', node, type, vmid, name: guestHostname(sharename), description: `SMB share ${sharename} (pve-smbgateway)` };
}

/** The container's hostname: smb-<share> as a DNS label (lowercase, letters, digits, hyphens). */
export function guestHostname(sharename: string): string {
  const label = sharename.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 59) || 'share';
  return `smb-${label}`.replace(/-+$/, '');
}

export function netSpec(kind: 'lxc' | 'qemu', bridge: string, ip: string | undefined, gateway: string | undefined): string {
  if (kind === 'lxc') return [`name=eth0`, `bridge=${bridge}`, `ip=${ip ?? 'dhcp'}`, ...(gateway && ip !== 'dhcp' ? [`gw=${gateway}`] : []), 'type=veth'].join(',');
  return `virtio,bridge=${bridge}`;
}

/** The mp0 bind mount: the host path at PATH_INSIDE, not in backups (the data is the storage's, not the guest's). */
export function bindMountSpec(hostPath: string, readOnly: boolean): string {
  if (/[,=]/.test(hostPath)) throw invalid('path', 'must not contain "," or "=" in lxc mode (Proxmox mount point syntax)');
  return `${hostPath},mp=${PATH_INSIDE},backup=0${readOnly ? ',ro=1' : ''}`;
}

/**
 * mp1: the share's snapshot directory on the host (btrfs), read-only at SNAPSHOTS_INSIDE, so that
 * Samba in the container shows the snapshots as Previous Versions; not in backups either.
 */
export function snapshotMountSpec(share: Share): string | undefined {
  const m = guestSnapshotMount(share);
  if (m?.kind !== 'btrfs') return undefined;
  if (/[,=]/.test(m.host)) throw invalid('path', 'must not contain "," or "=" in lxc mode (Proxmox mount point syntax)');
  return `${m.host},mp=${SNAPSHOTS_INSIDE},backup=0,ro=1`;
}

/** Parameters for PUT /nodes/{node}/lxc/{vmid}/config after the clone (pure). */
export function ctConfigParams(share: Share, hostPath: string, bridge: string): Params {
  const mp1 = snapshotMountSpec(share);
  return {
    hostname: guestHostname(share.sharename),
    cores: 1,
    memory: share.ct_memory ?? CT_DEFAULT_MEMORY,
    swap: 0,
    net0: netSpec('lxc', bridge, share.ip, share.gateway),
    mp0: bindMountSpec(hostPath, share.read_only),
    ...(mp1 ? { mp1 } : {}),
    onboot: 1,
    // a domain share's container resolves the domain through these (e.g. its DCs, docs/ad.md)
    ...(share.nameserver ? { nameserver: share.nameserver } : {}),
    ...(share.ad_domain ? { searchdomain: share.ad_domain.toLowerCase() } : {}),
    description: `SMB share ${share.sharename} (pve-smbgateway)`,
    tags: 'smbgateway-share',
  };
}

/** The smb.conf fragment pushed into the container: the native renderer with the path inside. */
export function guestManagedConf(share: Share, ad?: AdConf): string {
  // The path as the guest sees it, also where a preset derives one from it (private: <path>/%u).
  return renderManagedConf([{ ...share, path: PATH_INSIDE }], { pathInside: () => PATH_INSIDE, ...(ad ? { ad } : {}) });
}

/** Linked clones need a storage that can snapshot the template's volumes (ZFS, Ceph RBD, LVM-thin; for VMs also qcow2 on dir). */
export function linkedCloneSupported(storageType: string | undefined, kind: 'lxc' | 'qemu'): boolean {
  return ['zfspool', 'rbd', 'lvmthin'].includes(storageType ?? '') || (kind === 'qemu' && ['dir', 'nfs', 'cifs', 'cephfs'].includes(storageType ?? ''));
}

/** Storages holding a guest's disks, from its config. */
export function diskStorages(config: Record<string, unknown>): string[] {
  const out = new Set<string>();
  for (const [k, v] of Object.entries(config)) {
    if (!/^(rootfs|mp\d+|scsi\d+|virtio\d+|sata\d+|ide\d+|efidisk0)$/.test(k) || typeof v !== 'string' || /cloudinit|media=cdrom/.test(v)) continue;
    const vol = v.split(',')[0]!.replace(/^(volume|file)=/, '');
    const m = /^([a-z][a-z0-9\-_.]*[a-z0-9]):/i.exec(vol);
    if (m) out.add(m[1]!);
  }
  return [...out];
}

/** Linked or full: the share's choice, linked by default where every disk's storage allows it. */
export async function chooseClone(ctx: GuestCtx, share: Share, kind: 'lxc' | 'qemu', node: string, tmpl: number): Promise<boolean> {
  const config = await ctx.api.config(node, kind, tmpl);
  const types = await Promise.all(diskStorages(config).map(async (sid) => (await ctx.api.storage(sid)).type));
  const ok = types.length > 0 && types.every((t) => linkedCloneSupported(t, kind));
  if (share.clone === 'linked' && !ok) throw invalid('clone', `the template's storage (${types.join(', ') || 'none'}) cannot make linked clones: use --clone full`);
  return share.clone !== 'full' && ok;
}

/**
 * The container must stay confined: unprivileged, under Proxmox's AppArmor profile for containers
 * (lxc-container-default-cgns), without nesting or a raw `lxc.apparmor.profile` override.
 */
export function assertConfined(config: Record<string, unknown>, vmid: number): void {
  const raw = ([] as unknown[]).concat(config.lxc ?? []).map(String).join('\n');
  if (String(config.unprivileged ?? '0') !== '1') throw new GatewayError('failed', `CT ${vmid}: the template is not an unprivileged container`);
  if (/apparmor\.profile\s*[:=]?\s*,?\s*unconfined/.test(raw)) throw new GatewayError('failed', `CT ${vmid}: its config turns AppArmor off (lxc.apparmor.profile unconfined)`);
  if (/(^|,)nesting=1/.test(String(config.features ?? ''))) throw new GatewayError('failed', `CT ${vmid}: nesting is enabled in the template, which relaxes the AppArmor profile`);
}

export async function planLxcCreate(ctx: GuestCtx, req: Share, existing: readonly Share[], passwords: Map<string, string>, adCred?: AdCredentials): Promise<CreatePlan> {
  const { run, store, api, settings } = ctx;
  checkGuestShare(req);
  // A domain share (docs/ad.md): its container joins with its own computer account; domain principals only.
  if (req.ad_domain) {
    checkLxcDomainShare(req, existing);
    if (!adCred) throw invalid('ad_password', `the container of an lxc share joins ${req.ad_domain.toLowerCase()} itself: give the join credentials (ad_user, ad_password; on the command line --ad-user and --ad-password-file)`);
  } else if (adCred) throw invalid('ad_password', 'is only used with ad_domain');
  const { path, exists, backing } = await placeNewShare(run, req, existing, settings.allowedRoots);
  if (backing.kind === 'cephfs') throw invalid('mode', CEPHFS_GUEST_REFUSAL('lxc'));
  requireQuotaSupport(backing, req.quota);
  // local accounts of the container (a domain share has none: winbind gives its principals their ids)
  const users = shareUsers(req).filter((u) => !isDomainPrincipal(u));
  for (const u of users) if (!passwords.has(u)) throw invalid('password', `user ${u} needs a password: the container keeps its own Samba accounts (on the command line: --password-file)`);
  for (const u of passwords.keys()) if (!users.includes(u)) throw invalid('passwords', `names user ${u}, who is not given access to this share`);
  bindMountSpec(path, req.read_only);
  if (api.c.user !== 'root@pam') throw new GatewayError('forbidden', `mode: lxc mode bind-mounts the share path into the container, which Proxmox VE allows only to root@pam; this gateway talks to it as ${api.c.user} (use the pvesh transport on the node, see docs/proxmox.md)`, 'mode');
  const tmpl = await findTemplate(api, 'lxc', req.vm_template);
  const node = req.node ?? tmpl.node;
  const linked = node === tmpl.node ? await chooseClone(ctx, req, 'lxc', tmpl.node, tmpl.vmid) : false;
  if (req.clone === 'linked' && node !== tmpl.node) throw invalid('clone', `linked clones stay on the template's node (${tmpl.node})`);
  const bridge = req.bridge ?? settings.pveBridge ?? 'vmbr0';
  const timeoutMs = (settings.pveTaskTimeout ?? 600) * 1000;

  const created: Made[] = [];
  const guest_uids = req.ad_domain ? [] : await assignGuestUids(run, req, existing);
  // The backing is recorded as for a native share: the guest's smb.conf shows the snapshots from it.
  const share: MutableShare = { ...req, path, node, created, guest_uids, backing: backingTag(backing, backing.kind === 'btrfs' && !backing.exists) };
  const uids = parseGuestUids(guest_uids);
  const warnings: string[] = [];
  let vmid = 0;
  const ad = req.ad_domain ? lxcJoinSteps(ctx, share, path, adCred!, () => vmid, warnings) : undefined;
  const serve: Step[] = ad ? lxcDomainServeSteps(ctx, () => vmid, Math.min(timeoutMs, 60_000)) : [{
    name: 'reload-samba',
    do: async () => {
      // Right after the start, systemd in the container may not have started smbd yet: it then reads
      // the pushed config when it starts, and the health check below waits for it to answer.
      await pctExec(run, vmid, ['smbcontrol', 'smbd', 'reload-config']).catch((e: Error) => {
        if (!/Can't find pid for destination 'smbd'/.test(e.message)) throw e;
      });
    },
  }];

  const steps: Step[] = [
    ...preStorageQuotaSteps(run, backing, share.quota),
    ...storageSteps(run, path, backing, created),
    ...quotaSteps(run, path, backing, share.quota),
    ...snapshotDirSteps(share),
    ...guestPermissionSteps(run, path, guestAclSpec(share, uids, LXC_ID_SHIFT), firstWriter(share, uids, LXC_ID_SHIFT, exists)),
    {
      name: 'allocate-vmid',
      do: async () => { vmid = await api.nextId(); share.vmid = vmid; },
    },
    {
      name: 'clone-container',
      // The vmid is known now (allocate-vmid): an undo after a crash removes the guest of that vmid
      // only while it has the hostname the clone gave it.
      journal: () => [guestRecord(node, 'lxc', vmid, share.sharename)],
      do: async () => {
        await api.clone(tmpl.node, 'lxc', tmpl.vmid, { newid: vmid, hostname: guestHostname(share.sharename), full: !linked, ...(node !== tmpl.node ? { target: node } : {}) });
        created.push({ kind: 'ct', vmid });
      },
      undo: () => api.removeGuest(node, 'lxc', vmid),
    },
    {
      name: 'configure-container',
      do: async () => {
        await api.setConfig(node, 'lxc', vmid, ctConfigParams(share, path, bridge));
        assertConfined(await api.config(node, 'lxc', vmid), vmid);
      },
    },
    {
      name: 'start-container',
      do: () => api.start(node, 'lxc', vmid),
      undo: () => api.stopIfRunning(node, 'lxc', vmid),
    },
    {
      name: 'wait-network',
      do: async () => { share.guest_ip = await waitForIp(api, node, 'lxc', vmid, timeoutMs); },
    },
    ...(ad?.before ?? []),
    {
      name: 'add-guest-users',
      do: async () => {
        for (const u of users) {
          const id = String(uids.get(u)!);
          await pctExec(run, vmid, ['groupadd', '--gid', id, u]);
          await pctExec(run, vmid, ['useradd', '--no-create-home', '--shell', '/usr/sbin/nologin', '--uid', id, '--gid', id, u]);
          await pctExec(run, vmid, ['smbpasswd', '-s', '-a', u], `${passwords.get(u)}\n${passwords.get(u)}\n`);
        }
      },
    },
    ...(guestSnapshotMount(share) ? [{
      name: 'check-snapshot-module',
      do: async () => {
        // shadow_copy2 is in samba-vfs-modules, which a template made by an earlier version lacks: smbd
        // would refuse the share. Then no Previous Versions in the container, said, instead of no share.
        const st = await pctExec(run, vmid, ['dpkg-query', '-W', '-f=${Status}', 'samba-vfs-modules']).catch(() => '');
        if (st.includes('install ok installed')) return;
        share.backing = undefined;
        warnings.push(`the container template lacks samba-vfs-modules (shadow_copy2): no Previous Versions inside the container; make the template again (template create) or install it there, then re-create the share`);
      },
    }] : []),
    {
      name: 'push-smb-conf',
      do: async () => {
        await pctPush(run, vmid, guestManagedConf(share, ad?.conf()), GUEST_MANAGED_CONF, '0644');
        await pctExec(run, vmid, ['testparm', '-s', '--suppress-prompt', '/etc/samba/smb.conf']);
      },
    },
    ...(ad?.after ?? []),
    ...serve,
    // a domain share has no passwords of its own (its users log on against the DC)
    ...(ad ? [] : [store.storeSecretsStep(share.sharename, passwords)]),
    store.saveStep(() => [...existing, share]),
    ...(ad ? [] : healthCheckStep(ctx, share, () => share.guest_ip, passwords, Math.min(timeoutMs, 60_000))),
  ];
  return { steps, share, warnings };
}

export async function planGuestDeleteCommon(ctx: GuestCtx, share: Share, existing: readonly Share[], opts: { purge: boolean }): Promise<Step[]> {
  const { store } = ctx;
  const rest = existing.filter((s) => s !== share);
  if (opts.purge) await checkPurge({ run: ctx.run, allowedRoots: ctx.settings.allowedRoots }, share, rest);
  return [store.saveStep(() => rest), store.removeSecretsStep(share.sharename, shareUsers(share))];
}

/** The purge of what the share's create made on the host: the last step, checked again as it runs. */
export function guestPurgeStep(ctx: GuestCtx, share: Share, existing: readonly Share[]): Step {
  return purgeStep({ run: ctx.run, allowedRoots: ctx.settings.allowedRoots }, share, () => existing.filter((s) => s !== share));
}

export async function planLxcDelete(ctx: GuestCtx, share: Share, existing: readonly Share[], opts: { purge: boolean; adCred?: AdCredentials }): Promise<Step[]> {
  const { api } = ctx;
  const node = share.node ?? ctx.settings.node;
  const vmid = share.vmid;
  const wasRunning = { v: false };
  const ours = vmid !== undefined && share.created.some((m) => m.kind === 'ct' && m.vmid === vmid);
  if (opts.adCred && !(share.ad_domain && ours)) throw invalid('ad_password', 'is only used to delete an lxc share with ad_domain (its container leaves the domain)');
  // A domain share's container leaves the domain first, while everything else is still in place.
  const steps = [...(share.ad_domain && ours ? lxcLeaveSteps(ctx, share, node, vmid!, opts.adCred) : []), ...await planGuestDeleteCommon(ctx, share, existing, opts)];
  if (ours) {
    steps.push({
      name: 'stop-container',
      journal: async () => [{ kind: 'guest-running', node, type: 'lxc', vmid, wasRunning: (await api.status(node, 'lxc', vmid).catch(() => undefined))?.status === 'running' } satisfies GuestRunningRecord],
      do: async () => {
        const st = await api.status(node, 'lxc', vmid).catch(() => undefined);
        if (st?.status === 'running') { wasRunning.v = true; await api.stop(node, 'lxc', vmid); }
      },
      undo: async () => { if (wasRunning.v) await api.start(node, 'lxc', vmid); },
    });
  }
  steps.push(...revokeSteps(ctx.run, share.path, share.ad_domain ? domainAclSpec(share) : guestAclSpec(share, parseGuestUids(share.guest_uids), LXC_ID_SHIFT)));
  if (ours) {
    // Irreversible: after everything that can be undone.
    steps.push({ name: 'destroy-container', irreversible: true, redo: [guestRecord(node, 'lxc', vmid, share.sharename)], do: () => api.removeGuest(node, 'lxc', vmid) });
  }
  if (opts.purge) steps.push(guestPurgeStep(ctx, share, existing));
  return steps;
}
