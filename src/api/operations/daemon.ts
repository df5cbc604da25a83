/** Operations of the daemon itself: its tasks (status, log), the API description and the Prometheus metrics. */
import { GatewayError } from '../../core/errors.ts';
import { upidProp } from '../../core/formats.ts';
import { defineOperation, type Operation } from '../../core/operation.ts';
import { type Schema } from '../../core/schema.ts';
import type { Gateway } from '../../provision/context.ts';
import type { Caller } from '../auth.ts';
import { openApiDocument } from '../openapi.ts';
import { AUDIT } from '../privileges.ts';
import { taskStatus, type TaskManager } from '../tasks.ts';
import type { Collector } from '../../monitor/collector.ts';
import { renderPrometheus, type BackupMetricRow } from '../../monitor/prometheus.ts';
import { readBackupState } from '../../backup/state.ts';
import { scheduleOf } from '../../provision/backup.ts';
import { nextRun } from '../scheduler.ts';

const op = defineOperation<ApiCtx>();

/** What an operation served by the daemon gets: the gateway, the task manager and who is calling. */
export interface ApiCtx extends Gateway {
  tasks: TaskManager;
  caller: Caller;
  operations: readonly Operation<ApiCtx>[];
  /** The metrics collector of this daemon (none: no samples yet). */
  collector?: Collector;
}

const upidParam = { upid: upidProp('Task id') } satisfies Schema;

export function getTask(ctx: ApiCtx, upid: string) {
  const t = ctx.tasks.get(upid);
  if (!t) throw new GatewayError('not_found', `no such task ${upid}`, 'upid');
  return t;
}

export const tasksListOp = op({
  command: [], method: 'GET', path: '/nodes/{node}/tasks', description: 'The daemon\'s recent tasks, newest first.',
  parameters: {}, returns: { description: 'Tasks', schema: { type: 'array', items: { type: 'object' } } }, privilege: AUDIT,
  handler: async (_p, ctx) => ctx.tasks.list().map(taskStatus),
});

export const taskStatusOp = op({
  command: [], method: 'GET', path: '/nodes/{node}/tasks/{upid}/status', description: 'Status of a task: running or stopped, its exit status and result.',
  parameters: upidParam, returns: { description: 'Task status', schema: { type: 'object' } }, privilege: AUDIT,
  handler: async (p, ctx) => taskStatus(getTask(ctx, p.upid)),
});

export const logParams = {
  ...upidParam,
  start: { type: 'integer', optional: true, default: 0, minimum: 0, description: 'First line (0-based)' },
  limit: { type: 'integer', optional: true, default: 500, minimum: 0, maximum: 100000, description: 'At most this many lines' },
} as const satisfies Schema;

export const taskLogOp = op({
  command: [], method: 'GET', path: '/nodes/{node}/tasks/{upid}/log',
  description: 'A task\'s log lines {n, t}. With Accept: text/event-stream, the log is followed as server-sent events until the task ends (event "end" carries its status).',
  parameters: logParams, returns: { description: 'Log lines', schema: { type: 'array', items: { type: 'object' } } }, privilege: AUDIT,
  events: { description: 'The log as it grows: one event per line ({n, t}), then event "end" with the task\'s status' },
  handler: async (p, ctx) => {
    const v = p;
    return getTask(ctx, v.upid).lines.slice(v.start, v.start + v.limit);
  },
});

export const openApiOp = op({
  command: [], method: 'GET', path: '/smbgateway/openapi', description: 'This API, as an OpenAPI 3 document generated from the operation declarations.',
  parameters: {}, returns: { description: 'OpenAPI document', schema: { type: 'object' } }, privilege: { path: '/', privs: [] },
  handler: async (_p, ctx) => openApiDocument(ctx.operations as readonly Operation<never>[]),
});

/** The collector's state for Prometheus: served at /metrics (a scrape job's default path), not under /api2/json. */
export const prometheusOp = op({
  command: [], method: 'GET', path: '/metrics', root: true,
  description: 'Per-share metrics of this node in Prometheus text format, for a scrape job (Authorization: PVEAPIToken <id>=<secret>).',
  parameters: {},
  returns: { description: 'Prometheus text exposition format 0.0.4', schema: { type: 'string' }, contentType: 'text/plain; version=0.0.4; charset=utf-8' },
  privilege: AUDIT,
  handler: async (_p, ctx) => renderPrometheus(ctx.settings.node, ctx.collector ? [...ctx.collector.state.values()] : [], ctx.collector?.stats ?? {
    cycles: 0, lastCycleSeconds: 0, lastCycleCpuSeconds: 0, lastTime: 0, lastIntervalSeconds: 0, unattributedReadBytes: 0, unattributedWrittenBytes: 0, failedLogonsUnknownAccount: 0, errors: [],
  }, await backupMetricRows(ctx)),
});

/** Each share of this node with a backup record or a schedule. */
async function backupMetricRows(ctx: ApiCtx): Promise<BackupMetricRow[]> {
  const state = await readBackupState(ctx.settings.stateDir);
  const now = Date.now();
  const rows: BackupMetricRow[] = [];
  for (const s of await ctx.store.list()) {
    if ((s.node ?? ctx.settings.node) !== ctx.settings.node) continue;
    const st = state[s.sharename] ?? {};
    const schedule = scheduleOf(ctx, s);
    let next: number | undefined;
    try { next = schedule ? nextRun(schedule, st, now) : undefined; } catch { next = undefined; }
    if (!schedule && st.last_start === undefined) continue;
    rows.push({ share: s.sharename, mode: s.mode, state: st, next, scheduled: !!schedule });
  }
  return rows;
}

export const daemonOperations: Operation<ApiCtx>[] = [tasksListOp, taskStatusOp, taskLogOp, openApiOp, prometheusOp];
