/**
 * Failover benchmark: a 3-node CTDB cluster in network namespaces (as in test/ha-cluster.test.ts),
 * configured by the gateway. Each trial kills -9 the node holding the share's VIP (ctdbd and smbd,
 * whole process groups, and its VIP is gone with it as with a dead host) and measures the time until
 * an SMB client in its own namespace lists the share at the VIP again, served by the new holder.
 * The killed node is then brought back by re-running the deploy, and the cluster left to settle.
 * Odd trials first move the VIP onto CTDB's leader (the node holding the cluster lock: its death also
 * means an election and taking the lock again), even trials onto another node, so both cases are timed.
 *
 *   node --import tsx bench/failover.ts [trials]      (default 10; root; npm run bench:failover)
 *   FAILOVER_LEADER_TIMEOUT=<s> sets ctdb.conf's leader timeout (CTDB default 5 s)
 *   --ceph: Ceph variant: a 1-mon/1-OSD/1-MDS cluster on the namespaces' bridge, the cluster lock in
 *   RADOS (ctdb_mutex_ceph_rados_helper, pool created by the deploy) and the share's data on CephFS,
 *   served by every node's smbd through vfs_ceph
 *   FAILOVER_LOCK_DURATION=<s> (with --ceph) sets the RADOS lock's lease (ha deploy --cluster-lock-duration)
 *
 * Last line: failover_median_s=<x> failover_max_s=<y> trials=<n>
 */
import { randomBytes } from 'node:crypto';
import { validate } from '../src/core/schema.ts';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeGateway } from '../src/provision/context.ts';
import { deployHa, haDeploySchema } from '../src/ha/service.ts';
import { execRunner } from '../src/core/exec.ts';
import { defaultSettings } from '../src/core/settings.ts';
import { parseShare } from '../src/core/share.ts';
import { ctdbStatus, moveVip, waitHealthy, type HaNode } from '../src/ha/ctdb.ts';
import { startNetnsCluster, type TestNode } from '../test/helpers/netns.ts';
import { cephShareDir, startCephForCluster, type TestCeph } from '../test/helpers/ceph.ts';

const args = process.argv.slice(2);
const onCeph = args.includes('--ceph');
const trials = Number(args.find((a) => /^\d+$/.test(a)) ?? process.env.FAILOVER_TRIALS ?? 10);
/** Quiet time after a node rejoined, so that CTDB's RerecoveryTimeout (10 s) from that recovery has expired. */
const SETTLE_MS = Number(process.env.FAILOVER_SETTLE_MS ?? 12_000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const out = (s: string) => process.stdout.write(s + '\n');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<void> {
  const c = await startNetnsCluster();
  const user = `b${c.id}fo`;
  let failed = false;
  let ceph: TestCeph | undefined;
  // interrupted: still remove the namespaces, daemons and the account
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => {
    void (ceph?.stop() ?? Promise.resolve()).then(() => c.cleanup()).then(() => execRunner('userdel', [user], { allowFail: true })).finally(() => process.exit(130));
  });
  try {
    await execRunner('useradd', ['-M', '-s', '/usr/sbin/nologin', user]);
    const password = `Pw-${randomBytes(6).toString('hex')}`;
    const gwDir = join(c.dir, 'gw');
    const settings = { ...defaultSettings(), isPve: false, node: 'n1', storeDir: join(gwDir, 'etc'), lockDir: join(gwDir, 'lock'), stateDir: join(gwDir, 'state'), allowedRoots: [c.dir] };
    const sharename = `bench${c.id}`;
    let data = join(c.shared, 'data');
    const shareExtra: Record<string, unknown> = {};
    let clusterLock = join(c.shared, '.ctdb.lock');
    if (onCeph) {
      ceph = await startCephForCluster(c);
      out(`ceph cluster on the bridge started in ${(ceph.startMs / 1000).toFixed(1)} s`);
      Object.assign(settings, { cephConf: ceph.conf });
      clusterLock = `rados:ceph:client.admin:smbgw_ctdb:lock${c.id}`;
      // the share's directory in CephFS and the gateway's CephX client, as create makes them
      const uid = Number((await execRunner('id', ['-u', user])).stdout.trim());
      const cfs = await cephShareDir(ceph, c.dir, settings, c.nodes[0]!.run, uid);
      data = cfs.data;
      Object.assign(shareExtra, { backing: 'cephfs', created: [cfs.rec] });
    } else {
      await mkdir(data, { recursive: true });
      await execRunner('chown', [user, data]);
    }
    const gw = makeGateway(settings, c.nodes[0]!.run);
    await gw.store.write([parseShare({ sharename, mode: 'native', path: data, users: [user], ha_enabled: true, ctdb_vip: 'auto', ...shareExtra }, { allowInternal: true })]);
    const runnerFor = (n: { name: string }) => c.nodes.find((x) => x.name === n.name)!.run;
    const haNodes: HaNode[] = c.nodes.map((n) => ({ name: n.name, address: n.address, run: n.run }));
    const t0 = Date.now();
    const dep = await deployHa(gw, validate(haDeploySchema, {
      nodes: c.nodes.map((n) => `${n.name}=${n.address}`), interface: 'eth0', cluster_lock: clusterLock, ...(onCeph ? { create_lock_pool: true } : {}),
      vip_range: c.vipRange, services: 'direct', log_location: 'file:/var/log/ctdb/log.ctdb', netbios_name: `BENCH${c.id}`,
      ...(process.env.FAILOVER_LEADER_TIMEOUT ? { leader_timeout: Number(process.env.FAILOVER_LEADER_TIMEOUT) } : {}),
      ...(onCeph && process.env.FAILOVER_LOCK_DURATION ? { cluster_lock_duration: Number(process.env.FAILOVER_LOCK_DURATION) } : {}),
    }), runnerFor);
    const vip = dep.vips[sharename]!.split('/')[0]!;
    out(`cluster ${c.id} (${c.net}.0/24) deployed in ${((Date.now() - t0) / 1000).toFixed(1)} s; VIP ${vip} on ${dep.holders[sharename]}`);
    await c.nodes[0]!.run('smbpasswd', ['-s', '-a', user], { input: `${password}\n${password}\n` });
    const auth = join(c.dir, 'auth');
    await writeFile(auth, `username = ${user}\npassword = ${password}\n`, { mode: 0o600 });
    const first = await c.smb(vip, sharename, auth, 'ls');
    if (!first.ok) throw new Error(`SMB at the VIP does not answer before the first trial: ${first.output}`);

    const holders = async (): Promise<TestNode[]> => {
      const h: TestNode[] = [];
      for (const n of c.nodes) if (await c.hasAddress(n, vip)) h.push(n);
      return h;
    };
    const results: number[] = [];
    const byKind: Record<string, number[]> = { leader: [], other: [] };
    for (let i = 1; i <= trials; i++) {
      await waitHealthy(haNodes, [vip], 120_000, { checkInterfaces: true });
      const leaderPnn = Number((await c.nodes[0]!.run('ctdb', ['leader'])).stdout.trim());
      const st = await ctdbStatus(c.nodes[0]!.run);
      const leader = c.nodes.find((n) => st.find((s) => s.pnn === leaderPnn)?.address === n.address)!;
      const kind = i % 2 === 1 ? 'leader' : 'other';
      const target = kind === 'leader' ? leader : c.nodes.find((n) => n !== leader)!;
      const prep = await moveVip(haNodes, c.nodes[0]!.run, vip, target.name);
      // `ctdb moveip` leaves takeover runs disabled for up to 20 s: a failure right after it would be slower
      await sleep(prep.from !== prep.to ? Math.max(SETTLE_MS, 25_000) : SETTLE_MS);
      const [victim] = await holders();
      if (!victim) throw new Error('no node holds the VIP');
      const start = Date.now();
      await c.killNode(victim);
      let moved = 0;
      let answered = 0;
      let newHolder = '';
      while (Date.now() - start < 120_000) {
        const h = await holders();
        if (h.length === 1 && h[0] !== victim) {
          if (!moved) moved = Date.now();
          const r = await c.smb(vip, sharename, auth, 'ls', 3_000);
          if (r.ok && (await c.hasAddress(h[0]!, vip))) { answered = Date.now(); newHolder = h[0]!.name; break; }
        } else await sleep(50);
      }
      if (!answered) throw new Error(`trial ${i}: SMB did not answer at ${vip} within 120 s after killing ${victim.name}`);
      const s = (answered - start) / 1000;
      results.push(s);
      byKind[kind]!.push(s);
      out(`trial ${i}: kill -9 ${victim.name} (${kind === 'leader' ? 'VIP holder and CTDB leader' : 'VIP holder, not the leader'}) -> VIP on ${newHolder} after ${((moved - start) / 1000).toFixed(2)} s, SMB answers after ${s.toFixed(2)} s`);
      if (i < trials) await deployHa(gw, validate(haDeploySchema, {}), runnerFor); // brings the dead node back (starts its ctdbd and smbd)
    }
    for (const [k, xs] of Object.entries(byKind)) if (xs.length) out(`holder ${k === 'leader' ? 'was' : 'was not'} the leader: median ${median(xs).toFixed(2)} s, max ${Math.max(...xs).toFixed(2)} s over ${xs.length}`);
    if (onCeph) out(`(Ceph variant: cluster lock in RADOS, lease ${(await readFile(join(c.nodes[0]!.dir, 'etc-ctdb', 'ctdb.conf'), 'utf8')).match(/cluster lock = .* (\d+)$/m)?.[1] ?? '?'} s; data on CephFS through vfs_ceph)`);
    out(`failover_median_s=${median(results).toFixed(2)} failover_max_s=${Math.max(...results).toFixed(2)} trials=${results.length}`);
  } catch (e) {
    failed = true;
    process.stderr.write(`bench failed: ${(e as Error).message}\n`);
  } finally {
    await ceph?.stop();
    await c.cleanup();
    await execRunner('userdel', [user], { allowFail: true });
    await execRunner('groupdel', [user], { allowFail: true });
  }
  if (failed) process.exitCode = 1;
}

await main();
