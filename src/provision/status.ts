/** What `status` shows of a share: is it served, its usage against the quota, its sessions. */
import { readFile } from 'node:fs/promises';
import { shareUsers, type Share } from '../core/share.ts';
import { parseSmbStatus } from '../samba/samba.ts';
import { includesManaged } from '../samba/render.ts';
import type { Gateway } from './context.ts';
import { GUEST_MANAGED_CONF, pctExec, probeGuest } from './guest.ts';
import { guestCtx } from './index.ts';
import { usageOf } from './quota.ts';
import { detectBacking } from './storage.ts';

export { publicShare } from './public.ts';
import { publicShare } from './public.ts';

export interface ShareStatus {
  share: Omit<Share, 'created'>;
  smbd_running: boolean;
  in_config: boolean;
  served: boolean;
  probe?: string;
  usage?: { used: number; limit?: number; total?: number; source: string };
  sessions: { user: string; machine: string; encrypted?: boolean }[];
  warnings: string[];
}

export async function shareStatus(g: Gateway, share: Share): Promise<ShareStatus> {
  if (share.mode !== 'native') return guestShareStatus(g, share);
  const warnings: string[] = [];
  const { samba, settings, run } = g;
  const smbConfText = await readFile(settings.smbConf, 'utf8').catch(() => '');
  if (!includesManaged(smbConfText, settings.managedConf)) warnings.push(`${settings.smbConf} does not load the gateway's shares: add the line "include = ${settings.managedConf}" at its end`);
  const in_config = (await samba.loadedShares()).includes(share.sharename.toLowerCase());
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
    const pw = user ? await g.store.readSecret(share.sharename, user) : undefined;
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
  return { share: publicShare(share), smbd_running: running, in_config, served, probe, usage, sessions, warnings };
}

export interface GuestStatusInfo { kind: 'lxc' | 'vm'; vmid?: number; node: string; status: string; ip?: string; mem?: number; maxmem?: number }

/**
 * Status of an lxc/vm share: the guest's state from Proxmox VE, an SMB logon to the guest from the host
 * (with the stored secret), usage of the host path, and (lxc) the sessions smbd inside reports.
 */
export async function guestShareStatus(g: Gateway, share: Share): Promise<ShareStatus & { guest: GuestStatusInfo }> {
  const ctx = guestCtx(g);
  const kind = share.mode === 'lxc' ? 'lxc' : 'qemu';
  const node = share.node ?? g.settings.node;
  const warnings: string[] = [];
  const guest: GuestStatusInfo = { kind: share.mode === 'lxc' ? 'lxc' : 'vm', vmid: share.vmid, node, status: 'unknown', ip: share.guest_ip };
  if (share.vmid === undefined) warnings.push('the share has no guest recorded');
  else {
    try {
      const st = await ctx.api.status(node, kind, share.vmid);
      Object.assign(guest, { status: st.status, mem: st.mem, maxmem: st.maxmem });
    } catch (e) { warnings.push(`guest: ${(e as Error).message}`); }
  }
  const running = guest.status === 'running';
  let probe: string | undefined;
  let in_config = false;
  const sessions: ShareStatus['sessions'] = [];
  if (running && share.vmid !== undefined) {
    if (kind === 'lxc') {
      const conf = await pctExec(g.run, share.vmid, ['cat', GUEST_MANAGED_CONF]).catch(() => undefined);
      in_config = conf?.includes(`[${share.sharename}]`) ?? false;
      const ss = await pctExec(g.run, share.vmid, ['smbstatus', '--json'], undefined, 15_000).catch(() => undefined);
      if (ss !== undefined) {
        try {
          const st = parseSmbStatus(ss);
          for (const t of st.tcons) {
            if (t.service.toLowerCase() !== share.sharename.toLowerCase()) continue;
            const sess = st.sessions.find((s) => s.id === t.sessionId);
            sessions.push({ user: sess?.username ?? '', machine: t.machine, encrypted: t.encrypted });
          }
        } catch { warnings.push('smbstatus in the container gave no JSON'); }
      }
    }
    const user = shareUsers(share)[0];
    const pw = user ? await g.store.readSecret(share.sharename, user) : undefined;
    if (user && pw !== undefined && share.guest_ip) {
      const p = await probeGuest(g.run, share.guest_ip, share.sharename, user, pw, share.security_profile === 'high');
      probe = p.ok ? `ok (logged on as ${user} at ${share.guest_ip})` : `failed: ${p.output.split('\n').slice(-1)[0]}`;
      if (kind === 'qemu') in_config = p.ok;
    }
  } else warnings.push(`the ${guest.kind === 'lxc' ? 'container' : 'VM'} is ${guest.status}`);
  let usage: ShareStatus['usage'];
  if (share.vm_attach !== 'rbd') {
    try { usage = await usageOf(g.run, share.path, await detectBacking(g.run, share.path, true)); } catch (e) { warnings.push(`usage: ${(e as Error).message}`); }
  }
  const served = running && in_config && (probe === undefined || probe.startsWith('ok'));
  const { created: _c, ...pub } = share;
  return { share: pub, smbd_running: running, in_config, served, probe, usage, sessions, warnings, guest };
}
