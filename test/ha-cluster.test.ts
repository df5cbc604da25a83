/**
 * A real 3-node CTDB cluster on this machine: network namespaces joined by a bridge, each node with
 * its own ctdbd and clustered smbd, configured by the gateway (deployHa through per-node Runners).
 * One cluster is reused by the subtests, in order: deploy, idempotent re-deploy, status, kill -9 of
 * the VIP holder under continuous writes, planned failover, partition of one node, adding a node and
 * removing one.
 */
import assert from 'node:assert/strict';
import { validate } from '../src/core/schema.ts';
import { invoke } from '../src/core/operation.ts';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { makeGateway } from '../src/provision/context.ts';
import { deployHa, haDeploySchema, haState, type HaDeployResult, type HaState } from '../src/ha/service.ts';
import { failoverOp } from '../src/api/operations/ha.ts';
import { statusOp } from '../src/api/operations/shares.ts';
import { execRunner } from '../src/core/exec.ts';
import { defaultSettings } from '../src/core/settings.ts';
import { parseShare } from '../src/core/share.ts';
import { loadHaConfig } from '../src/ha/config.ts';
import { ctdbIps, ctdbStatus, waitHealthy, type HaNode } from '../src/ha/ctdb.ts';
import { startNetnsCluster, type NetnsCluster } from './helpers/netns.ts';
import { bystander, continuousWriter, readBackAll } from './helpers/failover.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('HA with CTDB: a 3-node cluster in namespaces keeps the share up at its VIP', { timeout: 540_000 }, async (t) => {
  const c: NetnsCluster = await startNetnsCluster({ nodes: 4 });
  const user = `t${c.id}ha`;
  t.after(async () => {
    await c.cleanup();
    await execRunner('userdel', [user], { allowFail: true });
    await execRunner('groupdel', [user], { allowFail: true });
  });
  await execRunner('useradd', ['-M', '-s', '/usr/sbin/nologin', user]);
  const password = `Pw-${randomBytes(6).toString('hex')}`;
  const data = join(c.shared, 'data');
  await mkdir(data, { recursive: true });
  await execRunner('chown', [user, data]);
  const gwDir = join(c.dir, 'gw');
  const settings = { ...defaultSettings(), isPve: false, node: 'n1', storeDir: join(gwDir, 'etc'), lockDir: join(gwDir, 'lock'), stateDir: join(gwDir, 'state'), allowedRoots: [c.shared] };
  const n1 = c.nodes[0]!;
  // three members; the fourth machine joins later (adding a node), then n2 leaves (removing one)
  const members = c.nodes.slice(0, 3);
  const spare = c.nodes[3]!;
  // The gateway on node n1: its Runner runs inside n1's namespaces.
  const gw = makeGateway(settings, n1.run);
  const sharename = `ha${c.id}`;
  await gw.store.write([parseShare({ sharename, mode: 'native', path: data, users: [user], ha_enabled: true, ctdb_vip: 'auto' })]);
  const runnerFor = c.runnerFor;
  const haNodes: HaNode[] = members.map((n) => ({ name: n.name, address: n.address, run: n.run }));
  const deployParams = {
    nodes: members.map((n) => `${n.name}=${n.address}`), interface: 'eth0', cluster_lock: join(c.shared, '.ctdb.lock'),
    vip_range: c.vipRange, services: 'direct', log_location: 'file:/var/log/ctdb/log.ctdb', netbios_name: `HA${c.id}`,
  };
  const { auth, local } = await c.clientFiles(user, password);

  let vip = '';
  const holderNode = () => c.holders(vip);

  await t.test('deploy: every node OK, the auto VIP comes from the range and is hosted exactly once, SMB answers there', async () => {
    const t0 = Date.now();
    const r: HaDeployResult = await deployHa(gw, validate(haDeploySchema, deployParams), runnerFor);
    t.diagnostic(`cold deploy took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    vip = r.vips[sharename]!.split('/')[0]!;
    assert.equal(r.vips[sharename], `${c.net}.100/24`, 'first free address of the range');
    for (const n of members) assert.ok(r.changes[n.name]!.includes('started ctdbd'), `${n.name}: ${r.changes[n.name]}`);
    const st = await ctdbStatus(n1.run);
    assert.deepEqual(st.map((s) => [s.address, s.ok]), members.map((n) => [n.address, true]));
    const holders = await holderNode();
    assert.equal(holders.length, 1, 'VIP configured on exactly one node');
    assert.equal(r.holders[sharename], holders[0]!.name);
    // CTDB's files are the same on every node, the lock on shared storage
    const files = await Promise.all(members.map((n) => readFile(join(n.dir, 'etc-ctdb', 'nodes'), 'utf8')));
    assert.ok(files.every((f) => f === `${members.map((n) => n.address).join('\n')}\n`));
    assert.match(await readFile(join(n1.dir, 'etc-ctdb', 'ctdb.conf'), 'utf8'), new RegExp(`cluster lock = ${join(c.shared, '.ctdb.lock')}`));
    assert.equal(await readFile(join(members[2]!.dir, 'etc-ctdb', 'public_addresses'), 'utf8'), `${vip}/24 eth0\n`);
    // the share is in CTDB's registry, visible from every node; the password set on n1 is seen by all
    for (const n of members) assert.match((await n.run('net', ['conf', 'showshare', sharename])).stdout, new RegExp(`path\\s*=\\s*${data}`));
    // smbd on another node loads the clustered config with the share from the registry and the hardening
    const tp = await members[1]!.run('testparm', ['-s', '--suppress-prompt'], { allowFail: true });
    assert.match(tp.stdout, /clustering = Yes/);
    assert.match(tp.stdout, new RegExp(`\\[${sharename}\\]`));
    assert.match(tp.stdout, /server signing = required/);
    assert.match(tp.stdout, /fileid:algorithm = fsid/);
    await n1.run('smbpasswd', ['-s', '-a', user], { input: `${password}\n${password}\n` });
    await writeFile(join(local, 'hello.txt'), 'hello over the VIP\n');
    const put = await c.smb(vip, sharename, auth, `put ${join(local, 'hello.txt')} hello.txt`);
    assert.ok(put.ok, put.output);
    assert.equal(await readFile(join(data, 'hello.txt'), 'utf8'), 'hello over the VIP\n');
  });

  const deployed = () => assert.ok(vip, 'the cluster was not deployed (see the first subtest)');
  await t.test('re-running deploy changes nothing and keeps the VIP where it is', async () => {
    deployed();
    const before = (await holderNode())[0]!.name;
    const r = await deployHa(gw, validate(haDeploySchema, {}), runnerFor);
    for (const n of members) assert.deepEqual(r.changes[n.name], [], `${n.name} unchanged`);
    assert.equal(r.vips[sharename], `${vip}/24`);
    assert.equal((await holderNode())[0]!.name, before);
  });

  await t.test('status shows the HA state: the node holding the VIP and every node\'s flags', async () => {
    deployed();
    const s = await invoke(statusOp, { sharename }, gw) as { ha?: HaState };
    assert.ok(s.ha, 'status has an ha field');
    assert.equal(s.ha.vip, vip);
    assert.equal(s.ha.holder, (await holderNode())[0]!.name);
    assert.deepEqual(s.ha.nodes.map((n) => [n.name, n.flags.join(',')]), members.map((n) => [n.name, 'OK']));
    assert.equal(s.ha.ok, true);
  });

  await t.test('kill -9 of the VIP holder during continuous writes: the VIP moves, the client carries on, every file reads back', async () => {
    deployed();
    const [victim] = await holderNode();
    assert.ok(victim);
    const target = { c, vip, share: sharename, auth };
    // a client retries the same file until it is stored
    const w = continuousWriter(target, local);
    while (w.written.length < 5) await sleep(50);
    const killedAt = Date.now();
    await c.killNode(victim);
    const deadline = Date.now() + 90_000;
    while (w.after(killedAt).length < 5 && Date.now() < deadline) await sleep(100);
    await w.stop();
    const after = w.after(killedAt);
    assert.ok(after.length >= 5, `the client wrote ${after.length} file(s) after the kill (failures ${w.failures()})`);
    const gap = (after[0]!.at - killedAt) / 1000;
    t.diagnostic(`kill -9 of ${victim.name}: first write through the VIP after ${gap.toFixed(1)} s; ${w.failures()} failed attempt(s)`);
    const survivors = members.filter((n) => n !== victim);
    const holders = await holderNode();
    assert.equal(holders.length, 1);
    assert.notEqual(holders[0]!.name, victim.name, 'VIP moved off the dead node');
    const ips = await ctdbIps(survivors[0]!.run);
    const st = await ctdbStatus(survivors[0]!.run);
    assert.equal(st.find((s) => s.pnn === ips.find((i) => i.address === vip)!.pnn)!.address, holders[0]!.address);
    assert.deepEqual(st.find((s) => s.address === victim.address)!.flags.includes('DISCONNECTED'), true);
    // every file, read back through the VIP from the new node, has the checksum it was written with
    await readBackAll(target, w.written);
    // the dead node comes back: re-running deploy restarts what is missing there, and only there
    const r = await deployHa(gw, validate(haDeploySchema, {}), runnerFor);
    assert.ok(r.changes[victim.name]!.includes('started ctdbd') && r.changes[victim.name]!.includes('started smbd'), `${victim.name}: ${r.changes[victim.name]}`);
    for (const n of survivors) assert.deepEqual(r.changes[n.name], []);
  });

  await t.test('planned failover moves the VIP to the named node and SMB follows', async () => {
    deployed();
    await waitHealthy(haNodes, [vip], 60_000, { checkInterfaces: true });
    const from = (await holderNode())[0]!;
    const to = members.find((n) => n !== from)!;
    const r = await invoke(failoverOp, { sharename, to: to.name }, gw) as { from: string; to: string; seconds: number };
    assert.deepEqual([r.from, r.to], [from.name, to.name]);
    t.diagnostic(`ctdb moveip took ${r.seconds.toFixed(2)} s`);
    assert.deepEqual((await holderNode()).map((n) => n.name), [to.name]);
    const ls = await c.smb(vip, sharename, auth, 'ls hello.txt');
    assert.ok(ls.ok, ls.output);
    const st = await haState(gw, (await gw.store.get(sharename))!);
    assert.equal(st.holder, to.name);
    // to a node that does not exist: refused, naming the field
    await assert.rejects(invoke(failoverOp, { sharename, to: 'nosuchnode' }, gw), /to: nosuchnode is not a node of the HA cluster/);
  });

  await t.test('a partitioned node never takes the VIP (the cluster lock stops it); it rejoins when healed', async () => {
    deployed();
    await waitHealthy(haNodes, [vip], 60_000, { checkInterfaces: true });
    // the node cut off is neither the VIP holder nor the leader (who holds the cluster lock)
    const { victim, holder, rest, victimLog, logBefore } = await bystander(c, members, vip);
    await c.partition(victim);
    const t0 = Date.now();
    let seenDisconnected = 0;
    let victimHadVip = false;
    while (Date.now() - t0 < 45_000) {
      if (await c.hasAddress(victim, vip)) victimHadVip = true;
      const holders = await holderNode();
      assert.ok(holders.length <= 1 || !holders.includes(victim), 'the VIP is never on the partitioned node');
      const seen = await ctdbStatus(rest[0]!.run).catch(() => []);
      if (!seenDisconnected && seen.find((s) => s.address === victim.address)?.flags.includes('DISCONNECTED')) seenDisconnected = Date.now();
      if (seenDisconnected && Date.now() - seenDisconnected > 10_000) break;
      await sleep(500);
    }
    assert.equal(victimHadVip, false, 'partitioned node took the VIP');
    // what stopped it: it tried to become leader of its own partition and could not take the cluster lock
    const lockLines = (await readFile(victimLog, 'utf8')).slice(logBefore).split('\n').filter((l) => /cluster lock/i.test(l));
    assert.ok(lockLines.some((l) => /Unable to (take|get) cluster lock/.test(l)), `the partitioned node's log: ${lockLines.join(' / ')}`);
    t.diagnostic(`${victim.name}: ${lockLines.find((l) => /Unable to/.test(l))!.replace(/^\S+ \S+ /, '')}`);
    assert.ok(seenDisconnected, 'the others saw the partitioned node as DISCONNECTED');
    t.diagnostic(`partition of ${victim.name} detected after ${((seenDisconnected - t0) / 1000).toFixed(1)} s`);
    const victimView = await victim.run('ctdb', ['status'], { allowFail: true });
    t.diagnostic(`${victim.name} while cut off: ${victimView.stdout.split('\n').filter((l) => /pnn:|Recovery mode|Leader/.test(l)).join(' / ')}`);
    const ls = await c.smb(vip, sharename, auth, 'ls hello.txt');
    assert.ok(ls.ok, `SMB through the VIP during the partition: ${ls.output}`);
    assert.deepEqual((await holderNode()).map((n) => n.name), [holder.name], 'the VIP stayed where it was');
    await c.heal(victim);
    const th = Date.now();
    await waitHealthy(haNodes, [vip], 120_000, { checkInterfaces: true });
    t.diagnostic(`${victim.name} rejoined ${((Date.now() - th) / 1000).toFixed(1)} s after the heal`);
  });

  await t.test('adding a node and removing one follow CTDB\'s rules: one nodes file everywhere, a removed node commented out, reloadnodes', async () => {
    deployed();
    await waitHealthy(haNodes, [vip], 120_000, { checkInterfaces: true });
    const four = [...members, spare];
    const add = await deployHa(gw, validate(haDeploySchema, { nodes: four.map((n) => `${n.name}=${n.address}`) }), runnerFor);
    assert.ok(add.changes[spare.name]!.includes('started ctdbd') && add.changes[spare.name]!.includes('started smbd'), `${spare.name}: ${add.changes[spare.name]}`);
    assert.ok(members.some((n) => add.changes[n.name]!.includes('ctdb reloadnodes')), JSON.stringify(add.changes));
    const addrs = four.map((n) => n.address);
    for (const n of four) assert.equal(await readFile(join(n.dir, 'etc-ctdb', 'nodes'), 'utf8'), `${addrs.join('\n')}\n`, `nodes file on ${n.name}`);
    const st4 = await ctdbStatus(spare.run);
    assert.deepEqual(st4.filter((s) => s.ok).map((s) => s.address).sort(), [...addrs].sort());
    assert.ok((await c.smb(vip, sharename, auth, 'ls hello.txt')).ok);

    const gone = members[1]!;
    const kept = four.filter((n) => n !== gone);
    const rm = await deployHa(gw, validate(haDeploySchema, { nodes: kept.map((n) => `${n.name}=${n.address}`) }), runnerFor);
    assert.ok(rm.changes[gone.name]!.includes('stopped ctdbd (removed from the cluster)'), JSON.stringify(rm.changes));
    const expected = addrs.map((a) => (a === gone.address ? `#${a}` : a)).join('\n') + '\n';
    for (const n of kept) assert.equal(await readFile(join(n.dir, 'etc-ctdb', 'nodes'), 'utf8'), expected, `nodes file on ${n.name}`);
    await waitHealthy(kept.map((n) => ({ name: n.name, address: n.address, run: n.run })), [vip], 60_000, { checkInterfaces: true });
    assert.equal(await c.hasAddress(gone, vip), false);
    const ls = await c.smb(vip, sharename, auth, 'ls hello.txt');
    assert.ok(ls.ok, ls.output);
    const state = await haState(gw);
    assert.deepEqual(state.nodes.map((n) => [n.name, n.ok]), kept.map((n) => [n.name, true]));
    t.diagnostic(`after removing ${gone.name}: ${(await kept[0]!.run('ctdb', ['status'])).stdout.split('\n').filter((l) => /pnn:/.test(l)).join(' / ')}`);
  });

  // a sanity check of what the gateway remembers
  const cfg = await loadHaConfig(settings.storeDir);
  if (vip) assert.deepEqual(cfg?.registry_shares, [sharename]);
});
