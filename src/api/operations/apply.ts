/**
 * Declarative configuration: `show --all --format yaml` prints every share as a resource document, and
 * `apply` makes the gateway match such a document: shares created, updated, or removed where a resource
 * says `intent: removed` (nothing else is removed). Each resource's plan runs with its own rollback; when
 * one fails, the resources applied before it are undone too, in reverse, so the whole apply is rolled back.
 */
import { GatewayError, invalid, toGatewayError } from '../../core/errors.ts';
import { defineOperation } from '../../core/operation.ts';
import { applyPlan, describePlan, failAtFromEnv, type Step } from '../../core/plan.ts';
import { checkShare, MODE_OPTIONS, parsePasswords, passwordRule, shareUsers, type Share } from '../../core/share.ts';
import { findShare } from '../../core/store.ts';
import { planShareChange } from '../../provision/change.ts';
import type { Gateway } from '../../provision/context.ts';
import { planCreate, planDelete } from '../../provision/index.ts';
import type { Passwords } from '../../provision/native.ts';
import { changedKeys, parseResource, RESOURCE_KEYS, shareToResource } from '../../provision/resources.ts';
import { AUDIT, SYS_MODIFY } from '../privileges.ts';
import { allOf } from '../../core/operation.ts';
import { checkNewShare, requireMode } from './shares.ts';

const op = defineOperation<Gateway>();

/** Every share as resources (the document `apply` takes). */
export async function resourcesDocument(g: Gateway, format: 'json' | 'yaml'): Promise<unknown> {
  const doc = { resources: (await g.store.list()).map(shareToResource) };
  // yaml (84 modules) is loaded only when YAML is asked for.
  return format === 'yaml' ? (await import('yaml')).stringify(doc) : doc;
}

/** `show --all [--format yaml]`. */
export const showAllParams = {
  all: { type: 'boolean', optional: true, default: false, description: 'Every share, as the resource document `apply` takes' },
  format: { type: 'string', optional: true, default: 'json', enum: ['json', 'yaml'], description: 'With --all: json (the document as data) or yaml (as text)' },
} as const;

export const exportOp = op({
  command: ['show-all'],
  method: 'GET',
  path: '/nodes/{node}/smbgateway/resources',
  description: 'Every share as a resource document (what `apply` takes); on the command line also `show --all`.',
  parameters: { format: { type: 'string', optional: true, default: 'json', enum: ['json', 'yaml'], description: 'json (the document as data) or yaml (the document as text)' } },
  returns: { description: 'The resources document', schema: { type: 'object' } },
  privilege: AUDIT,
  handler: async (p, g) => resourcesDocument(g, p.format as 'json' | 'yaml'),
});

type Action = 'created' | 'updated' | 'removed' | 'unchanged';

/** Only the passwords of these users (a resource is given the passwords of the users it adds). */
function passwordsFor(p: Passwords, users: readonly string[]): Passwords {
  return { explicit: new Map([...p.explicit].filter(([u]) => users.includes(u))), ...(users.length && p.blanket !== undefined ? { blanket: p.blanket } : {}) };
}

export const applyOp = op({
  command: ['apply'],
  method: 'POST',
  path: '/nodes/{node}/smbgateway/apply',
  description: 'Make the shares match a resource document (as `show --all` prints it): create, update, and remove those marked `intent: removed` (removals last); all or nothing.',
  parameters: {
    resources: { type: 'json', parse: (v: unknown) => { if (!Array.isArray(v)) throw new Error('must be a list of resources'); return v as unknown[]; }, description: 'The resources (on the command line: -f FILE, a YAML or JSON document with a resources list)' },
    password: { type: 'string', optional: true, keepSpace: true, check: passwordRule, description: 'Password of new users (on the command line: --password-file)' },
    passwords: { type: 'json', optional: true, parse: parsePasswords, description: 'Per-user passwords of new users (on the command line: user:password lines in --password-file)' },
    dry_run: { type: 'boolean', optional: true, default: false, description: 'Show what each resource would do (each planned against the shares as they are now), change nothing' },
  },
  apiOnly: ['password', 'passwords', 'resources'],
  returns: { description: 'Per resource: created, updated, removed or unchanged', schema: { type: 'object', properties: { dry_run: { type: 'boolean' }, resources: { type: 'array', items: { type: 'object', properties: { sharename: { type: 'string' }, action: { type: 'string' } } } } } } },
  // Like migrate: it may create and remove many shares, wherever the document says.
  privilege: allOf({ path: '/storage', privs: ['Datastore.Allocate'] }, SYS_MODIFY),
  async: true,
  handler: async (p, g) => {
    const parsed = p.resources.map((r, i) => parseResource(r, i));
    const names = parsed.map((r) => r.sharename.toLowerCase());
    const twice = names.find((n, i) => names.indexOf(n) !== i);
    if (twice) throw invalid('resources', `share ${twice} is named by two resources`);
    if (p.password !== undefined && p.passwords !== undefined) throw invalid('passwords', 'give either password or passwords, not both');
    const given: Passwords = { explicit: new Map(Object.entries(p.passwords ?? {})), blanket: p.password };
    return g.store.locked(async () => {
      const results: { sharename: string; action: Action; plan?: ReturnType<typeof describePlan>; warnings?: string[] }[] = [];
      const applied: Step[][] = [];
      // Creates and updates first, removals last: a removal may destroy a guest, which no rollback brings back.
      const order = [...parsed.entries()].sort(([, a], [, b]) => Number(a.intent === 'removed') - Number(b.intent === 'removed'));
      for (const [i, r] of order) {
        let action: Action = 'unchanged';
        let steps: Step[] = [];
        let warnings: string[] = [];
        try {
          const existing = await g.store.list();
          const cur = findShare(existing, r.sharename);
          if (r.intent === 'removed') {
            if (cur) { requireMode(g, cur.mode); steps = await planDelete(g, cur, existing, { purge: false }); action = 'removed'; }
          } else if (!cur) {
            const req = r.share!;
            checkNewShare(req);
            requireMode(g, req.mode);
            const plan = await planCreate(g, { ...req, created: [] }, existing, passwordsFor(given, shareUsers(req)));
            steps = plan.steps; warnings = plan.warnings; action = 'created';
          } else {
            const wanted = r.share!;
            const keys = changedKeys(cur, wanted);
            if (keys.length) {
              const fixed = keys.find((k) => !MODE_OPTIONS[cur.mode as keyof typeof MODE_OPTIONS].updatable.includes(k));
              if (fixed) throw new GatewayError('unavailable', `${fixed}: cannot be changed on the existing ${cur.mode} share (delete it, or mark it removed and add it under another name)`, fixed);
              const next: Share = { ...cur };
              for (const k of RESOURCE_KEYS) (next as Record<string, unknown>)[k] = wanted[k];
              const nextChecked = checkShare(next);
              const added = shareUsers(nextChecked).filter((u) => !shareUsers(cur).includes(u));
              const plan = await planShareChange(g, cur, nextChecked, existing, { passwords: passwordsFor(given, added) });
              steps = plan.steps; warnings = plan.warnings; action = 'updated';
            }
          }
          if (p.dry_run) { results.push({ sharename: r.sharename, action, ...(steps.length ? { plan: describePlan(steps) } : {}), ...(warnings.length ? { warnings } : {}) }); continue; }
          if (steps.length) await applyPlan(steps, { failAt: failAtFromEnv(), log: g.log, journal: g.store.journalFor(`apply ${action}`, r.sharename) });
          applied.push(steps);
          results.push({ sharename: r.sharename, action, ...(warnings.length ? { warnings } : {}) });
        } catch (e) {
          const err = toGatewayError(e);
          if (p.dry_run) throw new GatewayError(err.code, `resource ${r.sharename} (${i + 1} of ${parsed.length}): ${err.message}`, err.field);
          // The resources applied before this one are undone, last first.
          const undoErrors: string[] = [];
          for (const done of applied.reverse()) {
            const gone = done.find((s) => s.irreversible);
            if (gone) { undoErrors.push(`${gone.name} cannot be undone`); continue; }
            for (const s of [...done].reverse()) {
              if (!s.undo) continue;
              try { g.log(`apply: undo ${s.name}`); await s.undo(); } catch (ue) { undoErrors.push(`${s.name}: ${toGatewayError(ue).message}`); }
            }
          }
          const undone = results.filter((x) => x.action !== 'unchanged').length;
          throw new GatewayError(err.code, `resource ${r.sharename} (${i + 1} of ${parsed.length}): ${err.message}; ${undoErrors.length ? `undoing the ${undone} resource(s) applied before it failed: ${undoErrors.join('; ')}` : `the whole apply was rolled back (${undone} resource(s) applied before it undone)`}`, err.field, { ...(err.details ?? {}), undoErrors });
        }
      }
      return { dry_run: p.dry_run, resources: results };
    });
  },
});

export const applyOperations = [exportOp, applyOp];
