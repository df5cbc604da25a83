/**
 * The Proxmox VE client against the simulator: token and ticket authentication (CSRF on writes), the
 * certificate pinned by fingerprint, Proxmox's errors passed on, tasks followed to their end (log on
 * failure, clear timeout), no second POST, the pvesh transport, the request log and permissions.
 */
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { execRunner } from '../src/core/exec.ts';
import { PveApi } from '../src/pve/api.ts';
import { ApiTransport, formEncode, parseTokenLine, parseUpid, PveClient, PveError, PveshTransport } from '../src/pve/client.ts';
import { startPveSim, type PveSim } from './pve-sim/sim.ts';

let sim: PveSim;
let dir: string;
let log: string;
let tokenSecret: string;
const TOKEN = 'smbgw@pve!client';

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'smbgw-pvec-'));
  log = join(dir, 'requests.jsonl');
  sim = await startPveSim({ dir: join(dir, 'sim'), log });
  tokenSecret = sim.addToken(TOKEN, [{ path: '/', privs: ['Sys.Audit'] }, { path: '/vms', privs: ['VM.Audit', 'VM.Allocate', 'VM.Config.Options', 'VM.PowerMgmt'] }, { path: '/storage', privs: ['Datastore.AllocateSpace', 'Datastore.Audit'] }]);
});
after(async () => { await sim?.stop(); await rm(dir, { recursive: true, force: true }); });

const token = () => new PveClient(new ApiTransport({ url: sim.url, fingerprint: sim.fingerprint, auth: { kind: 'token', tokenId: TOKEN, secret: tokenSecret } }));
const root = () => new PveClient(new ApiTransport({ url: sim.url, fingerprint: sim.fingerprint, auth: { kind: 'ticket', username: 'root@pam', password: sim.rootPassword } }));

function ctParams(vmid: number, extra: Record<string, string | number> = {}) {
  return { vmid, ostemplate: 'local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst', rootfs: 'local-zfs:2', net0: 'name=eth0,bridge=vmbr0,ip=dhcp', unprivileged: 1, ...extra };
}

test('token: {data} answers, form-encoded parameters, UPID tasks followed to the end', async () => {
  const c = token();
  const api = new PveApi(c);
  assert.deepEqual(await api.version(), { version: '9.1.1', release: '9.1', repoid: 'sim' });
  const st = await api.clusterStatus();
  assert.deepEqual(st.filter((x) => x.type === 'node').map((x) => x.name), ['pve1', 'pve2', 'pve3']);
  const id = await api.nextId();
  assert.equal(typeof id, 'number');
  await api.create('pve1', 'lxc', ctParams(id, { description: 'a,b=c & d' }));
  assert.equal((await api.config('pve1', 'lxc', id)).description, 'a,b=c & d');
  await api.start('pve1', 'lxc', id);
  assert.equal((await api.status('pve1', 'lxc', id)).status, 'running');
  await api.removeGuest('pve1', 'lxc', id);
  assert.equal(sim.guests.has(id), false);
  assert.equal(formEncode({ a: true, b: ['x', 'y z'], c: undefined, d: 3 }), 'a=1&b=x&b=y%20z&d=3');
  assert.deepEqual(parseTokenLine('root@pam!gw=aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee'), { tokenId: 'root@pam!gw', secret: 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee' });
  assert.deepEqual(parseUpid('UPID:pve1:00001234:00005678:65A0B0C0:vzcreate:101:root@pam:'), { node: 'pve1', type: 'vzcreate', id: '101', user: 'root@pam' });
});

test('ticket login: cookie plus CSRFPreventionToken on writes; a write without the CSRF header is refused', async () => {
  const c = root();
  await c.put('/cluster/ha/resources/ct:999', {}).catch(() => undefined); // any write logs in first
  const t = await c.post<{ ticket: string }>('/access/ticket', { username: 'root@pam', password: sim.rootPassword });
  const status = await new Promise<number>((res, rej) => {
    const req = request({ host: '127.0.0.1', port: sim.port, method: 'POST', path: '/api2/json/cluster/mapping/dir', ca: [], rejectUnauthorized: false,
      headers: { Cookie: `PVEAuthCookie=${encodeURIComponent(t.ticket)}`, 'Content-Type': 'application/x-www-form-urlencoded' } }, (r) => { r.resume(); res(r.statusCode!); });
    req.on('error', rej);
    req.end('id=nocsrf&map=node%3Dpve1%2Cpath%3D%2Ftmp');
  });
  assert.equal(status, 401);
  assert.equal(sim.mappings.has('nocsrf'), false);
  await c.post('/cluster/mapping/dir', { id: 'withcsrf', map: ['node=pve1,path=/tmp'] });
  assert.ok(sim.mappings.has('withcsrf'));
  await c.delete('/cluster/mapping/dir/withcsrf');
  await assert.rejects(new PveClient(new ApiTransport({ url: sim.url, fingerprint: sim.fingerprint, auth: { kind: 'ticket', username: 'root@pam', password: 'wrong' } })).get('/version'),
    (e: PveError) => e.status === 401 && /authentication failure/.test(e.message));
});

test('TLS: a certificate that does not match the pinned fingerprint (or is self-signed without a pin) is refused before any request', async () => {
  const n = sim.requests.length;
  const wrong = 'AA:'.repeat(31) + 'AA';
  await assert.rejects(new PveClient(new ApiTransport({ url: sim.url, fingerprint: wrong, auth: { kind: 'token', tokenId: TOKEN, secret: tokenSecret } })).get('/version'),
    (e: Error) => /not the pinned AA:AA.*refusing/.test(e.message));
  await assert.rejects(new PveClient(new ApiTransport({ url: sim.url, auth: { kind: 'token', tokenId: TOKEN, secret: tokenSecret } })).get('/version'),
    (e: Error) => /self.signed certificate/i.test(e.message));
  assert.equal(sim.requests.length, n, 'nothing reached the server');
  assert.throws(() => new ApiTransport({ url: 'http://127.0.0.1:8006', auth: { kind: 'token', tokenId: TOKEN, secret: 'x' } }), /https/);
});

test('Proxmox errors reach the user: parameter errors, permission errors, handler errors, unknown token', async () => {
  const c = token();
  await assert.rejects(c.post('/nodes/pve1/lxc', { ...ctParams(150), memory: 8, bogus: 1 }), (e: PveError) => {
    assert.equal(e.status, 400);
    assert.match(e.message, /Proxmox VE: POST \/nodes\/pve1\/lxc: Parameter verification failed\. \(.*memory: value must have a minimum value of 16.*bogus: property is not defined in schema/);
    return true;
  });
  await assert.rejects(c.post('/nodes/pve1/lxc', ctParams(151, { mp0: '/srv/data,mp=/srv/share' })), (e: PveError) => e.status === 403 && /Only root can pass arbitrary filesystem paths/.test(e.message));
  await assert.rejects(c.post('/cluster/mapping/dir', { id: 'x1', map: ['node=pve1,path=/tmp'] }), (e: PveError) => e.status === 403 && e.code === 'forbidden');
  await assert.rejects(c.get('/nodes/pve1/lxc/4242/config'), (e: PveError) => /Configuration file 'nodes\/pve1\/lxc\/4242\.conf' does not exist/.test(e.message));
  await assert.rejects(new PveClient(new ApiTransport({ url: sim.url, fingerprint: sim.fingerprint, auth: { kind: 'token', tokenId: TOKEN, secret: 'nope' } })).get('/version'), (e: PveError) => e.status === 401 && e.code === 'unauthorized');
});

test('a failed task shows its log; a task that outlives the timeout says so', async () => {
  const c = root();
  sim.fault({ path: '/nodes/pve1/lxc', method: 'POST', kind: 'task-fail', message: 'unable to create CT 160 - no space left', times: 1 });
  await assert.rejects(new PveApi(c).create('pve1', 'lxc', ctParams(160)), (e: Error) => {
    assert.match(e.message, /task vzcreate 160 failed: unable to create CT 160 - no space left\n--- task log \(last lines\) ---\nunable to create/);
    return true;
  });
  assert.equal(sim.guests.has(160), false);
  sim.fault({ path: '/nodes/pve1/lxc', method: 'POST', kind: 'slow', delayMs: 1500, times: 1 });
  await assert.rejects(new PveApi(c, { timeoutMs: 300 }).create('pve1', 'lxc', ctParams(161)), /task vzcreate 161 still running after 0 s \(UPID:pve1:.*\); it was left running/);
  await new Promise((r) => setTimeout(r, 1600));
  await new PveApi(c).removeGuest('pve1', 'lxc', 161);
});

test('a POST is never sent twice; only GETs are retried, and only on connection errors', async () => {
  const c = root();
  const count = (m: string, p: string) => sim.requests.filter((r) => r.method === m && r.path === p).length;
  const before = count('POST', '/nodes/pve1/lxc');
  sim.fault({ path: '/nodes/pve1/lxc', method: 'POST', kind: 'http', status: 500, message: 'got timeout', times: 1 });
  await assert.rejects(c.post('/nodes/pve1/lxc', ctParams(170)), /got timeout/);
  assert.equal(count('POST', '/nodes/pve1/lxc'), before + 1);
  // A connection that breaks mid-way: the POST is not repeated, the GET is.
  const dead = new PveClient(new ApiTransport({ url: 'https://127.0.0.1:1', fingerprint: sim.fingerprint, auth: { kind: 'token', tokenId: TOKEN, secret: tokenSecret }, retries: 2, timeoutMs: 2000 }));
  const t0 = Date.now();
  await assert.rejects(dead.get('/version'), /cannot connect to 127\.0\.0\.1:1/);
  assert.ok(Date.now() - t0 >= 550, 'GET was retried with back-off');
  const t1 = Date.now();
  await assert.rejects(dead.post('/cluster/mapping/dir', { id: 'x' }), /cannot connect/);
  assert.ok(Date.now() - t1 < 500, 'POST was not retried');
});

test('pvesh transport on the node runs as root@pam: bind mounts allowed, errors parsed from its output', async () => {
  const run = (tool: string, args: readonly string[], o?: object) => execRunner(tool === 'pvesh' ? join(sim.binDir, 'pvesh') : tool, args, o);
  const c = new PveClient(new PveshTransport(run));
  assert.equal(c.user, 'root@pam');
  const api = new PveApi(c);
  await api.create('pve1', 'lxc', ctParams(180, { mp0: '/srv/data,mp=/srv/share,backup=0' }));
  assert.equal((await api.config('pve1', 'lxc', 180)).mp0, '/srv/data,mp=/srv/share,backup=0');
  await assert.rejects(c.post('/nodes/pve1/lxc', { ...ctParams(181), cores: 0 }), (e: PveError) => e.status === 400 && /cores: value must have a minimum value of 1/.test(e.message));
  await api.removeGuest('pve1', 'lxc', 180);
  const last = sim.requests.filter((r) => r.path === '/nodes/pve1/lxc' && r.method === 'POST').at(-1)!;
  assert.equal(last.user, 'root@pam');
});

test('PVE_SIM_LOG: one JSON line per request with method, path, params and user (passwords masked)', async () => {
  const lines = (await readFile(log, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { method: string; path: string; params: Record<string, unknown>; user: string });
  assert.ok(lines.length >= 10);
  for (const l of lines) assert.deepEqual(Object.keys(l), ['method', 'path', 'params', 'user']);
  assert.ok(lines.some((l) => l.method === 'POST' && l.path === '/nodes/pve1/lxc' && l.user === TOKEN && l.params.vmid === String(l.params.vmid)));
  const login = lines.find((l) => l.path === '/access/ticket')!;
  assert.equal(login.params.password, '***');
  assert.ok(!(await readFile(log, 'utf8')).includes(sim.rootPassword));
});

test('cluster endpoints: nextid, HA resources, vzdump and directory mappings', async () => {
  const c = root();
  const api = new PveApi(c);
  const id = await api.nextId();
  await api.create('pve2', 'lxc', ctParams(id));
  await c.post('/cluster/ha/resources', { sid: `ct:${id}`, state: 'started' });
  assert.deepEqual((await api.haResources()).map((r) => r.sid), [`ct:${id}`]);
  await assert.rejects(c.delete(`/nodes/pve2/lxc/${id}`), /used in HA resources/);
  const upid = await c.post<string>('/nodes/pve2/vzdump', { vmid: String(id), storage: 'local', mode: 'snapshot' });
  await c.waitTask(upid);
  assert.ok((await api.storageContent('pve2', 'local', 'backup')).some((v) => v.vmid === id));
  await api.deleteHaResource(`ct:${id}`);
  await api.removeGuest('pve2', 'lxc', id);
  await api.createDirMapping('m1', ['node=pve1,path=/tank/a', 'node=pve2,path=/tank/a']);
  assert.deepEqual((await api.dirMappings()).map((m) => m.id), ['m1']);
  await api.deleteDirMapping('m1');
});
