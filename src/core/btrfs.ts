/**
 * The one place where `btrfs` command lines are built, with argument arrays through the Runner; the
 * parsing of its output lives here too.
 */
import type { Runner, RunResult } from './exec.ts';

export function btrfsSubvolumeCreate(run: Runner, path: string): Promise<RunResult> {
  return run('btrfs', ['subvolume', 'create', path]);
}

export function btrfsSubvolumeDelete(run: Runner, path: string): Promise<RunResult> {
  return run('btrfs', ['subvolume', 'delete', path]);
}

/** A snapshot of a subvolume (read-only for backups, writable for a restore). */
export function btrfsSnapshot(run: Runner, source: string, dest: string, o: { readOnly: boolean }): Promise<RunResult> {
  return run('btrfs', ['subvolume', 'snapshot', ...(o.readOnly ? ['-r'] : []), source, dest]);
}

/** The subvolume's UUID (its identity), or undefined when the path is not a subvolume. */
export async function btrfsSubvolumeUuid(run: Runner, path: string): Promise<string | undefined> {
  const r = await run('btrfs', ['subvolume', 'show', path], { allowFail: true });
  const m = /^\s*UUID:\s*([0-9a-f-]{36})\s*$/m.exec(r.stdout);
  return r.code === 0 && m ? m[1] : undefined;
}

/** Subvolumes below a path (`subvolume list -o`): their paths as btrfs prints them. */
export async function btrfsSubvolumesBelow(run: Runner, path: string): Promise<string[]> {
  const r = await run('btrfs', ['subvolume', 'list', '-o', path]);
  return r.stdout.split('\n').map((l) => / path (.+)$/.exec(l)?.[1]).filter((x): x is string => !!x);
}

/** The subvolume id holding a path (`inspect-internal rootid`). */
export async function btrfsRootId(run: Runner, path: string): Promise<number | undefined> {
  const r = await run('btrfs', ['inspect-internal', 'rootid', path], { allowFail: true }).catch(() => undefined);
  return r && r.code === 0 && /^\d+$/.test(r.stdout.trim()) ? Number(r.stdout.trim()) : undefined;
}

export async function btrfsQuotaEnabled(run: Runner, mountpoint: string): Promise<boolean> {
  return (await run('btrfs', ['qgroup', 'show', mountpoint], { allowFail: true })).code === 0;
}

export function btrfsQuota(run: Runner, action: 'enable' | 'disable', mountpoint: string): Promise<RunResult> {
  return run('btrfs', ['quota', action, mountpoint]);
}

/** Recount usage (waits for it); a failure is not fatal for readers. */
export function btrfsQuotaRescan(run: Runner, mountpoint: string, o: { allowFail?: boolean } = {}): Promise<RunResult> {
  return run('btrfs', ['quota', 'rescan', '-w', mountpoint], { allowFail: o.allowFail });
}

/** Set (bytes) or clear (`none`) the limit of a subvolume's qgroup. */
export function btrfsQgroupLimit(run: Runner, limit: number | 'none', path: string, o: { allowFail?: boolean } = {}): Promise<RunResult> {
  return run('btrfs', ['qgroup', 'limit', String(limit), path], { allowFail: o.allowFail });
}

/** `qgroup show -re --raw` (with -F: only the path's own qgroups): the raw table. */
export async function btrfsQgroupShow(run: Runner, path: string, o: { own?: boolean } = {}): Promise<string | undefined> {
  const r = await run('btrfs', ['qgroup', 'show', o.own ? '-reF' : '-re', '--raw', path], { allowFail: true }).catch(() => undefined);
  return r && r.code === 0 ? r.stdout : undefined;
}

/** `btrfs send` of a read-only snapshot, incremental against `parent` (present on both sides) when given. */
export function btrfsSendArgs(snapshot: string, parent?: string): string[] {
  return ['send', '-q', ...(parent ? ['-p', parent] : []), snapshot];
}

/** `btrfs receive DIR`: the snapshot appears as DIR/<its name>, read-only. */
export function btrfsReceiveArgs(dir: string): string[] {
  return ['receive', dir];
}
