/** The recycle preset's retention purge: old files go, fresh ones stay, nothing outside .recycle is reached. */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseShare } from '../src/core/share.ts';
import { purgeRecycle } from '../src/provision/recycle.ts';

test('purges files older than keep days from .recycle; fresh files, links and what they point to stay', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'smbgw-recycle-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const share = parseShare({ sharename: 'r', mode: 'native', path: join(dir, 'share'), users: ['alice'], presets: ['recycle'], recycle_keep_days: 7 });
  const now = Date.now();
  const old = new Date(now - 8 * 86_400_000);
  const bin = join(share.path, '.recycle', 'alice');
  await mkdir(join(bin, 'd'), { recursive: true });
  await writeFile(join(bin, 'd', 'old.txt'), 'old');
  await writeFile(join(bin, 'fresh.txt'), 'fresh');
  await utimes(join(bin, 'd', 'old.txt'), old, old);
  await utimes(join(bin, 'd'), old, old);
  // A neighbour's old files, reachable only through a link someone put into the recycle bin.
  const outside = join(dir, 'neighbour');
  await mkdir(outside);
  await writeFile(join(outside, 'keep.txt'), 'not the share\'s');
  await utimes(join(outside, 'keep.txt'), old, old);
  await symlink(outside, join(bin, 'link'));
  const r = await purgeRecycle(share, now);
  // old.txt goes, then its emptied old directory; the fresh file and the (fresh) link stay, as links are never followed.
  assert.deepEqual(r, { share: 'r', removed: 1, kept: 2 });
  assert.deepEqual((await readdir(bin)).sort(), ['fresh.txt', 'link']);
  assert.deepEqual(await readdir(outside), ['keep.txt'], 'nothing behind the link was reached');
});
