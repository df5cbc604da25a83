/**
 * The Prometheus text exposition (format 0.0.4) of the collector's state: `smbgateway_*` names
 * with their unit, labels share, node and mode. Counters are cumulative since the daemon started.
 */
import type { CollectorStats, ShareState } from './collector.ts';
import type { ShareBackupState } from '../backup/state.ts';

/** One share's backups as the metrics show them: its record and the next scheduled run (epoch ms). */
export interface BackupMetricRow { share: string; mode: string; state: ShareBackupState; next?: number; scheduled: boolean }

/** smbgateway_backup_*: the last success, the last run and its outcome, failures, the next run. */
export function backupFamilies(node: string, rows: readonly BackupMetricRow[]): Family[] {
  const L = (r: BackupMetricRow) => ({ share: r.share, node, mode: r.mode });
  const per = (name: string, type: Family['type'], help: string, f: (r: BackupMetricRow) => number | undefined): Family => ({
    name, type, help, rows: rows.flatMap((r) => { const v = f(r); return v === undefined ? [] : [[L(r), v] as [Record<string, string>, number]]; }),
  });
  return [
    per('smbgateway_backup_last_success_timestamp_seconds', 'gauge', 'When the last successful backup of the share was taken (epoch seconds).', (r) => r.state.last_success),
    per('smbgateway_backup_last_run_timestamp_seconds', 'gauge', 'When the last backup run of the share started (epoch seconds).', (r) => r.state.last_start),
    per('smbgateway_backup_last_run_success', 'gauge', 'Whether the last finished backup run of the share succeeded (1) or failed (0).', (r) => (r.state.last_status === undefined ? undefined : r.state.last_status === 'ok' ? 1 : 0)),
    per('smbgateway_backup_last_run_duration_seconds', 'gauge', 'Wall time of the last successful backup run.', (r) => r.state.last_duration),
    per('smbgateway_backup_snapshots', 'gauge', 'Snapshots of the share kept by the retention of the last run.', (r) => r.state.snapshots),
    per('smbgateway_backup_runs_total', 'counter', 'Backup runs of the share recorded on this node.', (r) => (r.state.runs_total === undefined && !r.scheduled ? undefined : r.state.runs_total ?? 0)),
    per('smbgateway_backup_failures_total', 'counter', 'Failed backup runs of the share recorded on this node.', (r) => (r.state.runs_total === undefined && !r.scheduled ? undefined : r.state.failures_total ?? 0)),
    per('smbgateway_backup_next_run_timestamp_seconds', 'gauge', 'When the next scheduled backup of the share is due (epoch seconds).', (r) => (r.next === undefined ? undefined : Math.floor(r.next / 1000))),
  ];
}

interface Family { name: string; type: 'counter' | 'gauge'; help: string; rows: [Record<string, string>, number][] }

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function num(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return Number.isInteger(v) ? String(v) : v.toPrecision(15).replace(/\.?0+$/, '');
}

export function renderFamilies(fams: readonly Family[]): string {
  const out: string[] = [];
  for (const f of fams) {
    out.push(`# HELP ${f.name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${f.name} ${f.type}`);
    for (const [labels, v] of f.rows) {
      const l = Object.entries(labels).map(([k, x]) => `${k}="${esc(x)}"`).join(',');
      out.push(`${f.name}${l ? `{${l}}` : ''} ${num(v)}`);
    }
  }
  return out.join('\n') + '\n';
}

export function renderPrometheus(node: string, shares: readonly ShareState[], stats: CollectorStats, backups: readonly BackupMetricRow[] = []): string {
  const L = (s: ShareState) => ({ share: s.share, node, mode: s.mode });
  const per = (name: string, type: Family['type'], help: string, f: (s: ShareState) => number | null | undefined): Family => ({
    name, type, help, rows: shares.flatMap((s) => { const v = f(s); return v === null || v === undefined ? [] : [[L(s), v] as [Record<string, string>, number]]; }),
  });
  const fams: Family[] = [
    per('smbgateway_read_bytes_total', 'counter', 'Bytes smbd read from the share\'s files for clients.', (s) => s.readBytes),
    per('smbgateway_written_bytes_total', 'counter', 'Bytes smbd wrote to the share\'s files for clients.', (s) => s.writtenBytes),
    per('smbgateway_read_operations_total', 'counter', 'Read calls smbd made on the share\'s files.', (s) => s.readOps),
    per('smbgateway_write_operations_total', 'counter', 'Write calls smbd made on the share\'s files.', (s) => s.writeOps),
    per('smbgateway_read_throughput_bytes_per_second', 'gauge', 'Read throughput over the last collection interval.', (s) => s.sample.throughput_read),
    per('smbgateway_write_throughput_bytes_per_second', 'gauge', 'Write throughput over the last collection interval.', (s) => s.sample.throughput_write),
    per('smbgateway_sessions', 'gauge', 'SMB sessions with a tree connect on the share.', (s) => s.sessions),
    per('smbgateway_tree_connects', 'gauge', 'Tree connects on the share.', (s) => s.treeConnects),
    per('smbgateway_failed_logons_total', 'counter', 'Failed logons by accounts that have access to the share (Samba auth audit).', (s) => s.failedLogons),
    per('smbgateway_refused_tree_connects_total', 'counter', 'Tree connects to the share that smbd refused.', (s) => s.refusedTreeConnects),
    per('smbgateway_audit_events_total', 'counter', 'Events the audit preset recorded on the share (create, mkdir, rename, delete, write-close).', (s) => s.auditEvents),
    per('smbgateway_storage_used_bytes', 'gauge', 'Storage used by the share.', (s) => s.sample.storage_used),
    per('smbgateway_storage_size_bytes', 'gauge', 'Storage size of the share (its quota where it has one).', (s) => s.sample.storage_total),
    per('smbgateway_last_sample_timestamp_seconds', 'gauge', 'When the share was last sampled (epoch seconds).', (s) => s.sample.time),
    { name: 'smbgateway_unattributed_read_bytes_total', type: 'counter', help: 'smbd file reads that could not be attributed to a share.', rows: [[{ node }, stats.unattributedReadBytes]] },
    { name: 'smbgateway_unattributed_written_bytes_total', type: 'counter', help: 'smbd file writes that could not be attributed to a share.', rows: [[{ node }, stats.unattributedWrittenBytes]] },
    { name: 'smbgateway_failed_logons_unknown_account_total', type: 'counter', help: 'Failed logons by accounts that no share gives access to.', rows: [[{ node }, stats.failedLogonsUnknownAccount]] },
    { name: 'smbgateway_collector_cycles_total', type: 'counter', help: 'Collection cycles run.', rows: [[{ node }, stats.cycles]] },
    { name: 'smbgateway_collector_cycle_duration_seconds', type: 'gauge', help: 'Wall time of the last collection cycle.', rows: [[{ node }, stats.lastCycleSeconds]] },
    { name: 'smbgateway_collector_cycle_cpu_seconds', type: 'gauge', help: 'CPU time of the daemon in the last collection cycle.', rows: [[{ node }, stats.lastCycleCpuSeconds]] },
    ...backupFamilies(node, backups),
  ];
  return renderFamilies(fams);
}
