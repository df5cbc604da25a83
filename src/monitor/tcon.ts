/**
 * Tree connect events: which smbd child (pid) connected to which share, learnt when it happens rather
 * than by polling, so that a connection that starts and ends between two ticks is still placed.
 *
 * Source: Samba's full_audit VFS module on every native share (src/samba/render.ts, tconAuditParams),
 * logging only successful `connect` operations, not to syslog but through smbd's debug system in its
 * class `full_audit`, at level 1 (Samba 4.17 writes, measured):
 *
 *   [2026/11/30 19:38:46.444644,  1] ../../source3/modules/vfs_full_audit.c:643(do_log)
 *     smbgw-tcon|14230|connect|ok|s1
 *
 * The line goes to the file of the class when `log level` names one (`full_audit:1@/var/log/samba/tcon.log`,
 * the recommended setup: one small file, one line per tree connect), else to smbd's log files
 * (`log file`, e.g. log.%m) when the level is at least 1. With `log level = 0` and no class file there
 * are no events, and the collector places children by polling only (docs/monitoring.md).
 * The line is written by the child itself during the tree connect, before it answers the client:
 * an event is always in the file before the connection can do any I/O.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { TconEvent } from './attribution.ts';
import { LogTail, type LogSources } from './logs.ts';
import { TCON_PREFIX } from '../samba/tconaudit.ts';
import { AUDIT_PREFIX } from '../samba/presets.ts';
const LINE = new RegExp(`${TCON_PREFIX}\\|(\\d+)\\|connect\\|ok\\|(.+?)\\s*$`);
/** An audited share's connect line (samba/presets.ts): `smbgw-audit|share|user|client|pid|connect|ok|share`. */
const AUDIT_LINE = new RegExp(`${AUDIT_PREFIX}\\|[^|]*\\|[^|]*\\|[^|]*\\|(\\d+)\\|connect\\|ok\\|(.+?)\\s*$`);

/** A tree connect from a log line, or undefined (share name as logged). */
export function parseTconLine(line: string): TconEvent | undefined {
  const m = LINE.exec(line) ?? AUDIT_LINE.exec(line);
  return m ? { pid: Number(m[1]), share: m[2]! } : undefined;
}

/** The class file of full_audit in a `log level` value, if any. */
export function tconLogFrom(logLevel: string): string | undefined {
  return /(?:^|\s)full_audit:\d+@(\S+)/.exec(logLevel)?.[1];
}

/** Follows the tree connect events of one smbd (its full_audit class file, else its log files). */
export class TconEventReader {
  private readonly tails = new Map<string, LogTail>();
  constructor(readonly file: string | undefined, readonly sources: LogSources) {
    if (file) this.tails.set(file, new LogTail(file));
    else this.scan(false);
  }

  private scan(fromStart: boolean): void {
    const { logDir, logPrefix, authJson } = this.sources;
    if (this.file || !logDir || logPrefix === undefined) return;
    let names: string[];
    try { names = readdirSync(logDir); } catch { return; }
    for (const n of names) {
      if (!n.startsWith(logPrefix) || n.endsWith('.old')) continue;
      const p = join(logDir, n);
      if (p === authJson || this.tails.has(p)) continue;
      this.tails.set(p, new LogTail(p, fromStart));
    }
  }

  /** The tree connects logged since the last call. */
  read(): TconEvent[] {
    this.scan(true);
    const out: TconEvent[] = [];
    for (const t of this.tails.values()) {
      for (const l of t.read()) {
        const e = parseTconLine(l);
        if (e) out.push(e);
      }
    }
    return out;
  }
}
