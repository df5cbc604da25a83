/** One entry point per operation, dispatching on the share's mode (native, lxc, vm). */
import { readFile } from 'node:fs/promises';
import type { Gateway } from '../api/context.ts';
import type { ShareStatus } from '../api/operations/shares.ts';
import { shareUsers } from '../core/share.ts';
import { parseSmbStatus } from '../samba/samba.ts';
import { usageOf } from './quota.ts';
import { detectBacking } from './storage.ts';
import type { Step } from '../core/plan.ts';
import type { Share } from '../core/share.ts';
import { pveApi } from '../pve/connect.ts';
import { GUEST_MANAGED_CONF, probeGuest, type GuestCtx } from './guest.ts';
import { planLxcCreate, planLxcDelete } from './lxc.ts';
import { newAccountPasswords, planNativeCreate, planNativeDelete, type CreatePlan, type NativeCtx, type Passwords } from './native.ts';
import { invalid } from '../core/errors.ts';
import { planVmCreate, planVmDelete } from './vm.ts';

export function guestCtx(g: Gateway): GuestCtx {
  return { settings: g.settings, run: g.run, store: g.store, api: pveApi(g.settings, g.run), log: g.log };
}

function guestPasswords(p: Passwords, users: readonly string[]): Map<string, string> {
  for (const u of p.explicit.keys()) if (!users.includes(u)) throw invalid('password_file', `names user ${u}, who is not given access to this share`);
  return newAccountPasswords(p, users);
}

export function nativeCtx(g: Gateway): NativeCtx {
  return { ...g, allowedRoots: g.settings.allowedRoots, uidMin: g.settings.accountUidMin, uidMax: g.settings.accountUidMax };
}

export async function planCreate(g: Gateway, req: Share, existing: readonly Share[], passwords: Passwords, adopt: readonly string[] = []): Promise<CreatePlan> {
  if (req.mode !== 'native' && adopt.length) throw invalid('adopt', `${req.mode} shares have their own accounts inside the guest: there is nothing on the host to adopt`);
  // Guests keep their own accounts: every user is new there.
  if (req.mode === 'lxc') return planLxcCreate(guestCtx(g), req, existing, guestPasswords(passwords, shareUsers(req)));
  if (req.mode === 'vm') return planVmCreate(guestCtx(g), req, existing, guestPasswords(passwords, shareUsers(req)));
  return planNativeCreate(nativeCtx(g), req, existing, passwords, adopt);
}

export async function planDelete(g: Gateway, share: Share, existing: readonly Share[], opts: { purge: boolean }): Promise<Step[]> {
  if (share.mode === 'lxc') return planLxcDelete(guestCtx(g), share, existing, opts);
  if (share.mode === 'vm') return planVmDelete(guestCtx(g), share, existing, opts);
  return planNativeDelete(nativeCtx(g), share, existing, opts);
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
      const conf = await g.run('pct', ['exec', String(share.vmid), '--', 'cat', GUEST_MANAGED_CONF], { allowFail: true });
      in_config = conf.code === 0 && conf.stdout.includes(`[${share.sharename}]`);
      const ss = await g.run('pct', ['exec', String(share.vmid), '--', 'smbstatus', '--json'], { allowFail: true });
      if (ss.code === 0) {
        try {
          const st = parseSmbStatus(ss.stdout);
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
