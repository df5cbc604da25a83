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
    pwFile = join(g.dir, 'pw');
    await writeFile(pwFile, 'Concurrent-pw-1\n', { mode: 0o600 });
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

  it('migrates smbgateway entries of an older storage.cfg and reports what it did', async () => {
    const cfg = join(g.dir, 'storage.cfg');
    await writeFile(cfg, [
      'dir: local', '\tpath /var/lib/vz', '\tcontent iso,vztmpl,backup', '',
      'smbgateway: legacy1', `\tpath ${join(g.storage, 'legacy1')}`, '\tsharename Legacy1', '\tmode lxc', '\tquota 10G',
      '\tad_domain example.com', '\tctdb_vip 192.0.2.10', '\tha_enabled 1', '\tvm_memory 4096', '\tcontent images', '\tnodes pve1', '\tcustom_thing 42', '',
      'smbgateway: legacy2', `\tpath ${join(g.storage, 'legacy2')}`, '\tmode native', '\tusers ' + alice, '',
      'smbgateway: nousers', `\tpath ${join(g.storage, 'nousers')}`, '\tmode native', '',
      'smbgateway: broken', '\tpath relative/path', '\tmode native', '',
      'smbgateway: one', `\tpath ${join(g.storage, 'x1')}`, '\tmode native', '',
    ].join('\n'));
    const dry = await g.cli(['migrate', '--storage-cfg', cfg, '--dry-run', '--json']);
    assert.equal(dry.code, 0, dry.stdout);
    assert.equal(dry.json!.data.imported.length, 3);
    assert.equal((await g.gw.store.list()).length, 3, 'a dry run changes nothing');

    const r = await g.cli(['migrate', '--storage-cfg', cfg, '--json']);
    assert.equal(r.code, 0, r.stdout);
    const d = r.json!.data;
    assert.deepEqual(d.imported.map((i: { sharename: string }) => i.sharename), ['Legacy1', 'legacy2', 'nousers']);
    assert.deepEqual(d.imported[0].unmapped, { custom_thing: '42' });
    assert.deepEqual(d.skipped.map((s: { storage: string }) => s.storage), ['broken', 'one']);
    assert.match(d.skipped[0].reason, /path: must be an absolute path/);
    assert.match(d.skipped[1].reason, /already exists/);
    const legacy = await g.gw.store.get('legacy1');
    assert.deepEqual(
      { mode: legacy!.mode, quota: legacy!.quota, ad: legacy!.ad_domain, vip: legacy!.ctdb_vip, ha: legacy!.ha_enabled, mem: legacy!.vm_memory, node: legacy!.node },
      { mode: 'lxc', quota: '10G', ad: 'example.com', vip: '192.0.2.10', ha: true, mem: 4096, node: 'pve1' },
    );
    // the native one is served by the host's smbd now
    await mkdir(join(g.storage, 'legacy2'), { recursive: true });
    assert.match(await readFile(g.settings.managedConf, 'utf8'), /^\[legacy2\]$/m);
    // a share nobody was given access to is imported but stays unavailable until users are added
    assert.match(await readFile(g.settings.managedConf, 'utf8'), /^\[nousers\]\n {3}path = .*\n {3}read only = yes\n {3}available = no$/m);
    const human = await g.cli(['migrate', '--storage-cfg', cfg]);
    assert.match(human.stdout, /imported 0 share\(s\), skipped 5/);
  });
});
