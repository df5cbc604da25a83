/**
 * A small Proxmox VE cluster for tests: HTTPS on 127.0.0.1 with a self-signed certificate, three nodes,
 * storages `local` (dir: vztmpl, iso, snippets, import, backup), `local-zfs` (zfspool) and `cephfs`,
 * LXC and QEMU guests, directory mappings, HA resources, vzdump and asynchronous tasks with UPIDs.
 *
 * Every request is checked against the official schema first (test/pve-sim/schema.ts): what a real node
 * would reject is rejected with Proxmox's status and error shape. Permissions follow the schema's
 * `permissions.check` for API tokens, plus the handler rules that matter here (bind mounts only for
 * root@pam). Faults can be injected per endpoint. PVE_SIM_LOG=<file> appends one JSON line per request.
 *
 * Node-local commands (`pvesh`, `pct`, `qm guest exec`, and a fake `smbclient` for the fake backend) are shims in
 * `binDir`: small scripts that talk to the simulator as root@pam of the local node.
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { appendFileSync, chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { FakeBackend, readIfExists, type GuestBackend, type SimGuest } from './backend.ts';
import { ApiSchema, parsePropertyString, validateParams, type MethodInfo, type Values } from './schema.ts';

export interface StorageDef { id: string; type: 'dir' | 'zfspool' | 'cephfs' | 'rbd'; content: string[]; path?: string; shared: boolean; pool?: string }
interface Volume { volid: string; content: string; size: number; format: string; vmid?: number }
interface Task { upid: string; node: string; type: string; id: string; user: string; status: 'running' | 'stopped'; exitstatus?: string; log: string[]; starttime: number }
export interface Fault {
  method?: string;
  /** Concrete API path (string: exact; RegExp: tested) */
  path: string | RegExp;
  kind: 'http' | 'task-fail' | 'slow';
  status?: number;
  message?: string;
  delayMs?: number;
  /** How many requests it hits (default: every one). */
  times?: number;
}
export interface Acl { path: string; privs: string[] }
export interface SimUser { password?: string; acl: Acl[] }

let schemaCache: ApiSchema | undefined;
export function apiSchema(): ApiSchema { return (schemaCache ??= new ApiSchema()); }

class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly errors?: Record<string, string>) { super(message); }
}

const DEBIAN_CT = 'debian-12-standard_12.7-1_amd64.tar.zst';
const DEBIAN_CLOUD = 'debian-12-genericcloud-amd64.qcow2';

function hex8(n: number): string { return (n >>> 0).toString(16).toUpperCase().padStart(8, '0'); }

export interface SimOptions {
  dir: string;
  nodes?: string[];
  backend?: GuestBackend;
  /** How long a task takes (ms). */
  taskMs?: number;
  log?: string;
}

export class PveSim {
  readonly nodes: string[];
  readonly localNode: string;
  readonly dir: string;
  readonly backend: GuestBackend;
  readonly storages = new Map<string, StorageDef>();
  readonly volumes = new Map<string, Volume[]>();
  readonly guests = new Map<number, SimGuest>();
  readonly tasks = new Map<string, Task>();
  readonly mappings = new Map<string, { id: string; description?: string; map: string[] }>();
  readonly ha = new Map<string, Record<string, string>>();
  readonly users = new Map<string, SimUser>();
  readonly tokens = new Map<string, { secret: string; acl: Acl[]; privsep: boolean }>();
  readonly tickets = new Map<string, { user: string; csrf: string }>();
  readonly faults: Fault[] = [];
  readonly requests: { method: string; path: string; params: Values; user: string }[] = [];
  readonly nodeSecret = randomBytes(16).toString('hex');
  taskMs: number;
  /** The node's /etc/vzdump.conf `script:` (Proxmox's own backup jobs run it), and extra environment for it. */
  vzdumpConfScript?: string;
  hookEnv: Record<string, string> = {};
  private server?: Server;
  port = 0;
  fingerprint = '';
  certFile = '';
  binDir = '';
  private pidCounter = 0x1000;
  private agentPidCounter = 4000;
  private readonly agentProcs = new Map<number, { vmid: number; result?: { code: number; stdout: string; stderr: string } }>();
  private logFile: string | undefined;

  constructor(opts: SimOptions) {
    this.dir = opts.dir;
    this.nodes = opts.nodes ?? ['pve1', 'pve2', 'pve3'];
    this.localNode = this.nodes[0]!;
    this.backend = opts.backend ?? new FakeBackend();
    this.taskMs = opts.taskMs ?? 20;
    this.logFile = opts.log ?? process.env.PVE_SIM_LOG;
    const local = join(this.dir, 'storage', 'local');
    this.storages.set('local', { id: 'local', type: 'dir', content: ['vztmpl', 'iso', 'snippets', 'import', 'backup'], path: local, shared: false });
    this.storages.set('local-zfs', { id: 'local-zfs', type: 'zfspool', content: ['images', 'rootdir'], shared: false, pool: 'rpool/data' });
    this.storages.set('cephfs', { id: 'cephfs', type: 'cephfs', content: ['vztmpl', 'iso', 'backup', 'snippets'], path: join(this.dir, 'storage', 'cephfs'), shared: true });
    this.volumes.set('local', [
      { volid: `local:vztmpl/${DEBIAN_CT}`, content: 'vztmpl', size: 126_000_000, format: 'tzst' },
      { volid: `local:import/${DEBIAN_CLOUD}`, content: 'import', size: 330_000_000, format: 'qcow2' },
    ]);
    this.volumes.set('local-zfs', []);
    this.volumes.set('cephfs', []);
    this.users.set('root@pam', { password: randomBytes(9).toString('base64url'), acl: [{ path: '/', privs: ['*'] }] });
  }

  get url(): string { return `https://127.0.0.1:${this.port}`; }
  get rootPassword(): string { return this.users.get('root@pam')!.password!; }

  /** An API token with the given ACL (privilege separated, as Proxmox recommends). */
  addToken(tokenId: string, acl: Acl[]): string {
    const secret = randomUUID();
    this.tokens.set(tokenId, { secret, acl, privsep: true });
    return secret;
  }

  fault(f: Fault): void { this.faults.push(f); }
  clearFaults(): void { this.faults.length = 0; }

  /** A storage's directory on the node (dir-like storages). */
  storagePath(id: string): string | undefined { return this.storages.get(id)?.path; }

  // ---------------------------------------------------------------------------------------------

  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    for (const s of this.storages.values()) if (s.path) for (const c of ['snippets', 'template/cache', 'import', 'dump']) await mkdir(join(s.path, c), { recursive: true });
    writeFileSync(join(this.storages.get('local')!.path!, 'template/cache', DEBIAN_CT), 'fake ostemplate\n');
    const key = join(this.dir, 'key.pem');
    this.certFile = join(this.dir, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${this.localNode}.sim`,
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', key, '-out', this.certFile], { stdio: 'ignore' });
    const der = Buffer.from(readFileSync(this.certFile, 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64');
    this.fingerprint = createHash('sha256').update(der).digest('hex').toUpperCase().match(/../g)!.join(':');
    this.server = createServer({ key: readFileSync(key), cert: readFileSync(this.certFile) }, (req, res) => { void this.handle(req, res); });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as { port: number }).port;
    this.writeShims();
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.server?.closeAllConnections();
    // Real guests must not outlive the test.
    for (const g of this.guests.values()) {
      if (g.status === 'running') await (g.kind === 'lxc' ? this.backend.ctStop(g) : this.backend.vmStop(g)).catch(() => undefined);
      await (g.kind === 'lxc' ? this.backend.ctDestroy(g) : this.backend.vmDestroy(g)).catch(() => undefined);
    }
    await this.backend.close();
  }

  // ---------------------------------------------------------------------------------------------

  private async readBody(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  private send(res: ServerResponse, status: number, body: unknown, reason?: string): void {
    const text = JSON.stringify(body);
    res.writeHead(status, (reason ?? '').replace(/[^\x20-\x7e]/g, ' ').slice(0, 200) || undefined, { 'Content-Type': 'application/json;charset=UTF-8', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  private authenticate(req: IncomingMessage, method: string): string | undefined {
    if (req.headers['x-sim-node-root'] === this.nodeSecret) return 'root@pam';
    const auth = req.headers.authorization;
    if (auth?.startsWith('PVEAPIToken=')) {
      const m = /^PVEAPIToken=([^=]+)=(.+)$/.exec(auth);
      const t = m ? this.tokens.get(m[1]!) : undefined;
      if (!t || t.secret !== m![2]) throw new HttpError(401, 'authentication failure');
      return m![1]!;
    }
    const cookie = /(?:^|;\s*)PVEAuthCookie=([^;]+)/.exec(req.headers.cookie ?? '');
    if (cookie) {
      const t = this.tickets.get(decodeURIComponent(cookie[1]!));
      if (!t) throw new HttpError(401, 'authentication failure');
      if (method !== 'GET' && req.headers.csrfpreventiontoken !== t.csrf) throw new HttpError(401, 'Permission denied - invalid csrf token');
      return t.user;
    }
    return undefined;
  }

  private acl(user: string): Acl[] {
    if (user === 'root@pam') return [{ path: '/', privs: ['*'] }];
    return this.tokens.get(user)?.acl ?? this.users.get(user)?.acl ?? [];
  }

  hasPriv(user: string, path: string, priv: string): boolean {
    return this.acl(user).some((a) => (path === a.path || a.path === '/' || path.startsWith(a.path.endsWith('/') ? a.path : a.path + '/')) && (a.privs.includes('*') || a.privs.includes(priv)));
  }

  private checkPerm(user: string, expr: unknown, params: Values): boolean {
    if (!Array.isArray(expr)) return true;
    const [op, ...rest] = expr as [string, ...unknown[]];
    if (op === 'and') return rest.every((e) => this.checkPerm(user, e, params));
    if (op === 'or') return rest.some((e) => this.checkPerm(user, e, params));
    if (op === 'perm') {
      const [pathT, privs, ...opts] = rest as [string, string[], ...unknown[]];
      const ri = opts.indexOf('require_param');
      if (ri >= 0 && params[opts[ri + 1] as string] === undefined) return false;
      const path = pathT.replace(/\{(\w+)\}/g, (_, k: string) => String(params[k] ?? ''));
      const any = opts.includes('any');
      return any ? privs.some((p) => this.hasPriv(user, path, p)) : privs.every((p) => this.hasPriv(user, path, p));
    }
    // userid-group, userid-param, perm-modify: only root here.
    return user === 'root@pam';
  }

  private takeFault(method: string, path: string): Fault | undefined {
    const i = this.faults.findIndex((f) => (!f.method || f.method === method) && (typeof f.path === 'string' ? f.path === path : f.path.test(path)));
    if (i < 0) return undefined;
    const f = this.faults[i]!;
    if (f.times !== undefined && --f.times <= 0) this.faults.splice(i, 1);
    return f;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const u = new URL(req.url ?? '/', 'https://x');
    let user = '';
    let path = '';
    const values: Values = {};
    try {
      const body = method === 'POST' || method === 'PUT' ? await this.readBody(req) : '';
      const add = (qs: URLSearchParams) => {
        for (const [k, v] of qs) {
          const cur = values[k];
          values[k] = cur === undefined ? v : Array.isArray(cur) ? [...cur, v] : [cur, v];
        }
      };
      add(u.searchParams);
      if (body) {
        if (req.headers['content-type']?.includes('application/json')) throw new HttpError(400, 'this simulator takes form-encoded parameters like the gateway sends');
        add(new URLSearchParams(body));
      }
      if (u.pathname.startsWith('/sim/')) {
        if (req.headers['x-sim-node-root'] !== this.nodeSecret) throw new HttpError(401, 'authentication failure');
        const data = await this.simCall(u.pathname, JSON.parse(body || '{}') as Record<string, unknown>);
        this.send(res, 200, { data });
        return;
      }
      if (!u.pathname.startsWith('/api2/json/')) throw new HttpError(501, `Method '${method} ${u.pathname}' not implemented`);
      path = u.pathname.slice('/api2/json'.length).replace(/\/+$/, '');
      const m = apiSchema().match(path);
      const info: MethodInfo | undefined = m?.info[method];
      if (!m || !info) throw new HttpError(501, `Method '${method} ${path}' not implemented`);
      // Path parameters count as parameters (and are validated with them).
      for (const [k, v] of Object.entries(m.pathParams)) values[k] = v;
      const who = this.authenticate(req, method);
      user = who ?? '';
      this.record(method, path, values, user);
      if (!who && info.permissions?.user !== 'world') throw new HttpError(401, 'No ticket');
      const errors = validateParams(info, values);
      if (Object.keys(errors).length) throw new HttpError(400, 'Parameter verification failed.', errors);
      if (who && info.permissions?.check && !this.checkPerm(who, info.permissions.check, values)) {
        throw new HttpError(403, `Permission check failed (${JSON.stringify(info.permissions.check).slice(0, 120)})`);
      }
      const fault = this.takeFault(method, path);
      if (fault?.kind === 'http') throw new HttpError(fault.status ?? 500, fault.message ?? 'injected failure');
      const data = await this.route(method, m.path, values, who ?? '', fault);
      this.send(res, 200, { data: data ?? null });
    } catch (e) {
      if (e instanceof HttpError) {
        const msg = e.message.endsWith('\n') ? e.message : e.message + '\n';
        this.send(res, e.status, { data: null, message: msg, ...(e.errors ? { errors: e.errors } : {}) }, e.message);
      } else {
        const msg = (e as Error).message;
        this.send(res, 500, { data: null, message: msg + '\n' }, msg);
      }
    }
  }

  private record(method: string, path: string, params: Values, user: string): void {
    const p = { ...params };
    for (const k of ['password', 'secret', 'input-data']) if (k in p) p[k] = '***';
    const entry = { method, path, params: p, user };
    this.requests.push(entry);
    if (this.logFile) appendFileSync(this.logFile, JSON.stringify(entry) + '\n');
  }

  // ---------------------------------------------------------------------------------------------
  // Tasks

  /** A worker task; `cleanup` undoes the bookkeeping of a create/clone that failed (as PVE removes the half-made guest). */
  private task(node: string, type: string, id: string, user: string, work: (log: (l: string) => void) => Promise<void>, fault?: Fault, cleanup?: () => void): string {
    const start = Math.floor(Date.now() / 1000);
    const upid = `UPID:${node}:${hex8(++this.pidCounter)}:${hex8(this.pidCounter * 7)}:${hex8(start)}:${type}:${id}:${user}:`;
    const t: Task = { upid, node, type, id, user, status: 'running', log: [], starttime: start };
    this.tasks.set(upid, t);
    const log = (l: string) => t.log.push(l);
    const delay = fault?.kind === 'slow' ? (fault.delayMs ?? 5000) : this.taskMs;
    setTimeout(() => {
      void (async () => {
        try {
          if (fault?.kind === 'task-fail') { log(fault.message ?? 'injected task failure'); throw new Error(fault.message ?? 'injected task failure'); }
          await work(log);
          t.exitstatus = 'OK';
          log('TASK OK');
        } catch (e) {
          const msg = (e as Error).message;
          log(`TASK ERROR: ${msg}`);
          t.exitstatus = msg;
          cleanup?.();
        }
        t.status = 'stopped';
      })();
    }, delay);
    return upid;
  }

  // ---------------------------------------------------------------------------------------------
  // Guests

  private guest(node: string, vmid: number, kind: 'lxc' | 'qemu'): SimGuest {
    const g = this.guests.get(vmid);
    if (!g || g.kind !== kind || g.node !== node) throw new HttpError(500, `Configuration file 'nodes/${node}/${kind}/${vmid}.conf' does not exist`);
    return g;
  }

  /** A running VM with the agent configured and answering (what PVE's agent calls check). */
  private async agentGuest(node: string, vmid: number): Promise<SimGuest> {
    const g = this.guest(node, vmid, 'qemu');
    if (g.status !== 'running') throw new HttpError(500, `VM ${vmid} is not running`);
    if (!/^(1|enabled=1)/.test(g.config.agent ?? '')) throw new HttpError(500, 'No QEMU guest agent configured');
    if (!this.backend.vmExec || !(await this.backend.vmAgentInterfaces(g))) throw new HttpError(500, 'QEMU guest agent is not running');
    return g;
  }

  private requireNode(node: string): void {
    if (!this.nodes.includes(node)) throw new HttpError(595, `no such cluster node '${node}'`);
  }

  private label(kind: 'lxc' | 'qemu', vmid: number | string): string { return `${kind === 'lxc' ? 'CT' : 'VM'} ${vmid}`; }

  private allocVolume(spec: string, vmid: number, kind: 'lxc' | 'qemu', content: string): string {
    // STORAGE:SIZE allocates a new volume; anything else is an existing volume or a path.
    const m = /^([a-z][a-z0-9\-_.]*[a-z0-9]):(\d+(?:\.\d+)?)$/i.exec(spec);
    if (!m) return spec;
    const sid = m[1]!;
    const st = this.storages.get(sid);
    if (!st) throw new HttpError(500, `storage '${sid}' does not exist`);
    if (!st.content.includes(content)) throw new HttpError(500, `storage '${sid}' does not support ${kind === 'lxc' ? 'container directories' : 'vm images'}`);
    const list = this.volumes.get(sid)!;
    const n = list.filter((v) => v.vmid === vmid).length;
    const name = kind === 'lxc' ? `subvol-${vmid}-disk-${n}` : `vm-${vmid}-disk-${n}`;
    const volid = `${sid}:${name}`;
    list.push({ volid, content, size: Number(m[2]) * 2 ** 30, format: kind === 'lxc' ? 'subvol' : 'raw', vmid });
    return `${volid},size=${m[2]}G`;
  }

  private freeVolumes(vmid: number): void {
    for (const [sid, list] of this.volumes) this.volumes.set(sid, list.filter((v) => v.vmid !== vmid));
  }

  /** Bind mounts (absolute paths as volume) only for root@pam; volumes need Datastore.AllocateSpace. */
  private checkMounts(user: string, values: Values): void {
    for (const [k, v] of Object.entries(values)) {
      if (!/^(mp\d+|rootfs)$/.test(k) || typeof v !== 'string') continue;
      const { res } = parsePropertyString(apiSchema().method('/nodes/pve1/lxc', 'POST')!.parameters.properties![k === 'rootfs' ? 'rootfs' : 'mp[n]']!.format as Record<string, never>, v);
      const vol = res.volume ?? '';
      if (vol.startsWith('/') && user !== 'root@pam') throw new HttpError(403, 'Permission check failed (Only root can pass arbitrary filesystem paths.)');
      const sid = /^([a-z][a-z0-9\-_.]*[a-z0-9]):/i.exec(vol)?.[1];
      if (sid && !this.hasPriv(user, `/storage/${sid}`, 'Datastore.AllocateSpace')) throw new HttpError(403, `Permission check failed (/storage/${sid}, Datastore.AllocateSpace)`);
    }
  }

  private checkVirtiofs(user: string, node: string, values: Values): void {
    for (const [k, v] of Object.entries(values)) {
      if (!/^virtiofs\d+$/.test(k) || typeof v !== 'string') continue;
      const dirid = /(?:^|,)(?:dirid=)?([^,=]+)(?:,|$)/.exec(v)?.[1] ?? '';
      const mp = this.mappings.get(dirid);
      if (!mp) throw new HttpError(500, `directory mapping '${dirid}' not found`);
      if (!mp.map.some((e) => e.includes(`node=${node}`))) throw new HttpError(500, `no directory mapping '${dirid}' for node '${node}'`);
      if (!this.hasPriv(user, `/mapping/dir/${dirid}`, 'Mapping.Use')) throw new HttpError(403, `Permission check failed (/mapping/dir/${dirid}, Mapping.Use)`);
    }
  }

  private configOnly(values: Values): Record<string, string> {
    const skip = new Set(['node', 'vmid', 'start', 'storage', 'password', 'ostemplate', 'pool', 'force', 'restore', 'unique', 'ignore-unpack-errors', 'ssh-public-keys', 'delete', 'digest', 'revert', 'skiplock', 'bwlimit', 'ha-managed', 'archive', 'live-restore', 'import-working-storage']);
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(values)) if (!skip.has(k)) out[k] = Array.isArray(v) ? v.join(',') : v;
    return out;
  }

  private linkedOk(storageId: string, kind: 'lxc' | 'qemu'): boolean {
    const t = this.storages.get(storageId)?.type;
    return t === 'zfspool' || t === 'rbd' || (kind === 'qemu' && t === 'dir');
  }

  private diskStorages(g: SimGuest): string[] {
    const out: string[] = [];
    for (const [k, v] of Object.entries(g.config)) {
      if (!/^(rootfs|mp\d+|scsi\d+|virtio\d+|sata\d+|ide\d+|efidisk0)$/.test(k)) continue;
      const vol = v.split(',')[0]!.replace(/^volume=/, '');
      const sid = /^([a-z][a-z0-9\-_.]*[a-z0-9]):/i.exec(vol)?.[1];
      if (sid && !/cloudinit/.test(vol) && this.storages.has(sid)) out.push(sid);
    }
    return out;
  }

  /**
   * pct restore / qmrestore through the API: the archive's config replaces the guest's (which must be
   * stopped; force to overwrite). An archive of the other kind of guest is refused.
   */
  private restoreGuest(kind: 'lxc' | 'qemu', node: string, vmid: number, archive: string, force: boolean, user: string, fault?: Fault): string {
    const g = this.guests.get(vmid);
    const what = kind === 'lxc' ? 'CT' : 'VM';
    if (g && !force) throw new HttpError(500, `unable to restore ${what} ${vmid} - ${what} ${vmid} already exists on node '${g.node}'`);
    if (g && g.kind !== kind) throw new HttpError(500, `unable to restore ${what} ${vmid} - ${vmid} is a ${g.kind === 'lxc' ? 'container' : 'VM'}`);
    if (g && g.status === 'running') throw new HttpError(500, `unable to restore ${what} ${vmid} - ${what} is running`);
    if (!this.hasPriv(user, `/vms/${vmid}`, 'VM.Backup')) throw new HttpError(403, `Permission check failed (/vms/${vmid}, VM.Backup)`);
    const m = /^([a-z][a-z0-9\-_.]*[a-z0-9]):backup\/(.+)$/i.exec(archive);
    const st = m ? this.storages.get(m[1]!) : undefined;
    if (!m || !st?.path || !(this.volumes.get(st.id) ?? []).some((x) => x.volid === archive)) throw new HttpError(500, `volume '${archive}' does not exist`);
    const file = join(st.path, 'dump', m[2]!);
    return this.task(node, kind === 'lxc' ? 'vzrestore' : 'qmrestore', String(vmid), user, async (log) => {
      log(`restoring '${archive}' now..`);
      const saved = JSON.parse(readFileSync(file, 'utf8')) as { vmid: number; kind: string; config: Record<string, string> };
      if (saved.kind !== kind) throw new Error(`${archive} is not a ${kind === 'lxc' ? 'container' : 'VM'} backup`);
      const target = g ?? { vmid, kind, node, config: {}, status: 'stopped' as const, template: false };
      for (const k of Object.keys(target.config)) delete target.config[k];
      Object.assign(target.config, saved.config);
      this.guests.set(vmid, target as SimGuest);
      log('restore done');
    }, fault);
  }

  private async route(method: string, pattern: string, v: Values, user: string, fault?: Fault): Promise<unknown> {
    const s = (k: string) => (v[k] === undefined ? undefined : String(v[k]));
    const node = s('node') ?? this.localNode;
    if (pattern.startsWith('/nodes/{node}')) this.requireNode(node);
    const vmid = v.vmid !== undefined ? Number(v.vmid) : NaN;
    const kind = pattern.includes('/lxc') ? 'lxc' as const : 'qemu' as const;
    const key = `${method} ${pattern}`;
    const TRUE = (x: string | undefined) => x !== undefined && /^(1|true|yes|on)$/i.test(x);

    switch (key) {
      case 'POST /access/ticket': {
        const name = s('username')!.includes('@') ? s('username')! : `${s('username')}@${s('realm') ?? 'pam'}`;
        const u = this.users.get(name);
        if (!u || u.password !== s('password')) throw new HttpError(401, 'authentication failure');
        const ticket = `PVE:${name}:${hex8(Math.floor(Date.now() / 1000))}::${randomBytes(32).toString('base64')}`;
        const csrf = `${hex8(Math.floor(Date.now() / 1000))}:${randomBytes(16).toString('base64url')}`;
        this.tickets.set(ticket, { user: name, csrf });
        return { username: name, ticket, CSRFPreventionToken: csrf, clustername: 'simcluster' };
      }
      case 'GET /version': return { version: '9.1.1', release: '9.1', repoid: 'sim' };
      case 'GET /nodes': return this.nodes.map((n) => ({ node: n, status: 'online', type: 'node' }));
      case 'GET /cluster/status': return [
        { type: 'cluster', id: 'cluster', name: 'simcluster', nodes: this.nodes.length, quorate: 1, version: this.nodes.length },
        ...this.nodes.map((n, i) => ({ type: 'node', id: `node/${n}`, name: n, nodeid: i + 1, online: 1, local: n === this.localNode ? 1 : 0, ip: `127.0.0.${i + 1}` })),
      ];
      case 'GET /cluster/nextid': {
        if (v.vmid !== undefined) {
          if (this.guests.has(vmid)) throw new HttpError(400, `VM ${vmid} already exists`);
          return vmid;
        }
        let id = 100;
        while (this.guests.has(id)) id++;
        return id;
      }
      case 'GET /cluster/resources': {
        const out: Record<string, unknown>[] = [];
        const t = s('type');
        if (!t || t === 'vm') for (const g of this.guests.values()) out.push({ id: `${g.kind}/${g.vmid}`, type: g.kind, vmid: g.vmid, node: g.node, name: g.config.hostname ?? g.config.name, status: g.status, template: g.template ? 1 : 0, tags: g.config.tags, maxmem: Number(g.config.memory ?? 512) * 2 ** 20 });
        if (!t || t === 'storage') for (const n of this.nodes) for (const st of this.storages.values()) out.push({ id: `storage/${n}/${st.id}`, type: 'storage', storage: st.id, node: n, plugintype: st.type, content: st.content.join(','), shared: st.shared ? 1 : 0, status: 'available' });
        if (!t || t === 'node') for (const n of this.nodes) out.push({ id: `node/${n}`, type: 'node', node: n, status: 'online' });
        return out;
      }
      case 'GET /storage': return [...this.storages.values()].map((st) => this.storageConfig(st));
      case 'GET /storage/{storage}': {
        const st = this.storages.get(s('storage')!);
        if (!st) throw new HttpError(500, `storage '${s('storage')}' does not exist`);
        return this.storageConfig(st);
      }
      case 'GET /nodes/{node}/storage': return [...this.storages.values()].filter((st) => !s('content') || st.content.includes(s('content')!)).map((st) => ({ storage: st.id, type: st.type, content: st.content.join(','), shared: st.shared ? 1 : 0, active: 1, enabled: 1 }));
      case 'GET /nodes/{node}/storage/{storage}/content': {
        const st = this.storages.get(s('storage')!);
        if (!st) throw new HttpError(500, `storage '${s('storage')}' does not exist`);
        const list = [...(this.volumes.get(st.id) ?? [])];
        if (st.path) for (const f of await readdir(join(st.path, 'snippets')).catch(() => [] as string[])) {
          const size = (await stat(join(st.path, 'snippets', f))).size;
          list.push({ volid: `${st.id}:snippets/${f}`, content: 'snippets', size, format: 'snippet' });
        }
        return list.filter((x) => (!s('content') || x.content === s('content')) && (v.vmid === undefined || x.vmid === vmid));
      }

      // --- guests ---
      case 'GET /nodes/{node}/lxc':
      case 'GET /nodes/{node}/qemu':
        return [...this.guests.values()].filter((g) => g.node === node && g.kind === kind).map((g) => this.statusOf(g));
      case 'POST /nodes/{node}/lxc': {
        if (!this.hasPriv(user, `/vms/${vmid}`, 'VM.Allocate')) throw new HttpError(403, `Permission check failed (/vms/${vmid}, VM.Allocate)`);
        this.checkMounts(user, v);
        if (TRUE(s('restore'))) return this.restoreGuest('lxc', node, vmid, s('ostemplate')!, TRUE(s('force')), user, fault);
        if (this.guests.has(vmid)) throw new HttpError(500, `CT ${vmid} already exists on node '${this.guests.get(vmid)!.node}'`);
        const ost = s('ostemplate')!;
        const stId = ost.split(':')[0]!;
        if (!(this.volumes.get(stId) ?? []).some((x) => x.volid === ost)) throw new HttpError(500, `volume '${ost}' does not exist`);
        if (v.unprivileged !== undefined && !TRUE(s('unprivileged')) && user !== 'root@pam' && !this.hasPriv(user, '/', 'Sys.Modify')) throw new HttpError(403, 'Permission check failed (/, Sys.Modify)');
        const config = this.configOnly(v);
        config.unprivileged ??= '1';
        config.rootfs = this.allocVolume(s('rootfs') ?? `${s('storage') ?? 'local'}:4`, vmid, 'lxc', 'rootdir');
        for (const [k, val] of Object.entries(config)) if (/^mp\d+$/.test(k)) config[k] = this.allocVolume(val, vmid, 'lxc', 'rootdir');
        const g: SimGuest = { vmid, kind: 'lxc', node, config, status: 'stopped', template: false };
        this.guests.set(vmid, g);
        config.lock = 'create';
        return this.task(node, 'vzcreate', String(vmid), user, async (log) => {
          log(`extracting archive '${ost}'`);
          await this.backend.ctCreate(g, join(this.storages.get(stId)?.path ?? '', 'template/cache', ost.split('/').pop()!));
          delete config.lock;
          if (TRUE(s('start'))) { await this.backend.ctStart(g); g.status = 'running'; }
        }, fault, () => { this.guests.delete(vmid); this.freeVolumes(vmid); });
      }
      case 'POST /nodes/{node}/qemu': {
        if (s('archive') !== undefined) return this.restoreGuest('qemu', node, vmid, s('archive')!, TRUE(s('force')), user, fault);
        if (!this.hasPriv(user, `/vms/${vmid}`, 'VM.Allocate')) throw new HttpError(403, `Permission check failed (/vms/${vmid}, VM.Allocate)`);
        if (this.guests.has(vmid)) throw new HttpError(500, `VM ${vmid} already exists on node '${this.guests.get(vmid)!.node}'`);
        this.checkVirtiofs(user, node, v);
        const config = this.configOnly(v);
        let importFrom: string | undefined;
        for (const [k, val] of Object.entries(config)) {
          if (!/^(scsi|virtio|sata|ide)\d+$/.test(k) || /cloudinit/.test(val)) continue;
          const im = /import-from=([^,]+)/.exec(val);
          if (im) {
            const src = im[1]!;
            if (!(this.volumes.get(src.split(':')[0]!) ?? []).some((x) => x.volid === src)) throw new HttpError(500, `volume '${src}' does not exist`);
            importFrom = src;
          }
          const head = val.split(',')[0]!;
          config[k] = this.allocVolume(/:0$/.test(head) && im ? head.replace(/:0$/, ':3') : head, vmid, 'qemu', 'images') + (val.includes(',') ? ',' + val.split(',').slice(1).filter((x) => !x.startsWith('import-from=')).join(',') : '');
        }
        for (const [k, val] of Object.entries(config)) if (/cloudinit/.test(val)) config[k] = `${val.split(':')[0]}:vm-${vmid}-cloudinit,media=cdrom`;
        const g: SimGuest = { vmid, kind: 'qemu', node, config, status: 'stopped', template: false };
        this.guests.set(vmid, g);
        return this.task(node, 'qmcreate', String(vmid), user, async (log) => {
          if (importFrom) log(`importing disk '${importFrom}'`);
          await this.backend.vmCreate(g, importFrom);
        }, fault, () => { this.guests.delete(vmid); this.freeVolumes(vmid); });
      }
      case 'GET /nodes/{node}/lxc/{vmid}':
      case 'GET /nodes/{node}/qemu/{vmid}':
        this.guest(node, vmid, kind);
        return [{ subdir: 'config' }, { subdir: 'status' }, { subdir: 'clone' }];
      case 'GET /nodes/{node}/lxc/{vmid}/config':
      case 'GET /nodes/{node}/qemu/{vmid}/config': {
        const g = this.guest(node, vmid, kind);
        const c: Record<string, unknown> = { ...g.config, digest: this.digest(g) };
        if (g.template) c.template = 1;
        return c;
      }
      case 'PUT /nodes/{node}/lxc/{vmid}/config':
      case 'PUT /nodes/{node}/qemu/{vmid}/config':
      case 'POST /nodes/{node}/qemu/{vmid}/config': {
        const g = this.guest(node, vmid, kind);
        if (s('digest') && s('digest') !== this.digest(g)) throw new HttpError(500, 'detected modified configuration - file changed by other user? Try again.');
        if (kind === 'lxc') this.checkMounts(user, v); else this.checkVirtiofs(user, node, v);
        if (v.cicustom !== undefined && !this.hasPriv(user, `/vms/${vmid}`, 'VM.Config.Cloudinit')) throw new HttpError(403, `Permission check failed (/vms/${vmid}, VM.Config.Cloudinit)`);
        if (g.template && Object.keys(this.configOnly(v)).some((k) => /^(rootfs|mp\d+|scsi\d+)$/.test(k))) throw new HttpError(500, 'you can\'t change the disks of a template');
        const apply = () => {
          for (const [k, val] of Object.entries(this.configOnly(v))) {
            if (kind === 'lxc' && /^mp\d+$/.test(k)) { g.config[k] = this.allocVolume(val, vmid, 'lxc', 'rootdir'); continue; }
            if (kind === 'lxc' && k === 'unprivileged' && val !== g.config.unprivileged) throw new HttpError(500, 'unable to modify read-only option: \'unprivileged\'');
            g.config[k] = val;
          }
          for (const d of String(v.delete ?? '').split(/[,;\s]+/).filter(Boolean)) delete g.config[d];
        };
        if (method === 'POST') return this.task(node, 'qmconfig', String(vmid), user, async () => apply(), fault);
        if (fault?.kind === 'task-fail') throw new HttpError(500, fault.message ?? 'injected failure');
        apply();
        return null;
      }
      case 'GET /nodes/{node}/lxc/{vmid}/status/current':
      case 'GET /nodes/{node}/qemu/{vmid}/status/current': {
        const g = this.guest(node, vmid, kind);
        if (kind === 'qemu' && g.status === 'running' && this.backend.vmRunning && !(await this.backend.vmRunning(g))) g.status = 'stopped';
        return this.statusOf(g);
      }
      case 'POST /nodes/{node}/lxc/{vmid}/status/start':
      case 'POST /nodes/{node}/qemu/{vmid}/status/start': {
        const g = this.guest(node, vmid, kind);
        if (g.template) throw new HttpError(500, `${this.label(kind, vmid)} is a template - start failed`);
        return this.task(node, kind === 'lxc' ? 'vzstart' : 'qmstart', String(vmid), user, async (log) => {
          if (g.status === 'running') throw new Error(`${this.label(kind, vmid)} already running`);
          if (kind === 'lxc') await this.backend.ctStart(g);
          else await this.backend.vmStart(g, await this.vmContext(g, log));
          g.status = 'running';
        }, fault);
      }
      case 'POST /nodes/{node}/lxc/{vmid}/status/stop':
      case 'POST /nodes/{node}/qemu/{vmid}/status/stop':
      case 'POST /nodes/{node}/lxc/{vmid}/status/shutdown':
      case 'POST /nodes/{node}/qemu/{vmid}/status/shutdown': {
        const g = this.guest(node, vmid, kind);
        return this.task(node, kind === 'lxc' ? (pattern.endsWith('stop') ? 'vzstop' : 'vzshutdown') : (pattern.endsWith('stop') ? 'qmstop' : 'qmshutdown'), String(vmid), user, async () => {
          if (g.status !== 'running') throw new Error(`${this.label(kind, vmid)} not running`);
          if (kind === 'lxc') await this.backend.ctStop(g); else await this.backend.vmStop(g);
          g.status = 'stopped';
        }, fault);
      }
      case 'POST /nodes/{node}/lxc/{vmid}/template':
      case 'POST /nodes/{node}/qemu/{vmid}/template': {
        const g = this.guest(node, vmid, kind);
        if (g.status === 'running') throw new HttpError(500, `${this.label(kind, vmid)} is running - can't convert to template`);
        if (kind === 'lxc') {
          if (fault?.kind === 'task-fail') throw new HttpError(500, fault.message ?? 'injected failure');
          g.template = true;
          return null;
        }
        return this.task(node, 'qmtemplate', String(vmid), user, async () => { g.template = true; }, fault);
      }
      case 'POST /nodes/{node}/lxc/{vmid}/clone':
      case 'POST /nodes/{node}/qemu/{vmid}/clone': {
        const src = this.guest(node, vmid, kind);
        const newid = Number(v.newid);
        const target = s('target') ?? node;
        this.requireNode(target);
        if (this.guests.has(newid)) throw new HttpError(500, `${this.label(kind, newid)} already exists on node '${this.guests.get(newid)!.node}'`);
        const full = v.full === undefined ? !src.template : TRUE(s('full'));
        if (!full) {
          if (!src.template) throw new HttpError(500, `Linked clone feature is not supported for running or non-template ${kind === 'lxc' ? 'containers' : 'VMs'}`);
          if (s('storage')) throw new HttpError(500, 'storage parameter is only allowed for full clones');
          for (const sid of this.diskStorages(src)) if (!this.linkedOk(sid, kind)) throw new HttpError(500, `Linked clone feature for '${sid}' is not available (storage type ${this.storages.get(sid)!.type})`);
        }
        if (target !== node && !full) throw new HttpError(500, 'Linked clones cannot be made on another node');
        const config: Record<string, string> = { ...src.config };
        delete config.lock;
        if (s('hostname')) config.hostname = s('hostname')!;
        if (s('name')) config.name = s('name')!;
        if (s('description')) config.description = s('description')!;
        const dst: SimGuest = { vmid: newid, kind, node: target, config, status: 'stopped', template: false };
        // Disks: new volumes for full clones, base-volume references for linked ones.
        for (const [k, val] of Object.entries(config)) {
          if (!/^(rootfs|scsi\d+|virtio\d+)$/.test(k)) continue;
          const vol = val.split(',')[0]!;
          const sid = s('storage') ?? vol.split(':')[0]!;
          const name = `${kind === 'lxc' ? 'subvol' : 'vm'}-${newid}-disk-0`;
          this.volumes.get(sid)?.push({ volid: `${sid}:${name}`, content: kind === 'lxc' ? 'rootdir' : 'images', size: 4 * 2 ** 30, format: 'raw', vmid: newid });
          config[k] = `${sid}:${full ? '' : vol.split(':')[1] + '/'}${name}${val.includes(',') ? ',' + val.split(',').slice(1).join(',') : ''}`;
        }
        config.lock = 'clone';
        this.guests.set(newid, dst);
        return this.task(node, kind === 'lxc' ? 'vzclone' : 'qmclone', String(vmid), user, async (log) => {
          log(`create ${full ? 'full' : 'linked'} clone of ${kind === 'lxc' ? 'CT' : 'VM'} ${vmid} as ${newid}`);
          if (kind === 'lxc') await this.backend.ctClone(src, dst, !full); else await this.backend.vmClone(src, dst, !full);
          delete config.lock;
        }, fault, () => { this.guests.delete(newid); this.freeVolumes(newid); });
      }
      case 'DELETE /nodes/{node}/lxc/{vmid}':
      case 'DELETE /nodes/{node}/qemu/{vmid}': {
        const g = this.guest(node, vmid, kind);
        if (g.status === 'running') throw new HttpError(500, `${this.label(kind, vmid)} is running - destroy failed`);
        const sid = `${kind === 'lxc' ? 'ct' : 'vm'}:${vmid}`;
        if (this.ha.has(sid) && !TRUE(s('purge'))) throw new HttpError(500, `unable to remove ${this.label(kind, vmid)} - used in HA resources and purge parameter not set.`);
        if (g.template && [...this.guests.values()].some((x) => x !== g && Object.values(x.config).some((c) => c.includes(`:${kind === 'lxc' ? 'subvol' : 'vm'}-${vmid}-disk-0/`)))) throw new HttpError(500, `base volume of ${this.label(kind, vmid)} is used by linked clones`);
        return this.task(node, kind === 'lxc' ? 'vzdestroy' : 'qmdestroy', String(vmid), user, async () => {
          if (kind === 'lxc') await this.backend.ctDestroy(g); else await this.backend.vmDestroy(g);
          this.guests.delete(vmid);
          this.freeVolumes(vmid);
          if (TRUE(s('purge'))) this.ha.delete(sid);
        }, fault);
      }
      case 'GET /nodes/{node}/lxc/{vmid}/interfaces': {
        const g = this.guest(node, vmid, kind);
        if (g.status !== 'running') throw new HttpError(500, `CT ${vmid} not running`);
        return this.backend.ctInterfaces(g);
      }
      case 'GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces': {
        const g = this.guest(node, vmid, kind);
        if (g.status !== 'running') throw new HttpError(500, `VM ${vmid} is not running`);
        if (!/^(1|enabled=1)/.test(g.config.agent ?? '')) throw new HttpError(500, 'No QEMU guest agent configured');
        const r = await this.backend.vmAgentInterfaces(g);
        if (!r) throw new HttpError(500, 'QEMU guest agent is not running');
        return { result: r };
      }

      // Guest agent commands: started asynchronously (a pid), followed with exec-status, as qemu-ga does.
      case 'POST /nodes/{node}/qemu/{vmid}/agent/exec': {
        const g = await this.agentGuest(node, vmid);
        const argv = ([] as string[]).concat(v.command ?? []);
        if (!argv.length) throw new HttpError(500, "no command specified");
        const input = s('input-data');
        const pid = ++this.agentPidCounter;
        const proc: { vmid: number; result?: { code: number; stdout: string; stderr: string } } = { vmid };
        this.agentProcs.set(pid, proc);
        const fault = this.takeFault('AGENT', `${argv[0]} ${vmid}`) ?? this.takeFault('AGENT', argv[0]!);
        const work = fault ? Promise.resolve({ code: 1, stdout: '', stderr: (fault.message ?? 'injected failure') + '\n' }) : this.backend.vmExec!(g, argv, input === undefined ? undefined : Buffer.from(input));
        void work.then((r) => { proc.result = r; }, (e: Error) => { proc.result = { code: 127, stdout: '', stderr: e.message }; });
        return { pid };
      }
      case 'GET /nodes/{node}/qemu/{vmid}/agent/exec-status': {
        await this.agentGuest(node, vmid);
        const pid = Number(s('pid'));
        const p = this.agentProcs.get(pid);
        if (!p || p.vmid !== vmid) throw new HttpError(500, `Agent error: Invalid parameter 'pid'`);
        if (!p.result) return { exited: 0 };
        this.agentProcs.delete(pid);
        return { exited: 1, exitcode: p.result.code, ...(p.result.stdout ? { 'out-data': p.result.stdout } : {}), ...(p.result.stderr ? { 'err-data': p.result.stderr } : {}) };
      }
      case 'POST /nodes/{node}/qemu/{vmid}/agent/file-write': {
        const g = await this.agentGuest(node, vmid);
        const encode = s('encode') === undefined || TRUE(s('encode'));
        const content = s('content') ?? '';
        await this.backend.vmWriteFile!(g, s('file')!, encode ? Buffer.from(content, 'utf8') : Buffer.from(content, 'base64'));
        return null;
      }

      // --- cluster-wide config ---
      case 'GET /cluster/mapping/dir': return [...this.mappings.values()];
      case 'POST /cluster/mapping/dir': {
        const id = s('id')!;
        if (this.mappings.has(id)) throw new HttpError(500, `mapping '${id}' already exists`);
        const map = ([] as string[]).concat(v.map ?? []);
        for (const e of map) {
          const n = /(?:^|,)node=([^,]+)/.exec(e)?.[1];
          if (n && !this.nodes.includes(n)) throw new HttpError(400, `no such node '${n}'`);
        }
        this.mappings.set(id, { id, map, ...(s('description') ? { description: s('description') } : {}) });
        return null;
      }
      case 'GET /cluster/mapping/dir/{id}': {
        const mp = this.mappings.get(s('id')!);
        if (!mp) throw new HttpError(500, `mapping '${s('id')}' not found`);
        return mp;
      }
      case 'DELETE /cluster/mapping/dir/{id}': {
        const id = s('id')!;
        if (!this.mappings.has(id)) throw new HttpError(500, `mapping '${id}' not found`);
        const user_ = [...this.guests.values()].find((g) => Object.entries(g.config).some(([k, c]) => /^virtiofs\d+$/.test(k) && (c === id || c.startsWith(id + ',') || c.includes(`dirid=${id}`))));
        if (user_) throw new HttpError(500, `mapping '${id}' is still used by VM ${user_.vmid}`);
        this.mappings.delete(id);
        return null;
      }
      case 'GET /cluster/ha/resources': return [...this.ha.entries()].map(([sid, r]) => ({ sid, ...r }));
      case 'POST /cluster/ha/resources': {
        let sid = s('sid')!;
        if (/^\d+$/.test(sid)) sid = `${this.guests.get(Number(sid))?.kind === 'lxc' ? 'ct' : 'vm'}:${sid}`;
        if (this.ha.has(sid)) throw new HttpError(500, `resource ID '${sid}' already defined`);
        if (!this.guests.has(Number(sid.split(':')[1]))) throw new HttpError(500, `unable to find VM/CT ${sid}`);
        const r: Record<string, string> = { type: sid.split(':')[0]!, state: s('state') ?? 'started' };
        if (s('comment')) r.comment = s('comment')!;
        this.ha.set(sid, r);
        return null;
      }
      case 'GET /cluster/ha/resources/{sid}': {
        const r = this.ha.get(s('sid')!);
        if (!r) throw new HttpError(500, `no such resource '${s('sid')}'`);
        return { sid: s('sid'), ...r };
      }
      case 'DELETE /cluster/ha/resources/{sid}': {
        if (!this.ha.delete(s('sid')!)) throw new HttpError(500, `no such resource '${s('sid')}'`);
        return null;
      }
      case 'POST /nodes/{node}/vzdump': {
        const ids = String(s('vmid') ?? '').split(/[,;\s]+/).filter(Boolean).map(Number);
        if (!ids.length && !TRUE(s('all'))) throw new HttpError(400, 'Parameter verification failed.', { vmid: 'property is missing and it is not optional' });
        for (const id of ids) if (!this.hasPriv(user, `/vms/${id}`, 'VM.Backup')) throw new HttpError(403, `Permission check failed (/vms/${id}, VM.Backup)`);
        for (const k of ['tmpdir', 'dumpdir', 'script', 'job-id']) if (v[k] !== undefined && user !== 'root@pam') throw new HttpError(403, `Permission check failed (Only root may set '${k}'.)`);
        const storage = s('storage') ?? 'local';
        const st = this.storages.get(storage);
        if (!st) throw new HttpError(500, `storage '${storage}' does not exist`);
        if (!st.content.includes('backup')) throw new HttpError(500, `storage '${storage}' does not support backups`);
        if (!this.hasPriv(user, `/storage/${storage}`, 'Datastore.AllocateSpace')) throw new HttpError(403, `Permission check failed (/storage/${storage}, Datastore.AllocateSpace)`);
        const mode = s('mode') ?? 'snapshot';
        // The hook: the job's `script`, else the node's /etc/vzdump.conf `script:`.
        const script = s('script') ?? this.vzdumpConfScript;
        const dumpdir = st.path ? join(st.path, 'dump') : undefined;
        const notesTemplate = s('notes-template');
        return this.task(node, 'vzdump', ids.join(','), user, async (log) => {
          const hook = async (args: string[], env: Record<string, string | undefined>) => {
            if (!script) return;
            log(`INFO: HOOK: ${args.join(' ')}`);
            const r = await new Promise<{ code: number; out: string }>((res) => execFile(script, args, { env: { ...process.env, ...this.hookEnv, ...Object.fromEntries(Object.entries(env).filter(([, x]) => x !== undefined)) as Record<string, string> }, timeout: 120_000 }, (err, stdout, stderr) => {
              res({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0, out: String(stdout) + String(stderr) });
            }));
            for (const l of r.out.split('\n').filter(Boolean)) log(`INFO: ${l}`);
            if (r.code !== 0) throw new Error(`command '${script} ${args.join(' ')}' failed: exit code ${r.code}`);
          };
          const jobEnv = { DUMPDIR: dumpdir, STOREID: storage };
          log(`INFO: starting new backup job: vzdump ${ids.join(' ')} --storage ${storage} --mode ${mode}`);
          await hook(['job-init'], jobEnv);
          await hook(['job-start'], jobEnv);
          let failed = 0;
          for (const id of ids) {
            const g = this.guests.get(id);
            const vmtype = g?.kind;
            const env = { ...jobEnv, VMTYPE: vmtype, HOSTNAME: g?.config.hostname ?? g?.config.name };
            try {
              if (!g || g.node !== node) throw new Error(`guest ${id} does not exist on node ${node}`);
              log(`INFO: Starting Backup of VM ${id} (${g.kind})`);
              const stamp = new Date().toISOString().slice(0, 19).replace(/-/g, '_').replace('T', '-').replace(/:/g, '_');
              const file = `vzdump-${g.kind}-${id}-${stamp}.${g.kind === 'lxc' ? 'tar.zst' : 'vma.zst'}`;
              const target = dumpdir ? join(dumpdir, file) : `${storage}:backup/${file}`;
              await hook(['backup-start', mode, String(id)], env);
              if (mode !== 'snapshot') { await hook(['pre-stop', mode, String(id)], env); await hook(['pre-restart', mode, String(id)], env); await hook(['post-restart', mode, String(id)], env); }
              log(`INFO: creating vzdump archive '${target}'`);
              if (dumpdir) {
                await mkdir(dumpdir, { recursive: true });
                writeFileSync(target, JSON.stringify({ vmid: id, kind: g.kind, config: g.config }) + '\n');
                if (notesTemplate) writeFileSync(`${target}.notes`, notesTemplate.replace(/\{\{(\w+)\}\}/g, (_, k: string) => ({ cluster: 'simcluster', guestname: String(g.config.hostname ?? g.config.name ?? ''), node, vmid: String(id) } as Record<string, string>)[k] ?? `{{${k}}}`) + '\n');
              }
              this.volumes.get(storage)?.push({ volid: `${storage}:backup/${file}`, content: 'backup', size: 1000, format: 'zst', vmid: id });
              await hook(['backup-end', mode, String(id)], { ...env, TARGET: target });
              log(`INFO: Finished Backup of VM ${id} (00:00:01)`);
              const logfile = dumpdir ? join(dumpdir, file.replace(/\.(tar|vma)\.zst$/, '.log')) : undefined;
              if (logfile) writeFileSync(logfile, 'sim vzdump log\n');
              await hook(['log-end', mode, String(id)], { ...env, LOGFILE: logfile });
            } catch (e) {
              failed++;
              log(`ERROR: Backup of VM ${id} failed - ${(e as Error).message}`);
              await hook(['backup-abort', mode, String(id)], env).catch(() => undefined);
            }
          }
          if (failed) {
            await hook(['job-abort'], jobEnv).catch(() => undefined);
            throw new Error(`job errors`);
          }
          await hook(['job-end'], jobEnv);
          log('INFO: Backup job finished successfully');
        }, fault);
      }

      // --- tasks ---
      case 'GET /nodes/{node}/tasks/{upid}/status': {
        const t = this.tasks.get(s('upid')!);
        if (!t) throw new HttpError(500, `no such task`);
        return { upid: t.upid, node: t.node, type: t.type, id: t.id, user: t.user, status: t.status, starttime: t.starttime, pid: 1, pstart: 1, ...(t.exitstatus ? { exitstatus: t.exitstatus } : {}) };
      }
      case 'GET /nodes/{node}/tasks/{upid}/log': {
        const t = this.tasks.get(s('upid')!);
        if (!t) throw new HttpError(500, `no such task`);
        const start = Number(s('start') ?? 0);
        const limit = Number(s('limit') ?? 50);
        return t.log.slice(start, start + limit).map((l, i) => ({ n: start + i + 1, t: l }));
      }
      default:
        throw new HttpError(501, `Method '${method} ${pattern}' not implemented in the simulator`);
    }
  }

  private storageConfig(st: StorageDef): Record<string, unknown> {
    return { storage: st.id, type: st.type, content: st.content.join(','), digest: 'x', ...(st.path ? { path: st.path } : {}), ...(st.pool ? { pool: st.pool } : {}), ...(st.shared ? { shared: 1 } : {}) };
  }

  private digest(g: SimGuest): string { return createHash('sha1').update(JSON.stringify(g.config)).digest('hex'); }

  private statusOf(g: SimGuest): Record<string, unknown> {
    return {
      vmid: g.vmid, status: g.status, name: g.config.hostname ?? g.config.name, template: g.template ? 1 : 0, tags: g.config.tags,
      maxmem: Number(g.config.memory ?? 512) * 2 ** 20, mem: g.status === 'running' ? 20 * 2 ** 20 : 0, cpus: Number(g.config.cores ?? 1), uptime: g.status === 'running' ? 1 : 0,
      ...(g.kind === 'qemu' && g.config.agent ? { agent: 1 } : {}),
    };
  }

  /** cicustom snippets and virtiofs mappings of a VM, resolved as a node would at start. */
  private async vmContext(g: SimGuest, log: (l: string) => void) {
    let userData: string | undefined;
    const cic = g.config.cicustom;
    const user = cic ? /(?:^|,)user=([^,]+)/.exec(cic)?.[1] : undefined;
    if (user) {
      const [sid, rel] = user.split(':') as [string, string];
      const st = this.storages.get(sid);
      if (!st?.path || !st.content.includes('snippets')) throw new Error(`storage '${sid}' does not support snippets`);
      userData = await readIfExists(join(st.path, rel));
      if (userData === undefined) throw new Error(`volume '${user}' does not exist`);
      log(`cloud-init user-data from ${user}`);
    }
    const virtiofs: { tag: string; path: string; acl: boolean }[] = [];
    for (const [k, c] of Object.entries(g.config)) {
      if (!/^virtiofs\d+$/.test(k)) continue;
      const dirid = /(?:^|,)(?:dirid=)?([^,=]+)(?:,|$)/.exec(c)?.[1] ?? '';
      const mp = this.mappings.get(dirid);
      const entry = mp?.map.find((e) => e.includes(`node=${g.node}`));
      const path = entry && /(?:^|,)path=([^,]+)/.exec(entry)?.[1];
      if (!path) throw new Error(`directory mapping '${dirid}' has no path for node ${g.node}`);
      // expose-acl=1: Proxmox VE starts virtiofsd with POSIX ACLs (the guest then honours the host's ACL entries).
      virtiofs.push({ tag: dirid, path, acl: /(?:^|,)expose-acl=1(?:,|$)/.test(c) });
    }
    return { userData, virtiofs };
  }

  // ---------------------------------------------------------------------------------------------
  // Node-local commands (through the shims)

  async simCall(path: string, body: Record<string, unknown>): Promise<unknown> {
    if (path === '/sim/pct') {
      const args = body.args as string[];
      const [verb, id, ...rest] = args;
      const g = this.guests.get(Number(id));
      if (!g || g.kind !== 'lxc' || g.node !== this.localNode) return { code: 2, stdout: '', stderr: `Configuration file 'nodes/${this.localNode}/lxc/${id}.conf' does not exist\n` };
      this.record('PCT', `${verb} ${id}`, { args: rest }, 'root@pam');
      const fault = this.takeFault('PCT', `${verb} ${id}`) ?? this.takeFault('PCT', verb ?? '');
      if (fault) return { code: 1, stdout: '', stderr: (fault.message ?? 'injected failure') + '\n' };
      if (g.status !== 'running') return { code: 1, stdout: '', stderr: `CT ${id} not running\n` };
      if (verb === 'exec') {
        const argv = rest[0] === '--' ? rest.slice(1) : rest;
        const stdin = body.stdin ? Buffer.from(String(body.stdin), 'base64') : undefined;
        return this.backend.ctExec(g, argv, stdin);
      }
      if (verb === 'push') {
        const dest = rest[1]!;
        const pi = rest.indexOf('--perms');
        const mode = pi >= 0 ? parseInt(rest[pi + 1]!, 8) : 0o644;
        await this.backend.ctPush(g, Buffer.from(String(body.data), 'base64'), dest, mode);
        return { code: 0, stdout: '', stderr: '' };
      }
      return { code: 255, stdout: '', stderr: `unknown command 'pct ${verb}'\n` };
    }
    if (path === '/sim/qm') {
      // qm guest exec <vmid> [--pass-stdin 1] [--timeout N] -- <command...>: the result as qm prints it (JSON).
      const args = body.args as string[];
      if (args[0] !== 'guest' || args[1] !== 'exec') return { code: 255, stdout: '', stderr: `unknown command 'qm ${args.slice(0, 2).join(' ')}'\n` };
      const vmid = Number(args[2]);
      const dd = args.indexOf('--');
      const argv = dd >= 0 ? args.slice(dd + 1) : [];
      const opts = args.slice(3, dd >= 0 ? dd : undefined);
      const passStdin = opts.includes('--pass-stdin') && opts[opts.indexOf('--pass-stdin') + 1] === '1';
      this.record('QM', `guest exec ${vmid}`, { args: argv }, 'root@pam');
      let g: SimGuest;
      try { g = await this.agentGuest(this.localNode, vmid); } catch (e) { return { code: 255, stdout: '', stderr: (e as Error).message + '\n' }; }
      const fault = this.takeFault('AGENT', `${argv[0]} ${vmid}`) ?? this.takeFault('AGENT', argv[0] ?? '');
      const r = fault ? { code: 1, stdout: '', stderr: (fault.message ?? 'injected failure') + '\n' }
        : await this.backend.vmExec!(g, argv, passStdin && body.stdin ? Buffer.from(String(body.stdin), 'base64') : undefined);
      return { code: 0, stdout: JSON.stringify({ exitcode: r.code, exited: 1, ...(r.stdout ? { 'out-data': r.stdout } : {}), ...(r.stderr ? { 'err-data': r.stderr } : {}) }, null, 2) + '\n', stderr: '' };
    }
    if (path === '/sim/probe') {
      if (!this.backend.probe) return { ok: false, output: 'the backend has no fake probe' };
      return this.backend.probe(String(body.host), String(body.share), String(body.user), String(body.password));
    }
    if (path === '/sim/task') {
      const t = this.tasks.get(String(body.upid));
      return t ? { status: t.status, exitstatus: t.exitstatus, log: t.log } : undefined;
    }
    throw new HttpError(501, `no such simulator call ${path}`);
  }

  /** Shims for node-local commands: pvesh (API as root@pam), pct (exec/push), smbclient (fake probe). */
  private writeShims(): void {
    this.binDir = join(this.dir, 'bin');
    mkdirSync(this.binDir, { recursive: true });
    const conf = join(this.binDir, 'sim.json');
    writeFileSync(conf, JSON.stringify({ port: this.port, cert: this.certFile, secret: this.nodeSecret }), { mode: 0o600 });
    const common = `#!/usr/bin/env node
'use strict';
const fs = require('fs'); const https = require('https'); const path = require('path');
const C = JSON.parse(fs.readFileSync(path.join(__dirname, 'sim.json'), 'utf8'));
function call(method, p, body, headers) {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port: C.port, method, path: p, ca: fs.readFileSync(C.cert), checkServerIdentity: () => undefined,
      headers: Object.assign({ 'x-sim-node-root': C.secret }, headers || {}) }, (res) => {
      let d = ''; res.setEncoding('utf8'); res.on('data', (c) => d += c); res.on('end', () => resolve({ status: res.statusCode, reason: res.statusMessage, body: d }));
    });
    req.on('error', reject); req.end(body);
  });
}
function readStdin() { try { return fs.readFileSync(0); } catch { return Buffer.alloc(0); } }
`;
    const pvesh = common + `
(async () => {
  const [verb, apiPath, ...rest] = process.argv.slice(2);
  const method = { get: 'GET', ls: 'GET', create: 'POST', set: 'PUT', delete: 'DELETE' }[verb];
  if (!method) { process.stderr.write('unknown command pvesh ' + verb + '\\n'); process.exit(255); }
  const qs = new URLSearchParams();
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (a === '--output-format') { i++; continue; }
    if (a.startsWith('--')) { qs.append(a.slice(2), rest[i + 1]); i++; }
  }
  const body = method === 'POST' || method === 'PUT' ? qs.toString() : undefined;
  const url = '/api2/json' + apiPath + (body === undefined && [...qs].length ? '?' + qs.toString() : '');
  const r = await call(method, url, body, body !== undefined ? { 'content-type': 'application/x-www-form-urlencoded' } : {});
  let j = {}; try { j = JSON.parse(r.body); } catch {}
  if (r.status !== 200) {
    process.stderr.write(r.status + ' ' + (j.message || r.reason).trim() + '\\n');
    for (const [k, v] of Object.entries(j.errors || {})) process.stderr.write(k + ': ' + String(v).trim() + '\\n');
    process.exit(255);
  }
  // Like pvesh, wait for a worker task to finish and fail with its status.
  if (typeof j.data === 'string' && j.data.startsWith('UPID:')) {
    for (;;) {
      const t = JSON.parse((await call('POST', '/sim/task', JSON.stringify({ upid: j.data }))).body).data;
      if (t && t.status === 'stopped') {
        for (const l of t.log) process.stderr.write(l + '\\n');
        if (t.exitstatus !== 'OK') { process.stderr.write(t.exitstatus + '\\n'); process.exit(255); }
        break;
      }
      await new Promise((res) => setTimeout(res, 20));
    }
  }
  process.stdout.write(JSON.stringify(j.data === undefined ? null : j.data) + '\\n');
})().catch((e) => { process.stderr.write(String(e && e.message || e) + '\\n'); process.exit(255); });
`;
    const pct = common + `
(async () => {
  const args = process.argv.slice(2);
  const body = { args };
  if (args[0] === 'push') body.data = fs.readFileSync(args[2]).toString('base64');
  if (args[0] === 'exec') { const s = readStdin(); if (s.length) body.stdin = s.toString('base64'); }
  const r = await call('POST', '/sim/pct', JSON.stringify(body));
  const j = JSON.parse(r.body);
  if (r.status !== 200) { process.stderr.write((j.message || r.reason) + '\\n'); process.exit(255); }
  process.stdout.write(j.data.stdout || ''); process.stderr.write(j.data.stderr || '');
  process.exit(j.data.code);
})().catch((e) => { process.stderr.write(String(e && e.message || e) + '\\n'); process.exit(255); });
`;
    const qm = common + `
(async () => {
  const args = process.argv.slice(2);
  const body = { args };
  if (args.includes('--pass-stdin')) { const s = readStdin(); if (s.length) body.stdin = s.toString('base64'); }
  const r = await call('POST', '/sim/qm', JSON.stringify(body));
  const j = JSON.parse(r.body);
  if (r.status !== 200) { process.stderr.write((j.message || r.reason) + '\\n'); process.exit(255); }
  process.stdout.write(j.data.stdout || ''); process.stderr.write(j.data.stderr || '');
  process.exit(j.data.code);
})().catch((e) => { process.stderr.write(String(e && e.message || e) + '\\n'); process.exit(255); });
`;
    const smbclient = common + `
(async () => {
  const a = process.argv.slice(2);
  const unc = a.find((x) => x.startsWith('//')) || '';
  const [, host, share] = /^\\/\\/([^/]+)\\/(.+)$/.exec(unc) || [];
  let user = '', password = '';
  const ai = a.indexOf('-A');
  if (ai >= 0) for (const l of fs.readFileSync(a[ai + 1], 'utf8').split('\\n')) { const m = /^\\s*(username|password)\\s*=\\s*(.*)$/.exec(l); if (m) { if (m[1] === 'username') user = m[2]; else password = m[2]; } }
  const ui = a.indexOf('-U');
  if (ui >= 0) { const s = a[ui + 1]; const i = s.indexOf('%'); user = i >= 0 ? s.slice(0, i) : s; password = i >= 0 ? s.slice(i + 1) : ''; }
  const r = JSON.parse((await call('POST', '/sim/probe', JSON.stringify({ host, share, user, password }))).body).data;
  process.stdout.write(r.output + '\\n');
  process.exit(r.ok ? 0 : 1);
})().catch((e) => { process.stderr.write(String(e && e.message || e) + '\\n'); process.exit(1); });
`;
    for (const [name, text] of [['pvesh', pvesh], ['pct', pct], ['qm', qm], ['smbclient', smbclient]] as const) {
      const f = join(this.binDir, name);
      writeFileSync(f, text);
      chmodSync(f, 0o755);
    }
  }
}

export async function startPveSim(opts: SimOptions): Promise<PveSim> {
  const sim = new PveSim(opts);
  await sim.start();
  return sim;
}

export async function removeDir(dir: string): Promise<void> { await rm(dir, { recursive: true, force: true }); }
