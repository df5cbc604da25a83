/**
 * The REST server of pve-smbgatewayd: generic over the operation declarations (method, path,
 * parameters, privilege, handler), in Proxmox's conventions under /api2/json:
 * - responses are {"data": ...}; errors carry the HTTP status, a message and, for bad parameters,
 *   {"errors": {"field": "rule"}} (every field at fault, not just the first);
 * - operations declared `async` return a task id (UPID) at once; /nodes/{node}/tasks/{upid}/status
 *   and .../log follow it (polling, or server-sent events with Accept: text/event-stream);
 * - a request naming another node is forwarded to that node's daemon, whose certificate is pinned;
 * - /metrics serves the collector's state in Prometheus text format.
 * Every request is authenticated (auth.ts); there is no anonymous access. A request goes through:
 * request target (a path, never an absolute URL) → route → identity (credentials only: an
 * unauthenticated request is answered 401 without its body being read) → body (size-limited, 413)
 * → parameters (400) → the privileges the operation asks for these parameters (403) → handler.
 * Headers must arrive within headersTimeout, the whole request within requestTimeout, and at most
 * maxConnections connections are open at once.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { GatewayError, invalid, toGatewayError, type ErrorCode } from '../core/errors.ts';
import type { Runner } from '../core/exec.ts';
import { isPrivilegeRule, type AclPaths, type Operation, type Privilege } from '../core/operation.ts';
import { validate, type Schema } from '../core/schema.ts';
import type { Settings } from '../core/settings.ts';
import type { Collector } from '../monitor/collector.ts';
import { storageAclPaths } from '../pve/storagemap.ts';
import { renderPrometheus } from '../monitor/prometheus.ts';
import type { Authenticator, Caller } from './auth.ts';
import type { Gateway } from '../provision/context.ts';
import { API_BASE, openApiDocument, restSchema } from './openapi.ts';
import { AUDIT } from './privileges.ts';
import { operations as registryOperations } from './registry.ts';
import { taskStatus, TaskManager } from './tasks.ts';

export interface ApiCtx extends Gateway {
  tasks: TaskManager;
  caller: Caller;
  operations: readonly Operation<ApiCtx>[];
}

export interface Peer { url: string; fingerprint: string }

/** A static file the server answers a GET with (the web UI's, see web/static.ts). */
export interface StaticAsset { type: string; body: Buffer; headers: Record<string, string> }
export type AssetSource = (pathname: string, node: string) => StaticAsset | undefined;

export interface ApiServerOptions {
  /** Static files served at / (none unless given). */
  assets?: AssetSource;
  gateway: Gateway;
  auth: Authenticator;
  tls: { cert: string | Buffer; key: string | Buffer };
  operations?: readonly Operation<Gateway>[];
  tasks?: TaskManager;
  collector?: Collector;
  host?: string;
  port?: number;
  /** Where another node's daemon answers, and its certificate's SHA-256 fingerprint. */
  peer?: (node: string) => Peer | undefined;
  /** The cluster's storage.cfg: which storage (/storage/<id>) holds a share's path (default /etc/pve/storage.cfg). */
  storageCfg?: string;
  limits?: Partial<ServerLimits>;
}

export interface ServerLimits {
  /** Largest request body, bytes (larger: 413). */
  maxBody: number;
  /** Milliseconds from connecting to the end of the request headers (TLS handshake included). */
  headersTimeout: number;
  /** Milliseconds to receive the whole request. */
  requestTimeout: number;
  /** Connections open at once; further ones are closed at once. */
  maxConnections: number;
}

export const DEFAULT_LIMITS: ServerLimits = { maxBody: 1 << 20, headersTimeout: 10_000, requestTimeout: 30_000, maxConnections: 256 };

export interface ApiServer {
  url: string;
  port: number;
  server: Server;
  tasks: TaskManager;
  close: () => Promise<void>;
}

const NODE_RE = /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;

// --- operations of the daemon itself (tasks, the API description) ---

const upidParam = { upid: { type: 'string', maxLength: 512, pattern: /^UPID:[^\s]+$/, patternText: 'must be a task id (UPID:...)', description: 'Task id' } } satisfies Schema;

function getTask(ctx: ApiCtx, upid: string) {
  const t = ctx.tasks.get(upid);
  if (!t) throw new GatewayError('not_found', `no such task ${upid}`, 'upid');
  return t;
}

export const tasksListOp: Operation<ApiCtx> = {
  command: [], method: 'GET', path: '/nodes/{node}/tasks', description: 'The daemon\'s recent tasks, newest first.',
  parameters: {}, returns: { description: 'Tasks', schema: { type: 'array', items: { type: 'object' } } }, privilege: AUDIT,
  handler: async (_p, ctx) => ctx.tasks.list().map(taskStatus),
};

export const taskStatusOp: Operation<ApiCtx> = {
  command: [], method: 'GET', path: '/nodes/{node}/tasks/{upid}/status', description: 'Status of a task: running or stopped, its exit status and result.',
  parameters: upidParam, returns: { description: 'Task status', schema: { type: 'object' } }, privilege: AUDIT,
  handler: async (p, ctx) => taskStatus(getTask(ctx, validate(upidParam, p).upid)),
};

const logParams = {
  ...upidParam,
  start: { type: 'integer', optional: true, default: 0, minimum: 0, description: 'First line (0-based)' },
  limit: { type: 'integer', optional: true, default: 500, minimum: 0, maximum: 100000, description: 'At most this many lines' },
} as const satisfies Schema;

export const taskLogOp: Operation<ApiCtx> = {
  command: [], method: 'GET', path: '/nodes/{node}/tasks/{upid}/log',
  description: 'A task\'s log lines {n, t}. With Accept: text/event-stream, the log is followed as server-sent events until the task ends (event "end" carries its status).',
  parameters: logParams, returns: { description: 'Log lines', schema: { type: 'array', items: { type: 'object' } } }, privilege: AUDIT,
  handler: async (p, ctx) => {
    const v = validate(logParams, p);
    return getTask(ctx, v.upid).lines.slice(v.start, v.start + v.limit);
  },
};

export const openApiOp: Operation<ApiCtx> = {
  command: [], method: 'GET', path: '/smbgateway/openapi', description: 'This API, as an OpenAPI 3 document generated from the operation declarations.',
  parameters: {}, returns: { description: 'OpenAPI document', schema: { type: 'object' } }, privilege: { path: '/', privs: [] },
  handler: async (_p, ctx) => openApiDocument(ctx.operations as readonly Operation<never>[]),
};

export const daemonOperations: Operation<ApiCtx>[] = [tasksListOp, taskStatusOp, taskLogOp, openApiOp];

// --- routing ---

interface Route { op: Operation<ApiCtx>; segs: string[] }

function compile(ops: readonly Operation<ApiCtx>[]): Route[] {
  return ops.map((op) => ({ op, segs: op.path.split('/').filter(Boolean) }));
}

/** The decoded segments of a path, or undefined when one is not valid percent-encoding. */
function segments(path: string): string[] | undefined {
  try { return path.split('/').filter(Boolean).map(decodeURIComponent); } catch { return undefined; }
}

function match(routes: Route[], method: string, segs: string[]): { route?: Route; params: Record<string, string>; pathKnown: boolean } {
  let best: { route: Route; params: Record<string, string>; score: number } | undefined;
  let pathKnown = false;
  for (const r of routes) {
    if (r.segs.length !== segs.length) continue;
    const params: Record<string, string> = {};
    let score = 0;
    let ok = true;
    for (let i = 0; i < segs.length && ok; i++) {
      const want = r.segs[i]!;
      if (want.startsWith('{')) params[want.slice(1, -1)] = segs[i]!;
      else if (want === segs[i]) score++;
      else ok = false;
    }
    if (!ok) continue;
    pathKnown = true;
    if (r.op.method !== method) continue;
    if (!best || score > best.score) best = { route: r, params, score };
  }
  return { route: best?.route, params: best?.params ?? {}, pathKnown };
}

// --- HTTP helpers ---

const STATUS: Record<ErrorCode, number> = {
  invalid: 400, unauthorized: 401, forbidden: 403, not_found: 404, exists: 409, locked: 409, unavailable: 501, failed: 500,
};

export function httpStatusFor(e: GatewayError): number {
  const s = (e.details as { httpStatus?: number } | undefined)?.httpStatus;
  if (s) return s;
  if (e.code === 'unavailable' && /Proxmox VE API|not readable/.test(e.message)) return 503;
  return STATUS[e.code];
}

function send(res: ServerResponse, status: number, body: unknown, reason?: string): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  if (reason) res.statusMessage = reason.replace(/[^\x20-\x7e]/g, ' ').slice(0, 200);
  res.setHeader('content-type', 'application/json;charset=UTF-8');
  res.setHeader('content-length', Buffer.byteLength(text));
  res.setHeader('cache-control', 'no-store');
  res.end(text);
}

function sendError(res: ServerResponse, e: unknown, fieldErrors?: Record<string, string>): void {
  const err = toGatewayError(e);
  const errors = fieldErrors ?? (err.code === 'invalid' && err.field ? { [err.field]: err.message.startsWith(`${err.field}: `) ? err.message.slice(err.field.length + 2) : err.message } : undefined);
  const message = fieldErrors ? 'Parameter verification failed.' : err.message;
  send(res, httpStatusFor(err), { data: null, message, ...(errors ? { errors } : {}), ...(err.code !== 'invalid' ? { code: err.code } : {}) }, message);
}

function tooLarge(max: number): GatewayError {
  const size = max % (1 << 20) === 0 ? `${max >> 20} MiB` : `${max} bytes`;
  return new GatewayError('invalid', `request body: larger than ${size}`, undefined, { httpStatus: 413 });
}

/** The body, up to max bytes: a larger Content-Length is refused before reading, a longer body as soon as it passes max. */
function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > max) return Promise.reject(tooLarge(max));
  return new Promise((res, rej) => {
    const chunks: Buffer[] = [];
    let n = 0;
    const onData = (c: Buffer) => {
      n += c.length;
      if (n > max) { req.off('data', onData); req.pause(); rej(tooLarge(max)); return; }
      chunks.push(c);
    };
    req.on('data', onData);
    req.on('end', () => res(Buffer.concat(chunks)));
    req.on('error', rej);
    req.on('close', () => { if (!req.complete) rej(new GatewayError('invalid', 'request body: the connection closed before its end')); });
  });
}

/** Form fields to an object, repeated keys to a list: one pass, linear in the number of fields. */
export function formToObject(sp: URLSearchParams): Record<string, unknown> {
  const lists = new Map<string, string[]>();
  for (const [k, v] of sp) {
    const l = lists.get(k);
    if (l) l.push(v); else lists.set(k, [v]);
  }
  const out: Record<string, unknown> = {};
  for (const [k, l] of lists) out[k] = l.length === 1 ? l[0] : l;
  return out;
}

function parseBody(req: IncomingMessage, body: Buffer): Record<string, unknown> {
  if (!body.length) return {};
  const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  const text = body.toString('utf8');
  if (type === 'application/json') {
    let v: unknown;
    try { v = JSON.parse(text); } catch { throw new GatewayError('invalid', 'request body: not valid JSON'); }
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new GatewayError('invalid', 'request body: must be a JSON object');
    return v as Record<string, unknown>;
  }
  if (type === 'application/x-www-form-urlencoded' || type === '') return formToObject(new URLSearchParams(text));
  throw new GatewayError('invalid', `request body: unsupported content type ${type} (use application/json or application/x-www-form-urlencoded)`);
}

/** Every field at fault, Proxmox-style. */
export function fieldErrors(op: Operation<never>, params: Record<string, unknown>): Record<string, string> {
  const schema = restSchema(op);
  const errors: Record<string, string> = {};
  for (const [k, v] of Object.entries(params)) {
    const p = schema[k];
    if (!p) { errors[k] = op.cliOnly?.includes(k) ? 'not accepted over the API' : 'property is not defined in schema and the schema does not allow additional properties'; continue; }
    try {
      validate({ [k]: p }, { [k]: v }, { partial: true });
    } catch (e) {
      const m = toGatewayError(e).message;
      errors[k] = m.startsWith(`${k}: `) ? m.slice(k.length + 2) : m;
    }
  }
  for (const [k, p] of Object.entries(schema)) {
    if (!p.optional && p.default === undefined && params[k] === undefined && !errors[k]) errors[k] = 'property is missing and it is not optional';
  }
  return errors;
}

// --- TLS ---

/**
 * The node's certificate where there is one (/etc/pve/local/pveproxy-ssl.pem, else pve-ssl.pem),
 * else a self-signed one made once in <state>/tls/.
 */
export async function nodeCertificate(settings: Settings, run: Runner, override?: { cert?: string; key?: string }): Promise<{ cert: Buffer; key: Buffer; source: string }> {
  const pairs: [string, string][] = [];
  if (override?.cert && override.key) pairs.push([override.cert, override.key]);
  pairs.push(['/etc/pve/local/pveproxy-ssl.pem', '/etc/pve/local/pveproxy-ssl.key'], ['/etc/pve/local/pve-ssl.pem', '/etc/pve/local/pve-ssl.key']);
  for (const [c, k] of pairs) {
    if (existsSync(c) && existsSync(k)) return { cert: await readFile(c), key: await readFile(k), source: c };
  }
  const dir = join(settings.stateDir, 'tls');
  const c = join(dir, 'smbgatewayd.pem');
  const k = join(dir, 'smbgatewayd.key');
  if (!existsSync(c) || !existsSync(k)) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await run('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '3650',
      '-subj', `/CN=${settings.node}`, '-addext', `subjectAltName=DNS:${settings.node},DNS:localhost,IP:127.0.0.1,IP:::1`,
      '-keyout', k, '-out', c,
    ], { env: { OPENSSL_CONF: '/dev/null' } }).catch(async () => {
      // An openssl without -addext support or config: plain self-signed certificate.
      await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '3650', '-subj', `/CN=${settings.node}`, '-keyout', k, '-out', c]);
    });
  }
  return { cert: await readFile(c), key: await readFile(k), source: c };
}

export function fingerprintOf(pem: string | Buffer): string {
  return new X509Certificate(pem).fingerprint256;
}

const normFp = (s: string) => s.replace(/:/g, '').toUpperCase();

/** Peers of a Proxmox VE cluster: node addresses from /etc/pve/.members, certificates pinned from /etc/pve/nodes/<node>/. */
export function pveClusterPeer(port: number): (node: string) => Peer | undefined {
  return (node) => {
    try {
      const members = JSON.parse(readFileSync('/etc/pve/.members', 'utf8')) as { nodelist?: Record<string, { ip?: string }> };
      const ip = members.nodelist?.[node]?.ip;
      if (!ip) return undefined;
      for (const f of ['pveproxy-ssl.pem', 'pve-ssl.pem']) {
        const p = `/etc/pve/nodes/${node}/${f}`;
        if (existsSync(p)) return { url: `https://${ip.includes(':') ? `[${ip}]` : ip}:${port}`, fingerprint: fingerprintOf(readFileSync(p)) };
      }
    } catch { /* not a cluster */ }
    return undefined;
  };
}

function pinnedConnect(u: URL, fingerprint: string): Promise<TLSSocket> {
  return new Promise((res, rej) => {
    const s = tlsConnect({ host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 443), rejectUnauthorized: false, servername: /^[\d.:[\]]+$/.test(u.hostname) ? undefined : u.hostname }, () => {
      const fp = s.getPeerCertificate()?.fingerprint256 ?? '';
      if (normFp(fp) !== normFp(fingerprint)) { s.destroy(); rej(new Error(`certificate of ${u.host} does not match the pinned fingerprint`)); return; }
      res(s);
    });
    s.setTimeout(10_000, () => s.destroy(new Error(`no answer from ${u.host}`)));
    s.once('error', rej);
  });
}

/**
 * Relay a request to another node's daemon: the host and port are the peer entry's, the target is
 * `target` (built by the caller from the routed path and the query string, never the request's own).
 */
async function forward(req: IncomingMessage, res: ServerResponse, peer: Peer, target: string, body: Buffer, from: string): Promise<void> {
  const u = new URL(peer.url);
  const sock = await pinnedConnect(u, peer.fingerprint);
  const headers: Record<string, string> = { 'x-smbgateway-forwarded-by': from, 'content-length': String(body.length) };
  for (const h of ['authorization', 'cookie', 'csrfpreventiontoken', 'content-type', 'accept']) {
    const v = req.headers[h];
    if (typeof v === 'string') headers[h] = v;
  }
  await new Promise<void>((resolve, reject) => {
    // Plain HTTP framing over the TLS socket verified above (an https agent would verify on its own).
    const r = httpRequest({ host: u.hostname, port: u.port, path: target, method: req.method, headers: { ...headers, host: u.host }, createConnection: () => sock }, (pr) => {
      res.statusCode = pr.statusCode ?? 502;
      if (pr.statusMessage) res.statusMessage = pr.statusMessage;
      for (const [k, v] of Object.entries(pr.headers)) if (v !== undefined && !['connection', 'transfer-encoding'].includes(k)) res.setHeader(k, v);
      pr.pipe(res);
      pr.on('end', resolve);
      pr.on('error', reject);
    });
    r.on('error', reject);
    r.end(body);
  });
}

// --- the server ---

/** How long a refused request's connection still reads (and drops) what the client sends before it is closed. */
const LINGER_MS = 2000;

/**
 * The answer to a request whose body was not read to its end closes the connection. Node would
 * destroy the socket as soon as the answer is written; the bytes the client is still sending would
 * then make the kernel answer with a reset, which can discard the answer at the client before it is
 * read. So the connection is half-closed instead, and what still comes is read and dropped for a
 * little while (a "lingering close"), then it is closed for good.
 */
function closeAfterAnswer(req: IncomingMessage, res: ServerResponse): void {
  res.setHeader('connection', 'close');
  const sock = req.socket;
  sock.destroySoon = function lingeringClose(this: typeof sock) {
    this.end();
    setTimeout(() => this.destroy(), LINGER_MS).unref();
  };
  req.resume();
}

export async function startApiServer(o: ApiServerOptions): Promise<ApiServer> {
  const g = o.gateway;
  const tasks = o.tasks ?? new TaskManager(g.settings.node, join(g.settings.stateDir, 'tasks'));
  const ops: Operation<ApiCtx>[] = [...(o.operations ?? registryOperations), ...daemonOperations];
  const routes = compile(ops);
  const node = g.settings.node;
  const limits: ServerLimits = { ...DEFAULT_LIMITS, ...o.limits };
  const acl: AclPaths = storageAclPaths(o.storageCfg ?? '/etc/pve/storage.cfg', node);

  const credentials = (req: IncomingMessage) => ({
    authorization: typeof req.headers.authorization === 'string' ? req.headers.authorization : undefined,
    cookie: typeof req.headers.cookie === 'string' ? req.headers.cookie : undefined,
    csrf: typeof req.headers.csrfpreventiontoken === 'string' ? req.headers.csrfpreventiontoken : undefined,
  });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const method = (req.method ?? 'GET').toUpperCase();
    // Origin-form targets only: an absolute URL or //host (or /\host, which URL parsers read alike)
    // would name a host, and nothing here may go where a caller says.
    const raw = req.url ?? '';
    const rawPath = raw.split('?', 1)[0]!;
    if (!rawPath.startsWith('/') || rawPath.startsWith('//') || rawPath.includes('\\')) {
      throw new GatewayError('invalid', 'request target: must be a path such as /api2/json/... (not an absolute URL, //host or a path with a backslash)');
    }
    const url = new URL(raw, 'https://localhost');
    const asset = method === 'GET' ? o.assets?.(url.pathname, node) : undefined;
    if (asset) {
      res.writeHead(200, { 'content-type': asset.type, ...asset.headers });
      res.end(asset.body);
      return;
    }
    if (url.pathname === '/metrics') {
      if (method !== 'GET') { send(res, 501, { data: null, message: `Method '${method} /metrics' not implemented` }); return; }
      await o.auth.check(credentials(req), method, AUDIT);
      const text = renderPrometheus(node, o.collector ? [...o.collector.state.values()] : [], o.collector?.stats ?? {
        cycles: 0, lastCycleSeconds: 0, lastCycleCpuSeconds: 0, lastTime: 0, lastIntervalSeconds: 0, unattributedReadBytes: 0, unattributedWrittenBytes: 0, failedLogonsUnknownAccount: 0, errors: [],
      });
      res.statusCode = 200;
      res.setHeader('content-type', 'text/plain; version=0.0.4; charset=utf-8');
      res.end(text);
      return;
    }
    if (!url.pathname.startsWith(API_BASE + '/') && url.pathname !== API_BASE) {
      send(res, 404, { data: null, message: 'not found: the API is under /api2/json, metrics under /metrics' });
      return;
    }
    const path = url.pathname.slice(API_BASE.length) || '/';
    const segs = segments(path);
    const m = segs ? match(routes, method, segs) : { route: undefined, params: {} as Record<string, string>, pathKnown: false };
    if (!m.route || !segs) { send(res, 501, { data: null, message: `Method '${method} ${API_BASE}${path}' not implemented` }, 'Method not implemented'); return; }
    const op = m.route.op;

    // 1. Who is calling, from the credentials alone: an unauthenticated request's body is never read.
    const firstPath = isPrivilegeRule(op.privilege) ? '/storage' : expandPath(op.privilege.path, m.params);
    const caller = await o.auth.identify(credentials(req), method, firstPath);

    // 2. The body, limited.
    const body = method === 'POST' || method === 'PUT' ? await readBody(req, limits.maxBody) : Buffer.alloc(0);
    if (method !== 'POST' && method !== 'PUT' && Number(req.headers['content-length'] ?? 0) > limits.maxBody) throw tooLarge(limits.maxBody);

    // Another node's request goes to that node's daemon (which authenticates it again and checks
    // the privileges there), at the peer's address with the path routed here and the query string.
    const target = m.params.node;
    if (target !== undefined) {
      if (!NODE_RE.test(target)) throw invalid('node', 'must be a node name');
      if (target !== node) {
        if (req.headers['x-smbgateway-forwarded-by']) throw new GatewayError('invalid', `node: request for ${target} was forwarded to ${node}`, 'node');
        const peer = o.peer?.(target);
        if (!peer) throw invalid('node', `no such cluster node '${target}'`);
        try {
          await forward(req, res, peer, `${API_BASE}/${segs.map(encodeURIComponent).join('/')}${url.search}`, body, node);
        } catch (e) {
          if (!res.headersSent) throw new GatewayError('unavailable', `forwarding to node ${target} failed: ${(e as Error).message}`, undefined, { httpStatus: 502 });
          res.destroy();
        }
        return;
      }
    }

    // 3. The parameters.
    const params: Record<string, unknown> = {
      ...formToObject(url.searchParams),
      ...parseBody(req, body),
    };
    for (const [k, v] of Object.entries(m.params)) {
      if (k === 'node') continue;
      if (params[k] !== undefined && params[k] !== v) throw invalid(k, 'differs from the value in the path');
      params[k] = v;
    }
    delete params.node;
    const errs = fieldErrors(op as Operation<never>, params);
    if (Object.keys(errs).length) { sendError(res, new GatewayError('invalid', 'Parameter verification failed.'), errs); return; }

    // 4. The privileges this call needs, all of them.
    const ctx: ApiCtx = { ...g, tasks, caller, operations: ops };
    const required: Privilege[] = isPrivilegeRule(op.privilege)
      ? await op.privilege.required(validate(restSchema(op as Operation<never>), params), ctx, acl)
      : [{ ...op.privilege, path: expandPath(op.privilege.path, m.params) }];
    await o.auth.authorize(caller, required);

    if (op === taskLogOp && String(req.headers.accept ?? '').includes('text/event-stream')) {
      const v = validate(logParams, params);
      getTask(ctx, v.upid);
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      const stop = tasks.follow(v.upid, v.start, (l) => res.write(`data: ${JSON.stringify(l)}\n\n`), (t) => {
        res.end(`event: end\ndata: ${JSON.stringify(taskStatus(t))}\n\n`);
      });
      req.on('close', stop);
      return;
    }
    if (op.async) {
      const id = typeof params.sharename === 'string' ? params.sharename : '';
      const upid = tasks.start(op.command.join('-') || 'task', id, caller.userid, (log) => op.handler(params, { ...ctx, log: (msg) => { log(msg); g.log(msg); } }));
      send(res, 200, { data: upid });
      return;
    }
    const result = await op.handler(params, ctx);
    send(res, 200, { data: result === undefined ? null : result });
  };

  // How often Node looks for requests past those timeouts.
  const checkEvery = Math.max(50, Math.min(1000, Math.floor(Math.min(limits.headersTimeout, limits.requestTimeout) / 4)));
  const server = createServer({
    cert: o.tls.cert,
    key: o.tls.key,
    handshakeTimeout: limits.headersTimeout,
    headersTimeout: limits.headersTimeout,
    requestTimeout: limits.requestTimeout,
    connectionsCheckingInterval: checkEvery,
  }, (req, res) => {
    handle(req, res).catch((e) => {
      if (res.headersSent) { res.destroy(); return; }
      if (!req.complete) closeAfterAnswer(req, res);
      sendError(res, e);
    });
  });
  server.keepAliveTimeout = 30_000;
  server.maxConnections = limits.maxConnections;
  // Node's headersTimeout starts with a request's first byte: a connection that sends nothing after
  // the TLS handshake is dropped here when its first request has not arrived within the same time
  // (a little later than Node's own check, which answers a started request 408).
  const served = new WeakSet<object>();
  server.on('request', (req: IncomingMessage) => served.add(req.socket));
  server.on('secureConnection', (sock: TLSSocket) => {
    const timer = setTimeout(() => { if (!served.has(sock)) sock.destroy(); }, limits.headersTimeout + 2 * checkEvery);
    timer.unref();
    sock.once('close', () => clearTimeout(timer));
  });
  const port = await new Promise<number>((res, rej) => {
    server.once('error', rej);
    server.listen(o.port ?? 0, o.host ?? '127.0.0.1', () => res((server.address() as { port: number }).port));
  });
  const host = o.host ?? '127.0.0.1';
  const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return {
    url: `https://${shown}:${port}`, port, server, tasks,
    close: () => new Promise<void>((res) => { server.closeAllConnections(); server.close(() => res()); }),
  };
}

function expandPath(p: string, params: Record<string, string>): string {
  return p.replace(/\{([^}]+)\}/g, (_, k: string) => params[k] ?? `{${k}}`);
}

