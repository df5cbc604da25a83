/** One entry point per operation, dispatching on the share's mode (native, lxc, vm). */
import type { Gateway } from '../api/context.ts';
import type { Step } from '../core/plan.ts';
import type { Share } from '../core/share.ts';
import { pveApi } from '../pve/connect.ts';
import type { GuestCtx } from './guest.ts';
import { planLxcCreate, planLxcDelete } from './lxc.ts';
import { planNativeCreate, planNativeDelete, type CreatePlan } from './native.ts';
import { planVmCreate, planVmDelete } from './vm.ts';

export function guestCtx(g: Gateway): GuestCtx {
  return { settings: g.settings, run: g.run, store: g.store, api: pveApi(g.settings, g.run), log: g.log };
}

export async function planCreate(g: Gateway, req: Share, existing: readonly Share[], passwords: Map<string, string>): Promise<CreatePlan> {
  if (req.mode === 'lxc') return planLxcCreate(guestCtx(g), req, existing, passwords);
  if (req.mode === 'vm') return planVmCreate(guestCtx(g), req, existing, passwords);
  return planNativeCreate({ ...g, allowedRoots: g.settings.allowedRoots }, req, existing, passwords);
}

export async function planDelete(g: Gateway, share: Share, existing: readonly Share[], opts: { purge: boolean }): Promise<Step[]> {
  if (share.mode === 'lxc') return planLxcDelete(guestCtx(g), share, existing, opts);
  if (share.mode === 'vm') return planVmDelete(guestCtx(g), share, existing, opts);
  return planNativeDelete({ ...g, allowedRoots: g.settings.allowedRoots }, share, existing, opts);
}
