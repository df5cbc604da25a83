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
import { createServer, type Server } from 'node:https';
import { NODE_RE } from '../core/formats.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { GatewayError, invalid } from '../core/errors.ts';
import { isPrivilegeRule, type AclPaths, type Operation, type Privilege } from '../core/operation.ts';
import { validate } from '../core/schema.ts';
import type { Collector } from '../monitor/collector.ts';
import type { Peer } from '../pve/cluster.ts';
import { storageAclPaths } from '../pve/storagemap.ts';
import type { Gateway } from '../provision/context.ts';
import type { Authenticator } from './auth.ts';
import { forward } from './forward.ts';
import { handleLogin } from './login.ts';
import { closeAfterAnswer, fieldErrors, formToObject, parseBody, readBody, send, sendError, tooLarge } from './http.ts';
import { API_BASE, restSchema } from './openapi.ts';
import { dashboardOperations } from './operations/dashboard.ts';
import { daemonOperations, getTask, taskLogOp, type ApiCtx } from './operations/daemon.ts';
import { operations as registryOperations } from './registry.ts';
import { compile, expandPath, match, segments } from './router.ts';
import { taskStatus, TaskManager } from './tasks.ts';

export type { ApiCtx };

/** A static file the server answers a GET with (the web UI's, see web/static.ts). */
export interface StaticAsset { type: string; body: Buffer; headers: Record<string, string> }
/** What the page needs to know before signing in: whether Proxmox VE users can sign in here. */
export interface AssetContext { pve: boolean; smbHost?: string; smbPort?: number }
export type AssetSource = (pathname: string, node: string, ctx: AssetContext) => StaticAsset | undefined;

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


export async function startApiServer(o: ApiServerOptions): Promise<ApiServer> {
  const g = o.gateway;
  const tasks = o.tasks ?? new TaskManager(g.settings.node, join(g.settings.stateDir, 'tasks'));
  const ops: Operation<ApiCtx>[] = [...(o.operations ?? registryOperations), ...daemonOperations, ...dashboardOperations];
  const routes = compile(ops.filter((x) => !x.root));
  const rootOps = ops.filter((x) => x.root);
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
    const asset = method === 'GET' ? o.assets?.(url.pathname, node, { pve: !!o.auth.pve, smbHost: g.settings.smbHost, smbPort: g.settings.smbPort }) : undefined;
    if (asset) {
      res.writeHead(200, { 'content-type': asset.type, ...asset.headers });
      res.end(asset.body);
      return;
    }
    // Signing in with a Proxmox VE user (login.ts).
    if (await handleLogin(req, res, url.pathname, method, o.auth, credentials(req), limits.maxBody)) return;
    // Operations served at their own path (e.g. /metrics), their result as is.
    const rootOp = rootOps.find((x) => x.path === url.pathname);
    if (rootOp) {
      if (method !== rootOp.method) { send(res, 501, { data: null, message: `Method '${method} ${rootOp.path}' not implemented` }); return; }
      if (isPrivilegeRule(rootOp.privilege)) throw new GatewayError('failed', `${rootOp.path}: a root operation takes a fixed privilege`);
      const caller = await o.auth.check(credentials(req), method, rootOp.privilege);
      const result = await rootOp.handler({}, { ...g, tasks, caller, operations: ops, collector: o.collector });
      res.statusCode = 200;
      res.setHeader('content-type', rootOp.returns.contentType ?? 'application/json;charset=UTF-8');
      res.end(typeof result === 'string' ? result : JSON.stringify(result));
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
    // Validated once, defaults filled in: the privilege rule and the handler get these values.
    const values = validate(restSchema(op as Operation<never>), params);

    // 4. The privileges this call needs, all of them.
    const ctx: ApiCtx = { ...g, tasks, caller, operations: ops, collector: o.collector };
    const required: Privilege[] = isPrivilegeRule(op.privilege)
      ? await op.privilege.required(values, ctx, acl)
      : [{ ...op.privilege, path: expandPath(op.privilege.path, m.params) }];
    await o.auth.authorize(caller, required);

    if (op === taskLogOp && String(req.headers.accept ?? '').includes('text/event-stream')) {
      const v = values as { upid: string; start: number };
      getTask(ctx, v.upid);
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      const stop = tasks.follow(v.upid, v.start, (l) => res.write(`data: ${JSON.stringify(l)}\n\n`), (t) => {
        res.end(`event: end\ndata: ${JSON.stringify(taskStatus(t))}\n\n`);
      });
      req.on('close', stop);
      return;
    }
    if (op.async) {
      const id = typeof values.sharename === 'string' ? values.sharename : '';
      // A dry run is a task of its own type, so that task lists tell it from the change itself.
      const type = (op.command.join('-') || 'task') + (values.dry_run === true ? '-dryrun' : '');
      const upid = tasks.start(type, id, caller.userid, (log) => op.handler(values, { ...ctx, log: (msg) => { log(msg); g.log(msg); } }));
      send(res, 200, { data: upid });
      return;
    }
    const result = await op.handler(values, ctx);
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
