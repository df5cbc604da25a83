/**
 * Privileges per operation and per mode, Proxmox-style, against the real daemon and a sandboxed smbd.
 * For every operation (and share mode), a caller holding every privilege a gateway token can carry
 * except those that satisfy one of the requirements is refused with 403 and nothing changes (store
 * file, managed smb.conf, token file, no task started); with just the required ones the call gets
 * past the privilege check. The table below is the expected rule, written out
 * by hand (docs/api.md has the same table). Gateway tokens hold their privileges on every path;
 * path-specific privileges (/storage/<id> from storage.cfg) and root@pam for lxc mode are shown with
 * Proxmox VE tickets and tokens, checked through a stand-in of the PVE API.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startDaemon, type Daemon } from '../src/api/daemon.ts';
import { TOKEN_PRIVS, TokenStore } from '../src/api/tokens.ts';
import type { Share } from '../src/core/share.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';
import { call, type Reply } from './helpers/https.ts';
import { startPveStandin, withTicket, type PveStandin } from './helpers/pvestandin.ts';

const PW = 'Priv-test-pass1';
const PVE_TOKEN = 'root@pam!auto';
const PVE_TOKEN_SECRET = '7a1e3c0a-2222-4333-8444-955566667777';
const N = '/api2/json/nodes/testnode';

let t: TestGateway;
let d: Daemon;
let ca: Buffer;
let dir: string;
let standin: PveStandin;
let user: string;
let tokens: TokenStore;
let A: string; // storage "sta"
let B: string; // storage "stb"

const EVERYTHING_BUT = (...missing: string[]) => ['Datastore.Allocate', 'Datastore.AllocateSpace', 'Datastore.Audit', 'VM.Allocate', 'VM.Audit', 'VM.Clone',
  'VM.Config.CPU', 'VM.Config.Cloudinit', 'VM.Config.Disk', 'VM.Config.Memory', 'VM.Config.Network', 'VM.Config.Options', 'VM.PowerMgmt',
  'Mapping.Modify', 'Mapping.Use', 'SDN.Use', 'Sys.Audit', 'Sys.Console', 'Sys.Modify', 'Permissions.Modify'].filter((p) => !missing.includes(p));

before(async () => {
  t = await startGateway();
  dir = await mkdtemp(join(tmpdir(), 'smbgw-priv-'));
  A = join(t.storage, 'a');
  B = join(t.storage, 'b');
  await mkdir(A);
  await mkdir(B);
  const storageCfg = join(t.dir, 'storage.cfg');
  await writeFile(storageCfg, `dir: sta\n\tpath ${A}\n\tcontent rootdir\n\ndir: stb\n\tpath ${B}\n\tcontent rootdir\n\nlvmthin: local-lvm\n\tthinpool data\n\tvgname pve\n`);
  user = t.user('v');
  const pwf = join(t.dir, 'pw');
  await writeFile(pwf, PW + '\n', { mode: 0o600 });
  for (const [name, path] of [['pa', join(A, 'pa')], ['pb', join(B, 'pb')], ['pn', join(t.storage, 'pn')]]) {
    const r = await t.cli(['create', name!, '--mode', 'native', '--path', path!, '--user', user, '--password-file', pwf, '--json']);
    assert.equal(r.json?.success, true, r.stdout + r.stderr);
  }
  // Guest shares as the store keeps them (this host has no Proxmox VE to make their guests).
  await t.gw.store.locked(async () => {
    const all = await t.gw.store.list();
    const pa = all.find((s) => s.sharename === 'pa')!;
    const { backing: _native, ...base } = pa;
    const guest = (over: Partial<Share>): Share => ({ ...base, created: [], ...over });
    await t.gw.store.write([...all, guest({ sharename: 'glxc', mode: 'lxc', path: join(A, 'glxc'), vmid: 201 }), guest({ sharename: 'gvm', mode: 'vm', path: join(B, 'gvm'), vmid: 202, vm_attach: 'auto' })]);
  });
  tokens = new TokenStore(t.settings);
  standin = await startPveStandin(dir, {
    'dora@pve': { '/storage/sta': ['Datastore.Allocate', 'Datastore.AllocateSpace', 'Datastore.Audit'] },
    'carol@pve': { '/': EVERYTHING_BUT() },
    'erin@pve': { '/': EVERYTHING_BUT('Mapping.Use') },
    [PVE_TOKEN]: { '/': EVERYTHING_BUT() },
  }, { [PVE_TOKEN]: PVE_TOKEN_SECRET });
  d = await startDaemon({
    settings: { ...t.settings, storageCfg },
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

/** What a refused call must not change: the share store, the managed smb.conf, the token file. */
async function state(): Promise<{ files: string[]; tasks: number }> {
  const files = [t.gw.store.cfgPath, t.settings.managedConf, tokens.file];
  return { files: await Promise.all(files.map((f) => readFile(f, 'latin1').catch(() => '<none>'))), tasks: d.api.tasks.list().length };
}

function send(method: string, path: string, headers: Record<string, string>, params?: Record<string, unknown>): Promise<Reply> {
  if (method === 'GET' || method === 'DELETE') {
    const q = params ? '?' + new URLSearchParams(Object.entries(params).map(([k, v]) => [k, String(v)])).toString() : '';
    return call(d.api.url, ca, method, path + q, { headers });
  }
  return call(d.api.url, ca, method, path, { headers, body: params ?? {} });
}

/** The exit status of the task a call started. */
async function finished(r: Reply): Promise<string> {
  return (await d.api.tasks.wait(r.json.data as string)).exitstatus ?? '';
}

interface Case {
  name: string;
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  /** Made when the test runs (the paths exist only then). */
  params?: () => Record<string, unknown>;
  /** Every entry is required; each is "any of these privileges". */
  needs: string[][];
  /** With all of them, the call succeeds (a task: ends OK); otherwise only the privilege check is passed. */
  succeeds?: boolean;
}

const AUDIT = ['Datastore.Audit', 'Datastore.Allocate'];
const ALLOC = ['Datastore.Allocate'];
const one = (...privs: string[]) => privs.map((p) => [p]);
const LXC_CREATE = [ALLOC, ...one('VM.Allocate', 'VM.Clone', 'VM.Config.CPU', 'VM.Config.Memory', 'VM.Config.Network', 'VM.Config.Options', 'VM.PowerMgmt',
  'Datastore.AllocateSpace', 'SDN.Use', 'VM.Config.Disk', 'Sys.Modify')];
const VM_CREATE_BASE = [ALLOC, ...one('VM.Allocate', 'VM.Clone', 'VM.Config.CPU', 'VM.Config.Memory', 'VM.Config.Network', 'VM.Config.Options', 'VM.PowerMgmt',
  'Datastore.AllocateSpace', 'SDN.Use', 'VM.Config.Cloudinit')];
const newShare = (name: string, mode: string, path: string, extra: Record<string, unknown> = {}) => ({ sharename: name, mode, path, users: [user], ...extra });

const CASES = (): Case[] => [
  { name: 'list', method: 'GET', path: `${N}/smbgateway`, needs: [AUDIT], succeeds: true },
  { name: 'show', method: 'GET', path: `${N}/smbgateway/pa`, needs: [AUDIT], succeeds: true },
  { name: 'status', method: 'GET', path: `${N}/smbgateway/pa/status`, needs: [AUDIT], succeeds: true },
  { name: 'metrics', method: 'GET', path: `${N}/smbgateway/pa/metrics`, needs: [AUDIT], succeeds: true },
  { name: 'snapshots', method: 'GET', path: `${N}/smbgateway/pa/snapshots`, needs: [AUDIT] },
  { name: 'update', method: 'PUT', path: `${N}/smbgateway/pa`, params: () => ({ comment: 'changed' }), needs: [ALLOC], succeeds: true },
  { name: 'backup', method: 'POST', path: `${N}/smbgateway/pa/backup`, needs: [['Datastore.AllocateSpace', 'Datastore.Allocate']] },
  { name: 'restore --force', method: 'POST', path: `${N}/smbgateway/pa/restore`, params: () => ({ snapshot: 'smbgw-2024.01.01-00.00.00', force: 1 }), needs: [ALLOC] },
  { name: 'replicate', method: 'POST', path: `${N}/smbgateway/pa/replicate`, params: () => ({ target: 'backup/pa' }), needs: [ALLOC] },
  { name: 'create (native)', method: 'POST', path: `${N}/smbgateway`, params: () => newShare('newa', 'native', join(A, 'newa')), needs: [ALLOC], succeeds: true },
  { name: 'create (lxc)', method: 'POST', path: `${N}/smbgateway`, params: () => newShare('newl', 'lxc', join(A, 'newl')), needs: LXC_CREATE },
  { name: 'create (vm, vm_attach auto)', method: 'POST', path: `${N}/smbgateway`, params: () => newShare('newv', 'vm', join(B, 'newv')), needs: [...VM_CREATE_BASE, ...one('Mapping.Modify', 'Mapping.Use', 'VM.Config.Disk')] },
  { name: 'create (vm, vm_attach nfs)', method: 'POST', path: `${N}/smbgateway`, params: () => newShare('newn', 'vm', join(B, 'newn'), { vm_attach: 'nfs' }), needs: VM_CREATE_BASE },
  { name: 'delete (native)', method: 'DELETE', path: `${N}/smbgateway/pn`, needs: [ALLOC], succeeds: true },
  { name: 'delete (lxc)', method: 'DELETE', path: `${N}/smbgateway/glxc`, needs: [ALLOC, ...one('VM.Allocate', 'VM.PowerMgmt', 'Sys.Modify')] },
  { name: 'delete (vm)', method: 'DELETE', path: `${N}/smbgateway/gvm`, needs: [ALLOC, ...one('VM.Allocate', 'VM.PowerMgmt', 'Mapping.Modify')] },
  { name: 'migrate', method: 'POST', path: `${N}/smbgateway/migrate`, params: () => ({ dry_run: 1 }), needs: [ALLOC, ['Sys.Modify']] },
  { name: 'access', method: 'PUT', path: `${N}/smbgateway/pa/access`, params: () => ({ remove_users: 'nobodyhere', dry_run: 1 }), needs: [ALLOC] },
  { name: 'passwd', method: 'PUT', path: `${N}/smbgateway/users/nobodyhere/password`, params: () => ({ password: 'Not-used-123' }), needs: [ALLOC] },
  { name: 'audit', method: 'GET', path: `${N}/smbgateway/pa/audit`, needs: [AUDIT] },
  { name: 'apply', method: 'POST', path: `${N}/smbgateway/apply`, params: () => ({ resources: [], dry_run: 1 }), needs: [ALLOC, ['Sys.Modify']], succeeds: true },
  { name: 'show --all (resources)', method: 'GET', path: `${N}/smbgateway/resources`, needs: [AUDIT], succeeds: true },
  { name: 'doctor', method: 'GET', path: `${N}/smbgateway/doctor`, needs: [AUDIT, ['Sys.Modify']], succeeds: true },
  { name: 'ha deploy', method: 'POST', path: `${N}/smbgateway/ha/deploy`, needs: [['Sys.Modify']] },
  { name: 'ha status', method: 'GET', path: `${N}/smbgateway/ha`, needs: [AUDIT], succeeds: true },
  { name: 'failover', method: 'POST', path: `${N}/smbgateway/pa/failover`, needs: [['Sys.Modify']] },
  { name: 'ha guest', method: 'POST', path: `${N}/smbgateway/glxc/ha-resource`, needs: [['Sys.Modify'], ['Sys.Console']] },
  { name: 'ad status', method: 'GET', path: `${N}/smbgateway/ad`, needs: [['Sys.Modify']], succeeds: true },
  { name: 'ad leave', method: 'POST', path: `${N}/smbgateway/ad/leave`, params: () => ({ password: 'not-joined' }), needs: [['Sys.Modify']] },
  { name: 'template list', method: 'GET', path: `${N}/smbgateway/templates`, needs: [['VM.Audit']] },
  { name: 'template create', method: 'POST', path: `${N}/smbgateway/templates`, params: () => ({ mode: 'lxc', storage: 'sta' }), needs: [['VM.Allocate'], ['Datastore.AllocateSpace']] },
  { name: 'token list', method: 'GET', path: '/api2/json/access/smbgateway/tokens', needs: [['Permissions.Modify']], succeeds: true },
  { name: 'token create', method: 'POST', path: '/api2/json/access/smbgateway/tokens', params: () => ({ tokenid: 'madehere', privs: 'Datastore.Audit,VM.Audit' }), needs: [['Permissions.Modify'], ['Datastore.Audit'], ['VM.Audit']], succeeds: true },
  { name: 'token delete', method: 'DELETE', path: '/api2/json/access/smbgateway/tokens/madehere', needs: [['Permissions.Modify']], succeeds: true },
  { name: 'tasks', method: 'GET', path: `${N}/tasks`, needs: [AUDIT], succeeds: true },
  { name: 'metrics (Prometheus)', method: 'GET', path: '/metrics', needs: [AUDIT], succeeds: true },
  { name: 'openapi', method: 'GET', path: '/api2/json/smbgateway/openapi', needs: [], succeeds: true },
];

let caseNo = 0;
for (const c of CASES()) {
  const title = c.needs.length
    ? `${c.name}: ${c.needs.map((x) => x.join('|')).join(' + ')}; all but one: 403 and nothing changes`
    : `${c.name}: any authenticated caller, even a token without privileges`;
  test(title, async () => {
    const k = caseNo++;
    const lacking: string[] = [];
    for (let i = 0; i < c.needs.length; i++) {
      // Everything else, e.g. restore without Datastore.Allocate still has Datastore.AllocateSpace.
      lacking.push((await tokens.create(`c${k}but${i}`, TOKEN_PRIVS.filter((p) => !c.needs[i]!.includes(p)))).header);
    }
    const all = (await tokens.create(`c${k}all`, [...new Set(c.needs.flat())])).header;
    const before = await state();
    for (const [i, tok] of lacking.entries()) {
      const r = await send(c.method, c.path, { authorization: tok }, c.params?.());
      assert.equal(r.status, 403, `without ${c.needs[i]!.join('|')}: ${r.text}`);
      assert.match(r.json?.message ?? r.text, /^Permission check failed \(/);
    }
    assert.deepEqual(await state(), before, 'a refused call changed nothing and started no task');
    const r = await send(c.method, c.path, { authorization: all }, c.params?.());
    assert.ok(![401, 403].includes(r.status), `with all of them: ${r.status} ${r.text.slice(0, 300)}`);
    if (c.succeeds) {
      assert.equal(r.status, 200, r.text.slice(0, 300));
      if (typeof r.json?.data === 'string' && r.json.data.startsWith('UPID:')) assert.equal((await finished(r)), 'OK');
    } else if (r.status === 200 && typeof r.json?.data === 'string' && r.json.data.startsWith('UPID:')) {
      await finished(r); // a task that fails here (no Proxmox VE): it passed the privilege check all the same
    }
  });
}

test('the successful calls above did what they say: newa created on sta, pn deleted, pa updated, the made token gone', async () => {
  const names = (await t.gw.store.list()).map((s) => s.sharename).sort();
  assert.deepEqual(names, ['glxc', 'gvm', 'newa', 'pa', 'pb']);
  assert.equal((await t.gw.store.get('pa'))!.comment, 'changed');
  assert.ok(!(await tokens.list()).some((x) => x.name === 'madehere'));
});

// --- Proxmox VE credentials: privileges on the storage holding the share, root@pam for bind mounts ---

const ticketed = (u: string, write = false) => withTicket(u, write);

test('PVE: storage privileges are checked on /storage/<id> of the storage holding the path (storage.cfg), else /storage', async () => {
  const before = await state();
  // dora holds Datastore.* on /storage/sta only.
  const inB = await send('POST', `${N}/smbgateway`, ticketed('dora@pve', true), newShare('dorab', 'native', join(B, 'dorab')));
  assert.equal(inB.status, 403, inB.text);
  assert.equal(inB.json.message, 'Permission check failed (/storage/stb, Datastore.Allocate)');
  const outside = await send('POST', `${N}/smbgateway`, ticketed('dora@pve', true), newShare('dorax', 'native', join(t.storage, 'dorax')));
  assert.equal(outside.json.message, 'Permission check failed (/storage, Datastore.Allocate)');
  assert.equal((await send('DELETE', `${N}/smbgateway/pb`, ticketed('dora@pve', true))).status, 403);
  assert.equal((await send('PUT', `${N}/smbgateway/pb`, ticketed('dora@pve', true), { comment: 'x' })).status, 403);
  assert.equal((await send('GET', `${N}/smbgateway/pb`, ticketed('dora@pve'))).status, 403);
  assert.equal((await send('GET', `${N}/smbgateway`, ticketed('dora@pve'))).status, 403, 'listing every share needs /storage');
  assert.deepEqual(await state(), before);
  // ... and may do all of it on sta.
  assert.equal((await send('GET', `${N}/smbgateway/pa`, ticketed('dora@pve'))).status, 200);
  const created = await send('POST', `${N}/smbgateway`, ticketed('dora@pve', true), newShare('dora', 'native', join(A, 'dora')));
  assert.equal(created.status, 200, created.text);
  assert.match(created.json.data, /:create:dora:dora@pve:$/);
  assert.equal((await finished(created)), 'OK');
  const backup = await send('POST', `${N}/smbgateway/dora/backup`, ticketed('dora@pve', true));
  assert.notEqual(backup.status, 403, 'Datastore.AllocateSpace on sta is enough for a snapshot');
  const del = await send('DELETE', `${N}/smbgateway/dora`, ticketed('dora@pve', true));
  assert.equal((await finished(del)), 'OK');
});

test('PVE: lxc create and delete need root@pam (bind mount of a host path); every privilege or a root@pam API token is not enough', async () => {
  const before = await state();
  for (const [who, headers] of [['carol@pve', ticketed('carol@pve', true)], [PVE_TOKEN, { authorization: `PVEAPIToken=${PVE_TOKEN}=${PVE_TOKEN_SECRET}` }]] as const) {
    const c = await send('POST', `${N}/smbgateway`, headers, newShare('ctl', 'lxc', join(A, 'ctl')));
    assert.equal(c.status, 403, `${who}: ${c.text}`);
    assert.match(c.json.message, /^Permission check failed \(only root@pam may do this with Proxmox VE credentials/);
    assert.equal((await send('DELETE', `${N}/smbgateway/glxc`, headers)).status, 403, who);
  }
  assert.deepEqual(await state(), before);
  // The same user may make a vm share (no bind mount there).
  const vm = await send('POST', `${N}/smbgateway`, ticketed('carol@pve', true), newShare('cvm', 'vm', join(B, 'cvm')));
  assert.equal(vm.status, 200, vm.text);
  assert.match((await finished(vm)), /needs a Proxmox VE node/);
  const root = await send('POST', `${N}/smbgateway`, ticketed('root@pam', true), newShare('ctl', 'lxc', join(A, 'ctl')));
  assert.equal(root.status, 200, root.text);
  assert.match((await finished(root)), /needs a Proxmox VE node/, 'past the privilege check; this host cannot make containers');
  const rootDel = await send('DELETE', `${N}/smbgateway/glxc`, ticketed('root@pam', true));
  assert.equal(rootDel.status, 200, rootDel.text);
  assert.match((await finished(rootDel)), /needs a Proxmox VE node/);
});

test('PVE: vm mode with virtiofs needs Mapping.Use on /mapping/dir; the PVE API was asked about each path, as its schema allows', async () => {
  const before = await state();
  const r = await send('POST', `${N}/smbgateway`, ticketed('erin@pve', true), newShare('evm', 'vm', join(B, 'evm'), { vm_attach: 'virtiofs' }));
  assert.equal(r.status, 403, r.text);
  assert.equal(r.json.message, 'Permission check failed (/mapping/dir, Mapping.Use)');
  assert.deepEqual(await state(), before);
  const nfs = await send('POST', `${N}/smbgateway`, ticketed('erin@pve', true), newShare('evm', 'vm', join(B, 'evm'), { vm_attach: 'nfs' }));
  assert.equal(nfs.status, 200, 'no directory mapping with NFS');
  await finished(nfs);
  const asked = new Set(standin.seen.map((s) => new URL(s.url, 'https://x').searchParams.get('path')));
  for (const p of ['/storage', '/storage/sta', '/storage/stb', '/vms', '/vms/201', '/mapping/dir', '/sdn/zones/localnetwork/vmbr0', '/']) assert.ok(asked.has(p), `asked about ${p}`);
  for (const s of standin.seen) {
    assert.deepEqual(s.problems, [], `${s.method} ${s.url}`);
    assert.equal(s.method, 'GET');
    assert.match(s.url, /^\/api2\/json\/access\/permissions\?path=/);
  }
});
