/**
 * Plans with rollback: every operation that changes the system is a list of steps, each with its undo.
 * A failure at any step undoes the finished steps in reverse order and reports the original error,
 * with any undo that failed as well. Planning (building the list) is kept apart from applying it.
 */
import { GatewayError, toGatewayError } from './errors.ts';

export interface Step {
  /** Stable name, used in logs and to inject a failure in tests. */
  name: string;
  do: () => Promise<void>;
  /** Reverses `do`; absent for steps that change nothing (checks). */
  undo?: () => Promise<void>;
}

export interface ApplyOptions {
  /** Make the step with this name fail (tests, and SMBGW_FAIL_AT for the CLI). */
  failAt?: string;
  log?: (msg: string) => void;
}

export function failAtFromEnv(): string | undefined {
  return process.env.SMBGW_FAIL_AT || undefined;
}

export async function applyPlan(steps: readonly Step[], opts: ApplyOptions = {}): Promise<string[]> {
  const done: Step[] = [];
  const log = opts.log ?? (() => undefined);
  for (const step of steps) {
    try {
      log(`step ${step.name}`);
      if (opts.failAt === step.name) throw new GatewayError('failed', `injected failure at step ${step.name}`);
      await step.do();
      done.push(step);
    } catch (e) {
      const err = toGatewayError(e);
      const undoErrors: string[] = [];
      // Only finished steps are undone: a step that fails must leave nothing of its own behind
      // (undoing it blindly could destroy what existed before, e.g. a dataset that was already there).
      for (const s of done.reverse()) {
        if (!s.undo) continue;
        try {
          log(`undo ${s.name}`);
          await s.undo();
        } catch (ue) {
          undoErrors.push(`${s.name}: ${toGatewayError(ue).message}`);
        }
      }
      const suffix = undoErrors.length ? ` (rollback incomplete: ${undoErrors.join('; ')})` : ' (rolled back)';
      throw new GatewayError(err.code, `${err.message}${suffix}`, err.field, {
        ...(err.details ?? {}), failedStep: step.name, undoErrors,
      });
    }
  }
  return steps.map((s) => s.name);
}
