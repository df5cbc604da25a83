/**
 * lxc mode end to end with a real container: the simulator backed by real unprivileged LXC (test/guests:
 * cached Debian rootfs with Samba, Proxmox idmap, the bind mount real, the network in a namespace the
 * test creates). The gateway's CLI builds the template and creates the share; a client outside the
 * container writes and reads files over SMB; the bytes land in the host path owned by 100000 + the
 * user's uid, as docs/proxmox.md says. Delete removes the container.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { realBackend } from './guests/pve-backend.ts';
import { startSimGateway } from './pve-sim/gateway.ts';

test('lxc mode on a real container: SMB write/read from outside, bytes in the host path as uid 101000, delete removes it', { timeout: 600_000 }, async (t) => {
  const backend = await realBackend(t);
  const g = await startSimGateway({ backend, taskMs: 5 });
  t.after(() => g.cleanup());
  const figures: Record<string, number> = {};
  const timed = async <T>(name: string, fn: () => Promise<T>): Promise<T> => { const t0 = Date.now(); try { return await fn(); } finally { figures[name] = (Date.now() - t0) / 1000; } };

  const tpl = await timed('templateCreateSeconds', () => g.cli(['template', 'create', '--mode', 'lxc', '--json']));
  assert.equal(tpl.code, 0, tpl.stdout + tpl.stderr);

  const pw = `Pw-${randomBytes(6).toString('hex')}`;
  const pwf = join(g.dir, 'pw');
  await writeFile(pwf, pw + '\n', { mode: 0o600 });
  const path = join(g.storage, 'docs');
  const r = await timed('createSeconds', () => g.cli(['create', 'docs', '--mode', 'lxc', '--path', path, '--user', 'alice', '--password-file', pwf, '--json']));
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const share = r.json!.data.share;
  assert.ok(r.json!.data.steps.includes('health-check'), 'the gateway checked SMB from the host side');
  const uid = Number(share.guest_uids[0].split(':')[1]);

  // A client outside the container, on the bridge's side of the network namespace.
  const net = backend.bridgeNetwork('vmbr0')!;
  const work = await mkdtemp(join(tmpdir(), 'smbgw-lxcreal-'));
  t.after(() => rm(work, { recursive: true, force: true }));
  const auth = join(work, 'auth');
  await writeFile(auth, `username = alice\npassword = ${pw}\n`, { mode: 0o600 });
  const payload = randomBytes(256 * 1024);
  await writeFile(join(work, 'up.bin'), payload);
  const smb = (cmd: string) => net.exec(['smbclient', '-s', '/dev/null', `//${share.guest_ip}/docs`, '-A', auth, '-c', cmd], { allowFail: true });
  const put = await smb(`lcd ${work}; put up.bin report.bin; mkdir sub`);
  assert.equal(put.code, 0, put.stdout + put.stderr);

  // On the host: the same bytes, owned by the shifted ids (container uid N = host uid 100000+N).
  assert.deepEqual(await readFile(join(path, 'report.bin')), payload);
  const st = await stat(join(path, 'report.bin'));
  assert.equal(st.uid, 100000 + uid);
  assert.equal(st.gid, 100000 + uid);
  assert.equal((await stat(join(path, 'sub'))).uid, 100000 + uid);

  // Read back what the host wrote.
  const hostBytes = randomBytes(4096);
  await writeFile(join(path, 'from-host.bin'), hostBytes);
  const get = await smb(`lcd ${work}; get from-host.bin down.bin`);
  assert.equal(get.code, 0, get.stdout + get.stderr);
  assert.deepEqual(await readFile(join(work, 'down.bin')), hostBytes);
  // Memory of the container as the gateway configured it (cgroup usage minus page cache, as Proxmox
  // shows it): Samba idle, then with 10 clients connected (interactive smbclient sessions held open).
  const container = backend.container(share.vmid)!;
  const mib = (b: number) => Math.round((b / 2 ** 20) * 10) / 10;
  await new Promise((res) => setTimeout(res, 1500));
  const idle = await container.memory();
  const clients: ChildProcess[] = [];
  try {
    for (let i = 0; i < 10; i++) {
      const c = spawn('ip', ['netns', 'exec', net.ns, 'smbclient', '-s', '/dev/null', `//${share.guest_ip}/docs`, '-A', auth], { stdio: ['pipe', 'pipe', 'ignore'] });
      clients.push(c);
    }
    // Wait until smbd inside counts the 10 sessions.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const st = await container.exec(['smbstatus', '--json'], { allowFail: true });
      let n = 0;
      try { n = Object.keys((JSON.parse(st.stdout) as { sessions?: object }).sessions ?? {}).length; } catch { /* not yet */ }
      if (n >= 10) break;
      if (Date.now() > deadline) throw new Error(`only ${n} SMB sessions after 60 s`);
      await new Promise((res) => setTimeout(res, 250));
    }
    await new Promise((res) => setTimeout(res, 1000));
    const busy = await container.memory();
    figures.memIdleMiB = mib(idle.used);
    figures.mem10ClientsMiB = mib(busy.used);
    assert.ok(busy.used > idle.used, 'ten sessions cost memory');
    assert.ok(busy.limit === undefined || busy.limit <= 128 * 2 ** 20, 'the 128 MiB default limit is in force');
  } finally {
    for (const c of clients) { c.stdin!.end(); c.kill(); }
  }

  // A wrong password is refused.
  await writeFile(auth, 'username = alice\npassword = wrong-password\n', { mode: 0o600 });
  assert.match((await smb('ls')).stdout, /NT_STATUS_LOGON_FAILURE/);

  const d = await timed('deleteSeconds', () => g.cli(['delete', 'docs', '--json']));
  assert.equal(d.code, 0, d.stdout + d.stderr);
  assert.equal(g.sim.guests.has(share.vmid), false);
  await assert.rejects(stat(join(backend.dir, 'ct', String(share.vmid))), 'the container is gone');
  assert.deepEqual(await readFile(join(path, 'report.bin')), payload, 'data stays');
  t.diagnostic(`lxc real-guest figures: ${JSON.stringify(figures)}`);
});
