/**
 * Backup and restore of an lxc share's data on a real container (test/guests: real unprivileged LXC
 * behind the simulator): the data on a btrfs subvolume is bind-mounted into the container; a client
 * outside writes v1 over SMB, `backup` snapshots it on the host, v2 is written, then `restore --file`
 * and a whole-share restore (the container is stopped while its bind-mounted data is swapped, then
 * started again) give v1 back to the client over SMB. Previous Versions inside the container: the
 * share's snapshot directory is mounted read-only into it, and Samba there lists the snapshot as an
 * @GMT token whose file is v1.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { realBackend } from './guests/pve-backend.ts';
import { startSimGateway } from './pve-sim/gateway.ts';
import { btrfsLoop } from './helpers/fs.ts';

test('lxc share on a real container: Previous Versions inside the container, restore --file and a whole-share restore give v1 back over SMB', { timeout: 600_000 }, async (t) => {
  const backend = await realBackend(t);
  const g = await startSimGateway({ backend, taskMs: 5 });
  const fs = await btrfsLoop(g.dir, join(g.storage, 'btrfs')).catch(async (e) => { await g.cleanup(); throw e; });
  // In this order: the container (holding the bind mount) goes first, then the filesystem, then the rest.
  t.after(async () => {
    await g.cli(['delete', 'docs', '--json']);
    await fs.cleanup();
    await g.cleanup();
  });
  const tpl = await g.cli(['template', 'create', '--mode', 'lxc', '--json']);
  assert.equal(tpl.code, 0, tpl.stdout + tpl.stderr);
  const pw = `Pw-${randomBytes(6).toString('hex')}`;
  const pwf = join(g.dir, 'pw');
  await writeFile(pwf, pw + '\n', { mode: 0o600 });
  const path = join(fs.mountpoint, 'docs');
  const r = await g.cli(['create', 'docs', '--mode', 'lxc', '--path', path, '--user', 'alice', '--password-file', pwf, '--json']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const share = r.json!.data.share;

  const net = backend.bridgeNetwork('vmbr0')!;
  const work = await mkdtemp(join(tmpdir(), 'smbgw-lxcbackup-'));
  t.after(() => rm(work, { recursive: true, force: true }));
  const auth = join(work, 'auth');
  await writeFile(auth, `username = alice\npassword = ${pw}\n`, { mode: 0o600 });
  const smb = (cmd: string) => net.exec(['smbclient', '-s', '/dev/null', `//${share.guest_ip}/docs`, '-A', auth, '-c', cmd], { allowFail: true });
  const put = async (text: string) => {
    await writeFile(join(work, 'up.txt'), text);
    const p = await smb(`lcd ${work}; put up.txt doc.txt`);
    assert.equal(p.code, 0, p.stdout + p.stderr);
  };
  const get = async () => {
    const x = await smb(`lcd ${work}; get doc.txt down.txt`);
    assert.equal(x.code, 0, x.stdout + x.stderr);
    return readFile(join(work, 'down.txt'), 'utf8');
  };

  await put('lxc v1');
  const b = await g.cli(['backup', 'docs', '--json']);
  assert.equal(b.code, 0, b.stdout + b.stderr);
  const snap: string = b.json!.data.snapshot;
  await put('lxc v2');
  assert.equal(await get(), 'lxc v2');

  // Previous Versions, served by Samba inside the container from the read-only snapshot mount.
  const info = await smb('allinfo doc.txt');
  const token = /@GMT-[\d.-]+/.exec(info.stdout)?.[0];
  assert.ok(token, `no previous version listed inside the container: ${info.stdout}${info.stderr}`);
  assert.equal(token, `@GMT-${snap.slice('smbgw-'.length)}`);
  const old = await smb(`lcd ${work}; get ${token}\\doc.txt old.txt`);
  assert.equal(old.code, 0, old.stdout + old.stderr);
  assert.equal(await readFile(join(work, 'old.txt'), 'utf8'), 'lxc v1', 'v1 through Previous Versions');
  // read-only: the client cannot change the snapshot through the token
  await smb(`lcd ${work}; put up.txt ${token}\\doc.txt`);
  const again = await smb(`lcd ${work}; get ${token}\\doc.txt old.txt`);
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.equal(await readFile(join(work, 'old.txt'), 'utf8'), 'lxc v1', 'a write into a previous version does not reach it');
  assert.equal(await get(), 'lxc v2');

  const f = await g.cli(['restore', 'docs', '--snapshot', snap, '--file', 'doc.txt', '--json']);
  assert.equal(f.code, 0, f.stdout + f.stderr);
  assert.equal(await get(), 'lxc v1', 'restore --file, seen by the client through the bind mount');

  await put('lxc v3');
  const w = await g.cli(['restore', 'docs', '--snapshot', snap, '--json']);
  assert.equal(w.code, 0, w.stdout + w.stderr);
  assert.equal(g.sim.guests.get(share.vmid)!.status, 'running', 'the container is running again');
  // the restarted container serves the restored subvolume
  let text = '';
  for (let i = 0; i < 60; i++) {
    const x = await smb(`lcd ${work}; get doc.txt down.txt`);
    if (x.code === 0) { text = await readFile(join(work, 'down.txt'), 'utf8'); break; }
    await new Promise((res) => setTimeout(res, 1000));
  }
  assert.equal(text, 'lxc v1', 'whole-share restore, seen by the client after the container restarted');
});
