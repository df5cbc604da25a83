/**
 * Share presets proven on the wire against a real smbd: each share is made with `create --preset`,
 * its smb.conf passed testparm (create refuses otherwise), and smbclient shows what the preset promises.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { purgeRecycle } from '../src/provision/recycle.ts';
import { Collector } from '../src/monitor/collector.ts';
import { MetricsDb } from '../src/monitor/db.ts';
import { renderPrometheus } from '../src/monitor/prometheus.ts';
import { sh, startGateway, waitFor, type TestGateway } from './helpers/gateway.ts';
import { scheduleRecyclePurge } from '../src/api/schedule.ts';

describe('day two: share presets over SMB', () => {
  let g: TestGateway;
  let alice: string, bob: string;
  const pw = 'Preset-pw-' + randomBytes(4).toString('hex');
  let pwFile: string;
  const create = async (name: string, args: string[], users = [alice]) => {
    const r = await g.cli(['create', name, '--mode', 'native', '--path', join(g.storage, name), ...users.flatMap((u) => ['--user', u]), '--password-file', pwFile, ...args, '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return r.json!.data.share;
  };

  before(async () => {
    g = await startGateway();
    alice = g.user('alice'); bob = g.user('bob');
    pwFile = await g.passwordFile(pw);
  });
  after(async () => { await g?.cleanup(); });

  it('timemachine: smbclient sees the max size as the disk size, and Apple streams (AFP_Resource) are stored and read back', async () => {
    const share = await create('tm', ['--preset', 'timemachine', '--timemachine-max-size', '2G']);
    assert.deepEqual(share.presets, ['timemachine']);
    const shown = await g.cli(['show', 'tm', '--json']);
    assert.equal(shown.json!.data.timemachine_max_size, '2G');
    const du = await g.smb('tm', alice, pw, 'du');
    assert.equal(du.code, 0, du.stdout + du.stderr);
    const m = /(\d+) blocks of size (\d+)\. (\d+) blocks available/.exec(du.stdout);
    assert.ok(m, du.stdout);
    assert.equal(Number(m[1]) * Number(m[2]), 2 * 2 ** 30, `total size seen over SMB: ${du.stdout}`);
    const fork = join(g.dir, 'fork.bin');
    const forkData = randomBytes(3000);
    await writeFile(fork, forkData);
    const back = join(g.dir, 'fork.back');
    const r = await g.smb('tm', alice, pw, `put ${fork} doc.txt; put ${fork} doc.txt:AFP_Resource; get doc.txt:AFP_Resource ${back}; allinfo doc.txt`);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.ok(forkData.equals(await readFile(back)), 'the resource fork reads back byte for byte');
    assert.match(r.stdout, /stream: \[:AFP_Resource:\$DATA\], 3000 bytes/);
  });

  it('macos: a name with ":" from a Mac (sent as U+F022) is stored as ":" and listed back; a ":" on disk is not mangled', async () => {
    await create('mac', ['--preset', 'macos']);
    const src = join(g.dir, 'm.txt');
    await writeFile(src, 'mac\n');
    const macName = 'report\uF022v2.txt';
    const r = await g.smb('mac', alice, pw, `put ${src} "${macName}"; ls`);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.ok((await readdir(join(g.storage, 'mac'))).includes('report:v2.txt'), 'stored with a real colon on disk');
    assert.ok(r.stdout.includes(macName), 'listed back with the private-use character macOS maps to ":"');
    await writeFile(join(g.storage, 'mac', 'from:disk.txt'), 'x');
    const ls = await g.smb('mac', alice, pw, 'ls');
    assert.ok(ls.stdout.includes('from\uF022disk.txt'), `a colon on disk is not mangled: ${ls.stdout}`);
  });

  it('recycle: a file deleted over SMB is in .recycle/<user>, comes back, and the daemon\'s scheduled purge removes old ones only', async () => {
    await create('bin', ['--preset', 'recycle', '--recycle-keep-days', '7']);
    const src = join(g.dir, 'r.txt');
    await writeFile(src, 'precious\n');
    const del = await g.smb('bin', alice, pw, `mkdir d; put ${src} d/r.txt; del d/r.txt; ls d/*`);
    assert.equal(del.code, 0, del.stdout + del.stderr);
    assert.doesNotMatch(del.stdout, /r\.txt/);
    const inBin = join(g.storage, 'bin', '.recycle', alice, 'd', 'r.txt');
    assert.equal(await readFile(inBin, 'utf8'), 'precious\n');
    const back = await g.smb('bin', alice, pw, `rename .recycle/${alice}/d/r.txt d/r.txt; get d/r.txt ${join(g.dir, 'r.back')}`);
    assert.equal(back.code, 0, back.stdout + back.stderr);
    assert.equal(await readFile(join(g.dir, 'r.back'), 'utf8'), 'precious\n');
    // Two deletions: one made 8 days old, one fresh; the purge keeps only the fresh one.
    const two = await g.smb('bin', alice, pw, `put ${src} old.txt; put ${src} new.txt; del old.txt; del new.txt`);
    assert.equal(two.code, 0, two.stdout + two.stderr);
    const old = join(g.storage, 'bin', '.recycle', alice, 'old.txt');
    const past = new Date(Date.now() - 8 * 86_400_000);
    await utimes(old, past, past);
    const share = (await g.gw.store.get('bin'))!;
    assert.deepEqual(await purgeRecycle(share, Date.now() - 86_400_000 * 2), { share: 'bin', removed: 0, kept: 2 }, 'not yet 7 days old two days ago');
    // The daemon's schedule (hourly; here every 100 ms) does the purge.
    const stop = scheduleRecyclePurge(g.gw, 100);
    try { await waitFor(() => stat(old).then(() => false, () => true), 10_000, 'the daemon\'s purge'); } finally { stop(); }
    assert.equal(await readFile(join(g.storage, 'bin', '.recycle', alice, 'new.txt'), 'utf8'), 'precious\n');
  });

  it('private: each user gets a directory made on first connect and sees only their own files', async () => {
    await create('home', ['--preset', 'private'], [alice, bob]);
    const a = join(g.dir, 'alice.txt'); const b = join(g.dir, 'bob.txt');
    await writeFile(a, 'alice\n'); await writeFile(b, 'bob\n');
    const ra = await g.smb('home', alice, pw, `put ${a} mine.txt; ls`);
    assert.equal(ra.code, 0, ra.stdout + ra.stderr);
    const rb = await g.smb('home', bob, pw, `put ${b} mine.txt; ls`);
    assert.equal(rb.code, 0, rb.stdout + rb.stderr);
    assert.equal(await readFile(join(g.storage, 'home', alice, 'mine.txt'), 'utf8'), 'alice\n');
    assert.equal(await readFile(join(g.storage, 'home', bob, 'mine.txt'), 'utf8'), 'bob\n');
    const st = await stat(join(g.storage, 'home', alice));
    assert.equal(st.mode & 0o777, 0o700);
    const back = join(g.dir, 'seen-by-bob');
    const get = await g.smb('home', bob, pw, `get mine.txt ${back}`);
    assert.equal(get.code, 0);
    assert.equal(await readFile(back, 'utf8'), 'bob\n', 'bob sees his own file under the same name, not alice\'s');
    const escape = await g.smb('home', bob, pw, `ls ../${alice}/*`);
    assert.doesNotMatch(escape.stdout, /mine\.txt/, 'bob cannot reach alice\'s directory');
  });

  it('audit: a delete over SMB shows up with user, client address and path, through the API query and the metrics counter', async () => {
    await create('aud', ['--preset', 'audit'], [alice, bob]);
    const db = new MetricsDb(join(g.dir, 'metrics.db'));
    const c = new Collector(g.gw, { db });
    try {
      await c.collect(); // baseline: the log files are followed from here
      const t0 = Math.floor(Date.now() / 1000) - 1;
      const src = join(g.dir, 'audit.txt');
      await writeFile(src, 'audited\n');
      const r = await g.smb('aud', alice, pw, `put ${src} a.txt; rename a.txt b.txt; mkdir d; del b.txt`);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal((await g.smb('aud', bob, pw, `put ${src} bob.txt`)).code, 0);
      const q = await g.cli(['audit', 'aud', '--since', String(t0), '--user', alice, '--json']);
      assert.equal(q.code, 0, q.stdout + q.stderr);
      const ev = q.json!.data as { user: string; client: string; action: string; path: string; to?: string }[];
      const brief = ev.map((e) => `${e.action} ${e.path}${e.to ? ' -> ' + e.to : ''}`);
      assert.deepEqual(brief, ['create /a.txt', 'write /a.txt', 'rename /a.txt -> /b.txt', 'mkdir /d', 'delete /b.txt'], JSON.stringify(ev));
      assert.ok(ev.every((e) => e.user === alice && e.client === '127.0.0.1'));
      const all = await g.cli(['audit', 'aud', '--since', String(t0), '--json']);
      assert.ok(all.json!.data.some((e: { user: string; path: string }) => e.user === bob && e.path === '/bob.txt'), 'bob\'s write is there without the user filter');
      await c.collect();
      const text = renderPrometheus('testnode', [...c.state.values()], c.stats);
      const m = /smbgateway_audit_events_total\{share="aud"[^}]*\} (\d+)/.exec(text);
      assert.ok(m, text);
      assert.equal(Number(m[1]), 7, 'alice 5 events, bob create + write');
    } finally { db.close(); }
  });

  it('update adds a preset to an existing share: recycle on the macos share, both work after the reload', async () => {
    const r = await g.cli(['update', 'mac', '--preset', 'macos', '--preset', 'recycle', '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(r.json!.data.share.presets, ['macos', 'recycle']);
    const conf = await readFile(g.settings.managedConf, 'utf8');
    assert.match(conf, /\[mac\]\n(   .*\n)*   vfs objects = full_audit recycle catia fruit streams_xattr\n/);
    const src = join(g.dir, 'u.txt');
    await writeFile(src, 'kept\n');
    const del = await g.smb('mac', alice, pw, `put ${src} "x\uF022y.txt"; del "x\uF022y.txt"`);
    assert.equal(del.code, 0, del.stdout + del.stderr);
    assert.equal(await readFile(join(g.storage, 'mac', '.recycle', alice, 'x:y.txt'), 'utf8'), 'kept\n');
  });

  it('update makes an existing share private: the root hands down no entries any more, and the user\'s directory is theirs', async () => {
    const r = await g.cli(['update', 'bin', '--preset', 'recycle', '--preset', 'private', '--recycle-keep-days', '7', '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const defaults = await sh('getfacl', ['-d', '-n', join(g.storage, 'bin')]);
    assert.doesNotMatch(defaults.stdout, /^default:user:\d+:/m, 'no named default entries left on the root');
    const src = join(g.dir, 'p.txt');
    await writeFile(src, 'mine\n');
    const put = await g.smb('bin', alice, pw, `put ${src} p.txt`);
    assert.equal(put.code, 0, put.stdout + put.stderr);
    assert.equal(await readFile(join(g.storage, 'bin', alice, 'p.txt'), 'utf8'), 'mine\n');
    const acl = await sh('getfacl', ['-n', join(g.storage, 'bin', alice)]);
    assert.doesNotMatch(acl.stdout, /^user:\d+:/m, 'the user\'s directory has no entries for anyone else');
  });

  it('refuses presets that do not combine or do not apply', async () => {
    const r = await g.cli(['create', 'bad', '--mode', 'native', '--path', join(g.storage, 'bad'), '--guest', '--preset', 'private', '--json']);
    assert.equal(r.code, 2);
    assert.match(r.json!.error!.message, /private .*cannot be combined with guest access/);
    const r2 = await g.cli(['create', 'bad', '--mode', 'native', '--path', join(g.storage, 'bad'), '--user', alice, '--recycle-keep-days', '3', '--json']);
    assert.equal(r2.code, 2);
    assert.match(r2.json!.error!.message, /recycle_keep_days: applies to the recycle preset only/);
  });
});
