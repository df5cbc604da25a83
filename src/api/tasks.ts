/**
 * Long operations run as tasks, as in Proxmox VE: the request returns a UPID at once, the task's
 * log and status are read by polling (`GET /nodes/{node}/tasks/{upid}/status` and `.../log`) or
 * followed as server-sent events (the log endpoint with `Accept: text/event-stream`).
 * Tasks live in the daemon's memory (the last 200); their logs also go to <state>/tasks/.
 */
import { EventEmitter } from 'node:events';
import { appendFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { toGatewayError, type GatewayError } from '../core/errors.ts';

export interface TaskLine { n: number; t: string }
export interface Task {
  upid: string;
  node: string;
  type: string;
  id: string;
  user: string;
  starttime: number;
  endtime?: number;
  status: 'running' | 'stopped';
  /** "OK", or the error message (as Proxmox does). */
  exitstatus?: string;
  result?: unknown;
  error?: GatewayError;
  lines: TaskLine[];
}

const hex8 = (n: number) => (n >>> 0).toString(16).toUpperCase().padStart(8, '0');

export class TaskManager {
  private readonly tasks = new Map<string, Task>();
  private readonly events = new EventEmitter();
  private seq = 0;
  constructor(readonly node: string, private readonly logDir?: string, private readonly keep = 200) {
    this.events.setMaxListeners(0);
  }

  /** Start fn as a task; returns its UPID at once. */
  start(type: string, id: string, user: string, fn: (log: (msg: string) => void) => Promise<unknown>): string {
    const starttime = Math.floor(Date.now() / 1000);
    const safe = (s: string) => s.replace(/[^A-Za-z0-9._@!-]/g, '_');
    const upid = `UPID:${this.node}:${hex8(process.pid)}:${hex8(++this.seq)}:${hex8(starttime)}:${safe(type)}:${safe(id)}:${safe(user)}:`;
    const task: Task = { upid, node: this.node, type, id, user, starttime, status: 'running', lines: [] };
    this.tasks.set(upid, task);
    if (this.tasks.size > this.keep) {
      for (const [k, t] of this.tasks) { if (this.tasks.size <= this.keep) break; if (t.status === 'stopped') this.tasks.delete(k); }
    }
    const log = (msg: string) => {
      for (const t of msg.split('\n')) {
        const line = { n: task.lines.length + 1, t };
        task.lines.push(line);
        this.events.emit(upid, { line });
        if (this.logDir) void appendFile(join(this.logDir, `${safe(upid)}.log`), t + '\n').catch(() => undefined);
      }
    };
    const run = async () => {
      if (this.logDir) await mkdir(this.logDir, { recursive: true }).catch(() => undefined);
      try {
        task.result = await fn(log);
        task.exitstatus = 'OK';
        log('TASK OK');
      } catch (e) {
        const err = toGatewayError(e);
        task.error = err;
        task.exitstatus = err.message;
        log(`TASK ERROR: ${err.message}`);
      }
      task.status = 'stopped';
      task.endtime = Math.floor(Date.now() / 1000);
      this.events.emit(upid, { end: true });
    };
    setImmediate(() => { void run(); });
    return upid;
  }

  get(upid: string): Task | undefined {
    return this.tasks.get(upid);
  }

  list(): Task[] {
    return [...this.tasks.values()].reverse();
  }

  /** Resolves when the task has stopped. */
  wait(upid: string): Promise<Task> {
    const t = this.tasks.get(upid);
    if (!t) return Promise.reject(new Error(`no task ${upid}`));
    if (t.status === 'stopped') return Promise.resolve(t);
    return new Promise((res) => {
      const on = (ev: { end?: boolean }) => { if (ev.end) { this.events.off(upid, on); res(t); } };
      this.events.on(upid, on);
    });
  }

  /** Follow a task: every line from `start` on, then the end. Returns an unsubscribe function. */
  follow(upid: string, start: number, onLine: (l: TaskLine) => void, onEnd: (t: Task) => void): () => void {
    const t = this.tasks.get(upid);
    if (!t) throw new Error(`no task ${upid}`);
    for (const l of t.lines.slice(start)) onLine(l);
    if (t.status === 'stopped') { onEnd(t); return () => undefined; }
    const on = (ev: { line?: TaskLine; end?: boolean }) => {
      if (ev.line) onLine(ev.line);
      if (ev.end) { this.events.off(upid, on); onEnd(t); }
    };
    this.events.on(upid, on);
    return () => this.events.off(upid, on);
  }
}

/** What the status endpoint returns. */
export function taskStatus(t: Task): Record<string, unknown> {
  return {
    upid: t.upid, node: t.node, type: t.type, id: t.id, user: t.user, starttime: t.starttime, status: t.status,
    ...(t.endtime ? { endtime: t.endtime } : {}),
    ...(t.exitstatus !== undefined ? { exitstatus: t.exitstatus } : {}),
    ...(t.status === 'stopped' && t.exitstatus === 'OK' ? { result: t.result } : {}),
    ...(t.error ? { error: { code: t.error.code, message: t.error.message, ...(t.error.field ? { field: t.error.field } : {}) } } : {}),
  };
}
