/**
 * The one place where `zfs` command lines are built (as sambacc's samba_cmds.py does for Samba's tools),
 * with argument arrays through the Runner. Callers say what they want; parsing of the output lives here too.
 */
import type { Runner, RunResult } from './exec.ts';

export interface ZfsListOptions {
  props: readonly string[];
  types: readonly ('filesystem' | 'volume' | 'snapshot')[];
  root?: string;
  recursive?: boolean;
  depth?: number;
  sortBy?: string;
  /** Exact numbers (-p). */
  parsable?: boolean;
  allowFail?: boolean;
}

/** `zfs list -H` rows, each a list of the asked properties. */
export async function zfsList(run: Runner, o: ZfsListOptions): Promise<string[][] | undefined> {
  const r = await run('zfs', [
    'list', o.parsable ? '-Hp' : '-H', '-o', o.props.join(','), '-t', o.types.join(','),
    ...(o.sortBy ? ['-s', o.sortBy] : []), ...(o.depth !== undefined ? ['-d', String(o.depth)] : []), ...(o.recursive ? ['-r'] : []), ...(o.root ? [o.root] : []),
  ], { allowFail: o.allowFail });
  if (r.code !== 0) return undefined;
  return r.stdout.split('\n').filter(Boolean).map((l) => l.split('\t'));
}

/** One property's value (`zfs get -H -o value`), or undefined when the dataset is not there. */
export async function zfsGet(run: Runner, prop: string, name: string, o: { parsable?: boolean } = {}): Promise<string | undefined> {
  const r = await run('zfs', ['get', o.parsable ? '-Hp' : '-H', '-o', 'value', prop, name], { allowFail: true });
  return r.code === 0 ? r.stdout.trim() : undefined;
}

/** Several properties at once: property -> value. */
export async function zfsGetMany(run: Runner, props: readonly string[], name: string): Promise<Record<string, string>> {
  const r = await run('zfs', ['get', '-H', '-o', 'property,value', props.join(','), name]);
  const v: Record<string, string> = {};
  for (const l of r.stdout.split('\n')) { const [k, x] = l.split('\t'); if (k && x) v[k] = x; }
  return v;
}

export function zfsSet(run: Runner, prop: string, value: string, name: string): Promise<RunResult> {
  return run('zfs', ['set', `${prop}=${value}`, name]);
}

export function zfsCreate(run: Runner, name: string): Promise<RunResult> {
  return run('zfs', ['create', name]);
}

/** Destroy a dataset or snapshot; `recursive` takes children and snapshots with it. */
export function zfsDestroy(run: Runner, name: string, o: { recursive?: boolean; force?: boolean; allowFail?: boolean } = {}): Promise<RunResult> {
  return run('zfs', ['destroy', ...(o.recursive ? ['-r'] : []), ...(o.force ? ['-f'] : []), name], { allowFail: o.allowFail });
}

/**
 * `zfs destroy`, tried again while ZFS says the dataset is busy (a mount read a moment ago, an smbd child
 * that served it just before its client left): up to `retry.tries` more times, `retry.intervalMs` apart.
 * Any other failure, or still busy after that, is thrown as `failure(stderr)`.
 */
export async function zfsDestroyWhenFree(run: Runner, name: string, o: { recursive?: boolean; force?: boolean }, retry: { tries: number; intervalMs: number }, failure: (stderr: string) => Error): Promise<void> {
  for (let i = 0; ; i++) {
    const r = await zfsDestroy(run, name, { ...o, allowFail: true });
    if (r.code === 0) return;
    if (i >= retry.tries || !/busy/i.test(r.stderr)) throw failure(r.stderr.trim());
    await new Promise((res) => setTimeout(res, retry.intervalMs));
  }
}

export function zfsSnapshot(run: Runner, dataset: string, snap: string): Promise<RunResult> {
  return run('zfs', ['snapshot', `${dataset}@${snap}`]);
}

/** A clone of a snapshot (`zfs clone -o k=v ... SNAPSHOT TARGET`), mounted by ZFS where its mountpoint says. */
export function zfsClone(run: Runner, snapshot: string, target: string, props: Readonly<Record<string, string>>): Promise<RunResult> {
  return run('zfs', ['clone', ...Object.entries(props).flatMap(([k, v]) => ['-o', `${k}=${v}`]), snapshot, target]);
}

/** Roll back to a snapshot; `destroyNewer` lets ZFS destroy the snapshots taken after it (-r). */
export function zfsRollback(run: Runner, dataset: string, snap: string, destroyNewer: boolean): Promise<RunResult> {
  return run('zfs', ['rollback', ...(destroyNewer ? ['-r'] : []), `${dataset}@${snap}`]);
}

/**
 * `zfs send` of a snapshot, incremental from `base` (a snapshot of the same dataset) when given;
 * `intermediates`: with every snapshot between the two (-I instead of -i).
 */
export function zfsSendArgs(snapshot: string, base?: string, o: { intermediates?: boolean } = {}): string[] {
  return ['send', ...(base ? [o.intermediates ? '-I' : '-i', base] : []), snapshot];
}

/** `zfs recv -u TARGET`: not mounted (a mounted replica that changes refuses the next increment). */
export function zfsRecvArgs(target: string): string[] {
  return ['recv', '-u', target];
}
