/**
 * Per-process I/O counters from /proc, as smbd sees its files.
 *
 * Measured on Samba 4.17 (see docs/monitoring.md): an smbd child serves one client connection; its
 * `rchar`/`wchar` count the bytes it read from and wrote to files (the socket traffic goes through
 * sendmsg/recvmsg, which these counters do not include), `syscr`/`syscw` the read and write calls
 * (one per SMB read/write request of up to the negotiated size). A child's counters start at zero at
 * fork, and when the parent reaps it they are added to the parent's counters: the parent's increase
 * over an interval is the I/O of the children that ended in it.
 */
import { readFileSync, readlinkSync } from 'node:fs';

export interface IoCounters { rchar: number; wchar: number; syscr: number; syscw: number }

export const ZERO_IO: IoCounters = Object.freeze({ rchar: 0, wchar: 0, syscr: 0, syscw: 0 });

export function parseProcIo(text: string): IoCounters {
  const v: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) v[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return { rchar: v.rchar ?? 0, wchar: v.wchar ?? 0, syscr: v.syscr ?? 0, syscw: v.syscw ?? 0 };
}

export function addIo(a: IoCounters, b: IoCounters): IoCounters {
  return { rchar: a.rchar + b.rchar, wchar: a.wchar + b.wchar, syscr: a.syscr + b.syscr, syscw: a.syscw + b.syscw };
}

/** b - a, never negative (a counter that went back means a new process behind the same pid). */
export function subIo(b: IoCounters, a: IoCounters): IoCounters {
  return {
    rchar: Math.max(0, b.rchar - a.rchar), wchar: Math.max(0, b.wchar - a.wchar),
    syscr: Math.max(0, b.syscr - a.syscr), syscw: Math.max(0, b.syscw - a.syscw),
  };
}

export function scaleIo(a: IoCounters, f: number): IoCounters {
  return { rchar: a.rchar * f, wchar: a.wchar * f, syscr: a.syscr * f, syscw: a.syscw * f };
}

/** Where /proc is (tests may point it elsewhere). */
export interface ProcFs {
  io(pid: number): IoCounters | undefined;
  children(pid: number): number[];
  cwd(pid: number): string | undefined;
  comm(pid: number): string | undefined;
  /** Process start time (clock ticks since boot): tells a reused pid from the old one. */
  start(pid: number): number | undefined;
}

export function procFs(root = '/proc'): ProcFs {
  const read = (p: string) => { try { return readFileSync(p, 'utf8'); } catch { return undefined; } };
  return {
    io: (pid) => { const t = read(`${root}/${pid}/io`); return t === undefined ? undefined : parseProcIo(t); },
    children: (pid) => {
      // Children of every thread of the process (smbd's are all forked by the main thread).
      const t = read(`${root}/${pid}/task/${pid}/children`);
      return t ? t.trim().split(/\s+/).filter(Boolean).map(Number) : [];
    },
    cwd: (pid) => { try { return readlinkSync(`${root}/${pid}/cwd`); } catch { return undefined; } },
    comm: (pid) => read(`${root}/${pid}/comm`)?.trim(),
    start: (pid) => {
      const t = read(`${root}/${pid}/stat`);
      if (!t) return undefined;
      // Field 22 (starttime), counted after the ")" that ends the command name.
      const f = t.slice(t.lastIndexOf(')') + 2).split(' ');
      return Number(f[19]);
    },
  };
}
