/**
 * Scheduled backups on real components: btrfs on a loop device, a real smbd, the real daemon with an
 * injected clock. A schedule takes the snapshot (a task with a log), Windows' Previous Versions and
 * `restore --file` give the old version back over SMB, a run missed during downtime is caught up once,
 * the default schedule reaches shares with backup_enabled and only those, a run that cannot start
 * (another run of the share holds it) fails visibly on `status` and in /metrics.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDaemon, type Daemon } from '../src/api/daemon.ts';
import { readBackupState, withShareRunLock } from '../src/backup/state.ts';
import { startGateway, waitFor, type TestGateway } from './helpers/gateway.ts';
import { btrfsLoop, type TestFs } from './helpers/fs.ts';
import { call } from './helpers/https.ts';

const T = (s: string) => Date.parse(`${s.replace(' ', 'T')}Z`);

describe('scheduled backups (btrfs, real smbd, the daemon with an injected clock)', () => {
  let g: TestGateway;
  let fs: TestFs;
  let d: Daemon | undefined;
  let alice: string;
  let pwFile: string;
  let token: string;
  const pw = 'Sched-pw-1234';
  // 2030-01-07 is a Monday.
  let clock = T('2030-01-07 01:50:00');
  const settings = () => ({ ...g.settings, backupSchedule: 'hourly' });
  const startD = async () => {
    d = await startDaemon({ settings: settings(), config: { listen: '127.0.0.1', port: 0, interval: 3600, tick: 3600 }, clock: () => clock, backupTickMs: 100, backupUtc: true });
  };
  const state = async (share: string) => (await readBackupState(g.settings.stateDir))[share] ?? {};
  const snaps = async (share: string): Promise<string[]> => {
    const r = await g.cli(['snapshots', share, '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return r.json!.data.map((s: { name: string }) => s.name);
  };
  const put = (share: string, text: string) => g.putText(share, alice, pw, 'doc.txt', text);
  const get = (share: string, remote = 'doc.txt') => g.getText(share, alice, pw, remote);
  const metrics = async () => {
    const ca = await readFile(join(g.settings.stateDir, 'tls', 'smbgatewayd.pem'));
    const r = await call(d!.api.url, ca, 'GET', '/metrics', { headers: { authorization: token } });
    assert.equal(r.status, 200, r.text);
    return r.text;
  };
  const metric = (text: string, name: string, share: string) => {
    const m = new RegExp(`^${name}\\{share="${share}",[^}]*\\} (\\S+)$`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  };

  before(async () => {
    g = await startGateway();
    alice = g.user('alice');
    pwFile = await g.passwordFile(pw);
    fs = await btrfsLoop(g.dir, join(g.storage, 'btrfs'));
    const tk = await g.cli(['token', 'create', 'prom', '--privs', 'Datastore.Audit', '--json']);
    assert.equal(tk.code, 0, tk.stdout);
    token = tk.json!.data.authorization;
    await startD();
  });
  after(async () => {
    await d?.stop();
    await fs?.cleanup();
    await g?.cleanup();
  });

  it('a schedule takes the snapshot; v1 comes back over SMB through Previous Versions and through restore --file', async () => {
    const mk = (name: string, extra: string[]) => g.cli(['create', name, '--mode', 'native', '--path', join(fs.mountpoint, name), '--user', alice, '--password-file', pwFile, ...extra, '--json']);
    let c = await mk('sched', ['--backup-schedule', 'mon..fri 02:00', '--backup-prune', 'keep-last=2']);
    assert.equal(c.code, 0, c.stdout + c.stderr);
    c = await mk('dflt', []);
    assert.equal(c.code, 0, c.stdout + c.stderr);
    c = await mk('off', ['--backup-enabled', '0']);
    assert.equal(c.code, 0, c.stdout + c.stderr);
    // a schedule with backups off is refused, naming the field
    const bad = await g.cli(['update', 'off', '--backup-schedule', 'daily', '--json']);
    assert.equal(bad.json?.error?.field, 'backup_schedule', bad.stdout);
    const badSyntax = await g.cli(['update', 'sched', '--backup-schedule', 'mon..fri 25:00', '--json']);
    assert.equal(badSyntax.json?.error?.field, 'backup_schedule');
    assert.match(badSyntax.json!.error!.message, /hour 25 is out of range/);

    await put('sched', 'version 1');
    // The scheduler notes the new schedules at 01:50: nothing is due yet.
    await waitFor(async () => (await state('sched')).since !== undefined && (await state('dflt')).since !== undefined, 10_000, 'the scheduler to see the shares');
    assert.deepEqual(await snaps('sched'), []);
    assert.equal((await state('off')).since, undefined, 'backup_enabled 0: not scheduled by the default');

    clock = T('2030-01-07 02:00:30');
    await waitFor(async () => (await state('sched')).last_status === 'ok' && (await state('dflt')).last_status === 'ok', 30_000, 'the 02:00 runs');
    const first = await snaps('sched');
    assert.deepEqual(first, ['smbgw-2030.01.07-02.00.30']);
    assert.equal((await snaps('dflt')).length, 1, 'the default schedule (hourly) reached the share without its own');
    assert.deepEqual(await snaps('off'), []);
    // each run is a task with its log
    const task = d!.api.tasks.list().find((t) => t.type === 'backup' && t.id === 'sched');
    assert.ok(task, 'no backup task');
    await d!.api.tasks.wait(task.upid);
    assert.equal(task.exitstatus, 'OK');
    const log = task.lines.map((l) => l.t).join('\n');
    assert.match(log, /scheduled backup of sched \(mon\.\.fri 02:00\)/);
    assert.match(log, /snapshot smbgw-2030\.01\.07-02\.00\.30 of /);

    await put('sched', 'version 2');
    // Previous Versions: the @GMT token of the snapshot, then the old file.
    const info = await g.smb('sched', alice, pw, 'allinfo doc.txt');
    const tokenGmt = /@GMT-2030\.01\.07-02\.00\.30/.exec(info.stdout)?.[0];
    assert.ok(tokenGmt, `the scheduled snapshot is not a previous version: ${info.stdout}`);
    assert.equal(await get('sched', `${tokenGmt}\\doc.txt`), 'version 1');
    assert.equal(await get('sched'), 'version 2');

    // restore --file: only that file comes back, the rest of the share stays as it is
    await writeFile(join(fs.mountpoint, 'sched', 'other.txt'), 'written after the snapshot');
    const r = await g.cli(['restore', 'sched', '--snapshot', first[0]!, '--file', 'doc.txt', '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.json!.data.file, 'doc.txt');
    assert.equal(await get('sched'), 'version 1');
    assert.equal(await readFile(join(fs.mountpoint, 'sched', 'other.txt'), 'utf8'), 'written after the snapshot');
    // the version it replaced is kept as a snapshot
    const safety: string = r.json!.data.safety_snapshot;
    assert.ok((await snaps('sched')).includes(safety));
    for (const evil of ['../dflt/doc.txt', '/etc/passwd/../../x', 'nosuch.txt']) {
      const e = await g.cli(['restore', 'sched', '--snapshot', first[0]!, '--file', evil, '--json']);
      assert.equal(e.json?.error?.field, 'file', `${evil}: ${e.stdout}`);
    }

    const st = await g.cli(['status', 'sched', '--json']);
    const b = st.json!.data.backup;
    assert.equal(b.schedule, 'mon..fri 02:00');
    assert.equal(b.retention, 'keep-last=2');
    assert.equal(b.last_success, '2030-01-07T02:00:30.000Z');
    assert.equal(b.last_run.status, 'ok');
  });

  it('catches up a run missed while the daemon was down, once, and applies the retention', async () => {
    await d!.stop();
    d = undefined;
    const before = await state('sched');
    // Down from Monday until Thursday 05:00: the runs of Tuesday, Wednesday and Thursday 02:00 were missed.
    clock = T('2030-01-10 05:00:10');
    await startD();
    await waitFor(async () => (await state('sched')).last_start === T('2030-01-10 05:00:10') / 1000 && (await state('sched')).last_status === 'ok', 30_000, 'the catch-up run');
    await new Promise((r) => setTimeout(r, 1000)); // ten more ticks: no second run
    const after = await state('sched');
    assert.equal(after.runs_total, before.runs_total! + 1, 'exactly one catch-up run');
    // keep-last=2: the catch-up and the Monday snapshot stay; restore's safety snapshot (older, real clock) goes
    assert.deepEqual(await snaps('sched'), ['smbgw-2030.01.07-02.00.30', 'smbgw-2030.01.10-05.00.10']);
    const st = await g.cli(['status', 'sched', '--json']);
    // the next run counts from the catch-up (status reads schedules in the host's local time: UTC here)
    assert.equal(st.json!.data.backup.next_run, new Date(2030, 0, 11, 2, 0, 0).toISOString());
  });

  it('never runs one share twice at once; a run that fails shows on status and in the metrics', async () => {
    const okBefore = await state('sched');
    await withShareRunLock(g.settings.lockDir, 'sched', 'a test holding the share', async () => {
      // a manual backup while a run holds the share is refused
      const b = await g.cli(['backup', 'sched', '--json']);
      assert.equal(b.json?.error?.code, 'locked', b.stdout);
      assert.match(b.json!.error!.message, /a backup of share "sched" is already running \(a test holding the share\)/);
      // the schedule's Friday run comes while the share is held: it fails
      clock = T('2030-01-11 02:00:05');
      await waitFor(async () => (await state('sched')).last_status === 'error', 30_000, 'the failed run');
    });
    const st = await g.cli(['status', 'sched', '--json']);
    const b = st.json!.data.backup;
    assert.equal(b.last_run.status, 'error');
    assert.match(b.last_run.error, /already running/);
    assert.equal(b.last_success, new Date(okBefore.last_success! * 1000).toISOString(), 'the last success is still the earlier one');
    assert.ok(st.json!.data.warnings.some((w: string) => /^backup: the last schedule run failed/.test(w)), st.stdout);
    const task = d!.api.tasks.list().find((t) => t.type === 'backup' && t.id === 'sched' && t.status === 'stopped' && t.exitstatus !== 'OK');
    assert.ok(task, 'the failed run is a failed task');
    assert.match(task.exitstatus!, /already running/);

    const text = await metrics();
    assert.equal(metric(text, 'smbgateway_backup_last_run_success', 'sched'), 0);
    assert.equal(metric(text, 'smbgateway_backup_last_success_timestamp_seconds', 'sched'), okBefore.last_success);
    assert.equal(metric(text, 'smbgateway_backup_failures_total', 'sched'), 1);
    assert.equal(metric(text, 'smbgateway_backup_last_run_success', 'dflt'), 1);
    assert.equal(metric(text, 'smbgateway_backup_next_run_timestamp_seconds', 'sched'), new Date(2030, 0, 14, 2, 0, 0).getTime() / 1000, 'next: Monday 02:00');
    assert.equal(metric(text, 'smbgateway_backup_last_run_success', 'off'), undefined);
    const promtool = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(promtool.status, 0, promtool.stdout + promtool.stderr);
  });

  it('a whole-share restore closes the clients\' connections before it touches the data', async () => {
    const snap = (await snaps('dflt'))[0]!;
    const h = await g.holdSession('dflt', alice, pw);
    try {
      h.send('ls');
      await waitFor(() => /blocks of size/.test(h.output()), 15_000, 'the session to list the share');
      // The restore fails at its first step on the data (and is rolled back): the clients were closed already.
      const r = await g.cli(['restore', 'dflt', '--snapshot', snap, '--json'], { env: { SMBGW_FAIL_AT: 'set-aside-live' } });
      assert.equal(r.code, 1, r.stdout);
      const mark = h.output().length;
      h.send('ls');
      await waitFor(() => /NT_STATUS_\w+/.test(h.output().slice(mark)), 15_000, 'the held session to be told');
      assert.match(h.output().slice(mark), /NT_STATUS_(NETWORK_NAME_DELETED|CONNECTION_DISCONNECTED|INVALID_NETWORK_RESPONSE|USER_SESSION_DELETED)/);
    } finally {
      h.close(); // else smbd stays in the share and the filesystem cannot be unmounted
    }
  });
});
