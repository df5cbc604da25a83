/** Deleting a btrfs snapshot reaches only a real directory in the share's own snapshot directory. */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Runner } from '../src/core/exec.ts';
import { deleteSnapshot } from '../src/backup/snapshots.ts';

test('a link put in place of a snapshot is refused and nothing is deleted; a real snapshot directory goes to btrfs', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'smbgw-snapdel-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const snapdir = join(dir, 'snaps');
  await mkdir(join(snapdir, 'smbgw-2026.01.01-00.00.00'), { recursive: true });
  await mkdir(join(dir, 'neighbour'));
  await symlink(join(dir, 'neighbour'), join(snapdir, 'smbgw-2026.01.02-00.00.00'));
  const calls: string[][] = [];
  const run: Runner = async (tool, args) => { calls.push([tool, ...args]); return { code: 0, stdout: '', stderr: '' }; };
  const target = { kind: 'btrfs' as const, mountpoint: dir, snapdir };
  await assert.rejects(deleteSnapshot(run, target, 'smbgw-2026.01.02-00.00.00'), /smbgw-2026\.01\.02-00\.00\.00: .* is not the snapshot directory it was \(a link or a file\); left as it is/);
  assert.equal(calls.length, 0, 'btrfs was never asked to delete anything');
  await deleteSnapshot(run, target, 'smbgw-2026.01.01-00.00.00');
  assert.equal(calls.length, 1);
  assert.equal(calls[0]!.at(-1), join(snapdir, 'smbgw-2026.01.01-00.00.00'));
});
