/**
 * Share roots are closed to everyone the share does not name: local accounts (checked with su as
 * that account), the users of an enclosing directory's default ACL or of an enclosing share (checked
 * over SMB), and, after a delete, an account that gets the uid of one the gateway removed.
 */
import { strict as assert } from 'node:assert';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sh, startGateway, type TestGateway } from './helpers/gateway.ts';
import { zfsPool, type TestFs } from './helpers/fs.ts';

describe('share roots and their ACLs', () => {
  let g: TestGateway;
  let alice: string, bob: string, carol: string;
  const pw = 'Isolation-pw-1';
  let pwFile: string;

  /** Run a command as a local account (nologin accounts too). */
  const as = (user: string, cmd: string) => sh('su', ['-s', '/bin/sh', user, '-c', cmd]);
  const getfacl = async (path: string, ...flags: string[]) => {
    const r = await sh('getfacl', ['--absolute-names', ...flags, '--', path]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  /** A plain local account that no share names (what every other account on the host is). */
  const localAccount = async (suffix: string, uid?: number) => {
    const name = g.user(suffix);
    const r = await sh('useradd', ['--no-create-home', '--shell', '/usr/sbin/nologin', '--user-group', ...(uid === undefined ? [] : ['--uid', String(uid)]), name]);
    assert.equal(r.code, 0, r.stderr);
    return name;
  };
  const create = (name: string, path: string, args: string[], env: Record<string, string> = {}) =>
    g.cli(['create', name, '--mode', 'native', '--path', path, ...args, '--password-file', pwFile, '--json'], { env });
  const put = async (share: string, user: string, remote: string, text: string) => {
    const f = join(g.dir, 'up.txt');
    await writeFile(f, text);
    const r = await g.smb(share, user, pw, `put ${f} ${remote}`);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  };

  before(async () => {
    g = await startGateway();
    alice = g.user('alice');
    bob = g.user('bob');
    pwFile = await g.passwordFile(pw);
    carol = await localAccount('carol');
  });
  after(async () => { await g?.cleanup(); });

  it('a root the gateway makes: other::---, mode 0770 with the mask, and a local account can neither list nor read it', async () => {
    const path = join(g.storage, 'projects');
    const r = await create('projects', path, ['--user', alice, '--read-user', bob]);
    assert.equal(r.code, 0, r.stdout);
    const acl = await getfacl(path);
    for (const e of ['user::rwx', `user:${alice}:rwx`, `user:${bob}:r-x`, 'group::---', 'mask::rwx', 'other::---',
      `default:user:${alice}:rwx`, 'default:group::---', 'default:other::---']) assert.ok(acl.split('\n').includes(e), `${e} missing in\n${acl}`);
    assert.equal((await stat(path)).mode & 0o777, 0o770);

    await put('projects', alice, 'plan.txt', 'secret plan');
    assert.match(await getfacl(join(path, 'plan.txt')), /^other::---$/m, 'files written over SMB are closed to other too');
    const ls = await as(carol, `ls ${path}`);
    assert.notEqual(ls.code, 0, `carol listed the share: ${ls.stdout}`);
    assert.match(ls.stderr, /Permission denied/);
    const cat = await as(carol, `cat ${join(path, 'plan.txt')}`);
    assert.notEqual(cat.code, 0, `carol read a file: ${cat.stdout}`);
    // the share's own users keep their access, locally as over SMB
    assert.equal((await as(bob, `cat ${join(path, 'plan.txt')}`)).stdout, 'secret plan');
    assert.equal((await g.smb('projects', bob, pw, 'ls plan.txt')).code, 0);
  });

  it('an existing directory: only "other" loses access (admin entries stay), and a rollback restores mode and ACL byte for byte', async () => {
    const path = join(g.storage, 'existing');
    await mkdir(path);
    await sh('chmod', ['2775', path]);
    const dave = await localAccount('dave');
    assert.equal((await sh('setfacl', ['-m', `u:${dave}:r-x,d:u:${dave}:r-x,d:o::r-x`, path])).code, 0);
    const before = await getfacl(path);
    const modeBefore = (await stat(path)).mode;

    const failed = await create('existing', path, ['--user', alice], { SMBGW_FAIL_AT: 'health-check' });
    assert.equal(failed.code, 1, failed.stdout);
    assert.equal(await getfacl(path), before, 'the rollback puts back the ACL exactly');
    assert.equal((await stat(path)).mode, modeBefore, 'and the mode (setgid included)');
    assert.equal((await as(carol, `ls ${path}`)).code, 0, 'before the share, other could list it (the test sees a difference)');

    const ok = await create('existing', path, ['--user', alice]);
    assert.equal(ok.code, 0, ok.stdout);
    const acl = await getfacl(path);
    assert.match(acl, /^other::---$/m);
    assert.match(acl, /^default:other::---$/m);
    assert.match(acl, new RegExp(`^user:${dave}:r-x$`, 'm'), 'the admin\'s own entry is kept');
    assert.match(acl, /^# flags: -s-$/m, 'setgid is kept');
    assert.notEqual((await as(carol, `ls ${path}`)).code, 0, 'carol can no longer list it');
    assert.equal((await as(dave, `ls ${path}`)).code, 0, 'dave, whom the admin granted, still can');
  });

  it('a root made inside a directory with a default ACL inherits none of it', async () => {
    const team = join(g.storage, 'team');
    await mkdir(team);
    assert.equal((await sh('setfacl', ['-m', `u:${carol}:rwx,d:u:${carol}:rwx`, team])).code, 0);
    const path = join(team, 'inner');
    const r = await create('inner', path, ['--user', alice]);
    assert.equal(r.code, 0, r.stdout);
    const acl = await getfacl(path);
    assert.doesNotMatch(acl, new RegExp(carol), `an inherited entry is left:\n${acl}`);
    const ls = await as(carol, `ls ${path}`);
    assert.notEqual(ls.code, 0, `carol listed the new share: ${ls.stdout}`);
    assert.equal((await as(carol, `ls ${team}`)).code, 0, 'the enclosing directory itself is untouched');
  });

  it('delete removes the share\'s ACL entries everywhere below its path: an account that later gets the uid reads nothing', async () => {
    const erin = g.user('erin');
    const path = join(g.storage, 'gone');
    assert.equal((await create('gone', path, ['--user', erin])).code, 0);
    assert.equal((await g.smb('gone', erin, pw, 'mkdir sub')).code, 0);
    await put('gone', erin, 'sub\\file.txt', 'erin\'s data');
    const uid = Number((await sh('id', ['-u', erin])).stdout.trim());
    const withIds = await getfacl(path, '-R', '-n');
    for (const f of [path, join(path, 'sub'), join(path, 'sub/file.txt')]) {
      assert.match(withIds, new RegExp(`# file: ${f}\\n(?:.+\\n)*?user:${uid}:`), `${f} has erin's entry before the delete`);
    }

    // a delete that fails after the entries went puts every one of them back
    const failed = await g.cli(['delete', 'gone', '--json'], { env: { SMBGW_FAIL_AT: 'remove-unix-users' } });
    assert.equal(failed.code, 1, failed.stdout);
    assert.equal(await getfacl(path, '-R', '-n'), withIds);

    const del = await g.cli(['delete', 'gone', '--json']);
    assert.equal(del.code, 0, del.stdout);
    assert.equal((await sh('id', [erin])).code, 1, 'erin\'s account was removed (the gateway made it)');
    assert.equal(await readFile(join(path, 'sub/file.txt'), 'utf8'), 'erin\'s data', 'the data stays');

    const mallory = await localAccount('mallory', uid);
    const cat = await as(mallory, `cat ${join(path, 'sub/file.txt')}`);
    assert.notEqual(cat.code, 0, `the new owner of uid ${uid} read the old share: ${cat.stdout}`);
    assert.notEqual((await as(mallory, `ls ${path}`)).code, 0);
    const after = await getfacl(path, '-R', '-n');
    assert.doesNotMatch(after, new RegExp(`user:${uid}:`), `entries for uid ${uid} are left:\n${after}`);
    assert.ok(del.json!.data.steps.includes('revoke-permissions'), JSON.stringify(del.json!.data.steps));
  });

  describe('without POSIX ACLs (zfs-fuse)', () => {
    let fs: TestFs & { pool: string };
    before(async () => { fs = await zfsPool(g.dir, `smbgwi${g.id}`, join(g.storage, 'zfs')); });
    after(async () => { await fs?.cleanup(); });

    it('the first writer owns the new dataset with mode 0700: other local accounts cannot list it', async () => {
      const path = join(fs.mountpoint, 'zshare');
      const r = await create('zshare', path, ['--user', alice, '--read-user', bob]);
      assert.equal(r.code, 0, r.stdout);
      assert.ok(r.json!.data.warnings.some((w: string) => w.includes(`has no POSIX ACLs: ${path} belongs to ${alice} (mode 0700); ${bob} can reach it only where unix permissions allow`)), JSON.stringify(r.json!.data.warnings));
      const st = await stat(path);
      assert.equal(st.mode & 0o7777, 0o700);
      assert.equal(st.uid, Number((await sh('id', ['-u', alice])).stdout.trim()));
      assert.notEqual((await as(carol, `ls ${path}`)).code, 0, 'carol listed the dataset');
      await put('zshare', alice, 'z.txt', 'on zfs');
      assert.equal((await g.smb('zshare', alice, pw, 'ls z.txt')).code, 0);
    });
  });
});
