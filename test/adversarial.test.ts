/**
 * Adversarial inputs, one table, through both the CLI and the REST API of a running daemon: each gets
 * the error it must get (naming the field and the rule), and nothing changes anywhere a share could
 * reach: the store, the managed smb.conf, the secrets, the storage tree, unix and Samba accounts.
 */
import { strict as assert } from 'node:assert';
import { mkdir, readdir, readFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDaemon, type Daemon } from '../src/api/daemon.ts';
import { sh, startGateway, type TestGateway } from './helpers/gateway.ts';
import { call } from './helpers/https.ts';

const PW = 'Adversary-pass-1';

interface Case {
  what: string;
  /** The share create request (API names); the CLI gets the same as flags. */
  req: () => Record<string, string | string[]>;
  field: string;
  rule: RegExp;
}

async function tree(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of (await readdir(dir, { withFileTypes: true }).catch(() => [])).sort((a, b) => a.name.localeCompare(b.name))) {
    out.push(prefix + e.name + (e.isDirectory() ? '/' : e.isSymbolicLink() ? '@' : ''));
    if (e.isDirectory()) out.push(...await tree(join(dir, e.name), prefix + e.name + '/'));
  }
  return out;
}

describe('adversarial inputs through the CLI and the REST API: the right error, and nothing changes', () => {
  let g: TestGateway;
  let d: Daemon;
  let ca: Buffer;
  let token: string;
  let alice: string;
  let bob: string;
  let pwFile: string;

  const snapshot = async () => ({
    cfg: await readFile(join(g.settings.storeDir, 'shares.cfg'), 'utf8').catch(() => ''),
    conf: await readFile(g.settings.managedConf, 'utf8').catch(() => ''),
    priv: await tree(g.gw.store.privDir),
    storage: await tree(g.storage),
    acl: (await sh('getfacl', ['-R', '--absolute-names', g.storage])).stdout,
    passwd: (await sh('getent', ['passwd', alice, bob, 'root', 'daemon', 'nobody'])).stdout,
    samba: (await sh('pdbedit', ['-s', g.settings.smbConf, '-L', '-w'])).stdout.split('\n').sort().join('\n'),
  });

  before(async () => {
    g = await startGateway();
    alice = g.user('alice');
    bob = g.user('bob');
    pwFile = await g.passwordFile(PW);
    // bob is the admin's own account, with a Samba password the gateway must never touch
    await sh('useradd', ['--no-create-home', '--user-group', bob]);
    await g.gw.samba.setPassword(bob, 'Bobs-own-pw-1', true);
    await mkdir(join(g.dir, 'outside'));
    await symlink(join(g.dir, 'outside'), join(g.storage, 'escape'));
    await mkdir(join(g.storage, 'nest', 'inner'), { recursive: true });
    for (const [n, p] of [['Existing', 'existing'], ['nested', 'nest/inner']] as const) {
      const r = await g.cli(['create', n, '--mode', 'native', '--path', join(g.storage, p), '--user', alice, '--password-file', pwFile, '--json']);
      assert.equal(r.code, 0, r.stdout);
    }
    const t = await g.cli(['token', 'create', 'adversary', '--privs', 'Datastore.Allocate,Datastore.Audit,Sys.Modify,Sys.Audit', '--json']);
    assert.equal(t.code, 0, t.stdout);
    token = t.json!.data.authorization;
    d = await startDaemon({ settings: g.settings, config: { listen: '127.0.0.1', port: 0, interval: 60, tick: 1 } });
    ca = await readFile(join(g.settings.stateDir, 'tls', 'smbgatewayd.pem'));
  });
  after(async () => { await d?.stop(); await g?.cleanup(); });

  const ok = (over: Record<string, string | string[]> = {}) => () => ({ mode: 'native', path: join(g.storage, 'new'), users: [alice], ...over });
  const cases: Case[] = [
    { what: 'a name with a comma', req: () => ({ ...ok()(), sharename: 'a,b' }), field: 'sharename', rule: /must not contain the character ","/ },
    { what: 'a name starting with -', req: () => ({ ...ok()(), sharename: '-rf' }), field: 'sharename', rule: /must not start with "-"/ },
    { what: 'IPC$', req: () => ({ ...ok()(), sharename: 'IPC$' }), field: 'sharename', rule: /reserved by Samba/ },
    { what: 'print$', req: () => ({ ...ok()(), sharename: 'print$' }), field: 'sharename', rule: /reserved by Samba/ },
    { what: 'an 81-character name', req: () => ({ ...ok()(), sharename: 'n'.repeat(81) }), field: 'sharename', rule: /at most 80 characters/ },
    { what: 'a name that differs only in case', req: () => ({ ...ok()(), sharename: 'EXISTING' }), field: 'sharename', rule: /already exists \(names are unique ignoring case\)/ },
    { what: 'a name ending in a space', req: () => ({ ...ok()(), sharename: 'trail ' }), field: 'sharename', rule: /must not start or end with (a )?(white )?space/ },
    { what: 'a path with a trailing space', req: () => ({ ...ok({ path: join(g.storage, 'new ') })(), sharename: 'p1' }), field: 'path', rule: /must not start or end with white space/ },
    { what: 'a path with two spaces in a row', req: () => ({ ...ok({ path: join(g.storage, 'a  b') })(), sharename: 'p2' }), field: 'path', rule: /two white-space characters in a row/ },
    { what: 'a path with ..', req: () => ({ ...ok({ path: `${g.storage}/../../etc` })(), sharename: 'p3' }), field: 'path', rule: /must not contain "\.\." components/ },
    { what: 'a path through a symlink out of the root', req: () => ({ ...ok({ path: join(g.storage, 'escape', 'data') })(), sharename: 'p4' }), field: 'path', rule: /resolves to .*outside.*not inside an allowed storage root/ },
    { what: 'the storage root itself', req: () => ({ ...ok({ path: g.storage })(), sharename: 'p5' }), field: 'path', rule: /not inside an allowed storage root/ },
    { what: 'a path inside another share', req: () => ({ ...ok({ path: join(g.storage, 'existing', 'sub') })(), sharename: 'p6' }), field: 'path', rule: /lies inside share "Existing"/ },
    { what: 'a path around another share', req: () => ({ ...ok({ path: join(g.storage, 'nest') })(), sharename: 'p7' }), field: 'path', rule: /contains share "nested"/ },
    { what: 'a path whose parent is missing', req: () => ({ ...ok({ path: join(g.storage, 'no', 'such') })(), sharename: 'p8' }), field: 'path', rule: /parent directory .* does not exist/ },
    { what: 'a %-macro in the path', req: () => ({ ...ok({ path: join(g.storage, '%U') })(), sharename: 'p9' }), field: 'path', rule: /must not contain %/ },
    { what: 'user root', req: () => ({ ...ok({ users: ['root'] })(), sharename: 'u1' }), field: 'users', rule: /root is a system account/ },
    { what: 'user daemon', req: () => ({ ...ok({ users: ['daemon'] })(), sharename: 'u2' }), field: 'users', rule: /daemon is a system account/ },
    { what: 'user nobody (read-only)', req: () => ({ ...ok({ read_users: ['nobody'] })(), sharename: 'u3' }), field: 'read_users', rule: /nobody is a system account/ },
    { what: 'an existing account the gateway did not make', req: () => ({ ...ok({ users: [bob] })(), sharename: 'u4' }), field: 'users', rule: /is an existing account that pve-smbgateway did not create/ },
    { what: 'adopting an account not given access', req: () => ({ ...ok({ adopt: [bob] })(), sharename: 'u5' }), field: 'adopt', rule: /not given access to this share/ },
    { what: 'a group that does not exist', req: () => ({ ...ok({ groups: ['nosuchgroup42'] })(), sharename: 'u6' }), field: 'groups', rule: /group nosuchgroup42 does not exist/ },
    { what: 'a system group', req: () => ({ ...ok({ groups: ['sudo'] })(), sharename: 'u7' }), field: 'groups', rule: /sudo is a system account/ },
    { what: 'max connections with a leading 0 (octal to Samba)', req: () => ({ ...ok({ options: ['max connections=010'] })(), sharename: 'o1' }), field: 'options', rule: /is not valid for "max connections"/ },
    { what: 'a path option', req: () => ({ ...ok({ options: ['path=/etc'] })(), sharename: 'o2' }), field: 'options', rule: /may not be set through options/ },
    { what: 'a comment ending in a backslash', req: () => ({ ...ok({ comment: 'line\\' })(), sharename: 'c1' }), field: 'comment', rule: /must not end with a backslash/ },
    { what: 'an Active Directory domain the node is not joined to, without join credentials', req: () => ({ ...ok({ ad_domain: 'example.com' })(), sharename: 'ad' }), field: 'ad_password', rule: /this node is not joined to example\.com: give the join credentials/ },
  ];

  const cliArgs = (r: Record<string, string | string[]>) => {
    const args = ['create', String(r.sharename)];
    for (const [k, v] of Object.entries(r)) {
      if (k === 'sharename') continue;
      for (const x of Array.isArray(v) ? v : [v]) args.push(`--${k.replace(/_/g, '-')}`, x);
    }
    return [...args, '--password-file', pwFile, '--json'];
  };

  const api = (method: string, path: string, body?: unknown) => call(d.api.url, ca, method, path, { headers: { authorization: token }, body });

  /** The API's answer: a 400 with the field's rule, or a task that ends with the error. */
  async function apiError(req: Record<string, unknown>): Promise<{ field: string; message: string }> {
    const r = await api('POST', '/api2/json/nodes/testnode/smbgateway', { ...req, password: PW });
    if (r.status === 400) {
      const [field, rule] = Object.entries(r.json.errors as Record<string, string>)[0]!;
      return { field, message: `${field}: ${rule}` };
    }
    assert.equal(r.status, 200, r.text);
    for (const end = Date.now() + 60_000; Date.now() < end; await new Promise((res) => setTimeout(res, 100))) {
      const s = await api('GET', `/api2/json/nodes/testnode/tasks/${encodeURIComponent(r.json.data)}/status`);
      if (s.json.data.status === 'stopped') {
        assert.notEqual(s.json.data.exitstatus, 'OK', 'the task must fail');
        return { field: s.json.data.error.field, message: s.json.data.error.message };
      }
    }
    throw new Error('task did not end');
  }

  for (const c of cases) {
    it(`refuses ${c.what}`, async () => {
      const before = await snapshot();
      const r = await g.cli(cliArgs(c.req()));
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.equal(r.json!.error!.field, c.field, r.json!.error!.message);
      assert.ok(r.json!.error!.message.startsWith(`${c.field}: `), r.json!.error!.message);
      assert.match(r.json!.error!.message, c.rule);
      assert.doesNotMatch(r.json!.error!.message, /\bE[A-Z]{3,}\b|\n\s+at /);
      assert.deepEqual(await snapshot(), before, 'the CLI changed something');
      const e = await apiError(c.req());
      assert.equal(e.field, c.field, e.message);
      assert.match(e.message, c.rule);
      assert.deepEqual(await snapshot(), before, 'the API changed something');
    });
  }

  it('refuses migrate of a file the caller names (CLI and API)', async () => {
    const before = await snapshot();
    const r = await g.cli(['migrate', '--storage-cfg', '/etc/shadow', '--json']);
    assert.equal(r.code, 2);
    assert.match(r.json!.error!.message, /^storage_cfg: unknown option --storage-cfg/);
    const a = await api('POST', '/api2/json/nodes/testnode/smbgateway/migrate', { storage_cfg: '/etc/shadow' });
    assert.equal(a.status, 400);
    assert.match(a.json.errors.storage_cfg, /not defined in schema/);
    assert.deepEqual(await snapshot(), before);
  });
});
