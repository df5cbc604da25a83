/**
 * The recycle preset's retention: files deleted over SMB wait in `<share>/.recycle/<user>/` (vfs_recycle
 * touches their mtime when it moves them there) and are removed once older than `recycle_keep_days`.
 * The daemon runs the purge on a schedule (api/daemon.ts). It reaches only the recycle directory of a
 * share with the preset (native, lxc, or a vm share whose data is in the host path), checked as it goes: the directory must be a real directory (not a
 * symbolic link put in its place), links are removed as links and never followed.
 */
import { lstat, readdir, rmdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Share } from '../core/share.ts';
import { RECYCLE_DIR } from '../samba/presets.ts';

export interface PurgeResult { share: string; removed: number; kept: number }

export async function purgeRecycle(share: Share, now = Date.now()): Promise<PurgeResult> {
  const out: PurgeResult = { share: share.sharename, removed: 0, kept: 0 };
  if (!share.presets.includes('recycle') || share.recycle_keep_days === undefined) return out;
  // Guest shares hold their data in the host path too (bind mount, virtiofs, NFS), except on an RBD disk.
  if (share.mode === 'vm' && share.vm_attach === 'rbd') return out;
  const root = join(share.path, RECYCLE_DIR);
  const st = await lstat(root).catch(() => undefined);
  if (!st?.isDirectory()) return out;
  const cutoff = now - share.recycle_keep_days * 86_400_000;
  // Returns whether the directory is left empty. `ino`: the directory as lstat saw it; readdir follows a
  // symbolic link swapped in meanwhile, so the directory is checked again after listing and skipped if it changed.
  const walk = async (dir: string, ino: number): Promise<boolean> => {
    let empty = true;
    const names = await readdir(dir).catch(() => [] as string[]);
    const again = await lstat(dir).catch(() => undefined);
    if (!again?.isDirectory() || again.ino !== ino) return false;
    for (const name of names) {
      const p = join(dir, name);
      const e = await lstat(p).catch(() => undefined);
      if (!e) continue;
      if (e.isDirectory()) {
        if (await walk(p, e.ino)) {
          if (e.mtimeMs < cutoff) { await rmdir(p).catch(() => { empty = false; }); continue; }
        }
        empty = false;
        continue;
      }
      if (e.mtimeMs < cutoff) { await unlink(p); out.removed++; } else { out.kept++; empty = false; }
    }
    return empty;
  };
  await walk(root, st.ino);
  return out;
}

/** Purge every share with a recycle retention; errors are reported, not thrown (one share never stops the others). */
export async function purgeAllRecycle(shares: readonly Share[], log: (m: string) => void, now = Date.now()): Promise<PurgeResult[]> {
  const out: PurgeResult[] = [];
  for (const s of shares) {
    try {
      const r = await purgeRecycle(s, now);
      if (r.removed) log(`recycle ${s.sharename}: removed ${r.removed} file(s) older than ${s.recycle_keep_days} days`);
      out.push(r);
    } catch (e) { log(`recycle ${s.sharename}: ${(e as Error).message}`); }
  }
  return out;
}
