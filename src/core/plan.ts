/**
 * Plans with rollback: every operation that changes the system is a list of steps, each with its undo.
 * A failure at any step undoes the finished steps in reverse order and reports the original error,
 * with any undo that failed as well. Planning (building the list) is kept apart from applying it.
 *
 * With a journal (ApplyOptions.journal), what each step is about to change is on disk before it starts
 * (see journal.ts), so that `pve-smbgateway repair` can undo or finish an operation whose process died.
 */
import { GatewayError, toGatewayError } from './errors.ts';
import { Journal, type JournalRecord } from './journal.ts';

export interface Step {
  /** Stable name, used in logs and to inject a failure in tests. */
  name: string;
  /** What it will do, in words, as known when the plan is made (`--dry-run` prints it). */
  shows?: string;
  /**
   * Makes the change. `progress()` writes the journal again: a step that learns more about what it made
   * (an inode, a GUID) fills that into its records and calls it, before going on.
   */
  do: (progress?: () => Promise<void>) => Promise<void>;
  /** Reverses `do`; absent for steps that change nothing (checks). */
  undo?: () => Promise<void>;
  /**
   * What the step is about to change, as JSON records (`{kind, ...}`) that a repairer registered for the
   * kind can undo after a crash, however far the step got. Called right before `do`, whose journal entry
   * holds them. The records may be filled in by `do` (then `progress()`).
   */
  journal?: () => JournalRecord[] | Promise<JournalRecord[]>;
  /** Once it has started, the operation cannot go back (data destroyed): a repair finishes it instead. */
  irreversible?: boolean;
  /** Records to finish this step by (known when the plan is made), for an operation rolled forward. */
  redo?: JournalRecord[];
}

export interface ApplyOptions {
  /** Make the step with this name fail (tests, and SMBGW_FAIL_AT for the CLI). */
  failAt?: string;
  log?: (msg: string) => void;
  /** Keep a journal of the operation in this directory (see journal.ts). */
  journal?: { dir: string; operation: string; share?: string };
}

/** A plan as `--dry-run` shows it: each step, what it will do, and whether it can be undone. */
export function describePlan(steps: readonly Step[]): { step: string; shows?: string; undo: 'yes' | 'no' | 'nothing to undo' }[] {
  return steps.map((s) => ({ step: s.name, ...(s.shows ? { shows: s.shows } : {}), undo: s.irreversible ? 'no' : s.undo ? 'yes' : 'nothing to undo' }));
}

export function failAtFromEnv(): string | undefined {
  return process.env.SMBGW_FAIL_AT || undefined;
}

/**
 * Crash points for tests: SMBGW_KILL_BEFORE=<step> kills the process (SIGKILL) once the step's
 * "started" entry is in the journal, before its `do` runs; SMBGW_KILL_AT=<step> once its `do` has
 * finished, before the journal marks it done.
 */
function killPoint(at: 'before' | 'after', step: string): Promise<void> | undefined {
  const want = at === 'before' ? process.env.SMBGW_KILL_BEFORE : process.env.SMBGW_KILL_AT;
  if (!want || want !== step) return undefined;
  process.kill(process.pid, 'SIGKILL');
  return new Promise<void>(() => undefined);
}

export async function applyPlan(steps: readonly Step[], opts: ApplyOptions = {}): Promise<string[]> {
  const done: Step[] = [];
  const log = opts.log ?? (() => undefined);
  const journal = opts.journal ? await Journal.begin(opts.journal.dir, opts.journal, steps) : undefined;
  for (const [i, step] of steps.entries()) {
    const entry = journal?.doc.steps[i];
    try {
      log(`step ${step.name}`);
      const records = step.journal ? await step.journal() : [];
      if (journal && entry) {
        Object.assign(entry, { state: 'started', startedAt: Date.now(), records });
        await journal.write();
      }
      await killPoint('before', step.name);
      if (opts.failAt === step.name) throw new GatewayError('failed', `injected failure at step ${step.name}`);
      await step.do(async () => { await journal?.write(); });
      await killPoint('after', step.name);
      done.push(step);
      if (journal && entry) { entry.state = 'done'; await journal.write(); }
    } catch (e) {
      const err = toGatewayError(e);
      const undoErrors: string[] = [];
      if (journal && entry) {
        Object.assign(journal.doc, { state: 'rolling-back', direction: 'back' });
        if (entry.state === 'started') Object.assign(entry, { state: 'failed', error: err.message });
        await journal.write().catch(() => undefined);
      }
      // Only finished steps are undone: a step that fails must leave nothing of its own behind
      // (undoing it blindly could destroy what existed before, e.g. a dataset that was already there).
      for (const s of done.reverse()) {
        const je = journal?.doc.steps[steps.indexOf(s)];
        if (!s.undo) { if (je) je.state = 'undone'; continue; }
        try {
          log(`undo ${s.name}`);
          await s.undo();
          if (je) je.state = 'undone';
        } catch (ue) {
          undoErrors.push(`${s.name}: ${toGatewayError(ue).message}`);
          if (je) Object.assign(je, { state: 'undo-failed', error: toGatewayError(ue).message });
        }
        await journal?.write().catch(() => undefined);
      }
      let suffix = ' (rolled back)';
      if (undoErrors.length) {
        suffix = ` (rollback incomplete: ${undoErrors.join('; ')}`;
        if (journal) {
          // What is left is recorded: `repair` picks it up (this process no longer will).
          journal.doc.state = 'abandoned';
          const kept = await journal.write().then(() => true, () => false);
          if (kept) suffix += `; run \`pve-smbgateway repair\` to finish it`;
        }
        suffix += ')';
      } else await journal?.remove();
      throw new GatewayError(err.code, `${err.message}${suffix}`, err.field, {
        ...(err.details ?? {}), failedStep: step.name, undoErrors,
      });
    }
  }
  await journal?.remove();
  return steps.map((s) => s.name);
}
