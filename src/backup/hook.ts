/**
 * The vzdump hook (pure part): what vzdump tells a hook script, read from its arguments and
 * environment as Proxmox's vzdump-hook-script.pl example documents them, and what the gateway does in
 * each phase. Job phases (job-init, job-start, job-end, job-abort) get DUMPDIR and STOREID; guest
 * phases (backup-start, backup-end, backup-abort, log-end, pre-stop, pre-restart, post-restart) get
 * the mode and vmid as arguments and VMTYPE, DUMPDIR, STOREID, HOSTNAME, TARGET (backup-end only) and
 * LOGFILE (log-end only). Bind-mounted data is never in a container's vzdump archive: at backup-start
 * the gateway snapshots the data of the share the guest serves, at backup-end it records the archive
 * with that snapshot.
 */

export const JOB_PHASES = ['job-init', 'job-start', 'job-end', 'job-abort'] as const;
export const GUEST_PHASES = ['backup-start', 'backup-end', 'backup-abort', 'log-end', 'pre-stop', 'pre-restart', 'post-restart'] as const;

export type HookCall =
  | { kind: 'job'; phase: (typeof JOB_PHASES)[number]; dumpdir?: string; storeid?: string }
  | { kind: 'guest'; phase: (typeof GUEST_PHASES)[number]; mode: string; vmid: number; vmtype?: 'lxc' | 'qemu'; dumpdir?: string; storeid?: string; hostname?: string; target?: string; logfile?: string };

export class HookError extends Error {}

export function parseHookCall(argv: readonly string[], env: Record<string, string | undefined>): HookCall {
  const [phase, mode, vmid] = argv;
  const opt = (k: string) => (env[k] !== undefined && env[k] !== '' ? env[k] : undefined);
  if ((JOB_PHASES as readonly string[]).includes(phase ?? '')) {
    return { kind: 'job', phase: phase as HookCall['phase'] & (typeof JOB_PHASES)[number], dumpdir: opt('DUMPDIR'), storeid: opt('STOREID') };
  }
  if ((GUEST_PHASES as readonly string[]).includes(phase ?? '')) {
    if (!mode || !['stop', 'suspend', 'snapshot'].includes(mode)) throw new HookError(`phase ${phase}: mode must be stop, suspend or snapshot (got ${JSON.stringify(mode ?? '')})`);
    if (!vmid || !/^\d+$/.test(vmid)) throw new HookError(`phase ${phase}: vmid must be a number (got ${JSON.stringify(vmid ?? '')})`);
    const vt = opt('VMTYPE');
    if (vt !== undefined && vt !== 'lxc' && vt !== 'qemu') throw new HookError(`VMTYPE must be lxc or qemu (got ${JSON.stringify(vt)})`);
    return {
      kind: 'guest', phase: phase as (typeof GUEST_PHASES)[number], mode, vmid: Number(vmid),
      ...(vt ? { vmtype: vt } : {}), dumpdir: opt('DUMPDIR'), storeid: opt('STOREID'), hostname: opt('HOSTNAME'), target: opt('TARGET'), logfile: opt('LOGFILE'),
    };
  }
  throw new HookError(`got unknown phase '${phase ?? ''}'`);
}

/** What the gateway does: snapshot the data at backup-start, record the archive at backup-end / the failure at backup-abort. */
export function hookAction(c: HookCall): 'snapshot' | 'record-archive' | 'record-abort' | 'none' {
  if (c.kind !== 'guest') return 'none';
  if (c.phase === 'backup-start') return 'snapshot';
  if (c.phase === 'backup-end') return 'record-archive';
  if (c.phase === 'backup-abort') return 'record-abort';
  return 'none';
}
