/**
 * A small cluster of "machines" on this host for HA tests: network namespaces joined by a bridge
 * (veth pairs), 10.x addresses inside those namespaces only, and per node a private mount namespace
 * in which CTDB's and Samba's directories (/etc/ctdb, /run/ctdb, /var/lib/ctdb, /etc/samba,
 * /var/lib/samba, /run/samba, /var/cache/samba, /var/log/samba, /var/log/ctdb) are bind mounts of the node's own
 * directory. So each node runs the real ctdbd and smbd with their production paths, and the gateway
 * reaches it through a Runner (nsenter), as it would reach a real node over SSH.
 *
 * Names carry a random id and the subnet is random, so that two runs can share the machine.
 * cleanup() kills every process in the namespaces, deletes them and the directory.
 */
import { spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execRunner, type Runner } from '../../src/core/exec.ts';
import { prefixRunner } from '../../src/ha/transport.ts';

export interface TestNode {
  name: string;
  address: string;
  ns: string;
  /** The process that holds the node's mount namespace. */
  holderPid: number;
  /** The node's bridge port (in the switch namespace). */
  port: string;
  dir: string;
  run: Runner;
}

export interface NetnsCluster {
  id: string;
  dir: string;
  /** A directory every node sees (the "shared storage": cluster lock, share data). */
  shared: string;
  /** First three octets, e.g. 10.37.201 */
  net: string;
  prefix: number;
  switchNs: string;
  nodes: TestNode[];
  client: { ns: string; address: string; run: Runner };
  /** smbclient in the client namespace against //host/share, logging on with an auth file; never throws. */
  smb: (host: string, share: string, authFile: string, command: string, timeoutMs?: number) => Promise<{ ok: boolean; output: string }>;
  /** A range for VIPs inside the subnet. */
  vipRange: string;
  /** Cut a node off the bridge (its link stays up) and plug it back. */
  partition: (n: TestNode) => Promise<void>;
  heal: (n: TestNode) => Promise<void>;
  /** "The machine died": kill -9 its ctdbd and smbd (whole process groups) and drop the addresses only it answered for. */
  killNode: (n: TestNode) => Promise<void>;
  /** Plug another namespace (e.g. an AD DC's, test/helpers/adlab.ts) into the cluster's bridge as `ifname` with `address`. */
  attach: (ns: string, ifname: string, address: string) => Promise<void>;
  /** Whether an address is configured on the node's eth0. */
  hasAddress: (n: TestNode, ip: string) => Promise<boolean>;
  /** The nodes that have `ip` on eth0 (a VIP's holders: exactly one when all is well). */
  holders: (ip: string) => Promise<TestNode[]>;
  /** The runner of a node by name (deployHa's runnerFor). */
  runnerFor: (n: { name: string }) => Runner;
  /** An smbclient auth file for the user and a directory for the client's files, both where the client namespace reads them. */
  clientFiles: (user: string, password: string) => Promise<{ auth: string; local: string }>;
  cleanup: () => Promise<void>;
}

const ip = (args: string[]) => execRunner('ip', args);

/** Directories bind-mounted per node: mount point → subdirectory of the node dir. */
const BINDS: [string, string][] = [
  ['/etc/ctdb', 'etc-ctdb'],
  ['/run/ctdb', 'run-ctdb'],
  ['/var/lib/ctdb', 'var-ctdb'],
  ['/etc/samba', 'etc-samba'],
  ['/var/lib/samba', 'var-samba'],
  ['/run/samba', 'run-samba'],
  ['/var/cache/samba', 'cache-samba'],
  ['/var/log/samba', 'log-samba'],
  ['/var/log/ctdb', 'log-ctdb'],
  // Ceph client configuration (the RADOS cluster lock helper reads /etc/ceph/ceph.conf)
  ['/etc/ceph', 'etc-ceph'],
];

async function pidsIn(ns: string): Promise<number[]> {
  const r = await execRunner('ip', ['netns', 'pids', ns], { allowFail: true });
  return r.stdout.split('\n').filter((l) => /^\d+$/.test(l.trim())).map(Number);
}

function kill(pid: number, sig: NodeJS.Signals = 'SIGKILL'): void {
  try { process.kill(pid, sig); } catch { /* gone */ }
}

async function readPid(file: string): Promise<number | undefined> {
  const t = await readFile(file, 'utf8').catch(() => '');
  const n = Number(t.trim());
  return Number.isInteger(n) && n > 1 ? n : undefined;
}

/**
 * `privateEtc`: each node's /etc is an overlay of the host's (writes stay the node's own: nsswitch.conf,
 * krb5.conf, krb5.keytab, resolv.conf for a domain member), under the bind mounts above.
 */
export async function startNetnsCluster(opts: { nodes?: number; privateEtc?: boolean } = {}): Promise<NetnsCluster> {
  const count = opts.nodes ?? 3;
  const id = randomBytes(2).toString('hex');
  const net = `10.${randomInt(64, 250)}.${randomInt(1, 254)}`;
  const dir = await mkdtemp(join(tmpdir(), `smbgw-ha${id}-`));
  await chmod(dir, 0o755);
  const shared = join(dir, 'shared');
  await mkdir(shared, { recursive: true });
  const switchNs = `smbgw${id}sw`;
  const created: string[] = [];
  const nodes: TestNode[] = [];
  const cleanup = async () => {
    for (let round = 0; round < 3; round++) {
      let any = false;
      for (const ns of created) for (const pid of await pidsIn(ns)) { any = true; kill(pid); }
      if (!any) break;
      await new Promise((r) => setTimeout(r, 300));
    }
    for (const ns of created.reverse()) await execRunner('ip', ['netns', 'del', ns], { allowFail: true });
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  };
  try {
    await ip(['netns', 'add', switchNs]);
    created.push(switchNs);
    await ip(['-n', switchNs, 'link', 'set', 'lo', 'up']);
    await ip(['-n', switchNs, 'link', 'add', 'br0', 'type', 'bridge']);
    await ip(['-n', switchNs, 'link', 'set', 'br0', 'up']);
    const plug = async (ns: string, port: string, address: string, ifname = 'eth0') => {
      await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      await ip(['-n', ns, 'link', 'add', ifname, 'type', 'veth', 'peer', 'name', port, 'netns', switchNs]);
      await ip(['-n', switchNs, 'link', 'set', port, 'master', 'br0']);
      await ip(['-n', switchNs, 'link', 'set', port, 'up']);
      await ip(['-n', ns, 'addr', 'add', `${address}/24`, 'dev', ifname]);
      await ip(['-n', ns, 'link', 'set', ifname, 'up']);
    };
    for (let i = 1; i <= count; i++) {
      const ns = `smbgw${id}n${i}`;
      await ip(['netns', 'add', ns]);
      created.push(ns);
      const address = `${net}.${10 + i}`;
      const port = `vn${i}`;
      await plug(ns, port, address);
      const ndir = join(dir, `n${i}`);
      for (const [, sub] of BINDS) await mkdir(join(ndir, sub), { recursive: true });
      // the node's CTDB configuration directory starts as the package installed it
      await execRunner('cp', ['-a', '/etc/ctdb/.', join(ndir, 'etc-ctdb')]);
      // `ip netns exec` gives the holder a mount namespace of its own (slave of the host's) with /sys of the netns
      const holder = spawn('ip', ['netns', 'exec', ns, 'sleep', 'infinity'], { detached: true, stdio: 'ignore' });
      holder.unref();
      const holderPid = holder.pid!;
      await new Promise((r) => setTimeout(r, 100));
      const inNs = prefixRunner(execRunner, `node n${i}`, 'nsenter', ['-t', String(holderPid), '-m', '-n', '--']);
      if (opts.privateEtc) {
        for (const sub of ['etc-upper', 'etc-work']) await mkdir(join(ndir, sub), { recursive: true });
        await inNs('mount', ['-t', 'overlay', `smbgw${id}n${i}-etc`, '-o', `lowerdir=/etc,upperdir=${ndir}/etc-upper,workdir=${ndir}/etc-work`, '/etc']);
      }
      for (const [mnt, sub] of BINDS) {
        await execRunner('mkdir', ['-p', mnt]);
        await inNs('mount', ['--bind', join(ndir, sub), mnt]);
      }
      nodes.push({ name: `n${i}`, address, ns, holderPid, port, dir: ndir, run: inNs });
    }
    const cns = `smbgw${id}c`;
    await ip(['netns', 'add', cns]);
    created.push(cns);
    const caddr = `${net}.50`;
    await plug(cns, 'vc', caddr);
    const client = { ns: cns, address: caddr, run: prefixRunner(execRunner, 'client', 'ip', ['netns', 'exec', cns]) };

    const killNode = async (n: TestNode) => {
      for (const f of [join(n.dir, 'run-ctdb', 'ctdbd.pid'), join(n.dir, 'run-samba', 'smbd.pid')]) {
        const pid = await readPid(f);
        if (pid) { kill(-pid); kill(pid); }
      }
      // stragglers of this node (smbd children started elsewhere in its group): anything in its netns but the holder
      for (const pid of await pidsIn(n.ns)) if (pid !== n.holderPid) kill(pid);
      // a dead host does not answer for its VIPs any more
      const r = await ip(['-n', n.ns, '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
      for (const m of r.stdout.matchAll(/inet (\d+\.\d+\.\d+\.\d+\/\d+)/g)) {
        if (m[1]!.split('/')[0] !== n.address) await ip(['-n', n.ns, 'addr', 'del', m[1]!, 'dev', 'eth0']);
      }
    };
    const hasAddress = async (n: TestNode, addr: string) => {
      const r = await ip(['-n', n.ns, '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
      return r.stdout.includes(` ${addr}/`);
    };
    const smb = async (host: string, share: string, authFile: string, command: string, timeoutMs = 8_000) => {
      const r = await client.run('smbclient', ['-s', '/dev/null', `//${host}/${share}`, '-A', authFile, '--option=client min protocol=SMB2_10', '-c', command], { allowFail: true, timeoutMs })
        .catch((e: Error) => ({ code: -1, stdout: '', stderr: e.message }));
      return { ok: r.code === 0, output: (r.stdout + r.stderr).trim() };
    };
    return {
      id, dir, shared, smb, net, prefix: 24, switchNs, nodes, client,
      vipRange: `${net}.100-${net}.120`,
      partition: async (n) => { await ip(['-n', switchNs, 'link', 'set', n.port, 'nomaster']); },
      heal: async (n) => { await ip(['-n', switchNs, 'link', 'set', n.port, 'master', 'br0']); },
      killNode, hasAddress, cleanup,
      holders: async (addr) => {
        const out: TestNode[] = [];
        for (const n of nodes) if (await hasAddress(n, addr)) out.push(n);
        return out;
      },
      runnerFor: (n) => nodes.find((x) => x.name === n.name)!.run,
      clientFiles: async (user, password) => {
        const auth = join(dir, `${user}.auth`);
        await writeFile(auth, `username = ${user}\npassword = ${password}\n`, { mode: 0o600 });
        const local = join(dir, 'client');
        await mkdir(local, { recursive: true });
        await chmod(dir, 0o755);
        return { auth, local };
      },
      attach: async (ns, ifname, address) => { await plug(ns, `va${randomBytes(3).toString('hex')}`, address, ifname); },
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
}
