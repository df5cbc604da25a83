/**
 * A stand-in of the Proxmox VE API for the daemon's authentication path: a small HTTPS server on
 * 127.0.0.1 that answers GET /api2/json/access/permissions?path=... for known tickets and tokens
 * with the caller's effective privileges on that path (ACLs propagate down the tree as in PVE;
 * root@pam holds every privilege), 401 for unknown credentials, and records every request with what
 * the real API would refuse in it, checked against the official schema
 * (../shared/pve-api/apidata.json): path, method, parameter names, types, enums, required ones.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:https';
import { join } from 'node:path';
import { pveCsrfToken } from '../../src/api/auth.ts';
import { ROOT } from './gateway.ts';

interface ApiNode { path: string; info?: Record<string, { parameters?: { properties?: Record<string, { type?: string; optional?: number; enum?: string[] }> } }>; children?: ApiNode[] }

const schema: ApiNode[] = JSON.parse(readFileSync(process.env.PVE_APIDATA ?? join(ROOT, '../shared/pve-api/apidata.json'), 'utf8'));
const flat: ApiNode[] = [];
(function walk(ns: ApiNode[]) { for (const n of ns) { flat.push(n); if (n.children) walk(n.children); } })(schema);

/** What the real API would refuse in a request (empty when it conforms to the schema). */
export function violations(method: string, url: URL): string[] {
  const path = url.pathname.replace(/^\/api2\/json/, '');
  const node = flat.find((n) => new RegExp('^' + n.path.replace(/\{[^}]+\}/g, '[^/]+') + '$').test(path));
  if (!node) return [`no such API path ${path}`];
  const info = node.info?.[method];
  if (!info) return [`${method} not allowed on ${node.path}`];
  const props = info.parameters?.properties ?? {};
  const out: string[] = [];
  for (const [k, v] of url.searchParams) {
    const p = props[k];
    if (!p) { out.push(`parameter ${k} not in schema`); continue; }
    if (p.type === 'integer' && !/^-?\d+$/.test(v)) out.push(`${k} must be an integer`);
    if (p.type === 'boolean' && !/^(0|1|true|false)$/.test(v)) out.push(`${k} must be a boolean`);
    if (p.enum && !p.enum.includes(v)) out.push(`${k} not in enum`);
  }
  const inPath = [...node.path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
  for (const [k, p] of Object.entries(props)) if (!p.optional && !inPath.includes(k) && !url.searchParams.has(k)) out.push(`missing ${k}`);
  return out;
}

/** Every privilege of Proxmox VE 8/9 that the gateway may ask about (root@pam holds them all). */
export const ALL_PRIVS = [
  'Datastore.Allocate', 'Datastore.AllocateSpace', 'Datastore.AllocateTemplate', 'Datastore.Audit', 'Mapping.Audit', 'Mapping.Modify', 'Mapping.Use',
  'Permissions.Modify', 'Pool.Allocate', 'Pool.Audit', 'SDN.Allocate', 'SDN.Audit', 'SDN.Use', 'Sys.AccessNetwork', 'Sys.Audit', 'Sys.Console',
  'Sys.Incoming', 'Sys.Modify', 'Sys.PowerMgmt', 'Sys.Syslog', 'User.Modify', 'VM.Allocate', 'VM.Audit', 'VM.Backup', 'VM.Clone', 'VM.Config.CDROM',
  'VM.Config.CPU', 'VM.Config.Cloudinit', 'VM.Config.Disk', 'VM.Config.HWType', 'VM.Config.Memory', 'VM.Config.Network', 'VM.Config.Options',
  'VM.Console', 'VM.GuestAgent.Audit', 'VM.Migrate', 'VM.PowerMgmt', 'VM.Snapshot', 'VM.Snapshot.Rollback',
];

export const WWW_KEY = '-----BEGIN RSA PRIVATE KEY-----\nnot-a-real-key-but-the-file-pve-reads\n-----END RSA PRIVATE KEY-----\n';

export interface Seen { method: string; url: string; auth: 'ticket' | 'token' | 'none'; problems: string[] }

export interface PveStandin {
  url: string;
  /** The stand-in's certificate (the daemon's pve_ca) and PVE's CSRF key file (pve_www_key). */
  caFile: string;
  wwwKeyFile: string;
  seen: Seen[];
  /** A ticket for user as POST /access/ticket would have issued it ageSeconds ago. */
  issue: (user: string, ageSeconds?: number) => string;
  close: () => void;
}

/** PVE's ticket lifetime: older tickets are refused (401). */
export const TICKET_LIFETIME = 7200;

/** A ticket as PVE makes them (the stand-in knows it by its text). */
export const ticket = (user: string) => `PVE:${user}:6A000000::c2lnbmF0dXJlLWZyb20tcHZl`;

/** Headers of a request with a ticket, and the CSRF prevention token for writes. */
export function withTicket(user: string, csrf: boolean | string = false): Record<string, string> {
  const token = csrf === true ? pveCsrfToken(WWW_KEY, user, Math.floor(Date.now() / 1000)) : csrf || undefined;
  return { cookie: `PVEAuthCookie=${encodeURIComponent(ticket(user))}`, ...(token ? { csrfpreventiontoken: token } : {}) };
}

/**
 * acl: user (user@realm, or a token id user@realm!name) -> ACL path -> privileges granted there
 * (propagating to the paths below). tokens: token id -> secret.
 */
export async function startPveStandin(dir: string, acl: Record<string, Record<string, string[]>>, tokens: Record<string, string> = {}, passwords: Record<string, string> = {}): Promise<PveStandin> {
  const caFile = join(dir, 'pve.pem');
  const keyFile = join(dir, 'pve.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=pve-standin',
    '-keyout', keyFile, '-out', caFile], { stdio: 'ignore' });
  const wwwKeyFile = join(dir, 'pve-www.key');
  await writeFile(wwwKeyFile, WWW_KEY, { mode: 0o600 });
  const seen: Seen[] = [];
  const effective = (user: string, path: string): string[] => {
    if (user === 'root@pam') return ALL_PRIVS;
    const out = new Set<string>();
    const parts = path.split('/').filter(Boolean);
    for (let i = 0; i <= parts.length; i++) for (const p of acl[user]?.['/' + parts.slice(0, i).join('/')] ?? []) out.add(p);
    return [...out];
  };
  // Tickets POST /access/ticket issued: ticket -> user (valid for TICKET_LIFETIME after the time in it).
  const issued = new Map<string, string>();
  const issue = (user: string, ageSeconds = 0) => {
    const t = `PVE:${user}:${(Math.floor(Date.now() / 1000) - ageSeconds).toString(16).toUpperCase().padStart(8, '0')}::${randomBytes(24).toString('base64')}`;
    issued.set(t, user);
    return t;
  };
  const fresh = (t: string) => Math.floor(Date.now() / 1000) - parseInt(t.split(':')[2] ?? '0', 16) < TICKET_LIFETIME;
  const server = createServer({ cert: await readFile(caFile), key: await readFile(keyFile) }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://localhost');
    if (req.method === 'POST' && url.pathname === '/api2/json/access/ticket') {
      let text = '';
      req.on('data', (c: Buffer) => { text += c.toString('utf8'); });
      req.on('end', () => {
        // Checked as the real API checks its parameters (form body as if it were the query).
        const form = new URLSearchParams(req.headers['content-type']?.includes('json') ? '' : text);
        const asQuery = new URL(url.pathname + '?' + form.toString(), 'https://localhost');
        seen.push({ method: 'POST', url: url.pathname, auth: 'none', problems: [...violations('POST', asQuery), ...(req.headers['content-type']?.startsWith('application/x-www-form-urlencoded') ? [] : ['body is not form-encoded'])] });
        res.setHeader('content-type', 'application/json;charset=UTF-8');
        let user = form.get('username') ?? '';
        const realm = form.get('realm');
        if (realm && !user.includes('@')) user = `${user}@${realm}`;
        const pw = form.get('password') ?? '';
        // A password, or a ticket of the same user still valid (how PVE's GUI renews its ticket).
        const ok = (passwords[user] !== undefined && passwords[user] === pw) || (issued.get(pw) === user && fresh(pw));
        if (!ok) { res.statusCode = 401; res.end('{"data":null}'); return; }
        const t = issue(user);
        res.end(JSON.stringify({ data: { username: user, ticket: t, CSRFPreventionToken: pveCsrfToken(WWW_KEY, user, Math.floor(Date.now() / 1000)), cap: {} } }));
      });
      return;
    }
    const cookie = /PVEAuthCookie=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
    const tokenHdr = /^PVEAPIToken=([^=]+)=(.+)$/.exec(req.headers.authorization ?? '');
    seen.push({ method: req.method!, url: url.pathname + url.search, auth: cookie ? 'ticket' : tokenHdr ? 'token' : 'none', problems: violations(req.method!, url) });
    let user: string | undefined;
    if (cookie) {
      const tk = decodeURIComponent(cookie);
      user = [...Object.keys(acl), 'root@pam'].find((u) => !u.includes('!') && ticket(u) === tk);
      if (!user && issued.has(tk) && fresh(tk)) user = issued.get(tk);
    }
    if (tokenHdr && tokens[tokenHdr[1]!] === tokenHdr[2]) user = tokenHdr[1];
    res.setHeader('content-type', 'application/json;charset=UTF-8');
    if (!user) { res.statusCode = 401; res.end('{"data":null}'); return; }
    if (url.pathname !== '/api2/json/access/permissions') { res.statusCode = 501; res.end('{"data":null}'); return; }
    const p = url.searchParams.get('path') ?? '/';
    res.end(JSON.stringify({ data: { [p]: Object.fromEntries(effective(user, p).map((x) => [x, 1])) } }));
  });
  const port = await new Promise<number>((r) => server.listen(0, '127.0.0.1', () => r((server.address() as { port: number }).port)));
  return { url: `https://127.0.0.1:${port}`, caFile, wwwKeyFile, seen, issue, close: () => { server.closeAllConnections(); server.close(); } };
}
