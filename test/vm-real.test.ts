/**
 * vm mode end to end with a real VM under QEMU/TCG (test/guests: cached Debian image with cloud-init,
 * Samba and the guest agent). The gateway's CLI builds the vm template (first boot with the setup
 * snippet, power-off, convert) and creates the share: a linked clone booted with the gateway's
 * cloud-init snippet and the share path over virtiofs through the directory mapping. A client outside
 * the VM writes and reads over SMB (QEMU forwards the guest's port 445 to 127.0.0.1); the bytes land in
 * the host path with the uid the user has inside. The data is on btrfs: a snapshot taken on the host
 * is a Previous Version inside the VM (the snapshot directory over a second, read-only virtiofs
 * mount). An access change inside the VM through the guest agent (one user added, one removed) is
 * proven over SMB. Delete removes the VM, the snippet and the mappings.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { realBackend } from './guests/pve-backend.ts';
import { sh } from './helpers/gateway.ts';
import { startSimGateway } from './pve-sim/gateway.ts';
import { btrfsLoop } from './helpers/fs.ts';

test('vm mode on a real QEMU/TCG VM: template, share over virtiofs, SMB write/read from outside, access change through the guest agent, delete', { timeout: 1_200_000 }, async (t) => {
  const backend = await realBackend(t, { vm: true });
  const g = await startSimGateway({ backend, transport: 'token', taskMs: 5, taskTimeout: 900 });
  const fs = await btrfsLoop(g.dir, join(g.storage, 'btrfs')).catch(async (e) => { await g.cleanup(); throw e; });
  // In this order: the VM (virtiofsd holds the data) goes first, then the filesystem, then the rest.
  t.after(async () => {
    await g.cli(['delete', 'media', '--json']);
    await fs.cleanup();
    await g.cleanup();
  });
  const figures: Record<string, number> = {};
  const timed = async <T>(name: string, fn: () => Promise<T>): Promise<T> => { const t0 = Date.now(); try { return await fn(); } finally { figures[name] = (Date.now() - t0) / 1000; } };

  const tpl = await timed('templateCreateSeconds', () => g.cli(['template', 'create', '--mode', 'vm', '--json']));
  assert.equal(tpl.code, 0, tpl.stdout + tpl.stderr);

  const pw = `Pw-${randomBytes(6).toString('hex')}`;
  const pwf = join(g.dir, 'pw');
  await writeFile(pwf, pw + '\n', { mode: 0o600 });
  const path = join(fs.mountpoint, 'media');
  const r = await timed('createSeconds', () => g.cli(['create', 'media', '--mode', 'vm', '--path', path, '--user', 'carol', '--password-file', pwf, '--vm-memory', '512', '--vm-cores', '1', '--json']));
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const share = r.json!.data.share;
  assert.equal(share.vm_attach, 'virtiofs');
  assert.ok(r.json!.data.steps.includes('health-check'));
  const uid = Number(share.guest_uids[0].split(':')[1]);
  const port = backend.vmPortFor(share.guest_ip);
  assert.ok(port, `no forwarded SMB port for ${share.guest_ip}`);

  const work = await mkdtemp(join(tmpdir(), 'smbgw-vmreal-'));
  t.after(() => rm(work, { recursive: true, force: true }));
  const auth = join(work, 'auth');
  await writeFile(auth, `username = carol\npassword = ${pw}\n`, { mode: 0o600 });
  const payload = randomBytes(128 * 1024);
  await writeFile(join(work, 'up.bin'), payload);
  const smb = (cmd: string) => sh('smbclient', ['-s', '/dev/null', '-p', String(port), '//127.0.0.1/media', '-A', auth, '-c', cmd]);
  const put = await smb(`lcd ${work}; put up.bin video.bin`);
  assert.equal(put.code, 0, put.stdout + put.stderr);
  assert.deepEqual(await readFile(join(path, 'video.bin')), payload);
  assert.equal((await stat(join(path, 'video.bin'))).uid, uid, 'virtiofs passes the uid through unchanged');
  const hostBytes = randomBytes(4096);
  await writeFile(join(path, 'from-host.bin'), hostBytes);
  const get = await smb(`lcd ${work}; get from-host.bin down.bin`);
  assert.equal(get.code, 0, get.stdout + get.stderr);
  assert.deepEqual(await readFile(join(work, 'down.bin')), hostBytes);

  // Previous Versions inside the VM: v1, a snapshot on the host, v2; the VM's Samba lists the snapshot.
  await writeFile(join(work, 'v.txt'), 'vm v1');
  assert.equal((await smb(`lcd ${work}; put v.txt doc.txt`)).code, 0);
  const b = await g.cli(['backup', 'media', '--json']);
  assert.equal(b.code, 0, b.stdout + b.stderr);
  const snap: string = b.json!.data.snapshot;
  await writeFile(join(work, 'v.txt'), 'vm v2');
  assert.equal((await smb(`lcd ${work}; put v.txt doc.txt`)).code, 0);
  const info = await smb('allinfo doc.txt');
  const token = /@GMT-[\d.-]+/.exec(info.stdout)?.[0];
  assert.equal(token, `@GMT-${snap.slice('smbgw-'.length)}`, `the VM lists the snapshot: ${info.stdout}${info.stderr}`);
  const old = await smb(`lcd ${work}; get ${token}\\doc.txt old.txt`);
  assert.equal(old.code, 0, old.stdout + old.stderr);
  assert.equal(await readFile(join(work, 'old.txt'), 'utf8'), 'vm v1', 'v1 through Previous Versions inside the VM');

  // Day two inside the VM through the guest agent: dave added (account, Samba password on the agent's
  // stdin, smb.conf written and reloaded), carol removed; dave writes over SMB, carol is refused.
  const pw2 = `Pw-${randomBytes(6).toString('hex')}`;
  const pwf2 = join(g.dir, 'pw2');
  await writeFile(pwf2, pw2 + '\n', { mode: 0o600 });
  const acc = await timed('accessSeconds', () => g.cli(['access', 'media', '--add-user', 'dave', '--remove-user', 'carol', '--password-file', pwf2, '--json']));
  assert.equal(acc.code, 0, acc.stdout + acc.stderr);
  const daveUid = Number(acc.json!.data.share.guest_uids.find((e: string) => e.startsWith('dave:')).split(':')[1]);
  const auth2 = join(work, 'auth2');
  await writeFile(auth2, `username = dave\npassword = ${pw2}\n`, { mode: 0o600 });
  const daveBytes = randomBytes(8192);
  await writeFile(join(work, 'dave.bin'), daveBytes);
  const davePut = await sh('smbclient', ['-s', '/dev/null', '-p', String(port), '//127.0.0.1/media', '-A', auth2, '-c', `lcd ${work}; put dave.bin dave.bin`]);
  assert.equal(davePut.code, 0, davePut.stdout + davePut.stderr);
  assert.deepEqual(await readFile(join(path, 'dave.bin')), daveBytes);
  assert.equal((await stat(join(path, 'dave.bin'))).uid, daveUid);
  const carol = await smb('ls');
  assert.notEqual(carol.code, 0, 'carol is refused after her removal');
  assert.match(carol.stdout + carol.stderr, /NT_STATUS_LOGON_FAILURE|NT_STATUS_ACCESS_DENIED/);

  const d = await timed('deleteSeconds', () => g.cli(['delete', 'media', '--json']));
  assert.equal(d.code, 0, d.stdout + d.stderr);
  assert.equal(g.sim.guests.has(share.vmid), false);
  assert.equal(g.sim.mappings.size, 0);
  assert.deepEqual(await readdir(join(g.sim.storagePath('local')!, 'snippets')), []);
  assert.deepEqual(await readFile(join(path, 'video.bin')), payload, 'data stays');
  t.diagnostic(`vm real-guest figures: ${JSON.stringify(figures)}`);
});
