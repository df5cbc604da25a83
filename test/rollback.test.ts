/**
 * Plans with rollback: a failure injected at every step of create and of delete leaves the system
 * exactly as it was (no share section, no smb.conf change, no account or directory we made).
 */
import { strict as assert } from 'node:assert';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { getUnixUser } from '../src/provision/accounts.ts';
import { execRunner } from '../src/core/exec.ts';
import { applyPlan } from '../src/core/plan.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';

describe('applyPlan', () => {
  it('undoes finished steps in reverse and reports the original error and failed undos', async () => {
    const log: string[] = [];
    const step = (n: string, fail = false, undoFails = false) => ({
      name: n,
      do: async () => { if (fail) throw new Error(`${n} broke`); log.push(`do ${n}`); },
      undo: async () => { if (undoFails) throw new Error(`undo ${n} broke`); log.push(`undo ${n}`); },
    });
    await assert.rejects(applyPlan([step('a'), step('b', false, true), step('c'), step('d', true)]), (e: Error) => {
      assert.match(e.message, /^d broke \(rollback incomplete: b: undo b broke\)$/);
      return true;
    });
    assert.deepEqual(log, ['do a', 'do b', 'do c', 'undo c', 'undo a']);
  });
});

describe('rollback at every step on a real smbd', () => {
  let g: TestGateway;
  let alice: string;
  let pwFile: string;
  const state = async () => ({
    cfg: await readFile(join(g.settings.storeDir, 'shares.cfg'), 'utf8').catch(() => '<none>'),
    conf: await readFile(g.settings.managedConf, 'utf8').catch(() => '<none>'),
    storage: (await readdir(g.storage)).sort(),
    priv: (await readdir(join(g.settings.storeDir, 'priv')).catch(() => [])).sort(),
    samba: await g.gw.samba.userExists(alice),
    unix: !!(await getUnixUser(execRunner, alice)),
  });
  const create = (env: Record<string, string> = {}) => g.cli(['create', 'rb', '--mode', 'native', '--path', join(g.storage, 'rb'), '--user', alice, '--password-file', pwFile, '--json'], { env });

  before(async () => {
    g = await startGateway();
    alice = g.user('alice');
    pwFile = await g.passwordFile('Rollback-pw-1');
  });
  after(async () => { await g?.cleanup(); });

  it('create: every step, then a real failure from a substituted binary', async () => {
    const pristine = await state();
    const first = await create({ SMBGW_FAIL_AT: 'health-check' });
    assert.equal(first.code, 1, first.stdout);
    assert.deepEqual(await state(), pristine, 'a failed first create leaves no file behind');
    const ok = await create();
    assert.equal(ok.code, 0, ok.stdout);
    const steps: string[] = ok.json!.data.steps;
    assert.deepEqual(steps, ['create-directory', 'add-unix-users', 'set-samba-passwords', 'grant-permissions', 'store-secrets', 'save-config', 'write-smb-conf', 'reload-smbd', 'health-check']);
    const del = await g.cli(['delete', 'rb', '--purge', '--json']);
    assert.equal(del.code, 0, del.stdout);
    const initial = await state();
    assert.deepEqual({ ...initial, cfg: '', conf: '' }, { ...pristine, cfg: '', conf: '' }, 'delete --purge removes all it made');
    assert.doesNotMatch(initial.conf, /\[rb\]/);

    for (const step of steps) {
      const r = await create({ SMBGW_FAIL_AT: step });
      assert.equal(r.code, 1, `${step}: ${r.stdout}`);
      assert.equal(r.json!.error!.message, `injected failure at step ${step} (rolled back)`);
      assert.deepEqual(await state(), initial, `after a failure at ${step} something was left behind`);
      const probe = await g.smb('rb', alice, 'Rollback-pw-1', 'ls');
      assert.notEqual(probe.code, 0);
    }
    // A real failure: testparm rejects the config (here a stand-in that always fails). The new smb.conf is
    // checked while the create is planned, so it stops before any step ran: nothing to roll back.
    const r = await create({ SMBGW_BIN_TESTPARM: '/bin/false' });
    assert.equal(r.code, 1);
    assert.match(r.json!.error!.message, /^testparm rejected /);
    assert.doesNotMatch(r.json!.error!.message, /rolled back/);
    assert.deepEqual(await state(), initial);
    // A real failure after every change was made: the health check's smbclient fails, all is rolled back.
    const h = await create({ SMBGW_BIN_SMBCLIENT: '/bin/false' });
    assert.equal(h.code, 1);
    assert.match(h.json!.error!.message, /^health check: .* \(rolled back\)/);
    assert.deepEqual(await state(), initial);
  });

  it('delete: every step leaves the share working', async () => {
    const ok = await create();
    assert.equal(ok.code, 0, ok.stdout);
    const src = join(g.dir, 'f.txt');
    await writeFile(src, 'keep me');
    assert.equal((await g.smb('rb', alice, 'Rollback-pw-1', `put ${src} f.txt`)).code, 0);
    const withShare = await state();
    const steps = ['save-config', 'write-smb-conf', 'reload-smbd', 'close-share', 'remove-secrets', 'revoke-permissions', 'remove-samba-users', 'remove-unix-users', 'purge-storage'];
    for (const step of steps) {
      const r = await g.cli(['delete', 'rb', '--purge', '--json'], { env: { SMBGW_FAIL_AT: step } });
      assert.equal(r.code, 1, `${step}: ${r.stdout}`);
      assert.equal(r.json!.error!.message, `injected failure at step ${step} (rolled back)`);
      const now = await state();
      assert.deepEqual({ ...now, cfg: undefined }, { ...withShare, cfg: undefined }, `after a failure at ${step}`);
      assert.equal(now.cfg, withShare.cfg);
      const get = await g.smb('rb', alice, 'Rollback-pw-1', `get f.txt ${join(g.dir, 'back.txt')}`);
      assert.equal(get.code, 0, `${step}: share no longer works: ${get.stdout}${get.stderr}`);
      assert.equal(await readFile(join(g.dir, 'back.txt'), 'utf8'), 'keep me');
    }
    const del = await g.cli(['delete', 'rb', '--purge', '--json']);
    assert.deepEqual(del.json!.data.steps, steps);
  });
});
