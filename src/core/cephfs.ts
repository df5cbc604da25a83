/**
 * CephFS shares, the pure part: which mounts are CephFS, where a path lies inside the file system,
 * the CephX capabilities of the gateway's client and the smb.conf parameters of `vfs_ceph`.
 *
 * Samba reaches CephFS through libcephfs (`vfs objects = ceph`, no mount). Samba's vfs_ceph (4.17 and
 * later) always mounts the file system's root and keeps one mount per smbd process, shared by every
 * CephFS share a client session connects to. So the gateway uses one CephX client for all its CephFS
 * shares (`client.smbgateway`), with read access to the root (needed to mount it: with caps limited
 * to a share's directory the MDS rejects the session, "non-allowable root '/'") and read-write access
 * only to the directories of its shares; the caps are recomputed from the share list on every create
 * and delete. Samba 4.17's vfs_ceph cannot read xattrs through the path handles smbd uses for access
 * checks (EBADF), so it sees no POSIX ACLs: a CephFS share's directory gets unix ownership and mode
 * (its first writer, mode 0770) instead of ACL entries.
 */
import { posix } from 'node:path';
import type { Share } from './share.ts';
import { SNAPSHOT_FORMAT } from './snapshot.ts';

export const CEPH_FSTYPES = new Set(['ceph', 'fuse.ceph', 'fuse.ceph-fuse']);

/** The record a CephFS share carries (in `created`): how smbd reaches its directory. */
export interface CephfsRecord { kind: 'cephx'; client: string; conf: string; fs: string; cephpath: string }

export function cephfsRecord(s: Share): CephfsRecord | undefined {
  return s.created.find((m): m is Extract<Share['created'][number], { kind: 'cephx' }> => m.kind === 'cephx') as CephfsRecord | undefined;
}

/**
 * The directory of the file system a kernel or FUSE mount shows at its mount point: `mon1,mon2:/sub`
 * (old syntax), `user@fsid.fs=/sub` (new syntax); ceph-fuse mounts show `ceph-fuse` (its root).
 */
export function mountedCephRoot(source: string, mountinfoRoot = '/'): string {
  const eq = source.lastIndexOf('=/');
  if (eq >= 0) return posix.normalize(source.slice(eq + 1));
  const colon = source.lastIndexOf(':/');
  if (colon >= 0) return posix.normalize(source.slice(colon + 1));
  return posix.normalize(mountinfoRoot || '/');
}

/** The path inside CephFS of `path`, which lies under a CephFS mount at `mountpoint` showing `root`. */
export function cephPathOf(path: string, mountpoint: string, root: string): string {
  const rel = posix.relative(mountpoint, path);
  if (rel.startsWith('..') || posix.isAbsolute(rel)) throw new Error(`${path} is not under ${mountpoint}`);
  return posix.join(root, rel);
}

/** CephX client names and pool/object words: what ceph accepts and no shell or config syntax. */
export const CEPH_WORD = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * Caps of the gateway's client for its CephFS shares: read the root (vfs_ceph mounts it), read and
 * write each share's directory, data of the file systems they are on. Undefined when there is none.
 */
export function clientCaps(records: readonly Pick<CephfsRecord, 'fs' | 'cephpath'>[]): string[] | undefined {
  if (!records.length) return undefined;
  const fss = [...new Set(records.map((r) => r.fs))].sort();
  const paths = [...new Set(records.map((r) => `${r.fs}\0${r.cephpath}`))].sort();
  for (const p of [...fss, ...paths.map((x) => x.split('\0')[1]!)]) {
    if (/[,'"\s\0]/.test(p.replace(/\0/g, ''))) throw new Error(`refusing a CephFS name or path with a comma, quote or space in caps: ${JSON.stringify(p)}`);
  }
  const mds = [
    ...fss.map((fs) => `allow r fsname=${fs} path=/`),
    ...paths.map((x) => { const [fs, p] = x.split('\0'); return `allow rw fsname=${fs} path=${p}`; }),
  ].join(', ');
  const osd = fss.map((fs) => `allow rw tag cephfs data=${fs}`).join(', ');
  return ['mds', mds, 'mon', 'allow r', 'osd', osd];
}

/**
 * The smb.conf parameters that serve a CephFS share through libcephfs (its path inside CephFS), with
 * its CephFS snapshots (`.snap/smbgw-<time>`) as Previous Versions. Samba 4.17's ceph_snapshots module
 * cannot run on top of vfs_ceph (it reads ceph.snap.btime through a path handle, which vfs_ceph
 * answers with EBADF: no versions listed, measured), so shadow_copy2 reads the snapshot names instead.
 */
export function cephShareParams(r: CephfsRecord): [string, string][] {
  return [
    ['path', r.cephpath],
    ['vfs objects', 'shadow_copy2 ceph'],
    ['ceph:config_file', r.conf],
    ['ceph:user_id', r.client.replace(/^client\./, '')],
    // No kernel file (flock) share modes: smbd holds no local file descriptors for CephFS files.
    ['kernel share modes', 'no'],
    ['shadow:mountpoint', r.cephpath],
    ['shadow:snapdir', '.snap'],
    ['shadow:format', SNAPSHOT_FORMAT],
    ['shadow:sort', 'desc'],
    ['shadow:localtime', 'no'],
  ];
}

/** The client's ceph.conf: the cluster's minimal conf (fsid, mons) and where its keyring is. */
export function clientConf(minimalConf: string, keyring: string, client: string): string {
  if (/[\r\n\0]/.test(keyring + client)) throw new Error('refusing a line break in ceph.conf values');
  const lines = minimalConf.split('\n').filter((l) => l.trim() && !/^\s*keyring\s*=/.test(l));
  return [
    '# Written by pve-smbgateway for smbd\'s vfs_ceph: do not edit.',
    ...lines,
    `[${client}]`,
    `\tkeyring = ${keyring}`,
    '',
  ].join('\n');
}

/** Why a guest does not serve a CephFS directory: no CephX key is passed into guests. */
export const CEPHFS_GUEST_REFUSAL = (mode: 'lxc' | 'vm') =>
  `the path is on CephFS: ${mode} mode cannot serve it (no CephX key is passed into guests, and a bind mount would bypass the share's CephX limits); ` +
  `use --mode native (Samba on the nodes through vfs_ceph, with --ha-enabled for a floating address)${mode === 'vm' ? ', or --vm-attach rbd (a disk image on Ceph RBD)' : ''}`;
