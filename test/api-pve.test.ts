/**
 * The Proxmox VE authentication path, against a stand-in of the PVE API: a small HTTPS server that
 * answers GET /api2/json/access/permissions for known tickets and tokens, and checks every request
 * the daemon sends against the official API schema (test/helpers/pvestandin.ts): path, method,
 * parameter names, types, enums and required parameters.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pveCsrfToken, verifyPveCsrf } from '../src/api/auth.ts';
import { startDaemon, type Daemon } from '../src/api/daemon.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';
import { call } from './helpers/https.ts';
import { startPveStandin, ticket, WWW_KEY, type PveStandin } from './helpers/pvestandin.ts';

const TOKEN_SECRET = '5f1e3c0a-1111-4222-8333-944455556666';

let t: TestGateway;
let d: Daemon;
let dir: string;
let standin: PveStandin;
let ca: Buffer;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'smbgw-pve-'));
  standin = await startPveStandin(dir, {
    'alice@pve': { '/storage': ['Datastore.Audit'] },
    'bob@pve': { '/storage': [] },
    'carol@pve': { '/storage': ['Datastore.Allocate', 'Datastore.Audit'] },
    'root@pam!monitor': { '/storage': ['Datastore.Allocate'] },
  }, { 'root@pam!monitor': TOKEN_SECRET });
  t = await startGateway();
  const u = t.user('p');
  const pwf = join(t.dir, 'pw');
  await writeFile(pwf, 'Pve-auth-pass1\n', { mode: 0o600 });
  const c = await t.cli(['create', 'pveshare', '--mode', 'native', '--path', join(t.storage, 'pveshare'), '--user', u, '--password-file', pwf, '--json']);
  assert.equal(c.json?.success, true, c.stdout + c.stderr);
  d = await startDaemon({
    settings: t.settings,
    config: { listen: '127.0.0.1', port: 0, interval: 3600, tick: 3600, pve_api: standin.url, pve_ca: standin.caFile, pve_www_key: standin.wwwKeyFile },
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
  const seen = standin.seen;
  assert.ok(seen.length >= 5, `requests seen: ${seen.length}`);
  assert.ok(seen.some((s) => s.auth === 'ticket') && seen.some((s) => s.auth === 'token'));
  for (const s of seen) {
    assert.deepEqual(s.problems, [], `${s.method} ${s.url}`);
    assert.equal(s.method, 'GET');
    assert.equal(s.url, '/api2/json/access/permissions?path=%2Fstorage');
  }
});
