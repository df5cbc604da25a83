/**
 * Declarative apply/show on the Proxmox VE simulator: 20 shares in native, lxc and vm mode made from one
 * YAML document; `show --all --format yaml` fed back changes nothing; an edited document updates and
 * removes; a resource failing in the middle rolls the whole apply back; --dry-run changes nothing.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { sandboxConf } from '../src/demo/sandbox.ts';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { FakeBackend } from './pve-sim/backend.ts';
import { startSimGateway, type SimGateway } from './pve-sim/gateway.ts';
import { sh } from './helpers/gateway.ts';

let t: SimGateway;
const fake = new FakeBackend();
const PW = 'Apply-pw-' + randomBytes(4).toString('hex');
const id = randomBytes(2).toString('hex');
const nat1 = `tap${id}a`;
const nat2 = `tap${id}b`;
let pwFile: string;

function doc(): { resources: Record<string, unknown>[] } {
  const resources: Record<string, unknown>[] = [];
  for (let i = 0; i < 20; i++) {
    // 12 native, 5 lxc, 3 vm (a guest share costs the simulator several seconds).
    const mode = [3, 11, 17].includes(i) ? 'vm' : [1, 6, 9, 14, 19].includes(i) ? 'lxc' : 'native';
    const r: Record<string, unknown> = { resource_type: 'smbgateway.share', intent: 'present', sharename: `s${String(i).padStart(2, '0')}`, mode, path: join(t.storage, `s${i}`) };
    if (mode === 'native') Object.assign(r, { users: [i % 2 ? nat1 : nat2], comment: `native share ${i}`, ...(i === 0 ? { presets: ['recycle'], recycle_keep_days: 14 } : {}) });
    else Object.assign(r, { users: [`guest${i}`] }, mode === 'vm' ? { vm_memory: 1024 } : { ct_memory: 256 });
    resources.push(r);
  }
  return { resources };
}

const apply = async (d: unknown, extra: string[] = [], env: Record<string, string> = {}) => {
  const f = join(t.dir, `apply-${randomBytes(3).toString('hex')}.yaml`);
  await writeFile(f, typeof d === 'string' ? d : stringify(d));
  return t.cli(['apply', '-f', f, '--password-file', pwFile, ...extra, '--json'], { env });
};

before(async () => {
  t = await startSimGateway({ backend: fake });
  // Native shares need a Samba config and passdb on the node (no smbd has to run for apply).
  const sdir = join(t.dir, 'samba');
  for (const d of ['private', 'lock', 'state', 'cache', 'pid', 'ncalrpc', 'log']) await mkdir(join(sdir, d), { recursive: true });
  await writeFile(t.settings.smbConf, sandboxConf(sdir, 1, t.settings.managedConf, `A${id}`.toUpperCase()));
  pwFile = await t.passwordFile(PW);
  for (const mode of ['lxc', 'vm']) {
    const r = await t.cli(['template', 'create', '--mode', mode, '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  }
});
after(async () => {
  await t?.cleanup();
  for (const u of [nat1, nat2]) { await sh('userdel', [u]); await sh('groupdel', [u]); }
});

test('apply creates 20 shares in mixed modes; show --all --format yaml applied again changes nothing', async () => {
  const dry = await apply(doc(), ['--dry-run']);
  assert.equal(dry.code, 0, dry.stdout + dry.stderr);
  assert.equal(dry.json!.data.resources.filter((r: { action: string }) => r.action === 'created').length, 20);
  assert.equal((await t.gw.store.list()).length, 0, 'a dry run creates nothing');

  const r = await apply(doc());
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.deepEqual(r.json!.data.resources.map((x: { action: string }) => x.action), Array(20).fill('created'));
  const shares = await t.gw.store.list();
  assert.deepEqual(Object.fromEntries(['native', 'lxc', 'vm'].map((m) => [m, shares.filter((s) => s.mode === m).length])), { native: 12, lxc: 5, vm: 3 });

  const shown = await t.cli(['show', '--all', '--format', 'yaml']);
  assert.equal(shown.code, 0, shown.stderr);
  const docShown = parse(shown.stdout) as { resources: Record<string, unknown>[] };
  assert.equal(docShown.resources.length, 20);
  assert.deepEqual(docShown.resources[0], { resource_type: 'smbgateway.share', intent: 'present', sharename: 's00', mode: 'native', path: join(t.storage, 's0'), comment: 'native share 0', users: [nat2], presets: ['recycle'], recycle_keep_days: 14 });
  assert.ok(!docShown.resources.some((x) => 'vmid' in x || 'created' in x || 'guest_uids' in x), 'no internal bookkeeping in the document');

  const digest = await t.gw.store.digest();
  const requests = t.sim.requests.length;
  const again = await apply(shown.stdout);
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.deepEqual(again.json!.data.resources.map((x: { action: string }) => x.action), Array(20).fill('unchanged'));
  assert.equal(await t.gw.store.digest(), digest, 'the configuration file is byte for byte the same');
  assert.equal(t.sim.requests.filter((q) => q.method !== 'GET').length - t.sim.requests.slice(0, requests).filter((q) => q.method !== 'GET').length, 0, 'no changing request to Proxmox VE');
});

test('an edited document updates, removes only what it marks removed, and says so per resource', async () => {
  const shown = parse((await t.cli(['show', '--all', '--format', 'yaml'])).stdout) as { resources: Record<string, unknown>[] };
  const res = shown.resources;
  res[2]!.comment = 'changed by apply';
  res[5] = { resource_type: 'smbgateway.share', intent: 'removed', sharename: 's05' };
  res.splice(7, 1); // left out: stays
  res[0]!.users = [nat1, nat2];
  const r = await apply({ resources: res });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const actions = Object.fromEntries(r.json!.data.resources.map((x: { sharename: string; action: string }) => [x.sharename, x.action]));
  assert.equal(actions.s02, 'updated');
  assert.equal(actions.s00, 'updated');
  assert.equal(actions.s05, 'removed');
  assert.equal(Object.values(actions).filter((a) => a === 'unchanged').length, 16);
  const shares = await t.gw.store.list();
  assert.equal(shares.length, 19);
  assert.ok(shares.some((s) => s.sharename === 's07'), 'a share the document leaves out is not removed');
  assert.equal(shares.find((s) => s.sharename === 's02')!.comment, 'changed by apply');
  assert.deepEqual(shares.find((s) => s.sharename === 's00')!.users, [nat1, nat2]);
});

test('a resource failing in the middle rolls the whole apply back', async () => {
  const digest = await t.gw.store.digest();
  const conf = await t.gw.samba.target.managedConf;
  const shown = parse((await t.cli(['show', '--all', '--format', 'yaml'])).stdout) as { resources: Record<string, unknown>[] };
  const res = shown.resources;
  res[0]!.comment = 'first change';
  res.splice(1, 0, { resource_type: 'smbgateway.share', sharename: 'newlxc', mode: 'lxc', path: join(t.storage, 'newlxc'), users: ['guestnew'] });
  // A removal is applied last, after the failing resource: the vm share it names is never touched.
  res[4] = { resource_type: 'smbgateway.share', intent: 'removed', sharename: String(res[4]!.sharename) };
  // In the middle: a native share whose directory's parent does not exist.
  res.splice(10, 0, { resource_type: 'smbgateway.share', sharename: 'broken', mode: 'native', path: join(t.storage, 'no', 'such', 'parent'), users: [nat1] });
  res[15]!.comment = 'never applied';
  const guests = t.sim.guests.size;
  const r = await apply({ resources: res });
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(r.json!.error!.message, /resource broken \(11 of 21\): path: the parent directory .* does not exist: create it first.*; the whole apply was rolled back \(2 resource\(s\) applied before it undone\)/);
  assert.equal(await t.gw.store.digest(), digest, 'shares.cfg is as before');
  assert.equal(t.sim.guests.size, guests, 'the container made for newlxc is gone again');
  assert.ok(conf);
  assert.equal((await t.gw.store.list()).length, 19);
});

test('refuses a change apply cannot make, naming the resource and the field', async () => {
  const shown = parse((await t.cli(['show', '--all', '--format', 'yaml'])).stdout) as { resources: Record<string, unknown>[] };
  shown.resources[1]!.path = join(t.storage, 'elsewhere');
  const r = await apply(shown);
  assert.equal(r.code, 1);
  assert.match(r.json!.error!.message, /resource s01 \(2 of 19\): path: cannot be changed on the existing lxc share/);
  const bad = await apply({ resources: [{ resource_type: 'smbgateway.share', sharename: 'x', mode: 'native', path: '/tmp/x', vmid: 100 }] });
  assert.equal(bad.code, 2);
  assert.match(bad.json!.error!.message, /unknown or internal setting vmid/);
});

test('access on an lxc share: the new user is made inside the container, the removed one goes, config pushed, host ACL follows the shifted ids', async () => {
  const before = (await t.gw.store.get('s01'))!;
  const vmid = before.vmid!;
  const oldUid = Number(before.guest_uids[0]!.split(':')[1]);
  const st = fake.state(vmid);
  assert.ok(st.unixUsers.has('guest1'));
  const r = await t.cli(['access', 's01', '--add-user', 'guestnew1', '--remove-user', 'guest1', '--password-file', pwFile, '--json']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.deepEqual(r.json!.data.steps, ['update-permissions', 'add-guest-users', 'push-smb-conf', 'store-secrets', 'save-config', 'close-sessions', 'remove-secrets', 'remove-guest-users']);
  assert.ok(st.unixUsers.has('guestnew1') && !st.unixUsers.has('guest1'), 'accounts inside the container follow');
  assert.equal(st.sambaUsers.get('guestnew1'), PW, 'the password went in on stdin');
  assert.ok(!st.sambaUsers.has('guest1'));
  assert.match(st.files.get('/etc/samba/smbgateway.conf')!.data, /valid users = guestnew1\n/);
  const share = (await t.gw.store.get('s01'))!;
  const newUid = Number(share.guest_uids.find((e) => e.startsWith('guestnew1:'))!.split(':')[1]);
  const acl = (await sh('getfacl', ['-n', share.path])).stdout;
  assert.match(acl, new RegExp(`^user:${newUid + 100000}:rwx$`, 'm'));
  assert.doesNotMatch(acl, new RegExp(`^user:${oldUid + 100000}:`, 'm'));
  assert.equal(await t.gw.store.readSecret('s01', 'guestnew1'), PW);
  assert.equal(await t.gw.store.readSecret('s01', 'guest1'), undefined);
});
