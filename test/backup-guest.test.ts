/**
 * Backups of guest shares against the Proxmox VE simulator (requests validated against the real API
 * schema): an lxc share's data on btrfs is snapshotted on the host like a native share's, and the
 * container is backed up through vzdump at the same time (notes naming the data snapshot); the vzdump
 * hook, run by vzdump with the phases and environment Proxmox gives it, takes the data snapshot when
 * Proxmox's own backup job backs up the gateway's container; restore --file works on the host data,
 * restore --guest puts data and container back together.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { parse as parseYaml } from 'yaml';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FakeBackend } from './pve-sim/backend.ts';
import { startSimGateway, type SimGateway } from './pve-sim/gateway.ts';
import { ROOT, sh } from './helpers/gateway.ts';
import { btrfsLoop, type TestFs } from './helpers/fs.ts';
import { ApiTransport, PveClient } from '../src/pve/client.ts';
import { readBackupState } from '../src/backup/state.ts';
import { snapshottable } from '../src/core/snapshot.ts';
import type { Share } from '../src/core/share.ts';

const HOOK = join(ROOT, 'bin/pve-smbgateway-vzdump-hook');

describe('guest shares: data snapshot + vzdump, and the vzdump hook', () => {
  let t: SimGateway;
  let fake: FakeBackend;
  let fs: TestFs;
  let vmid: number;
  const PW = 'Guest-backup-pw1';
  const path = () => join(fs.mountpoint, 'gdata');
  const snaps = async () => (await t.cli(['snapshots', 'gdata', '--json'])).json!.data.map((s: { name: string }) => s.name) as string[];

  before(async () => {
    fake = new FakeBackend();
    t = await startSimGateway({ backend: fake });
    fs = await btrfsLoop(t.dir, join(t.storage, 'btrfs'));
    const tm = await t.cli(['template', 'create', '--mode', 'lxc', '--json']);
    assert.equal(tm.code, 0, tm.stdout + tm.stderr);
    const c = await t.cli(['create', 'gdata', '--mode', 'lxc', '--path', path(), '--user', 'alice', '--password-file', await t.passwordFile(PW), '--backup-storage', 'local', '--backup-prune', 'keep-last=10', '--json']);
    assert.equal(c.code, 0, c.stdout + c.stderr);
    vmid = c.json!.data.share.vmid;
  });

  it('the container sees the share\'s snapshots: the snapshot directory mounted read-only, shadow_copy2 in its smb.conf', async () => {
    const share = (await t.cli(['show', 'gdata', '--json'])).json!.data as Share;
    assert.equal(share.backing, `btrfs:${fs.mountpoint}`, 'the backing is recorded as for a native share');
    const t0 = snapshottable(share);
    assert.equal(t0?.kind, 'btrfs');
    const snapdir = (t0 as { snapdir: string }).snapdir;
    assert.equal(t.sim.guests.get(vmid)!.config.mp1, `${snapdir},mp=/srv/snapshots,backup=0,ro=1`);
    assert.deepEqual(await readdir(snapdir), [], 'made by create, before the first snapshot, so that it can be mounted');
    const conf = fake.state(vmid).files.get('/etc/samba/smbgateway.conf')!.data;
    assert.match(conf, /\[gdata\]\n(.*\n)*? {3}vfs objects = shadow_copy2\n(.*\n)*? {3}shadow:snapdir = \/srv\/snapshots\n {3}shadow:mountpoint = \/srv\/share\n {3}shadow:format = smbgw-%Y\.%m\.%d-%H\.%M\.%S\n/);
  });
  after(async () => {
    await fs?.cleanup();
    await t?.cleanup();
  });

  it('a create that fails later removes the snapshot directory it made (and nothing of another share\'s)', async () => {
    const r = await t.cli(['create', 'gfail', '--mode', 'lxc', '--path', join(fs.mountpoint, 'gfail'), '--user', 'alice', '--password-file', await t.passwordFile(PW), '--json'], { env: { SMBGW_FAIL_AT: 'save-config' } });
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.json!.error!.message, /injected failure at step save-config \(rolled back\)/);
    const snapRoot = join(fs.mountpoint, '.smbgateway-snapshots');
    const gdataDir = (snapshottable((await t.cli(['show', 'gdata', '--json'])).json!.data as Share) as { snapdir: string }).snapdir;
    assert.deepEqual(await readdir(snapRoot), [gdataDir.split('/').pop()], 'only gdata\'s snapshot directory is left');
  });

  it('backup snapshots the host-side data and backs up the container through vzdump, together', async () => {
    await writeFile(join(path(), 'doc.txt'), 'guest v1');
    const before = t.sim.requests.length;
    const b = await t.cli(['backup', 'gdata', '--json']);
    assert.equal(b.code, 0, b.stdout + b.stderr);
    const snap: string = b.json!.data.snapshot;
    assert.deepEqual(await snaps(), [snap]);
    const vz = t.sim.requests.slice(before).filter((r) => r.method === 'POST' && r.path === '/nodes/pve1/vzdump');
    assert.equal(vz.length, 1, 'one vzdump call');
    assert.equal(vz[0]!.params.vmid, String(vmid));
    assert.equal(vz[0]!.params.storage, 'local');
    assert.equal(vz[0]!.params.mode, 'snapshot');
    assert.equal(vz[0]!.params['notes-template'], `pve-smbgateway share gdata, data snapshot ${snap}`);
    const guest = b.json!.data.guest;
    assert.equal(guest.status, 'ok');
    assert.match(guest.archive, new RegExp(`/dump/vzdump-lxc-${vmid}-\\d{4}_\\d\\d_\\d\\d-\\d\\d_\\d\\d_\\d\\d\\.tar\\.zst$`));
    assert.equal(await readFile(`${guest.archive}.notes`, 'utf8'), `pve-smbgateway share gdata, data snapshot ${snap}\n`);
    const status = await t.cli(['status', 'gdata', '--json']);
    assert.equal(status.json!.data.backup.guest.archive, guest.archive);
    assert.equal(status.json!.data.backup.last_run.snapshot, snap);

    // restore --file on the host-side data
    await writeFile(join(path(), 'doc.txt'), 'guest v2');
    const r = await t.cli(['restore', 'gdata', '--snapshot', snap, '--file', 'doc.txt', '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(await readFile(join(path(), 'doc.txt'), 'utf8'), 'guest v1');
  });

  it('restore --guest puts the data and the container back from the snapshot and the archive taken together', async () => {
    const first = (await snaps())[0]!;
    const g = t.sim.guests.get(vmid)!;
    const memory = g.config.memory;
    g.config.memory = '999'; // the container was changed after the backup
    await writeFile(join(path(), 'doc.txt'), 'guest v3');
    const before = t.sim.requests.length;
    const r = await t.cli(['restore', 'gdata', '--snapshot', first, '--guest', '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.json!.data.guest_archive, new RegExp(`^local:backup/vzdump-lxc-${vmid}-[\\d_-]+\\.tar\\.zst$`));
    assert.equal(await readFile(join(path(), 'doc.txt'), 'utf8'), 'guest v1', 'the data is back');
    assert.equal(g.config.memory, memory, 'the container is back');
    assert.equal(g.status, 'running');
    const calls = t.sim.requests.slice(before).filter((x) => x.method === 'POST').map((x) => `${x.path}${x.params.restore ? ` restore ${x.params.ostemplate}` : ''}`);
    assert.deepEqual(calls, [`/nodes/pve1/lxc/${vmid}/status/stop`, `/nodes/pve1/lxc restore ${r.json!.data.guest_archive}`, `/nodes/pve1/lxc/${vmid}/status/start`]);
    // a snapshot no guest backup was taken with: refused, naming it
    const safety: string = r.json!.data.safety_snapshot;
    const none = await t.cli(['restore', 'gdata', '--snapshot', safety, '--guest', '--json']);
    assert.equal(none.json?.error?.field, 'snapshot', none.stdout);
    assert.match(none.json!.error!.message, /no backup of the guest was taken with snapshot/);
    // and the data alone: the guest is stopped meanwhile and started again
    const alone = await t.cli(['restore', 'gdata', '--snapshot', safety, '--json']);
    assert.equal(alone.code, 0, alone.stdout + alone.stderr);
    assert.equal(await readFile(join(path(), 'doc.txt'), 'utf8'), 'guest v3');
    assert.equal(g.status, 'running');
  });

  it('a vzdump storage without backup content: the data snapshot stays, the failure is reported', async () => {
    const u = await t.cli(['update', 'gdata', '--backup-storage', 'local-zfs', '--json']);
    assert.equal(u.code, 0, u.stdout + u.stderr);
    const b = await t.cli(['backup', 'gdata', '--json']);
    assert.equal(b.code, 1, b.stdout);
    assert.equal(b.json!.error!.field, 'backup_storage');
    assert.match(b.json!.error!.message, /the data snapshot smbgw-[\d.-]+ was taken, but the backup of the guest failed: .*does not support backups/);
    const st = await t.cli(['status', 'gdata', '--json']);
    assert.equal(st.json!.data.backup.last_run.status, 'error');
    assert.ok(st.json!.data.warnings.some((w: string) => /^backup: the last manual run failed/.test(w)), st.stdout);
    assert.equal((await t.cli(['update', 'gdata', '--backup-storage', 'local', '--json'])).code, 0);
  });

  it('the hook, run with the phases and environment vzdump gives it: job phases and other guests are left alone', async () => {
    const run = (args: string[], extra: Record<string, string> = {}) => sh(HOOK, args, { env: { ...t.env, ...extra } });
    const n = (await snaps()).length;
    for (const phase of ['job-init', 'job-start', 'job-end', 'job-abort']) {
      const r = await run([phase], { DUMPDIR: '/var/lib/vz/dump', STOREID: 'local' });
      assert.equal(r.code, 0, `${phase}: ${r.stdout}${r.stderr}`);
    }
    // another guest: nothing
    const other = await run(['backup-start', 'snapshot', '99999'], { VMTYPE: 'lxc', STOREID: 'local', HOSTNAME: 'other' });
    assert.equal(other.code, 0, other.stdout + other.stderr);
    assert.equal((await snaps()).length, n);
    // the gateway's container: a data snapshot at backup-start, the archive recorded at backup-end
    const start = await run(['backup-start', 'snapshot', String(vmid)], { VMTYPE: 'lxc', STOREID: 'local', DUMPDIR: '/var/lib/vz/dump', HOSTNAME: 'smb-gdata' });
    assert.equal(start.code, 0, start.stdout + start.stderr);
    assert.match(start.stdout, /share gdata: data snapshot smbgw-[\d.-]+ taken with the backup of guest \d+/);
    const after = await snaps();
    assert.equal(after.length, n + 1);
    const target = `/var/lib/vz/dump/vzdump-lxc-${vmid}-2030_01_01-00_00_00.tar.zst`;
    const end = await run(['backup-end', 'snapshot', String(vmid)], { VMTYPE: 'lxc', STOREID: 'local', DUMPDIR: '/var/lib/vz/dump', HOSTNAME: 'smb-gdata', TARGET: target });
    assert.equal(end.code, 0, end.stdout + end.stderr);
    const rec = (await readBackupState(t.settings.stateDir)).gdata!;
    assert.equal(rec.guest?.archive, target);
    assert.equal(rec.last_trigger, 'vzdump-hook');
    assert.equal(rec.last_snapshot, after.at(-1));
    for (const phase of ['log-end', 'pre-stop', 'pre-restart', 'post-restart']) {
      const r = await run([phase, 'stop', String(vmid)], { VMTYPE: 'lxc', STOREID: 'local', LOGFILE: '/var/lib/vz/dump/x.log' });
      assert.equal(r.code, 0, `${phase}: ${r.stdout}${r.stderr}`);
    }
    assert.equal((await snaps()).length, n + 1, 'only backup-start takes a snapshot');
    // what vzdump would be refused for: an unknown phase, a bad vmid
    const bad = await run(['backup-middle', 'snapshot', String(vmid)]);
    assert.equal(bad.code, 2);
    assert.match(bad.stdout, /got unknown phase 'backup-middle'/);
    const badId = await run(['backup-start', 'snapshot', 'x1']);
    assert.equal(badId.code, 2);
  });

  it('Proxmox\'s own backup job (vzdump with the hook in vzdump.conf) takes the data snapshot through the hook', async () => {
    t.sim.vzdumpConfScript = HOOK;
    t.sim.hookEnv = t.env;
    const n = (await snaps()).length;
    const c = new PveClient(new ApiTransport({ url: t.sim.url, fingerprint: t.sim.fingerprint, auth: { kind: 'ticket', username: 'root@pam', password: t.sim.rootPassword } }));
    const upid = await c.post<string>('/nodes/pve1/vzdump', { vmid: String(vmid), storage: 'local', mode: 'snapshot' });
    await c.waitTask(upid);
    const log = (await c.taskLog(upid)).join('\n');
    assert.match(log, /HOOK: backup-start snapshot \d+/);
    assert.match(log, /share gdata: data snapshot smbgw-[\d.-]+ taken with the backup of guest/);
    const archive = /creating vzdump archive '([^']+)'/.exec(log)![1]!;
    assert.equal((await snaps()).length, n + 1);
    const rec = (await readBackupState(t.settings.stateDir)).gdata!;
    assert.equal(rec.guest?.archive, archive);

    // The gateway's own run with the hook configured too: the hook sees the run and takes no second snapshot.
    const b = await t.cli(['backup', 'gdata', '--json']);
    assert.equal(b.code, 0, b.stdout + b.stderr);
    assert.equal((await snaps()).length, n + 2, 'one snapshot per run');
    const last = t.sim.tasks.get([...t.sim.tasks.keys()].filter((k) => k.includes(':vzdump:')).at(-1)!)!;
    assert.match(last.log.join('\n'), /the data snapshot is taken by the gateway's own run/);
    t.sim.vzdumpConfScript = undefined;
  });

  describe('vm share (virtiofs) on btrfs', () => {
    let vm: number;
    const vpath = () => join(fs.mountpoint, 'vdata');
    let snapdir = '';
    before(async () => {
      const tm = await t.cli(['template', 'create', '--mode', 'vm', '--json']);
      assert.equal(tm.code, 0, tm.stdout + tm.stderr);
      const c = await t.cli(['create', 'vdata', '--mode', 'vm', '--path', vpath(), '--user', 'bob', '--password-file', await t.passwordFile(PW), '--backup-storage', 'local', '--json']);
      assert.equal(c.code, 0, c.stdout + c.stderr);
      vm = c.json!.data.share.vmid;
      snapdir = (snapshottable(c.json!.data.share as Share) as { snapdir: string }).snapdir;
    });

    it('the VM gets the snapshot directory as a second, read-only virtiofs mount and shadow_copy2 in its smb.conf (testparm)', async () => {
      const g = t.sim.guests.get(vm)!;
      assert.equal(g.config.virtiofs1, `dirid=smbgw-${vm}-snapshots,cache=auto,expose-acl=1`);
      assert.deepEqual(t.sim.mappings.get(`smbgw-${vm}-snapshots`)?.map, [`node=pve1,path=${snapdir}`]);
      const ud = parseYaml(await readFile(join(t.sim.storagePath('local')!, 'snippets', `smbgw-${vm}-user.yaml`), 'utf8')) as { mounts: string[][]; write_files: { path: string; content: string }[] };
      assert.deepEqual(ud.mounts[1], [`smbgw-${vm}-snapshots`, '/srv/snapshots', 'virtiofs', 'ro,nofail', '0', '0']);
      const conf = ud.write_files.find((f) => f.path === '/etc/samba/smbgateway.conf')!.content;
      const dir = await mkdtemp(join(tmpdir(), 'smbgw-bg-vmconf-'));
      try {
        await writeFile(join(dir, 'smb.conf'), conf);
        const tp = await sh('testparm', ['-s', '--suppress-prompt', join(dir, 'smb.conf')]);
        assert.equal(tp.code, 0, tp.stderr);
        const section = tp.stdout.split('[vdata]\n')[1]!.split('\n').map((l) => l.trim());
        for (const l of ['path = /srv/share', 'vfs objects = shadow_copy2', 'shadow:snapdir = /srv/snapshots', 'shadow:mountpoint = /srv/share', 'shadow:format = smbgw-%Y.%m.%d-%H.%M.%S', 'shadow:localtime = no']) {
          assert.ok(section.includes(l), `testparm's [vdata] has ${l}: ${tp.stdout}`);
        }
      } finally { await rm(dir, { recursive: true, force: true }); }
    });

    it('backup and restore --guest: the data and the VM back from the snapshot and the archive taken together', async () => {
      await writeFile(join(vpath(), 'doc.txt'), 'vm v1');
      const b = await t.cli(['backup', 'vdata', '--json']);
      assert.equal(b.code, 0, b.stdout + b.stderr);
      const snap: string = b.json!.data.snapshot;
      assert.ok((await readdir(snapdir)).includes(snap), 'the snapshot is in the directory the VM mounts');
      assert.match(b.json!.data.guest.archive, new RegExp(`/dump/vzdump-qemu-${vm}-[\\d_-]+\\.vma\\.zst$`));
      const g = t.sim.guests.get(vm)!;
      const memory = g.config.memory;
      g.config.memory = '4096'; // the VM was changed after the backup
      await writeFile(join(vpath(), 'doc.txt'), 'vm v2');
      const before = t.sim.requests.length;
      const r = await t.cli(['restore', 'vdata', '--snapshot', snap, '--guest', '--json']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.json!.data.guest_archive, new RegExp(`^local:backup/vzdump-qemu-${vm}-[\\d_-]+\\.vma\\.zst$`));
      assert.equal(await readFile(join(vpath(), 'doc.txt'), 'utf8'), 'vm v1', 'the data is back');
      assert.equal(g.config.memory, memory, 'the VM is back');
      assert.equal(g.status, 'running');
      const posts = t.sim.requests.slice(before).filter((x) => x.method === 'POST');
      assert.deepEqual(posts.map((x) => `${x.path}${x.params.archive ? ` archive ${x.params.archive} force ${x.params.force}` : ''}`),
        [`/nodes/pve1/qemu/${vm}/status/stop`, `/nodes/pve1/qemu archive ${r.json!.data.guest_archive} force 1`, `/nodes/pve1/qemu/${vm}/status/start`]);
    });

    after(async () => {
      const d = await t.cli(['delete', 'vdata', '--json']);
      assert.equal(d.code, 0, d.stdout + d.stderr);
      assert.equal(t.sim.mappings.has(`smbgw-${vm}-snapshots`), false, 'the snapshot mapping goes with the share');
    });
  });
});
