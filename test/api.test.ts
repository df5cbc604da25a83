/**
 * The REST API of pve-smbgatewayd on a host without Proxmox VE (gateway tokens), against a real
 * sandboxed smbd: authentication and privileges, Proxmox-style errors, tasks (polling and SSE),
 * share create/show/update/delete, metrics history, Prometheus text, OpenAPI, forwarding to another
 * node's daemon, and the CLI's token and metrics commands.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startDaemon, type Daemon } from '../src/api/daemon.ts';
import { fingerprintOf } from '../src/pve/tls.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';
import { call, type Reply } from './helpers/https.ts';

const PW = 'Api-test-pass1';
let t: TestGateway;
let d: Daemon;
let ca: Buffer;
let user: string;
const tok: Record<string, string> = {};

const api = (method: string, path: string, o: { token?: string; body?: unknown; form?: string; headers?: Record<string, string> } = {}) =>
  call(d.api.url, ca, method, path, { ...o, headers: { ...(o.token ? { authorization: o.token } : {}), ...(o.headers ?? {}) } });

async function waitTask(upid: string, token = tok.admin!): Promise<Reply> {
  for (const end = Date.now() + 60_000; Date.now() < end;) {
    const r = await api('GET', `/api2/json/nodes/testnode/tasks/${encodeURIComponent(upid)}/status`, { token });
    assert.equal(r.status, 200, r.text);
    if (r.json.data.status === 'stopped') return r;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`task ${upid} did not end`);
}

before(async () => {
  t = await startGateway();
  user = t.user('u');
  const pwf = join(t.dir, 'pw');
  await writeFile(pwf, PW + '\n', { mode: 0o600 });
  const r = await t.cli(['create', 'apishare', '--mode', 'native', '--path', join(t.storage, 'apishare'), '--user', user, '--password-file', pwf, '--json']);
  assert.equal(r.json?.success, true, r.stdout + r.stderr);
  for (const [name, privs] of [['audit', 'Datastore.Audit'], ['admin', 'Datastore.Allocate,Datastore.Audit'], ['sys', 'Sys.Audit']] as const) {
    const c = await t.cli(['token', 'create', name, '--privs', privs, '--json']);
    assert.equal(c.json?.success, true, c.stdout + c.stderr);
    tok[name] = c.json!.data.authorization;
  }
  d = await startDaemon({ settings: t.settings, config: { listen: '127.0.0.1', port: 0, interval: 1, tick: 0.2 } });
  ca = await readFile(join(t.settings.stateDir, 'tls', 'smbgatewayd.pem'));
});

after(async () => {
  await d?.stop();
  await t?.cleanup();
});

test('no credentials, a wrong secret or an unknown token: 401; a token without the privilege: 403; the right one: 200', async () => {
  const list = '/api2/json/nodes/testnode/smbgateway';
  const none = await api('GET', list);
  assert.equal(none.status, 401);
  assert.match(none.json.message, /no credentials/);
  assert.equal((await api('GET', '/metrics')).status, 401);
  assert.equal((await api('GET', list, { token: tok.audit!.replace(/=[^=]+$/, '=00000000-0000-0000-0000-000000000000') })).status, 401);
  assert.equal((await api('GET', list, { token: 'PVEAPIToken=smbgateway!nosuch=abc' })).status, 401);
  const sys = await api('GET', list, { token: tok.sys });
  assert.equal(sys.status, 403);
  assert.match(sys.json.message, /Permission check failed/);
  const ok = await api('GET', list, { token: tok.audit });
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.json.data.map((s: { sharename: string }) => s.sharename), ['apishare']);
  // Reading is not enough to create.
  const denied = await api('POST', list, { token: tok.audit, body: { sharename: 'x1', mode: 'native', path: join(t.storage, 'x1'), users: [user] } });
  assert.equal(denied.status, 403);
  // Prometheus' form of the header (type, space, credentials) works too.
  assert.equal((await api('GET', '/metrics', { token: tok.audit!.replace('PVEAPIToken=', 'PVEAPIToken ') })).status, 200);
});

test('bad parameters: 400 with a message per field, and nothing changes', async () => {
  const r = await api('POST', '/api2/json/nodes/testnode/smbgateway', {
    token: tok.admin, body: { sharename: 'bad/name', mode: 'floppy', quota: 'lots', bogus: 1, password_file: '/etc/shadow' },
  });
  assert.equal(r.status, 400);
  assert.equal(r.json.data, null);
  assert.match(r.json.errors.sharename, /must not contain the character "\/"/);
  assert.match(r.json.errors.mode, /must be one of native, lxc, vm/);
  assert.match(r.json.errors.quota, /positive size/);
  assert.match(r.json.errors.bogus, /not defined in schema/);
  assert.match(r.json.errors.password_file, /not defined in schema/, 'files are read by the CLI, never by the daemon');
  assert.match(r.json.errors.path, /missing and it is not optional/);
  const m = await api('GET', '/api2/json/nodes/testnode/smbgateway/apishare/metrics?timeframe=decade&cf=MIN', { token: tok.audit });
  assert.equal(m.status, 400);
  assert.match(m.json.errors.timeframe, /must be one of hour, day, week, month, year/);
  assert.match(m.json.errors.cf, /must be one of AVERAGE, MAX/);
  assert.equal((await api('GET', '/api2/json/nodes/testnode/smbgateway/nosuch/metrics', { token: tok.audit })).status, 404);
  assert.equal((await api('GET', '/api2/json/nodes/bad_node!/smbgateway', { token: tok.audit })).status, 400);
  assert.equal((await api('PATCH', '/api2/json/nodes/testnode/smbgateway', { token: tok.audit })).status, 501);
  const list = await api('GET', '/api2/json/nodes/testnode/smbgateway', { token: tok.audit });
  assert.equal(list.json.data.length, 1);
});

test('create, update and delete run as tasks; the log can be polled or followed as server-sent events', async () => {
  const created = await api('POST', '/api2/json/nodes/testnode/smbgateway', {
    token: tok.admin,
    form: new URLSearchParams({ sharename: 'viaapi', mode: 'native', path: join(t.storage, 'viaapi'), users: user, comment: 'made over REST' }).toString(),
  });
  assert.equal(created.status, 200, created.text);
  const upid = created.json.data as string;
  assert.match(upid, /^UPID:testnode:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:create:viaapi:smbgateway!admin:$/);
  // Follow the log as server-sent events until the end event.
  const sse = await api('GET', `/api2/json/nodes/testnode/tasks/${encodeURIComponent(upid)}/log`, { token: tok.audit, headers: { accept: 'text/event-stream' } });
  assert.equal(sse.status, 200);
  assert.match(String(sse.headers['content-type']), /text\/event-stream/);
  assert.match(sse.text, /data: \{"n":1,"t":"step /);
  assert.match(sse.text, /event: end\ndata: \{.*"exitstatus":"OK"/);
  const st = await waitTask(upid);
  assert.equal(st.json.data.exitstatus, 'OK');
  assert.equal(st.json.data.result.share.sharename, 'viaapi');
  const log = await api('GET', `/api2/json/nodes/testnode/tasks/${encodeURIComponent(upid)}/log?start=0&limit=3`, { token: tok.audit });
  assert.equal(log.json.data.length, 3);
  assert.deepEqual(Object.keys(log.json.data[0]), ['n', 't']);
  // The user (already a Samba account) reaches the new share over SMB.
  const smb = await t.smb('viaapi', user, PW, 'ls');
  assert.equal(smb.code, 0, smb.stdout + smb.stderr);

  const upd = await api('PUT', '/api2/json/nodes/testnode/smbgateway/viaapi', { token: tok.admin, body: { comment: 'changed over REST', read_only: 1 } });
  assert.equal(upd.status, 200, upd.text);
  assert.equal((await waitTask(upd.json.data)).json.data.exitstatus, 'OK');
  const shown = await api('GET', '/api2/json/nodes/testnode/smbgateway/viaapi', { token: tok.audit });
  assert.equal(shown.json.data.comment, 'changed over REST');
  assert.equal(shown.json.data.read_only, true);
  const conf = await readFile(t.settings.managedConf, 'utf8');
  assert.match(conf, /\[viaapi\]\n(   .*\n)*   comment = changed over REST/);
  const put = await t.smb('viaapi', user, PW, `put ${join(t.dir, 'pw')} x`);
  assert.match(put.stdout + put.stderr, /ACCESS_DENIED/, 'read_only reached smbd');
  const badUpd = await api('PUT', '/api2/json/nodes/testnode/smbgateway/viaapi', { token: tok.admin, body: { path: '/elsewhere' } });
  assert.equal(badUpd.status, 400);
  assert.match(badUpd.json.errors.path, /not defined in schema/);

  const del = await api('DELETE', '/api2/json/nodes/testnode/smbgateway/viaapi', { token: tok.admin });
  assert.equal((await waitTask(del.json.data)).json.data.exitstatus, 'OK');
  assert.equal((await api('GET', '/api2/json/nodes/testnode/smbgateway/viaapi', { token: tok.audit })).status, 404);
  // A failing task reports its error as its exit status.
  const again = await api('DELETE', '/api2/json/nodes/testnode/smbgateway/viaapi', { token: tok.admin });
  const failed = await waitTask(again.json.data);
  assert.match(failed.json.data.exitstatus, /does not exist/);
  assert.equal(failed.json.data.error.code, 'not_found');
});

test('metrics: the history as rrddata, the CLI table/json/watch, and the Prometheus text (promtool-clean)', async () => {
  const s = await t.smb('apishare', user, PW, `put ${join(t.dir, 'pw')} f`);
  assert.equal(s.code, 0, s.stdout + s.stderr);
  for (const end = Date.now() + 15_000; d.collector.stats.cycles < 3; ) {
    assert.ok(Date.now() < end, 'collector did not run');
    await new Promise((r) => setTimeout(r, 200));
  }
  const r = await api('GET', '/api2/json/nodes/testnode/smbgateway/apishare/metrics?timeframe=hour&cf=AVERAGE', { token: tok.audit });
  assert.equal(r.status, 200);
  const pts = r.json.data as Record<string, number | null>[];
  assert.ok(pts.length >= 2, `samples ${pts.length}`);
  assert.deepEqual(Object.keys(pts[0]!), ['time', 'throughput_read', 'throughput_write', 'iops_read', 'iops_write', 'connections', 'errors', 'storage_used', 'storage_total']);
  assert.ok(pts.every((p, i) => i === 0 || p.time! >= pts[i - 1]!.time!));
  assert.ok(pts.at(-1)!.storage_total! > 0);
  assert.ok(pts.at(-1)!.time! > Date.now() / 1000 - 30);

  const cli = await t.cli(['metrics', 'apishare', '--json']);
  assert.equal(cli.json?.success, true, cli.stdout + cli.stderr);
  assert.ok(cli.json!.data.length >= 2);
  const table = await t.cli(['metrics', 'apishare', '--timeframe', 'day', '--cf', 'MAX']);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /TIME \(UTC\)\s+READ\s+WRITE\s+R-IOPS\s+W-IOPS\s+CONN\s+ERRORS\s+STORAGE/);
  const watch = await t.cli(['metrics', 'apishare', '--watch', '--json'], { env: { SMBGW_WATCH_ROUNDS: '2', SMBGW_WATCH_SECONDS: '0.3' } });
  const lines = watch.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 2);
  assert.ok(lines.every((l) => l.success && Array.isArray(l.data)));
  const bad = await t.cli(['metrics', 'apishare', '--timeframe', 'decade', '--json']);
  assert.equal(bad.code, 2);
  assert.equal(bad.json?.error?.field, 'timeframe');

  const prom = await api('GET', '/metrics', { token: tok.audit });
  assert.equal(prom.status, 200);
  assert.match(String(prom.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  assert.match(prom.text, /^smbgateway_written_bytes_total\{share="apishare",node="testnode",mode="native"\} \d+$/m);
  assert.match(prom.text, /^smbgateway_storage_size_bytes\{share="apishare",node="testnode",mode="native"\} \d+$/m);
  const check = spawnSync('promtool', ['check', 'metrics'], { input: prom.text, encoding: 'utf8' });
  assert.equal(check.stdout + check.stderr, '');
  assert.equal(check.status, 0);
});

test('the OpenAPI document is generated from the declarations', async () => {
  const r = await api('GET', '/api2/json/smbgateway/openapi', { token: tok.sys });
  assert.equal(r.status, 200);
  const doc = r.json.data;
  assert.equal(doc.openapi, '3.0.3');
  const m = doc.paths['/api2/json/nodes/{node}/smbgateway/{sharename}/metrics'].get;
  assert.deepEqual(m.parameters.find((p: { name: string }) => p.name === 'timeframe').schema.enum, ['hour', 'day', 'week', 'month', 'year']);
  assert.equal(m.parameters.find((p: { name: string }) => p.name === 'watch'), undefined, 'CLI-only parameters are not in the API');
  // A privilege computed from the call is shown as its rule, a static one as {path, privs}.
  assert.match(m['x-privilege'].description, /^Datastore\.Audit or Datastore\.Allocate on \/storage\/<storage holding the share's path> \(else \/storage\)$/);
  assert.match(m.description, /Privileges: Datastore\.Audit or Datastore\.Allocate on \/storage\/</);
  assert.deepEqual(doc.paths['/api2/json/nodes/{node}/smbgateway'].get['x-privilege'], { path: '/storage', privs: ['Datastore.Audit', 'Datastore.Allocate'] });
  assert.match(doc.paths['/api2/json/nodes/{node}/smbgateway/migrate'].post['x-privilege'].description, /^Datastore\.Allocate on \/storage, and Sys\.Modify on \/$/);
  const create = doc.paths['/api2/json/nodes/{node}/smbgateway'].post;
  assert.equal(create['x-async-task'], true);
  assert.ok(create.requestBody.content['application/json'].schema.required.includes('path'));
  assert.ok(doc.paths['/api2/json/nodes/{node}/smbgateway/{sharename}'].put);
  const log = doc.paths['/api2/json/nodes/{node}/tasks/{upid}/log'].get;
  assert.ok(log.responses[200].content['text/event-stream'], 'the event stream is declared');
  // /metrics is declared too (Prometheus text at the root), and every operation says what it returns.
  assert.deepEqual(Object.keys(doc.paths['/metrics'].get.responses[200].content), ['text/plain; version=0.0.4; charset=utf-8']);
  for (const [path, methods] of Object.entries(doc.paths as Record<string, Record<string, { responses: Record<string, { content: Record<string, { schema: { properties?: { data?: object } } }> }> }>>)) {
    for (const [method, o] of Object.entries(methods)) {
      const c = Object.values(o.responses[200]!.content)[0]!.schema;
      assert.ok(path === '/metrics' || Object.keys(c.properties?.data ?? {}).length, `${method} ${path} declares no result`);
    }
  }
  assert.equal((await api('GET', '/api2/json/smbgateway/openapi')).status, 401);
});

test('tokens: stored hashed, listed without secrets, deleted tokens stop working', async () => {
  const file = await readFile(join(t.settings.storeDir, 'priv', 'api-tokens.json'), 'utf8');
  for (const v of Object.values(tok)) assert.ok(!file.includes(v.split('=').pop()!), 'no secret in the token file');
  const list = await t.cli(['token', 'list', '--json']);
  assert.deepEqual(list.json!.data.map((x: { tokenid: string }) => x.tokenid).sort(), ['smbgateway!admin', 'smbgateway!audit', 'smbgateway!sys']);
  assert.ok(!JSON.stringify(list.json).includes('hash'));
  const c = await t.cli(['token', 'create', 'shortlived', '--json']);
  const header = c.json!.data.authorization as string;
  assert.equal((await t.cli(['token', 'create', 'shortlived', '--json'])).json?.error?.code, 'exists');
  assert.equal((await t.cli(['token', 'delete', 'smbgateway!shortlived'])).code, 0);
  assert.equal((await api('GET', '/api2/json/nodes/testnode/smbgateway', { token: header })).status, 401);
  assert.equal((await t.cli(['token', 'create', 'xx', '--privs', 'Root.All', '--json'])).json?.error?.field, 'privs');
  // Managing tokens over the API needs Permissions.Modify.
  assert.equal((await api('GET', '/api2/json/access/smbgateway/tokens', { token: tok.admin })).status, 403);
});

test('a request naming another node is forwarded to that node\'s daemon, whose certificate is pinned', async (t2) => {
  const other = await startDaemon({
    settings: { ...t.settings, node: 'othernode', stateDir: join(t.dir, 'state-other') },
    config: { listen: '127.0.0.1', port: 0, interval: 3600, tick: 3600 },
  });
  t2.after(() => other.stop());
  const otherCert = await readFile(join(t.dir, 'state-other', 'tls', 'smbgatewayd.pem'));
  d.config.peers.othernode = { url: other.api.url, fingerprint: fingerprintOf(otherCert) };
  t2.after(() => { delete d.config.peers.othernode; });
  const r = await api('PUT', '/api2/json/nodes/othernode/smbgateway/apishare', { token: tok.admin, body: { comment: 'set via a forwarded request' } });
  assert.equal(r.status, 200, r.text);
  assert.match(r.json.data, /^UPID:othernode:/);
  const here = await api('GET', `/api2/json/nodes/testnode/tasks/${encodeURIComponent(r.json.data)}/status`, { token: tok.audit });
  assert.equal(here.status, 404, 'the task lives on the other node, not here');
  assert.match(here.json.message, /no such task UPID:othernode:/);
  for (const end = Date.now() + 30_000; ;) {
    const s = await api('GET', `/api2/json/nodes/othernode/tasks/${encodeURIComponent(r.json.data)}/status`, { token: tok.audit });
    assert.equal(s.status, 200, s.text);
    if (s.json.data.status === 'stopped') { assert.equal(s.json.data.exitstatus, 'OK'); break; }
    assert.ok(Date.now() < end);
    await new Promise((res) => setTimeout(res, 100));
  }
  assert.equal((await api('GET', '/api2/json/nodes/othernode/smbgateway/apishare', { token: tok.audit })).json.data.comment, 'set via a forwarded request');
  assert.equal((await api('GET', '/api2/json/nodes/othernode/smbgateway', {})).status, 401, 'not relayed without credentials');
  assert.equal((await api('GET', '/api2/json/nodes/nosuchnode/smbgateway', { token: tok.audit })).json.errors.node, "no such cluster node 'nosuchnode'");
  d.config.peers.othernode = { url: other.api.url, fingerprint: 'AA:'.repeat(31) + 'AA' };
  const pinned = await api('GET', '/api2/json/nodes/othernode/smbgateway', { token: tok.audit });
  assert.equal(pinned.status, 502);
  assert.match(pinned.json.message, /^forwarding to node othernode failed: .* has fingerprint [0-9A-F:]{95}, not the pinned (AA:){31}AA: refusing to talk to it$/);
});
