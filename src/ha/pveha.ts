/**
 * Proxmox HA for guest shares (lxc/vm mode): the guest serving the share is registered as an HA
 * resource (POST /cluster/ha/resources), so that Proxmox's HA manager restarts it on another node
 * when its node fails. The parameter builder is pure; the steps go through the Proxmox client.
 */
import { GatewayError, invalid } from '../core/errors.ts';
import type { Step } from '../core/plan.ts';
import type { Share } from '../core/share.ts';

export interface GuestHaOptions {
  /** Restart attempts on the same node before relocating (Proxmox default 1). */
  maxRestart?: number;
  /** Relocation attempts to other nodes (Proxmox default 1). */
  maxRelocate?: number;
  /** Requested state; `started` keeps the share served. */
  state?: 'started' | 'stopped' | 'disabled' | 'ignored';
}

/** The HA resource id of the share's guest: ct:<vmid> for lxc mode, vm:<vmid> for vm mode. */
export function haResourceSid(s: Share): string {
  if (s.mode !== 'lxc' && s.mode !== 'vm') throw invalid('mode', `share ${s.sharename} is in ${s.mode} mode: only lxc and vm shares have a guest to make highly available (native shares use CTDB)`);
  const vmid = s.vmid;
  if (!Number.isInteger(vmid)) throw new GatewayError('failed', `share ${s.sharename} has no guest yet (no vmid recorded)`);
  return `${s.mode === 'lxc' ? 'ct' : 'vm'}:${vmid}`;
}

/** Parameters of POST /cluster/ha/resources for the share's guest (PVE 9 schema; no deprecated `group`). */
export function haResourceParams(s: Share, o: GuestHaOptions = {}): Record<string, string | number> {
  const sid = haResourceSid(s);
  const p: Record<string, string | number> = {
    sid,
    type: sid.startsWith('ct:') ? 'ct' : 'vm',
    state: o.state ?? 'started',
    max_restart: o.maxRestart ?? 1,
    max_relocate: o.maxRelocate ?? 1,
    comment: `pve-smbgateway share ${s.sharename}`.slice(0, 4096),
  };
  for (const k of ['max_restart', 'max_relocate'] as const)
    if (!Number.isInteger(p[k]) || (p[k] as number) < 0) throw invalid(k, 'must be an integer of at least 0');
  return p;
}

/** What the steps need of the Proxmox client (src/pve/client.ts PveClient has these). */
export interface HaApi {
  get<T = unknown>(path: string, params?: Record<string, unknown>): Promise<T>;
  post<T = unknown>(path: string, params?: Record<string, string | number>): Promise<T>;
  delete<T = unknown>(path: string, params?: Record<string, string | number>): Promise<T>;
}

export async function guestHaRegistered(api: HaApi, sid: string): Promise<Record<string, unknown> | undefined> {
  const list = await api.get<Record<string, unknown>[]>('/cluster/ha/resources');
  return list.find((r) => r.sid === sid);
}

/**
 * Steps that register the guest as an HA resource (nothing to do when it already is one) and, on
 * rollback, remove the registration they added.
 */
export function guestHaSteps(api: HaApi, s: Share, o: GuestHaOptions = {}): Step[] {
  let added: string | undefined;
  return [{
    name: 'register-ha-resource',
    do: async () => {
      const params = haResourceParams(s, o);
      const sid = String(params.sid);
      if (await guestHaRegistered(api, sid)) return;
      await api.post('/cluster/ha/resources', params);
      added = sid;
    },
    undo: async () => { if (added) await api.delete(`/cluster/ha/resources/${encodeURIComponent(added)}`); },
  }];
}

/** Steps that remove the guest's HA resource (before the guest is destroyed); the undo registers it again. */
export function guestHaRemoveSteps(api: HaApi, s: Share, o: GuestHaOptions = {}): Step[] {
  let removed = false;
  return [{
    name: 'unregister-ha-resource',
    do: async () => {
      const sid = haResourceSid(s);
      if (!(await guestHaRegistered(api, sid))) return;
      await api.delete(`/cluster/ha/resources/${encodeURIComponent(sid)}`);
      removed = true;
    },
    undo: async () => { if (removed) await api.post('/cluster/ha/resources', haResourceParams(s, o)); },
  }];
}
