/**
 * lxc mode with Active Directory, for real (docs/ad.md): a Samba AD DC in its own namespaces
 * (test/helpers/adlab.ts), a real unprivileged container behind the PVE simulator (test/guests), the
 * container's network bridged onto the DC's. Through the gateway's CLI: create an lxc share for
 * LAB\alice and @LAB\staff (the container joins with its own computer account), a client writes and
 * reads over NTLMv2 and Kerberos, bob is refused, alice's file on the host belongs to
 * 100000 + 10000 + her RID; a failure after the join rolls everything back (no computer account, no
 * container); delete leaves the domain from inside the container, then removes it (a failure after
 * the leave joins it again).
 */
import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { execRunner } from '../src/core/exec.ts';
import { ADMIN_PW, DOMAIN, removeTemplate, startAdLab, USER_PW } from './helpers/adlab.ts';
import { realBackend } from './guests/pve-backend.ts';
import { startSimGateway } from './pve-sim/gateway.ts';

test('lxc share in Active Directory: the container joins, alice over NTLMv2 and Kerberos, bob refused, shifted winbind uid on the host, delete leaves the domain', { timeout: 600_000 }, async (t) => {
  const t0 = Date.now();
  const [backend, lab] = await Promise.all([realBackend(t), startAdLab()]);
  t.after(async () => { await removeTemplate(lab); await lab.cleanup(); });
  const g = await startSimGateway({ backend, taskMs: 5 });
  t.after(() => g.cleanup());
  const figures: Record<string, number | string> = {};
  const [tpl] = await Promise.all([g.cli(['template', 'create', '--mode', 'lxc', '--json']), lab.startDc()]);
  assert.equal(tpl.code, 0, tpl.stdout + tpl.stderr);
  figures.setupSeconds = (Date.now() - t0) / 1000;

  // The guests' bridge (vmbr0, a namespace of the backend) joined to the lab's: one L2 segment.
  const net = backend.bridgeNetwork('vmbr0')!;
  const veth = `adlx${lab.id}`;
  await execRunner('ip', ['link', 'add', `${veth}a`, 'netns', lab.sw, 'type', 'veth', 'peer', 'name', `${veth}b`, 'netns', net.ns]);
  await execRunner('ip', ['-n', lab.sw, 'link', 'set', `${veth}a`, 'master', 'br0', 'up']);
  await execRunner('ip', ['-n', net.ns, 'link', 'set', `${veth}b`, 'master', net.bridge, 'up']);
  const subnet = lab.dc.address.replace(/\.\d+$/, '');
  const ctIp = `${subnet}.40`;

  const pwf = await g.passwordFile(ADMIN_PW);
  const path = join(g.storage, 'docs');
  // (the failed attempt gets another address: the DC's ARP cache would still hold its MAC)
  const create = (name: string, p: string, ip: string, env: Record<string, string> = {}) => g.cli(['create', name, '--mode', 'lxc', '--path', p, '--ad-domain', DOMAIN,
    '--user', 'LAB\\alice', '--group', 'LAB\\staff', '--ip', `${ip}/24`, '--nameserver', lab.dc.address, '--ad-password-file', pwf, '--json'], { env: { SMBGW_VERBOSE: '1', ...env } });

  // A failure after the join (injected at the last step) undoes it all: no computer account, no container.
  const failed = await create('docs', path, `${subnet}.41`, { SMBGW_FAIL_AT: 'health-check' });
  assert.equal(failed.code, 1, failed.stdout + failed.stderr);
  assert.match(failed.json!.error!.message, /injected failure at step health-check/);
  assert.match(failed.stderr, /ads-join: CT \d+ joined LAB\.EXAMPLE as SMB-DOCS\$/, 'it had joined');
  assert.ok(!(await lab.computers()).includes('SMB-DOCS$'), 'the rollback deleted the computer account');
  assert.deepEqual([...g.sim.guests.values()].filter((x) => !x.template).map((x) => x.vmid), [], 'the rollback removed the container');
  const lookup = async () => (await lab.client.run('getent', ['hosts', 'smb-docs.lab.example'], { allowFail: true })).stdout.trim().split(/\s+/)[0] ?? '';
  assert.equal(await lookup(), '', 'and its DNS record');

  // The share.
  const tc = Date.now();
  const c = await create('docs', path, ctIp);
  figures.createSeconds = (Date.now() - tc) / 1000;
  assert.equal(c.code, 0, c.stdout + c.stderr);
  assert.deepEqual(c.json!.data.warnings, [], 'the DNS record was registered');
  assert.doesNotMatch(c.stdout + c.stderr, new RegExp(ADMIN_PW.replace(/[.!]/g, '\\$&')), 'the join password is not printed');
  // every pct command line the node ran (as Proxmox VE logs them): the password was on stdin only
  const pct = g.sim.requests.filter((r) => r.method === 'PCT');
  assert.ok(pct.some((r) => JSON.stringify(r.params).includes('"join"')), 'net ads join ran through pct exec');
  assert.ok(!JSON.stringify(g.sim.requests).includes(ADMIN_PW), 'the join password is in no command line');
  const joinSecs = /ads-join: CT \d+ joined LAB\.EXAMPLE as SMB-DOCS\$ in ([\d.]+) s/.exec(c.stderr);
  assert.ok(joinSecs, c.stderr);
  figures.joinSeconds = Number(joinSecs[1]);
  figures.checksSeconds = Number(/ad-check-domain: .* in ([\d.]+) s/.exec(c.stderr)?.[1]);
  figures.winbindUpSeconds = Number(/start-winbind: .* in ([\d.]+) s/.exec(c.stderr)?.[1]);
  const share = c.json!.data.share;
  assert.equal(share.guest_ip, ctIp);
  assert.ok((await lab.computers()).includes('SMB-DOCS$'), 'the container has its own computer account');
  const ct = backend.container(share.vmid)!;
  const managed = (await ct.exec(['cat', '/etc/samba/smbgateway.conf'])).stdout;
  for (const l of ['netbios name = SMB-DOCS', 'security = ads', 'workgroup = LAB', 'realm = LAB.EXAMPLE', 'idmap config LAB : range = 10000-59999', 'idmap config * : range = 60000-64999']) {
    assert.ok(managed.includes(l), `the container's config has "${l}"`);
  }
  assert.match((await ct.exec(['cat', '/etc/nsswitch.conf'])).stdout, /^passwd:.* winbind$/m);
  assert.equal((await ct.exec(['systemctl', 'is-active', 'winbind'], { allowFail: true })).stdout.trim(), 'active');

  // The ids: rid backend, container uid = 10000 + RID, host uid = 100000 + that.
  const rid = async (kind: 'user' | 'group', name: string) => Number(/objectSid: S-1-5-21-[\d-]+-(\d+)$/m.exec((await lab.samba([kind, 'show', name])).stdout)![1]);
  const aliceHost = 100000 + 10000 + await rid('user', 'alice');
  const staffHost = 100000 + 10000 + await rid('group', 'staff');
  const acl = (await execRunner('getfacl', ['-n', '--absolute-names', path])).stdout;
  assert.match(acl, new RegExp(`^user:${aliceHost}:rwx`, 'm'), acl);
  assert.match(acl, new RegExp(`^group:${staffHost}:rwx`, 'm'), acl);
  assert.match(acl, /^other::---/m);

  // From the client: alice over NTLMv2 (user + password, no Kerberos)
  const smb = (user: string, command: string) => lab.client.run('smbclient', ['-s', '/dev/null', `//${ctIp}/docs`, '-U', `LAB\\${user}%${USER_PW}`,
    '--option=client min protocol=SMB2_10', '--use-kerberos=off', '-c', command], { allowFail: true, timeoutMs: 30_000 });
  const payload = join(lab.client.dir, 'payload.txt');
  const back = join(lab.client.dir, 'back.txt');
  await writeFile(payload, `alice's data ${Date.now()}\n`);
  const put = await smb('alice', `put ${payload} alice-ntlm.txt; get alice-ntlm.txt ${back}`);
  assert.equal(put.code, 0, put.stdout + put.stderr);
  assert.equal(await readFile(back, 'utf8'), await readFile(payload, 'utf8'), 'alice reads back what she wrote');
  // carol through @LAB\staff
  const carol = await smb('carol', `put ${payload} carol.txt`);
  assert.equal(carol.code, 0, carol.stdout + carol.stderr);
  // bob: neither named nor in staff
  const bob = await smb('bob', 'ls');
  assert.notEqual(bob.code, 0);
  assert.match(bob.stdout + bob.stderr, /NT_STATUS_ACCESS_DENIED/);

  // alice over Kerberos, to the container's name (its DNS record made by the join)
  assert.equal(await lookup(), ctIp, `the join registered the container's name in the domain's DNS: ${c.stderr}`);
  const cc = `FILE:${join(lab.client.dir, 'cc.alice')}`;
  await lab.client.run('kinit', ['alice@LAB.EXAMPLE'], { input: USER_PW + '\n', env: { KRB5CCNAME: cc } });
  const krb = await lab.client.run('smbclient', ['-s', '/dev/null', '//smb-docs.lab.example/docs', '--use-kerberos=required', '--option=client min protocol=SMB2_10',
    '-c', `put ${payload} alice-krb.txt; ls`], { allowFail: true, env: { KRB5CCNAME: cc }, timeoutMs: 30_000 });
  assert.equal(krb.code, 0, krb.stdout + krb.stderr);
  assert.match(krb.stdout, /alice-krb\.txt/);
  const tickets = (await lab.client.run('klist', [], { env: { KRB5CCNAME: cc } })).stdout;
  assert.match(tickets, /cifs\/smb-docs\.lab\.example@LAB\.EXAMPLE/, 'a service ticket for the container');

  // status: the container serves the share (no logon probe: the gateway holds no domain password)
  const st = await g.cli(['status', 'docs', '--json']);
  assert.equal(st.code, 0, st.stdout + st.stderr);
  assert.deepEqual([st.json!.data.in_config, st.json!.data.served], [true, true], st.stdout);

  // On the host: alice's files belong to her shifted winbind uid.
  for (const f of ['alice-ntlm.txt', 'alice-krb.txt']) assert.equal((await stat(join(path, f))).uid, aliceHost, f);
  figures.aliceHostUid = aliceHost;

  // Delete: refused without the credentials that delete the computer account (nothing changes) ...
  const noCred = await g.cli(['delete', 'docs', '--json']);
  assert.equal(noCred.code, 2, noCred.stdout);
  assert.match(noCred.json!.error!.message, /^ad_password: the container of docs is joined to lab\.example as SMB-DOCS\$/);
  // A failure after the leave (injected) joins the container again: the account is back, alice gets in.
  const failedDel = await g.cli(['delete', 'docs', '--ad-password-file', pwf, '--json'], { env: { SMBGW_FAIL_AT: 'stop-container' } });
  assert.equal(failedDel.code, 1, failedDel.stdout + failedDel.stderr);
  assert.match(failedDel.json!.error!.message, /injected failure at step stop-container/);
  assert.ok((await lab.computers()).includes('SMB-DOCS$'), 'the undo of the leave joined again');
  assert.equal(await lookup(), ctIp, 'with its DNS record');
  const again = await smb('alice', 'ls');
  assert.equal(again.code, 0, again.stdout + again.stderr);
  // ... then the container leaves the domain, and goes.
  const t1 = Date.now();
  const d = await g.cli(['delete', 'docs', '--ad-password-file', pwf, '--json'], { env: { SMBGW_VERBOSE: '1' } });
  figures.deleteSeconds = (Date.now() - t1) / 1000;
  assert.equal(d.code, 0, d.stdout + d.stderr);
  assert.deepEqual(d.json!.data.steps.slice(0, 1), ['ads-leave'], 'the leave comes first');
  assert.ok(!(await lab.computers()).includes('SMB-DOCS$'), 'the computer account is gone from the DC');
  assert.equal(g.sim.guests.has(share.vmid), false, 'the container is gone');
  assert.equal(await lookup(), '', 'its DNS record is gone');
  assert.ok((await stat(join(path, 'alice-ntlm.txt'))).isFile(), 'the data stays');
  assert.doesNotMatch((await execRunner('getfacl', ['-n', '--absolute-names', path])).stdout, new RegExp(`user:${aliceHost}:`), 'alice\'s ACL entry is revoked');
  figures.totalSeconds = (Date.now() - t0) / 1000;
  t.diagnostic(`ad-lxc figures: ${JSON.stringify(figures)}`);
});
