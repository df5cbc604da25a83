/**
 * Previous Versions inside guests (see samba/guestshadow.ts): a btrfs share's snapshot directory is
 * made by create, so that it can be mounted into the guest from the start (read-only), before the
 * first snapshot is taken.
 */
import { mkdir, rmdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Step } from '../core/plan.ts';
import type { Share } from '../core/share.ts';
import { guestSnapshotMount } from '../samba/guestshadow.ts';

export function snapshotDirSteps(share: Share): Step[] {
  const m = guestSnapshotMount(share);
  if (m?.kind !== 'btrfs') return [];
  const made: string[] = [];
  return [{
    name: 'make-snapshot-dir',
    do: async () => {
      const first = await mkdir(m.host, { recursive: true, mode: 0o755 });
      // What mkdir made, deepest first: the undo removes only those (and only while empty).
      if (first) for (let p = m.host; p.length >= first.length; p = dirname(p)) made.push(p);
    },
    undo: async () => { for (const p of made) await rmdir(p).catch(() => undefined); },
  }];
}
