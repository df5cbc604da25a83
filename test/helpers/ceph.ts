/**
 * A real, throw-away Ceph cluster for the tests (Debian's Ceph 16 daemons, as in the lab recipe
 * ../shared/lab/ceph-cephfs-samba.sh): 1 mon, 1 OSD (bluestore on a file), 1 MDS, no mgr, CephFS
 * `cephfs`. Everything lives under a scratch dir; the mon listens on `ip` (loopback by default, or an
 * address of a network namespace `netns`, where the daemons then run) on a free port. The admin keyring
 * is named by the conf (`keyring = DIR/keyring.$name`), so `ceph -c DIR/ceph.conf` works as client.admin.
 * `mount()` mounts CephFS with ceph-fuse, standing in for the kernel mount Proxmox VE makes at
 * /mnt/pve/<storage>. `stop()` stops every daemon by its pid and removes the scratch dir.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmod, chown, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from '../../src/demo/sandbox.ts';
import { Ceph, cephTarget } from '../../src/core/ceph.ts';
import { clientCaps, type CephfsRecord } from '../../src/core/cephfs.ts';
import type { Runner } from '../../src/core/exec.ts';
import type { Settings } from '../../src/core/settings.ts';
import { sh, waitFor, type CliResult } from './gateway.ts';

export interface TestCeph {
  dir: string;
  conf: string;
  ip: string;
  port: number;
  fsName: string;
  startMs: number;
  ceph: (args: string[], opts?: { input?: string }) => Promise<CliResult>;
  /** Mount CephFS (ceph-fuse as client.admin) at `at`; unmounted by stop(). */
  mount: (at: string) => Promise<void>;
  /** Pids of the daemons (mon, osd, mds). */
  pids: () => number[];
  stop: () => Promise<void>;
}

async function must(r: Promise<CliResult>, what: string): Promise<CliResult> {
  const x = await r;
  if (x.code !== 0) throw new Error(`${what} failed (${x.code}): ${x.stderr || x.stdout}`);
  return x;
}

export async function startCeph(scratch: string, opts: { ip?: string; netns?: string; port?: number } = {}): Promise<TestCeph> {
  const t0 = Date.now();
  const dir = join(scratch, 'ceph');
  await rm(dir, { recursive: true, force: true });
  for (const d of ['mon', 'osd0', 'mds', 'run', 'log']) await mkdir(join(dir, d), { recursive: true });
  const ip = opts.ip ?? '127.0.0.1';
  const port = opts.port ?? (opts.netns ? 6789 : await freePort());
  const fsid = randomUUID();
  const conf = join(dir, 'ceph.conf');
  await writeFile(conf, `[global]
fsid = ${fsid}
mon host = ${ip}:${port}
public addr = ${ip}
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
run dir = ${dir}/run
admin socket = ${dir}/run/$cluster-$name-$pid.asok
log file = ${dir}/log/$name.log
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
osd crush chooseleaf type = 0
ms bind ipv6 = false
keyring = ${dir}/keyring.$name
[mon]
mon data = ${dir}/mon
mon warn on pool no redundancy = false
[osd]
osd data = ${dir}/osd0
osd objectstore = bluestore
bluestore block path = ${dir}/osd0.block
bluestore block create = true
bluestore block size = 2147483648
bluestore fsck on mount = false
osd memory target = 536870912
[mds]
mds data = ${dir}/mds
`);
  // Only the network namespace: files and mounts (ceph-fuse) stay in the host's mount namespace.
  const ns = (cmd: string, args: string[]): [string, string[]] => (opts.netns ? ['nsenter', [`--net=/run/netns/${opts.netns}`, '--', cmd, ...args]] : [cmd, args]);
  const run = (cmd: string, args: string[], o: { input?: string } = {}) => { const [c, a] = ns(cmd, args); return sh(c, a, { ...o, timeoutMs: 60_000 }); };
  const C = ['-c', conf];
  const ceph = (args: string[], o: { input?: string } = {}) => run('ceph', [...C, '--connect-timeout', '20', ...args], o);
  const pids: number[] = [];
  const mounts: string[] = [];
  const daemon = async (cmd: string, args: string[]) => {
    // -f: in the foreground, so the pid is the daemon's (nsenter execs it in place); detached:
    // its own session, so nothing signals our process group.
    const [c, a] = ns(cmd, [...C, '-f', ...args]);
    const p = spawn(c, a, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let err = '';
    p.stderr!.on('data', (d) => { err += d; });
    p.unref();
    pids.push(p.pid!);
    p.on('exit', (code) => { if (code) process.stderr.write(`${cmd} exited ${code}: ${err}\n`); });
  };
  const stop = async () => {
    for (const m of mounts) await sh('fusermount', ['-u', '-z', m]);
    await new Promise((r) => setTimeout(r, 200));
    for (const pid of [...pids].reverse()) { try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ } }
    const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };
    await waitFor(() => pids.every((p) => !alive(p)), 10_000, 'ceph daemons to stop').catch(() => {
      for (const p of pids) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
    });
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const kr = (n: string) => join(dir, `keyring.${n}`);
    await must(run('ceph-authtool', ['--create-keyring', kr('mon.'), '--gen-key', '-n', 'mon.', '--cap', 'mon', 'allow *']), 'mon keyring');
    await must(run('ceph-authtool', ['--create-keyring', kr('client.admin'), '--gen-key', '-n', 'client.admin', '--cap', 'mon', 'allow *', '--cap', 'osd', 'allow *', '--cap', 'mds', 'allow *', '--cap', 'mgr', 'allow *']), 'admin keyring');
    await must(run('ceph-authtool', [kr('mon.'), '--import-keyring', kr('client.admin')]), 'import');
    await must(run('monmaptool', ['--create', '--add', 'a', `${ip}:${port}`, '--fsid', fsid, join(dir, 'monmap')]), 'monmap');
    await must(run('ceph-mon', [...C, '--mkfs', '-i', 'a', '--monmap', join(dir, 'monmap'), '--keyring', kr('mon.')]), 'mon mkfs');
    await daemon('ceph-mon', ['-i', 'a']);
    const osdId = (await must(ceph(['osd', 'create']), 'osd create')).stdout.trim();
    await must(run('ceph-authtool', ['--create-keyring', kr(`osd.${osdId}`), '--gen-key', '-n', `osd.${osdId}`]), 'osd keyring');
    await must(ceph(['auth', 'add', `osd.${osdId}`, 'osd', 'allow *', 'mon', 'allow profile osd', '-i', kr(`osd.${osdId}`)]), 'osd auth');
    await must(run('ceph-osd', [...C, '-i', osdId, '--mkfs', '--osd-uuid', randomUUID(), '--no-mon-config']), 'osd mkfs');
    await must(ceph(['osd', 'crush', 'add-bucket', 'host1', 'host']), 'crush');
    await must(ceph(['osd', 'crush', 'move', 'host1', 'root=default']), 'crush');
    await must(ceph(['osd', 'crush', 'add', `osd.${osdId}`, '1.0', 'host=host1']), 'crush');
    await daemon('ceph-osd', ['-i', osdId]);
    await must(run('ceph-authtool', ['--create-keyring', kr('mds.a'), '--gen-key', '-n', 'mds.a']), 'mds keyring');
    await must(ceph(['auth', 'add', 'mds.a', 'mon', 'allow profile mds', 'osd', 'allow rwx', 'mds', 'allow *', '-i', kr('mds.a')]), 'mds auth');
    await must(ceph(['osd', 'pool', 'create', 'cephfs_data', '8']), 'data pool');
    await must(ceph(['osd', 'pool', 'create', 'cephfs_metadata', '8']), 'metadata pool');
    await must(ceph(['fs', 'new', 'cephfs', 'cephfs_metadata', 'cephfs_data']), 'fs new');
    await daemon('ceph-mds', ['-i', 'a']);
    await waitFor(async () => /up:active/.test((await ceph(['mds', 'stat'])).stdout), 60_000, 'the MDS to become active');
  } catch (e) {
    await stop();
    throw e;
  }
  const startMs = Date.now() - t0;
  return {
    dir, conf, ip, port, fsName: 'cephfs', startMs, ceph,
    pids: () => [...pids],
    mount: async (at: string) => {
      await mkdir(at, { recursive: true });
      // POSIX ACLs on, as on Proxmox VE's kernel mount of a CephFS storage.
      // In the foreground (-f), so that its pid is known and it is stopped with the daemons.
      mounts.push(at);
      await daemon('ceph-fuse', ['--id', 'admin', '--client_acl_type=posix_acl', '--fuse_default_permissions=false', '-o', 'allow_other', at]);
      await waitFor(async () => (await readFile('/proc/self/mountinfo', 'utf8')).includes(` ${at} `), 10_000, 'the ceph-fuse mount');
    },
    stop,
  };
}

/**
 * A Ceph cluster for a cluster of namespaces (test/helpers/netns.ts): the daemons run in the switch
 * namespace on an address of its bridge, so every node reaches them (a node cut off the bridge does
 * not), and each node's private /etc/ceph gets the cluster's ceph.conf (its admin keyring named in it),
 * as on a Proxmox VE node with Ceph.
 */
export async function startCephForCluster(c: { dir: string; net: string; switchNs: string; nodes: { dir: string }[] }): Promise<TestCeph> {
  const ip = `${c.net}.2`;
  await must(sh('ip', ['-n', c.switchNs, 'addr', 'add', `${ip}/24`, 'dev', 'br0']), 'bridge address');
  const ceph = await startCeph(c.dir, { ip, netns: c.switchNs });
  // A dead node's libcephfs session keeps its caps until the MDS gives up on it: bound that wait (as an
  // admin of a CephFS used for HA would; see docs/cephfs.md).
  await must(ceph.ceph(['fs', 'set', ceph.fsName, 'session_timeout', '30']), 'session_timeout');
  await must(ceph.ceph(['fs', 'set', ceph.fsName, 'session_autoclose', '35']), 'session_autoclose');
  const conf = await readFile(ceph.conf, 'utf8');
  for (const n of c.nodes) await writeFile(join(n.dir, 'etc-ceph', 'ceph.conf'), conf);
  return ceph;
}

/**
 * An HA share's directory on CephFS, as the gateway makes it for a CephFS share: CephFS mounted at
 * DIR/cephfs, `data` owned by `uid` (0700), the gateway's CephX client with caps on it (run through
 * `run`, a node that reaches the cluster). Returns the path and the record the share carries.
 */
export async function cephShareDir(ceph: TestCeph, dir: string, settings: Settings, run: Runner, uid: number): Promise<{ data: string; rec: CephfsRecord }> {
  const mnt = join(dir, 'cephfs');
  await ceph.mount(mnt);
  const data = join(mnt, 'data');
  await mkdir(data);
  await chown(data, uid, uid);
  await chmod(data, 0o700);
  const gw = new Ceph(run, cephTarget(settings));
  const rec: CephfsRecord = { kind: 'cephx', client: gw.t.client, conf: gw.clientConfFile, fs: ceph.fsName, cephpath: '/data' };
  await gw.setClientCaps(clientCaps([rec])!);
  return { data, rec };
}
