/**
 * Samba hardening: values that reach smb.conf cannot carry % variables or a line continuation, the
 * options allowlist refuses setuid/setgid/sticky modes, root never gets a session, and the managed
 * [global] (read last) never weakens the admin's own smb.conf. Proven on a real sandboxed smbd.
 */
import { strict as assert } from 'node:assert';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseShare } from '../src/core/share.ts';
import { guestManagedConf } from '../src/provision/lxc.ts';
import { globalParams, stricter } from '../src/samba/profiles.ts';
import { parseTestparmGlobals, renderManagedConf } from '../src/samba/render.ts';
import { sh, startGateway, type TestGateway } from './helpers/gateway.ts';

const share = (over: Record<string, unknown> = {}) => parseShare({ sharename: 'projects', mode: 'native', path: '/tank/projects', users: ['alice'], ...over });
const refusal = (over: Record<string, unknown>): string => {
  try { share(over); } catch (e) { return (e as Error).message; }
  return 'accepted';
};

describe('values that reach smb.conf', () => {
  it('comment: no % (Samba variables) and no trailing backslash (line continuation)', () => {
    assert.match(refusal({ comment: 'home of %U' }), /^comment: must not contain % \(Samba would expand it/);
    assert.match(refusal({ comment: '100%' }), /^comment: must not contain %/);
    assert.match(refusal({ comment: 'ends in a \\' }), /^comment: must not end with a backslash \(smb\.conf would continue the line\)/);
    assert.match(refusal({ comment: 'ends in a \\  ' }), /^comment: must not (end with a backslash|start or end with white space)/);
    assert.equal(share({ comment: 'C:\\ drive \\ backups' }).comment, 'C:\\ drive \\ backups', 'a backslash inside is fine');
  });

  it('path: no trailing backslash either (% was already refused)', () => {
    assert.match(refusal({ path: '/tank/a\\' }), /^path: must not end with a backslash/);
    assert.match(refusal({ path: '/tank/%U' }), /^path: must not contain %/);
  });

  it('the renderer itself refuses a trailing backslash, even with unchecked data', () => {
    assert.throws(() => renderManagedConf([{ ...share(), comment: 'x\\' }]), /refusing to render a trailing backslash in smb\.conf parameter "comment"/);
  });

  it('modes in options: permission bits only, no setuid, setgid or sticky bit', () => {
    for (const name of ['create mask', 'directory mask', 'force create mode', 'force directory mode']) {
      for (const bad of ['4755', '2775', '1777', '04755', '7777', '0800', '77']) {
        assert.match(refusal({ options: [`${name.replace(/ /g, '_')}=${bad}`] }),
          new RegExp(`^options: "${name.replace(/ /g, '_')}=${bad}": value "${bad}" is not valid for "${name}": must be permission bits 000 to 0777 in octal \\(setuid, setgid and the sticky bit are refused\\)`));
      }
      for (const good of ['0770', '640']) assert.deepEqual(share({ options: [`${name}=${good}`] }).options, [`${name}=${good}`]);
    }
  });

  it('veto files: no % pattern (expanded per user or client)', () => {
    assert.match(refusal({ options: ['veto files=/%U/'] }), /^options: .*not valid for "veto files": must be \/pattern\/...\/ without % or backslashes/);
    assert.deepEqual(share({ options: ['veto files=/.DS_Store/*.tmp/'] }).options, ['veto files=/.DS_Store/*.tmp/']);
  });
});

describe('invalid users = root in every rendered share section', () => {
  it('native shares, guest shares and the config pushed into a guest', () => {
    const native = renderManagedConf([share(), share({ sharename: 'pub', path: '/tank/pub', users: [], guest_ok: true }), share({ sharename: 'none', path: '/tank/none', users: [] })]);
    const sections = native.split(/^\[/m).slice(2);
    assert.equal(sections.length, 3);
    for (const s of sections) assert.match(s, /^ {3}invalid users = root$/m, `[${s}`);
    assert.match(guestManagedConf(share({ mode: 'lxc' })), /\[projects\]\n(.*\n)*? {3}invalid users = root\n/);
  });
});

describe('the managed [global] is the stricter of ours and the admin\'s', () => {
  it('takes the admin\'s value only where it is stricter', () => {
    assert.equal(stricter('server min protocol', 'SMB2_10', 'SMB3'), 'SMB3');
    assert.equal(stricter('server min protocol', 'SMB2_10', 'SMB3_00'), 'SMB3_00');
    assert.equal(stricter('server min protocol', 'SMB2_10', 'SMB2'), 'SMB2_10', 'SMB2 is SMB2_10: not stricter');
    assert.equal(stricter('server min protocol', 'SMB3', 'SMB3_02'), 'SMB3', 'SMB3 is SMB3_11');
    assert.equal(stricter('server min protocol', 'SMB2_10', 'NT1'), 'SMB2_10');
    assert.equal(stricter('ntlm auth', 'ntlmv2-only', 'disabled'), 'disabled');
    assert.equal(stricter('ntlm auth', 'ntlmv2-only', 'ntlmv1-permitted'), 'ntlmv2-only');
    assert.equal(stricter('map to guest', 'Bad User', 'Bad Password'), 'Bad User');
    assert.equal(stricter('restrict anonymous', '2', '1'), '2');
    assert.equal(stricter('server signing', 'mandatory', 'if_required'), 'mandatory');
    assert.equal(stricter('server schannel', 'yes', 'No'), 'yes');
    assert.equal(stricter('server min protocol', 'SMB2_10', 'nonsense'), 'SMB2_10', 'unknown values never replace ours');
    assert.deepEqual(Object.fromEntries(globalParams([share()], { 'server min protocol': 'SMB3', 'ntlm auth': 'disabled', 'workgroup': 'X' })), {
      'server min protocol': 'SMB3', 'server signing': 'mandatory', 'restrict anonymous': '2', 'map to guest': 'Never', 'ntlm auth': 'disabled', 'server schannel': 'yes',
    });
  });

  it('reads testparm\'s [global] only', () => {
    assert.deepEqual(parseTestparmGlobals('# Global parameters\n[global]\n\tserver min protocol = SMB3\n\tidmap config * : backend = tdb\n\n\n[x]\n\tpath = /tmp\n'),
      { 'server min protocol': 'SMB3', 'idmap config * : backend': 'tdb' });
  });
});

describe('on a real smbd', () => {
  let g: TestGateway;
  let alice: string;
  const pw = 'Harden-pw-123';
  let pwFile: string;

  before(async () => {
    g = await startGateway();
    alice = g.user('alice');
    pwFile = await g.passwordFile(pw);
  });
  after(async () => { await g?.cleanup(); });

  it('the CLI refuses a % comment, a trailing backslash and a setuid create mode, naming the field', async () => {
    const base = ['--mode', 'native', '--user', alice, '--password-file', pwFile, '--json'];
    const cases: [string[], string, RegExp][] = [
      [['--comment', '%U\'s files'], 'comment', /^comment: must not contain %/],
      [['--comment', 'trailing \\'], 'comment', /^comment: must not end with a backslash/],
      [['--option', 'force_create_mode=4755'], 'options', /^options: "force_create_mode=4755": value "4755" is not valid for "force create mode": must be permission bits/],
    ];
    for (const [extra, field, rule] of cases) {
      const r = await g.cli(['create', 'bad', '--path', join(g.storage, 'bad'), ...extra, ...base]);
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.equal(r.json!.error!.field, field);
      assert.match(r.json!.error!.message, rule);
    }
    const ok = await g.cli(['create', 'fine', '--path', join(g.storage, 'fine'), '--comment', 'Files', ...base]);
    assert.equal(ok.code, 0, ok.stdout);
    const upd = await g.cli(['update', 'fine', '--comment', 'for %u', '--json']);
    assert.equal(upd.json!.error!.field, 'comment', upd.stdout);
    assert.doesNotMatch(await readFile(g.settings.managedConf, 'utf8'), /%u/);
  });

  it('root with a Samba password gets no session, even on a guest share that takes every account', async () => {
    const r = await g.cli(['create', 'pub', '--mode', 'native', '--path', join(g.storage, 'pub'), '--guest', '--json']);
    assert.equal(r.code, 0, r.stdout);
    // testparm reads the live config as smbd does: every share section has the line
    const tp = await sh('testparm', ['-s', g.settings.smbConf]);
    assert.equal(tp.code, 0, tp.stderr);
    const sections = tp.stdout.split(/^\[/m).filter((s) => !s.startsWith('global]') && s.includes(']'));
    assert.deepEqual(sections.map((s) => s.slice(0, s.indexOf(']'))).sort(), ['fine', 'pub']);
    for (const s of sections) assert.match(s, /^\s*invalid users = root$/m, s);
    // A root account in the (sandbox's own) passdb: refused at tree connect; alice still gets in where allowed.
    const rootPw = 'Root-pw-4567';
    await g.gw.samba.setPassword('root', rootPw, true);
    try {
      for (const name of ['pub', 'fine']) {
        const asRoot = await g.smb(name, 'root', rootPw, 'ls');
        assert.notEqual(asRoot.code, 0, `root listed ${name}: ${asRoot.stdout}`);
        assert.match(asRoot.stdout + asRoot.stderr, /NT_STATUS_ACCESS_DENIED|NT_STATUS_LOGON_FAILURE/);
      }
      assert.equal((await g.smb('pub', alice, pw, 'ls')).code, 0, 'the guest share itself works');
      assert.equal((await g.smb('fine', alice, pw, 'ls')).code, 0);
    } finally {
      await g.gw.samba.deleteUser('root');
    }
  });

  it('an admin\'s "server min protocol = SMB3" stays in force: an SMB2.1 client is refused', async () => {
    const original = await readFile(g.settings.smbConf, 'utf8');
    try {
      await writeFile(g.settings.smbConf, original.replace(/^(\s*include = )/m, '   server min protocol = SMB3\n$1'));
      assert.match(await readFile(g.settings.smbConf, 'utf8'), /server min protocol = SMB3\n\s*include = /);
      const r = await g.cli(['create', 'strict', '--mode', 'native', '--path', join(g.storage, 'strict'), '--user', alice, '--password-file', pwFile, '--json']);
      assert.equal(r.code, 0, r.stdout);
      assert.match(await readFile(g.settings.managedConf, 'utf8'), /\[global\]\n {3}server min protocol = SMB3\n/);
      const old = await g.smb('strict', alice, pw, 'ls', ['-m', 'SMB2_10']);
      assert.notEqual(old.code, 0, `an SMB2.1 client got in: ${old.stdout}`);
      assert.equal((await g.smb('strict', alice, pw, 'ls', ['-m', 'SMB3'])).code, 0, 'SMB3 clients still do');
      // what smbd reads in the end, our include and all
      const eff = await sh('testparm', ['-s', '--parameter-name=server min protocol', g.settings.smbConf]);
      assert.equal(eff.stdout.trim(), 'SMB3');
    } finally {
      await writeFile(g.settings.smbConf, original);
    }
  });
});
