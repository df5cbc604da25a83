/**
 * The error sources, read from Samba's own logs (Samba 4.17; see docs/monitoring.md):
 * - failed logons: Samba's JSON authentication audit, one JSON object per line, written to its own
 *   file with `log level = 1 auth_json_audit:3@/var/log/samba/auth.json` in [global]. Events with a
 *   status other than NT_STATUS_OK are failed logons; they name the account, not a share, so they
 *   count for every share that gives that account access (and node-wide for unknown accounts);
 * - refused tree connects (a failed operation on a share): smbd logs them at level 1 in its log
 *   files (`log file`, e.g. log.%m): "... not permitted to access this share (NAME)".
 * Files are followed like `tail -F`: from their end when first seen, through rotation (Samba renames
 * the full file to .old) and truncation.
 */
import { closeSync, fstatSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { AuditParser, type AuditEvent } from './audit.ts';

export class LogTail {
  private ino: number | undefined;
  private offset = 0;
  private rest = '';
  constructor(readonly path: string, fromStart = false) {
    const st = statOrUndef(path);
    if (st) { this.ino = st.ino; this.offset = fromStart ? 0 : st.size; }
  }

  /** Complete lines added since the last call. */
  read(): string[] {
    const st = statOrUndef(this.path);
    let text = '';
    if (this.ino !== undefined && (!st || st.ino !== this.ino)) {
      // Rotated: finish the old file (now .old) if it is still there.
      const old = statOrUndef(this.path + '.old');
      if (old && old.ino === this.ino) text += readFrom(this.path + '.old', this.offset, old.size);
      this.ino = undefined;
      this.offset = 0;
    }
    if (st) {
      if (this.ino === undefined) { this.ino = st.ino; this.offset = 0; }
      if (st.size < this.offset) this.offset = 0; // truncated
      if (st.size > this.offset) { text += readFrom(this.path, this.offset, st.size); this.offset = st.size; }
    }
    if (!text) return [];
    const lines = (this.rest + text).split('\n');
    this.rest = lines.pop() ?? '';
    return lines;
  }
}

function statOrUndef(p: string): { ino: number; size: number } | undefined {
  try { const s = statSync(p); return { ino: s.ino, size: s.size }; } catch { return undefined; }
}

/** At most 16 MiB per read: a runaway log cannot stall a collection cycle. */
function readFrom(path: string, from: number, to: number): string {
  const start = Math.max(from, to - 16 * 1024 * 1024);
  let fd: number;
  try { fd = openSync(path, 'r'); } catch { return ''; }
  try {
    const size = Math.min(to, fstatSync(fd).size) - start;
    if (size <= 0) return '';
    const buf = Buffer.alloc(size);
    let got = 0;
    while (got < size) {
      const n = readSync(fd, buf, got, size - got, start + got);
      if (n <= 0) break;
      got += n;
    }
    return buf.subarray(0, got).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

export interface FailedLogon { account: string; domain: string; status: string; remote: string }

/** A failed logon from a line of the JSON authentication audit, or undefined. */
export function parseAuthAuditLine(line: string): FailedLogon | undefined {
  const i = line.indexOf('{');
  if (i < 0 || !line.includes('"Authentication"')) return undefined;
  let j: { type?: string; Authentication?: Record<string, unknown> };
  try { j = JSON.parse(line.slice(i)) as typeof j; } catch { return undefined; }
  const a = j.Authentication;
  if (j.type !== 'Authentication' || !a) return undefined;
  const status = String(a.status ?? '');
  if (status === 'NT_STATUS_OK') return undefined;
  return {
    account: String(a.clientAccount ?? a.mappedAccount ?? '').toLowerCase(),
    domain: String(a.clientDomain ?? ''),
    status,
    remote: String(a.remoteAddress ?? ''),
  };
}

const REFUSED = [/not permitted to access this share \(([^)]+)\)/, /when connecting to \[([^\]]+)\]/];

/** The share a refused tree connect names, from an smbd log line. */
export function parseRefusedTcon(line: string): string | undefined {
  for (const re of REFUSED) {
    const m = re.exec(line);
    if (m) return m[1];
  }
  return undefined;
}

/** Where an smbd logs, from its `log file` and `log level` parameters. */
export interface LogSources {
  logDir?: string; logPrefix?: string; authJson?: string;
  /** The file of the full_audit debug class (`full_audit:1@<file>` in `log level`): audit and tree connect lines go there instead of the log files. */
  fullAudit?: string;
}

export function logSourcesFrom(logFile: string, logLevel: string): LogSources {
  const out: LogSources = {};
  if (logFile.startsWith('/')) {
    out.logDir = dirname(logFile);
    // log.%m -> every "log." file of the directory; a fixed name -> that one.
    out.logPrefix = basename(logFile).replace(/%.*$/, '');
  }
  const m = /auth_json_audit:\d+@(\S+)/.exec(logLevel);
  if (m) out.authJson = m[1];
  const fa = /(?:^|\s)full_audit:\d+@(\S+)/.exec(logLevel);
  if (fa) out.fullAudit = fa[1];
  return out;
}

/**
 * Whether smbd writes full_audit's lines anywhere the gateway reads (the tree connect events of the
 * collector, the audit preset's records): a class file for `full_audit`, or a level of at least 1 for
 * the class (its own `full_audit:N`, else the global level) into smbd's log files.
 */
export function fullAuditLogged(logFile: string, logLevel: string): boolean {
  const tokens = logLevel.trim().split(/\s+/).filter(Boolean);
  const own = tokens.map((t) => /^full_audit:(\d+)(@\S+)?$/.exec(t)).find(Boolean);
  if (own) return Number(own[1]) >= 1 && (!!own[2] || logFile.startsWith('/'));
  const global = tokens.find((t) => /^\d+$/.test(t));
  return Number(global ?? 0) >= 1 && logFile.startsWith('/');
}

/** Follows the auth audit file and the smbd log files of one smbd. */
export class ErrorLogReader {
  private readonly tails = new Map<string, LogTail>();
  private readonly audits = new Map<string, AuditParser>();
  private auth: LogTail | undefined;
  constructor(readonly sources: LogSources) {
    if (sources.authJson) this.auth = new LogTail(sources.authJson);
    this.scan(false);
  }

  private scan(fromStart: boolean): void {
    const { logDir, logPrefix, fullAudit } = this.sources;
    if (fullAudit && !this.tails.has(fullAudit)) this.tails.set(fullAudit, new LogTail(fullAudit));
    if (!logDir || logPrefix === undefined) return;
    let names: string[];
    try { names = readdirSync(logDir); } catch { return; }
    for (const n of names) {
      if (!n.startsWith(logPrefix) || n.endsWith('.old')) continue;
      const p = join(logDir, n);
      if (p === this.sources.authJson || this.tails.has(p)) continue;
      // A file that appeared since the last scan is new: read it from its start.
      this.tails.set(p, new LogTail(p, fromStart));
    }
  }

  read(): { failedLogons: FailedLogon[]; refused: string[]; audit: AuditEvent[] } {
    this.scan(true);
    const failedLogons: FailedLogon[] = [];
    for (const l of this.auth?.read() ?? []) {
      const f = parseAuthAuditLine(l);
      if (f) failedLogons.push(f);
    }
    const refused: string[] = [];
    const audit: AuditEvent[] = [];
    for (const [p, t] of this.tails) {
      const lines = t.read();
      for (const l of lines) {
        const s = parseRefusedTcon(l);
        if (s) refused.push(s);
      }
      // The audit preset's events (vfs_full_audit lines in the same files).
      if (!this.audits.has(p)) this.audits.set(p, new AuditParser());
      audit.push(...this.audits.get(p)!.feed(lines));
    }
    return { failedLogons, refused, audit };
  }
}
