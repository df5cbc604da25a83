/**
 * Per-share I/O in lxc mode, on real containers: the gateway creates two lxc shares (each its own
 * unprivileged container, test/guests behind the PVE simulator); a client outside the containers writes
 * 20 MiB to one of them over SMB and reads it back. The gateway's Collector, in this process, finds each
 * share's container from its `vmid` (cgroup found through `lxc-info`, as src/monitor/lxc.ts does on a
 * node whose containers are not named by vmid) and must show the 20 MiB as that share's written and read
 * bytes and throughput (within 10 %), the other share at zero, and the session held open as a connection
 * (`pct exec <vmid> -- smbstatus --json`).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { makeGateway } from '../src/provision/context.ts';
import { execRunner, type Runner } from '../src/core/exec.ts';
import type { Share } from '../src/core/share.ts';
import { Collector } from '../src/monitor/collector.ts';
import { MetricsDb } from '../src/monitor/db.ts';
import { containerCgroupOf, LxcLocator } from '../src/monitor/lxc.ts';
import { realBackend } from './guests/pve-backend.ts';
import { startSimGateway } from './pve-sim/gateway.ts';

const MB20 = 20 * 1024 * 1024;

test('the container\'s cgroup from its init\'s /proc/<pid>/cgroup: Proxmox v2, Proxmox v1 hybrid, plain LXC on a hybrid', () => {
  assert.deepEqual(containerCgroupOf('0::/lxc/101/ns/init.scope\n', 101), { hierarchy: 'v2', path: '/lxc/101' });
  assert.deepEqual(containerCgroupOf('12:pids:/lxc/101/ns\n1:name=systemd:/lxc/101/ns/init.scope\n0::/\n', 101), { hierarchy: 'pids', path: '/lxc/101' });
  assert.deepEqual(containerCgroupOf('9:name=systemd:/lxc.payload.smbgw-ct101-09e9/init.scope\n8:pids:/lxc.payload.smbgw-ct101-09e9/init.scope\n0::/lxc.payload.smbgw-ct101-09e9/init.scope\n', 101), { hierarchy: 'v2', path: '/lxc.payload.smbgw-ct101-09e9' });
  assert.equal(containerCgroupOf('0::/\n', 101), undefined);
});

test('lxc mode: 20 MiB written over SMB to a container share count as its written and read bytes (within 10 %); the other container share stays at zero', { timeout: 300_000 }, async (t) => {
  const backend = await realBackend(t);
  const g = await startSimGateway({ backend, taskMs: 5 });
  t.after(() => g.cleanup());
  await g.op('template create', { mode: 'lxc' });
  const pw = `Pw-${randomBytes(6).toString('hex')}`;
  for (const name of ['mona', 'monb']) await g.op('create', { sharename: name, mode: 'lxc', path: join(g.storage, name), users: ['alice'], password: pw });
  const byName = new Map((await g.gw.store.list()).map((s) => [s.sharename, s] as [string, Share]));
  const a = byName.get('mona')!;
  const b = byName.get('monb')!;
  assert.ok(a.vmid && b.vmid && a.vmid !== b.vmid, 'each share has its own container');

  // The node's tools as on this machine: `pct` is the simulator's; `lxc-info -n <vmid>` is the real
  // lxc-info pointed at the container the real backend runs for that vmid (its own LXC path and name).
  const runner: Runner = async (tool, args, o = {}) => {
    if (tool === 'pct') {
      const r = await g.sim.simCall('/sim/pct', { args }) as { code: number; stdout: string; stderr: string };
      if (r.code !== 0 && !o.allowFail) throw new Error(`pct ${args[0]} failed (exit ${r.code}): ${r.stderr.trim()}`);
      return r;
    }
    if (tool === 'lxc-info') {
      const i = args.indexOf('-n');
      const ct = backend.container(Number(args[i + 1]));
      if (!ct) return { code: 1, stdout: '', stderr: `${args[i + 1]} doesn't exist\n` };
      return execRunner('lxc-info', ['-P', ct.lxcPath, ...args.map((a, k) => (k === i + 1 ? ct.name : a))], o);
    }
    return execRunner(tool, args, o);
  };
  const gw = makeGateway(g.settings, runner);
  // Both containers are found (so "monb stays at zero" is measured, not a container that was missed).
  for (const s of [a, b]) assert.ok((await new LxcLocator(runner).pids(s.vmid!))?.length, `CT ${s.vmid}'s cgroup found`);
  const db = new MetricsDb(join(g.dir, 'metrics.db'));
  t.after(() => db.close());
  const c = new Collector(gw, { db });
  await c.collect(); // baseline
  const a0 = c.state.get('mona')!;
  const b0 = c.state.get('monb')!;
  assert.equal(c.stats.errors.length, 0, c.stats.errors.join('\n'));

  const net = backend.bridgeNetwork('vmbr0')!;
  const work = await mkdtemp(join(tmpdir(), 'smbgw-monlxc-'));
  t.after(() => rm(work, { recursive: true, force: true }));
  const auth = join(work, 'auth');
  await writeFile(auth, `username = alice\npassword = ${pw}\n`, { mode: 0o600 });
  await writeFile(join(work, 'big'), randomBytes(MB20));
  const smb = (cmd: string) => net.exec(['smbclient', '-s', '/dev/null', `//${a.guest_ip}/mona`, '-A', auth, '-c', cmd], { allowFail: true, timeoutMs: 120_000 });

  const put = await smb(`lcd ${work}; put big big`);
  assert.equal(put.code, 0, put.stdout + put.stderr);
  assert.equal((await stat(join(a.path, 'big'))).size, MB20, 'the bytes are in the host path');
  const w = await c.collect();
  const a1 = c.state.get('mona')!;
  const written = a1.writtenBytes - a0.writtenBytes;
  const sw = w.find((x) => x.share === 'mona')!;
  const byRate = sw.throughput_write! * c.stats.lastIntervalSeconds;
  t.diagnostic(`written: counted ${written} of ${MB20} bytes (${((written / MB20 - 1) * 100).toFixed(2)} %), by throughput ${Math.round(byRate)}`);
  assert.ok(Math.abs(written - MB20) <= MB20 * 0.1, `mona's written bytes ${written}`);
  assert.ok(Math.abs(byRate - MB20) <= MB20 * 0.1, `mona's write throughput ${sw.throughput_write} B/s over ${c.stats.lastIntervalSeconds} s`);
  assert.ok(sw.iops_write! > 0);

  const get = await smb(`lcd ${work}; get big back`);
  assert.equal(get.code, 0, get.stdout + get.stderr);
  const r = await c.collect();
  const a2 = c.state.get('mona')!;
  const read = a2.readBytes - a1.readBytes;
  const sr = r.find((x) => x.share === 'mona')!;
  t.diagnostic(`read: counted ${read} of ${MB20} bytes (${((read / MB20 - 1) * 100).toFixed(2)} %)`);
  assert.ok(Math.abs(read - MB20) <= MB20 * 0.1, `mona's read bytes ${read}`);
  assert.ok(Math.abs(sr.throughput_read! * c.stats.lastIntervalSeconds - MB20) <= MB20 * 0.1, `mona's read throughput ${sr.throughput_read}`);

  // The other container's share saw nothing.
  const b2 = c.state.get('monb')!;
  assert.equal(b2.writtenBytes - b0.writtenBytes, 0);
  assert.equal(b2.readBytes - b0.readBytes, 0);
  for (const s of [...w, ...r].filter((x) => x.share === 'monb')) {
    assert.equal(s.throughput_write, 0);
    assert.equal(s.throughput_read, 0);
  }
  // As the API returns it.
  assert.equal(db.query('mona', 'hour').at(-1)!.throughput_read, sr.throughput_read);

  // A session held open on mona is one connection of mona, none of monb.
  let client: ChildProcess | undefined;
  try {
    client = spawn('ip', ['netns', 'exec', net.ns, 'smbclient', '-s', '/dev/null', `//${a.guest_ip}/mona`, '-A', auth], { stdio: ['pipe', 'ignore', 'ignore'] });
    let s;
    for (const end = Date.now() + 30_000; ;) {
      s = (await c.collect()).find((x) => x.share === 'mona')!;
      if (s.connections === 1 || Date.now() > end) break;
      await new Promise((res) => setTimeout(res, 300));
    }
    assert.equal(s.connections, 1);
    assert.equal(c.state.get('monb')!.sample.connections, 0);
  } finally {
    client?.stdin?.end();
    client?.kill();
  }
  assert.equal(c.stats.errors.length, 0, c.stats.errors.join('\n'));
  t.diagnostic(`collector cycle with 2 lxc shares: ${c.stats.lastCycleSeconds.toFixed(3)} s (wall), ${c.stats.lastCycleCpuSeconds.toFixed(3)} s CPU in this process`);
});
