/**
 * Access after create against a real smbd: users added and removed on an existing share (accounts by
 * reference count, ACLs of existing files, the removed user's open connection closed), passwd over
 * stdin, rollback of a failed change, and the refusal for guest-mode shares.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sh, startGateway, waitFor, type TestGateway } from './helpers/gateway.ts';

describe('day two: who has access', () => {
  let g: TestGateway;
  let alice: string, bob: string, carol: string;
  const pw = { alice: 'Alice-pw-' + randomBytes(4).toString('hex'), bob: 'Bob-pw-' + randomBytes(4).toString('hex'), carol: 'Carol-pw-' + randomBytes(4).toString('hex') };

  before(async () => {
    g = await startGateway();
    alice = g.user('alice'); bob = g.user('bob'); carol = g.user('carol');
  });
  after(async () => { await g?.cleanup(); });

  it('adds bob and removes alice: alice is refused (her open connection closed, her account gone), bob writes and reads her old files', async () => {
    const c = await g.cli(['create', 'team', '--mode', 'native', '--path', join(g.storage, 'team'), '--user', alice, '--password-file', '-', '--json'], { input: pw.alice + '\n' });
    assert.equal(c.code, 0, c.stdout + c.stderr);
    // carol shares the account registry: she is on another share, and stays when removed from this one later.
    const o = await g.cli(['create', 'other', '--mode', 'native', '--path', join(g.storage, 'other'), '--user', carol, '--password-file', '-', '--json'], { input: pw.carol + '\n' });
    assert.equal(o.code, 0, o.stdout + o.stderr);
    const src = join(g.dir, 'a.txt');
    await writeFile(src, 'written by alice\n');
    const put = await g.smb('team', alice, pw.alice, `mkdir sub; put ${src} sub/a.txt`);
    assert.equal(put.code, 0, put.stdout + put.stderr);
    const held = await g.holdSession('team', alice, pw.alice);

    const pwFile = join(g.dir, 'bob.pw');
    await writeFile(pwFile, `${bob}:${pw.bob}\n`, { mode: 0o600 });
    const dry = await g.cli(['access', 'team', '--add-user', bob, '--remove-user', alice, '--recursive', '--password-file', pwFile, '--dry-run', '--json']);
    assert.equal(dry.code, 0, dry.stdout + dry.stderr);
    assert.deepEqual(dry.json!.data.plan.map((s: { step: string }) => s.step), ['add-unix-users', 'set-samba-passwords', 'update-permissions', 'store-secrets', 'save-config', 'write-smb-conf', 'reload-smbd', 'close-sessions', 'remove-secrets', 'remove-samba-users', 'remove-unix-users']);
    assert.equal((await sh('getent', ['passwd', bob])).code, 2, 'a dry run makes no account');

    const r = await g.cli(['access', 'team', '--add-user', bob, '--remove-user', alice, '--recursive', '--password-file', pwFile, '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(r.json!.data.share.users, [bob]);

    // alice's connection that was open is closed, and she cannot come back (her account went with her last share).
    held.send('ls');
    await waitFor(() => /NT_STATUS_NETWORK_NAME_DELETED/.test(held.output()), 15_000, 'the held session to be closed');
    const again = await g.smb('team', alice, pw.alice, 'ls');
    assert.notEqual(again.code, 0);
    assert.match(again.stdout + again.stderr, /NT_STATUS_LOGON_FAILURE|NT_STATUS_ACCESS_DENIED/);
    assert.equal((await sh('getent', ['passwd', alice])).code, 2, 'alice\'s unix account is removed (no share uses it)');

    // bob writes, and reads alice's file below the root (granted recursively).
    const bsrc = join(g.dir, 'b.txt');
    await writeFile(bsrc, 'written by bob\n');
    const back = join(g.dir, 'a.back');
    const w = await g.smb('team', bob, pw.bob, `put ${bsrc} b.txt; get sub/a.txt ${back}`);
    assert.equal(w.code, 0, w.stdout + w.stderr);
    const facl = await sh('getfacl', ['-n', join(g.storage, 'team', 'sub', 'a.txt')]);
    // rwX: the file had execute for its owner (Samba's create mask), so bob gets it too; write is what matters.
    assert.match(facl.stdout, new RegExp(`user:${(await sh('id', ['-u', bob])).stdout.trim()}:rw`), 'bob gets write on the old file');
  });

  it('moves a user between read and write, and keeps an account another share still uses', async () => {
    const add = await g.cli(['access', 'team', '--add-read-user', carol, '--json']);
    assert.equal(add.code, 0, add.stdout + add.stderr);
    const src = join(g.dir, 'c.txt');
    await writeFile(src, 'carol\n');
    const ro = await g.smb('team', carol, pw.carol, `put ${src} c.txt`);
    assert.match(ro.stdout + ro.stderr, /NT_STATUS_ACCESS_DENIED|NT_STATUS_MEDIA_WRITE_PROTECTED/, 'a read user cannot write');
    const up = await g.cli(['access', 'team', '--add-user', carol, '--json']);
    assert.equal(up.code, 0, up.stdout + up.stderr);
    assert.deepEqual(up.json!.data.share.read_users, []);
    const rw = await g.smb('team', carol, pw.carol, `put ${src} c.txt`);
    assert.equal(rw.code, 0, rw.stdout + rw.stderr);
    const rm = await g.cli(['access', 'team', '--remove-user', carol, '--json']);
    assert.equal(rm.code, 0, rm.stdout + rm.stderr);
    assert.equal((await g.smb('other', carol, pw.carol, 'ls')).code, 0, 'carol still reaches the other share: her account stays');
    const denied = await g.smb('team', carol, pw.carol, 'ls');
    assert.match(denied.stdout + denied.stderr, /NT_STATUS_ACCESS_DENIED/);
  });

  it('passwd sets a password from stdin; the old one is refused, and argv is refused', async () => {
    const newPw = 'Bob-new-' + randomBytes(4).toString('hex');
    const argv = await g.cli(['passwd', bob, '--password', newPw, '--json']);
    assert.equal(argv.code, 2);
    assert.match(argv.json!.error!.message, /not accepted on the command line/);
    const r = await g.cli(['passwd', bob, '--password-file', '-', '--json'], { input: newPw + '\n' });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(r.json!.data.shares, ['team']);
    assert.notEqual((await g.smb('team', bob, pw.bob, 'ls')).code, 0, 'the old password is refused');
    assert.equal((await g.smb('team', bob, newPw, 'ls')).code, 0);
    assert.equal(await g.gw.store.readSecret('team', bob), newPw);
    pw.bob = newPw;
  });

  it('a change that fails part-way is rolled back: no account, config and ACL as before', async () => {
    const dave = g.user('dave');
    const cfgBefore = await g.gw.store.readRaw();
    const aclBefore = (await sh('getfacl', ['-n', join(g.storage, 'team')])).stdout;
    const r = await g.cli(['access', 'team', '--add-user', dave, '--password-file', '-', '--json'], { input: 'Dave-pw-12345\n', env: { SMBGW_FAIL_AT: 'reload-smbd' } });
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.json!.error!.message, /rolled back/);
    assert.equal((await sh('getent', ['passwd', dave])).code, 2, 'dave\'s account is gone again');
    assert.equal(await g.gw.store.readRaw(), cfgBefore);
    assert.equal((await sh('getfacl', ['-n', join(g.storage, 'team')])).stdout, aclBefore);
    assert.equal((await g.smb('team', bob, pw.bob, 'ls')).code, 0, 'bob still gets in');
  });

  it('a kill -9 in the middle of an access change is undone by repair: account, ACL, secrets and config as before', async () => {
    const erin = g.user('erin');
    const cfgBefore = await g.gw.store.readRaw();
    const aclBefore = (await sh('getfacl', ['-n', join(g.storage, 'team')])).stdout;
    const r = await g.cli(['access', 'team', '--add-user', erin, '--password-file', '-', '--json'], { input: 'Erin-pw-12345\n', env: { SMBGW_KILL_AT: 'write-smb-conf' } });
    assert.equal(r.signal, 'SIGKILL', r.stdout + r.stderr);
    assert.equal((await sh('getent', ['passwd', erin])).code, 0, 'the kill left the new account behind');
    const refused = await g.cli(['access', 'team', '--add-read-user', erin, '--json']);
    assert.match(refused.json!.error!.message, /was interrupted and left changes behind.*repair/);
    const rep = await g.cli(['repair', '--json']);
    assert.equal(rep.code, 0, rep.stdout + rep.stderr);
    assert.equal((await sh('getent', ['passwd', erin])).code, 2, 'repair removed the account the change made');
    assert.equal(await g.gw.store.readRaw(), cfgBefore);
    assert.equal((await sh('getfacl', ['-n', join(g.storage, 'team')])).stdout, aclBefore);
    assert.equal(await g.gw.store.readSecret('team', erin), undefined);
    assert.equal((await g.smb('team', bob, pw.bob, 'ls')).code, 0, 'bob still gets in');
  });

  it('refuses to leave a share with nobody, and groups on vm shares', async () => {
    const none = await g.cli(['access', 'team', '--remove-user', bob, '--json']);
    assert.equal(none.code, 2);
    assert.match(none.json!.error!.message, /nobody left/);
    // A stored lxc share (its guest is not needed to be refused).
    const shares = await g.gw.store.list();
    await g.gw.store.write([...shares, { ...shares[0]!, sharename: 'invm', mode: 'vm', path: join(g.storage, 'invm'), vmid: 4242, groups: [], read_groups: [], backup_enabled: undefined as never, backing: undefined, created: [] }]);
    // vm shares are changed inside the VM (test/day2-vm.test.ts); groups are refused there.
    const r = await g.cli(['access', 'invm', '--add-group', 'designers', '--json']);
    assert.equal(r.code, 2, r.stdout);
    assert.equal(r.json!.error!.field, 'groups', r.stdout);
    assert.match(r.json!.error!.message, /is not an option of vm shares/);
    await g.gw.store.write(shares);
  });

  it('doctor reports each check with a fix; a missing include line is a failure naming the line to add', async () => {
    const r = await g.cli(['doctor', '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const by = Object.fromEntries((r.json!.data as { check: string; status: string; detail: string; fix?: string }[]).map((f) => [f.check, f]));
    for (const c of ['samba', 'include', 'managed config', 'smbd', 'store', 'lock', 'ctdb']) assert.equal(by[c]?.status, 'ok', `${c}: ${JSON.stringify(by[c])}`);
    assert.ok(by[`root ${g.storage}`], 'the allowed root is checked');
    assert.ok(by.certificate, 'the certificate is checked');
    const conf = await readFile(g.settings.smbConf, 'utf8');
    await writeFile(g.settings.smbConf, conf.split('\n').filter((l) => !l.includes(g.settings.managedConf)).join('\n'));
    try {
      const bad = await g.cli(['doctor']);
      assert.match(bad.stdout, new RegExp(`FAIL  include: .*does not load the gateway's shares\\n      fix: add the line "include = ${g.settings.managedConf.replace(/[.]/g, '\\.')}" at the end`));
    } finally { await writeFile(g.settings.smbConf, conf); }
    // The sandbox logs as docs/monitoring.md recommends; without full_audit's lines the finding says what is lost and the line to add.
    assert.equal(by.logging?.status, 'ok', JSON.stringify(by.logging));
    await writeFile(g.settings.smbConf, conf.replace(/^\s*log level = .*$/m, '   log level = 0'));
    try {
      const quiet = await g.cli(['doctor']);
      assert.match(quiet.stdout, /WARN  logging: log level "0" keeps no full_audit lines: .*not counted for its share.*\n      fix: add "log level = 1 auth_json_audit:3@\/var\/log\/samba\/auth\.json full_audit:1@\/var\/log\/samba\/tcon\.log" to \[global\]/);
    } finally { await writeFile(g.settings.smbConf, conf); }
  });
});
