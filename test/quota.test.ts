/**
 * Quotas enforced by the filesystem, never cosmetic: btrfs qgroups on a loop device and ZFS
 * `quota=` through zfs-fuse. A client writing past the quota over SMB gets a disk-full error.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sh, startGateway, type TestGateway } from './helpers/gateway.ts';
import { btrfsLoop, zfsPool, type TestFs } from './helpers/fs.ts';

const MB = 1024 * 1024;

describe('quotas on real filesystems', () => {
  let g: TestGateway;
  let alice: string;
  let pwFile: string;
  let big: string;
  const pw = 'Quota-pw-123';

  before(async () => {
    g = await startGateway();
    alice = g.user('alice');
    pwFile = await g.passwordFile(pw);
    big = join(g.dir, 'big.bin');
    await writeFile(big, randomBytes(80 * MB));
  });
  after(async () => { await g?.cleanup(); });

  const create = (name: string, path: string, quota: string, env: Record<string, string> = {}) =>
    g.cli(['create', name, '--mode', 'native', '--path', path, '--quota', quota, '--user', alice, '--password-file', pwFile, '--json'], { env });

  async function writePastQuota(share: string): Promise<void> {
    const small = join(g.dir, 'small.bin');
    await writeFile(small, randomBytes(5 * MB));
    const ok = await g.smb(share, alice, pw, `put ${small} small.bin`);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    const r = await g.smb(share, alice, pw, `put ${big} big.bin`);
    assert.match(r.stdout + r.stderr, /NT_STATUS_DISK_FULL/, 'writing 80 MB into a 50 MB quota');
  }

  describe('btrfs on a loop device', () => {
    let fs: TestFs;
    before(async () => { fs = await btrfsLoop(g.dir, join(g.storage, 'btrfs')); });
    after(async () => { await fs?.cleanup(); });

    const qgroups = async () => (await sh('btrfs', ['qgroup', 'show', fs.mountpoint])).code === 0;

    it('rolls back every step: no subvolume left, quota switched off again', async () => {
      const ok = await create('bq', join(fs.mountpoint, 'bq'), '50M');
      assert.equal(ok.code, 0, ok.stdout);
      const steps: string[] = ok.json!.data.steps;
      assert.deepEqual(steps.slice(0, 3), ['enable-btrfs-quota', 'create-subvolume', 'set-quota']);
      assert.equal((await g.cli(['delete', 'bq', '--purge', '--json'])).code, 0);
      await sh('btrfs', ['quota', 'disable', fs.mountpoint]);
      for (const step of steps) {
        const r = await create('bq', join(fs.mountpoint, 'bq'), '50M', { SMBGW_FAIL_AT: step });
        assert.equal(r.json!.error!.message, `injected failure at step ${step} (rolled back)`);
        assert.deepEqual(await readdir(fs.mountpoint), [], `a failure at ${step} left something`);
        assert.equal(await qgroups(), false, `a failure at ${step} left quotas enabled`);
      }
    });

    it('creates a subvolume with a qgroup limit that SMB clients hit', async () => {
      const r = await create('bq', join(fs.mountpoint, 'bq'), '50M');
      assert.equal(r.code, 0, r.stdout);
      assert.equal((await stat(join(fs.mountpoint, 'bq'))).ino, 256, 'the share is a subvolume');
      await writePastQuota('bq');
      const st = await g.cli(['status', 'bq', '--json']);
      const u = st.json!.data.usage;
      assert.equal(u.limit, 50 * MB);
      assert.ok(u.used >= 5 * MB && u.used <= 50 * MB, `used ${u.used}`);
      assert.match(u.source, /btrfs qgroup/);
      assert.match((await g.cli(['status', 'bq'])).stdout, /usage: .* used of 50M quota/);
    });

    it('refuses a quota on a plain directory of btrfs', async () => {
      await mkdir(join(fs.mountpoint, 'plain'));
      const r = await create('bp', join(fs.mountpoint, 'plain'), '10M');
      assert.equal(r.json!.error!.field, 'quota');
      assert.match(r.json!.error!.message, /plain directory on btrfs; quotas apply to subvolumes/);
    });
  });

  describe('ZFS through zfs-fuse', () => {
    let fs: TestFs & { pool: string };
    before(async () => { fs = await zfsPool(g.dir, `smbgwt${g.id}`, join(g.storage, 'zfs')); });
    after(async () => { await fs?.cleanup(); });

    const datasets = async () => (await sh('zfs', ['list', '-H', '-o', 'name', '-r', fs.pool])).stdout.trim().split('\n');

    it('rolls back every step: no dataset left', async () => {
      const ok = await create('zq', join(fs.mountpoint, 'zq'), '50M');
      assert.equal(ok.code, 0, ok.stdout);
      const steps: string[] = ok.json!.data.steps;
      assert.deepEqual(steps.slice(0, 2), ['create-dataset', 'set-quota']);
      const del = await g.cli(['delete', 'zq', '--purge', '--json']);
      assert.equal(del.code, 0, del.stdout);
      assert.deepEqual(await datasets(), [fs.pool]);
      for (const step of steps) {
        const r = await create('zq', join(fs.mountpoint, 'zq'), '50M', { SMBGW_FAIL_AT: step });
        assert.equal(r.json!.error!.message, `injected failure at step ${step} (rolled back)`);
        assert.deepEqual(await datasets(), [fs.pool], `a failure at ${step} left a dataset`);
      }
    });

    it('creates a dataset with quota= that SMB clients hit', async () => {
      const r = await create('zq', join(fs.mountpoint, 'zq'), '50M');
      assert.equal(r.code, 0, r.stdout);
      assert.deepEqual(await datasets(), [fs.pool, `${fs.pool}/zq`]);
      assert.equal((await sh('zfs', ['get', '-H', '-o', 'value', 'quota', `${fs.pool}/zq`])).stdout.trim(), '50M');
      await writePastQuota('zq');
      const st = await g.cli(['status', 'zq', '--json']);
      const u = st.json!.data.usage;
      assert.equal(u.limit, 50 * MB);
      assert.ok(u.used >= 4 * MB && u.used <= 51 * MB, `used ${u.used}`);
      assert.match(u.source, /zfs dataset/);
    });

    it('puts a quota on an existing dataset and restores the old one on rollback', async () => {
      await sh('zfs', ['create', `${fs.pool}/existing`]);
      const r = await create('ze', join(fs.mountpoint, 'existing'), '20M', { SMBGW_FAIL_AT: 'health-check' });
      assert.equal(r.code, 1);
      assert.equal((await sh('zfs', ['get', '-H', '-o', 'value', 'quota', `${fs.pool}/existing`])).stdout.trim(), 'none');
      assert.deepEqual(await datasets(), [fs.pool, `${fs.pool}/existing`, `${fs.pool}/zq`], 'the existing dataset is kept');
      const ok = await create('ze', join(fs.mountpoint, 'existing'), '20M');
      assert.equal(ok.code, 0, ok.stdout);
      assert.equal((await sh('zfs', ['get', '-H', '-o', 'value', 'quota', `${fs.pool}/existing`])).stdout.trim(), '20M');
    });
  });
});
