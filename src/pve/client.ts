/**
 * Proxmox VE API client. Two transports behind one interface:
 *  - `ApiTransport`: HTTPS to pveproxy (port 8006) with an API token or a ticket (cookie + CSRF header
 *    on writes); the node's self-signed certificate is pinned by its SHA-256 fingerprint, as Proxmox's
 *    own clients do (a certificate that a system CA vouches for is accepted when no fingerprint is set);
 *  - `PveshTransport`: `pvesh` on the node itself, which runs as root@pam (needed for bind mounts).
 * Parameters go form-encoded, answers come as `{data: ...}`, Proxmox's error text reaches the user.
 * Asynchronous calls return a UPID that `waitTask` follows to its end.
 */
import { request as httpRequest } from 'node:http';
import { normFingerprint, pinnedSocket } from './tls.ts';
import { GatewayError } from '../core/errors.ts';
import type { Runner } from '../core/exec.ts';

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';
export type Params = Record<string, string | number | boolean | readonly string[] | undefined>;

export interface Transport {
  /** Who the calls run as (root@pam for pvesh). */
  readonly user: string;
  call(method: Method, path: string, params?: Params): Promise<unknown>;
}

/** A failed call, with Proxmox's own message and per-parameter errors. */
export class PveError extends GatewayError {
  readonly status: number;
  readonly errors: Record<string, string>;
  constructor(status: number, message: string, errors: Record<string, string> = {}, method = '', path = '') {
    const detail = Object.entries(errors).map(([k, v]) => `${k}: ${v.trim()}`).join('; ');
    const text = `Proxmox VE: ${method} ${path}: ${message.trim()}${detail ? ` (${detail})` : ''}`;
    super(status === 401 ? 'unauthorized' : status === 403 ? 'forbidden' : 'failed', text, undefined, { status, errors });
    this.status = status;
    this.errors = errors;
  }
}

/** `application/x-www-form-urlencoded`, arrays as repeated keys, booleans as 1/0, undefined left out. */
export function formEncode(params: Params = {}): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) continue;
    const vals = Array.isArray(v) ? v : [v];
    for (const x of vals) parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(typeof x === 'boolean' ? (x ? '1' : '0') : String(x))}`);
  }
  return parts.join('&');
}


export type Auth =
  | { kind: 'token'; /** user@realm!tokenid */ tokenId: string; secret: string }
  | { kind: 'ticket'; username: string; password: string };

export interface ApiOptions {
  /** https://host:8006 */
  url: string;
  /** SHA-256 fingerprint of the node's certificate; without it the system CAs must vouch for it. */
  fingerprint?: string;
  auth: Auth;
  timeoutMs?: number;
  /** Attempts for idempotent requests (GET) on connection errors. */
  retries?: number;
}

/** Parse a token file: one line `user@realm!tokenid=secret` (as Proxmox prints it at creation). */
export function parseTokenLine(line: string): { tokenId: string; secret: string } {
  const m = /^\s*([^\s!=]+@[^\s!=]+![A-Za-z][A-Za-z0-9._-]*)\s*[=\s]\s*([0-9a-fA-F-]{8,})\s*$/.exec(line);
  if (!m) throw new GatewayError('invalid', 'pve_token_file: must hold one line user@realm!tokenid=secret', 'pve_token_file');
  return { tokenId: m[1]!, secret: m[2]! };
}

interface RawResponse { status: number; reason: string; body: string }


export class ApiTransport implements Transport {
  readonly user: string;
  private readonly u: URL;
  private readonly fp: string | undefined;
  private ticket: { cookie: string; csrf: string; at: number } | undefined;
  constructor(private readonly opts: ApiOptions) {
    this.u = new URL(opts.url);
    if (this.u.protocol !== 'https:') throw new GatewayError('invalid', 'pve_api: must be an https:// URL', 'pve_api');
    this.fp = opts.fingerprint ? normFingerprint(opts.fingerprint) : undefined;
    this.user = opts.auth.kind === 'token' ? opts.auth.tokenId : opts.auth.username;
  }

  private async raw(method: Method, path: string, params: Params | undefined, headers: Record<string, string>): Promise<RawResponse> {
    const timeoutMs = this.opts.timeoutMs ?? 30_000;
    const host = this.u.hostname.replace(/^\[|\]$/g, '');
    const port = Number(this.u.port || 8006);
    const sock = await pinnedSocket(host, port, this.fp, timeoutMs, 'Proxmox VE');
    const form = formEncode(params);
    const inBody = method === 'POST' || method === 'PUT';
    const fullPath = '/api2/json' + path + (!inBody && form ? `?${form}` : '');
    return new Promise((resolve, reject) => {
      const req = httpRequest({
        host, port, method, path: fullPath, createConnection: () => sock,
        headers: {
          ...headers,
          Accept: 'application/json',
          ...(inBody ? { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': Buffer.byteLength(form) } : {}),
        },
        timeout: timeoutMs,
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, reason: res.statusMessage ?? '', body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (e) => reject(Object.assign(new GatewayError('failed', `Proxmox VE: ${method} ${path}: ${e.message}`), { sent: true })));
      req.end(inBody ? form : undefined);
    });
  }

  private async login(): Promise<void> {
    const a = this.opts.auth;
    if (a.kind !== 'ticket') return;
    const r = await this.raw('POST', '/access/ticket', { username: a.username, password: a.password }, {});
    const data = this.decode('POST', '/access/ticket', r) as { ticket?: string; CSRFPreventionToken?: string } | null;
    if (!data?.ticket || !data.CSRFPreventionToken) throw new PveError(401, 'authentication failed: no ticket in the answer', {}, 'POST', '/access/ticket');
    this.ticket = { cookie: data.ticket, csrf: data.CSRFPreventionToken, at: Date.now() };
  }

  private decode(method: Method, path: string, r: RawResponse): unknown {
    let j: { data?: unknown; errors?: Record<string, string>; message?: string } | undefined;
    try { j = r.body ? JSON.parse(r.body) : undefined; } catch { j = undefined; }
    if (r.status < 200 || r.status >= 300) {
      throw new PveError(r.status, j?.message?.trim() || r.reason || `HTTP ${r.status}`, j?.errors ?? {}, method, path);
    }
    if (!j || !('data' in j)) throw new PveError(r.status, 'answer is not a {data: ...} JSON document', {}, method, path);
    return j.data;
  }

  async call(method: Method, path: string, params?: Params): Promise<unknown> {
    const a = this.opts.auth;
    // Tickets live 2 h; renew well before, so that a write never has to be re-sent after a 401.
    if (a.kind === 'ticket' && (!this.ticket || Date.now() - this.ticket.at > 60 * 60_000)) await this.login();
    const headers: Record<string, string> = {};
    if (a.kind === 'token') headers.Authorization = `PVEAPIToken=${a.tokenId}=${a.secret}`;
    else {
      headers.Cookie = `PVEAuthCookie=${encodeURIComponent(this.ticket!.cookie)}`;
      if (method !== 'GET') headers.CSRFPreventionToken = this.ticket!.csrf;
    }
    // Only GET is retried: a POST/PUT/DELETE that may have reached the node is never sent twice.
    const attempts = method === 'GET' ? 1 + (this.opts.retries ?? 2) : 1;
    let last: unknown;
    for (let i = 0; i < attempts; i++) {
      try {
        return this.decode(method, path, await this.raw(method, path, params, headers));
      } catch (e) {
        last = e;
        if (e instanceof PveError) throw e;
        if ((e as GatewayError).code === 'forbidden') throw e; // certificate mismatch: never retry
        if (i + 1 < attempts) await new Promise((r) => setTimeout(r, 200 * (i + 1)));
      }
    }
    throw last;
  }
}

/** `pvesh` on the node: runs as root@pam; parameters as `--key value` arguments (no secrets go this way). */
export class PveshTransport implements Transport {
  readonly user = 'root@pam';
  constructor(private readonly run: Runner) {}

  async call(method: Method, path: string, params: Params = {}): Promise<unknown> {
    const verb = { GET: 'get', POST: 'create', PUT: 'set', DELETE: 'delete' }[method];
    const args = [verb, path];
    for (const [k, v] of Object.entries(params)) {
      if (v === undefined) continue;
      for (const x of Array.isArray(v) ? v : [v]) args.push(`--${k}`, typeof x === 'boolean' ? (x ? '1' : '0') : String(x));
    }
    args.push('--output-format', 'json');
    const r = await this.run('pvesh', args, { allowFail: true, timeoutMs: 30 * 60_000 });
    if (r.code !== 0) {
      const msg = (r.stderr.trim() || r.stdout.trim() || `exit ${r.code}`).split('\n').filter(Boolean);
      // pvesh prints "400 Parameter verification failed." followed by "param: message" lines.
      const head = msg[0] ?? '';
      const m = /^(\d{3})\s+(.*)$/.exec(head);
      const errors: Record<string, string> = {};
      for (const l of msg.slice(1)) { const x = /^([\w\[\]-]+):\s+(.*)$/.exec(l); if (x) errors[x[1]!] = x[2]!; }
      throw new PveError(m ? Number(m[1]) : 500, m ? m[2]! : msg.join(' | '), errors, method, path);
    }
    const out = r.stdout.trim();
    if (!out) return null;
    try { return JSON.parse(out); } catch { /* a worker's log may come first (pvesh waits for tasks) */ }
    const last = out.split('\n').at(-1)!;
    try { return JSON.parse(last); } catch { return out; }
  }
}

export interface TaskStatus { status: 'running' | 'stopped'; exitstatus?: string; type?: string; id?: string; node?: string }

/** UPID:node:pid:pstart:starttime:type:id:user: */
export function parseUpid(upid: string): { node: string; type: string; id: string; user: string } | undefined {
  const m = /^UPID:([a-zA-Z0-9-]+):[0-9A-Fa-f]{8,9}:[0-9A-Fa-f]{8,9}:[0-9A-Fa-f]{8}:([^:\s]+):([^:\s]*):([^:\s]+):$/.exec(upid);
  return m ? { node: m[1]!, type: m[2]!, id: m[3]!, user: m[4]! } : undefined;
}

export interface WaitOptions { timeoutMs?: number; pollMs?: number }

export class PveClient {
  constructor(readonly transport: Transport) {}

  get user(): string { return this.transport.user; }
  get<T = unknown>(path: string, params?: Params): Promise<T> { return this.transport.call('GET', path, params) as Promise<T>; }
  post<T = unknown>(path: string, params?: Params): Promise<T> { return this.transport.call('POST', path, params) as Promise<T>; }
  put<T = unknown>(path: string, params?: Params): Promise<T> { return this.transport.call('PUT', path, params) as Promise<T>; }
  delete<T = unknown>(path: string, params?: Params): Promise<T> { return this.transport.call('DELETE', path, params) as Promise<T>; }

  /** Follow a task to its end; a failed task raises its exit status and the end of its log. */
  async waitTask(upid: string, opts: WaitOptions = {}): Promise<void> {
    const info = parseUpid(upid);
    if (!info) throw new GatewayError('failed', `Proxmox VE: not a task id: ${JSON.stringify(upid)}`);
    const base = `/nodes/${info.node}/tasks/${encodeURIComponent(upid)}`;
    const timeoutMs = opts.timeoutMs ?? 10 * 60_000;
    const deadline = Date.now() + timeoutMs;
    let poll = opts.pollMs ?? 100;
    for (;;) {
      const st = await this.get<TaskStatus>(`${base}/status`);
      if (st.status === 'stopped') {
        if (st.exitstatus === 'OK' || st.exitstatus?.startsWith('WARNINGS')) return;
        const log = await this.taskLog(upid).catch(() => [] as string[]);
        throw new GatewayError('failed', `Proxmox VE task ${info.type} ${info.id} failed: ${st.exitstatus ?? 'unknown status'}${log.length ? `\n--- task log (last lines) ---\n${log.slice(-15).join('\n')}` : ''}`, undefined, { upid });
      }
      if (Date.now() > deadline) {
        throw new GatewayError('failed', `Proxmox VE task ${info.type} ${info.id} still running after ${Math.round(timeoutMs / 1000)} s (${upid}); it was left running`, undefined, { upid });
      }
      await new Promise((r) => setTimeout(r, poll));
      poll = Math.min(poll * 2, 2000);
    }
  }

  async taskLog(upid: string): Promise<string[]> {
    const info = parseUpid(upid)!;
    const lines = await this.get<{ n: number; t: string }[]>(`/nodes/${info.node}/tasks/${encodeURIComponent(upid)}/log`, { limit: 500 });
    return lines.map((l) => l.t);
  }

  /** A call that returns a UPID (or null when it finished synchronously), waited for. */
  async task(method: 'POST' | 'PUT' | 'DELETE', path: string, params?: Params, opts?: WaitOptions): Promise<void> {
    const upid = await this.transport.call(method, path, params);
    if (typeof upid === 'string' && upid.startsWith('UPID:')) await this.waitTask(upid, opts);
  }
}
