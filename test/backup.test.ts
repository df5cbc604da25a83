/**
 * Snapshots of native shares on real filesystems: backup, Previous Versions over SMB (shadow_copy2
 * on btrfs), restore with the quota kept, ZFS snapshots and rollback through zfs-fuse, and ZFS
 * `restore --file` through a temporary clone of the snapshot (zfs-fuse has no .zfs directory).
 */
import { strict as assert } from 'node:assert';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sh, startGateway, type TestGateway } from './helpers/gateway.ts';
import { btrfsLoop, zfsPool, type TestFs } from './helpers/fs.ts';
import { execRunner } from '../src/core/exec.ts';
import { applyPlan } from '../src/core/plan.ts';
import { zfsFileRestoreSteps } from '../src/backup/zfs-file.ts';

describe('backup and restore of native shares', () => {
  let g: TestGateway;
  let alice: string;
  let pwFile: string;
  const pw = 'Backup-pw-123';
  const put = (share: string, text: string) => g.putText(share, alice, pw, 'doc.txt', text);
  const get = (share: string, remote = 'doc.txt') => g.getText(share, alice, pw, remote);

  before(async () => {
    g = await startGateway();
    alice = g.user('alice');
    pwFile = await g.passwordFile(pw);
  });
  after(async () => { await g?.cleanup(); });

  describe('btrfs', () => {
    let fs: TestFs;
    before(async () => { fs = await btrfsLoop(g.dir, join(g.storage, 'btrfs')); });
    after(async () => { await fs?.cleanup(); });

    it('shows snapshots as Previous Versions and restores the whole share', async () => {
      const c = await g.cli(['create', 'docs', '--mode', 'native', '--path', join(fs.mountpoint, 'docs'), '--quota', '40M', '--user', alice, '--password-file', pwFile, '--json']);
      assert.equal(c.code, 0, c.stdout);
      await put('docs', 'version 1');
      const b = await g.cli(['backup', 'docs', '--json']);
      assert.equal(b.code, 0, b.stdout);
      const snap: string = b.json!.data.snapshot;
      assert.match(snap, /^smbgw-\d{4}\.\d\d\.\d\d-\d\d\.\d\d\.\d\d$/);
      await put('docs', 'version 2');

      // What Windows' "Previous Versions" asks for: the @GMT token of the snapshot, then the old file.
      const info = await g.smb('docs', alice, pw, 'allinfo doc.txt');
      const token = /@GMT-[\d.-]+/.exec(info.stdout)?.[0];
      assert.ok(token, `no previous version listed: ${info.stdout}`);
      assert.equal(await get('docs', `${token}\\doc.txt`), 'version 1');
      assert.equal(await get('docs'), 'version 2');

      const list = await g.cli(['snapshots', 'docs', '--json']);
      assert.deepEqual(list.json!.data.map((s: { name: string }) => s.name), [snap]);

      const r = await g.cli(['restore', 'docs', '--snapshot', snap, '--json']);
      assert.equal(r.code, 0, r.stdout);
      assert.equal(await get('docs'), 'version 1');
      // the state before the restore is kept as a snapshot, and the quota still holds
      const safety: string = r.json!.data.safety_snapshot;
      const after = await g.cli(['snapshots', 'docs', '--json']);
      assert.deepEqual(after.json!.data.map((s: { name: string }) => s.name), [snap, safety]);
      const st = await g.cli(['status', 'docs', '--json']);
      assert.equal(st.json!.data.usage.limit, 40 * 1024 * 1024);
      const again = await g.cli(['restore', 'docs', '--snapshot', safety, '--json']);
      assert.equal(again.code, 0, again.stdout);
      assert.equal(await get('docs'), 'version 2', 'a restore can itself be undone');
    });

    it('refuses a restore that would drop a subvolume the gateway did not make inside the share', async () => {
      const nested = join(fs.mountpoint, 'docs', 'nested');
      assert.equal((await sh('btrfs', ['subvolume', 'create', nested])).code, 0);
      await writeFile(join(nested, 'keep.txt'), 'inside a nested subvolume');
      try {
        const before = (await g.cli(['snapshots', 'docs', '--json'])).json!.data;
        const snap: string = before[0].name;
        const r = await g.cli(['restore', 'docs', '--snapshot', snap, '--json']);
        assert.equal(r.code, 2, r.stdout);
        assert.equal(r.json!.error!.field, 'snapshot');
        assert.match(r.json!.error!.message, /contains btrfs subvolumes the gateway did not make \(docs\/nested\).*move them out of the share first/);
        assert.equal(await readFile(join(nested, 'keep.txt'), 'utf8'), 'inside a nested subvolume');
        assert.deepEqual((await g.cli(['snapshots', 'docs', '--json'])).json!.data, before, 'the safety snapshot was undone');
      } finally {
        await sh('btrfs', ['subvolume', 'delete', nested]);
      }
    });

    it('backup --keep prunes the oldest, and a failed backup leaves no snapshot', async () => {
      const failed = await g.cli(['backup', 'docs', '--json'], { env: { SMBGW_FAIL_AT: 'snapshot' } });
      assert.equal(failed.code, 1);
      const before = (await g.cli(['snapshots', 'docs', '--json'])).json!.data.length;
      const k = await g.cli(['backup', 'docs', '--keep', '2', '--json']);
      assert.equal(k.code, 0, k.stdout);
      assert.equal(k.json!.data.pruned.length, before + 1 - 2);
      assert.equal((await g.cli(['snapshots', 'docs', '--json'])).json!.data.length, 2);
      // delete --purge takes the snapshots with the subvolume
      const d = await g.cli(['delete', 'docs', '--purge', '--json']);
      assert.equal(d.code, 0, d.stdout);
      const left = await sh('btrfs', ['subvolume', 'list', fs.mountpoint]);
      assert.equal(left.stdout.trim(), '', `subvolumes left: ${left.stdout}`);
    });

    it('refuses snapshots of a plain directory and unknown snapshots', async () => {
      const c = await g.cli(['create', 'plain', '--mode', 'native', '--path', join(g.storage, 'plain'), '--user', alice, '--password-file', pwFile, '--json']);
      assert.equal(c.code, 0, c.stdout);
      const b = await g.cli(['backup', 'plain', '--json']);
      assert.equal(b.json!.error!.field, 'sharename');
      assert.match(b.json!.error!.message, /plain directory: snapshots need a ZFS dataset or a btrfs subvolume/);
      const r = await g.cli(['restore', 'plain', '--snapshot', 'smbgw-2001.01.01-00.00.00', '--json']);
      assert.equal(r.json!.error!.field, 'sharename');
      const bad = await g.cli(['restore', 'plain', '--snapshot', '../../etc', '--json']);
      assert.equal(bad.json!.error!.field, 'snapshot');
    });

    it('replicate sends the share\'s snapshots to another btrfs filesystem, then only the new ones (btrfs send -p | receive)', async () => {
      // A directory of its own: btrfsLoop names its image btrfs.img.
      const d2 = join(g.dir, 'replica');
      await mkdir(d2, { recursive: true });
      const fs2 = await btrfsLoop(d2, join(g.storage, 'btrfs-replica'), 200);
      try {
        const c = await g.cli(['create', 'rdocs', '--mode', 'native', '--path', join(fs.mountpoint, 'rdocs'), '--user', alice, '--password-file', pwFile, '--json']);
        assert.equal(c.code, 0, c.stdout);
        const target = join(fs2.mountpoint, 'replica');
        await put('rdocs', 'replica v1');
        const s1: string = (await g.cli(['backup', 'rdocs', '--json'])).json!.data.snapshot;
        const none = await g.cli(['replicate', 'rdocs', '--target', target, '--json']);
        assert.equal(none.json?.error?.field, 'target', none.stdout);
        assert.match(none.json!.error!.message, /does not exist: make the directory/);
        await mkdir(target);
        const r1 = await g.cli(['replicate', 'rdocs', '--target', target, '--json']);
        assert.equal(r1.code, 0, r1.stdout + r1.stderr);
        assert.deepEqual(r1.json!.data.sent, [s1]);
        assert.equal(r1.json!.data.base, undefined, 'the first copy is a full one');
        await put('rdocs', 'replica v2');
        const s2: string = (await g.cli(['backup', 'rdocs', '--json'])).json!.data.snapshot;
        const r2 = await g.cli(['replicate', 'rdocs', '--target', target, '--json']);
        assert.equal(r2.code, 0, r2.stdout + r2.stderr);
        assert.deepEqual(r2.json!.data.sent, [s2]);
        assert.equal(r2.json!.data.base, s1, 'incremental from the snapshot both sides have');
        assert.deepEqual((await g.cli(['replicate', 'rdocs', '--target', target, '--json'])).json!.data.sent, [], 'up to date: nothing sent');
        assert.equal(await readFile(join(target, s1, 'doc.txt'), 'utf8'), 'replica v1');
        assert.equal(await readFile(join(target, s2, 'doc.txt'), 'utf8'), 'replica v2');
        const bad = await g.cli(['replicate', 'rdocs', '--target', 'host;rm:/x', '--json']);
        assert.equal(bad.json?.error?.field, 'target', bad.stdout);
        assert.equal((await g.cli(['delete', 'rdocs', '--json'])).code, 0);
      } finally { await fs2.cleanup(); }
    });
  });

  describe('ZFS (zfs-fuse)', () => {
    let fs: TestFs & { pool: string };
    before(async () => { fs = await zfsPool(g.dir, `smbgwb${g.id}`, join(g.storage, 'zfs')); });
    after(async () => { await fs?.cleanup(); });

    it('takes dataset snapshots and rolls back, refusing to destroy newer ones without --force', async () => {
      const c = await g.cli(['create', 'zdocs', '--mode', 'native', '--path', join(fs.mountpoint, 'zdocs'), '--user', alice, '--password-file', pwFile, '--json']);
      assert.equal(c.code, 0, c.stdout);
      await put('zdocs', 'zfs v1');
      const s1 = (await g.cli(['backup', 'zdocs', '--json'])).json!.data.snapshot;
      await put('zdocs', 'zfs v2');
      const s2 = (await g.cli(['backup', 'zdocs', '--json'])).json!.data.snapshot;
      assert.notEqual(s1, s2);
      const zl = await sh('zfs', ['list', '-H', '-o', 'name', '-t', 'snapshot']);
      assert.match(zl.stdout, new RegExp(`${fs.pool}/zdocs@${s1.replace(/\./g, '\\.')}`));
      await put('zdocs', 'zfs v3');
      const refused = await g.cli(['restore', 'zdocs', '--snapshot', s1, '--json']);
      assert.equal(refused.json!.error!.field, 'force');
      assert.equal(await get('zdocs'), 'zfs v3');
      const r = await g.cli(['restore', 'zdocs', '--snapshot', s1, '--force', '--json']);
      assert.equal(r.code, 0, r.stdout);
      assert.deepEqual(r.json!.data.destroyed, [s2]);
      assert.equal(await get('zdocs'), 'zfs v1');
      // smb.conf publishes ZFS snapshots the usual way (.zfs/snapshot; zfs-fuse has none to browse)
      assert.match(await readFile(g.settings.managedConf, 'utf8'), /\[zdocs\][^[]*shadow:snapdir = \.zfs\/snapshot/);
    });

    it('restore --force never destroys a newer snapshot the gateway did not make', async () => {
      const ds = `${fs.pool}/zdocs`;
      const snaps = async () => (await sh('zfs', ['list', '-H', '-o', 'name', '-t', 'snapshot', '-r', ds])).stdout.trim().split('\n').filter(Boolean).map((n) => n.slice(ds.length + 1));
      await put('zdocs', 'zfs w1');
      const s1: string = (await g.cli(['backup', 'zdocs', '--json'])).json!.data.snapshot;
      // the admin's own snapshot (a replication tool's, say), then one more of ours
      assert.equal((await sh('zfs', ['snapshot', `${ds}@admin-keep`])).code, 0);
      const s2: string = (await g.cli(['backup', 'zdocs', '--json'])).json!.data.snapshot;
      await put('zdocs', 'zfs w2');
      const before = await snaps();
      assert.deepEqual(before.slice(-3), [s1, 'admin-keep', s2]);

      const r = await g.cli(['restore', 'zdocs', '--snapshot', s1, '--force', '--json']);
      assert.equal(r.code, 2, r.stdout);
      assert.equal(r.json!.error!.field, 'snapshot');
      assert.match(r.json!.error!.message, new RegExp(`${ds}@admin-keep was not made by the gateway: it destroys only its own`));
      assert.deepEqual(await snaps(), before, 'no snapshot was destroyed');
      assert.equal(await get('zdocs'), 'zfs w2', 'nor was the share rolled back');

      // newer than s2 there are only the live data: fine; once the admin's snapshot is gone, s1 is too
      assert.equal((await sh('zfs', ['destroy', `${ds}@admin-keep`])).code, 0);
      const ok = await g.cli(['restore', 'zdocs', '--snapshot', s1, '--force', '--json']);
      assert.equal(ok.code, 0, ok.stdout);
      assert.deepEqual(ok.json!.data.destroyed, [s2]);
      assert.equal(await get('zdocs'), 'zfs w1');
    });

    it('restore --file copies the file back from a temporary clone of the snapshot, then destroys the clone', async () => {
      const ds = `${fs.pool}/zdocs`;
      const datasets = async () => (await sh('zfs', ['list', '-H', '-o', 'name', '-t', 'filesystem', '-r', fs.pool])).stdout.trim().split('\n');
      const snaps = async () => (await sh('zfs', ['list', '-H', '-o', 'name', '-t', 'snapshot', '-r', ds])).stdout.trim().split('\n').filter(Boolean);
      const ds0 = await datasets();
      await put('zdocs', 'zfs f1');
      const s1: string = (await g.cli(['backup', 'zdocs', '--json'])).json!.data.snapshot;
      await put('zdocs', 'zfs f2');
      const r = await g.cli(['restore', 'zdocs', '--snapshot', s1, '--file', 'doc.txt', '--json']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(await get('zdocs'), 'zfs f1', 'the client reads v1 over SMB');
      assert.deepEqual(await datasets(), ds0, 'no clone is left');
      assert.ok((await snaps()).includes(`${ds}@${r.json!.data.safety_snapshot}`), 'the state before is kept as a snapshot');

      // A file the snapshot does not have: refused naming the file, the clone and the safety snapshot rolled back.
      const n = (await snaps()).length;
      const missing = await g.cli(['restore', 'zdocs', '--snapshot', s1, '--file', 'nope.txt', '--json']);
      assert.equal(missing.json!.error!.field, 'file', missing.stdout);
      assert.match(missing.json!.error!.message, /nope\.txt is not in snapshot/);
      assert.deepEqual(await datasets(), ds0);
      assert.equal((await snaps()).length, n);
    });

    it('the clone is destroyed only while it is the clone this restore made', async () => {
      const ds = `${fs.pool}/zdocs`;
      const s1: string = (await g.cli(['backup', 'zdocs', '--json'])).json!.data.snapshot;
      const [clone, copy, destroy] = zfsFileRestoreSteps(execRunner, { dataset: ds, snapshot: s1, rel: 'doc.txt', stateDir: g.settings.stateDir, now: 1 }, async () => undefined);
      await applyPlan([clone!, copy!]);
      const name = `${fs.pool}/${(await sh('zfs', ['list', '-H', '-o', 'name', '-r', fs.pool])).stdout.split('\n').map((l) => l.split('/')[1]).find((x) => x?.startsWith('smbgw-restore-'))}`;
      // Someone destroys it and puts another dataset of that name in its place (a clone of the same snapshot).
      const destroyed = async () => { for (let i = 0; i < 30; i++) { if ((await sh('zfs', ['destroy', name])).code === 0) return true; await new Promise((res) => setTimeout(res, 500)); } return false; };
      assert.ok(await destroyed(), `zfs destroy ${name}`);
      assert.equal((await sh('zfs', ['clone', `${ds}@${s1}`, name])).code, 0);
      await assert.rejects(applyPlan([destroy!]), /is not the clone this restore made .*left as it is/);
      assert.equal((await sh('zfs', ['list', '-H', '-o', 'name', name])).code, 0, 'the other dataset is left alone');
      assert.ok(await destroyed(), `zfs destroy ${name}`);
    });

    it('replicate sends the snapshots to another pool, then the new ones with those in between (zfs send -I | zfs recv -u)', async () => {
      const fs2 = await zfsPool(g.dir, `smbgwr${g.id}`, join(g.storage, 'zfs-replica'));
      try {
        const target = `${fs2.pool}/zcopy`;
        const poolOnly = await g.cli(['replicate', 'zdocs', '--target', fs2.pool, '--json']);
        assert.equal(poolOnly.json?.error?.field, 'target', poolOnly.stdout);
        await put('zdocs', 'zrep v1');
        const s1: string = (await g.cli(['backup', 'zdocs', '--json'])).json!.data.snapshot;
        const r1 = await g.cli(['replicate', 'zdocs', '--target', target, '--json']);
        assert.equal(r1.code, 0, r1.stdout + r1.stderr);
        assert.deepEqual(r1.json!.data.sent, [s1]);
        await put('zdocs', 'zrep v2');
        const s2: string = (await g.cli(['backup', 'zdocs', '--json'])).json!.data.snapshot;
        const s3: string = (await g.cli(['backup', 'zdocs', '--json'])).json!.data.snapshot;
        const r2 = await g.cli(['replicate', 'zdocs', '--target', target, '--json']);
        assert.equal(r2.code, 0, r2.stdout + r2.stderr);
        assert.equal(r2.json!.data.base, s1);
        assert.deepEqual(r2.json!.data.sent, [s2, s3]);
        const there = (await sh('zfs', ['list', '-H', '-o', 'name', '-t', 'snapshot', '-d', '1', target])).stdout.trim().split('\n');
        assert.deepEqual(there, [s1, s2, s3].map((n) => `${target}@${n}`));
        assert.equal((await sh('zfs', ['get', '-H', '-o', 'value', 'mounted', target])).stdout.trim(), 'no', 'received unmounted');
        assert.equal((await sh('zfs', ['mount', target])).code, 0);
        assert.equal(await readFile(join(fs2.mountpoint, 'zcopy', 'doc.txt'), 'utf8'), 'zrep v2');
      } finally { await fs2.cleanup(); }
    });
  });
});
