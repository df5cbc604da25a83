/**
 * The operation journal: what a running operation is about to do and has done, on disk, so that a
 * process killed half-way (kill -9, power loss) leaves more than orphans behind.
 *
 * applyPlan (plan.ts) writes one file per running operation in <privDir>/journal/ (0700; files 0600,
 * they can hold password hashes and secrets), with fsync, before each step starts and after it ends,
 * and removes it when the operation ends (success, or failure after a complete rollback). Each step's
 * entry carries JSON records (`{kind, ...}`) of what it changes, written before the change is made.
 *
 * After a crash, `repairJournal` undoes the interrupted operation through the repairer registered for
 * each record's kind (idempotent; each copes with a step that was killed half-way), or, past a step
 * marked irreversible (a guest destroyed, storage purged), finishes it through the `redo` records.
 * The engine knows nothing of what the kinds mean: the repairers live next to the steps they undo.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, open, readdir, readFile, rename, rm, rmdir, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { GatewayError, toGatewayError } from './errors.ts';

/** A JSON record of one change a step makes; `kind` selects the repairer. */
export type JournalRecord = { kind: string } & Record<string, unknown>;

export type StepState = 'pending' | 'started' | 'done' | 'failed' | 'undone' | 'undo-failed';

export interface JournalStep {
  name: string;
  state: StepState;
  /** When the step started (ms since the epoch): a repairer may check that what it removes is younger. */
  startedAt?: number;
  irreversible?: boolean;
  /** What the step changes (for an undo). */
  records: JournalRecord[];
  /** How to finish the step when the operation is rolled forward. */
  redo?: JournalRecord[];
  error?: string;
}

export interface JournalDoc {
  version: 1;
  id: string;
  operation: string;
  share?: string;
  host: string;
  pid: number;
  /** The process's start time (/proc/<pid>/stat field 22), so that a reused pid is not taken for it. */
  pidStart?: string;
  started: string;
  /** running; rolling-back after a failure; abandoned when its process gave up with changes left (a rollback that failed). */
  state: 'running' | 'rolling-back' | 'abandoned';
  /** Set once the operation is being undone (a failure, or a repair) or finished (a repair past the point of no return). */
  direction?: 'back' | 'forward';
  steps: JournalStep[];
}

export const JOURNAL_SUFFIX = '.journal';

/** A record's `before` this long or longer is kept in a file beside the journal (Journal.write). */
const BLOB_MIN = 4096;
interface BlobRef { file: string; sha256: string }

/** The journal directory under a store's private directory. */
export function journalDirOf(privDir: string): string {
  return join(privDir, 'journal');
}

/** Start time of a process in clock ticks since boot, from /proc (undefined without /proc). */
export function processStart(pid: number): string | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Whether the process that wrote a journal (or holds a lock) is still running on this host. */
export function processAlive(pid: number, start?: string): boolean {
  if (existsSync('/proc/self/stat')) {
    let s: string;
    try { s = readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch { return false; }
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    if (f[0] === 'Z' || f[0] === 'X') return false;
    return start === undefined || f[19] === start;
  }
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

export function thisHost(): string {
  return hostname();
}

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Write a file durably: temp file + fsync + rename + fsync of the directory. */
export async function writeDurable(path: string, text: string | Buffer, mode = 0o600): Promise<void> {
  const tmp = `${path}.tmp.${process.pid}.${randomBytes(3).toString('hex')}`;
  const fh = await open(tmp, 'w', mode);
  try {
    await fh.writeFile(text);
    await fh.chmod(mode);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await syncDir(dirname(path));
}

async function syncDir(dir: string): Promise<void> {
  // Some file systems (pmxcfs, FUSE) refuse fsync on a directory; the rename is then as durable as they make it.
  const d = await open(dir, 'r').catch(() => undefined);
  if (!d) return;
  try { await d.sync(); } catch { /* not supported */ } finally { await d.close(); }
}

async function ensureDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
}

/** One running operation's journal file. */
export class Journal {
  private constructor(readonly path: string, readonly doc: JournalDoc) {}

  static async begin(dir: string, meta: { operation: string; share?: string }, steps: readonly { name: string; irreversible?: boolean; redo?: JournalRecord[] }[]): Promise<Journal> {
    await ensureDir(dir);
    const started = new Date();
    const id = `${started.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${process.pid}-${randomBytes(3).toString('hex')}`;
    const doc: JournalDoc = {
      version: 1, id, operation: meta.operation, ...(meta.share !== undefined ? { share: meta.share } : {}),
      host: thisHost(), pid: process.pid, pidStart: processStart(process.pid), started: started.toISOString(), state: 'running',
      steps: steps.map((s) => ({ name: s.name, state: 'pending', records: [], ...(s.irreversible ? { irreversible: true } : {}), ...(s.redo?.length ? { redo: s.redo } : {}) })),
    };
    const j = new Journal(join(dir, id + JOURNAL_SUFFIX), doc);
    await j.write();
    return j;
  }

  static async load(path: string): Promise<Journal> {
    let doc: JournalDoc;
    try {
      doc = JSON.parse(await readFile(path, 'utf8')) as JournalDoc;
    } catch (e) {
      throw new GatewayError('failed', `journal ${path} cannot be read (${toGatewayError(e).message})`);
    }
    if (doc?.version !== 1 || !Array.isArray(doc.steps) || typeof doc.operation !== 'string') throw new GatewayError('failed', `journal ${path} is not a journal this version understands`);
    const j = new Journal(path, doc);
    await j.loadBlobs();
    return j;
  }

  get id(): string { return this.doc.id; }

  /**
   * The file is written again before and after every step. A record's large `before` (the whole shares.cfg
   * or smb.conf a step replaces: hundreds of KiB with hundreds of shares) goes once into a file of its own
   * beside the journal (`<id>.blob<n>`, written durably before the journal names it, checked by SHA-256
   * when read back), so that each write stays small.
   */
  async write(): Promise<void> {
    const steps: JournalStep[] = [];
    for (const st of this.doc.steps) {
      const records: JournalRecord[] = [];
      for (const r of st.records) {
        const before = (r as { before?: unknown }).before;
        if (typeof before !== 'string' || before.length < BLOB_MIN) { records.push(r); continue; }
        let blob = this.blobs.get(r);
        if (!blob || blob.value !== before) {
          const file = `${this.doc.id}.blob${++this.blobCount}`;
          this.blobFiles.add(file);
          await writeDurable(join(dirname(this.path), file), before, 0o600);
          blob = { value: before, ref: { file, sha256: sha256(before) } };
          this.blobs.set(r, blob);
        }
        const { before: _b, ...rest } = r as JournalRecord & { before: string };
        records.push({ ...rest, beforeBlob: blob.ref });
      }
      steps.push({ ...st, records });
    }
    await writeDurable(this.path, JSON.stringify({ ...this.doc, steps }, null, 1) + '\n', 0o600);
  }

  /** Large `before` values written beside the journal, by record; every blob file it names or named. */
  private readonly blobs = new Map<JournalRecord, { value: string; ref: BlobRef }>();
  private readonly blobFiles = new Set<string>();
  private blobCount = 0;

  /** Read the records' `before` values that were written beside the journal back in. */
  private async loadBlobs(): Promise<void> {
    for (const st of this.doc.steps) {
      for (const r of st.records ?? []) {
        const ref = (r as { beforeBlob?: BlobRef }).beforeBlob;
        if (!ref) continue;
        if (typeof ref.file !== 'string' || !ref.file.startsWith(`${this.doc.id}.blob`) || !/^[^/]+\.blob\d+$/.test(ref.file)) throw new GatewayError('failed', `journal ${this.path}: a record names a bad blob file`);
        const value = await readFile(join(dirname(this.path), ref.file), 'utf8').catch(() => undefined);
        if (value === undefined || sha256(value) !== ref.sha256) throw new GatewayError('failed', `journal ${this.path}: ${ref.file} is missing or not what the journal recorded`);
        delete (r as { beforeBlob?: BlobRef }).beforeBlob;
        (r as { before?: string }).before = value;
        this.blobs.set(r, { value, ref });
        this.blobFiles.add(ref.file);
        this.blobCount = Math.max(this.blobCount, Number(/(\d+)$/.exec(ref.file)![1]));
      }
    }
  }

  /** The operation is over (or repaired): the file goes (then its blobs), and the directory too when it is empty. */
  async remove(): Promise<void> {
    await rm(this.path, { force: true });
    for (const file of this.blobFiles) await rm(join(dirname(this.path), file), { force: true });
    await syncDir(dirname(this.path));
    await rmdir(dirname(this.path)).catch(() => undefined);
  }

  /** Whether its process is gone (on this host), or gave up: then it is for `repair` to finish. */
  pending(): boolean {
    if (this.doc.host !== thisHost()) return false;
    return this.doc.state === 'abandoned' || !processAlive(this.doc.pid, this.doc.pidStart);
  }

  describe(): string {
    const d = this.doc;
    return `${d.operation}${d.share ? ` of share "${d.share}"` : ''} (pid ${d.pid} on ${d.host}, started ${d.started})`;
  }
}

/** A journal file as found: the journal, or why it cannot be read. */
export interface JournalEntry { id: string; journal?: Journal; error?: string }

/** Every journal in the directory, oldest first. */
export async function listJournals(dir: string): Promise<JournalEntry[]> {
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith(JOURNAL_SUFFIX)).sort();
  const out: JournalEntry[] = [];
  for (const n of names) {
    const id = n.slice(0, -JOURNAL_SUFFIX.length);
    try { out.push({ id, journal: await Journal.load(join(dir, n)) }); } catch (e) { out.push({ id, error: toGatewayError(e).message }); }
  }
  return out;
}

/**
 * Temporary files (name.tmp.<pid>.<random>) that a writer killed mid-write left in the directory, and
 * blobs whose journal is gone (a process killed while removing it, a discarded journal): removed.
 */
export async function sweepTemporaries(dir: string): Promise<string[]> {
  const out: string[] = [];
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const n of names) {
    const blob = /^(.+)\.blob\d+$/.exec(n);
    if (blob && !names.includes(blob[1]! + JOURNAL_SUFFIX)) { await rm(join(dir, n), { force: true }); out.push(n); continue; }
    const m = /\.tmp\.(\d+)\.[0-9a-f]+$/.exec(n);
    if (!m || processAlive(Number(m[1]))) continue;
    await rm(join(dir, n), { force: true });
    out.push(n);
  }
  return out;
}

// --- repair ---

/** What a repairer is given besides its record. */
export interface RepairStep { name: string; startedAt?: number; state: StepState }

export interface Repairer<C> {
  /** Undo the recorded change, whether it happened fully, partly or not at all; returns what it did, in words. */
  undo?: (rec: JournalRecord, ctx: C, step: RepairStep) => Promise<string>;
  /** Finish the recorded change (roll forward), whether it happened fully, partly or not at all. */
  redo?: (rec: JournalRecord, ctx: C, step: RepairStep) => Promise<string>;
}

export type RepairRegistry<C> = Record<string, Repairer<C>>;

export interface RepairReport {
  id: string;
  operation: string;
  share?: string;
  pid: number;
  host: string;
  started: string;
  /** rolled back: as before the operation; rolled forward: finished (past a step that cannot be undone). */
  direction: 'rolled back' | 'rolled forward';
  complete: boolean;
  actions: { step: string; did: string }[];
  problems: string[];
}

/**
 * Roll an interrupted operation back (undo its started and finished steps in reverse), or forward when
 * it had started a step that cannot be undone (finish that step and the ones after it). The journal
 * is updated as the repair goes, and removed when it is complete; otherwise it is kept (abandoned) for
 * another repair once the problems are dealt with.
 */
export async function repairJournal<C>(j: Journal, registry: RepairRegistry<C>, ctx: C, log: (m: string) => void = () => undefined): Promise<RepairReport> {
  const d = j.doc;
  const firstIrreversible = d.steps.findIndex((s) => s.irreversible && s.state !== 'pending');
  d.direction ??= firstIrreversible >= 0 ? 'forward' : 'back';
  const forward = d.direction === 'forward';
  const report: RepairReport = {
    id: d.id, operation: d.operation, ...(d.share !== undefined ? { share: d.share } : {}), pid: d.pid, host: d.host, started: d.started,
    direction: forward ? 'rolled forward' : 'rolled back', complete: false, actions: [], problems: [],
  };
  const run = async (step: JournalStep, recs: JournalRecord[], how: 'undo' | 'redo'): Promise<boolean> => {
    let ok = true;
    for (const rec of recs) {
      const fn = registry[rec.kind]?.[how];
      if (!fn) { report.problems.push(`${step.name}: no way to ${how} a "${rec.kind}" record (journal from another version?)`); ok = false; continue; }
      try {
        const did = await fn(rec, ctx, { name: step.name, startedAt: step.startedAt, state: step.state });
        log(`repair ${d.id} ${step.name}: ${did}`);
        report.actions.push({ step: step.name, did });
      } catch (e) {
        report.problems.push(`${step.name}: ${toGatewayError(e).message}`);
        ok = false;
      }
    }
    return ok;
  };
  if (forward) {
    for (const step of d.steps.slice(firstIrreversible)) {
      if (step.state === 'done') continue;
      if (await run(step, step.redo ?? [], 'redo')) { step.state = 'done'; await j.write(); } else break;
    }
  } else {
    // A step that failed is not undone (as in applyPlan's rollback): it must have left nothing of its own.
    for (const step of [...d.steps].reverse()) {
      if (!['started', 'done', 'undo-failed'].includes(step.state)) continue;
      if (await run(step, [...step.records].reverse(), 'undo')) step.state = 'undone';
      else step.state = 'undo-failed';
      await j.write();
    }
  }
  report.complete = report.problems.length === 0;
  if (report.complete) await j.remove();
  else { d.state = 'abandoned'; await j.write(); }
  return report;
}

// --- files: the one record kind the engine itself knows (every mode replaces or removes files) ---

/**
 * A file a step is about to write or remove: its bytes before (base64; null when it did not exist) and
 * mode, and the SHA-256 of what the step writes (null when the step removes it). The undo puts the old
 * bytes back only when the file is still as the step left it (or as it was: then nothing is done).
 */
export type FileRecord = { kind: 'file'; path: string; before: string | null; mode?: number; after: string | null };

async function readOrNull(path: string): Promise<Buffer | null> {
  return readFile(path).catch((e: NodeJS.ErrnoException) => { if (e.code === 'ENOENT') return null; throw e; });
}

/** The record for a file about to be replaced by `after` (its text) or removed (`after` null). */
export async function fileRecord(path: string, after: string | Buffer | null): Promise<FileRecord> {
  const buf = await readOrNull(path);
  const mode = buf ? (await stat(path)).mode & 0o7777 : undefined;
  return { kind: 'file', path, before: buf ? buf.toString('base64') : null, ...(mode !== undefined ? { mode } : {}), after: after === null ? null : sha256(after) };
}

export async function undoFile(r: FileRecord): Promise<string> {
  const cur = await readOrNull(r.path);
  const before = r.before === null ? null : Buffer.from(r.before, 'base64');
  if (cur === null ? before === null : before !== null && cur.equals(before)) return `${r.path} is as before`;
  const asLeft = r.after === null ? cur === null : cur !== null && sha256(cur) === r.after;
  if (!asLeft) throw new GatewayError('failed', `${r.path} was changed since the operation (neither as before nor as it wrote it): left as it is`);
  if (before === null) { await rm(r.path, { force: true }); return `removed ${r.path}`; }
  await writeDurable(r.path, before, r.mode ?? 0o600);
  return `put back ${r.path}`;
}

/** A file to remove when the operation is finished (rolled forward). */
export type RemoveFileRecord = { kind: 'remove-file'; path: string };

export const fileRepairers: RepairRegistry<unknown> = {
  file: { undo: (rec) => undoFile(rec as FileRecord) },
  'remove-file': {
    redo: async (rec) => {
      const { path } = rec as RemoveFileRecord;
      if ((await readOrNull(path)) === null) return `${path} is gone`;
      await rm(path, { force: true });
      return `removed ${path}`;
    },
  },
};
