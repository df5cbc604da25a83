/**
 * The Proxmox VE authentication path, against a stand-in of the PVE API: a small HTTPS server that
 * answers GET /api2/json/access/permissions for known tickets and tokens, and checks every request
 * the daemon sends against the official API schema (../shared/pve-api/apidata.json): path, method,
 * parameter names, types, enums and required parameters.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pveCsrfToken, verifyPveCsrf } from '../src/api/auth.ts';
import { startDaemon, type Daemon } from '../src/api/daemon.ts';
import { ROOT, startGateway, type TestGateway } from './helpers/gateway.ts';
import { call } from './helpers/https.ts';

interface ApiNode { path: string; info?: Record<string, { parameters?: { properties?: Record<string, { type?: string; optional?: number; enum?: string[] }> } }>; children?: ApiNode[] }

const schema: ApiNode[] = JSON.parse(readFileSync(join(ROOT, '../shared/pve-api/apidata.json'), 'utf8'));
const flat: ApiNode[] = [];
(function walk(ns: ApiNode[]) { for (const n of ns) { flat.push(n); if (n.children) walk(n.children); } })(schema);

/** What the real API would refuse in a request (empty when it conforms to the schema). */
function violations(method: string, url: URL): string[] {
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

const WWW_KEY = '-----BEGIN RSA PRIVATE KEY-----\nnot-a-real-key-but-the-file-pve-reads\n-----END RSA PRIVATE KEY-----\n';
const PERMS: Record<string, Record<string, Record<string, number>>> = {
  'alice@pve': { '/storage': { 'Datastore.Audit': 1 } },
  'bob@pve': { '/storage': {} },
  'carol@pve': { '/storage': { 'Datastore.Allocate': 1, 'Datastore.Audit': 1 } },
  'root@pam!monitor': { '/storage': { 'Datastore.Allocate': 1 } },
};
const ticket = (user: string) => `PVE:${user}:6A000000::c2lnbmF0dXJlLWZyb20tcHZl`;
const TOKEN_SECRET = '5f1e3c0a-1111-4222-8333-944455556666';

let t: TestGateway;
let d: Daemon;
let dir: string;
let standin: Server;
let ca: Buffer;
const seen: { method: string; url: string; auth: string; problems: string[] }[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'smbgw-pve-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=pve-standin',
    '-keyout', join(dir, 'pve.key'), '-out', join(dir, 'pve.pem')], { stdio: 'ignore' });
  await writeFile(join(dir, 'pve-www.key'), WWW_KEY, { mode: 0o600 });
  standin = createServer({ cert: await readFile(join(dir, 'pve.pem')), key: await readFile(join(dir, 'pve.key')) }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://localhost');
    const cookie = /PVEAuthCookie=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
    const tokenHdr = /^PVEAPIToken=([^=]+)=(.+)$/.exec(req.headers.authorization ?? '');
    seen.push({ method: req.method!, url: url.pathname + url.search, auth: cookie ? 'ticket' : tokenHdr ? 'token' : 'none', problems: violations(req.method!, url) });
    let user: string | undefined;
    if (cookie) { const tk = decodeURIComponent(cookie); user = Object.keys(PERMS).find((u) => ticket(u) === tk); }
    if (tokenHdr && tokenHdr[2] === TOKEN_SECRET) user = Object.keys(PERMS).includes(tokenHdr[1]!) ? tokenHdr[1] : undefined;
    res.setHeader('content-type', 'application/json;charset=UTF-8');
    if (!user) { res.statusCode = 401; res.end('{"data":null}'); return; }
    if (url.pathname !== '/api2/json/access/permissions') { res.statusCode = 501; res.end('{"data":null}'); return; }
    const p = url.searchParams.get('path');
    res.end(JSON.stringify({ data: p ? { [p]: PERMS[user]![p] ?? {} } : PERMS[user] }));
  });
  const port = await new Promise<number>((r) => standin.listen(0, '127.0.0.1', () => r((standin.address() as { port: number }).port)));
  t = await startGateway();
  const u = t.user('p');
  const pwf = join(t.dir, 'pw');
  await writeFile(pwf, 'Pve-auth-pass1\n', { mode: 0o600 });
  const c = await t.cli(['create', 'pveshare', '--mode', 'native', '--path', join(t.storage, 'pveshare'), '--user', u, '--password-file', pwf, '--json']);
  assert.equal(c.json?.success, true, c.stdout + c.stderr);
  d = await startDaemon({
    settings: t.settings,
    config: { listen: '127.0.0.1', port: 0, interval: 3600, tick: 3600, pve_api: `https://127.0.0.1:${port}`, pve_ca: join(dir, 'pve.pem'), pve_www_key: join(dir, 'pve-www.key') },
  });
  ca = await readFile(join(t.settings.stateDir, 'tls', 'smbgatewayd.pem'));
});

after(async () => {
  await d?.stop();
  standin?.close();
  await t?.cleanup();
  await rm(dir, { recursive: true, force: true });
});

const LIST = '/api2/json/nodes/testnode/smbgateway';
const SHARE = '/api2/json/nodes/testnode/smbgateway/pveshare';
const withTicket = (user: string, csrf?: string) => ({ cookie: `PVEAuthCookie=${encodeURIComponent(ticket(user))}`, ...(csrf ? { csrfpreventiontoken: csrf } : {}) });

test('a PVE ticket is checked with the PVE API: valid with Datastore.Audit 200, without 403, unknown 401', async () => {
  const ok = await call(d.api.url, ca, 'GET', LIST, { headers: withTicket('alice@pve') });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.json.data[0].sharename, 'pveshare');
  assert.equal((await call(d.api.url, ca, 'GET', LIST, { headers: withTicket('bob@pve') })).status, 403);
  assert.equal((await call(d.api.url, ca, 'GET', LIST, { headers: withTicket('mallory@pve') })).status, 401);
  assert.equal((await call(d.api.url, ca, 'GET', LIST, { headers: { cookie: 'PVEAuthCookie=garbage' } })).status, 401);
});

test('writes with a ticket need a valid CSRF prevention token, then the privilege Proxmox asks for (Datastore.Allocate)', async () => {
  const body = { comment: 'set with a PVE ticket' };
  const noCsrf = await call(d.api.url, ca, 'PUT', SHARE, { headers: withTicket('carol@pve'), body });
  assert.equal(noCsrf.status, 401);
  assert.match(noCsrf.json.message, /invalid csrf token/);
  const now = Math.floor(Date.now() / 1000);
  const forged = await call(d.api.url, ca, 'PUT', SHARE, { headers: withTicket('carol@pve', pveCsrfToken('another key', 'carol@pve', now)), body });
  assert.equal(forged.status, 401);
  const otherUser = await call(d.api.url, ca, 'PUT', SHARE, { headers: withTicket('carol@pve', pveCsrfToken(WWW_KEY, 'alice@pve', now)), body });
  assert.equal(otherUser.status, 401, 'a CSRF token is bound to its user');
  const audit = await call(d.api.url, ca, 'PUT', SHARE, { headers: withTicket('alice@pve', pveCsrfToken(WWW_KEY, 'alice@pve', now)), body });
  assert.equal(audit.status, 403);
  const ok = await call(d.api.url, ca, 'PUT', SHARE, { headers: withTicket('carol@pve', pveCsrfToken(WWW_KEY, 'carol@pve', now)), body });
  assert.equal(ok.status, 200, ok.text);
  assert.match(ok.json.data, /^UPID:testnode:.*:update:pveshare:carol@pve:$/);
  assert.equal((await d.api.tasks.wait(ok.json.data)).exitstatus, 'OK');
  const shown = await call(d.api.url, ca, 'GET', SHARE, { headers: withTicket('alice@pve') });
  assert.equal(shown.json.data.comment, 'set with a PVE ticket');
});

test('CSRF tokens expire as PVE\'s do (older than 2 h, or more than 5 min ahead)', () => {
  const now = 1_800_000_000;
  assert.equal(verifyPveCsrf(WWW_KEY, 'a@pve', pveCsrfToken(WWW_KEY, 'a@pve', now - 60), now), true);
  assert.equal(verifyPveCsrf(WWW_KEY, 'a@pve', pveCsrfToken(WWW_KEY, 'a@pve', now - 7300), now), false);
  assert.equal(verifyPveCsrf(WWW_KEY, 'a@pve', pveCsrfToken(WWW_KEY, 'a@pve', now + 600), now), false);
  assert.match(pveCsrfToken(WWW_KEY, 'a@pve', now), /^[0-9A-F]{8}:[A-Za-z0-9+/]{43}$/);
});

test('a PVE API token is checked with the PVE API too (no CSRF needed); a wrong secret is 401', async () => {
  const hdr = { authorization: `PVEAPIToken=root@pam!monitor=${TOKEN_SECRET}` };
  const ok = await call(d.api.url, ca, 'PUT', SHARE, { headers: hdr, body: { monitoring_enabled: 0 } });
  assert.equal(ok.status, 200, ok.text);
  assert.equal((await d.api.tasks.wait(ok.json.data)).exitstatus, 'OK');
  const bad = await call(d.api.url, ca, 'GET', LIST, { headers: { authorization: 'PVEAPIToken=root@pam!monitor=00000000-0000-4000-8000-000000000000' } });
  assert.equal(bad.status, 401);
});

test('every request sent to the PVE API conforms to its schema', () => {
  assert.ok(seen.length >= 5, `requests seen: ${seen.length}`);
  assert.ok(seen.some((s) => s.auth === 'ticket') && seen.some((s) => s.auth === 'token'));
  for (const s of seen) {
    assert.deepEqual(s.problems, [], `${s.method} ${s.url}`);
    assert.equal(s.method, 'GET');
    assert.equal(s.url, '/api2/json/access/permissions?path=%2Fstorage');
  }
});
