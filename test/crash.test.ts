/**
 * Crash safety: the CLI is killed (SIGKILL) right before and right after every step of native create
 * and delete (with and without --purge), then `pve-smbgateway repair` runs. The system is then byte
 * for byte as before the operation (shares.cfg, smb.conf, the private directory, the storage tree with
 * modes, owners and ACLs, the users' passwd/group entries and Samba accounts), or, for a delete killed
 * past the purge (which cannot be undone), as after a delete that went through; smbd serves the other
 * share throughout. Also: a pending journal stops other operations with a pointer to repair, the lock
 * of the killed process does not make them wait, the daemon repairs on start, ZFS/btrfs storage, lxc.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDaemon } from '../src/api/daemon.ts';
import { Journal, repairJournal } from '../src/core/journal.ts';
import { breakDeadLock, recordLockOwner } from '../src/core/lockowner.ts';
import { applyPlan, type Step } from '../src/core/plan.ts';
import { settingsJson } from '../src/core/settings.ts';
import { startGateway, sh, type CliResult, type TestGateway } from './helpers/gateway.ts';
import { btrfsLoop, zfsPool, type TestFs } from './helpers/fs.ts';
import { call } from './helpers/https.ts';
import { systemSnapshot } from './helpers/snapshot.ts';
import { FakeBackend } from './pve-sim/backend.ts';
import { startSimGateway, type SimGateway } from './pve-sim/gateway.ts';

const PW = 'Crash-pw-123';

/**
 * The accounts of this test get uids of a range of their own, above login.defs' UID_MAX: a delete frees
 * a uid that the repair gives back, and another test's useradd on this machine must not take it meanwhile.
 */
async function ownUidRange(g: TestGateway): Promise<void> {
  g.settings.accountUidMin = 61000 + Math.floor(Math.random() * 40) * 100;
  g.settings.accountUidMax = g.settings.accountUidMin + 99;
  await writeFile(g.settingsFile, settingsJson(g.settings));
}
const BOB_PW = 'Crash-bob-456';
const WHEN = ['SMBGW_KILL_BEFORE', 'SMBGW_KILL_AT'] as const;

/**
 * An access change of a guest share (alice out, bob in) killed once bob is added, as alice's removal
 * starts, and once it is done (every guest step before it done), then repaired: the guest's accounts (Samba password included), its smb.conf, the host ACL, the secrets and
 * shares.cfg as before, i.e. the guest consistent with the store again.
 */
async function guestAccessCrashes(t: SimGateway, fake: FakeBackend, name: string): Promise<void> {
  const share = (await t.gw.store.get(name))!;
  const st = fake.state(share.vmid!);
  const guestState = async () => ({
    cfg: await t.gw.store.readRaw(),
    conf: st.files.get('/etc/samba/smbgateway.conf')?.data,
    users: [...st.unixUsers].sort(),
    samba: [...new Set([...st.sambaUsers.keys(), ...st.ntHashes.keys()])].sort(),
    hashes: [...st.ntHashes].sort(),
    acl: (await sh('getfacl', ['-R', '-n', '--absolute-names', share.path])).stdout,
    secrets: [await t.gw.store.readSecret(name, 'alice'), await t.gw.store.readSecret(name, 'bob')],
  });
  const initial = await guestState();
  assert.deepEqual(initial.users.map(([u]) => u), ['alice']);
  assert.ok(initial.conf?.includes('valid users = alice'));
  const pw = await t.passwordFile(BOB_PW);
  for (const [when, step] of [['SMBGW_KILL_AT', 'add-guest-users'], ['SMBGW_KILL_BEFORE', 'remove-guest-users'], ['SMBGW_KILL_AT', 'remove-guest-users']] as const) {
    const r = await t.cli(['access', name, '--add-user', 'bob', '--remove-user', 'alice', '--password-file', pw, '--json'], { env: { [when]: step } });
    assert.equal(r.signal, 'SIGKILL', `${when}=${step}: ${r.stdout}${r.stderr}`);
    assert.notDeepEqual(await guestState(), initial, `${when}=${step}: the kill left changes to repair`);
    const rep = await t.cli(['repair', '--json']);
    assert.equal(rep.code, 0, rep.stdout + rep.stderr);
    const x = rep.json!.data.repaired[0];
    assert.equal(x.direction, 'rolled back');
    assert.equal(x.complete, true, JSON.stringify(x));
    assert.deepEqual(await guestState(), initial, `${when}=${step}: repaired`);
    if (st.sambaUsers.size) assert.equal(st.sambaUsers.get('alice'), PW, 'alice\'s password is hers again');
  }
}

describe('the journal engine', () => {
  let dir: string;
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'smbgw-journal-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });
  const files = async (d: string) => (await readdir(d).catch(() => [] as string[])).filter((f) => f.endsWith('.journal'));

  it('is gone after success and after a complete rollback; kept (abandoned) when an undo fails, and repair finishes it', async () => {
    const jdir = join(dir, 'a');
    const log: string[] = [];
    const step = (name: string, o: { fail?: boolean; undoFails?: boolean } = {}): Step => ({
      name,
      journal: () => [{ kind: 'note', name }],
      do: async () => { if (o.fail) throw new Error(`${name} broke`); log.push(`do ${name}`); },
      undo: async () => { if (o.undoFails) throw new Error(`undo ${name} broke`); log.push(`undo ${name}`); },
    });
    await applyPlan([step('a'), step('b')], { journal: { dir: jdir, operation: 'op' } });
    assert.deepEqual(await files(jdir), []);
    await assert.rejects(applyPlan([step('a'), step('b', { fail: true })], { journal: { dir: jdir, operation: 'op' } }), /: b broke \(rolled back\)$/);
    assert.deepEqual(await files(jdir), []);
    await assert.rejects(applyPlan([step('a', { undoFails: true }), step('b'), step('c', { fail: true })], { journal: { dir: jdir, operation: 'op', share: 's' } }),
      /c broke \(rollback incomplete: a: undo a broke; run `pve-smbgateway repair` to finish it\)/);
    const [f] = await files(jdir);
    const j = await Journal.load(join(jdir, f!));
    assert.equal(j.doc.state, 'abandoned');
    assert.equal(j.pending(), true, 'an abandoned journal is pending although its process runs');
    assert.deepEqual(j.doc.steps.map((x) => x.state), ['undo-failed', 'undone', 'failed']);
    assert.deepEqual(j.doc.steps[0]!.records, [{ kind: 'note', name: 'a' }]);
    const undone: string[] = [];
    const rep = await repairJournal(j, { note: { undo: async (r) => { undone.push(String(r.name)); return `undid ${String(r.name)}`; } } }, undefined);
    assert.deepEqual(undone, ['a'], 'only the step whose undo failed is undone again (a failed step is not undone)');
    assert.equal(rep.complete, true);
    assert.deepEqual(await files(jdir), []);
  });

  it('past an irreversible step a repair rolls forward through the redo records; an unknown kind is a problem and the journal stays', async () => {
    const jdir = join(dir, 'b');
    const j = await Journal.begin(jdir, { operation: 'delete' }, [
      { name: 'x' }, { name: 'destroy', irreversible: true, redo: [{ kind: 'gone', what: 'guest' }] }, { name: 'after', redo: [{ kind: 'gone', what: 'snippet' }] },
    ]);
    j.doc.steps[0]!.state = 'done';
    j.doc.steps[1]!.state = 'started';
    await j.write();
    const did: string[] = [];
    const rep = await repairJournal(j, { gone: { redo: async (r) => { did.push(String(r.what)); return 'ok'; } } }, undefined);
    assert.equal(rep.direction, 'rolled forward');
    assert.deepEqual(did, ['guest', 'snippet']);
    assert.deepEqual(await files(jdir), []);
    const k = await Journal.begin(jdir, { operation: 'create' }, [{ name: 'y' }]);
    Object.assign(k.doc.steps[0]!, { state: 'done', records: [{ kind: 'from-the-future' }] });
    const bad = await repairJournal(k, {}, undefined);
    assert.equal(bad.complete, false);
    assert.deepEqual(bad.problems, ['y: no way to undo a "from-the-future" record (journal from another version?)']);
    assert.equal((await files(jdir)).length, 1);
    assert.equal((await stat(join(jdir, (await files(jdir))[0]!))).mode & 0o777, 0o600);
  });

  it('breaks the lock of a dead holder on this host, never a live holder\'s or a lock made since', async () => {
    const lockDir = join(dir, 'lock');
    const owner = join(dir, 'owner');
    await mkdir(join(lockDir, 'l'), { recursive: true });
    await recordLockOwner(owner, join(lockDir, 'l'));
    assert.equal(await breakDeadLock(owner, lockDir, 'l'), false, 'this process holds it');
    const dead = spawnSync('true').pid!;
    const o = JSON.parse(await readFile(owner, 'utf8'));
    await writeFile(owner, JSON.stringify({ ...o, pid: dead, pidStart: undefined }));
    await rm(join(lockDir, 'l'), { recursive: true });
    await mkdir(join(lockDir, 'l'));
    const now = JSON.parse(await readFile(owner, 'utf8'));
    const st = await stat(join(lockDir, 'l'));
    assert.equal(await breakDeadLock(owner, lockDir, 'l'), false, 'a lock made since is not the dead holder\'s');
    await writeFile(owner, JSON.stringify({ ...now, ino: st.ino, dev: st.dev, birth: st.birthtimeMs }));
    assert.equal(await breakDeadLock(owner, lockDir, 'l'), true);
    await assert.rejects(stat(join(lockDir, 'l')));
    await assert.rejects(stat(owner));
  });
});

describe('kill -9 at every step of native create and delete, then repair', () => {
  let g: TestGateway;
  let alice: string;
  let bob: string;
  let pwFile: string;
  const started = Date.now();
  const snap = () => systemSnapshot(g.settings, g.storage, [alice, bob]);
  const create = (env: Record<string, string> = {}, name = 'rb') =>
    g.cli(['create', name, '--mode', 'native', '--path', join(g.storage, name), '--user', alice, '--password-file', pwFile, '--json'], { env });
  const killed = (r: CliResult, what: string) => assert.equal(r.signal, 'SIGKILL', `${what}: the command was not killed: ${r.stdout}${r.stderr}`);
  async function repair(what: string, direction: 'rolled back' | 'rolled forward', operation: string): Promise<any> {
    const r = await g.cli(['repair', '--json']);
    assert.equal(r.code, 0, `${what}: ${r.stdout}${r.stderr}`);
    const rep = r.json!.data;
    assert.equal(rep.repaired.length, 1, `${what}: ${JSON.stringify(rep)}`);
    const x = rep.repaired[0];
    assert.deepEqual([x.operation, x.share, x.direction, x.complete, x.problems], [operation, 'rb', direction, true, []], `${what}: ${JSON.stringify(x)}`);
    assert.deepEqual(await readdir(g.gw.store.journalDir).catch(() => []), [], `${what}: the journal is left`);
    return x;
  }
  async function keepServed(what: string): Promise<void> {
    const r = await g.smb('keep', bob, BOB_PW, 'ls');
    assert.equal(r.code, 0, `${what}: smbd no longer serves the other share: ${r.stdout}${r.stderr}`);
  }

  before(async () => {
    g = await startGateway();
    await ownUidRange(g);
    alice = g.user('alice');
    bob = g.user('bob');
    pwFile = await g.passwordFile(PW);
    const bobPw = join(g.dir, 'bobpw');
    await writeFile(bobPw, BOB_PW + '\n', { mode: 0o600 });
    const k = await g.cli(['create', 'keep', '--mode', 'native', '--path', join(g.storage, 'keep'), '--user', bob, '--password-file', bobPw, '--json']);
    assert.equal(k.code, 0, k.stdout + k.stderr);
  });
  after(async () => {
    await g?.cleanup();
    process.stderr.write(`# crash.test native: ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  });

  let steps: string[] = [];
  /** Before the create, and after a delete --purge. */
  let initial: Awaited<ReturnType<typeof snap>>;

  it('create: killed before or after any step, repair puts everything back byte for byte', async () => {
    const ok = await create();
    assert.equal(ok.code, 0, ok.stdout);
    steps = ok.json!.data.steps;
    assert.deepEqual(steps, ['create-directory', 'add-unix-users', 'set-samba-passwords', 'grant-permissions', 'store-secrets', 'save-config', 'write-smb-conf', 'reload-smbd', 'health-check']);
    assert.equal((await g.cli(['delete', 'rb', '--purge', '--json'])).code, 0);
    initial = await snap();
    assert.equal(initial.samba[alice], '<none>');
    let points = 0;
    for (const step of steps) {
      for (const when of WHEN) {
        const what = `${when}=${step}`;
        killed(await create({ [when]: step }), what);
        // Killed after a step did its work, the command has left something behind (the point of the test).
        if (when === 'SMBGW_KILL_AT') assert.notDeepEqual(await snap(), initial, `${what}: the kill left nothing to repair`);
        if (step === 'save-config' && when === 'SMBGW_KILL_AT') {
          // The journal of the killed command: one 0600 file in a 0700 directory, no password in it.
          const dir = g.gw.store.journalDir;
          assert.equal((await stat(dir)).mode & 0o777, 0o700);
          const files = (await readdir(dir)).filter((f) => f.endsWith('.journal'));
          assert.equal(files.length, 1);
          assert.equal((await stat(join(dir, files[0]!))).mode & 0o777, 0o600);
          const j = JSON.parse(await readFile(join(dir, files[0]!), 'utf8'));
          assert.equal(j.operation, 'create');
          assert.deepEqual(j.steps.map((s: { state: string }) => s.state), ['done', 'done', 'done', 'done', 'done', 'started', 'pending', 'pending', 'pending']);
          assert.doesNotMatch(JSON.stringify(j), new RegExp(PW));
        }
        const x = await repair(what, 'rolled back', 'create');
        assert.ok(x.actions.length > 0, what);
        assert.deepEqual(await snap(), initial, `${what}: not as before the create`);
        await keepServed(what);
        points++;
      }
    }
    assert.equal(points, 18);
    // The share works when created again after all this.
    assert.equal((await create()).code, 0);
    assert.equal((await g.smb('rb', alice, PW, 'ls')).code, 0);
  });

  it('while an interrupted operation is pending, create and delete refuse and point to repair (without waiting for the dead lock)', async () => {
    killed(await g.cli(['delete', 'rb', '--json'], { env: { SMBGW_KILL_AT: 'remove-secrets' } }), 'delete');
    const t0 = Date.now();
    const c = await create({}, 'other');
    assert.equal(c.code, 1, c.stdout);
    assert.equal(c.json!.error!.code, 'locked');
    assert.match(c.json!.error!.message, /^the delete of share "rb" \(pid \d+ on .*\) was interrupted and left changes behind: run `pve-smbgateway repair` first/);
    const d = await g.cli(['delete', 'keep']);
    assert.equal(d.code, 1);
    assert.match(d.stderr, /^error: the delete of share "rb" .* was interrupted .* run `pve-smbgateway repair` first/);
    assert.ok(Date.now() - t0 < 20_000, 'the lock of the killed command held the others up');
    const dry = await g.cli(['repair', '--dry-run']);
    assert.match(dry.stdout, /left alone: delete of share "rb" \(journal [^)]+\): interrupted \(dry run: nothing done\)/);
    const x = await repair('delete', 'rolled back', 'delete');
    assert.ok(x.actions.some((a: { did: string }) => /^put back .*\.pw$/.test(a.did)), JSON.stringify(x.actions));
    assert.equal((await g.smb('rb', alice, PW, 'ls')).code, 0, 'the share works again');
    const text = await g.cli(['repair']);
    assert.equal(text.stdout.trim(), 'nothing to repair: no operation was interrupted');
  });

  it('delete (with and without --purge): rolled back before the purge, finished after it', async () => {
    const src = join(g.dir, 'f.txt');
    await writeFile(src, 'keep me');
    assert.equal((await g.smb('rb', alice, PW, `put ${src} f.txt`)).code, 0);
    let withShare = await snap();
    const delSteps = ['save-config', 'write-smb-conf', 'reload-smbd', 'close-share', 'remove-secrets', 'remove-samba-users', 'remove-unix-users'];
    let points = 0;
    for (const purge of [false, true]) {
      for (const step of [...delSteps, ...(purge ? ['purge-storage'] : [])]) {
        for (const when of WHEN) {
          const what = `delete${purge ? ' --purge' : ''} ${when}=${step}`;
          killed(await g.cli(['delete', 'rb', ...(purge ? ['--purge'] : []), '--json'], { env: { [when]: step } }), what);
          points++;
          if (when === 'SMBGW_KILL_AT') assert.notDeepEqual(await snap(), withShare, `${what}: the kill left nothing to repair`);
          if (step === 'purge-storage') {
            const x = await repair(what, 'rolled forward', 'delete --purge');
            // Killed before the purge ran: the repair destroys the directory; after it: nothing is left to do.
            const dir = join(g.storage, 'rb');
            assert.deepEqual(x.actions.map((a: { did: string }) => a.did), [when === 'SMBGW_KILL_BEFORE' ? `destroyed ${dir}` : `${dir} is gone`]);
            assert.deepEqual(await snap(), initial, `${what}: not as after a delete --purge`);
            await keepServed(what);
            // Again, for the next kill point.
            assert.equal((await create()).code, 0);
            assert.equal((await g.smb('rb', alice, PW, `put ${src} f.txt`)).code, 0);
            withShare = await snap();
            continue;
          }
          await repair(what, 'rolled back', purge ? 'delete --purge' : 'delete');
          assert.deepEqual(await snap(), withShare, `${what}: not as before the delete`);
          const back = join(g.dir, 'back.txt');
          const get = await g.smb('rb', alice, PW, `get f.txt ${back}`);
          assert.equal(get.code, 0, `${what}: the share no longer works: ${get.stdout}${get.stderr}`);
          assert.equal(await readFile(back, 'utf8'), 'keep me');
          await keepServed(what);
        }
      }
    }
    assert.equal(points, 30);
  });

  it('the daemon repairs an interrupted operation when it starts, and over REST (Sys.Modify on /)', async () => {
    const tok: Record<string, string> = {};
    for (const [name, privs] of [['adm', 'Datastore.Allocate,Datastore.Audit'], ['sys', 'Sys.Modify,Datastore.Audit']] as const) {
      const c = await g.cli(['token', 'create', name, '--privs', privs, '--json']);
      assert.equal(c.code, 0, c.stdout + c.stderr);
      tok[name] = c.json!.data.authorization;
    }
    const before = await snap();
    killed(await g.cli(['delete', 'rb', '--purge', '--json'], { env: { SMBGW_KILL_AT: 'remove-unix-users' } }), 'delete');
    assert.equal((await snap()).accounts[alice], '', 'the kill left alice removed');
    const d = await startDaemon({ settings: g.settings, config: { listen: '127.0.0.1', port: 0, interval: 3600, tick: 3600 } });
    try {
      assert.equal(d.repairError, undefined);
      assert.equal(d.repair!.repaired.length, 1);
      assert.equal(d.repair!.repaired[0]!.direction, 'rolled back');
      assert.equal(d.repair!.repaired[0]!.complete, true);
      assert.deepEqual(await snap(), before);
      assert.equal((await g.smb('rb', alice, PW, 'ls')).code, 0);

      killed(await g.cli(['delete', 'rb', '--json'], { env: { SMBGW_KILL_AT: 'save-config' } }), 'delete');
      const ca = await readFile(join(g.settings.stateDir, 'tls', 'smbgatewayd.pem'));
      const api = (method: string, path: string, token: string) => call(d.api.url, ca, method, `/api2/json/nodes/testnode${path}`, { headers: { authorization: token } });
      assert.equal((await api('POST', '/smbgateway/repair', tok.adm!)).status, 403, 'Datastore.Allocate is not enough');
      const r = await api('POST', '/smbgateway/repair', tok.sys!);
      assert.equal(r.status, 200, r.text);
      let st;
      for (const end = Date.now() + 60_000; ;) {
        st = await api('GET', `/tasks/${encodeURIComponent(r.json.data)}/status`, tok.sys!);
        if (st.json?.data?.status === 'stopped' || Date.now() > end) break;
        await new Promise((res) => setTimeout(res, 100));
      }
      assert.equal(st.json.data.exitstatus, 'OK', st.text);
      assert.deepEqual(st.json.data.result.repaired.map((x: { operation: string; share: string; complete: boolean }) => [x.operation, x.share, x.complete]), [['delete', 'rb', true]]);
      assert.deepEqual(await snap(), before);
    } finally {
      await d.stop();
    }
  });
});

describe('an undo that would reach what the operation did not make', () => {
  let g: TestGateway;
  let alice: string;
  let pwFile: string;
  before(async () => {
    g = await startGateway();
    await ownUidRange(g);
    alice = g.user('alice');
    pwFile = await g.passwordFile(PW);
  });
  after(async () => { await g?.cleanup(); });
  const create = (env: Record<string, string>) =>
    g.cli(['create', 'sx', '--mode', 'native', '--path', join(g.storage, 'sx'), '--user', alice, '--password-file', pwFile, '--json'], { env });

  it('is refused and reported; the journal stays until the admin has dealt with it (or discards it)', async () => {
    const initial = await systemSnapshot(g.settings, g.storage, [alice]);
    assert.equal((await create({ SMBGW_KILL_AT: 'add-unix-users' })).signal, 'SIGKILL');
    // Someone puts a file into the directory the killed create made: the repair must not remove it.
    await writeFile(join(g.storage, 'sx', 'precious.txt'), 'mine');
    const r = await g.cli(['repair']);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /^error: rolling back INCOMPLETE: create of share "sx" /);
    assert.match(r.stderr, /\n {2}add-unix-users: removed unix account \S+ \(uid \d+\)\n/);
    assert.match(r.stderr, /\n {2}problem: create-directory: \S+\/sx is not empty \(files were put in it since\): left as it is\n/);
    assert.match(r.stderr, /the journal is kept: deal with the problems, then run repair again/);
    assert.equal(await readFile(join(g.storage, 'sx', 'precious.txt'), 'utf8'), 'mine');
    const c = await g.cli(['create', 'other', '--mode', 'native', '--path', join(g.storage, 'other'), '--user', alice, '--password-file', pwFile, '--json']);
    assert.equal(c.json!.error!.code, 'locked', 'the half-repaired create still stops others');
    // The admin moves the file away; the next repair finishes.
    await rm(join(g.storage, 'sx', 'precious.txt'));
    const again = await g.cli(['repair', '--json']);
    assert.equal(again.code, 0, again.stdout);
    // The account was removed by the first repair: only the directory is left to undo.
    assert.deepEqual(again.json!.data.repaired[0].actions.map((a: { did: string }) => a.did), [`removed directory ${join(g.storage, 'sx')}`]);
    assert.deepEqual(await systemSnapshot(g.settings, g.storage, [alice]), initial);
    // --discard drops a journal without undoing anything (here: one whose step had not run).
    assert.equal((await create({ SMBGW_KILL_BEFORE: 'create-directory' })).signal, 'SIGKILL');
    const dry = await g.cli(['repair', '--dry-run', '--json']);
    const id = dry.json!.data.skipped[0].id;
    const bad = await g.cli(['repair', '--discard', 'nonsense', '--json']);
    assert.equal(bad.json!.error!.field, 'discard');
    const d = await g.cli(['repair', '--discard', id, '--json']);
    assert.deepEqual(d.json!.data, { repaired: [], skipped: [], discarded: [id] });
    assert.deepEqual(await systemSnapshot(g.settings, g.storage, [alice]), initial);
  });
});

describe('kill -9 while making ZFS datasets and btrfs subvolumes, then repair', () => {
  let g: TestGateway;
  let alice: string;
  let pwFile: string;
  before(async () => {
    g = await startGateway();
    await ownUidRange(g);
    alice = g.user('alice');
    pwFile = await g.passwordFile(PW);
  });
  after(async () => { await g?.cleanup(); });
  const create = (name: string, path: string, env: Record<string, string>) =>
    g.cli(['create', name, '--mode', 'native', '--path', path, '--quota', '50M', '--user', alice, '--password-file', pwFile, '--json'], { env });
  const repairOk = async (what: string) => {
    const r = await g.cli(['repair', '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.json!.data.repaired.length, 1, what);
    assert.equal(r.json!.data.repaired[0].complete, true, `${what}: ${JSON.stringify(r.json!.data)}`);
  };

  it('btrfs: quota switched off again and no subvolume left', async () => {
    let fs: TestFs | undefined;
    try {
      fs = await btrfsLoop(g.dir, join(g.storage, 'btrfs'));
      const initial = await systemSnapshot(g.settings, g.storage, [alice]);
      for (const step of ['enable-btrfs-quota', 'create-subvolume', 'set-quota']) {
        for (const when of WHEN) {
          const r = await create('bq', join(fs.mountpoint, 'bq'), { [when]: step });
          assert.equal(r.signal, 'SIGKILL', `${when}=${step}: ${r.stdout}`);
          await repairOk(`${when}=${step}`);
          assert.deepEqual(await readdir(fs.mountpoint), [], `${when}=${step}: a subvolume is left`);
          assert.notEqual((await sh('btrfs', ['qgroup', 'show', fs.mountpoint])).code, 0, `${when}=${step}: quotas left on`);
          assert.deepEqual(await systemSnapshot(g.settings, g.storage, [alice]), initial, `${when}=${step}`);
        }
      }
    } finally {
      await fs?.cleanup();
    }
  });

  it('ZFS: no dataset left (destroyed without -r, by its GUID)', async () => {
    let fs: (TestFs & { pool: string }) | undefined;
    try {
      fs = await zfsPool(g.dir, `smbgwc${g.id}`, join(g.storage, 'zfs'));
      const datasets = async () => (await sh('zfs', ['list', '-H', '-o', 'name', '-r', fs!.pool])).stdout.trim().split('\n');
      const initial = await systemSnapshot(g.settings, g.storage, [alice]);
      for (const step of ['create-dataset', 'set-quota']) {
        for (const when of WHEN) {
          const r = await create('zq', join(fs.mountpoint, 'zq'), { [when]: step });
          assert.equal(r.signal, 'SIGKILL', `${when}=${step}: ${r.stdout}`);
          await repairOk(`${when}=${step}`);
          assert.deepEqual(await datasets(), [fs.pool], `${when}=${step}: a dataset is left`);
          assert.deepEqual(await systemSnapshot(g.settings, g.storage, [alice]), initial, `${when}=${step}`);
        }
      }
    } finally {
      await fs?.cleanup();
    }
  });
});

describe('kill -9 during lxc create and delete (Proxmox VE simulator), then repair', () => {
  let t: SimGateway;
  let fake: FakeBackend;
  before(async () => {
    fake = new FakeBackend();
    t = await startSimGateway({ backend: fake });
    const r = await t.cli(['template', 'create', '--mode', 'lxc', '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });
  after(async () => { await t?.cleanup(); });

  const lxcCreate = async (env: Record<string, string>) =>
    t.cli(['create', 'ct', '--mode', 'lxc', '--path', join(t.storage, 'ct'), '--user', 'alice', '--password-file', await t.passwordFile(PW), '--json'], { env });
  const repair = async () => {
    const r = await t.cli(['repair', '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.json!.data.repaired.length, 1);
    return r.json!.data.repaired[0];
  };

  it('create killed after the clone (and after its start): the container is removed, the host as before', async () => {
    const guests = new Set(t.sim.guests.keys());
    const initial = await systemSnapshot(t.settings, t.storage, []);
    for (const [when, step] of [['SMBGW_KILL_AT', 'clone-container'], ['SMBGW_KILL_BEFORE', 'wait-network'], ['SMBGW_KILL_AT', 'save-config']] as const) {
      const r = await lxcCreate({ [when]: step });
      assert.equal(r.signal, 'SIGKILL', `${when}=${step}: ${r.stdout}${r.stderr}`);
      assert.equal(t.sim.guests.size, guests.size + 1, 'the clone is there before the repair');
      const x = await repair();
      assert.equal(x.direction, 'rolled back');
      assert.equal(x.complete, true, JSON.stringify(x));
      assert.ok(x.actions.some((a: { step: string; did: string }) => a.step === 'clone-container' && /^removed CT \d+$/.test(a.did)), JSON.stringify(x.actions));
      assert.deepEqual(new Set(t.sim.guests.keys()), guests, `${when}=${step}: a container is left`);
      assert.deepEqual(await systemSnapshot(t.settings, t.storage, []), initial, `${when}=${step}`);
    }
  });

  it('delete killed once the container is being destroyed: finished, not undone', async () => {
    const ok = await lxcCreate({});
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    const vmid = ok.json!.data.share.vmid;
    const r = await t.cli(['delete', 'ct', '--purge', '--json'], { env: { SMBGW_KILL_BEFORE: 'destroy-container' } });
    assert.equal(r.signal, 'SIGKILL');
    const x = await repair();
    assert.equal(x.direction, 'rolled forward');
    assert.equal(x.complete, true, JSON.stringify(x));
    assert.deepEqual(x.actions.map((a: { step: string }) => a.step), ['destroy-container', 'purge-storage']);
    assert.equal(t.sim.guests.has(vmid), false);
    await assert.rejects(stat(join(t.storage, 'ct')));
    assert.equal((await t.cli(['list', '--json'])).json!.data.length, 0);
  });

  it('access killed mid-plan (pct exec): repair puts its accounts, smb.conf, ACL, secrets and config back', async () => {
    const ok = await lxcCreate({});
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    await guestAccessCrashes(t, fake, 'ct');
  });
});

describe('kill -9 during vm create and delete (Proxmox VE simulator, API token), then repair', () => {
  let t: SimGateway;
  let fake: FakeBackend;
  before(async () => {
    fake = new FakeBackend({ preinstalled: ['samba', 'qemu-guest-agent'] });
    t = await startSimGateway({ backend: fake, transport: 'token' });
    const r = await t.cli(['template', 'create', '--mode', 'vm', '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });
  after(async () => { await t?.cleanup(); });
  const snippets = () => readdir(join(t.sim.storagePath('local')!, 'snippets'));
  const vmCreate = async (env: Record<string, string>) =>
    t.cli(['create', 'vmx', '--mode', 'vm', '--path', join(t.storage, 'vmx'), '--user', 'carol', '--password-file', await t.passwordFile(PW), '--json'], { env });
  const repair = async () => {
    const r = await t.cli(['repair', '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.json!.data.repaired.length, 1);
    return r.json!.data.repaired[0];
  };

  it('create killed after the cloud-init snippet: VM, snippet and directory mapping go, the host as before', async () => {
    const guests = new Set(t.sim.guests.keys());
    const initial = await systemSnapshot(t.settings, t.storage, []);
    const r = await vmCreate({ SMBGW_KILL_AT: 'write-user-data' });
    assert.equal(r.signal, 'SIGKILL', r.stdout + r.stderr);
    assert.equal(t.sim.mappings.size, 1);
    assert.equal((await snippets()).length, 1);
    const x = await repair();
    assert.equal(x.direction, 'rolled back');
    assert.equal(x.complete, true, JSON.stringify(x));
    assert.deepEqual(x.actions.map((a: { step: string }) => a.step), ['write-user-data', 'clone-vm', 'create-dir-mapping', 'grant-permissions', 'create-directory']);
    assert.deepEqual(new Set(t.sim.guests.keys()), guests);
    assert.equal(t.sim.mappings.size, 0);
    assert.deepEqual(await snippets(), []);
    assert.deepEqual(await systemSnapshot(t.settings, t.storage, []), initial);
  });

  it('delete killed as the VM is destroyed: finished (mapping and snippet removed too)', async () => {
    const ok = await vmCreate({});
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    const vmid = ok.json!.data.share.vmid;
    const r = await t.cli(['delete', 'vmx', '--json'], { env: { SMBGW_KILL_AT: 'destroy-vm' } });
    assert.equal(r.signal, 'SIGKILL');
    assert.equal(t.sim.guests.has(vmid), false, 'the VM is gone before the repair');
    const x = await repair();
    assert.equal(x.direction, 'rolled forward');
    assert.equal(x.complete, true, JSON.stringify(x));
    assert.deepEqual(x.actions.map((a: { step: string; did: string }) => `${a.step}: ${a.did}`), [
      `destroy-vm: VM ${vmid} is not there`, `remove-dir-mapping: removed directory mapping smbgw-${vmid}`, 'remove-user-data: removed ' + join(t.sim.storagePath('local')!, 'snippets', `smbgw-${vmid}-user.yaml`),
    ]);
    assert.equal(t.sim.mappings.size, 0);
    assert.deepEqual(await snippets(), []);
    assert.equal((await t.cli(['list', '--json'])).json!.data.length, 0);
    assert.ok((await stat(join(t.storage, 'vmx'))).isDirectory(), 'the data stays without --purge');
  });

  it('access killed mid-plan (guest agent): repair puts its accounts, smb.conf, ACL, secrets and config back', async () => {
    const ok = await t.cli(['create', 'vma', '--mode', 'vm', '--path', join(t.storage, 'vma'), '--user', 'alice', '--password-file', await t.passwordFile(PW), '--json']);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    await guestAccessCrashes(t, fake, 'vma');
  });
});
