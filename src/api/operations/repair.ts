/**
 * `repair`: finish what operations that were interrupted (a killed command, a crash, a power loss) left
 * behind, from their journals (see core/journal.ts). Each is rolled back (undone step by step in
 * reverse) or, when it had started a step that cannot be undone (a purge, a destroyed guest), rolled
 * forward (finished). The daemon runs the same on start.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { GatewayError, invalid } from '../../core/errors.ts';
import { JOURNAL_SUFFIX, listJournals, repairJournal, sweepTemporaries, thisHost } from '../../core/journal.ts';
import { defineOperation } from '../../core/operation.ts';
import { type Schema } from '../../core/schema.ts';
import type { PveApi } from '../../pve/api.ts';
import { pveApi } from '../../pve/connect.ts';
import { repairers, type RepairCtx } from '../../provision/repair.ts';
import type { Gateway } from '../../provision/context.ts';

import { formatRepair, type RepairResult } from '../repairformat.ts';
export { formatRepair, type RepairResult, type RepairSkipped } from '../repairformat.ts';

const JOURNAL_ID = /^[0-9A-Za-z]+-\d+-[0-9a-f]+$/;

const repairParams = {
  dry_run: { type: 'boolean', optional: true, default: false, description: 'Only list the interrupted operations, change nothing' },
  discard: {
    type: 'list', optional: true, default: [], item: (v) => (JOURNAL_ID.test(v) ? undefined : 'must be a journal id as repair lists it'),
    description: 'Drop the journal of these interrupted operations without undoing anything (after dealing by hand with what repair could not undo)',
  },
} as const satisfies Schema;

export function repairCtx(g: Gateway): RepairCtx {
  let api: PveApi | undefined;
  return { run: g.run, store: g.store, samba: g.samba, settings: g.settings, api: () => (api ??= pveApi(g.settings, g.run)) };
}

/** Repair every interrupted operation of this host, under the store's lock. */
export async function repairInterrupted(g: Gateway, opts: { dryRun?: boolean; discard?: readonly string[] } = {}): Promise<RepairResult> {
  const discard = opts.discard ?? [];
  return g.store.lockedForRepair(async () => {
    const out: RepairResult = { repaired: [], skipped: [], discarded: [] };
    if (!opts.dryRun) for (const n of await sweepTemporaries(g.store.journalDir)) g.log(`repair: removed ${n}, left by a killed writer`);
    const entries = await listJournals(g.store.journalDir);
    for (const id of discard) {
      const e = entries.find((x) => x.id === id);
      if (!e) throw invalid('discard', `no interrupted operation has the journal id ${id} (see pve-smbgateway repair --dry-run)`);
      if (e.journal && !e.journal.pending()) throw invalid('discard', `${id} is the journal of an operation that is still running (or of another node): it cannot be discarded`);
    }
    for (const e of entries) {
      const d = e.journal?.doc;
      const about = { id: e.id, ...(d ? { operation: d.operation, share: d.share, host: d.host, pid: d.pid } : {}) };
      if (discard.includes(e.id)) {
        if (!opts.dryRun) {
          await rm(join(g.store.journalDir, e.id + JOURNAL_SUFFIX), { force: true });
          await sweepTemporaries(g.store.journalDir); // its blobs (core/journal.ts)
        }
        out.discarded.push(e.id);
        continue;
      }
      if (!e.journal) { out.skipped.push({ ...about, reason: `the journal cannot be read (${e.error}): check by hand, then drop it with --discard ${e.id}` }); continue; }
      if (!e.journal.pending()) {
        out.skipped.push({ ...about, reason: d!.host !== thisHost() ? `it ran on ${d!.host}: run pve-smbgateway repair there` : `its process (pid ${d!.pid}) is still running` });
        continue;
      }
      if (opts.dryRun) { out.skipped.push({ ...about, reason: 'interrupted (dry run: nothing done)' }); continue; }
      g.log(`repair: ${e.journal.describe()}`);
      out.repaired.push(await repairJournal(e.journal, repairers, repairCtx(g), g.log));
    }
    return out;
  });
}

const op = defineOperation<Gateway>();

export const repairOp = op({
  command: ['repair'],
  method: 'POST',
  path: '/nodes/{node}/smbgateway/repair',
  description: 'Undo (or, past a step that cannot be undone, finish) operations that were interrupted, from their journals.',
  parameters: repairParams,
  returns: {
    description: 'Per interrupted operation: rolled back or forward, what was done, problems left',
    schema: { type: 'object', properties: { repaired: { type: 'array', items: { type: 'object' } }, skipped: { type: 'array', items: { type: 'object' } }, discarded: { type: 'array', items: { type: 'string' } } } },
  },
  privilege: { path: '/', privs: ['Sys.Modify'] },
  async: true,
  handler: async (p, g) => {
    const { dry_run, discard } = p;
    const r = await repairInterrupted(g, { dryRun: dry_run, discard });
    // An operation that could not be repaired fully fails the command (the report says what is left).
    if (r.repaired.some((x) => !x.complete)) throw new GatewayError('failed', formatRepair(r), undefined, { result: r });
    return r;
  },
});
