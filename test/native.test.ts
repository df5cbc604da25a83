/**
 * Native mode end to end against a real smbd: create, put/get over SMB, access rules, status, delete.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { spawn } from 'node:child_process';
import { startGateway, type TestGateway } from './helpers/gateway.ts';

describe('native mode on a real smbd', () => {
  let g: TestGateway;
  let alice: string, bob: string, carol: string;
  const pw = { alice: 'Alice-pw-' + randomBytes(4).toString('hex'), bob: 'Bob-pw-' + randomBytes(4).toString('hex'), carol: 'Carol-pw-' + randomBytes(4).toString('hex') };
  let pwFile: string;

  before(async () => {
    g = await startGateway();
    alice = g.user('alice'); bob = g.user('bob'); carol = g.user('carol');
    pwFile = join(g.dir, 'pw.txt');
    await writeFile(pwFile, `${alice}:${pw.alice}\n${bob}:${pw.bob}\n${carol}:${pw.carol}\n`, { mode: 0o600 });
  });
  after(async () => { await g?.cleanup(); });

  it('creates a share that alice reaches over SMB, 10 MB round trip byte for byte', async () => {
    const r = await g.cli(['create', 'projects', '--mode', 'native', '--path', join(g.storage, 'projects'), '--user', alice,
      '--read-user', bob, '--password-file', pwFile, '--json'], {});
    assert.equal(r.code, 2, 'carol is in the password file but not given access: bad input exits 2');
    assert.match(r.json!.error!.message, /names user .*carol/);
    await writeFile(pwFile, `${alice}:${pw.alice}\n${bob}:${pw.bob}\n`, { mode: 0o600 });
    const ok = await g.cli(['create', 'projects', '--mode', 'native', '--path', join(g.storage, 'projects'), '--user', alice,
      '--read-user', bob, '--password-file', pwFile, '--comment', 'Project files', '--json']);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.equal(ok.json!.success, true);
    assert.equal(ok.json!.data.share.sharename, 'projects');
    assert.ok(!Number.isNaN(Date.parse(ok.json!.timestamp)));

    const src = join(g.dir, 'random.bin');
    const back = join(g.dir, 'random.back');
    const data = randomBytes(10 * 1024 * 1024);
    await writeFile(src, data);
    const put = await g.smb('projects', alice, pw.alice, `put ${src} random.bin; get random.bin ${back}`);
    assert.equal(put.code, 0, put.stdout + put.stderr);
    assert.ok(data.equals(await readFile(back)), 'bytes read back over SMB differ');
    const onDisk = await stat(join(g.storage, 'projects', 'random.bin'));
    assert.equal(onDisk.size, data.length);
  });

  it('refuses a wrong password and a user without access', async () => {
    const wrong = await g.smb('projects', alice, 'not-the-password', 'ls');
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stdout + wrong.stderr, /NT_STATUS_LOGON_FAILURE/);
    // carol has a Samba account (another share) but no access to this one
    const other = await g.cli(['create', 'other', '--mode', 'native', '--path', join(g.storage, 'other'), '--user', carol, '--password-file', '-', '--json'], { input: pw.carol + '\n' });
    assert.equal(other.code, 0, other.stdout);
    const denied = await g.smb('projects', carol, pw.carol, 'ls');
    assert.notEqual(denied.code, 0);
    assert.match(denied.stdout + denied.stderr, /NT_STATUS_ACCESS_DENIED/);
  });

  it('lets a read-only user read but not write', async () => {
    const ls = await g.smb('projects', bob, pw.bob, 'ls random.bin');
    assert.equal(ls.code, 0, ls.stdout + ls.stderr);
    const src = join(g.dir, 'small.txt');
    await writeFile(src, 'hello');
    const put = await g.smb('projects', bob, pw.bob, `put ${src} bob.txt`);
    assert.match(put.stdout + put.stderr, /NT_STATUS_ACCESS_DENIED/);
    await assert.rejects(stat(join(g.storage, 'projects', 'bob.txt')));
  });

  it('lists the shares and reports status with usage and sessions', async () => {
    const l = await g.cli(['list', '--json']);
    assert.deepEqual(l.json!.data.map((s: { sharename: string }) => s.sharename).sort(), ['other', 'projects']);
    const human = await g.cli(['list']);
    assert.match(human.stdout, /^NAME\s+MODE\s+PATH/m);
    assert.match(human.stdout, /projects\s+native/);
    const st = await g.cli(['status', 'projects', '--json']);
    assert.equal(st.code, 0, st.stdout);
    const d = st.json!.data;
    assert.equal(d.served, true, JSON.stringify(d));
    assert.equal(d.in_config, true);
    assert.ok(d.usage.used >= 10 * 1024 * 1024, `usage ${d.usage.used}`);
    assert.deepEqual(d.warnings, []);
    const sh = await g.cli(['status', 'projects']);
    assert.match(sh.stdout, /served:\s+yes/);
  });

  it('delete drops a connected client and removes the share', async () => {
    // A client holding a session open on the share while we delete it.
    // stdbuf: smbclient's stdout is block-buffered on a pipe.
    const client = spawn('stdbuf', ['-oL', '-eL', 'smbclient', '-s', '/dev/null', '//127.0.0.1/projects', '-p', String(g.sandbox.port), '-U', `${alice}%${pw.alice}`], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    client.stdin.on('error', () => undefined);
    client.stdout.on('data', (d) => (out += d));
    client.stderr.on('data', (d) => (out += d));
    client.stdin.write('ls\n');
    await waitFor(() => out.includes('random.bin'), 10_000);
    const before = await g.cli(['status', 'projects', '--json']);
    assert.ok(before.json!.data.sessions.some((s: { user: string }) => s.user === alice), JSON.stringify(before.json!.data.sessions));

    const del = await g.cli(['delete', 'projects', '--json']);
    assert.equal(del.code, 0, del.stdout + del.stderr);
    out = '';
    client.stdin.write('ls\n');
    await waitFor(() => /NT_STATUS_NETWORK_NAME_DELETED|NT_STATUS_CONNECTION|NT_STATUS_NETWORK_SESSION_EXPIRED|NT_STATUS_USER_SESSION_DELETED|disconnected|NT_STATUS_/.test(out), 10_000);
    client.kill();
    assert.doesNotMatch(out, /random\.bin/, 'the old client still lists the deleted share');

    const again = await g.smb('projects', carol, pw.carol, 'ls');
    assert.match(again.stdout + again.stderr, /NT_STATUS_BAD_NETWORK_NAME/);
    const gone = await g.smb('projects', alice, pw.alice, 'ls');
    assert.match(gone.stdout + gone.stderr, /NT_STATUS_LOGON_FAILURE/, "alice's Samba account was removed with the share");
    const l = await g.cli(['list', '--json']);
    assert.deepEqual(l.json!.data.map((s: { sharename: string }) => s.sharename), ['other']);
    assert.doesNotMatch(await readFile(g.settings.managedConf, 'utf8'), /\[projects\]/);
    // the data stays (no --purge); alice's Samba account is gone, carol's (still used) stays
    assert.ok((await stat(join(g.storage, 'projects', 'random.bin'))).size > 0);
    assert.equal(await g.gw.samba.userExists(alice), false);
    assert.equal(await g.gw.samba.userExists(carol), true);
    const st = await g.cli(['status', 'projects', '--json']);
    assert.equal(st.json!.error!.code, 'not_found');
  });

  it('status warns when smb.conf does not load the managed file', async () => {
    const original = await readFile(g.settings.smbConf, 'utf8');
    try {
      await writeFile(g.settings.smbConf, original.replace(/^\s*include = .*$/m, ''));
      const st = await g.cli(['status', 'other', '--json']);
      const d = st.json!.data;
      assert.equal(d.in_config, false);
      assert.equal(d.served, false);
      assert.ok(d.warnings.some((w: string) => w.includes(`add the line "include = ${g.settings.managedConf}"`)), JSON.stringify(d.warnings));
      assert.match((await g.cli(['status', 'other'])).stdout, /served:\s+NO .*NOT in smb\.conf[\s\S]*warning: .* does not load the gateway's shares/);
    } finally {
      await writeFile(g.settings.smbConf, original);
    }
  });
});

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}
