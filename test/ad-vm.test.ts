/**
 * vm shares in Active Directory (Proxmox VE simulator, fake VM guest): after its first boot the VM
 * joins the domain through the QEMU guest agent, the lxc way (provision/lxc-ad.ts run over a guest
 * shell): checks inside the VM, the member smb.conf (lxc idmap ranges), `net ads join` with the
 * password only as the agent's input-data, nsswitch, winbind, the principals' ACL entries on the
 * host path. A failure injected at each step leaves nothing (no VM, no computer account, no config);
 * delete leaves the domain before the VM is destroyed. The VM and the DC are fakes here: what is
 * asserted is what the gateway asks the guest agent to do, not a real join (docs/ad.md).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { join } from 'node:path';
import { FakeBackend, type ExecResult, type SimGuest } from './pve-sim/backend.ts';
import { startSimGateway, type SimGateway } from './pve-sim/gateway.ts';
import { sh } from './helpers/gateway.ts';

const CONF = '/etc/samba/smbgateway.conf';
const ADMIN_PW = 'Dom-Admin-' + randomBytes(4).toString('hex');
const RIDS: Record<string, { sid: string; kind: 'SID_USER' | 'SID_DOM_GROUP'; rid: number }> = {
  'LAB\\alice': { sid: 'S-1-5-21-1-2-3-1103', kind: 'SID_USER', rid: 1103 },
  'LAB\\bob': { sid: 'S-1-5-21-1-2-3-1104', kind: 'SID_USER', rid: 1104 },
};

/** The fake VM answers `net ads`, `wbinfo` and systemctl as a domain member would, against a fake DC (its computer accounts). */
class DomainBackend extends FakeBackend {
  readonly computers = new Set<string>();
  /** Every `net` command with the standard input it got (the real one, for the assertions). */
  readonly net: { vmid: number; argv: string[]; stdin?: string }[] = [];
  private readonly winbind = new Set<number>();
  override async vmExec(g: SimGuest, argv: string[], stdin?: Buffer): Promise<ExecResult> {
    const s = this.state(g.vmid);
    const input = stdin?.toString('utf8');
    const ok = (stdout = ''): ExecResult => ({ code: 0, stdout, stderr: '' });
    const fail = (stderr: string): ExecResult => ({ code: 1, stdout: '', stderr });
    if (!s.files.has('/etc/nsswitch.conf')) s.files.set('/etc/nsswitch.conf', { data: 'passwd:         files\ngroup:          files\nhosts:          files dns\n', mode: 0o644 });
    const [cmd, ...args] = argv;
    if (cmd === 'dpkg-query') return ok(args.filter((a) => !a.startsWith('-')).map((p) => `${p} install ok installed`).join('\n'));
    if (cmd === 'mktemp') return ok('/tmp/smbgw-adcheck-fake01\n');
    if (cmd === 'sh' || (cmd === 'rm' && args.includes('-rf'))) return ok();
    if (cmd === 'systemctl' && args[1] === 'winbind') {
      if (args[0] === 'restart') this.winbind.add(g.vmid);
      if (args[0] === 'stop') this.winbind.delete(g.vmid);
      return ok();
    }
    if (cmd === 'wbinfo') {
      if (!this.winbind.has(g.vmid)) return fail('failed to call wbcPingDc: WBC_ERR_WINBIND_NOT_AVAILABLE');
      if (args[0] === '-P' || args[0] === '-p') return ok('checking the NETLOGON dc connection to "LAB" succeeded');
      if (args[0] === '--name-to-sid') { const p = RIDS[args[1]!]; return p ? ok(`${p.sid} ${p.kind} (1)\n`) : fail('failed to call wbcLookupName: WBC_ERR_DOMAIN_NOT_FOUND'); }
      if (args[0] === '--sid-to-uid' || args[0] === '--sid-to-gid') { const p = Object.values(RIDS).find((x) => x.sid === args[1]); return ok(`${1000000 + p!.rid}\n`); }
    }
    if (cmd === 'net') {
      this.net.push({ vmid: g.vmid, argv, ...(input !== undefined ? { stdin: input } : {}) });
      const sub = args.slice(args.indexOf('ads') + 1);
      const authOk = input === `${ADMIN_PW}\n`;
      const netbios = /netbios name = (\S+)/.exec(s.files.get(CONF)?.data ?? '')?.[1];
      switch (sub[0]) {
        case 'lookup': return ok('Information for Domain Controller: 10.99.0.2\n\nDomain Controller:\tdc1.lab.example\nPre-Win2k Domain:\tLAB\nDomain:\t\tlab.example\nForest:\t\tlab.example\n');
        case 'info': return ok('LDAP server name: dc1.lab.example\nRealm: LAB.EXAMPLE\nServer time offset: 0\n');
        case 'search': {
          if (!authOk) return fail('ads_connect: NT_STATUS_LOGON_FAILURE');
          const name = /sAMAccountName=([^)]+)\$/.exec(sub[1]!)?.[1];
          return ok(`Got ${name && this.computers.has(name) ? 1 : 0} replies\n`);
        }
        case 'join':
          if (!authOk) return fail('Failed to join domain: failed to connect to AD: Preauthentication failed');
          if (!netbios) return fail('no netbios name');
          this.computers.add(netbios);
          return ok(`Joined '${netbios}' to dns domain 'lab.example'\n`);
        case 'leave':
          if (!authOk) return fail('Failed to leave domain: NT_STATUS_LOGON_FAILURE');
          if (netbios) this.computers.delete(netbios);
          return ok(`Deleted account for '${netbios}' in realm 'LAB.EXAMPLE'\n`);
        case 'dns': return authOk ? ok() : fail('NT_STATUS_LOGON_FAILURE');
      }
    }
    return super.vmExec(g, argv, stdin);
  }
}

describe('vm shares in Active Directory: the VM joins through the guest agent (simulator)', () => {
  let t: SimGateway;
  let fake: DomainBackend;
  let path: string;
  let pwf: string;
  let tpl: number;
  const create = (extra: string[] = [], env: Record<string, string> = {}, pw = pwf) => t.cli(['create', 'vmdom', '--mode', 'vm', '--path', path, '--ad-domain', 'lab.example',
    '--user', 'LAB\\alice', '--read-user', 'LAB\\bob', '--ad-password-file', pw, ...extra, '--json'], { env });
  /** Everything a create may change: the gateway's config, the guests, the DC's computer accounts, the host path. */
  const state = async () => ({
    cfg: await t.gw.store.readRaw(),
    guests: [...t.sim.guests.keys()].sort(),
    computers: [...fake.computers].sort(),
    acl: (await sh('getfacl', ['-n', '--absolute-names', path])).stdout,
  });

  before(async () => {
    fake = new DomainBackend({ preinstalled: ['samba', 'qemu-guest-agent'] });
    t = await startSimGateway({ backend: fake, transport: 'token' });
    const r = await t.cli(['template', 'create', '--mode', 'vm', '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    tpl = [...t.sim.guests.keys()][0]!;
    path = join(t.storage, 'vmdom');
    pwf = await t.passwordFile(ADMIN_PW);
  });
  after(async () => { await t?.cleanup(); });

  it('a failure at each step of the create (and a wrong join password) leaves no VM, no computer account, no config', async () => {
    await sh('mkdir', ['-p', path]);
    const initial = await state();
    assert.deepEqual(initial.guests, [tpl]);
    const plan = await create(['--dry-run']);
    assert.equal(plan.code, 0, plan.stdout + plan.stderr);
    const steps = (plan.json!.data.plan as { step: string }[]).map((s) => s.step);
    for (const s of ['ad-check-domain', 'push-smb-conf', 'ads-join', 'nsswitch-winbind', 'start-winbind', 'resolve-domain-principals', 'grant-domain-permissions', 'restart-samba', 'health-check', 'save-config']) assert.ok(steps.includes(s), s);
    assert.ok(steps.indexOf('ad-check-domain') > steps.indexOf('wait-guest-agent'), 'the domain steps run once the VM is up');
    for (const step of steps.slice(steps.indexOf('clone-vm'))) {
      const r = await create([], { SMBGW_FAIL_AT: step });
      assert.equal(r.code, 1, `${step}: ${r.stdout}${r.stderr}`);
      assert.match(r.json!.error!.message, new RegExp(`injected failure at step ${step} \\(rolled back\\)`));
      assert.deepEqual(await state(), initial, `failure at ${step}`);
    }
    // a join the DC refuses: the checks in the VM say so before the join, nothing stays
    const bad = await create([], {}, await t.passwordFile('wrong-' + ADMIN_PW));
    assert.equal(bad.code, 2, bad.stdout + bad.stderr);
    assert.match(bad.json!.error!.message, /^password: checking the join credentials: the domain controller of LAB\.EXAMPLE refused the credentials of LAB\\Administrator/);
    assert.deepEqual(await state(), initial, 'wrong password');
    assert.doesNotMatch(bad.stdout + bad.stderr, new RegExp(ADMIN_PW));
  });

  it('a create killed after the join: repair removes the VM and names the computer account left on the DC, which blocks a new create until it is removed', async () => {
    const initial = await state();
    const killed = await create([], { SMBGW_KILL_AT: 'ads-join' });
    assert.notEqual(killed.code, 0, 'the CLI was killed');
    assert.deepEqual(fake.computers, new Set(['SMB-VMDOM']), 'it had joined');
    const rep = await t.cli(['repair', '--json']);
    assert.equal(rep.code, 0, rep.stdout + rep.stderr);
    const x = rep.json!.data.repaired[0];
    assert.equal(x.direction, 'rolled back');
    assert.ok(x.complete, JSON.stringify(x.problems));
    const said = (x.actions as { step: string; did: string }[]).find((a) => a.step === 'ads-join')?.did ?? '';
    assert.match(said, /the computer account SMB-VMDOM\$ in LAB\.EXAMPLE .*samba-tool computer delete SMB-VMDOM$/);
    assert.deepEqual({ ...(await state()), computers: initial.computers }, initial, 'the VM and the config are gone');
    // the VM's check finds the account (the check runs in the new VM, so that create rolls back too)
    const again = await create();
    assert.equal(again.code, 1, again.stdout + again.stderr);
    assert.match(again.json!.error!.message, /^sharename: a computer account SMB-VMDOM\$ already exists in lab\.example .*samba-tool computer delete SMB-VMDOM.*\(rolled back\)$/);
    fake.computers.delete('SMB-VMDOM'); // the admin removes it on the DC
    assert.deepEqual(await state(), initial);
  });

  it('joins: net ads join without the password in argv (input-data only), the member smb.conf with the lxc idmap, nsswitch, winbind, ACL by RID', async () => {
    const mark = t.sim.requests.length;
    const netMark = fake.net.length;
    const r = await create();
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const vmid: number = r.json!.data.share.vmid;
    assert.deepEqual(fake.computers, new Set(['SMB-VMDOM']));
    const reqs = t.sim.requests.slice(mark);
    const execs = reqs.filter((q) => q.path.endsWith('/agent/exec'));
    const joinReq = execs.find((q) => { const c = ([] as string[]).concat(q.params.command as string[]); return c[0] === 'net' && c.includes('join'); })!;
    assert.deepEqual(joinReq.params.command, ['net', '-s', '/etc/samba/smb.conf', 'ads', 'join', 'dnshostname=smb-vmdom.lab.example', '--no-dns-updates', '-U', 'Administrator']);
    assert.equal(joinReq.params['input-data'], '***', 'the password went as input-data (redacted in the simulator\'s log)');
    const joined = fake.net.slice(netMark).find((n) => n.argv.includes('join'))!;
    assert.equal(joined.stdin, `${ADMIN_PW}\n`, 'the VM got the password on standard input');
    for (const q of reqs) for (const [k, v] of Object.entries(q.params)) if (k !== 'input-data') assert.ok(!JSON.stringify(v).includes(ADMIN_PW), `the password in ${q.path} ${k}`);
    assert.ok(!reqs.some((q) => q.method === 'QM'), 'the token transport uses the API only');
    // nothing of the domain in cloud-init's seed
    const seed = fake.state(vmid).userData!;
    assert.doesNotMatch(seed, new RegExp(ADMIN_PW));
    assert.doesNotMatch(seed, /net.*ads|security = ads/);
    const st = fake.state(vmid);
    const conf = st.files.get(CONF)!.data;
    for (const l of ['security = ads', 'realm = LAB.EXAMPLE', 'workgroup = LAB', 'netbios name = SMB-VMDOM', 'idmap config LAB : backend = rid', 'idmap config LAB : range = 1000000-1999999', 'idmap config * : range = 2000000-2099999', 'valid users = LAB\\alice LAB\\bob']) assert.ok(conf.includes(l), `${l} in\n${conf}`);
    assert.ok(reqs.some((q) => q.path.endsWith('/agent/file-write') && q.params.file === CONF));
    assert.match(st.files.get('/etc/krb5.conf')!.data, /default_realm = LAB\.EXAMPLE/);
    assert.match(st.files.get('/etc/nsswitch.conf')!.data, /^passwd:.*winbind/m);
    const cmds = execs.map((q) => ([] as string[]).concat(q.params.command as string[]).join(' '));
    const at = (c: string) => { const i = cmds.indexOf(c); assert.ok(i >= 0, c); return i; };
    assert.ok(at('systemctl restart winbind') > cmds.findIndex((c) => c.includes('ads join')), 'winbind after the join');
    assert.ok(at('systemctl restart smbd') > at('systemctl restart winbind'), 'smbd restarted as a member');
    // virtiofs passes ids through: alice's uid in the VM is 1000000 + RID on the host path too
    const acl = (await sh('getfacl', ['-n', path])).stdout;
    assert.match(acl, /^user:1001103:rwx$/m);
    assert.match(acl, /^user:1001104:r-x$/m);
    const share = (await t.gw.store.get('vmdom'))!;
    assert.deepEqual(share.guest_uids, ['LAB\\alice:1001103', 'LAB\\bob:1001104']);
    assert.equal(await t.gw.store.readSecret('vmdom', 'LAB\\alice'), undefined, 'no passwords kept for domain users');
  });

  it('delete: needs the credentials; a failure after the leave joins again; then leaves the domain before the VM is destroyed', async () => {
    const vmid = (await t.gw.store.get('vmdom'))!.vmid!;
    const nocred = await t.cli(['delete', 'vmdom', '--json']);
    assert.equal(nocred.code, 2, nocred.stdout);
    assert.match(nocred.json!.error!.message, /^ad_password: the VM of vmdom is joined to lab\.example as SMB-VMDOM\$/);
    const failed = await t.cli(['delete', 'vmdom', '--ad-password-file', pwf, '--json'], { env: { SMBGW_FAIL_AT: 'stop-vm' } });
    assert.equal(failed.code, 1, failed.stdout + failed.stderr);
    assert.deepEqual(fake.computers, new Set(['SMB-VMDOM']), 'joined again');
    assert.ok(t.sim.guests.has(vmid));
    assert.ok(await t.gw.store.get('vmdom'));
    const mark = t.sim.requests.length;
    const r = await t.cli(['delete', 'vmdom', '--ad-password-file', pwf, '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.json!.data.steps[0], 'ads-leave');
    assert.deepEqual(fake.computers, new Set());
    assert.ok(!t.sim.guests.has(vmid));
    const reqs = t.sim.requests.slice(mark);
    const leave = reqs.findIndex((q) => q.path.endsWith('/agent/exec') && JSON.stringify(q.params.command).includes('"leave"'));
    const destroy = reqs.findIndex((q) => q.method === 'DELETE' && q.path.endsWith(`/qemu/${vmid}`));
    assert.ok(leave >= 0 && destroy > leave, `leave (${leave}) before destroy (${destroy})`);
    assert.equal(reqs[leave]!.params['input-data'], '***');
    assert.doesNotMatch((await sh('getfacl', ['-n', path])).stdout, /user:1110[34]/, 'the ACL entries went');
  });
});
