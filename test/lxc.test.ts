/**
 * lxc mode against the Proxmox VE simulator (fake guest backend): the template is built once from the
 * Debian standard CT template, each share is a linked clone configured as documented, the Samba config
 * comes from the native renderer with the path inside, and delete/rollback leave nothing behind.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { FakeBackend } from './pve-sim/backend.ts';
import { startSimGateway, type SimGateway } from './pve-sim/gateway.ts';
import { sh } from './helpers/gateway.ts';

let t: SimGateway;
let fake: FakeBackend;
let tmplVmid: number;
const PW = 'Corr3ct-Horse-Battery';

before(async () => {
  fake = new FakeBackend();
  t = await startSimGateway({ backend: fake });
  const r = await t.cli(['template', 'create', '--mode', 'lxc', '--json']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  tmplVmid = r.json!.data.template.vmid;
});
after(async () => { await t?.cleanup(); });

const pwFile = () => t.passwordFile(PW);

test('template create installs Samba once and converts the container to a tagged template', async () => {
  const g = t.sim.guests.get(tmplVmid)!;
  assert.equal(g.template, true);
  assert.equal(g.kind, 'lxc');
  assert.equal(g.config.unprivileged, '1');
  assert.match(g.config.tags ?? '', /smbgateway/);
  assert.match(g.config.rootfs!, /^local-zfs:/);
  const st = fake.state(tmplVmid);
  assert.ok(st.packages.has('samba'));
  assert.match(st.files.get('/etc/samba/smb.conf')!.data, /include = \/etc\/samba\/smbgateway\.conf/);
  assert.equal(st.exec.filter((e) => e.argv.includes('apt-get') && e.argv.includes('install')).length, 1);
  const list = await t.cli(['template', 'list', '--json']);
  assert.deepEqual(list.json!.data.map((x: { vmid: number; mode: string }) => [x.vmid, x.mode]), [[tmplVmid, 'lxc']]);
  const text = await t.cli(['template', 'list']);
  assert.match(text.stdout, new RegExp(`${tmplVmid}\\s+lxc\\s+pve1`));
});

test('create: a linked clone, configured as documented, serving the share; delete removes the container', async () => {
  const path = join(t.storage, 'projects');
  const before = t.sim.requests.length;
  const r = await t.cli(['create', 'Projects', '--mode', 'lxc', '--path', path, '--user', 'alice', '--password-file', await pwFile(), '--ip', '192.0.2.10/24', '--gateway', '192.0.2.1', '--json']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const share = r.json!.data.share;
  const vmid: number = share.vmid;
  assert.ok(vmid > tmplVmid);
  assert.equal(share.guest_ip, '192.0.2.10');
  const g = t.sim.guests.get(vmid)!;
  assert.equal(g.status, 'running');
  assert.equal(g.config.hostname, 'smb-projects');
  assert.equal(g.config.cores, '1');
  assert.equal(g.config.memory, '128');
  assert.equal(g.config.onboot, '1');
  assert.equal(g.config.unprivileged, '1');
  assert.equal(g.config.net0, 'name=eth0,bridge=vmbr0,ip=192.0.2.10/24,gw=192.0.2.1,type=veth');
  assert.equal(g.config.mp0, `${path},mp=/srv/share,backup=0`);
  // A linked clone of the template on ZFS: the new rootfs refers to the template's base volume.
  assert.match(g.config.rootfs!, new RegExp(`^local-zfs:subvol-${tmplVmid}-disk-0/subvol-${vmid}-disk-0`));
  const clone = t.sim.requests.slice(before).find((x) => x.path === `/nodes/pve1/lxc/${tmplVmid}/clone`)!;
  assert.equal(clone.params.full, '0');
  assert.equal(clone.user, 'root@pam');
  // Samba config from the native renderer, with the path inside the container.
  const st = fake.state(vmid);
  const conf = st.files.get('/etc/samba/smbgateway.conf')!.data;
  assert.match(conf, /\[Projects\]\n   path = \/srv\/share\n/);
  assert.match(conf, /valid users = alice/);
  assert.match(conf, /server signing = mandatory/);
  assert.equal(st.reloads, 1);
  // alice exists inside with the uid the gateway recorded; her password went on stdin, never argv.
  const uid = Number(share.guest_uids[0].split(':')[1]);
  assert.equal(share.guest_uids[0], `alice:${uid}`);
  assert.deepEqual(st.unixUsers.get('alice'), { uid, gid: uid });
  assert.equal(st.sambaUsers.get('alice'), PW);
  assert.ok(!JSON.stringify(st.exec.map((e) => e.argv)).includes(PW));
  assert.ok(!JSON.stringify(t.sim.requests).includes(PW));
  // Ownership: the shifted uid (100000 + uid) may write on the host path.
  const acl = await sh('getfacl', ['-n', '--absolute-names', path]);
  assert.match(acl.stdout, new RegExp(`user:${100000 + uid}:rwx`));
  assert.match(acl.stdout, new RegExp(`default:user:${100000 + uid}:rwx`));
  // The directory the gateway made belongs to the first writer as the host sees her.
  assert.equal((await stat(path)).uid, 100000 + uid);
  // Closed to every other local account (and to any share around it): no access for other.
  assert.equal((await stat(path)).mode & 0o007, 0, 'other has no access to the share root');
  assert.match(acl.stdout, /^other::---$/m);
  assert.match(acl.stdout, /^default:other::---$/m);
  // A file made in the share inherits the guest id's entry; delete must take it away there too.
  await mkdir(join(path, 'sub'));
  await writeFile(join(path, 'sub', 'f.txt'), 'x');
  assert.match((await sh('getfacl', ['-n', '--absolute-names', join(path, 'sub', 'f.txt')])).stdout, new RegExp(`user:${100000 + uid}:`));
  // The secret is kept 0600 for the health checks; the share is in the store with its guest.
  assert.equal((await stat(t.gw.store.secretPath('Projects', 'alice'))).mode & 0o777, 0o600);
  const cfg = await readFile(join(t.settings.storeDir, 'shares.cfg'), 'utf8');
  assert.match(cfg, new RegExp(`vmid ${vmid}`));
  const status = await t.cli(['list', '--json']);
  assert.equal(status.json!.data[0].mode, 'lxc');

  const d = await t.cli(['delete', 'Projects', '--json']);
  assert.equal(d.code, 0, d.stdout + d.stderr);
  assert.deepEqual(d.json!.data.steps, ['save-config', 'remove-secrets', 'stop-container', 'revoke-permissions', 'destroy-container']);
  assert.equal(t.sim.guests.has(vmid), false);
  assert.equal(fake.guests.has(vmid), false);
  assert.ok(!(t.sim.volumes.get('local-zfs') ?? []).some((v) => v.vmid === vmid));
  assert.doesNotMatch((await sh('getfacl', ['-R', '-n', '--absolute-names', path])).stdout, new RegExp(`user:${100000 + uid}:`), 'ACL entries revoked in the whole tree');
  assert.doesNotMatch(await readFile(join(t.settings.storeDir, 'shares.cfg'), 'utf8'), /Projects/);
  // Data stays unless --purge.
  assert.ok((await stat(path)).isDirectory());
});

test('DHCP: the address comes from the container\'s interfaces; memory and bridge can be chosen', async () => {
  const path = join(t.storage, 'dhcp');
  const r = await t.cli(['create', 'dhcp', '--mode', 'lxc', '--path', path, '--user', 'bob', '--password-file', await pwFile(), '--bridge', 'vmbr1', '--ct-memory', '256', '--json']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const { vmid, guest_ip } = r.json!.data.share;
  assert.match(guest_ip, /^10\.213\./);
  assert.equal(t.sim.guests.get(vmid)!.config.net0, 'name=eth0,bridge=vmbr1,ip=dhcp,type=veth');
  assert.equal(t.sim.guests.get(vmid)!.config.memory, '256');
  assert.equal((await t.cli(['delete', 'dhcp', '--purge'])).code, 0);
  await assert.rejects(stat(path));
});

test('an API token cannot make bind mounts: lxc mode says it needs root@pam, and nothing is created', async () => {
  const tok = await startSimGateway({ transport: 'token' });
  try {
    // The template exists on that simulator too (made as root through its pvesh shim).
    const mk = await tok.cli(['template', 'create', '--mode', 'lxc', '--json'], { env: { SMBGW_BIN_PVESH: join(tok.sim.binDir, 'pvesh') } });
    assert.equal(mk.code, 0, mk.stdout + mk.stderr);
    const n = tok.sim.guests.size;
    const r = await tok.cli(['create', 'tok', '--mode', 'lxc', '--path', join(tok.storage, 'tok'), '--user', 'alice', '--password-file', await pwFile(), '--json']);
    assert.equal(r.code, 1, r.stdout);
    assert.equal(r.json!.error!.code, 'forbidden');
    assert.match(r.json!.error!.message, /only to root@pam.*smbgw@pve!gateway/);
    assert.equal(tok.sim.guests.size, n);
  } finally {
    await tok.cleanup();
  }
});

test('refused before anything changes: groups, missing password, unknown template, hosts without Proxmox VE', async () => {
  const n = t.sim.guests.size;
  const g = await t.cli(['create', 'g1', '--mode', 'lxc', '--path', join(t.storage, 'g1'), '--group', 'staff', '--json']);
  assert.equal(g.json!.error!.field, 'groups');
  const p = await t.cli(['create', 'g2', '--mode', 'lxc', '--path', join(t.storage, 'g2'), '--user', 'alice', '--json']);
  assert.equal(p.json!.error!.field, 'password');
  const m = await t.cli(['create', 'g3', '--mode', 'lxc', '--path', join(t.storage, 'g3'), '--user', 'alice', '--password-file', await pwFile(), '--vm-template', '4242', '--json']);
  assert.equal(m.json!.error!.field, 'vm_template');
  const ip = await t.cli(['create', 'g4', '--mode', 'lxc', '--path', join(t.storage, 'g4'), '--user', 'alice', '--ip', '10.1.2.3', '--json']);
  assert.equal(ip.json!.error!.field, 'ip');
  assert.equal(t.sim.guests.size, n);
  const cfgFile = JSON.parse(await readFile(t.settingsFile, 'utf8')) as Record<string, unknown>;
  const noPve = join(t.dir, 'nopve.json');
  await writeFile(noPve, JSON.stringify({ ...cfgFile, is_pve: false }));
  const x = await t.cli(['create', 'g5', '--mode', 'lxc', '--path', join(t.storage, 'g5'), '--user', 'alice', '--json'], { env: { SMBGATEWAY_CONFIG: noPve } });
  assert.equal(x.json!.error!.code, 'unavailable');
  assert.match(x.json!.error!.message, /not available on this host: it needs a Proxmox VE node/);
});

test('status of an lxc share: the container\'s state, an SMB logon to it, the config inside, usage of the host path', async () => {
  const made = await t.op('create', { sharename: 'stat', mode: 'lxc', path: join(t.storage, 'stat'), users: ['alice'], password: PW });
  const vmid = made.share.vmid;
  const st = await t.op('status', { sharename: 'stat' });
  assert.equal(st.served, true, JSON.stringify(st));
  assert.equal(st.guest.status, 'running');
  assert.equal(st.guest.vmid, vmid);
  assert.match(st.probe, /^ok \(logged on as alice at /);
  assert.equal(st.in_config, true);
  assert.ok(st.usage.used >= 0);
  // Stopped behind the gateway's back: status says so.
  await t.sim.backend.ctStop(t.sim.guests.get(vmid)!);
  t.sim.guests.get(vmid)!.status = 'stopped';
  const down = await t.op('status', { sharename: 'stat' });
  assert.equal(down.served, false);
  assert.match(down.warnings.join('\n'), /the container is stopped/);
  const text = await t.cli(['status', 'stat']);
  assert.match(text.stdout, /served: +NO/);
  // update: flags kept by the gateway change; Samba settings living in the guest are refused, not silently dropped
  const up = await t.cli(['update', 'stat', '--monitoring-enabled', '0', '--json']);
  assert.equal(up.code, 0, up.stdout);
  const refused = await t.cli(['update', 'stat', '--comment', 'x', '--json']);
  assert.equal(refused.json!.error!.field, 'comment');
  assert.match(refused.json!.error!.message, /^comment: cannot be changed on an lxc share yet \(its Samba config lives in the guest\); delete and create it again$/);
  await t.op('delete', { sharename: 'stat', purge: true });
});

const CREATE_STEPS = ['create-directory', 'grant-permissions', 'allocate-vmid', 'clone-container', 'configure-container', 'start-container', 'wait-network',
  'add-guest-users', 'push-smb-conf', 'reload-samba', 'store-secrets', 'save-config', 'health-check'];

/** Create through the operation in this process (the loops below run it many times). */
function create(name: string, failAt?: string) {
  return t.op('create', { sharename: name, mode: 'lxc', path: join(t.storage, name), users: ['alice'], password: PW }, failAt);
}

async function assertNothingLeft(name: string, guests: Set<number>, what: string): Promise<void> {
  assert.deepEqual(new Set(t.sim.guests.keys()), guests, `${what}: guests left behind`);
  await assert.rejects(stat(join(t.storage, name)), `${what}: directory left behind`);
  assert.doesNotMatch(await readFile(join(t.settings.storeDir, 'shares.cfg'), 'utf8').catch(() => ''), new RegExp(`smbgateway: ${name}\n`), `${what}: store entry left behind`);
  await assert.rejects(stat(t.gw.store.secretPath(name, 'alice')), `${what}: secret left behind`);
}

test('a failure at any create step removes the container, ACLs, secrets, directory and store entry made so far', async () => {
  const ok = await create('probe');
  assert.deepEqual(ok.steps, CREATE_STEPS);
  await t.op('delete', { sharename: 'probe', purge: true });
  const guests = new Set(t.sim.guests.keys());
  for (const step of CREATE_STEPS) {
    await assert.rejects(create(`rb-${step}`, step), new RegExp(`injected failure at step ${step} \\(rolled back\\)`));
    await assertNothingLeft(`rb-${step}`, guests, step);
  }
});

test('faults from Proxmox VE (failed clone task, HTTP error on start, pct failures) roll back too', async () => {
  const guests = new Set(t.sim.guests.keys());
  const cases = [
    { fault: { path: new RegExp(`/lxc/${tmplVmid}/clone$`), kind: 'task-fail' as const, message: 'zfs error: out of space' }, text: /task vzclone \d+ failed: zfs error: out of space\n--- task log/ },
    { fault: { path: /\/lxc\/\d+\/config$/, method: 'PUT', kind: 'http' as const, status: 500, message: 'unable to parse config' }, text: /PUT \/nodes\/pve1\/lxc\/\d+\/config: unable to parse config/ },
    { fault: { path: /\/lxc\/\d+\/status\/start$/, kind: 'http' as const, status: 500, message: 'cgroup limit reached' }, text: /cgroup limit reached/ },
    { fault: { method: 'PCT', path: 'push', kind: 'http' as const, message: 'failed to open file' }, text: /failed to open file/ },
    { fault: { method: 'PCT', path: 'exec', kind: 'http' as const, message: 'lxc-attach failed' }, text: /lxc-attach failed/ },
  ];
  for (const c of cases) {
    t.sim.fault({ ...c.fault, times: 1 });
    await assert.rejects(create('fault'), (e: Error) => { assert.match(e.message, c.text); assert.match(e.message, /rolled back/); return true; });
    t.sim.clearFaults();
    await assertNothingLeft('fault', guests, String(c.fault.path));
  }
});

test('a failure at a delete step leaves the share in place and serving', async () => {
  const ok = await create('keep');
  const vmid = ok.share.vmid;
  for (const step of ['save-config', 'remove-secrets', 'stop-container', 'revoke-permissions', 'destroy-container']) {
    await assert.rejects(t.op('delete', { sharename: 'keep' }, step), /rolled back/);
    assert.equal(t.sim.guests.get(vmid)?.status, 'running', step);
    assert.match(await readFile(join(t.settings.storeDir, 'shares.cfg'), 'utf8'), /smbgateway: keep/);
    assert.ok((await stat(t.gw.store.secretPath('keep', 'alice'))).isFile());
    assert.match((await sh('getfacl', ['-n', '--absolute-names', join(t.storage, 'keep')])).stdout, /user:10\d{4}:rwx/);
  }
  await t.op('delete', { sharename: 'keep', purge: true });
  assert.equal(t.sim.guests.has(vmid), false);
});

test('template create rolls back at every step: no container is left', async () => {
  const guests = new Set(t.sim.guests.keys());
  for (const step of ['allocate-vmid', 'create-container', 'start-container', 'install-samba', 'configure-samba', 'stop-container', 'convert-template']) {
    await assert.rejects(t.op('template create', { mode: 'lxc' }, step), new RegExp(`injected failure at step ${step} \\(rolled back\\)`));
    assert.deepEqual(new Set(t.sim.guests.keys()), guests, step);
  }
  await assert.rejects(t.op('template create', { mode: 'lxc', source: 'local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst' }), /source: .* is not in the vztmpl content/);
});
