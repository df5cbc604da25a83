/**
 * The audit preset's events, read back from smbd's log: vfs_full_audit (with `full_audit:syslog = false`)
 * writes each recorded VFS call as a debug level 1 message, a header line with the time followed by
 * `smbgw-audit|<share>|<user>|<client address>|<pid>|<operation>|ok|<args...>` (samba/presets.ts sets the prefix).
 * Calls become events a person asks about: a file or directory created, renamed, deleted, and a file
 * closed after it was written (write-close).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AUDIT_PREFIX } from '../samba/presets.ts';
import type { LogSources } from './logs.ts';

export interface AuditEvent {
  /** Epoch milliseconds (smbd's log time, local time of the host). */
  time: number;
  share: string;
  user: string;
  client: string;
  action: 'create' | 'mkdir' | 'rename' | 'delete' | 'write';
  path: string;
  /** rename: the new path. */
  to?: string;
}

const HEADER = /^\[(\d{4})\/(\d\d)\/(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d+))?,/;
const CREATING = new Set(['create', 'overwrite', 'overwrite_if', 'supersede']);

/** Turns one log file's lines into events; keeps what a later line needs (the time, files written). */
export class AuditParser {
  private time = 0;
  private readonly written = new Set<string>();

  feed(lines: readonly string[]): AuditEvent[] {
    const out: AuditEvent[] = [];
    for (const line of lines) {
      const h = HEADER.exec(line);
      if (h) {
        this.time = new Date(Number(h[1]), Number(h[2]) - 1, Number(h[3]), Number(h[4]), Number(h[5]), Number(h[6]), Math.floor(Number(`0.${h[7] ?? '0'}`) * 1000)).getTime();
        continue;
      }
      const i = line.indexOf(AUDIT_PREFIX + '|');
      if (i < 0) continue;
      const f = line.slice(i).trimEnd().split('|');
      const [, share, user, client, , op, result, ...args] = f;
      if (!share || !user || !op || result !== 'ok') continue;
      const base = { time: this.time, share, user, client: client ?? '' };
      const key = `${share}|${user}|${args[args.length - 1]}`;
      if (op === 'create_file') {
        // create_file|ok|<access mask>|file|dir|<disposition>|<path>
        if (args[1] === 'file' && CREATING.has(args[2] ?? '')) out.push({ ...base, action: 'create', path: args[3]! });
      } else if (op === 'mkdirat') out.push({ ...base, action: 'mkdir', path: args[0]! });
      else if (op === 'renameat') out.push({ ...base, action: 'rename', path: args[0]!, to: args[1]! });
      else if (op === 'unlinkat') out.push({ ...base, action: 'delete', path: args[0]! });
      else if (op.startsWith('pwrite')) this.written.add(key);
      else if (op === 'close' && this.written.delete(key)) out.push({ ...base, action: 'write', path: args[0]! });
    }
    return out;
  }
}

/** Every event still in smbd's log files, or in the full_audit class file when there is one (rotated `.old` files first), oldest first. */
export function readAuditLog(sources: LogSources, filter: { share?: string; user?: string; since?: number } = {}): AuditEvent[] {
  const { logDir, logPrefix } = sources;
  const files: string[] = [];
  if (sources.fullAudit) files.push(`${sources.fullAudit}.old`, sources.fullAudit);
  if (logDir && logPrefix !== undefined) {
    let names: string[] = [];
    try { names = readdirSync(logDir); } catch { /* none */ }
    for (const n of names.filter((x) => x.startsWith(logPrefix)).sort((a, b) => Number(b.endsWith('.old')) - Number(a.endsWith('.old')))) {
      const p = join(logDir, n);
      if (p !== sources.authJson && !files.includes(p)) files.push(p);
    }
  }
  const events: AuditEvent[] = [];
  for (const p of files) {
    let text: string;
    try { text = readFileSync(p, 'utf8'); } catch { continue; }
    if (!text.includes(AUDIT_PREFIX)) continue;
    events.push(...new AuditParser().feed(text.split('\n')));
  }
  return events
    .filter((e) => (filter.share === undefined || e.share.toLowerCase() === filter.share.toLowerCase())
      && (filter.user === undefined || e.user.toLowerCase() === filter.user.toLowerCase())
      && (filter.since === undefined || e.time >= filter.since))
    .sort((a, b) => a.time - b.time);
}
