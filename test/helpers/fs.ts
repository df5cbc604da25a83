/**
 * Real filesystems for quota tests: btrfs on a loop device, and a ZFS pool on a file through
 * zfs-fuse (the kernel here has no ZFS module). Unique names; everything removed afterwards.
 */
import { spawn } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { sh, waitFor } from './gateway.ts';

export interface TestFs { mountpoint: string; cleanup: () => Promise<void> }

async function must(cmd: string, args: string[]): Promise<string> {
  const r = await sh(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

export async function btrfsLoop(dir: string, mountpoint: string, sizeMb = 400): Promise<TestFs> {
  const img = join(dir, 'btrfs.img');
  await must('truncate', ['-s', `${sizeMb}M`, img]);
  const loop = (await must('losetup', ['-f', '--show', img])).trim();
  try {
    await must('mkfs.btrfs', ['-q', '-f', loop]);
    await mkdir(mountpoint, { recursive: true });
    await must('mount', [loop, mountpoint]);
  } catch (e) {
    await sh('losetup', ['-d', loop]);
    throw e;
  }
  return {
    mountpoint,
    cleanup: async () => {
      await sh('umount', [mountpoint]);
      await sh('losetup', ['-d', loop]);
      await rm(img, { force: true });
    },
  };
}

async function zfsFuseRunning(): Promise<boolean> {
  return (await sh('zpool', ['list', '-H'])).code === 0;
}

export async function zfsPool(dir: string, name: string, mountpoint: string, sizeMb = 256): Promise<TestFs & { pool: string }> {
  let started = false;
  if (!(await zfsFuseRunning())) {
    const c = spawn('zfs-fuse', ['-n', '--no-kstat-mount'], { detached: true, stdio: 'ignore' });
    c.unref();
    started = true;
    await waitFor(zfsFuseRunning, 15_000, 'zfs-fuse');
  }
  const img = join(dir, `${name}.img`);
  await must('truncate', ['-s', `${sizeMb}M`, img]);
  await mkdir(mountpoint, { recursive: true });
  await must('zpool', ['create', '-m', mountpoint, name, img]);
  return {
    pool: name,
    mountpoint,
    cleanup: async () => {
      // A just-closed smbd child can keep a dataset busy for a moment.
      await waitFor(async () => (await sh('zpool', ['destroy', '-f', name])).code === 0, 10_000, `zpool destroy ${name}`).catch(() => undefined);
      await rm(img, { force: true });
      // Stop zfs-fuse only if we started it and no other pool (another run's) is left.
      const left = await sh('zpool', ['list', '-H', '-o', 'name']);
      if (started && left.code === 0 && left.stdout.trim() === '') await sh('pkill', ['-x', 'zfs-fuse']);
    },
  };
}
