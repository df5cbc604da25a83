/** CephFS shares, the pure parts: mounts, caps, the vfs_ceph section, guest modes. */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { cephPathOf, clientCaps, clientConf, mountedCephRoot, CEPHFS_GUEST_REFUSAL } from '../src/core/cephfs.ts';
import { parseShare } from '../src/core/share.ts';
import { renderManagedConf } from '../src/samba/render.ts';
import { clusteredShareParams } from '../src/ha/plan.ts';
import { chooseAttachment } from '../src/provision/vm.ts';

describe('CephFS (pure)', () => {
  it('finds the CephFS directory a mount shows', () => {
    assert.equal(mountedCephRoot('10.0.0.1,10.0.0.2:/'), '/');
    assert.equal(mountedCephRoot('10.0.0.1:6789:/pve/sub'), '/pve/sub');
    assert.equal(mountedCephRoot('admin@0f5e.cephfs=/sub'), '/sub');
    assert.equal(mountedCephRoot('ceph-fuse'), '/');
    assert.equal(cephPathOf('/mnt/pve/cephfs/projects', '/mnt/pve/cephfs', '/'), '/projects');
    assert.equal(cephPathOf('/mnt/pve/cephfs/a/b', '/mnt/pve/cephfs', '/pve'), '/pve/a/b');
    assert.throws(() => cephPathOf('/srv/x', '/mnt/pve/cephfs', '/'));
  });

  it('gives the client read on the root and read-write only on the shares', () => {
    assert.equal(clientCaps([]), undefined);
    assert.deepEqual(clientCaps([{ fs: 'cephfs', cephpath: '/b' }, { fs: 'cephfs', cephpath: '/a' }]), [
      'mds', 'allow r fsname=cephfs path=/, allow rw fsname=cephfs path=/a, allow rw fsname=cephfs path=/b',
      'mon', 'allow r',
      'osd', 'allow rw tag cephfs data=cephfs',
    ]);
    assert.throws(() => clientCaps([{ fs: 'cephfs', cephpath: '/a, allow rw path=/' }]), /comma/);
  });

  it('writes a client ceph.conf from the minimal conf, without a second keyring line', () => {
    const c = clientConf('# minimal\n[global]\n\tfsid = x\n\tmon_host = v2:1.2.3.4:3300/0\n\tkeyring = /etc/pve/priv/$cluster.$name.keyring\n', '/p/k', 'client.smbgateway');
    assert.match(c, /\[client\.smbgateway\]\n\tkeyring = \/p\/k\n/);
    assert.equal(c.match(/keyring/g)!.length, 1);
    assert.throws(() => clientConf('', '/p/k\n[global]', 'client.x'));
  });

  const share = parseShare({
    sharename: 'proj', mode: 'native', path: '/mnt/pve/cephfs/proj', users: ['alice'], backing: 'cephfs',
    created: [{ kind: 'dir', path: '/mnt/pve/cephfs/proj' }, { kind: 'cephx', client: 'client.smbgateway', conf: '/etc/pve/priv/smbgateway/ceph/ceph.conf', fs: 'cephfs', cephpath: '/proj' }],
  }, { allowInternal: true });

  it('serves a CephFS share through vfs_ceph, its path inside CephFS', () => {
    const text = renderManagedConf([share]);
    const sec = text.slice(text.indexOf('[proj]'));
    assert.match(sec, /^\[proj\]\n   path = \/proj\n/);
    // vfs_ceph, the terminal module, last (after the tcon audit module of monitored shares)
    assert.match(sec, /\n   vfs objects = shadow_copy2 full_audit ceph\n/);
    assert.match(sec, /\n   ceph:config_file = \/etc\/pve\/priv\/smbgateway\/ceph\/ceph.conf\n   ceph:user_id = smbgateway\n   kernel share modes = no\n/);
    assert.match(sec, /shadow:mountpoint = \/proj\n   shadow:snapdir = .snap\n/);
    assert.doesNotMatch(sec, /\/mnt\/pve/);
    // clustered (HA): the same VFS stack, no fileid on top
    const p = clusteredShareParams(share);
    assert.deepEqual(p.filter(([k]) => k === 'vfs objects'), [['vfs objects', 'shadow_copy2 full_audit ceph']]);
  });

  it('guest modes: lxc is refused, a VM gets an RBD disk', () => {
    const b = { kind: 'cephfs' as const, mountpoint: '/mnt/pve/cephfs', root: '/', source: 'ceph-fuse', exists: false };
    assert.equal(chooseAttachment(undefined, b), 'rbd');
    assert.match(CEPHFS_GUEST_REFUSAL('lxc'), /use --mode native/);
  });
});
