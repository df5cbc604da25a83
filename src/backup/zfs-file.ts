/**
 * `restore --file` on ZFS without `.zfs/snapshot` (zfs-fuse has none, and a dataset may hide it): the
 * snapshot is cloned to a temporary dataset (read-only, mounted in the gateway's state directory), the
 * file or folder copied back from it, and the clone destroyed. The destroy re-checks, as it runs, that
 * the dataset is still the clone this restore made (its origin is the snapshot, its GUID the one read
 * right after the clone). The same on real ZFS: no dependence on snapdir or automounts.
 */
import { createHash } from 'node:crypto';
import { mkdir, realpath, rmdir, stat } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { GatewayError, invalid } from '../core/errors.ts';
import type { Runner } from '../core/exec.ts';
import type { Step } from '../core/plan.ts';
import { zfsClone, zfsDestroyWhenFree, zfsGet } from '../core/zfs.ts';

/** The clone's name: at the top of the share's pool, named after the share's dataset and the time. */
export function zfsRestoreCloneName(dataset: string, now: number): string {
  const pool = dataset.split('/')[0]!;
  return `${pool}/smbgw-restore-${createHash('sha256').update(dataset).digest('hex').slice(0, 8)}-${now}`;
}

/** `rel` inside a snapshot's tree mounted at `root`, resolved; a symbolic link out of it is refused. */
export async function sourceInTree(root: string, rel: string, what: string): Promise<string> {
  const rootReal = await realpath(root);
  const real = await realpath(join(rootReal, rel)).catch(() => { throw invalid('file', `${rel} is not in ${what}`); });
  if (real !== rootReal && !real.startsWith(rootReal + sep)) throw invalid('file', `${rel} leads outside the snapshot (a symbolic link)`);
  await stat(real);
  return real;
}

/**
 * Steps: clone the snapshot, copy `rel` back with `copyBack(src)`, destroy the clone (undone on a
 * failure: the clone goes with the rollback).
 */
export function zfsFileRestoreSteps(run: Runner, o: { dataset: string; snapshot: string; rel: string; stateDir: string; now?: number }, copyBack: (src: string) => Promise<void>): Step[] {
  const origin = `${o.dataset}@${o.snapshot}`;
  const clone = zfsRestoreCloneName(o.dataset, o.now ?? Date.now());
  const mountpoint = join(o.stateDir, 'restore', clone.replace(/\//g, '_'));
  let guid: string | undefined;
  const destroy = async () => {
    if (!guid) return;
    // Checked as it runs: the clone this restore made, nothing put in its place.
    const [org, g] = [await zfsGet(run, 'origin', clone), await zfsGet(run, 'guid', clone, { parsable: true })];
    if (org === undefined && g === undefined) { guid = undefined; return; }
    if (org !== origin || g !== guid) throw new GatewayError('failed', `restore clone ${clone} is not the clone this restore made (origin ${org ?? '?'}, GUID ${g ?? '?'}); left as it is`);
    // A mount that was just read can be busy for a moment (zfs-fuse): tried again for up to 15 s.
    await zfsDestroyWhenFree(run, clone, {}, { tries: 30, intervalMs: 500 }, (err) => new GatewayError('failed', `restore clone ${clone} could not be destroyed: ${err}`));
    guid = undefined;
    await rmdir(mountpoint).catch(() => undefined);
  };
  return [
    {
      name: 'clone-snapshot',
      do: async () => {
        await mkdir(mountpoint, { recursive: true, mode: 0o700 });
        await zfsClone(run, origin, clone, { readonly: 'on', mountpoint });
        guid = await zfsGet(run, 'guid', clone, { parsable: true });
        if (!guid) throw new GatewayError('failed', `restore clone ${clone} was made but cannot be read back`);
      },
      undo: destroy,
    },
    { name: 'copy-back', do: async () => { await copyBack(await sourceInTree(mountpoint, o.rel, `snapshot ${o.snapshot}`)); } },
    { name: 'destroy-clone', do: destroy },
  ];
}
