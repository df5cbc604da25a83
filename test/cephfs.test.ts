/**
 * CephFS shares on a real Ceph cluster started by this file (Debian's Ceph 16: 1 mon, 1 OSD, 1 MDS on
 * files under the test's scratch dir, loopback only; test/helpers/ceph.ts). CephFS is mounted with
 * ceph-fuse where Proxmox VE mounts a CephFS storage; smbd reaches it through vfs_ceph (libcephfs) as
 * the gateway's CephX client. Everything goes through the gateway's CLI.
 */
import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { settingsJson } from '../src/core/settings.ts';
import { startCeph, type TestCeph } from './helpers/ceph.ts';
import { sh, startGateway, type TestGateway } from './helpers/gateway.ts';

const MB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('CephFS shares through vfs_ceph on a real Ceph cluster', () => {
  let g: TestGateway;
  let ceph: TestCeph;
  let mnt: string;
  let alice: string;
  let pwFile: string;
  const pw = 'Ceph-pw-123';

  before(async () => {
    g = await startGateway();
    ceph = await startCeph(g.dir);
    console.log(`# ceph cluster (mon+osd+mds, CephFS active) started in ${(ceph.startMs / 1000).toFixed(1)} s`);
    mnt = join(g.storage, 'cephfs');
    await ceph.mount(mnt);
    await writeFile(g.settingsFile, settingsJson({ ...g.settings, cephConf: ceph.conf }));
    alice = g.user('alice');
    pwFile = await g.passwordFile(pw);
  });
  after(async () => {
    await g?.cli(['delete', 'cf', '--json']).catch(() => undefined);
    await g?.cli(['delete', 'loc', '--json']).catch(() => undefined);
    await ceph?.stop();
    await g?.cleanup();
  });

  const put = async (share: string, local: string, remote: string) => g.smb(share, alice, pw, `put ${local} ${remote}`);
  const get = async (share: string, remote: string) => {
    const f = join(g.dir, `down-${randomBytes(3).toString('hex')}`);
    const r = await g.smb(share, alice, pw, `get "${remote}" ${f}`);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return readFile(f);
  };

  it('creates a CephFS share with a quota, served through vfs_ceph as a CephX client limited to it', async () => {
    const r = await g.cli(['create', 'cf', '--mode', 'native', '--path', join(mnt, 'cf'), '--quota', '50M', '--user', alice, '--password-file', pwFile, '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const conf = await readFile(g.settings.managedConf, 'utf8');
    const sec = conf.slice(conf.indexOf('[cf]'));
    assert.match(sec, /path = \/cf\n/);
    assert.match(sec, /vfs objects = shadow_copy2 full_audit ceph\n/);
    assert.match(sec, /ceph:user_id = smbgateway\n/);
    assert.match(sec, /kernel share modes = no\n/);
    const cfile = /ceph:config_file = (\S+)/.exec(sec)![1]!;
    const keyring = join(g.dir, 'etc/priv/ceph/ceph.client.smbgateway.keyring');
    assert.equal((await stat(keyring)).mode & 0o777, 0o600, 'the keyring is 0600');
    assert.match(await readFile(cfile, 'utf8'), new RegExp(`keyring = ${keyring}`));
    // The key is in the keyring file only: not in the share store, the smb.conf or the journal.
    const key = /key = (\S+)/.exec(await readFile(keyring, 'utf8'))![1]!;
    for (const f of [g.settings.managedConf, join(g.dir, 'etc/shares.cfg')]) assert.ok(!(await readFile(f, 'utf8')).includes(key), `key in ${f}`);
    const caps = JSON.parse((await ceph.ceph(['auth', 'get', 'client.smbgateway', '--format', 'json'])).stdout)[0].caps;
    assert.equal(caps.mds, 'allow r fsname=cephfs path=/, allow rw fsname=cephfs path=/cf');
    // The directory belongs to the share's user (vfs_ceph sees no POSIX ACLs), closed to others.
    const st = await stat(join(mnt, 'cf'));
    assert.equal(st.uid, Number((await sh('id', ['-u', alice])).stdout.trim()));
    assert.equal(st.mode & 0o707, 0o700);
    assert.match(JSON.stringify(r.json!.data.warnings), /vfs_ceph does not read POSIX ACLs/);
  });

  it('writes and reads back over SMB, and refuses writes past the quota (disk full)', async () => {
    const data = randomBytes(20 * MB);
    const f = join(g.dir, 'f20.bin');
    await writeFile(f, data);
    const t0 = Date.now();
    const p = await put('cf', f, 'f20.bin');
    const tPut = Date.now() - t0;
    assert.equal(p.code, 0, p.stdout + p.stderr);
    const t1 = Date.now();
    assert.equal(sha(await get('cf', 'f20.bin')), sha(data));
    const tGet = Date.now() - t1;
    // The file is in CephFS, owned by alice.
    assert.equal((await stat(join(mnt, 'cf', 'f20.bin'))).size, 20 * MB);
    const st = await g.cli(['status', 'cf', '--json']);
    const u = st.json!.data.usage;
    assert.equal(u.limit, 50 * MB);
    assert.match(u.source, /ceph\.dir\.rbytes/);
    // The same bytes on a local directory share, for comparison.
    const lr = await g.cli(['create', 'loc', '--mode', 'native', '--path', join(g.storage, 'loc'), '--user', alice, '--password-file', pwFile, '--json']);
    assert.equal(lr.code, 0, lr.stdout);
    const t2 = Date.now();
    assert.equal((await put('loc', f, 'f20.bin')).code, 0);
    const tPutL = Date.now() - t2;
    const t3 = Date.now();
    assert.equal(sha(await get('loc', 'f20.bin')), sha(data));
    const tGetL = Date.now() - t3;
    const mbs = (ms: number) => (20 / (ms / 1000)).toFixed(1);
    console.log(`# SMB 20 MiB: CephFS (vfs_ceph) put ${mbs(tPut)} MB/s get ${mbs(tGet)} MB/s; local dir put ${mbs(tPutL)} MB/s get ${mbs(tGetL)} MB/s`);
    // rbytes is updated by the MDS lazily: wait until it counts the file.
    let used = u.used as number;
    for (let i = 0; i < 40 && used < 20 * MB; i++) { await new Promise((res) => setTimeout(res, 250)); used = (await g.cli(['status', 'cf', '--json'])).json!.data.usage.used; }
    assert.ok(used >= 20 * MB && used <= 50 * MB, `used ${used}`);

    const big = join(g.dir, 'big.bin');
    await writeFile(big, randomBytes(60 * MB));
    const r = await put('cf', big, 'big.bin');
    assert.match(r.stdout + r.stderr, /NT_STATUS_DISK_FULL/, 'writing 60 MB more into a 50 MB quota');
    // Deleting over SMB frees the quota again: once the MDS has counted the deletes, a write goes through.
    const d = await g.smb('cf', alice, pw, 'del big.bin; del f20.bin');
    assert.equal(d.code, 0, d.stdout + d.stderr);
    for (let i = 0; i < 80 && used > 0; i++) { await new Promise((res) => setTimeout(res, 250)); used = (await g.cli(['status', 'cf', '--json'])).json!.data.usage.used; }
    assert.equal(used, 0, 'usage after the deletes');
  });

  it('shows a CephFS snapshot as a Previous Version', async () => {
    const f = join(g.dir, 'doc.txt');
    await writeFile(f, 'version 1');
    const p1 = await put('cf', f, 'doc.txt');
    assert.equal(p1.code, 0, p1.stdout + p1.stderr);
    const b = await g.cli(['backup', 'cf', '--json']);
    assert.equal(b.code, 0, b.stdout + b.stderr);
    const snap: string = b.json!.data.snapshot;
    assert.deepEqual(await readdir(join(mnt, 'cf', '.snap')), [snap]);
    await writeFile(f, 'version 2');
    const p2 = await put('cf', f, 'doc.txt');
    assert.equal(p2.code, 0, p2.stdout + p2.stderr);
    const info = await g.smb('cf', alice, pw, 'allinfo doc.txt');
    const token = /@GMT-[\d.-]+/.exec(info.stdout)?.[0];
    assert.ok(token, `no previous version listed: ${info.stdout}`);
    assert.equal(String(await get('cf', `${token}\\doc.txt`)), 'version 1');
    assert.equal(String(await get('cf', 'doc.txt')), 'version 2');
    const list = await g.cli(['snapshots', 'cf', '--json']);
    assert.deepEqual(list.json!.data.map((s: { name: string }) => s.name), [snap]);
  });

  it('delete --purge removes only what create made: the directory with its snapshots, and the CephX client', async () => {
    const r = await g.cli(['delete', 'cf', '--purge', '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual((await readdir(mnt)).sort(), []);
    const a = await ceph.ceph(['auth', 'get', 'client.smbgateway']);
    assert.notEqual(a.code, 0, 'the CephX client is gone with the last CephFS share');
    assert.deepEqual(await readdir(join(g.dir, 'etc/priv/ceph')).catch(() => []), []);
  });
});
