/**
 * Which Proxmox VE storage holds a share's path (the ACL path /storage/<id> its privileges are
 * checked on): the storage.cfg sections with a directory, the deepest one, node restrictions,
 * paths that only share a prefix, symbolic links, and the fallback /storage.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseSectionConfig } from '../src/core/sectionconfig.ts';
import { storageAclPath, storageAclPaths, storageDirs, storageForPath } from '../src/pve/storagemap.ts';

const CFG = `dir: local
\tpath /var/lib/vz
\tcontent iso,vztmpl,backup

zfspool: local-zfs
\tpool rpool/data
\tsparse
\tcontent images,rootdir

zfspool: tank
\tpool tank
\tmountpoint /tank
\tcontent rootdir,images

btrfs: tank-projects
\tpath /tank/projects
\tcontent rootdir

nfs: nas
\tserver 192.0.2.5
\texport /export
\tcontent backup

cephfs: cephfs
\tpath /mnt/pve/cephfs
\tcontent backup

dir: only-pve2
\tpath /srv/local2
\tnodes pve2,pve3

lvmthin: local-lvm
\tthinpool data
\tvgname pve
\tcontent rootdir,images

rbd: ceph-vm
\tpool vm
\tcontent images
`;

const dirs = storageDirs(parseSectionConfig(CFG));

test('the directory of each file-based storage: path, zfspool mountpoint (else /<pool>), /mnt/pve/<id> for network mounts; none for block storages', () => {
  assert.deepEqual(dirs.map((d) => [d.id, d.dir]), [
    ['local', '/var/lib/vz'],
    ['local-zfs', '/rpool/data'],
    ['tank', '/tank'],
    ['tank-projects', '/tank/projects'],
    ['nas', '/mnt/pve/nas'],
    ['cephfs', '/mnt/pve/cephfs'],
    ['only-pve2', '/srv/local2'],
  ]);
  assert.deepEqual(dirs.find((d) => d.id === 'only-pve2')!.nodes, ['pve2', 'pve3']);
});

test('the deepest storage holding the path wins; a mere name prefix does not count', () => {
  assert.equal(storageAclPath(dirs, '/tank/projects/q3', 'pve1'), '/storage/tank-projects');
  assert.equal(storageAclPath(dirs, '/tank/projects', 'pve1'), '/storage/tank-projects');
  assert.equal(storageAclPath(dirs, '/tank/projects2/x', 'pve1'), '/storage/tank');
  assert.equal(storageAclPath(dirs, '/tank', 'pve1'), '/storage/tank');
  assert.equal(storageAclPath(dirs, '/tankette/x', 'pve1'), '/storage');
  assert.equal(storageAclPath(dirs, '/rpool/data/subvol-200-disk-0', 'pve1'), '/storage/local-zfs');
  assert.equal(storageAclPath(dirs, '/rpool', 'pve1'), '/storage', 'the parent of a storage is not in it');
  assert.equal(storageAclPath(dirs, '/mnt/pve/nas/share', 'pve1'), '/storage/nas');
  assert.equal(storageAclPath(dirs, '/srv/other', 'pve1'), '/storage');
});

test('paths are normalised first: trailing slashes, dot segments and .. cannot step out of or into a storage', () => {
  assert.equal(storageAclPath(dirs, '/tank/projects/', 'pve1'), '/storage/tank-projects');
  assert.equal(storageAclPath(dirs, '/tank/projects/../../srv/x', 'pve1'), '/storage');
  assert.equal(storageAclPath(dirs, '/srv/../tank/./projects/a', 'pve1'), '/storage/tank-projects');
  assert.equal(storageAclPath(dirs, '//tank//projects//a', 'pve1'), '/storage/tank-projects');
});

test('a storage restricted to other nodes does not hold a path on this one', () => {
  assert.equal(storageForPath(dirs, '/srv/local2/a', 'pve2')?.id, 'only-pve2');
  assert.equal(storageAclPath(dirs, '/srv/local2/a', 'pve1'), '/storage');
});

test('from a file: missing file means /storage everywhere; symbolic links are followed to where the data is', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'smbgw-stmap-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'a'), { recursive: true });
  await mkdir(join(dir, 'b'), { recursive: true });
  await symlink(join(dir, 'b'), join(dir, 'a', 'link-to-b'));
  const cfg = join(dir, 'storage.cfg');
  assert.equal(await storageAclPaths(cfg, 'pve1').storage(join(dir, 'a', 'x')), '/storage');
  await writeFile(cfg, `dir: sa\n\tpath ${join(dir, 'a')}\n\ndir: sb\n\tpath ${join(dir, 'b')}\n`);
  const acl = storageAclPaths(cfg, 'pve1');
  assert.equal(await acl.storage(join(dir, 'a', 'not-yet', 'deeper')), '/storage/sa');
  assert.equal(await acl.storage(join(dir, 'a', 'link-to-b', 'x')), '/storage/sb', 'through the link the data is on sb');
  assert.equal(await acl.storage(join(dir, 'b')), '/storage/sb');
  assert.equal(await acl.storage('/nonexistent-root-xyz/q'), '/storage');
});
