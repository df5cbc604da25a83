/**
 * The CTDB cluster in Active Directory, for real: the 3-node cluster of test/helpers/netns.ts (each
 * node's /etc private) and a Samba AD DC of test/helpers/adlab.ts plugged into the cluster's bridge.
 * The gateway joins the cluster once (one computer account for its NetBIOS name, the secret replicated
 * by CTDB), an HA share is made for LAB\alice, alice writes through the VIP, the VIP holder is killed
 * (kill -9), alice reads the same bytes back through the VIP from the node that took it over; then
 * the cluster leaves and its computer account is gone.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { invoke } from '../src/core/operation.ts';
import { validate } from '../src/core/schema.ts';
import { defaultSettings } from '../src/core/settings.ts';
import { makeGateway } from '../src/provision/context.ts';
import { haAdJoin, haAdLeave } from '../src/ha/ad.ts';
import { deployHa, haDeploySchema, haState } from '../src/ha/service.ts';
import { waitHealthy } from '../src/ha/ctdb.ts';
import { createOp } from '../src/api/operations/shares.ts';
import { ADMIN_PW, DOMAIN, REALM, removeTemplate, startAdLab, USER_PW, type AdLab } from './helpers/adlab.ts';
import { startNetnsCluster, type NetnsCluster, type TestNode } from './helpers/netns.ts';
import { sha } from './helpers/failover.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('HA with AD: one machine account for the cluster, LAB\\alice through the VIP across a kill -9', { timeout: 600_000 }, async (t) => {
  const timings: Record<string, number> = {};
  let lab: AdLab | undefined;
  let c: NetnsCluster | undefined;
  t.after(async () => {
    await c?.cleanup();
    if (lab) { await removeTemplate(lab); await lab.cleanup(); }
    t.diagnostic(`HA AD timings (ms): ${JSON.stringify(timings)}`);
  });
  let t0 = Date.now();
  // the DC comes up while the cluster is made and deployed (neither needs the other yet)
  const labUp = (async () => { lab = await startAdLab(); await lab.startDc(); timings.dc_up = Date.now() - t0; })();
  labUp.catch(() => undefined);
  c = await startNetnsCluster({ nodes: 3, privateEtc: true });
  timings.cluster_up = Date.now() - t0;
  const n1 = c.nodes[0]!;
  const gwDir = join(c.dir, 'gw');
  await mkdir(gwDir, { recursive: true });
  // the gateway on n1; its native smb.conf files are scratch files (the nodes serve the clustered config)
  const smbConf = join(gwDir, 'smb.conf');
  const managedConf = join(gwDir, 'smbgateway.conf');
  await writeFile(smbConf, `[global]\n   include = ${managedConf}\n`);
  await writeFile(managedConf, '');
  const settings = {
    ...defaultSettings(), isPve: false, node: 'n1', storeDir: join(gwDir, 'etc'), lockDir: join(gwDir, 'lock'), stateDir: join(gwDir, 'state'),
    allowedRoots: [c.shared], smbConf, managedConf, winbindControl: 'daemon' as const,
  };
  const gw = makeGateway(settings, n1.run);
  const runnerFor = c.runnerFor;
  const netbios = `HA${c.id}`.toUpperCase();
  const haNodes = c.nodes.map((n) => ({ name: n.name, address: n.address, run: n.run }));

  // 1. the cluster, not joined yet
  t0 = Date.now();
  await deployHa(gw, validate(haDeploySchema, {
    nodes: c.nodes.map((n) => `${n.name}=${n.address}`), interface: 'eth0', cluster_lock: join(c.shared, '.ctdb.lock'),
    vip_range: c.vipRange, services: 'direct', log_location: 'file:/var/log/ctdb/log.ctdb', netbios_name: netbios,
  }), runnerFor);
  timings.deploy = Date.now() - t0;
  await labUp;
  if (!lab) throw new Error('no AD lab');
  // the DC on the cluster's network too; each node finds it through DNS (the DC's) and Kerberos
  const dcOnCluster = `${c.net}.5`;
  await c.attach(lab.dc.ns, 'eth1', dcOnCluster);
  const krb5 = `[libdefaults]\n    default_realm = ${REALM}\n    dns_lookup_realm = false\n    dns_lookup_kdc = true\n    rdns = false\n`;
  for (const n of c.nodes) {
    await n.run('ip', ['route', 'add', `${lab.dc.address}/32`, 'via', dcOnCluster]);
    await n.run('bash', ['-c', 'rm -f /etc/resolv.conf /etc/krb5.conf && printf "search %s\\nnameserver %s\\n" "$0" "$1" > /etc/resolv.conf && printf "%s" "$2" > /etc/krb5.conf && sed -i -E "s/^((passwd|group):.*) winbind/\\1/" /etc/nsswitch.conf',
      DOMAIN, lab.dc.address, krb5]);
  }

  // an HA share for domain users needs the cluster joined (not this node on its own)
  await assert.rejects(invoke(createOp, { sharename: 'hadom', mode: 'native', path: join(c.shared, 'addata'), ad_domain: DOMAIN, users: 'LAB\\alice', ha_enabled: 1, ctdb_vip: 'auto', ad_password: ADMIN_PW }, gw),
    /^GatewayError: ad_domain: an HA share uses the CTDB cluster's domain membership: join the cluster first \(pve-smbgateway ha ad join lab\.example/);
  // 2. the join: once, for the cluster's NetBIOS name. A wrong password first: refused, nothing changes
  const confBefore = await readFile(join(n1.dir, 'etc-samba', 'smb.conf'), 'utf8');
  // --dry-run: the checks run against the DC, the steps are shown, nothing changes
  const dry = await haAdJoin(gw, { domain: DOMAIN, cred: { user: 'Administrator', password: ADMIN_PW }, dry_run: true }, runnerFor) as { plan: { shows?: string }[] };
  assert.ok(dry.plan.some((x) => /net ads join LAB\.EXAMPLE on n1 .*one computer account/.test(x.shows ?? '')), JSON.stringify(dry.plan));
  await assert.rejects(haAdJoin(gw, { domain: DOMAIN, cred: { user: 'Administrator', password: 'not-the-password' } }, runnerFor),
    /^GatewayError: password: .*refused the credentials of LAB\\Administrator/);
  assert.deepEqual(await lab.computers(), ['DC1$'], 'no computer account after the refused join');
  assert.equal(await readFile(join(n1.dir, 'etc-samba', 'smb.conf'), 'utf8'), confBefore);
  // a join that fails after the join and the keytabs is undone: the account goes again (net ads leave), keytabs flushed, smb.conf back
  process.env.SMBGW_FAIL_AT = 'winbind';
  try {
    t0 = Date.now();
    await assert.rejects(haAdJoin(gw, { domain: DOMAIN, cred: { user: 'Administrator', password: ADMIN_PW } }, runnerFor), /injected failure at step winbind/);
    timings.failed_join_undone = Date.now() - t0;
  } finally {
    delete process.env.SMBGW_FAIL_AT;
  }
  assert.deepEqual(await lab.computers(), ['DC1$'], 'no computer account after the undone join');
  for (const n of c.nodes) {
    assert.equal(await readFile(join(n.dir, 'etc-samba', 'smb.conf'), 'utf8'), confBefore, `${n.name}: smb.conf as before`);
    assert.notEqual((await n.run('wbinfo', ['-p'], { allowFail: true })).code, 0, `${n.name}: no winbindd`);
    assert.doesNotMatch((await n.run('cat', ['/etc/nsswitch.conf'])).stdout, /winbind/, `${n.name}: nsswitch.conf as before`);
  }
  t0 = Date.now();
  const j = await haAdJoin(gw, { domain: DOMAIN, cred: { user: 'Administrator', password: ADMIN_PW } }, runnerFor) as { workgroup: string; join_node: string; seconds: number };
  timings.join = Date.now() - t0;
  assert.equal(j.workgroup, 'LAB');
  const computers = async () => (await lab!.computers()).filter((x) => x !== 'DC1$');
  assert.deepEqual(await computers(), [`${netbios}$`], 'one computer account on the DC, for the cluster');
  const member = (await haState(gw)).ad;
  assert.deepEqual([member?.domain, member?.netbios_name], [DOMAIN, netbios], 'ha status shows the membership');
  for (const n of c.nodes) {
    // every node: the member settings, the machine account works (the secret came through CTDB), winbind resolves alice
    const tp = (await n.run('testparm', ['-s', '--suppress-prompt'], { allowFail: true })).stdout;
    assert.match(tp, /clustering = Yes/);
    assert.match(tp, /security = ADS/);
    assert.match(tp, /realm = LAB\.EXAMPLE/);
    const tj = await n.run('net', ['ads', 'testjoin'], { allowFail: true });
    assert.equal(tj.code, 0, `${n.name}: ${tj.stdout}${tj.stderr}`);
    assert.match((await n.run('klist', ['-k', '/etc/krb5.keytab'])).stdout, new RegExp(`${netbios}\\$@${REALM}`), `${n.name}'s keytab`);
    assert.match((await n.run('getent', ['passwd', 'LAB\\alice'])).stdout, /^LAB\\alice:\*:10\d{5}:/, `${n.name}: alice through winbind`);
  }

  // 3. an HA share for a domain user, checked against the DC as native shares are
  const data = join(c.shared, 'addata');
  const bad = invoke(createOp, { sharename: 'hadom', mode: 'native', path: data, ad_domain: DOMAIN, users: 'LAB\\nosuch', ha_enabled: 1, ctdb_vip: 'auto' }, gw);
  await assert.rejects(bad, /users: LAB\\nosuch does not resolve in lab\.example/);
  await invoke(createOp, { sharename: 'hadom', mode: 'native', path: data, ad_domain: DOMAIN, users: 'LAB\\alice', ha_enabled: 1, ctdb_vip: 'auto' }, gw);
  const d2 = await deployHa(gw, validate(haDeploySchema, {}), runnerFor);
  const vip = d2.vips.hadom!.split('/')[0]!;
  assert.match((await n1.run('net', ['conf', 'showshare', 'hadom'])).stdout, /valid users\s*=\s*LAB\\alice/);
  // the cluster's name in the domain's DNS is its VIP, not a node's own address (which net ads join registered)
  const fqdn = `${netbios.toLowerCase()}.${DOMAIN}`;
  const dnsOf = async () => { const r = await c!.nodes[1]!.run('net', ['ads', 'dns', 'async', fqdn], { allowFail: true }); return r.stdout + r.stderr; };
  const inDns = await dnsOf();
  assert.ok(inDns.includes(vip), `${fqdn} -> ${inDns}`);
  for (const n of c.nodes) assert.ok(!new RegExp(`\\b${n.address.replace(/\./g, '\\.')}\\b`).test(inDns), `${fqdn} -> ${inDns}`);

  // 4. alice writes through the VIP (NTLMv2)
  const auth = join(c.dir, 'alice.auth');
  await writeFile(auth, `username = alice\npassword = ${USER_PW}\ndomain = LAB\n`, { mode: 0o600 });
  const local = join(c.dir, 'client');
  await mkdir(local, { recursive: true });
  const body = Buffer.from(`alice's report ${Date.now()}\n`.repeat(2000));
  await writeFile(join(local, 'report.txt'), body);
  const put = await c.smb(vip, 'hadom', auth, `put ${join(local, 'report.txt')} report.txt`, 30_000);
  assert.ok(put.ok, put.output);
  // and over Kerberos: a ticket from the KDC for cifs/<cluster name>, accepted with the replicated machine secret
  await c.client.run('ip', ['route', 'add', `${lab.dc.address}/32`, 'via', dcOnCluster]);
  const krbConf = join(c.dir, 'krb5.client.conf');
  await writeFile(krbConf, `${krb5.replace('dns_lookup_kdc = true', 'dns_lookup_kdc = false')}[realms]\n    ${REALM} = {\n        kdc = ${lab.dc.address}\n    }\n`);
  const krbEnv = { KRB5_CONFIG: krbConf, KRB5CCNAME: `FILE:${join(c.dir, 'cc.alice')}` };
  await c.client.run('kinit', [`alice@${REALM}`], { input: USER_PW + '\n', env: krbEnv });
  const kerberos = (cmd: string) => c!.client.run('smbclient', ['-s', '/dev/null', `//${netbios.toLowerCase()}.${DOMAIN}/hadom`, '-I', vip, '--use-kerberos=required', '--option=client min protocol=SMB2_10', '-c', cmd],
    { allowFail: true, env: krbEnv, timeoutMs: 30_000 });
  const kget = await kerberos(`get report.txt ${join(local, 'report.krb')}`);
  assert.equal(kget.code, 0, `Kerberos: ${kget.stdout}${kget.stderr}`);
  assert.equal(sha(await readFile(join(local, 'report.krb'))), sha(body));
  const holder = async (): Promise<TestNode | undefined> => { for (const n of c!.nodes) if (await c!.hasAddress(n, vip)) return n; return undefined; };
  const victim = (await holder())!;

  // 5. kill -9 of the VIP holder; alice reconnects through the VIP to the node that took it, reads the same bytes
  const killedAt = Date.now();
  await c.killNode(victim);
  const back = join(local, 'report.back');
  let got = { ok: false, output: '' };
  while (Date.now() - killedAt < 90_000) {
    got = await c.smb(vip, 'hadom', auth, `get report.txt ${back}`, 10_000);
    if (got.ok) break;
    await sleep(200);
  }
  timings.failover_read = Date.now() - killedAt;
  assert.ok(got.ok, `alice after the kill: ${got.output}`);
  assert.equal(sha(await readFile(back)), sha(body), 'the same bytes, read back through the VIP');
  const now = (await holder())!;
  assert.notEqual(now.name, victim.name, 'the VIP moved');
  // Kerberos to the node that took over: the service ticket alice holds is accepted there too
  t0 = Date.now();
  const kafter = await kerberos(`get report.txt ${join(local, 'report.krb2')}`);
  timings.kerberos_after_failover = Date.now() - t0;
  assert.equal(kafter.code, 0, `Kerberos after the failover: ${kafter.stdout}${kafter.stderr}`);
  assert.equal(sha(await readFile(join(local, 'report.krb2'))), sha(body));
  t.diagnostic(`alice (NTLMv2) served by ${now.name} ${timings.failover_read} ms after the kill of ${victim.name}`);

  // 6. the dead node comes back: deploy restarts ctdbd, smbd and winbindd there
  const r = await deployHa(gw, validate(haDeploySchema, {}), runnerFor);
  assert.ok(r.changes[victim.name]!.includes('started winbindd'), JSON.stringify(r.changes));
  for (const n of c.nodes) if (n !== victim) assert.deepEqual(r.changes[n.name], [], `${n.name} unchanged by the re-deploy`);
  await waitHealthy(haNodes, [vip], 60_000, { checkInterfaces: true });
  assert.deepEqual(await computers(), [`${netbios}$`], 'still one computer account');

  // 7. leave: refused while the share relies on the domain, then forced; the account is gone
  await assert.rejects(haAdLeave(gw, { user: 'Administrator', password: ADMIN_PW }, false, runnerFor), /force: HA shares still rely on lab\.example: hadom/);
  t0 = Date.now();
  await haAdLeave(gw, { user: 'Administrator', password: ADMIN_PW }, true, runnerFor);
  timings.leave = Date.now() - t0;
  assert.deepEqual(await computers(), [], 'the cluster\'s computer account is gone from the DC');
  assert.ok(!(await dnsOf()).includes(vip), 'the cluster\'s name is gone from the domain\'s DNS');
  for (const n of c.nodes) {
    assert.doesNotMatch((await n.run('testparm', ['-s', '--suppress-prompt'], { allowFail: true })).stdout, /security = ADS/);
    assert.doesNotMatch(await readFile(join(n.dir, 'etc-upper', 'nsswitch.conf'), 'utf8').catch(() => ''), /winbind/);
  }
});
