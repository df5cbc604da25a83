/**
 * The mkdir lock under contention from separate processes, starting from a stale lock left by a
 * crashed holder: it is broken once, and never two waiters are inside the critical section.
 */
import { strict as assert } from 'node:assert';
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { withLock } from '../src/core/lock.ts';
import { ROOT, sh } from './helpers/gateway.ts';

const WORKER = join(ROOT, 'test/helpers/lockworker.ts');

/** The first overlap in an enter/leave log, or undefined when every enter is followed by its own leave. */
function firstOverlap(lines: string[]): string | undefined {
  let inside: string | undefined;
  for (const [i, l] of lines.entries()) {
    const [what, who] = l.split(' ');
    if (what === 'enter') {
      if (inside !== undefined) return `line ${i + 1}: ${who} entered while ${inside} was inside`;
      inside = who;
    } else {
      if (inside !== who) return `line ${i + 1}: ${who} left while ${inside ?? 'nobody'} was inside`;
      inside = undefined;
    }
  }
  return inside === undefined ? undefined : `${inside} never left`;
}

describe('withLock across processes', () => {
  let dir: string;
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'smbgw-lock-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  it('the log checker sees an overlap', () => {
    assert.equal(firstOverlap(['enter a', 'leave a', 'enter b', 'leave b']), undefined);
    assert.match(firstOverlap(['enter a', 'enter b', 'leave a', 'leave b'])!, /b entered while a was inside/);
  });

  for (let round = 1; round <= 4; round++) {
    it(`round ${round}: a stale lock and 6 processes x 3 waiters: one at a time`, async () => {
      const lockDir = join(dir, `locks${round}`);
      const log = join(dir, `log${round}`);
      await writeFile(log, '');
      // A lock left behind an hour ago by a holder that died.
      await mkdir(join(lockDir, 'l'), { recursive: true });
      const old = new Date(Date.now() - 3600_000);
      await utimes(join(lockDir, 'l'), old, old);
      const startAt = Date.now() + 4000;
      const procs = Array.from({ length: 6 }, (_, p) =>
        sh(process.execPath, ['--import', 'tsx', WORKER, lockDir, 'l', log, `p${p}`, String(startAt), '20', '3'], { timeoutMs: 120_000 }));
      for (const r of await Promise.all(procs)) assert.equal(r.code, 0, r.stdout + r.stderr);
      const lines = (await readFile(log, 'utf8')).trim().split('\n');
      assert.equal(lines.length, 6 * 3 * 2, lines.join('\n'));
      assert.equal(firstOverlap(lines), undefined, lines.join('\n'));
      assert.deepEqual(await readdir(lockDir), [], 'neither the lock nor its break guard is left');
    });
  }

  it('a break guard left by a waiter that died while breaking does not block the lock for good', async () => {
    const lockDir = join(dir, 'guard');
    const old = new Date(Date.now() - 3600_000);
    for (const d of ['l', 'l.break']) {
      await mkdir(join(lockDir, d), { recursive: true });
      await utimes(join(lockDir, d), old, old);
    }
    assert.equal(await withLock(lockDir, 'l', async () => 'in', { timeoutMs: 3000, staleMs: 1000, retryMs: 20 }), 'in');
    assert.deepEqual(await readdir(lockDir), []);
  });
});
