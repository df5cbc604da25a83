/**
 * How the CLI prints each operation's result without --json (pvesm's printers live in its CLI too):
 * one printer per command, keyed by the command words. Commands without one print JSON.
 */
import type { FailoverResult } from '../ha/ctdb.ts';
import type { Point } from '../monitor/db.ts';
import type { Share } from '../core/share.ts';
import type { ShareStatus } from '../provision/status.ts';
import type { BackupStatus } from '../api/scheduler.ts';
import type { PublicToken } from '../api/tokens.ts';
import type { HaDeployResult, HaState } from '../ha/service.ts';
import type { Imported } from '../api/operations/shares.ts';
import type { TemplateInfo } from '../provision/templates.ts';
import { formatRepair, type RepairResult } from '../api/repairformat.ts';
import { humanBytes, table } from './table.ts';

function formatHaState(s: HaState): string {
  const lines: string[] = [];
  if (s.vip) lines.push(`vip:      ${s.vip} on ${s.holder ?? 'NO NODE'}`);
  if (s.nodes.length) lines.push(table(['NODE', 'ADDRESS', 'PNN', 'FLAGS'], s.nodes.map((n) => [n.name, n.address, n.pnn === null ? '-' : String(n.pnn), n.flags.join(',')])));
  lines.push(`health:   ${s.ok ? 'ok' : 'PROBLEM'}`);
  for (const p of s.problems) lines.push(`problem:  ${p}`);
  return lines.join('\n');
}

/** A --dry-run result: the steps in order, what each does, and those that cannot be undone. */
function printPlan(title: string, r: { plan: { step: string; shows?: string; undo: string }[]; warnings?: string[] }): string {
  const lines = [`${title} (dry run: nothing was changed):`];
  r.plan.forEach((s, i) => lines.push(`  ${String(i + 1).padStart(2)}. ${s.step}${s.shows ? `: ${s.shows}` : ''}${s.undo === 'no' ? '  [cannot be undone]' : ''}`));
  for (const w of r.warnings ?? []) lines.push(`warning: ${w}`);
  return lines.join('\n');
}
const isPlan = (r: unknown): r is { dry_run: true; plan: { step: string; shows?: string; undo: string }[]; warnings?: string[]; sharename?: string; share?: { sharename: string } } => !!(r as { dry_run?: boolean }).dry_run;

export const printers: Record<string, (result: unknown) => string> = {
  "repair": (r) => formatRepair(r as RepairResult),
  "backup": (r) => {
    const x = r as { sharename: string; snapshot: string; pruned: string[]; guest?: { vmid: number; archive?: string; storage: string } };
    return `snapshot ${x.snapshot} of ${x.sharename}${x.pruned.length ? `; pruned ${x.pruned.join(', ')}` : ''}${x.guest ? `; guest ${x.guest.vmid} backed up to ${x.guest.archive ?? x.guest.storage}` : ''}`;
  },
  "snapshots": (r) => {
    const rows = (r as { name: string; time: string }[]).map((x) => [x.name, x.time]);
    return rows.length ? table(['SNAPSHOT', 'TIME (UTC)'], rows) : 'no snapshots';
  },
  "restore": (r) => {
    const x = r as { sharename: string; restored: string; file?: string; safety_snapshot?: string; destroyed: string[]; guest_archive?: string };
    if (x.file) return `restored ${x.file} of ${x.sharename} from ${x.restored}${x.safety_snapshot ? ` (the state before is snapshot ${x.safety_snapshot})` : ''}`;
    return `restored ${x.sharename} to ${x.restored}${x.safety_snapshot ? ` (the state before is snapshot ${x.safety_snapshot})` : ''}${x.destroyed.length ? `; destroyed ${x.destroyed.join(', ')}` : ''}${x.guest_archive ? `; guest put back from ${x.guest_archive}` : ''}`;
  },
  "ha deploy": (r) => {
    const x = r as HaDeployResult;
    const lines = [`CTDB cluster of ${x.nodes.length} node(s) healthy`];
    for (const [share, vip] of Object.entries(x.vips)) lines.push(`  ${share}: ${vip} on ${x.holders[share] ?? '-'}`);
    for (const [node, ch] of Object.entries(x.changes)) lines.push(`  ${node}: ${ch.length ? ch.join('; ') : 'unchanged'}`);
    return lines.join('\n');
  },
  "ha status": (r) => formatHaState(r as HaState),
  "failover": (r) => {
    const x = r as FailoverResult;
    return x.from === x.to ? `VIP ${x.vip} is already on ${x.to}` : `VIP ${x.vip} moved from ${x.from} to ${x.to} in ${x.seconds.toFixed(2)} s`;
  },
  "ha guest": (r) => {
    const x = r as { sharename: string; sid: string; registered: boolean };
    return `${x.sharename}: ${x.sid} ${x.registered ? 'is a Proxmox HA resource' : 'is not an HA resource'}`;
  },
  "metrics": (r) => {
    const pts = r as Point[];
    if (!pts.length) return 'no samples yet (the collector of pve-smbgatewayd writes one every interval)';
    const rate = (v: number | null) => (v === null ? '-' : `${humanBytes(v)}/s`);
    const n = (v: number | null) => (v === null ? '-' : v >= 100 ? String(Math.round(v)) : String(Math.round(v * 10) / 10));
    const rows = pts.slice(-15).map((x) => [
      new Date(x.time * 1000).toISOString().slice(0, 19).replace('T', ' '), rate(x.throughput_read), rate(x.throughput_write),
      n(x.iops_read), n(x.iops_write), n(x.connections), n(x.errors),
      x.storage_used === null ? '-' : `${humanBytes(x.storage_used)}${x.storage_total ? ' / ' + humanBytes(x.storage_total) : ''}`,
    ]);
    const head = pts.length > 15 ? `last 15 of ${pts.length} samples\n` : '';
    return head + table(['TIME (UTC)', 'READ', 'WRITE', 'R-IOPS', 'W-IOPS', 'CONN', 'ERRORS', 'STORAGE'], rows);
  },
  "list": (r) => {
    const rows = (r as Share[]).map((s) => [s.sharename, s.mode, s.path, s.quota, s.security_profile, [...s.users, ...s.read_users.map((u) => u + '(ro)')].join(',') || (s.guest_ok ? 'guest' : ''), s.ha_enabled ? 'yes' : 'no']);
    return rows.length ? table(['NAME', 'MODE', 'PATH', 'QUOTA', 'PROFILE', 'USERS', 'HA'], rows) : 'no shares';
  },
  "create": (r) => {
    if (isPlan(r)) return printPlan(`would create share ${r.share?.sharename ?? r.sharename}`, r);
    const x = r as { share: Share; warnings: string[] };
    return [`created share ${x.share.sharename} (${x.share.mode}) on ${x.share.path}`, ...x.warnings.map((w) => `warning: ${w}`)].join('\n');
  },
  "delete": (r) => isPlan(r) ? printPlan(`would delete share ${r.share?.sharename ?? r.sharename}`, r) : `deleted share ${(r as { sharename: string }).sharename}`,
  "status": (r) => {
    const s = r as ShareStatus & { ha?: HaState; backup?: BackupStatus };
    const u = s.usage;
    const b = s.backup;
    return [
      `share:    ${s.share.sharename} (${s.share.mode}, ${s.share.security_profile}) on ${s.share.path}`,
      `served:   ${s.served ? 'yes' : 'NO'} (smbd ${s.smbd_running ? 'running' : 'stopped'}, ${s.in_config ? 'in smb.conf' : 'NOT in smb.conf'}${s.probe ? `, probe ${s.probe}` : ''})`,
      `usage:    ${u ? `${humanBytes(u.used)} used${u.limit ? ` of ${humanBytes(u.limit)} quota` : u.total ? ` of ${humanBytes(u.total)}` : ''} (${u.source})` : '-'}`,
      `sessions: ${s.sessions.length}${s.sessions.length ? ' (' + s.sessions.map((x) => `${x.user}@${x.machine}`).join(', ') + ')' : ''}`,
      ...(b ? [`backup:   ${!b.enabled ? 'off' : b.schedule ? `${b.schedule}${b.schedule_from === 'default' ? ' (default)' : ''}, ${b.retention}, next ${b.next_run ?? 'never'}` : 'no schedule'}${b.last_run ? `; last ${b.last_run.status} at ${b.last_run.start}${b.last_run.snapshot ? ` (${b.last_run.snapshot})` : ''}` : ''}${b.last_success ? `; last success ${b.last_success}` : ''}`] : []),
      ...(s.ha ? [`ha:       VIP ${s.ha.vip ?? '-'} on ${s.ha.holder ?? 'NO NODE'}; ${s.ha.nodes.map((n) => `${n.name} ${n.flags.join(',')}`).join(', ')}${s.ha.problems.length ? `; ${s.ha.problems.join('; ')}` : ''}`] : []),
      ...s.warnings.map((w) => `warning:  ${w}`),
    ].join('\n');
  },
  "migrate": (r) => {
    const x = r as { dry_run: boolean; imported: Imported[]; skipped: { storage: string; reason: string }[] };
    const lines = [`${x.dry_run ? 'would import' : 'imported'} ${x.imported.length} share(s), skipped ${x.skipped.length}`];
    for (const i of x.imported) lines.push(`  + ${i.sharename} (${i.mode}) ${i.path}${Object.keys(i.unmapped).length ? `  kept aside: ${JSON.stringify(i.unmapped)}` : ''}`);
    for (const s of x.skipped) lines.push(`  - ${s.storage}: ${s.reason}`);
    return lines.join('\n');
  },
  "template list": (r) => {
    const rows = (r as TemplateInfo[]).map((t) => [String(t.vmid), t.mode, t.node, t.name ?? '']);
    return rows.length ? table(['VMID', 'MODE', 'NODE', 'NAME'], rows) : 'no gateway templates (create one with: pve-smbgateway template create --mode lxc|vm)';
  },
  "template create": (r) => {
    const t = (r as { template: TemplateInfo }).template;
    return `created ${t.mode} template ${t.vmid} (${t.name}) on ${t.node}`;
  },
  "token create": (r) => {
    const x = r as PublicToken & { value: string; authorization: string };
    return [`token ${x.tokenid} created with ${x.privs.join(', ')}`, `secret (shown once): ${x.value}`, `use the header: Authorization: ${x.authorization}`].join('\n');
  },
  "token list": (r) => {
    const rows = (r as PublicToken[]).map((t) => [t.tokenid, t.privs.join(','), new Date(t.created * 1000).toISOString(), t.expire ? new Date(t.expire * 1000).toISOString() : 'never', t.comment]);
    return rows.length ? table(['TOKEN', 'PRIVILEGES', 'CREATED', 'EXPIRES', 'COMMENT'], rows) : 'no tokens';
  },
  "token delete": (r) => `deleted token ${(r as { tokenid: string }).tokenid}`,
  "show": (r) => typeof r === 'string' ? r.replace(/\n$/, '') : Object.entries(r as Record<string, unknown>).map(([k, v]) => `${k.padEnd(20)} ${Array.isArray(v) ? v.join(',') : String(v)}`).join('\n'),
  "doctor": (r) => (r as { check: string; status: string; detail: string; fix?: string }[]).map((f) => `${f.status.toUpperCase().padEnd(5)} ${f.check}: ${f.detail}${f.fix && f.status !== 'ok' ? `\n      fix: ${f.fix}` : ''}`).join('\n'),
  "apply": (r) => {
    const x = r as { dry_run: boolean; resources: { sharename: string; action: string; plan?: { step: string; shows?: string }[] }[] };
    return x.resources.map((e) => `${e.sharename}: ${e.action}${x.dry_run && e.action !== 'unchanged' ? ' (dry run)' : ''}${e.plan ? '\n' + e.plan.map((s, i) => `    ${String(i + 1).padStart(2)}. ${s.step}${s.shows ? `: ${s.shows}` : ''}`).join('\n') : ''}`).join('\n') || 'no resources';
  },
  "update": (r) => isPlan(r) ? printPlan(`would update share ${r.share?.sharename ?? r.sharename}`, r) : `updated share ${(r as { share: Share }).share.sharename}`,
};
