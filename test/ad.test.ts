/**
 * Active Directory for real (docs/ad.md): a Samba AD DC, the gateway host and a client, each in its own
 * network + mount namespace (test/helpers/adlab.ts); the gateway's /etc (smb.conf, nsswitch.conf,
 * krb5.conf, krb5.keytab) and Samba's state dirs are private to its namespace. Everything goes through
 * the gateway's CLI run inside that namespace, as an admin would on the node.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ADMIN_PW, DOMAIN, removeTemplate, startAdLab, USER_PW, waitUntil, type AdLab } from './helpers/adlab.ts';
import { CLI, sh, type CliResult } from './helpers/gateway.ts';

const GW_CONF = `[global]
   netbios name = GW
   interfaces = lo eth0
   bind interfaces only = yes
   disable netbios = yes
   smb ports = 445
   load printers = no
   printing = bsd
   printcap name = /dev/null
   disable spoolss = yes
   log file = /var/log/samba/log.%m
   log level = 1 auth_audit:4
   include = /etc/samba/smbgateway.conf
`;

describe('Active Directory against a real Samba AD DC', () => {
  let lab: AdLab;
  let gwDir: string;
  let settingsFile: string;
  let storage: string;
  const timings: Record<string, number> = {};
  const printed: Record<string, string> = {};

  /** The gateway CLI on the gateway host (its namespaces). */
  const cli = async (args: string[], opts: { input?: string; env?: Record<string, string> } = {}): Promise<CliResult> => {
    const r = await sh('nsenter', ['-t', String(lab.gw.holderPid), '-m', '-u', '-n', '--', CLI, ...args, '--json'], { input: opts.input, env: { SMBGATEWAY_CONFIG: settingsFile, ...opts.env } });
    try { r.json = JSON.parse(r.stdout); } catch { /* the assertion shows stdout */ }
    return r;
  };
  const timed = async (name: string, f: () => Promise<CliResult>) => { const t = Date.now(); const r = await f(); timings[name] = Date.now() - t; return r; };
  const gwFile = (p: string) => lab.gw.run('cat', [p], { allowFail: true }).then((r) => r.stdout);
  const state = async () => ({ managed: await gwFile('/etc/samba/smbgateway.conf'), nsswitch: await gwFile('/etc/nsswitch.conf'), keytab: await gwFile('/etc/krb5.keytab') });
  /** smbclient on the client host. */
  const smb = (share: string, user: string, command: string, extra: string[] = []) =>
    lab.client.run('smbclient', ['-s', '/dev/null', `//${lab.gw.address}/${share}`, '-U', `LAB\\${user}%${USER_PW}`, '--option=client min protocol=SMB2_10', ...extra, '-c', command], { allowFail: true, timeoutMs: 30_000 });

  before(async () => {
    const t = Date.now();
    lab = await startAdLab();
    await lab.startDc();
    timings.lab_up = Date.now() - t;
    gwDir = join(lab.dir, 'gwstate');
    storage = join(lab.dir, 'storage');
    await mkdir(storage, { recursive: true });
    await chmod(storage, 0o755);
    settingsFile = join(gwDir, 'gateway.json');
    await mkdir(gwDir, { recursive: true });
    await writeFile(settingsFile, JSON.stringify({
      node: 'gw', is_pve: false, store_dir: join(gwDir, 'etc'), lock_dir: join(gwDir, 'lock'), state_dir: join(gwDir, 'state'),
      smb_conf: '/etc/samba/smb.conf', managed_conf: '/etc/samba/smbgateway.conf', smb_host: lab.gw.address, smb_port: 445,
      allowed_roots: [storage], winbind_control: 'daemon',
    }));
    // the gateway host as a fresh node: its smb.conf includes the managed file; nsswitch without winbind
    await lab.gw.run('bash', ['-c', 'cat > /etc/samba/smb.conf && : > /etc/samba/smbgateway.conf && sed -i -E "s/^((passwd|group):.*) winbind/\\1/" /etc/nsswitch.conf'], { input: GW_CONF });
    const smbd = spawn('nsenter', ['-t', String(lab.gw.holderPid), '-m', '-u', '-n', '--', 'smbd', '-F', '--no-process-group', '-s', '/etc/samba/smb.conf'], { detached: true, stdio: 'ignore' });
    smbd.unref();
    await waitUntil(async () => (await lab.gw.run('bash', ['-c', `exec 3<>/dev/tcp/${lab.gw.address}/445`], { allowFail: true })).code === 0, 20_000, 'smbd on the gateway');
  });
  after(async () => {
    if (!lab) return;
    await removeTemplate(lab);
    await lab.cleanup();
    console.log('AD timings (ms):', JSON.stringify(timings));
    for (const [k, v] of Object.entries(printed)) console.log(`AD ${k}: ${v}`);
  });

  it('refuses a join that cannot succeed, each with a clear error, and leaves no machine account and no host change', async () => {
    const before = await state();
    assert.doesNotMatch(before.nsswitch, /winbind/);
    const check = async (what: string, r: CliResult, code: number, pattern: RegExp, account = false) => {
      assert.equal(r.code, code, `${what}: ${r.stdout}${r.stderr}`);
      assert.match(r.json!.error!.message, pattern, what);
      printed[what] = r.json!.error!.message;
      assert.equal((await lab.computers()).includes('GW$'), account, `${what}: ${account ? 'the other machine\'s' : 'no'} computer account GW$ on the DC`);
      assert.deepEqual(await state(), before, `${what}: smbgateway.conf, nsswitch.conf and the keytab unchanged`);
      const st = await cli(['ad', 'status']);
      assert.equal(st.json!.data.joined, false, what);
    };
    // wrong password
    await check('wrong password', await timed('fail_wrong_password', () => cli(['ad', 'join', DOMAIN, '--password-file', '-'], { input: 'not-the-password\n' })), 2,
      /^password: .*refused the credentials of LAB\\Administrator \(wrong user name or password\)/);
    // the password never shows in what the gateway prints
    // clock skew: net runs with the clock an hour ahead (libfaketime), a real Kerberos exchange with the DC
    const skewNet = join(lab.dir, 'net-skewed');
    await writeFile(skewNet, '#!/bin/sh\nexec faketime -f +1h net "$@"\n', { mode: 0o755 });
    await check('clock skew', await timed('fail_clock_skew', () => cli(['ad', 'join', DOMAIN, '--password-file', '-'], { input: ADMIN_PW + '\n', env: { SMBGW_BIN_NET: skewNet } })), 1,
      // (3600 s, give or take the second the offset is measured in)
      /clock skew: this host's clock is (3599|3600|3601) s ahead of the domain controller's .*Kerberos allows 300 s/);
    // the computer name is taken by another machine's account
    assert.equal((await lab.samba(['computer', 'create', 'GW'])).code, 0);
    await check('name taken', await timed('fail_name_taken', () => cli(['ad', 'join', DOMAIN, '--password-file', '-'], { input: ADMIN_PW + '\n' })), 1,
      /a computer account GW\$ already exists in lab\.example/, true);
    // (that account is left as it was: the gateway did not create it)
    assert.equal((await lab.samba(['computer', 'delete', 'GW'])).code, 0);
    // no DC answers: the DC is down
    await lab.stopDc();
    await check('DC unreachable', await timed('fail_dc_down', () => cli(['ad', 'join', DOMAIN, '--password-file', '-'], { input: ADMIN_PW + '\n' })), 1,
      /no domain controller of LAB\.EXAMPLE answers/);
    await lab.startDc();
    assert.doesNotMatch(JSON.stringify(printed), new RegExp(ADMIN_PW.replace(/[.!]/g, '\\$&')));
    // vm mode joins through the guest agent, tested on the PVE simulator: test/ad-vm.test.ts (lxc mode: test/ad-lxc.test.ts)
  });

  it('joins, serves a share to LAB\\alice and @LAB\\staff over NTLMv2 and Kerberos, refuses bob, owns files by winbind uid', async () => {
    // --dry-run: every check runs against the DC, the steps are shown, nothing changes
    const dry = await cli(['ad', 'join', DOMAIN, '--dry-run', '--password-file', '-'], { input: ADMIN_PW + '\n' });
    assert.equal(dry.code, 0, dry.stdout + dry.stderr);
    assert.ok(dry.json!.data.plan.some((x: { shows?: string }) => /net ads join LAB\.EXAMPLE as LAB\\Administrator \(password on stdin\)/.test(x.shows ?? "")), JSON.stringify(dry.json!.data.plan));
    assert.ok(!(await lab.computers()).includes('GW$'));
    const j = await timed('join', () => cli(['ad', 'join', DOMAIN, '--password-file', '-'], { input: ADMIN_PW + '\n' }));
    assert.equal(j.code, 0, j.stdout + j.stderr);
    assert.equal(j.json!.data.workgroup, 'LAB', 'the NetBIOS domain comes from the DC');
    assert.equal(j.json!.data.realm, 'LAB.EXAMPLE');
    assert.ok((await lab.computers()).includes('GW$'), 'the DC has the computer account');
    const managed = await gwFile('/etc/samba/smbgateway.conf');
    for (const l of ['security = ads', 'realm = LAB.EXAMPLE', 'workgroup = LAB', 'kerberos method = secrets and keytab', 'winbind refresh tickets = yes',
      'idmap config * : range = 2000000-2099999', 'idmap config LAB : backend = rid', 'idmap config LAB : range = 1000000-1999999']) assert.ok(managed.includes(l), `managed conf has "${l}"`);
    assert.match(await gwFile('/etc/nsswitch.conf'), /^passwd:.* winbind$/m);
    const st = await cli(['ad', 'status']);
    assert.equal(st.json!.data.joined, true);
    assert.equal(st.json!.data.machine_account_ok, true, st.stdout);
    assert.equal(st.json!.data.dc_online, true);

    // a name the domain does not know, and a user given as a group, are refused naming the field
    const path = join(storage, 'dom');
    const bad = await cli(['create', 'dom', '--mode', 'native', '--path', path, '--ad-domain', DOMAIN, '--user', 'LAB\\alice', '--user', 'LAB\\nosuch']);
    assert.equal(bad.code, 2, bad.stdout);
    assert.equal(bad.json!.error!.field, 'users');
    assert.match(bad.json!.error!.message, /LAB\\nosuch does not resolve in lab\.example/);
    printed['unknown principal'] = bad.json!.error!.message;
    const kind = await cli(['create', 'dom', '--mode', 'native', '--path', path, '--ad-domain', DOMAIN, '--group', 'LAB\\alice']);
    assert.equal(kind.code, 2);
    assert.match(kind.json!.error!.message, /^groups: LAB\\alice is a user in lab\.example, not a group/);
    const noDomain = await cli(['create', 'dom', '--mode', 'native', '--path', path, '--user', 'LAB\\alice']);
    assert.match(noDomain.json!.error!.message, /^users: LAB\\alice is a domain principal: give ad_domain/);

    const c = await timed('create_domain_share', () => cli(['create', 'dom', '--mode', 'native', '--path', path, '--ad-domain', DOMAIN, '--user', 'LAB\\alice', '--group', 'LAB\\staff']));
    assert.equal(c.code, 0, c.stdout + c.stderr);
    // a principal added later must resolve too (access and update: test 'access adds and removes domain principals')
    const upd = await cli(['update', 'dom', '--read-users', 'LAB\\nosuch']);
    assert.equal(upd.code, 2, upd.stdout + upd.stderr);
    assert.equal(upd.json!.error!.field, 'read_users');
    const show = await cli(['show', 'dom']);
    assert.deepEqual([show.json!.data.users, show.json!.data.groups], [['LAB\\alice'], ['LAB\\staff']], 'stored and read back as given');

    // alice over NTLMv2
    const t0 = Date.now();
    const payload = join(lab.dir, 'payload.txt');
    const back = join(lab.dir, 'back.txt');
    await writeFile(payload, `alice's data ${Date.now()}\n`);
    const put = await smb('dom', 'alice', `put ${payload} alice-ntlm.txt; get alice-ntlm.txt ${back}`);
    timings.smb_ntlm = Date.now() - t0;
    assert.equal(put.code, 0, put.stdout + put.stderr);
    assert.equal(await readFile(back, 'utf8'), await readFile(payload, 'utf8'), 'alice reads back what she wrote');
    // carol through @LAB\staff
    assert.equal((await smb('dom', 'carol', 'put /etc/hostname carol.txt')).code, 0);
    // bob: neither named nor in staff
    const bob = await smb('dom', 'bob', 'ls');
    assert.notEqual(bob.code, 0);
    assert.match(bob.stdout + bob.stderr, /NT_STATUS_ACCESS_DENIED/);
    // alice over Kerberos: a ticket from the KDC, no NTLM
    const cc = `FILE:${join(lab.client.dir, 'cc.alice')}`;
    await lab.client.run('kinit', ['alice@LAB.EXAMPLE'], { input: USER_PW + '\n', env: { KRB5CCNAME: cc } });
    const t1 = Date.now();
    const krb = await lab.client.run('smbclient', ['-s', '/dev/null', '//gw.lab.example/dom', '--use-kerberos=required', '--option=client min protocol=SMB2_10', '-c', 'put /etc/hostname alice-krb.txt; ls'], { allowFail: true, env: { KRB5CCNAME: cc }, timeoutMs: 30_000 });
    timings.smb_kerberos = Date.now() - t1;
    assert.equal(krb.code, 0, krb.stdout + krb.stderr);
    assert.match(krb.stdout, /alice-krb\.txt/);
    assert.match((await lab.gw.run('bash', ['-c', 'cat /var/log/samba/log.*'], { allowFail: true })).stdout, /Successful AuthZ: \[SMB2,krb5\] user \[LAB\]\\\[alice\]/, 'the server saw a Kerberos logon');

    // the file alice wrote belongs to her winbind uid (rid backend: 1000000 + her RID)
    const sid = (await lab.gw.run('wbinfo', ['--name-to-sid', 'LAB\\alice'])).stdout.split(' ')[0]!;
    const uid = Number((await lab.gw.run('wbinfo', ['--sid-to-uid', sid])).stdout.trim());
    assert.equal(uid, 1_000_000 + Number(sid.split('-').pop()));
    assert.equal((await stat(join(path, 'alice-ntlm.txt'))).uid, uid);
    assert.equal((await stat(join(path, 'alice-krb.txt'))).uid, uid);
    const acl = (await lab.gw.run('getfacl', ['-n', '--absolute-names', path])).stdout;
    assert.match(acl, new RegExp(`^user:${uid}:rwx`, 'm'), 'the share root grants alice\'s uid');
    printed['idmap native'] = `LAB rid 1000000-1999999, * tdb 2000000-2099999; alice ${sid} -> uid ${uid}`;
  });

  it('access adds and removes domain principals: resolved by winbind (an unknown name refused), ACL entries by winbind id, bob writes, alice and @staff are refused', async () => {
    const path = join(storage, 'dom');
    const bad = await cli(['access', 'dom', '--add-user', 'LAB\\nosuch']);
    assert.equal(bad.code, 2, bad.stdout + bad.stderr);
    assert.equal(bad.json!.error!.field, 'users');
    assert.match(bad.json!.error!.message, /LAB\\nosuch does not resolve in lab\.example/);
    const id = async (name: string, kind: 'uid' | 'gid') => {
      const sid = (await lab.gw.run('wbinfo', ['--name-to-sid', name])).stdout.split(' ')[0]!;
      return Number((await lab.gw.run('wbinfo', [`--sid-to-${kind}`, sid])).stdout.trim());
    };
    const [alice, bob, staff] = [await id('LAB\\alice', 'uid'), await id('LAB\\bob', 'uid'), await id('LAB\\staff', 'gid')];
    const acl = async () => (await lab.gw.run('getfacl', ['-n', '--absolute-names', path])).stdout;
    const r = await timed('access_domain', () => cli(['access', 'dom', '--add-user', 'LAB\\bob', '--remove-user', 'LAB\\alice', '--remove-group', 'LAB\\staff']));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const a1 = await acl();
    assert.match(a1, new RegExp(`^user:${bob}:rwx`, 'm'));
    assert.doesNotMatch(a1, new RegExp(`^(default:)?user:${alice}:`, 'm'), 'alice\'s entries are gone');
    assert.doesNotMatch(a1, new RegExp(`^(default:)?group:${staff}:`, 'm'), 'staff\'s entries are gone');
    assert.equal((await smb('dom', 'bob', 'put /etc/hostname bob.txt')).code, 0, 'bob writes');
    assert.equal((await stat(join(path, 'bob.txt'))).uid, bob);
    for (const u of ['alice', 'carol']) { const x = await smb('dom', u, 'ls'); assert.match(x.stdout + x.stderr, /NT_STATUS_ACCESS_DENIED/, `${u} is refused`); }
    // and back: alice and the group again (by gid), bob out
    const back = await cli(['access', 'dom', '--add-user', 'LAB\\alice', '--add-group', 'LAB\\staff', '--remove-user', 'LAB\\bob']);
    assert.equal(back.code, 0, back.stdout + back.stderr);
    const a2 = await acl();
    assert.match(a2, new RegExp(`^group:${staff}:rwx`, 'm'));
    assert.match(a2, new RegExp(`^user:${alice}:rwx`, 'm'));
    assert.doesNotMatch(a2, new RegExp(`^user:${bob}:`, 'm'));
    assert.equal((await smb('dom', 'carol', 'put /etc/hostname carol2.txt')).code, 0, 'carol writes through @LAB\\staff again');
  });

  it('principals with spaces: @LAB\\Sales Team writes, LAB\\John Smith reads, a non-member is refused', async () => {
    assert.equal((await lab.samba(['group', 'add', 'Sales Team'])).code, 0);
    assert.equal((await lab.samba(['group', 'addmembers', 'Sales Team', 'carol'])).code, 0);
    const jr = await lab.samba(['user', 'create', 'John Smith', USER_PW]);
    assert.equal(jr.code, 0, jr.stdout + jr.stderr);
    const path = join(storage, 'sales');
    const c = await cli(['create', 'sales', '--mode', 'native', '--path', path, '--ad-domain', DOMAIN, '--group', 'LAB\\Sales Team', '--read-user', 'LAB\\John Smith']);
    assert.equal(c.code, 0, c.stdout + c.stderr);
    const show = await cli(['show', 'sales']);
    assert.deepEqual([show.json!.data.groups, show.json!.data.read_users], [['LAB\\Sales Team'], ['LAB\\John Smith']], 'stored and read back as given');
    assert.match(await gwFile('/etc/samba/smbgateway.conf'), /valid users = "@LAB\\Sales Team" "LAB\\John Smith"\n/);
    // carol, a member of Sales Team, writes and reads back
    const payload = join(lab.dir, 'sales.txt');
    const back = join(lab.dir, 'sales-back.txt');
    await writeFile(payload, `sales figures ${Date.now()}\n`);
    const w = await smb('sales', 'carol', `put ${payload} q4.txt; get q4.txt ${back}`);
    assert.equal(w.code, 0, w.stdout + w.stderr);
    assert.equal(await readFile(back, 'utf8'), await readFile(payload, 'utf8'));
    // John Smith (a name with a space) reads, and may not write
    const jread = await smb('sales', 'John Smith', 'ls');
    assert.equal(jread.code, 0, jread.stdout + jread.stderr);
    assert.match(jread.stdout, /q4\.txt/);
    const jw = await smb('sales', 'John Smith', 'put /etc/hostname john.txt');
    assert.match(jw.stdout + jw.stderr, /NT_STATUS_ACCESS_DENIED/);
    // bob is not in Sales Team
    const bob = await smb('sales', 'bob', 'ls');
    assert.match(bob.stdout + bob.stderr, /NT_STATUS_ACCESS_DENIED/);
    assert.equal((await cli(['delete', 'sales'])).code, 0);
  });

  it('DC down: open sessions keep working; new logons (Kerberos with a service ticket, or NTLM) are refused', async () => {
    // the client holds a service ticket for the gateway (as a Windows client does after its first access)
    const cc = `FILE:${join(lab.client.dir, 'cc.alice')}`;
    await lab.client.run('kvno', ['cifs/gw.lab.example'], { env: { KRB5CCNAME: cc } });
    // and alice has a session open
    const held = spawn('nsenter', ['-t', String(lab.client.holderPid), '-m', '-u', '-n', '--', 'stdbuf', '-oL', '-eL', 'smbclient', '-s', '/dev/null', `//${lab.gw.address}/dom`, '-U', `LAB\\alice%${USER_PW}`, '--option=client min protocol=SMB2_10'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    held.stdout.on('data', (d) => (out += d));
    held.stderr.on('data', (d) => (out += d));
    held.stdin.write('ls\n');
    await waitUntil(async () => /blocks of size/.test(out), 15_000, 'alice\'s open session');
    // status shows the domain session
    const status = await cli(['status', 'dom']);
    assert.ok(status.json!.data.sessions.some((x: { user: string }) => x.user === 'LAB\\alice'), JSON.stringify(status.json!.data.sessions));
    await lab.stopDc();
    try {
      const t = Date.now();
      // concurrently (each waits ~20 s): a Kerberos logon, an NTLM logon, and ad status
      const [krb, ntlm, st] = await Promise.all([
        lab.client.run('smbclient', ['-s', '/dev/null', '//gw.lab.example/dom', '--use-kerberos=required', '--option=client min protocol=SMB2_10', '-c', 'ls'], { allowFail: true, env: { KRB5CCNAME: cc }, timeoutMs: 90_000 }),
        smb('dom', 'alice', 'ls', ['--option=client use kerberos=off']),
        cli(['ad', 'status']),
      ]);
      timings.dc_down_new_logons = Date.now() - t;
      printed['DC down, Kerberos (service ticket held)'] = (krb.stdout + krb.stderr).trim().split('\n').slice(-1)[0]!;
      printed['DC down, NTLM'] = (ntlm.stdout + ntlm.stderr).trim().split('\n').slice(-1)[0]!;
      // smbd asks winbind for the user (getpwnam), winbind first tries to reach the DC (and its DNS, down with it)
      assert.notEqual(krb.code, 0, 'measured: a Kerberos logon waits on winbind, which waits on the DC');
      assert.notEqual(ntlm.code, 0, 'NTLM needs the DC (netlogon)');
      // the session opened before keeps working: it writes
      const before = out.length;
      const tp = Date.now();
      // (measured: a directory listing in it stalls, winbind waits for the DC to map the owners' SIDs)
      held.stdin.write('put /etc/hostname during-outage.txt\n');
      await waitUntil(async () => /putting file .* as \\during-outage\.txt/.test(out.slice(before)), 30_000, 'the open session during the outage')
        .catch((e: Error) => { throw new Error(`${e.message}: ${out.slice(before)}`); });
      timings.dc_down_open_session_put = Date.now() - tp;
      assert.ok((await stat(join(storage, 'dom', 'during-outage.txt'))).isFile());
      assert.equal(st.json!.data.dc_online, false, 'status tells the DC is offline');
      assert.equal(st.json!.data.testjoin, 'not checked: no domain controller answers');
    } finally {
      held.kill();
      await lab.startDc();
    }
  });

  it('leave refuses while domain shares exist; deleting the last one does not leave; leave removes the computer account', async () => {
    const refused = await cli(['ad', 'leave', '--password-file', '-'], { input: ADMIN_PW + '\n' });
    assert.equal(refused.code, 2);
    assert.match(refused.json!.error!.message, /^force: shares still rely on lab\.example: dom/);
    printed['leave with shares'] = refused.json!.error!.message;
    const del = await cli(['delete', 'dom']);
    assert.equal(del.code, 0, del.stdout);
    const st = await cli(['ad', 'status']);
    assert.equal(st.json!.data.joined, true, 'still joined after the last domain share is gone');
    assert.ok((await lab.computers()).includes('GW$'));
    const l = await timed('leave', () => cli(['ad', 'leave', '--password-file', '-'], { input: ADMIN_PW + '\n' }));
    assert.equal(l.code, 0, l.stdout + l.stderr);
    assert.ok(!(await lab.computers()).includes('GW$'), 'the computer account is gone from the DC');
    assert.doesNotMatch(await gwFile('/etc/nsswitch.conf'), /winbind/, 'the winbind entries the join added are gone');
    const managed = await gwFile('/etc/samba/smbgateway.conf');
    assert.doesNotMatch(managed, /security = ads|realm|idmap/);
    assert.equal((await cli(['ad', 'status'])).json!.data.joined, false);
    assert.doesNotMatch((await lab.gw.run('klist', ['-k', '/etc/krb5.keytab'], { allowFail: true })).stdout, /GW\$@LAB\.EXAMPLE/, 'no keys of the deleted account left in the keytab');
  });

  it('create --ad-domain joins a node that is not joined; a name that does not resolve undoes the join', async () => {
    const pwFile = join(gwDir, 'adpw');
    await writeFile(pwFile, ADMIN_PW + '\n', { mode: 0o600 });
    const path = join(storage, 'dom2');
    const bad = await cli(['create', 'dom2', '--mode', 'native', '--path', path, '--ad-domain', DOMAIN, '--user', 'LAB\\nosuch', '--ad-password-file', pwFile]);
    assert.equal(bad.code, 2, bad.stdout + bad.stderr);
    assert.match(bad.json!.error!.message, /^users: LAB\\nosuch does not resolve/);
    assert.ok(!(await lab.computers()).includes('GW$'), 'the join of the failed create was undone');
    assert.equal((await cli(['ad', 'status'])).json!.data.joined, false);
    const noCred = await cli(['create', 'dom2', '--mode', 'native', '--path', path, '--ad-domain', DOMAIN, '--user', 'LAB\\alice']);
    assert.match(noCred.json!.error!.message, /^ad_password: this node is not joined to lab\.example/);
    const ok = await timed('create_with_join', () => cli(['create', 'dom2', '--mode', 'native', '--path', path, '--ad-domain', DOMAIN, '--read-user', 'LAB\\alice', '--ad-password-file', pwFile]));
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.ok((await lab.computers()).includes('GW$'));
    const r = await smb('dom2', 'alice', 'ls');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const w = await smb('dom2', 'alice', 'put /etc/hostname x.txt');
    assert.notEqual(w.code, 0, 'read_users cannot write');
    const forced = await cli(['ad', 'leave', '--force', '--password-file', pwFile]);
    assert.equal(forced.code, 0, forced.stdout + forced.stderr);
    assert.ok(!(await lab.computers()).includes('GW$'));
    // the share stays; its domain users can no longer log on
    assert.equal((await cli(['show', 'dom2'])).code, 0);
    assert.deepEqual(await readFile(join(gwDir, 'etc', 'shares.cfg'), 'utf8').then((t) => t.includes('dom2')), true);
  });
});
