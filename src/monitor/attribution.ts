/**
 * Per-share I/O when one smbd serves several shares (native mode).
 *
 * smbd forks one child per client connection. The tracker follows the children of the smbd
 * master and keeps, per child, which shares it serves and how much of its I/O was already counted:
 * - `tick()` (every second by default, cheap: one read of the master's children list, one of the
 *   master's counters, one readlink per child not yet placed) notices new children and places them
 *   by their working directory (smbd changes into the share's path at the first tree connect), and
 *   accounts for children that ended: their uncounted tail is the increase of the master's counters
 *   (the kernel adds a reaped child's counters to its parent's);
 * - `cycle()` (every collection interval) reads each live child's counters and credits the increase
 *   to its shares. `setShares()` gives the shares of each child from `smbstatus --json` tree connects.
 * A child with tree connects on several shares has its I/O split by the weights given (open files
 * per share), else evenly.
 *
 * Tree connect events (`tick(events)`: pid and share, written by smbd's full_audit module at the
 * tree connect itself, see tcon.ts) place a child even when it starts and ends between two ticks:
 * an event whose pid is not a live child any more is a connection that ended unseen, and it takes
 * its part of the master's increase like any other child that ended. Without events, such
 * connections cannot be placed. I/O that cannot be placed (the master's own, unplaced connections)
 * is counted as unattributed, so that nothing is lost from the totals.
 */
import { addIo, scaleIo, subIo, ZERO_IO, type IoCounters, type ProcFs } from './procio.ts';

/** A tree connect: the smbd child `pid` connected to `share` (a share name as the collector knows it). */
export interface TconEvent { pid: number; share: string }

interface Child {
  pid: number;
  start: number | undefined;
  shares: Map<string, number>; // share -> weight
  /** Counters already credited. */
  counted: IoCounters;
}

export class NativeIoTracker {
  /** Cumulative I/O per share since the tracker started. */
  readonly totals = new Map<string, IoCounters>();
  unattributed: IoCounters = { ...ZERO_IO };
  private children = new Map<number, Child>();
  private masterLast: IoCounters | undefined;

  constructor(
    private readonly proc: ProcFs,
    readonly masterPid: number,
    /** Share served from a directory (the child's cwd), if any. */
    private readonly shareOfPath: (path: string) => string | undefined,
  ) {}

  private credit(shares: Map<string, number>, io: IoCounters): void {
    if (!shares.size) { this.unattributed = addIo(this.unattributed, io); return; }
    let sum = 0;
    for (const w of shares.values()) sum += w;
    for (const [share, w] of shares) {
      const part = sum > 0 ? scaleIo(io, w / sum) : scaleIo(io, 1 / shares.size);
      this.totals.set(share, addIo(this.totals.get(share) ?? ZERO_IO, part));
    }
  }

  /**
   * Discover and place children; account for the ones that ended. `events`: the tree connects since
   * the last tick, read before this call (so every pid in them was forked before the children list
   * is read here). Returns false if the master is gone.
   */
  tick(events: readonly TconEvent[] = []): boolean {
    // A consistent view: the children list read before and after the master's counters. A child
    // reaped in between would have its counters in the master's while still listed: read again.
    let live = new Set<number>();
    let master: IoCounters | undefined;
    for (let i = 0; i < 4; i++) {
      const before = this.proc.children(this.masterPid);
      master = this.proc.io(this.masterPid);
      if (!master) return false;
      live = new Set(this.proc.children(this.masterPid));
      if (before.every((p) => live.has(p))) break;
    }
    if (!master) return false;
    const byEvent = new Map<number, Map<string, number>>();
    for (const e of events) {
      const m = byEvent.get(e.pid) ?? new Map<string, number>();
      m.set(e.share, 1);
      byEvent.set(e.pid, m);
    }
    const ended: Child[] = [];
    for (const [pid, c] of this.children) {
      if (!live.has(pid) || (c.start !== undefined && this.proc.start(pid) !== c.start)) {
        ended.push(c);
        this.children.delete(pid);
      }
    }
    for (const pid of live) {
      let c = this.children.get(pid);
      if (!c) {
        // Children that exist when the tracker starts count from now; later ones from their fork (zero).
        const counted = this.masterLast ? { ...ZERO_IO } : this.proc.io(pid) ?? { ...ZERO_IO };
        c = { pid, start: this.proc.start(pid), shares: new Map(), counted };
        this.children.set(pid, c);
      }
      const ev = byEvent.get(pid);
      if (ev) {
        for (const share of ev.keys()) if (!c.shares.has(share)) c.shares.set(share, 1);
        byEvent.delete(pid);
      }
      if (!c.shares.size) {
        const cwd = this.proc.cwd(pid);
        const share = cwd ? this.shareOfPath(cwd) : undefined;
        if (share) c.shares.set(share, 1);
      }
    }
    // Events of children that are gone: connections that started and ended since the last tick.
    for (const [pid, shares] of byEvent) {
      const known = ended.find((c) => c.pid === pid);
      if (known) { for (const share of shares.keys()) if (!known.shares.has(share)) known.shares.set(share, 1); continue; }
      if (this.masterLast) ended.push({ pid, start: undefined, shares, counted: { ...ZERO_IO } });
    }
    if (this.masterLast) {
      const delta = subIo(master, this.masterLast);
      // The master's increase holds the ended children's whole counters: what was already credited
      // comes off, the rest is their tail. With several ended children, the tail is split evenly.
      let tail = delta;
      for (const c of ended) tail = subIo(tail, c.counted);
      const placed = ended.filter((c) => c.shares.size);
      if (placed.length) {
        const each = scaleIo(tail, 1 / ended.length);
        for (const c of placed) this.credit(c.shares, each);
        if (placed.length < ended.length) this.unattributed = addIo(this.unattributed, scaleIo(each, ended.length - placed.length));
      } else {
        this.unattributed = addIo(this.unattributed, tail);
      }
    }
    this.masterLast = master;
    return true;
  }

  /** Shares of each child from the tree connects (pid -> share -> weight). Children not listed keep theirs. */
  setShares(byPid: Map<number, Map<string, number>>): void {
    for (const [pid, shares] of byPid) {
      const c = this.children.get(pid);
      if (c && shares.size) c.shares = new Map(shares);
    }
  }

  /** Read every live child's counters and credit the increase. */
  cycle(): void {
    for (const [pid, c] of this.children) {
      if (!c.shares.size) continue; // credited once placed (or, if it ends unplaced, as unattributed)
      const io = this.proc.io(pid);
      if (!io) continue;
      this.credit(c.shares, subIo(io, c.counted));
      c.counted = io;
    }
  }

  /** Live children and their shares (status, tests). */
  snapshot(): { pid: number; shares: string[] }[] {
    return [...this.children].map(([pid, c]) => ({ pid, shares: [...c.shares.keys()] }));
  }
}

/**
 * LXC mode: a container runs its own smbd for its share, so all of the container's smbd I/O
 * belongs to that share: the sum over the smbd processes in the container's cgroup, plus their
 * children that ended but are not reaped yet (a zombie has left cgroup.procs, but its counters are
 * not in its parent's until the parent reaps it; without them a connection that ends just before a
 * collection would be missing from it). `masters` names the smbd processes that are not another
 * smbd's child (pid and start time): when it changes, smbd was restarted and its counters began again.
 */
export function cgroupSmbdIo(proc: ProcFs, pids: readonly number[]): { io: IoCounters; masters: string } {
  const smbd = pids.filter((pid) => proc.comm(pid) === 'smbd');
  const childOf = new Map(smbd.map((pid) => [pid, proc.children(pid)] as const));
  const children = new Set([...childOf.values()].flat());
  const masters = smbd.filter((p) => !children.has(p));
  // The masters first, then the children: a child reaped in between is then missing from this sum
  // (made up by the next one), never counted both in its parent's counters and as itself.
  let io: IoCounters = { ...ZERO_IO };
  for (const pid of masters) io = addIo(io, proc.io(pid) ?? ZERO_IO);
  for (const pid of masters) {
    for (const c of proc.children(pid)) {
      if (proc.comm(c) === 'smbd') io = addIo(io, proc.io(c) ?? ZERO_IO);
    }
  }
  return { io, masters: masters.map((p) => `${p}@${proc.start(p)}`).sort().join(',') };
}

/**
 * Keeps a monotonic total from the container's smbd sum. With the same smbd masters, the sum can only
 * grow: a dip (a child reaped while it was being read, see above) is ignored and only growth past the
 * highest value seen is counted. New masters (smbd restarted) start from zero.
 */
export class MonotonicCounter {
  total: IoCounters = { ...ZERO_IO };
  private high: IoCounters | undefined;
  private masters: string | undefined;
  update(now: IoCounters, masters: string): IoCounters {
    if (this.high === undefined) {
      this.high = now;
    } else if (masters !== this.masters) {
      this.total = addIo(this.total, now);
      this.high = now;
    } else {
      this.total = addIo(this.total, subIo(now, this.high));
      this.high = {
        rchar: Math.max(this.high.rchar, now.rchar), wchar: Math.max(this.high.wchar, now.wchar),
        syscr: Math.max(this.high.syscr, now.syscr), syscw: Math.max(this.high.syscw, now.syscw),
      };
    }
    this.masters = masters;
    return this.total;
  }
}
