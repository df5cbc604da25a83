/**
 * Bad input through the real CLI: each gets a clear error naming the field and the rule, a non-zero
 * exit, and changes nothing (store, managed smb.conf, accounts, directories).
 */
import { strict as assert } from 'node:assert';
import { mkdir, readdir, readFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startGateway, type TestGateway } from './helpers/gateway.ts';

describe('bad input is refused with a clear error and changes nothing', () => {
  let g: TestGateway;
  let alice: string;
  let pwFile: string;
  let outside: string;

  const snapshot = async () => ({
    cfg: await readFile(join(g.settings.storeDir, 'shares.cfg'), 'utf8').catch(() => ''),
    conf: await readFile(g.settings.managedConf, 'utf8').catch(() => ''),
    storage: (await readdir(g.storage)).sort(),
    samba: await g.gw.samba.userExists(alice),
  });

  before(async () => {
    g = await startGateway();
    alice = g.user('alice');
    pwFile = await g.passwordFile('Secret-pw-123');
    outside = join(g.dir, 'outside');
    await mkdir(outside);
    await symlink(outside, join(g.storage, 'escape'));
    const r = await g.cli(['create', 'Existing', '--mode', 'native', '--path', join(g.storage, 'existing'), '--user', alice, '--password-file', pwFile, '--json']);
    assert.equal(r.code, 0, r.stdout);
  });
  after(async () => { await g?.cleanup(); });

  const base = () => ['--mode', 'native', '--user', alice, '--password-file', pwFile, '--json'];
  const cases: { what: string; args: () => string[]; field: string; rule: RegExp }[] = [];
  for (const ch of ['\\', '/', '[', ']', ':', '|', '<', '>', '+', '=', ';', ',', '*', '?', '"']) {
    cases.push({ what: `share name with ${ch}`, args: () => ['create', `bad${ch}name`, '--path', join(g.storage, 'x'), ...base()], field: 'sharename', rule: /must not contain the character/ });
  }
  for (const name of ['global', 'homes', 'printers', 'GLOBAL']) {
    cases.push({ what: `reserved name ${name}`, args: () => ['create', name, '--path', join(g.storage, 'x'), ...base()], field: 'sharename', rule: /reserved/ });
  }
  cases.push(
    { what: '81 characters', args: () => ['create', 'a'.repeat(81), '--path', join(g.storage, 'x'), ...base()], field: 'sharename', rule: /at most 80 characters/ },
    { what: 'a duplicate differing only in case', args: () => ['create', 'EXISTING', '--path', join(g.storage, 'y'), ...base()], field: 'sharename', rule: /already exists.*ignoring case/ },
    { what: 'a path outside the allowed roots', args: () => ['create', 'out', '--path', '/etc', ...base()], field: 'path', rule: /not inside an allowed storage root/ },
    { what: 'a path escaping by ..', args: () => ['create', 'dots', '--path', join(g.storage, '..', '..', 'etc'), ...base()], field: 'path', rule: /not inside an allowed storage root|must not contain "\.\."/ },
    { what: 'a path escaping through a symlink', args: () => ['create', 'sym', '--path', join(g.storage, 'escape', 'data'), ...base()], field: 'path', rule: /resolves to .*outside.*not inside an allowed storage root/ },
    { what: 'a relative path', args: () => ['create', 'rel', '--path', 'relative/dir', ...base()], field: 'path', rule: /absolute path/ },
    { what: 'a newline in the comment', args: () => ['create', 'nl', '--path', join(g.storage, 'nl'), '--comment', 'x\n[evil]\npath = /', ...base()], field: 'comment', rule: /line break/ },
    { what: 'a newline in the path', args: () => ['create', 'nl2', '--path', join(g.storage, 'a\nb'), ...base()], field: 'path', rule: /line break/ },
    { what: 'a newline in a user name', args: () => ['create', 'nl3', '--path', join(g.storage, 'nl3'), '--mode', 'native', '--user', 'bob\ninclude = /etc/passwd', '--password-file', pwFile, '--json'], field: 'users', rule: /line break/ },
    { what: 'quota abc', args: () => ['create', 'q1', '--path', join(g.storage, 'q1'), '--quota', 'abc', ...base()], field: 'quota', rule: /positive size/ },
    { what: 'quota -1G', args: () => ['create', 'q2', '--path', join(g.storage, 'q2'), '--quota', '-1G', ...base()], field: 'quota', rule: /positive size/ },
    { what: 'a quota the filesystem cannot enforce', args: () => ['create', 'q3', '--path', join(g.storage, 'q3'), '--quota', '1G', ...base()], field: 'quota', rule: /cannot enforce a quota/ },
    { what: 'an unknown mode', args: () => ['create', 'm', '--path', join(g.storage, 'm'), ...base().map((a) => (a === 'native' ? 'docker' : a))], field: 'mode', rule: /must be one of native, lxc, vm/ },
    { what: 'lxc mode without Proxmox VE', args: () => ['create', 'l', '--path', join(g.storage, 'l'), ...base().map((a) => (a === 'native' ? 'lxc' : a))], field: 'mode', rule: /not available on this host/ },
    { what: 'a missing password file', args: () => ['create', 'p', '--path', join(g.storage, 'p'), '--mode', 'native', '--user', 'newuser', '--password-file', '/nonexistent/pw', '--json'], field: 'password_file', rule: /cannot read/ },
    { what: 'a new user without a password', args: () => ['create', 'p2', '--path', join(g.storage, 'p2'), '--mode', 'native', '--user', 'newuser2', '--json'], field: 'password', rule: /has no Samba account yet: give a password for it \(on the command line: --password-file\)/ },
    { what: 'a password on the command line', args: () => ['create', 'p3', '--path', join(g.storage, 'p3'), '--mode', 'native', '--user', alice, '--password', 'x', '--json'], field: 'password', rule: /not accepted on the command line/ },
    { what: 'a forbidden smb.conf option', args: () => ['create', 'o1', '--path', join(g.storage, 'o1'), '--option', 'path=/etc', ...base()], field: 'options', rule: /may not be set through options/ },
    { what: 'an include smuggled as an option', args: () => ['create', 'o2', '--path', join(g.storage, 'o2'), '--option', 'include=/etc/samba/evil.conf', ...base()], field: 'options', rule: /may not be set/ },
    { what: 'vfs objects as an option', args: () => ['create', 'o3', '--path', join(g.storage, 'o3'), '--option', 'vfs objects=acl_xattr', ...base()], field: 'options', rule: /may not be set/ },
    { what: 'guest access with the high profile', args: () => ['create', 'g1', '--path', join(g.storage, 'g1'), '--guest', '--profile', 'high', ...base()], field: 'guest_ok', rule: /not allowed with the high security profile/ },
    { what: 'no user and no guest', args: () => ['create', 'nobody', '--path', join(g.storage, 'nobody'), '--mode', 'native', '--json'], field: 'users', rule: /at least one user or group/ },
    { what: 'an unknown option', args: () => ['create', 'u', '--path', join(g.storage, 'u'), '--colour', 'red', ...base()], field: 'colour', rule: /unknown option/ },
  );

  for (const c of cases) {
    it(`refuses ${c.what}`, async () => {
      const before = await snapshot();
      const r = await g.cli(c.args());
      assert.notEqual(r.code, 0, 'must exit non-zero');
      assert.ok(r.json, `one JSON document expected, got ${JSON.stringify(r.stdout)}`);
      assert.equal(r.json.success, false);
      assert.equal(r.json.data, null);
      assert.equal(r.json.error!.field, c.field, r.json.error!.message);
      assert.match(r.json.error!.message, c.rule);
      assert.ok(r.json.error!.message.startsWith(`${c.field}:`), `the message names the field: ${r.json.error!.message}`);
      assert.deepEqual(await snapshot(), before, 'nothing may change');
    });
  }

  it('prints a readable one-line error without --json', async () => {
    const r = await g.cli(['create', 'global', '--path', join(g.storage, 'x'), '--mode', 'native', '--user', alice]);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^error: sharename: "global" is reserved by Samba/);
  });
});
