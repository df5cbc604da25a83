/**
 * --dry-run on create, delete and update (CLI and API): every check runs and the plan is shown step by
 * step, with what each will do and which cannot be undone; nothing on the host changes.
 */
import { strict as assert } from 'node:assert';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDaemon, type Daemon } from '../src/api/daemon.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';
import { call } from './helpers/https.ts';
import { systemSnapshot } from './helpers/snapshot.ts';

describe('--dry-run shows the plan and changes nothing', () => {
  let g: TestGateway;
  let alice: string;
  let pw: string;
  const snap = () => systemSnapshot(g.settings, g.storage, [alice]);
  before(async () => {
    g = await startGateway();
    alice = g.user('alice');
    pw = join(g.dir, 'pw');
    await writeFile(pw, 'Dry-run-pass-1\n', { mode: 0o600 });
  });
  after(async () => { await g?.cleanup(); });

  it('create: the steps with what each does; no directory, account, config or secret appears', async () => {
    const before = await snap();
    const path = join(g.storage, 'dry');
    const r = await g.cli(['create', 'dry', '--mode', 'native', '--path', path, '--user', alice, '--password-file', pw, '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^would create share dry \(dry run: nothing was changed\):\n/);
    assert.match(r.stdout, new RegExp(`\\n   1\\. create-directory: mkdir ${path}\\n`));
    assert.match(r.stdout, new RegExp(`add-unix-users: useradd \\(login-less, own group\\): ${alice}\\n`));
    assert.match(r.stdout, new RegExp(`set-samba-passwords: new Samba accounts: ${alice}\\n`));
    assert.match(r.stdout, /grant-permissions: setfacl -b -m .*\n/);
    assert.match(r.stdout, /save-config: write .*shares\.cfg\n/);
    assert.match(r.stdout, /health-check: smbclient lists the share as /);
    assert.deepEqual(await snap(), before);
    const j = await g.cli(['create', 'dry', '--mode', 'native', '--path', path, '--user', alice, '--password-file', pw, '--dry-run', '--json']);
    assert.equal(j.json!.data.dry_run, true);
    assert.deepEqual(j.json!.data.plan.map((s: { step: string }) => s.step), ['create-directory', 'add-unix-users', 'set-samba-passwords', 'grant-permissions', 'store-secrets', 'save-config', 'write-smb-conf', 'reload-smbd', 'health-check']);
    assert.deepEqual(await snap(), before);
    // a plan that cannot be made is refused the same way with --dry-run
    const bad = await g.cli(['create', 'dry', '--mode', 'native', '--path', '/etc', '--user', alice, '--password-file', pw, '--dry-run', '--json']);
    assert.equal(bad.code, 2);
    assert.match(bad.json!.error!.message, /^path: .*not inside an allowed storage root/);
  });

  it('delete --purge and update: the plan names what cannot be undone; nothing changes', async () => {
    assert.equal((await g.cli(['create', 'real', '--mode', 'native', '--path', join(g.storage, 'real'), '--user', alice, '--password-file', pw, '--json'])).code, 0);
    const before = await snap();
    const d = await g.cli(['delete', 'real', '--purge', '--dry-run']);
    assert.equal(d.code, 0, d.stderr);
    assert.match(d.stdout, new RegExp(`purge-storage: destroy what create made \\(checked again first\\): dir ${join(g.storage, 'real')}  \\[cannot be undone\\]`));
    assert.match(d.stdout, new RegExp(`remove-unix-users: userdel \\(accounts the gateway made, uid checked\\): ${alice}`));
    const u = await g.cli(['update', 'real', '--comment', 'new words', '--dry-run', '--json']);
    assert.equal(u.json!.data.share.comment, 'new words');
    assert.deepEqual(u.json!.data.plan.map((s: { step: string }) => s.step), ['save-config', 'write-smb-conf', 'reload-smbd']);
    assert.deepEqual(await snap(), before);
    assert.doesNotMatch(await readFile(join(g.settings.storeDir, 'shares.cfg'), 'utf8'), /new words/);
  });

  it('over the API: the task\'s result is the plan; nothing changes', async () => {
    const t = await g.cli(['token', 'create', 'dry', '--privs', 'Datastore.Allocate,Datastore.Audit', '--json']);
    const d: Daemon = await startDaemon({ settings: g.settings, config: { listen: '127.0.0.1', port: 0, interval: 60, tick: 1 } });
    try {
      const ca = await readFile(join(g.settings.stateDir, 'tls', 'smbgatewayd.pem'));
      const api = (m: string, p: string, body?: unknown) => call(d.api.url, ca, m, p, { headers: { authorization: t.json!.data.authorization }, body });
      const before = await snap();
      const r = await api('POST', '/api2/json/nodes/testnode/smbgateway', { sharename: 'viaapi', mode: 'native', path: join(g.storage, 'viaapi'), users: [alice], password: 'Dry-run-pass-1', dry_run: true });
      assert.equal(r.status, 200, r.text);
      let st;
      for (const end = Date.now() + 30_000; Date.now() < end; await new Promise((res) => setTimeout(res, 100))) {
        st = await api('GET', `/api2/json/nodes/testnode/tasks/${encodeURIComponent(r.json.data)}/status`);
        if (st.json.data.status === 'stopped') break;
      }
      assert.equal(st!.json.data.exitstatus, 'OK');
      assert.equal(st!.json.data.result.dry_run, true);
      assert.equal(st!.json.data.result.plan[0].step, 'create-directory');
      assert.deepEqual(await snap(), before);
    } finally { await d.stop(); }
  });
});
