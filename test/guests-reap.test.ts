/**
 * A test process killed before its cleanup ran leaves a running container, an overlay mount and a
 * network namespace behind; the next run's reapStale() (called before new guests are made) removes
 * them, and leaves the guests of live processes alone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createContainer } from './guests/lxc.ts';
import { createNetwork } from './guests/netns.ts';
import { reapStale } from './guests/reap.ts';
import { run } from './guests/common.ts';

const ROOT = resolve(import.meta.dirname, '..');

test('guests of a killed test process are reaped; those of a live one are kept', { timeout: 120_000 }, async (t) => {
  const work = await mkdtemp('/tmp/smbgw-reapt-');
  t.after(() => rm(work, { recursive: true, force: true }));
  // Ours (alive): must survive the reaping.
  const net = await createNetwork();
  t.after(net.destroy);
  const mine = await createContainer({ net: { network: net, cidr: `${net.guestIp(7)}/24` } });
  t.after(mine.destroy);
  await mine.start();

  // A child that makes a network and a running container, prints their names and kills itself.
  const script = join(work, 'orphan.mts');
  await writeFile(script, `import { createContainer } from ${JSON.stringify(join(ROOT, 'test/guests/lxc.ts'))};
import { createNetwork } from ${JSON.stringify(join(ROOT, 'test/guests/netns.ts'))};
const net = await createNetwork();
const ct = await createContainer({ net: { network: net, cidr: net.guestIp(5) + '/24' } });
await ct.start();
console.log(JSON.stringify({ name: ct.name, lxcPath: ct.lxcPath, rootfs: ct.rootfs, ns: net.ns }));
process.kill(process.pid, 'SIGKILL');
`);
  const out = await new Promise<string>((res) => execFile('node', ['--import', 'tsx', script], { cwd: ROOT }, (_e, stdout) => res(String(stdout))));
  const orphan = JSON.parse(out.trim()) as { name: string; lxcPath: string; rootfs: string; ns: string };
  const state = async (p: string, n: string) => (await run('lxc-info', ['-P', p, '-n', n, '-sH'], { allowFail: true })).stdout.trim();
  assert.equal(await state(orphan.lxcPath, orphan.name), 'RUNNING', 'the killed process left its container running');
  assert.match(await readFile('/proc/self/mountinfo', 'utf8'), new RegExp(orphan.rootfs.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));

  const removed = await reapStale();
  assert.ok(removed.some((r) => r.includes(orphan.name)), `reaped: ${removed.join(', ')}`);
  assert.ok(removed.includes(`netns ${orphan.ns}`));
  assert.notEqual(await state(orphan.lxcPath, orphan.name), 'RUNNING');
  await assert.rejects(stat(orphan.lxcPath));
  assert.doesNotMatch(await readFile('/proc/self/mountinfo', 'utf8'), new RegExp(orphan.rootfs.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  assert.doesNotMatch((await run('ip', ['netns', 'list'])).stdout, new RegExp(`\\b${orphan.ns}\\b`));
  // Ours is untouched.
  assert.equal(await mine.state(), 'RUNNING');
  assert.match((await run('ip', ['netns', 'list'])).stdout, new RegExp(`\\b${net.ns}\\b`));
});
