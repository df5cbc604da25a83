/**
 * HA on Ceph: the 3-node CTDB cluster of test/ha-cluster.test.ts (network namespaces, real ctdbd and
 * clustered smbd per node) with the cluster lock in RADOS (ctdb_mutex_ceph_rados_helper, its pool
 * created by `ha deploy`) and the share's data on CephFS, served by every node's clustered smbd through
 * vfs_ceph (libcephfs, the gateway's CephX client; no mount on the nodes). The Ceph cluster (1 mon,
 * 1 OSD, 1 MDS) runs on the namespaces' bridge: a node cut off the bridge reaches neither the other
 * nodes nor Ceph. The test itself looks at CephFS through a ceph-fuse mount on the host.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { execRunner } from '../src/core/exec.ts';
import { validate } from '../src/core/schema.ts';
import { defaultSettings } from '../src/core/settings.ts';
import { parseShare } from '../src/core/share.ts';
import { ctdbStatus, waitHealthy, type HaNode } from '../src/ha/ctdb.ts';
import { deployHa, haDeploySchema } from '../src/ha/service.ts';
import { CEPH_EVICT_SCRIPT } from '../src/ha/cephevict.ts';
import { makeGateway } from '../src/provision/context.ts';
import { cephShareDir, startCephForCluster, type TestCeph } from './helpers/ceph.ts';
import { startNetnsCluster, type NetnsCluster } from './helpers/netns.ts';
import { bystander, continuousWriter, readBackAll, sha } from './helpers/failover.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('HA on Ceph: the CTDB cluster lock in RADOS, the data on CephFS through vfs_ceph', { timeout: 300_000 }, async (t) => {
  const c: NetnsCluster = await startNetnsCluster({ nodes: 3 });
  let ceph: TestCeph | undefined;
  const user = `t${c.id}hc`;
  t.after(async () => {
    await ceph?.stop();
    await c.cleanup();
    await execRunner('userdel', [user], { allowFail: true });
    await execRunner('groupdel', [user], { allowFail: true });
  });
  ceph = await startCephForCluster(c);
  t.diagnostic(`ceph cluster on the bridge (${ceph.ip}) started in ${(ceph.startMs / 1000).toFixed(1)} s`);
  await execRunner('useradd', ['-M', '-s', '/usr/sbin/nologin', user]);
  const uid = Number((await execRunner('id', ['-u', user])).stdout.trim());
  const password = `Pw-${randomBytes(6).toString('hex')}`;
  const gwDir = join(c.dir, 'gw');
  const n1 = c.nodes[0]!;
  const settings = { ...defaultSettings(), isPve: false, node: 'n1', storeDir: join(gwDir, 'etc'), lockDir: join(gwDir, 'lock'), stateDir: join(gwDir, 'state'), allowedRoots: [c.dir], cephConf: ceph.conf };
  const gw = makeGateway(settings, n1.run);
  // The share's directory in CephFS (/data, owned by the user), the gateway's CephX client with caps on
  // it and its keyring, as `create` makes them for a CephFS share (test/cephfs.test.ts goes through the CLI).
  const { data, rec } = await cephShareDir(ceph, c.dir, settings, n1.run, uid);
  const sharename = `hc${c.id}`;
  await gw.store.write([parseShare({ sharename, mode: 'native', path: data, users: [user], ha_enabled: true, ctdb_vip: 'auto', backing: 'cephfs', created: [rec] }, { allowInternal: true })]);
  const members = c.nodes;
  const runnerFor = c.runnerFor;
  const haNodes: HaNode[] = members.map((n) => ({ name: n.name, address: n.address, run: n.run }));
  const { auth, local } = await c.clientFiles(user, password);
  let vip = '';
  const holderNode = () => c.holders(vip);

  await t.test('deploy with the lock in RADOS (pool created by the gateway): every node OK, SMB at the VIP writes into CephFS', async () => {
    const t0 = Date.now();
    const r = await deployHa(gw, validate(haDeploySchema, {
      nodes: members.map((n) => `${n.name}=${n.address}`), interface: 'eth0', cluster_lock: `rados:ceph:client.admin:smbgw_ctdb:lock${c.id}`, create_lock_pool: true,
      vip_range: c.vipRange, services: 'direct', log_location: 'file:/var/log/ctdb/log.ctdb', netbios_name: `HC${c.id}`,
    }), runnerFor);
    t.diagnostic(`cold deploy with the RADOS lock took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    vip = r.vips[sharename]!.split('/')[0]!;
    assert.match((await ceph!.ceph(['osd', 'pool', 'ls'])).stdout, /^smbgw_ctdb$/m, 'the gateway created the lock pool');
    assert.match(await readFile(join(n1.dir, 'etc-ctdb', 'ctdb.conf'), 'utf8'), new RegExp(`cluster lock = !/usr/libexec/ctdb/ctdb_mutex_ceph_rados_helper ceph client.admin smbgw_ctdb lock${c.id}`));
    const st = await ctdbStatus(n1.run);
    assert.deepEqual(st.map((s) => s.ok), [true, true, true]);
    // every node serves the share from its directory inside CephFS through vfs_ceph, and has the event
    // script that evicts a dead node's CephFS sessions
    for (const n of members) {
      assert.match(await readFile(join(n.dir, 'etc-ctdb', 'events', 'legacy', CEPH_EVICT_SCRIPT), 'utf8'), /client\.smbgateway/);
      const reg = (await n.run('net', ['conf', 'showshare', sharename])).stdout;
      assert.match(reg, /^\s*path = \/data$/m, `${n.name}: ${reg}`);
      assert.match(reg, /^\s*vfs objects = .*\bceph$/m, `${n.name}: ${reg}`);
    }
    await n1.run('smbpasswd', ['-s', '-a', user], { input: `${password}\n${password}\n` });
    await writeFile(join(local, 'hello.txt'), 'hello over the VIP into CephFS\n');
    const put = await c.smb(vip, sharename, auth, `put ${join(local, 'hello.txt')} hello.txt`);
    assert.ok(put.ok, put.output);
    // the file is in CephFS (seen on the host's CephFS mount), on no node's disk
    assert.equal(await readFile(join(data, 'hello.txt'), 'utf8'), 'hello over the VIP into CephFS\n');
  });

  const deployed = () => assert.ok(vip, 'the cluster was not deployed (see the first subtest)');
  await t.test('kill -9 of the VIP holder during continuous writes: the VIP moves, every file reads back from the new node', async () => {
    deployed();
    const [victim] = await holderNode();
    assert.ok(victim);
    const target = { c, vip, share: sharename, auth };
    // A client that has a file open on the victim when it dies (as Windows has its documents open): its
    // libcephfs session holds capabilities on that file, which the MDS must take back before another
    // node may write it.
    const heldBody = randomBytes(64 * 1024);
    await writeFile(join(local, 'held.bin'), heldBody);
    const held = spawn('ip', ['netns', 'exec', c.client.ns, 'stdbuf', '-oL', '-eL', 'smbclient', '-s', '/dev/null', `//${vip}/${sharename}`, '-A', auth, '--option=client min protocol=SMB2_10'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let heldOut = '';
    held.stdout.on('data', (d) => (heldOut += d));
    held.stderr.on('data', (d) => (heldOut += d));
    held.stdin.on('error', () => undefined);
    t.after(() => { held.kill(); });
    const heldPut = await c.smb(vip, sharename, auth, `put ${join(local, 'held.bin')} held.bin`);
    assert.ok(heldPut.ok, heldPut.output);
    held.stdin.write('open held.bin\n');
    const heldDeadline = Date.now() + 60_000;
    while (!/open file .*held\.bin/i.test(heldOut) && Date.now() < heldDeadline) await sleep(100);
    t.diagnostic(`held session opened its file after ${((Date.now() - heldDeadline + 60_000) / 1000).toFixed(1)} s`);
    assert.match(heldOut, /open file .*held\.bin/i, 'the held session opened its file');
    const w = continuousWriter(target, local);
    while (w.written.length < 5) await sleep(50);
    const killedAt = Date.now();
    const before = w.written.length;
    await c.killNode(victim);
    held.kill();
    // the client comes back through the VIP and writes the file it had open (a new version of it)
    const heldV2 = randomBytes(64 * 1024);
    await writeFile(join(local, 'held2.bin'), heldV2);
    const heldWrite = (async () => {
      for (;;) {
        const r = await c.smb(vip, sharename, auth, `put ${join(local, 'held2.bin')} held.bin`, 6_000);
        if (r.ok) return Date.now();
        if (Date.now() - killedAt > 90_000) throw new Error(`the file held open on the dead node was not writable within 90 s: ${r.output}`);
      }
    })();
    const deadline = Date.now() + 60_000;
    while (w.after(killedAt).length < 3 && Date.now() < deadline) await sleep(100);
    t.diagnostic(`after the kill: ${w.after(killedAt).length} written, ${w.failures()} failures, holders ${(await holderNode()).map((n) => n.name)}`);
    await w.stop();
    const after = w.after(killedAt);
    assert.ok(after.length >= 3, `the client wrote ${after.length} file(s) after the kill (failures ${w.failures()})`);
    t.diagnostic(`kill -9 of ${victim.name} (lock in RADOS): first write through the VIP after ${((after[0]!.at - killedAt) / 1000).toFixed(1)} s; ${w.failures()} failed attempt(s); ${before} file(s) written before the kill`);
    const heldAt = await heldWrite;
    t.diagnostic(`the file held open on ${victim.name}: written again through the VIP ${((heldAt - killedAt) / 1000).toFixed(1)} s after the kill`);
    // The survivors' event script evicted the dead node's CephFS sessions (and so blocklisted them): the
    // file was free long before the MDS would have timed the session out (session_timeout 30 s here;
    // 29.9 s measured without the script)
    assert.ok(heldAt - killedAt < 20_000, `the file held open on the dead node was writable only ${((heldAt - killedAt) / 1000).toFixed(1)} s after the kill`);
    const bl = await ceph!.ceph(['osd', 'blocklist', 'ls']);
    assert.match(bl.stdout + bl.stderr, new RegExp(`^${victim.address.replace(/\./g, '\\.')}:`, 'm'), 'the dead node\'s CephFS sessions were evicted (blocklisted)');
    w.written.push({ name: 'held.bin', sum: sha(heldV2), at: heldAt });
    const holders = await holderNode();
    assert.equal(holders.length, 1);
    assert.notEqual(holders[0]!.name, victim.name, 'VIP moved off the dead node');
    const t0 = Date.now();
    await readBackAll(target, w.written, 30_000);
    t.diagnostic(`${w.written.length} files read back with their checksums through the new holder ${holders[0]!.name} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const r = await deployHa(gw, validate(haDeploySchema, {}), runnerFor);
    assert.ok(r.changes[victim.name]!.includes('started ctdbd'), `${victim.name}: ${r.changes[victim.name]}`);
  });

  await t.test('a partitioned node cannot take the RADOS lock and never takes the VIP', async () => {
    deployed();
    await waitHealthy(haNodes, [vip], 90_000, { checkInterfaces: true });
    // the node cut off is neither the VIP holder nor the leader (who holds the cluster lock)
    const { victim, rest, victimLog, logBefore } = await bystander(c, members, vip);
    await c.partition(victim);
    const t0 = Date.now();
    let seenDisconnected = 0;
    let victimHadVip = false;
    let lockLines: string[] = [];
    while (Date.now() - t0 < 60_000) {
      if (await c.hasAddress(victim, vip)) victimHadVip = true;
      const seen = await ctdbStatus(rest[0]!.run).catch(() => []);
      if (!seenDisconnected && seen.find((s) => s.address === victim.address)?.flags.includes('DISCONNECTED')) seenDisconnected = Date.now();
      lockLines = (await readFile(victimLog, 'utf8')).slice(logBefore).split('\n').filter((l) => /cluster lock/i.test(l));
      if (seenDisconnected && lockLines.some((l) => /Attempting to take cluster lock/.test(l)) && Date.now() - seenDisconnected > 10_000) break;
      await sleep(500);
    }
    assert.equal(victimHadVip, false, 'partitioned node took the VIP');
    // it tried to become leader of its own partition: the RADOS helper cannot reach Ceph, so no lock
    assert.ok(lockLines.some((l) => /Attempting to take cluster lock/.test(l)), `the partitioned node's log: ${lockLines.join(' / ')}`);
    assert.ok(!lockLines.some((l) => /Cluster lock taken successfully/i.test(l)), `the partitioned node took the lock: ${lockLines.join(' / ')}`);
    t.diagnostic(`${victim.name} cut off ${((Date.now() - t0) / 1000).toFixed(0)} s: ${lockLines.map((l) => l.replace(/^\S+ \S+ /, '')).join(' / ')}`);
    const ls = await c.smb(vip, sharename, auth, 'ls hello.txt');
    assert.ok(ls.ok, `SMB through the VIP during the partition: ${ls.output}`);
    await c.heal(victim);
    await waitHealthy(haNodes, [vip], 120_000, { checkInterfaces: true });
  });

  await t.test('ha deploy names a node whose smbd could not reach Ceph (instead of tree connects failing there)', async () => {
    deployed();
    const leaderPnn = Number((await n1.run('ctdb', ['leader'])).stdout.trim());
    const st = await ctdbStatus(n1.run);
    const node = members.find((n) => st.find((s) => s.address === n.address)!.pnn !== leaderPnn)!;
    // the node's packets to the Ceph cluster go nowhere (CTDB between the nodes is untouched)
    await node.run('ip', ['route', 'add', 'blackhole', `${ceph!.ip}/32`]);
    try {
      await assert.rejects(deployHa(gw, validate(haDeploySchema, {}), runnerFor),
        new RegExp(`node ${node.name}: the Ceph cluster does not answer client\\.smbgateway with \\S+ceph\\.conf, so its smbd cannot serve the CephFS shares`));
    } finally {
      await node.run('ip', ['route', 'del', 'blackhole', `${ceph!.ip}/32`]);
    }
    const r = await deployHa(gw, validate(haDeploySchema, {}), runnerFor);
    assert.deepEqual(Object.values(r.changes).flat(), [], 'nothing to change once the node reaches Ceph again');
  });
});
