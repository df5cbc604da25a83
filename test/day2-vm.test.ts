/**
 * Day two on vm shares (Proxmox VE simulator, fake guests): who has access and the presets are changed
 * inside the VM through the QEMU guest agent (POST .../agent/exec with the password as input-data,
 * exec-status, file-write of the managed smb.conf), as lxc shares are changed through `pct exec`; a
 * failure at any step leaves the VM, the host path's ACL, the secrets and the config as they were.
 * `passwd` sets a vm user's password in the VM (under the pvesh transport through `qm guest exec
 * --pass-stdin`, so that the password never becomes an argument).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ntHash } from '../src/provision/guest.ts';
import { FakeBackend } from './pve-sim/backend.ts';
import { startSimGateway, type SimGateway } from './pve-sim/gateway.ts';
import { sh } from './helpers/gateway.ts';

const CONF = '/etc/samba/smbgateway.conf';
const PW = 'Vm-day2-' + randomBytes(4).toString('hex');
const PW2 = 'Vm-dave-' + randomBytes(4).toString('hex');

describe('vm shares: access, presets and passwd inside the VM (guest agent)', () => {
  let t: SimGateway;
  let fake: FakeBackend;
  let vmid: number;
  let path: string;
  before(async () => {
    fake = new FakeBackend({ preinstalled: ['samba', 'qemu-guest-agent'] });
    t = await startSimGateway({ backend: fake, transport: 'token' });
    const tpl = await t.cli(['template', 'create', '--mode', 'vm', '--json']);
    assert.equal(tpl.code, 0, tpl.stdout + tpl.stderr);
    path = join(t.storage, 'vmsh');
    const r = await t.cli(['create', 'vmsh', '--mode', 'vm', '--path', path, '--user', 'carol', '--password-file', await t.passwordFile(PW), '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    vmid = r.json!.data.share.vmid;
  });
  after(async () => { await t?.cleanup(); });

  const logon = (user: string, pw: string) => fake.probe(fake.state(vmid).ip!, 'vmsh', user, pw);
  /** Everything an access change touches: the VM's accounts, hashes and config, the host ACL, the secrets, shares.cfg. */
  const state = async () => {
    const st = fake.state(vmid);
    return {
      cfg: await t.gw.store.readRaw(),
      conf: st.files.get(CONF)?.data,
      users: [...st.unixUsers.keys()].sort(),
      hashes: [...st.ntHashes].sort(),
      acl: (await sh('getfacl', ['-n', '--absolute-names', path])).stdout,
      secrets: [await t.gw.store.readSecret('vmsh', 'carol'), await t.gw.store.readSecret('vmsh', 'dave')],
    };
  };

  it('fails at each step of an access change (and when testparm fails in the VM): the VM, ACL, secrets and config as before', async () => {
    const initial = await state();
    assert.deepEqual(initial.users, ['carol']);
    assert.match(initial.conf!, /valid users = carol\n/, 'the config cloud-init wrote');
    const pwf = await t.passwordFile(PW2);
    const steps = ['update-permissions', 'add-guest-users', 'push-smb-conf', 'store-secrets', 'save-config', 'close-sessions', 'remove-secrets', 'remove-guest-users'];
    for (const step of steps) {
      const r = await t.cli(['access', 'vmsh', '--add-user', 'dave', '--remove-user', 'carol', '--password-file', pwf, '--json'], { env: { SMBGW_FAIL_AT: step } });
      assert.equal(r.code, 1, `${step}: ${r.stdout}${r.stderr}`);
      assert.match(r.json!.error!.message, new RegExp(`injected failure at step ${step} \\(rolled back\\)`));
      assert.deepEqual(await state(), initial, `failure at ${step}`);
    }
    t.sim.fault({ method: 'AGENT', path: 'testparm', kind: 'http', message: 'Error loading services.', times: 1 });
    const r = await t.cli(['access', 'vmsh', '--add-user', 'dave', '--password-file', pwf, '--json']);
    assert.equal(r.code, 1);
    assert.match(r.json!.error!.message, /in VM \d+: testparm -s --suppress-prompt failed \(exit 1\): Error loading services\. \(rolled back\)/);
    assert.deepEqual(await state(), initial, 'testparm failing inside the VM');
    assert.equal((await logon('carol', PW)).ok, true);
  });

  it('adds dave and removes carol inside the VM: dave logs on, carol is refused; the password went as input-data only', async () => {
    const before = (await t.gw.store.get('vmsh'))!;
    const carolUid = Number(before.guest_uids[0]!.split(':')[1]);
    const mark = t.sim.requests.length;
    const r = await t.cli(['access', 'vmsh', '--add-user', 'dave', '--remove-user', 'carol', '--password-file', await t.passwordFile(PW2), '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(r.json!.data.steps, ['update-permissions', 'add-guest-users', 'push-smb-conf', 'store-secrets', 'save-config', 'close-sessions', 'remove-secrets', 'remove-guest-users']);
    const st = fake.state(vmid);
    assert.deepEqual([...st.unixUsers.keys()], ['dave']);
    assert.equal(st.ntHashes.get('dave'), ntHash(PW2));
    assert.equal(st.ntHashes.has('carol'), false);
    assert.match(st.files.get(CONF)!.data, /valid users = dave\n/);
    assert.equal((await logon('dave', PW2)).ok, true);
    assert.match((await logon('carol', PW)).output, /LOGON_FAILURE/);
    // Through the guest agent's API: commands as arrays, the password only in input-data (redacted in the log).
    const calls = t.sim.requests.slice(mark).filter((q) => q.path.includes('/agent/'));
    const smbpasswd = calls.find((q) => q.path.endsWith('/agent/exec') && JSON.stringify(q.params.command).includes('smbpasswd'))!;
    assert.deepEqual(smbpasswd.params.command, ['smbpasswd', '-s', '-a', 'dave']);
    assert.equal(smbpasswd.params['input-data'], '***');
    assert.ok(calls.some((q) => q.path.endsWith('/agent/file-write') && q.params.file === CONF));
    assert.ok(calls.some((q) => q.path.endsWith('/agent/exec-status')));
    for (const q of t.sim.requests.slice(mark)) for (const [k, v] of Object.entries(q.params)) if (k !== 'input-data') assert.ok(!String(v).includes(PW2), `the password in ${q.path} ${k}`);
    // The host path's ACL follows the VM's ids (virtiofs passes them through).
    const share = (await t.gw.store.get('vmsh'))!;
    const daveUid = Number(share.guest_uids.find((e) => e.startsWith('dave:'))!.split(':')[1]);
    const acl = (await sh('getfacl', ['-n', path])).stdout;
    assert.match(acl, new RegExp(`^user:${daveUid}:rwx$`, 'm'));
    assert.doesNotMatch(acl, new RegExp(`^user:${carolUid}:`, 'm'));
    assert.equal(await t.gw.store.readSecret('vmsh', 'dave'), PW2);
    assert.equal(await t.gw.store.readSecret('vmsh', 'carol'), undefined);
  });

  it('presets in the VM: fails at each step as before; then recycle and macos are rendered into the VM\'s smb.conf and shown; audit is refused', async () => {
    const initial = await state();
    for (const step of ['push-smb-conf', 'save-config']) {
      const r = await t.cli(['update', 'vmsh', '--preset', 'recycle', '--preset', 'macos', '--recycle-keep-days', '7', '--json'], { env: { SMBGW_FAIL_AT: step } });
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.json!.error!.message, new RegExp(`injected failure at step ${step} \\(rolled back\\)`));
      assert.deepEqual(await state(), initial, `failure at ${step}`);
    }
    const r = await t.cli(['update', 'vmsh', '--preset', 'recycle', '--preset', 'macos', '--recycle-keep-days', '7', '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const conf = fake.state(vmid).files.get(CONF)!.data;
    assert.match(conf, /vfs objects = recycle catia fruit streams_xattr\n/);
    assert.match(conf, /recycle:repository = \.recycle\/%U\n/);
    assert.match(conf, /path = \/srv\/share\n/);
    assert.ok(fake.state(vmid).reloads > 0);
    const show = await t.cli(['show', 'vmsh', '--json']);
    assert.deepEqual(show.json!.data.presets, ['recycle', 'macos']);
    assert.equal(show.json!.data.recycle_keep_days, 7);
    const audit = await t.cli(['update', 'vmsh', '--preset', 'recycle', '--preset', 'macos', '--preset', 'audit', '--json']);
    assert.equal(audit.code, 2);
    assert.equal(audit.json!.error!.field, 'presets');
    assert.match(audit.json!.error!.message, /audit is a native-mode preset/);
    // Private: the per-user path and the directory command use the path inside the VM.
    const p = await t.cli(['update', 'vmsh', '--preset', 'recycle', '--preset', 'macos', '--preset', 'private', '--json']);
    assert.equal(p.code, 0, p.stdout + p.stderr);
    const conf2 = fake.state(vmid).files.get(CONF)!.data;
    assert.match(conf2, /path = \/srv\/share\/%u\n/);
    assert.match(conf2, /root preexec = \/usr\/bin\/install -d -m 0700 -o %u -g %g '\/srv\/share\/%u'\n/);
  });

  it('passwd sets the password in the VM (API: input-data; pvesh transport: qm guest exec --pass-stdin); a failure puts the old one back', async () => {
    const NEW = 'Vm-new-' + randomBytes(4).toString('hex');
    const failed = await t.cli(['passwd', 'dave', '--password-file', '-', '--json'], { input: NEW + '\n', env: { SMBGW_FAIL_AT: 'store-secrets' } });
    assert.equal(failed.code, 1, failed.stdout);
    assert.equal(fake.state(vmid).ntHashes.get('dave'), ntHash(PW2), 'the old password is back in the VM');
    assert.equal(await t.gw.store.readSecret('vmsh', 'dave'), PW2);
    // The same gateway with the pvesh transport (root@pam on the node): the password goes on qm's stdin.
    const cfg = JSON.parse(await readFile(t.settingsFile, 'utf8')) as Record<string, unknown>;
    const pveshCfg = join(t.dir, 'gateway-pvesh.json');
    await writeFile(pveshCfg, JSON.stringify({ ...cfg, pve_transport: 'pvesh', pve_api: undefined, pve_token_file: undefined, pve_fingerprint: undefined }));
    const mark = t.sim.requests.length;
    const r = await t.cli(['passwd', 'dave', '--password-file', '-', '--json'], { input: NEW + '\n', env: { SMBGATEWAY_CONFIG: pveshCfg } });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(r.json!.data.steps, ['set-guest-password', 'store-secrets']);
    assert.equal(fake.state(vmid).ntHashes.get('dave'), ntHash(NEW));
    assert.equal(await t.gw.store.readSecret('vmsh', 'dave'), NEW);
    const qm = t.sim.requests.slice(mark).filter((q) => q.method === 'QM');
    assert.deepEqual(qm.map((q) => q.params.args), [['smbpasswd', '-s', 'dave']], 'qm guest exec --pass-stdin on the node');
    assert.ok(!t.sim.requests.slice(mark).some((q) => 'input-data' in q.params), 'no input-data as a pvesh argument');
    assert.equal((await logon('dave', NEW)).ok, true);
    assert.equal((await logon('dave', PW2)).ok, false);
  });
});
