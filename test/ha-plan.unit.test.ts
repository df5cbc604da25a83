/**
 * HA planners (pure) and the small adapters around them that need no cluster: ctdb.conf, nodes,
 * public_addresses, VIP auto selection, clustered smb.conf, registry commands (run against a real
 * Samba registry), CTDB output parsing, SSH quoting, and refusals (no cluster lock, bad input).
 */
import assert from 'node:assert/strict';
import { parseNetConfShare } from '../src/samba/netconf.ts';
import { validate } from '../src/core/schema.ts';
import { invoke } from '../src/core/operation.ts';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { makeGateway } from '../src/provision/context.ts';
import { deployHa, haDeploySchema, haState } from '../src/ha/service.ts';
import { failoverOp } from '../src/api/operations/ha.ts';
import { GatewayError } from '../src/core/errors.ts';
import { execRunner, type Runner } from '../src/core/exec.ts';
import { defaultSettings, settingsJson } from '../src/core/settings.ts';
import { parseShare } from '../src/core/share.ts';
import { resolveVips, saveHaConfig, type HaConfig } from '../src/ha/config.ts';
import {
  clusterLockValue, type ClusterLock, judgeCluster, netConfShareCommands, nodesFromPveClusterStatus, parseClusterLock, parseCtdbIps,
  parseCtdbStatus, parseNodeList, parseNodesFile, parsePublicAddresses, pickVip, registryMatches,
  renderClusteredSmbConf, renderCtdbConf, renderNodesFile, renderPublicAddresses,
} from '../src/ha/plan.ts';
import { shQuote, sshRunner } from '../src/ha/transport.ts';
import { CEPH_EVICT_SCRIPT, renderCephEvictScript } from '../src/ha/cephevict.ts';
import { CLI, sh } from './helpers/gateway.ts';

const nodes = [
  { name: 'pve1', address: '10.0.0.1' },
  { name: 'pve2', address: '10.0.0.2' },
  { name: 'pve3', address: '10.0.0.3' },
];

/** What `ctdb -X status` printed on the lab cluster (CTDB 4.17). */
const STATUS = `|Node|IP|Disconnected|Unknown|Banned|Disabled|Unhealthy|Stopped|Inactive|PartiallyOnline|ThisNode|
|0|10.0.0.1|0|0|0|0|0|0|0|0|Y|
|1|10.0.0.2|1|0|0|0|1|0|1|0|N|
|2|10.0.0.3|0|0|0|0|0|0|0|0|N|
`;

test('ctdb.conf: INI format with a cluster lock file, or the Ceph RADOS mutex helper', () => {
  const conf = renderCtdbConf({ lock: { kind: 'file', path: '/mnt/pve/cephfs/.ctdb.lock' } });
  assert.match(conf, /^\[logging\]\n\tlocation = syslog\n\tlog level = NOTICE\n\[cluster\]\n\tcluster lock = \/mnt\/pve\/cephfs\/\.ctdb\.lock\n$/m);
  const rados = renderCtdbConf({ lock: parseClusterLock('rados:ceph:client.admin:ctdb:lock1'), logLocation: 'file:/var/log/ctdb/log.ctdb' });
  assert.match(rados, /\tcluster lock = !\/usr\/libexec\/ctdb\/ctdb_mutex_ceph_rados_helper ceph client\.admin ctdb lock1\n/);
  assert.match(rados, /\tlocation = file:\/var\/log\/ctdb\/log\.ctdb\n/);
});

test('HA without a cluster lock is refused unless forced (split brain)', () => {
  assert.throws(() => renderCtdbConf({ lock: { kind: 'none' } }), (e: GatewayError) => e.code === 'invalid' && e.field === 'cluster_lock' && /split brain/.test(e.message));
  const forced = renderCtdbConf({ lock: { kind: 'none' }, forceNoLock: true });
  assert.doesNotMatch(forced, /cluster lock =/);
  assert.match(forced, /no cluster lock: forced/);
  assert.throws(() => clusterLockValue({ kind: 'file', path: 'relative/lock' }), /cluster_lock: must be an absolute path/);
  assert.throws(() => clusterLockValue({ kind: 'file', path: '/a b' }), /white space/);
  assert.throws(() => parseClusterLock('rados:ceph:admin'), /rados:<ceph cluster>/);
  assert.throws(() => clusterLockValue(parseClusterLock('rados:ceph:client.admin:pool:obj;rm')), /rados object/);
  // the RADOS lock's lease is the helper's 5th argument, checked
  assert.equal(clusterLockValue({ ...parseClusterLock('rados:ceph:client.admin:ctdb:lock1'), duration: 4 } as ClusterLock), '!/usr/libexec/ctdb/ctdb_mutex_ceph_rados_helper ceph client.admin ctdb lock1 4');
  for (const d of [0, 1, 1.5, 121]) assert.throws(() => clusterLockValue({ ...parseClusterLock('rados:ceph:client.admin:ctdb:lock1'), duration: d } as ClusterLock), /cluster_lock_duration: must be a whole number of seconds, 2\.\.120/);
  assert.throws(() => renderCtdbConf({ lock: { kind: 'file', path: '/x' }, logLocation: 'file:/x\n[cluster]' }), /line break/);
});

test('deploy refuses a cluster without a lock before touching any node', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'smbgw-hap-'));
  try {
    const calls: string[] = [];
    const spy: Runner = async (tool, args) => { calls.push([tool, ...args].join(' ')); return { code: 0, stdout: '', stderr: '' }; };
    const g = makeGateway({ ...defaultSettings(), storeDir: join(dir, 'etc'), lockDir: join(dir, 'lock'), node: 'pve1', isPve: false }, spy);
    await assert.rejects(deployHa(g, validate(haDeploySchema, { nodes: ['pve1=10.0.0.1', 'pve2=10.0.0.2'], interface: 'eth0', cluster_lock: 'none' }), () => spy),
      (e: GatewayError) => e.field === 'cluster_lock' && /refused/.test(e.message));
    assert.deepEqual(calls, [], 'no command ran on any node');
    await assert.rejects(deployHa(g, validate(haDeploySchema, { nodes: ['pve1=10.0.0.1', 'pve1=10.0.0.2'], interface: 'eth0', cluster_lock: '/s/l' }), () => spy), /nodes: node pve1 is listed twice/);
    await assert.rejects(deployHa(g, validate(haDeploySchema, { nodes: ['pve1=10.0.0.1'], cluster_lock: '/s/l' }), () => spy), /interface: give the network interface/);
    // a lease is a RADOS lock's: refused with a lock file, not ignored; out of range refused by the schema
    await assert.rejects(deployHa(g, validate(haDeploySchema, { nodes: ['pve1=10.0.0.1'], interface: 'eth0', cluster_lock: '/s/l', cluster_lock_duration: 4 }), () => spy),
      (e: GatewayError) => e.field === 'cluster_lock_duration' && /rados: cluster lock; the cluster lock is a file/.test(e.message));
    assert.throws(() => validate(haDeploySchema, { cluster_lock_duration: 1 }), /cluster_lock_duration/);
    assert.throws(() => validate(haDeploySchema, { cluster_lock_duration: 600 }), /cluster_lock_duration/);
    assert.deepEqual(calls, [], 'no command ran on any node');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('nodes file: identical order everywhere; a removed node is commented out, a new one appended', () => {
  const first = renderNodesFile(nodes);
  assert.equal(first, '10.0.0.1\n10.0.0.2\n10.0.0.3\n');
  // remove pve2: its line stays as a comment so that pve3 keeps PNN 2
  const removed = renderNodesFile([nodes[0]!, nodes[2]!], first);
  assert.equal(removed, '10.0.0.1\n#10.0.0.2\n10.0.0.3\n');
  assert.deepEqual(parseNodesFile(removed).map((n) => [n.pnn, n.address, n.deleted]), [[0, '10.0.0.1', false], [1, '10.0.0.2', true], [2, '10.0.0.3', false]]);
  // add pve4: appended, PNN 3
  const added = renderNodesFile([nodes[0]!, nodes[2]!, { name: 'pve4', address: '10.0.0.4' }], removed);
  assert.equal(added, '10.0.0.1\n#10.0.0.2\n10.0.0.3\n10.0.0.4\n');
  // re-rendering is stable (idempotent)
  assert.equal(renderNodesFile([nodes[0]!, nodes[2]!, { name: 'pve4', address: '10.0.0.4' }], added), added);
  assert.deepEqual(parseNodeList(['pve1=10.0.0.1', 'pve2 = 10.0.0.2']), nodes.slice(0, 2));
  assert.throws(() => parseNodeList(['pve1=10.0.0.1', 'pve2=10.0.0.1']), /address 10\.0\.0\.1 is listed twice/);
  assert.throws(() => parseNodeList(['pve1']), /must be name=address/);
  assert.throws(() => parseNodeList(['pve1=10.0.0.300']), /not an IPv4 address/);
});

test('node addresses from Proxmox /cluster/status, ordered by node id', () => {
  const status = [
    { type: 'cluster', id: 'cluster', name: 'lab', nodes: 3, quorate: 1, version: 3 },
    { type: 'node', id: 'node/pve2', name: 'pve2', ip: '10.0.0.2', nodeid: 2, online: 1, local: 0 },
    { type: 'node', id: 'node/pve1', name: 'pve1', ip: '10.0.0.1', nodeid: 1, online: 1, local: 1 },
    { type: 'node', id: 'node/pve3', name: 'pve3', ip: '10.0.0.3', nodeid: 3, online: 0, local: 0 },
  ];
  assert.deepEqual(nodesFromPveClusterStatus(status), nodes);
  assert.throws(() => nodesFromPveClusterStatus([{ type: 'node', name: 'x' }]), /has no ip/);
});

test('public_addresses and VIP auto selection from a range, skipping addresses in use', async () => {
  assert.equal(renderPublicAddresses([{ address: '10.0.0.101', prefix: 24, iface: 'vmbr0' }, { address: '10.0.0.100', prefix: 24, iface: 'vmbr0' }]), '10.0.0.100/24 vmbr0\n10.0.0.101/24 vmbr0\n');
  assert.deepEqual(parsePublicAddresses('10.0.0.100/24 vmbr0\n# x\n10.0.0.101/16 eth0,eth1\n'), [{ address: '10.0.0.100', prefix: 24, iface: 'vmbr0' }, { address: '10.0.0.101', prefix: 16, iface: 'eth0' }]);
  assert.throws(() => renderPublicAddresses([{ address: '10.0.0.1', prefix: 24, iface: 'eth0 x' }]), /interface/);
  assert.deepEqual(pickVip('10.0.0.100-10.0.0.102', ['10.0.0.100']), { address: '10.0.0.101', prefix: 24 });
  assert.deepEqual(pickVip('192.168.7.0/29', []), { address: '192.168.7.1', prefix: 29 });
  assert.throws(() => pickVip('10.0.0.100-10.0.0.101', ['10.0.0.100', '10.0.0.101']), /no free address left/);
  assert.throws(() => pickVip('10.0.0.9-10.0.0.1', []), /vip_range: the last address/);

  const cfg: HaConfig = { nodes, interface: 'vmbr0', cluster_lock: '/s/l', force_no_lock: false, netbios_name: 'SMBGW', vip_range: '10.0.0.1-10.0.0.20', vip_prefix: 24, services: 'systemd', vips: { old: '10.0.0.9/24' }, registry_shares: [] };
  const share = (sharename: string, ctdb_vip: string) => parseShare({ sharename, mode: 'native', path: '/srv/' + sharename, users: ['alice'], ha_enabled: true, ctdb_vip });
  const pinged: string[] = [];
  const inUse = new Set(['10.0.0.4']);
  const r = await resolveVips([share('a', 'auto'), share('b', '10.0.0.5/16'), share('old', 'auto'), share('c', 'auto')], cfg, async (ip) => { pinged.push(ip); return inUse.has(ip); });
  // node addresses .1-.3 skipped without a ping, .4 answers (in use), .5 is share b's, .9 kept for "old"
  assert.deepEqual(r.vips, { b: '10.0.0.5/16', old: '10.0.0.9/24', a: '10.0.0.6/24', c: '10.0.0.7/24' });
  assert.deepEqual(pinged, ['10.0.0.4', '10.0.0.6', '10.0.0.7']);
  assert.deepEqual(r.addrs.map((a) => `${a.address}/${a.prefix} ${a.iface}`).sort(), ['10.0.0.5/16 vmbr0', '10.0.0.6/24 vmbr0', '10.0.0.7/24 vmbr0', '10.0.0.9/24 vmbr0']);
  await assert.rejects(resolveVips([share('a', 'auto')], { ...cfg, vip_range: undefined, vips: {} }, async () => false), /vip_range: share a has ctdb_vip auto/);
  await assert.rejects(resolveVips([share('a', '10.0.0.2')], cfg, async () => false), /ctdb_vip: 10\.0\.0\.2 \(share a\) is a node's own address/);
});

test('clustered smb.conf: clustering, registry, one NetBIOS name, fileid with the fsid algorithm', () => {
  const t = renderClusteredSmbConf({ netbiosName: 'smbgw', extra: [['server signing', 'mandatory']] });
  for (const l of ['clustering = yes', 'netbios name = SMBGW', 'vfs objects = fileid', 'fileid:algorithm = fsid', 'server signing = mandatory'])
    assert.ok(t.includes(`\n   ${l}\n`), l);
  assert.ok(t.endsWith('   include = registry\n'), 'the registry comes last so that its shares load after [global]');
  assert.throws(() => renderClusteredSmbConf({ netbiosName: 'a-name-longer-than-15' }), /netbios_name/);
  assert.throws(() => renderClusteredSmbConf({ netbiosName: 'ok', extra: [['x', 'y\n[evil]']] }), /line break/);
});

test('net conf commands put exactly the share\'s parameters into a Samba registry', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'smbgw-reg-'));
  try {
    for (const d of ['private', 'lock', 'state', 'cache', 'pid', 'ncalrpc']) await mkdir(join(dir, d));
    const conf = join(dir, 'smb.conf');
    await writeFile(conf, ['[global]', ...['private', 'lock', 'state', 'cache', 'pid', 'ncalrpc'].map((d) => `   ${d === 'lock' ? 'lock directory' : d === 'state' ? 'state directory' : d === 'cache' ? 'cache directory' : d === 'pid' ? 'pid directory' : d === 'ncalrpc' ? 'ncalrpc dir' : 'private dir'} = ${join(dir, d)}`), '   include = registry', ''].join('\n'));
    const net = (args: string[]) => execRunner('net', ['-s', conf, ...args], { allowFail: true });
    const s1 = parseShare({ sharename: 'Team Data', mode: 'native', path: '/srv/team', users: ['alice'], read_users: ['bob'], comment: 'the team', ha_enabled: true, ctdb_vip: 'auto', security_profile: 'high' });
    for (const args of netConfShareCommands(s1, false)) { const r = await net(args); assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`); }
    const shown = parseNetConfShare((await net(['conf', 'showshare', 'Team Data'])).stdout);
    assert.ok(registryMatches(s1, shown), JSON.stringify(shown));
    assert.deepEqual(Object.fromEntries(shown).path, '/srv/team');
    assert.equal(Object.fromEntries(shown)['server smb encrypt'], 'required', 'the registry keeps smb encrypt under its canonical name');
    // the share's own modules (here the collector's tree connect audit) stay, fileid is added
    assert.equal(Object.fromEntries(shown)['vfs objects'], 'full_audit fileid');
    const snap = netConfShareCommands({ ...s1, sharename: 'snap', backup_enabled: true, backing: 'zfs:tank/team', presets: ['recycle'] }, false).find((a) => a.includes('vfs objects'));
    assert.deepEqual(snap?.slice(-1), ['full_audit shadow_copy2 recycle fileid'], 'Previous Versions and presets stay on a clustered share');
    // a changed share no longer matches; re-applying replaces it (no stale parameter left)
    const s2 = { ...s1, read_users: [], comment: undefined };
    assert.equal(registryMatches(s2, shown), false);
    for (const args of netConfShareCommands(s2, true)) assert.equal((await net(args)).code, 0);
    const shown2 = parseNetConfShare((await net(['conf', 'showshare', 'Team Data'])).stdout);
    assert.ok(registryMatches(s2, shown2));
    assert.equal(shown2.some(([k]) => k === 'comment'), false);
    // A CephFS share: the registry's path is the directory inside CephFS that vfs_ceph opens, not the
    // node's mount point of it (with the mount point the clustered tree connect failed)
    const rec = { kind: 'cephx' as const, client: 'client.smbgateway', conf: '/etc/pve/priv/smbgateway/ceph/ceph.conf', fs: 'cephfs', cephpath: '/projects' };
    const s3 = parseShare({ sharename: 'cfs', mode: 'native', path: '/mnt/pve/cephfs/projects', users: ['alice'], ha_enabled: true, ctdb_vip: 'auto', backing: 'cephfs', created: [rec] }, { allowInternal: true });
    for (const args of netConfShareCommands(s3, false)) assert.equal((await net(args)).code, 0);
    const shown3 = Object.fromEntries(parseNetConfShare((await net(['conf', 'showshare', 'cfs'])).stdout));
    assert.equal(shown3.path, '/projects');
    assert.match(shown3['vfs objects']!, /\bceph$/);
    assert.equal(shown3['ceph:user_id'], 'smbgateway');
    assert.ok(registryMatches(s3, parseNetConfShare((await net(['conf', 'showshare', 'cfs'])).stdout)), 'a re-deploy finds it unchanged');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('ctdb -X status / ip parsing and the cluster verdict name the node at fault', () => {
  const st = parseCtdbStatus(STATUS);
  assert.deepEqual(st.map((s) => [s.pnn, s.ok, s.flags.join(','), s.thisNode]), [[0, true, '', true], [1, false, 'DISCONNECTED,UNHEALTHY,INACTIVE', false], [2, true, '', false]]);
  const ips = parseCtdbIps('|Public IP|Node|\n|10.0.0.100|2|\n|10.0.0.101|-1|\n');
  assert.deepEqual(ips, [{ address: '10.0.0.100', pnn: 2 }, { address: '10.0.0.101', pnn: -1 }]);
  const v = judgeCluster(nodes, st, ips, ['10.0.0.100', '10.0.0.101', '10.0.0.102'], new Map([['10.0.0.100', ['10.0.0.3', '10.0.0.1']]]));
  assert.deepEqual(v.problems, [
    'node pve2 (10.0.0.2) is DISCONNECTED,UNHEALTHY,INACTIVE',
    'VIP 10.0.0.100 is configured on 2 nodes at once: pve3, pve1',
    'VIP 10.0.0.101 is not hosted by any node',
    'VIP 10.0.0.102 is not a public address of the cluster',
  ]);
  assert.equal(judgeCluster(nodes.filter((n) => n.name !== 'pve2'), st, ips.slice(0, 1), ['10.0.0.100']).ok, true);
  assert.throws(() => parseCtdbStatus('connection refused'), /unexpected output/);
});

test('SSH runner: every argument reaches the remote command unchanged (quoted for the remote shell)', async () => {
  let remote = '';
  const fake: Runner = async (tool, args) => { assert.equal(tool, 'ssh'); remote = args[args.length - 1]!; assert.equal(args[args.length - 2], '--'); assert.ok(args.includes('root@10.0.0.2')); return { code: 0, stdout: '', stderr: '' }; };
  const weird = ['a b', "it's", '$(touch /tmp/x)', '`id`', 'semi;colon', '', '*', 'new\tline'];
  await sshRunner(fake, '10.0.0.2')('printf', ['%s\\n', ...weird]);
  // what sshd does with the command line: hand it to the remote user's shell
  const r = await execRunner('sh', ['-c', remote.replace(/^printf/, 'printf')]);
  assert.deepEqual(r.stdout.split('\n').slice(0, -1), weird);
  assert.equal(shQuote('plain-arg_1.2'), 'plain-arg_1.2');
  const failing = sshRunner(async () => ({ code: 255, stdout: '', stderr: 'ssh: connect to host 10.0.0.2 port 22: No route to host' }), '10.0.0.2', 'node pve2');
  await assert.rejects(failing('ctdb', ['status']), /node pve2: cannot reach node over SSH \(root@10\.0\.0\.2\): ssh: connect to host/);
});

test('failover and HA status without a cluster: clear errors, on the CLI too', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'smbgw-hafo-'));
  try {
    const settings = { ...defaultSettings(), isPve: false, node: 'pve1', storeDir: join(dir, 'etc'), lockDir: join(dir, 'lock'), stateDir: join(dir, 'state') };
    const file = join(dir, 'gateway.json');
    await writeFile(file, settingsJson(settings));
    const g = makeGateway(settings);
    const name = `s${randomBytes(2).toString('hex')}`;
    await g.store.write([
      parseShare({ sharename: name, mode: 'native', path: '/srv/x', users: ['alice'], ha_enabled: true, ctdb_vip: '10.0.0.100' }),
      parseShare({ sharename: 'plain', mode: 'native', path: '/srv/y', users: ['alice'] }),
    ]);
    const cli = (args: string[]) => sh(CLI, args, { env: { SMBGATEWAY_CONFIG: file } });
    const r = await cli(['failover', name, '--to', 'pve2', '--json']);
    assert.equal(r.code, 1);
    assert.match(JSON.parse(r.stdout).error.message, /no HA cluster is set up: run `pve-smbgateway ha deploy` first/);
    const plain = await cli(['failover', 'plain']);
    assert.equal(plain.code, 2);
    assert.match(plain.stderr, /sharename: share plain is not an HA share/);
    const help = await cli(['help', 'failover']);
    assert.match(help.stdout, /--to\s+Node to move the VIP to/);
    assert.equal((await haState(g)).ok, false);
    // with a cluster configured but no ctdbd reachable, status says so instead of failing
    await saveHaConfig(settings.storeDir, { nodes, interface: 'eth0', cluster_lock: '/s/l', force_no_lock: false, netbios_name: 'SMBGW', vip_prefix: 24, services: 'direct', vips: { [name]: '10.0.0.100/24' }, registry_shares: [name] });
    const noCtdb: Runner = async (tool, args, o) => {
      const r = { code: 1, stdout: '', stderr: 'Failed to connect to CTDB daemon (/run/ctdb/ctdbd.socket)' };
      if (o?.allowFail) return r;
      throw new GatewayError('failed', `${tool} ${args[0]} failed (exit 1): ${r.stderr}`);
    };
    const st = await haState(makeGateway(settings, noCtdb), (await g.store.get(name))!);
    assert.equal(st.vip, '10.0.0.100');
    assert.equal(st.holder, null);
    assert.equal(st.ok, false);
    assert.match(st.problems[0]!, /no node's ctdbd answers/);
    await assert.rejects(invoke(failoverOp, { sharename: name, to: 'bad name!' }, g), /to: must be a node name/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('CephFS HA: the event script that evicts dead nodes\' CephFS sessions is valid python, acts only on "recovered", refuses unsafe values', async () => {
  const nodes = [{ name: 'pve1', address: '10.0.0.1' }, { name: 'pve2', address: '10.0.0.2' }];
  const text = renderCephEvictScript({ conf: '/etc/pve/ceph.conf', admin: 'admin', client: 'client.smbgateway', nodes });
  assert.ok(text.startsWith('#!/usr/bin/python3\n'));
  assert.match(text, /^CLIENT_ID = "smbgateway"$/m);
  assert.match(text, /^NODES = \{"10\.0\.0\.1":"pve1","10\.0\.0\.2":"pve2"\}$/m);
  const dir = await mkdtemp(join(tmpdir(), 'smbgw-evict-'));
  try {
    const f = join(dir, CEPH_EVICT_SCRIPT);
    await writeFile(f, text);
    assert.equal((await execRunner('python3', ['-m', 'py_compile', f], { allowFail: true })).code, 0);
    // any other event: nothing runs (no ctdb, no ceph), exit 0 at once
    const r = await execRunner('/usr/bin/python3', [f, 'monitor'], { allowFail: true, env: { PATH: '/nonexistent' } });
    assert.equal(r.code, 0, r.stderr);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.throws(() => renderCephEvictScript({ conf: 'ceph.conf', admin: 'admin', client: 'client.x', nodes }), /ceph_conf/);
  assert.throws(() => renderCephEvictScript({ conf: '/etc/ceph/ceph.conf"\nimport os', admin: 'admin', client: 'client.x', nodes }), /ceph_conf/);
  assert.throws(() => renderCephEvictScript({ conf: '/etc/ceph/ceph.conf', admin: 'ad min', client: 'client.x', nodes }), /ceph_admin/);
});
