/** The report of `repair` (operations/repair.ts), and its text form: kept apart so that printing it loads no repair code. */
import type { RepairReport } from '../core/journal.ts';

export interface RepairSkipped { id: string; operation?: string; share?: string; host?: string; pid?: number; reason: string }
export interface RepairResult {
  /** Operations rolled back or forward (complete or not). */
  repaired: RepairReport[];
  /** Journals left alone: running operations, another node's, or (dry run) what would be repaired. */
  skipped: RepairSkipped[];
  discarded: string[];
}

export function formatRepair(r: RepairResult): string {
  const lines: string[] = [];
  for (const x of r.repaired) {
    lines.push(`${x.complete ? x.direction : `${x.direction === 'rolled back' ? 'rolling back' : 'rolling forward'} INCOMPLETE:`} ${x.operation}${x.share ? ` of share "${x.share}"` : ''} (pid ${x.pid}, started ${x.started}, journal ${x.id})`);
    for (const a of x.actions) lines.push(`  ${a.step}: ${a.did}`);
    for (const p of x.problems) lines.push(`  problem: ${p}`);
    if (!x.complete) lines.push(`  the journal is kept: deal with the problems, then run repair again (or drop it with --discard ${x.id})`);
  }
  for (const s of r.skipped) lines.push(`left alone: ${s.operation ?? 'journal'}${s.share ? ` of share "${s.share}"` : ''} (journal ${s.id}): ${s.reason}`);
  for (const id of r.discarded) lines.push(`discarded journal ${id}`);
  return lines.length ? lines.join('\n') : 'nothing to repair: no operation was interrupted';
}
