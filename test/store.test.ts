/**
 * The config store: section-config round trip, the mkdir lock, two concurrent creates, and
 * migration from an older storage.cfg.
 */
import { strict as assert } from 'node:assert';
import { mkdir, mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { withLock } from '../src/core/lock.ts';
import { parseSectionConfig, renderSectionConfig } from '../src/core/sectionconfig.ts';
import { parseShare } from '../src/core/share.ts';
import { ShareStore } from '../src/core/store.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';

describe('section config and store', () => {
  let dir: string;
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'smbgw-store-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  it('round-trips shares in Proxmox section-config syntax', async () => {
    const store = new ShareStore({ storeDir: join(dir, 'etc'), lockDir: join(dir, 'lock') });
    const a = parseShare({ sharename: 'Projects', mode: 'native', path: '/tank/projects', quota: '50G', users: ['alice', 'bob'], comment: 'Team files; #1' });
    await store.write([a]);
    const text = await readFile(store.cfgPath, 'utf8');
    assert.match(text, /^smbgateway: Projects\n\tmode native\n\tpath \/tank\/projects\n\tquota 50G\n/m);
    assert.match(text, /\n\tusers alice,bob\n/);
    assert.deepEqual(await store.list(), [a]);
    assert.equal((await store.get('PROJECTS'))?.sharename, 'Projects');
    assert.equal((await stat(store.cfgPath)).mode & 0o777, 0o640);
    await store.writeSecret('Projects', 'alice', 'pw');
    assert.equal((await stat(store.secretPath('Projects', 'alice'))).mode & 0o777, 0o600);
    assert.equal((await stat(store.privDir)).mode & 0o777, 0o700);
  });

  it('parses storage.cfg with comments, several types and flags', () => {
    const secs = parseSectionConfig('# comment\ndir: local\n\tpath /var/lib/vz\n\tcontent iso,vztmpl\n\nsmbgateway: s1\n\tpath /x\n\tdisable\n');
    assert.deepEqual(secs, [
      { type: 'dir', id: 'local', props: { path: '/var/lib/vz', content: 'iso,vztmpl' } },
      { type: 'smbgateway', id: 's1', props: { path: '/x', disable: '' } },
    ]);
    assert.deepEqual(parseSectionConfig(renderSectionConfig(secs)), secs);
  });

  it('serializes lock holders and breaks a stale lock', async () => {
    const lockDir = join(dir, 'locks');
    const order: string[] = [];
    const hold = (n: string, ms: number) => withLock(lockDir, 'l', async () => { order.push(`in ${n}`); await new Promise((r) => setTimeout(r, ms)); order.push(`out ${n}`); });
    await Promise.all([hold('a', 200), hold('b', 10)]);
    assert.deepEqual(order.slice(0, 2).map((x) => x.slice(0, 3)), ['in ', 'out']);
    assert.equal(order[0]!.slice(3), order[1]!.slice(4));
    // a lock directory left by a crashed process, older than the stale limit
    await mkdir(join(lockDir, 'l'));
    const old = new Date(Date.now() - 200_000);
    await utimes(join(lockDir, 'l'), old, old);
    assert.equal(await withLock(lockDir, 'l', async () => 'got it', { timeoutMs: 2000 }), 'got it');
    // a fresh lock held by someone else times out with a clear error
    await mkdir(join(lockDir, 'l'));
    await assert.rejects(withLock(lockDir, 'l', async () => 'no', { timeoutMs: 300 }), /could not get lock .*held by another operation/);
  });
});

describe('two concurrent creates and migrate, through the CLI', () => {
  let g: TestGateway;
  let alice: string;
  let pwFile: string;
  before(async () => {
    g = await startGateway();
    alice = g.user('alice');
    pwFile = await g.passwordFile('Concurrent-pw-1');
  });
  after(async () => { await g?.cleanup(); });

  it('never loses either share', async () => {
    const mk = (n: string) => g.cli(['create', n, '--mode', 'native', '--path', join(g.storage, n), '--user', alice, '--password-file', pwFile, '--json']);
    const rs = await Promise.all([mk('one'), mk('two'), mk('three')]);
    for (const r of rs) assert.equal(r.code, 0, r.stdout + r.stderr);
    const names = (await g.gw.store.list()).map((s) => s.sharename).sort();
    assert.deepEqual(names, ['one', 'three', 'two']);
    const conf = await readFile(g.settings.managedConf, 'utf8');
    for (const n of names) {
      assert.match(conf, new RegExp(`^\\[${n}\\]$`, 'm'));
      const ls = await g.smb(n, alice, 'Concurrent-pw-1', 'ls');
      assert.equal(ls.code, 0, `${n}: ${ls.stderr}`);
    }
  });

  it('migrates the cluster storage.cfg through the checks create makes, and reports what it did', async () => {
    const cfg = join(g.dir, 'storage.cfg');
    for (const d of ['legacy2', 'nousers', 'x1', 'root-user']) await mkdir(join(g.storage, d), { recursive: true });
    await writeFile(cfg, [
      'dir: local', '\tpath /var/lib/vz', '\tcontent iso,vztmpl,backup', '',
      'smbgateway: legacy1', `\tpath ${join(g.storage, 'legacy1')}`, '\tsharename Legacy1', '\tmode lxc', '\tquota 10G', '\tnodes pve1', '',
      'smbgateway: legacy2', `\tpath ${join(g.storage, 'legacy2')}`, '\tmode native', '\tusers ' + alice, '\tcustom_thing 42', '\tcontent images', '',
      'smbgateway: nousers', `\tpath ${join(g.storage, 'nousers')}`, '\tmode native', '',
      'smbgateway: broken', '\tpath relative/path', '\tmode native', '',
      'smbgateway: one', `\tpath ${join(g.storage, 'x1')}`, '\tmode native', '\tusers ' + alice, '',
      'smbgateway: slash', '\tpath /', '\tmode native', '\tusers ' + alice, '',
      'smbgateway: rooted', `\tpath ${join(g.storage, 'root-user')}`, '\tmode native', '\tusers root', '',
      'smbgateway: inner', `\tpath ${join(g.storage, 'legacy2', 'sub')}`, '\tmode native', '\tusers ' + alice, '',
      'smbgateway: made', `\tpath ${join(g.storage, 'nousers')}`, '\tmode native', '\tusers ' + alice, `\tcreated [{"kind":"dir","path":"${join(g.storage, 'nousers')}"}]`, '',
    ].join('\n'));
    // migrate reads the storage_cfg setting, never a file the caller names
    await writeFile(g.settingsFile, JSON.stringify({ ...JSON.parse(await readFile(g.settingsFile, 'utf8')), storage_cfg: cfg }));
    const named = await g.cli(['migrate', '--storage-cfg', '/etc/shadow', '--json']);
    assert.equal(named.code, 2);
    assert.match(named.json!.error!.message, /unknown option --storage-cfg/);

    const dry = await g.cli(['migrate', '--dry-run', '--json']);
    assert.equal(dry.code, 0, dry.stdout);
    assert.deepEqual(dry.json!.data.imported.map((i: { sharename: string }) => i.sharename), ['legacy2']);
    assert.equal((await g.gw.store.list()).length, 3, 'a dry run changes nothing');

    const r = await g.cli(['migrate', '--json']);
    assert.equal(r.code, 0, r.stdout);
    const d = r.json!.data;
    assert.equal(d.source, cfg);
    assert.deepEqual(d.imported.map((i: { sharename: string }) => i.sharename), ['legacy2']);
    assert.deepEqual(d.imported[0].unmapped, { custom_thing: '42' });
    const reasons = Object.fromEntries(d.skipped.map((s: { storage: string; reason: string }) => [s.storage, s.reason]));
    assert.match(reasons.legacy1, /^mode: lxc shares are not imported/);
    assert.match(reasons.nousers, /^users: at least one user or group must have access/);
    assert.match(reasons.broken, /^path: must be an absolute path/);
    assert.match(reasons.one, /^sharename: a share named "one" already exists/);
    assert.match(reasons.slash, /^path: \/ resolves to \/, which is not inside an allowed storage root/);
    assert.match(reasons.rooted, /^users: "root": root is a system account/);
    assert.match(reasons.inner, /^path: .* lies inside share "legacy2"/);
    assert.match(reasons.made, /^created: unknown parameter/);
    // the native one is served by the host's smbd now, and alice (made by the gateway) logs on to it
    assert.match(await readFile(g.settings.managedConf, 'utf8'), /^\[legacy2\]$/m);
    assert.equal((await g.smb('legacy2', alice, 'Concurrent-pw-1', 'ls')).code, 0);
    const human = await g.cli(['migrate']);
    assert.match(human.stdout, /imported 0 share\(s\), skipped 9/);
  });
});
