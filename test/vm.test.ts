/**
 * vm mode against the Proxmox VE simulator, through the HTTPS API with a privilege-separated token
 * (vm mode needs no root@pam): template from a Debian cloud image, a linked clone per share, the
 * cloud-init snippet (0600, NT hashes only), virtiofs through a directory mapping, the address from the
 * guest agent; delete and rollback remove the VM, the snippet and the mapping.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Share } from '../src/core/share.ts';
import { ntHash } from '../src/provision/guest.ts';
import { buildUserData, chooseAttachment, vmConfigParams } from '../src/provision/vm.ts';
import { FakeBackend } from './pve-sim/backend.ts';
import { startSimGateway, TOKEN_PRIVS, type SimGateway } from './pve-sim/gateway.ts';
import { apiSchema } from './pve-sim/sim.ts';
import { validateParams, type Values } from './pve-sim/schema.ts';
import { parseShare } from '../src/core/share.ts';

let t: SimGateway;
let fake: FakeBackend;
let tmplVmid: number;
const PW = 'Vm-Secret-Passw0rd';

before(async () => {
  fake = new FakeBackend({ preinstalled: ['samba', 'qemu-guest-agent'] });
  t = await startSimGateway({ backend: fake, transport: 'token' });
  const r = await t.cli(['template', 'create', '--mode', 'vm', '--json']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  tmplVmid = r.json!.data.template.vmid;
});
after(async () => { await t?.cleanup(); });

const pwFile = () => t.passwordFile(PW);
const snippets = () => readdir(join(t.sim.storagePath('local')!, 'snippets'));

test('template create: the cloud image imported, prepared once by cloud-init, powered off and converted', async () => {
  const g = t.sim.guests.get(tmplVmid)!;
  assert.equal(g.kind, 'qemu');
  assert.equal(g.template, true);
  assert.match(g.config.tags!, /smbgateway/);
  assert.match(g.config.scsi0!, /^local-zfs:vm-\d+-disk-0/);
  assert.equal(g.config.agent, 'enabled=1');
  assert.equal(g.config.cicustom, undefined, 'the setup snippet is detached');
  assert.deepEqual(await snippets(), [], 'the setup snippet is removed');
  const setup = t.sim.requests.find((r) => r.method === 'POST' && r.path === '/nodes/pve1/qemu')!;
  assert.equal(setup.params['scsi0'], 'local-zfs:0,import-from=local:import/debian-12-genericcloud-amd64.qcow2');
  assert.equal(setup.user, 'smbgw@pve!gateway');
  assert.match(fake.state(tmplVmid).userData ?? '', /power_state:\n  mode: poweroff/);
  assert.match(fake.state(tmplVmid).userData ?? '', /- \["cloud-init", "clean", "--logs", "--machine-id"\]\npower_state:/, 'clones must not inherit the template\'s cloud-init instance');
  const list = await t.cli(['template', 'list', '--mode', 'vm', '--json']);
  assert.deepEqual(list.json!.data.map((x: { vmid: number }) => x.vmid), [tmplVmid]);
});

test('create: linked clone, cloud-init snippet with hashes only, virtiofs mapping, IP from the agent; delete removes it all', async () => {
  const path = join(t.storage, 'media');
  const r = await t.cli(['create', 'Media', '--mode', 'vm', '--path', path, '--user', 'carol', '--password-file', await pwFile(), '--vm-memory', '1024', '--vm-cores', '1', '--json']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const share = r.json!.data.share;
  const vmid: number = share.vmid;
  const g = t.sim.guests.get(vmid)!;
  assert.equal(g.status, 'running');
  assert.equal(g.config.name, 'smb-media');
  assert.equal(g.config.memory, '1024');
  assert.equal(g.config.cores, '1');
  assert.equal(g.config.onboot, '1');
  assert.equal(g.config.ipconfig0, 'ip=dhcp');
  assert.equal(g.config.virtiofs0, `dirid=smbgw-${vmid},cache=auto,expose-acl=1`);
  assert.equal(g.config.cicustom, `user=local:snippets/smbgw-${vmid}-user.yaml`);
  assert.match(g.config.scsi0!, new RegExp(`^local-zfs:vm-${tmplVmid}-disk-0/vm-${vmid}-disk-0`), 'linked clone');
  assert.deepEqual(t.sim.mappings.get(`smbgw-${vmid}`)?.map, [`node=pve1,path=${path}`]);
  assert.equal(share.guest_ip, fake.state(vmid).ip);
  assert.equal(share.vm_attach, 'virtiofs');
  // The snippet: 0600, the Samba config with the path inside, the user's NT hash, never the password.
  const file = join(t.sim.storagePath('local')!, 'snippets', `smbgw-${vmid}-user.yaml`);
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  const ud = await readFile(file, 'utf8');
  assert.ok(ud.startsWith('#cloud-config\n'));
  assert.match(ud, /\[Media\]\n {9}path = \/srv\/share\n/);
  assert.match(ud, new RegExp(`carol:\\d+:X{32}:${ntHash(PW)}:`));
  assert.ok(!ud.includes(PW));
  assert.match(ud, new RegExp(`- \\["smbgw-${vmid}", "/srv/share", "virtiofs"`));
  assert.ok(!JSON.stringify(t.sim.requests).includes(PW));
  const uid = Number(share.guest_uids[0].split(':')[1]);
  assert.match((await import('./helpers/gateway.ts').then((m) => m.sh('getfacl', ['-n', '--absolute-names', path]))).stdout, new RegExp(`user:${uid}:rwx`));

  const d = await t.cli(['delete', 'Media', '--json']);
  assert.equal(d.code, 0, d.stdout + d.stderr);
  assert.deepEqual(d.json!.data.steps, ['save-config', 'remove-secrets', 'stop-vm', 'revoke-permissions', 'destroy-vm', 'remove-dir-mapping', 'remove-user-data']);
  assert.equal(t.sim.guests.has(vmid), false);
  assert.equal(t.sim.mappings.has(`smbgw-${vmid}`), false);
  assert.deepEqual(await snippets(), []);
  assert.ok((await stat(path)).isDirectory(), 'data stays without --purge');
});

test('a token without Mapping.Modify gets Proxmox\'s permission error and nothing stays behind', async () => {
  const weak = await startSimGateway({ backend: new FakeBackend({ preinstalled: ['samba'] }), transport: 'token', tokenAcl: [{ path: '/', privs: TOKEN_PRIVS.filter((p) => p !== 'Mapping.Modify') }] });
  try {
    assert.equal((await weak.cli(['template', 'create', '--mode', 'vm'])).code, 0);
    const n = weak.sim.guests.size;
    const r = await weak.cli(['create', 'weak', '--mode', 'vm', '--path', join(weak.storage, 'weak'), '--user', 'carol', '--password-file', await pwFile(), '--json']);
    assert.equal(r.code, 1);
    assert.equal(r.json!.error!.code, 'forbidden');
    assert.match(r.json!.error!.message, /POST \/cluster\/mapping\/dir: Permission check failed.*Mapping\.Modify.*\(rolled back\)/);
    assert.equal(weak.sim.guests.size, n);
    await assert.rejects(stat(join(weak.storage, 'weak')));
  } finally {
    await weak.cleanup();
  }
});

const CREATE_STEPS = ['create-directory', 'grant-permissions', 'allocate-vmid', 'create-dir-mapping', 'clone-vm', 'write-user-data', 'configure-vm', 'start-vm',
  'wait-guest-agent', 'store-secrets', 'save-config', 'health-check'];

function create(name: string, failAt?: string, extra: Record<string, unknown> = {}) {
  return t.op('create', { sharename: name, mode: 'vm', path: join(t.storage, name), users: ['carol'], password: PW, ...extra }, failAt);
}

test('a failure at any create step removes the VM, snippet, mapping, directory, secrets and store entry made so far', async () => {
  const ok = await create('probe');
  assert.deepEqual(ok.steps, CREATE_STEPS);
  await t.op('delete', { sharename: 'probe', purge: true });
  const guests = new Set(t.sim.guests.keys());
  for (const step of CREATE_STEPS) {
    await assert.rejects(create(`rb-${step}`, step), new RegExp(`injected failure at step ${step} \\(rolled back\\)`));
    assert.deepEqual(new Set(t.sim.guests.keys()), guests, step);
    assert.equal(t.sim.mappings.size, 0, step);
    assert.deepEqual(await snippets(), [], step);
    await assert.rejects(stat(join(t.storage, `rb-${step}`)), step);
    assert.doesNotMatch(await readFile(join(t.settings.storeDir, 'shares.cfg'), 'utf8').catch(() => ''), new RegExp(`smbgateway: rb-${step}\n`));
    await assert.rejects(stat(t.gw.store.secretPath(`rb-${step}`, 'carol')));
  }
});

test('faults from Proxmox VE roll back: failed clone task, failed start task, config refused, mapping refused', async () => {
  const guests = new Set(t.sim.guests.keys());
  const cases = [
    { path: new RegExp(`/qemu/${tmplVmid}/clone$`), kind: 'task-fail' as const, message: 'rbd: image busy' },
    { path: /\/qemu\/\d+\/status\/start$/, kind: 'task-fail' as const, message: 'kvm: failed to initialize' },
    { path: /\/qemu\/\d+\/config$/, method: 'PUT', kind: 'http' as const, status: 400, message: 'Parameter verification failed.' },
    { path: '/cluster/mapping/dir', method: 'POST', kind: 'http' as const, status: 500, message: 'cfs lock timeout' },
  ];
  for (const f of cases) {
    t.sim.fault({ ...f, times: 1 });
    await assert.rejects(create('fault'), (e: Error) => { assert.match(e.message, new RegExp(f.message.replace('.', '\\.'))); assert.match(e.message, /rolled back/); return true; });
    t.sim.clearFaults();
    assert.deepEqual(new Set(t.sim.guests.keys()), guests, f.message);
    assert.equal(t.sim.mappings.size, 0);
    assert.deepEqual(await snippets(), []);
  }
});

test('full clone on request; a failure at a delete step keeps the share', async () => {
  const ok = await create('full', undefined, { clone: 'full' });
  const vmid = ok.share.vmid;
  assert.match(t.sim.guests.get(vmid)!.config.scsi0!, new RegExp(`^local-zfs:vm-${vmid}-disk-0`));
  for (const step of ['save-config', 'remove-secrets', 'stop-vm', 'revoke-permissions', 'destroy-vm']) {
    await assert.rejects(t.op('delete', { sharename: 'full' }, step), /rolled back/);
    assert.equal(t.sim.guests.get(vmid)?.status, 'running', step);
    assert.ok(t.sim.mappings.has(`smbgw-${vmid}`));
    assert.match(await readFile(join(t.settings.storeDir, 'shares.cfg'), 'utf8'), /smbgateway: full/);
  }
  await t.op('delete', { sharename: 'full', purge: true });
  assert.equal(t.sim.guests.has(vmid), false);
  assert.equal(t.sim.mappings.size, 0);
});

test('attachment per backend: virtiofs for local filesystems, rbd for Ceph, nfs for network filesystems', () => {
  assert.equal(chooseAttachment(undefined, { kind: 'zfs', dataset: 'tank/a', exists: true }), 'virtiofs');
  assert.equal(chooseAttachment('auto', { kind: 'btrfs', mountpoint: '/b', subvolume: true, exists: true }), 'virtiofs');
  assert.equal(chooseAttachment(undefined, { kind: 'plain', fstype: 'ext4', exists: true }), 'virtiofs');
  assert.equal(chooseAttachment(undefined, { kind: 'plain', fstype: 'ceph', exists: true }), 'rbd');
  assert.equal(chooseAttachment(undefined, { kind: 'plain', fstype: 'nfs4', exists: true }), 'nfs');
  assert.equal(chooseAttachment('nfs', { kind: 'zfs', dataset: 'tank/a', exists: true }), 'nfs');
});

test('the config each attachment sends is accepted by the official schema', () => {
  const share = parseShare({ sharename: 'S', mode: 'vm', path: '/tank/s', users: ['carol'], ip: '192.0.2.20/24', gateway: '192.0.2.1' }) as Share;
  const info = apiSchema().method('/nodes/pve1/qemu/123/config', 'PUT')!;
  for (const [attachment, extra] of [['virtiofs', { dirid: 'smbgw-123' }], ['rbd', { rbd: { storage: 'ceph-rbd', sizeGiB: 50 } }], ['nfs', {}]] as const) {
    const p = vmConfigParams(share, { bridge: 'vmbr0', cicustom: 'user=local:snippets/smbgw-123-user.yaml', attachment, ...extra });
    const values: Values = { node: 'pve1', vmid: '123' };
    for (const [k, v] of Object.entries(p)) if (v !== undefined) values[k] = String(v);
    assert.deepEqual(validateParams(info, values), {}, attachment);
    if (attachment === 'rbd') assert.equal(p.scsi1, 'ceph-rbd:50,backup=1,discard=on');
    assert.equal(p.ipconfig0, 'ip=192.0.2.20/24,gw=192.0.2.1');
  }
  const nfs = buildUserData({ hostname: 'smb-s', managedConf: '[S]\n   path = /srv/share\n', users: [{ name: 'carol', uid: 1000, password: PW }], attachment: 'nfs', source: '192.0.2.1:/tank/s' });
  assert.match(nfs, /- \["192\.0\.2\.1:\/tank\/s", "\/srv\/share", "nfs", "vers=4\.2,_netdev,nofail"/);
  const rbd = buildUserData({ hostname: 'smb-s', managedConf: '[S]\n', users: [{ name: 'carol', uid: 1000, password: PW }], attachment: 'rbd', source: '/dev/sdb' });
  assert.match(rbd, /fs_setup:\n {2}- \{label: smbshare, filesystem: ext4, device: "\/dev\/sdb", overwrite: false\}/);
  assert.ok(!nfs.includes(PW) && !rbd.includes(PW));
});

test('NT hash matches Samba\'s (MD4 of UTF-16LE)', () => {
  // Known values: NT hash of "password" and of the empty string.
  assert.equal(ntHash('password'), '8846F7EAEE8FB117AD06BDD830B7586C');
  assert.equal(ntHash(''), '31D6CFE0D16AE931B73C59D7E0C089C0');
});

test('template create rolls back at every step: no VM and no setup snippet are left', async () => {
  const guests = new Set(t.sim.guests.keys());
  for (const step of ['allocate-vmid', 'write-setup-user-data', 'create-vm', 'start-vm', 'wait-setup', 'detach-setup-user-data', 'convert-template']) {
    await assert.rejects(t.op('template create', { mode: 'vm' }, step), new RegExp(`injected failure at step ${step} \\(rolled back\\)`));
    assert.deepEqual(new Set(t.sim.guests.keys()), guests, step);
    assert.deepEqual(await snippets(), [], step);
  }
});
