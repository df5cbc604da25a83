/**
 * The metrics collector: every interval (default 10 s) one sample per monitored share, written to
 * the metrics database, and cumulative counters kept for the Prometheus endpoint.
 *
 * Sources, per cycle: `smbstatus --json` once (tree connects and sessions per share, which smbd
 * child serves which share), /proc/<pid>/io of smbd's children (see attribution.ts), Samba's auth
 * audit and smbd logs (logs.ts), storage usage (usage.ts). A tick every second (default) places new
 * smbd children and accounts for the ones that ended between cycles.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { parseSmbStatus } from '../samba/samba.ts';
import { pctExec } from '../provision/guest.ts';
import { join, sep } from 'node:path';
import type { Gateway } from '../provision/context.ts';
import type { Share } from '../core/share.ts';
import { NativeIoTracker, cgroupSmbdIo, MonotonicCounter } from './attribution.ts';
import type { MetricsDb, Sample } from './db.ts';
import { ErrorLogReader, logSourcesFrom } from './logs.ts';
import { TconEventReader, tconLogFrom } from './tcon.ts';
import { LxcLocator } from './lxc.ts';
import { procFs, ZERO_IO, type IoCounters, type ProcFs } from './procio.ts';
import { UsageCache } from './usage.ts';

export interface ShareState {
  share: string;
  mode: string;
  sample: Sample;
  readBytes: number;
  writtenBytes: number;
  readOps: number;
  writeOps: number;
  failedLogons: number;
  refusedTreeConnects: number;
  /** Events the audit preset recorded (monitor/audit.ts). */
  auditEvents?: number;
  sessions: number;
  treeConnects: number;
}

export interface CollectorStats {
  cycles: number;
  lastCycleSeconds: number;
  lastCycleCpuSeconds: number;
  lastTime: number;
  /** Seconds between the last two cycles (the rates' denominator). */
  lastIntervalSeconds: number;
  unattributedReadBytes: number;
  unattributedWrittenBytes: number;
  failedLogonsUnknownAccount: number;
  errors: string[];
}

export interface CollectorOptions {
  db: MetricsDb;
  intervalMs?: number;
  tickMs?: number;
  usageRefreshMs?: number;
  /** Epoch seconds, fractions allowed (tests inject a clock). */
  now?: () => number;
  proc?: ProcFs;
  /** LXC mode: the pids of a share's container (its cgroup), or undefined when not running (default: LxcLocator, see lxc.ts). */
  containerPids?: (share: Share) => number[] | undefined | Promise<number[] | undefined>;
  /** LXC mode: count sessions with `pct exec <vmid> -- smbstatus --json` every cycle (default true). */
  lxcConnections?: boolean;
}

/** The last value of a [global] parameter in an smb.conf and the files it includes (Samba's own order). */
export function globalParam(file: string, name: string, depth = 0): string {
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch { return ''; }
  let value = '';
  let global = true;
  const want = name.replace(/\s+/g, '').toLowerCase();
  const alias = want === 'loglevel' ? 'debuglevel' : want;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) { global = sec[1]!.trim().toLowerCase() === 'global'; continue; }
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq).replace(/\s+/g, '').toLowerCase();
    const v = line.slice(eq + 1).trim();
    if (key === 'include' && depth < 5 && v.startsWith('/')) {
      const inner = globalParam(v, name, depth + 1);
      if (inner) value = inner;
    } else if (global && (key === want || key === alias)) value = v;
  }
  return value;
}

export class Collector {
  readonly intervalMs: number;
  readonly tickMs: number;
  readonly state = new Map<string, ShareState>();
  readonly stats: CollectorStats = {
    cycles: 0, lastCycleSeconds: 0, lastCycleCpuSeconds: 0, lastTime: 0, lastIntervalSeconds: 0,
    unattributedReadBytes: 0, unattributedWrittenBytes: 0, failedLogonsUnknownAccount: 0, errors: [],
  };
  private readonly now: () => number;
  private readonly proc: ProcFs;
  private readonly usage: UsageCache;
  private tracker: NativeIoTracker | undefined;
  private logs: ErrorLogReader | undefined;
  private tcons: TconEventReader | undefined;
  /** Monitored native shares by lower-case name (tree connect events name the share as the client wrote it). */
  private nativeByLower = new Map<string, string>();
  private sambaConfKey = '';
  private pidDir: string | undefined;
  private readonly containers = new Map<string, MonotonicCounter>();
  private readonly lxc: LxcLocator;
  /** Cumulative I/O per share at the previous cycle, and when. */
  private prev = new Map<string, IoCounters>();
  private prevTime: number | undefined;
  private shareByPath: [string, string][] = [];
  private timer: NodeJS.Timeout | undefined;
  private ticker: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;

  constructor(readonly g: Gateway, readonly opts: CollectorOptions) {
    this.intervalMs = opts.intervalMs ?? 10_000;
    this.tickMs = opts.tickMs ?? 1000;
    this.now = opts.now ?? (() => Date.now() / 1000);
    this.proc = opts.proc ?? procFs();
    this.usage = new UsageCache(g.run, opts.usageRefreshMs ?? 60_000);
    this.lxc = new LxcLocator(g.run);
  }

  start(): void {
    if (this.timer) return;
    const cycle = () => {
      if (this.running) return;
      this.running = this.collect().catch((e: Error) => this.note(`cycle: ${e.message}`)).finally(() => { this.running = undefined; });
    };
    this.timer = setInterval(cycle, this.intervalMs);
    this.ticker = setInterval(() => { try { this.tick(); } catch (e) { this.note(`tick: ${(e as Error).message}`); } }, this.tickMs);
    this.timer.unref();
    this.ticker.unref();
    cycle();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    clearInterval(this.ticker);
    this.timer = this.ticker = undefined;
    await this.running;
  }

  private note(msg: string): void {
    this.stats.errors = [...this.stats.errors.slice(-9), `${new Date().toISOString()} ${msg}`];
    this.g.log(`collector: ${msg}`);
  }

  /** Read smbd's parameters (pid directory, log files) again when smb.conf changed. */
  private async sambaParams(): Promise<void> {
    const conf = this.g.settings.smbConf;
    let key = '';
    try { const st = statSync(conf); key = `${st.ino}:${st.mtimeMs}`; } catch { /* none */ }
    try { const st = statSync(this.g.settings.managedConf); key += `:${st.mtimeMs}`; } catch { /* none */ }
    if (key === this.sambaConfKey) return;
    this.sambaConfKey = key;
    // testparm shows only the global level of `log level`, not its per-class parts: read the file.
    const [pidDir, logFile, logLevel] = [await this.g.samba.parameter('pid directory'), await this.g.samba.parameter('log file'), globalParam(conf, 'log level')];
    this.pidDir = pidDir || undefined;
    const sources = logSourcesFrom(logFile, logLevel);
    if (!this.logs || JSON.stringify(this.logs.sources) !== JSON.stringify(sources)) this.logs = new ErrorLogReader(sources);
    const tconLog = tconLogFrom(logLevel);
    if (!this.tcons || this.tcons.file !== tconLog || JSON.stringify(this.tcons.sources) !== JSON.stringify(sources)) this.tcons = new TconEventReader(tconLog, sources);
  }

  /** The smbd master of this host's smb.conf, from its pid file. */
  private masterPid(): number | undefined {
    if (!this.pidDir) return undefined;
    let names: string[];
    try { names = readdirSync(this.pidDir); } catch { return undefined; }
    for (const n of names.filter((x) => /^smbd.*\.pid$/.test(x))) {
      const pid = Number(readFileSync(join(this.pidDir, n), 'utf8').trim());
      if (pid > 0 && this.proc.comm(pid) === 'smbd') return pid;
    }
    return undefined;
  }

  private shareOfPath = (p: string): string | undefined => {
    for (const [path, name] of this.shareByPath) if (p === path || p.startsWith(path + sep)) return name;
    return undefined;
  };

  /** Cheap, every second: read the tree connect events, place new smbd children, account for the ones that ended. */
  tick(): void {
    // Only monitored native shares log tree connects. One made since the last cycle is not in the map
    // yet: its events keep the name smbd logged (the rendered section name), so its first connections count.
    const events = (this.tcons?.read() ?? []).map((e) => ({ pid: e.pid, share: this.nativeByLower.get(e.share.toLowerCase()) ?? e.share }));
    if (this.tracker && !this.tracker.tick(events)) this.tracker = undefined;
  }

  /** One collection cycle: returns the samples written. */
  async collect(): Promise<Sample[]> {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const now = this.now();
    const shares = (await this.g.store.list()).filter((s) => s.monitoring_enabled);
    const native = shares.filter((s) => s.mode === 'native');
    this.shareByPath = native.map((s) => [s.path, s.sharename] as [string, string]).sort((a, b) => b[0].length - a[0].length);
    this.nativeByLower = new Map(native.map((s) => [s.sharename.toLowerCase(), s.sharename]));
    const byLower = new Map(shares.map((s) => [s.sharename.toLowerCase(), s.sharename]));
    const sessions = new Map<string, Set<string>>();
    const tconCount = new Map<string, number>();

    await this.sambaParams();
    // Native shares: the host's smbd.
    if (native.length) {
      const master = this.masterPid();
      if (master && this.tracker?.masterPid !== master) {
        this.tracker = new NativeIoTracker(this.proc, master, this.shareOfPath);
        this.tracker.tick();
      }
      if (!master) this.tracker = undefined;
      this.tick();
      if (master) {
        const view = await this.g.samba.status().catch((e: Error) => { this.note(`smbstatus failed: ${e.message.split('\n').slice(-1)[0]}`); return undefined; });
        const byPid = new Map<number, Map<string, number>>();
        for (const t of view?.tcons ?? []) {
          const name = byLower.get(t.service.toLowerCase());
          if (!name) continue;
          sessions.set(name, (sessions.get(name) ?? new Set()).add(t.sessionId));
          tconCount.set(name, (tconCount.get(name) ?? 0) + 1);
          const m = byPid.get(t.pid) ?? new Map<string, number>();
          m.set(name, 0);
          byPid.set(t.pid, m);
        }
        // Weights for a child serving several shares: its open files per share (at least 1 each).
        for (const [pid, m] of byPid) {
          const open = view?.openByPidPath.get(pid);
          const paths = new Map(shares.map((s) => [s.path, s.sharename]));
          for (const name of m.keys()) m.set(name, 0);
          if (open) for (const [p, n] of open) { const nm = paths.get(p); if (nm && m.has(nm)) m.set(nm, n); }
          if ([...m.values()].every((v) => v === 0)) for (const name of m.keys()) m.set(name, 1);
        }
        this.tracker?.setShares(byPid);
        this.tracker?.cycle();
      }
    }
    const totals = new Map<string, IoCounters>();
    for (const s of native) totals.set(s.sharename, this.tracker?.totals.get(s.sharename) ?? this.prev.get(s.sharename) ?? { ...ZERO_IO });
    // LXC shares: everything the smbd processes in the share's container (share.vmid) do.
    for (const s of shares.filter((x) => x.mode === 'lxc')) {
      const c = this.containers.get(s.sharename) ?? new MonotonicCounter();
      this.containers.set(s.sharename, c);
      if (s.vmid !== undefined || this.opts.containerPids) {
        const pids = this.opts.containerPids ? await this.opts.containerPids(s) : await this.lxc.pids(s.vmid!);
        if (pids) { const x = cgroupSmbdIo(this.proc, pids); if (x.masters) c.update(x.io, x.masters); }
        if (pids && s.vmid !== undefined && this.opts.lxcConnections !== false) {
          // smbstatus runs inside the container (its own smbd and tdbs): through the node's `pct`.
          const view = await pctExec(this.g.run, s.vmid, ['smbstatus', '--json'], undefined, 15_000).then(parseSmbStatus)
            .catch((e: Error) => { this.note(`CT ${s.vmid}: smbstatus failed: ${e.message.split('\n').slice(-1)[0]}`); return undefined; });
          for (const t of view?.tcons ?? []) {
            if (t.service.toLowerCase() !== s.sharename.toLowerCase()) continue;
            sessions.set(s.sharename, (sessions.get(s.sharename) ?? new Set()).add(t.sessionId));
            tconCount.set(s.sharename, (tconCount.get(s.sharename) ?? 0) + 1);
          }
        }
      }
      totals.set(s.sharename, c.total);
    }

    // Errors since the last cycle.
    const failed = new Map<string, number>();
    const refused = new Map<string, number>();
    const ev = this.logs?.read() ?? { failedLogons: [], refused: [], audit: [] };
    const audited = new Map<string, number>();
    for (const a of ev.audit) { const n = byLower.get(a.share.toLowerCase()); if (n) audited.set(n, (audited.get(n) ?? 0) + 1); }
    for (const f of ev.failedLogons) {
      const acct = f.account.includes('\\') ? f.account.split('\\').pop()! : f.account;
      const hit = shares.filter((s) => s.users.includes(acct) || s.read_users.includes(acct));
      if (!hit.length) this.stats.failedLogonsUnknownAccount++;
      for (const s of hit) failed.set(s.sharename, (failed.get(s.sharename) ?? 0) + 1);
    }
    for (const name of ev.refused) {
      const n = byLower.get(name.toLowerCase());
      if (n) refused.set(n, (refused.get(n) ?? 0) + 1);
    }

    const usage = await this.usage.get(shares);
    const dt = this.prevTime === undefined ? 0 : Math.max(0.001, now - this.prevTime);
    this.stats.lastIntervalSeconds = dt;
    const samples: Sample[] = [];
    for (const s of shares) {
      const name = s.sharename;
      const cur = totals.get(name) ?? { ...ZERO_IO };
      // A share first seen after the collector's first cycle is new since then: its counters started at
      // zero with it, and what it did before this sample (a client right after create) is this interval's.
      const before = this.prev.get(name) ?? (this.prevTime !== undefined && s.mode === 'native' ? ZERO_IO : undefined);
      const d = before && dt ? { rchar: cur.rchar - before.rchar, wchar: cur.wchar - before.wchar, syscr: cur.syscr - before.syscr, syscw: cur.syscw - before.syscw } : undefined;
      const u = usage.get(name);
      const errs = (failed.get(name) ?? 0) + (refused.get(name) ?? 0);
      const sample: Sample = {
        share: name, time: Math.floor(now),
        throughput_read: d ? Math.max(0, d.rchar) / dt : null,
        throughput_write: d ? Math.max(0, d.wchar) / dt : null,
        iops_read: d ? Math.max(0, d.syscr) / dt : null,
        iops_write: d ? Math.max(0, d.syscw) / dt : null,
        connections: sessions.get(name)?.size ?? 0,
        errors: errs,
        storage_used: u?.used ?? null,
        storage_total: u?.total ?? null,
      };
      samples.push(sample);
      const st = this.state.get(name);
      this.state.set(name, {
        share: name, mode: s.mode, sample,
        readBytes: cur.rchar, writtenBytes: cur.wchar, readOps: cur.syscr, writeOps: cur.syscw,
        failedLogons: (st?.failedLogons ?? 0) + (failed.get(name) ?? 0),
        refusedTreeConnects: (st?.refusedTreeConnects ?? 0) + (refused.get(name) ?? 0),
        auditEvents: (st?.auditEvents ?? 0) + (audited.get(name) ?? 0),
        sessions: sessions.get(name)?.size ?? 0,
        treeConnects: tconCount.get(name) ?? 0,
      });
      this.prev.set(name, cur);
    }
    for (const name of [...this.state.keys()]) if (!shares.some((s) => s.sharename === name)) { this.state.delete(name); this.prev.delete(name); this.tracker?.totals.delete(name); this.containers.delete(name); }
    this.prevTime = now;
    this.opts.db.insert(samples);
    this.opts.db.maintain();
    const un = this.tracker?.unattributed;
    if (un) { this.stats.unattributedReadBytes = un.rchar; this.stats.unattributedWrittenBytes = un.wchar; }
    const cpu = process.cpuUsage(cpu0);
    this.stats.cycles++;
    this.stats.lastCycleSeconds = (performance.now() - t0) / 1000;
    this.stats.lastCycleCpuSeconds = (cpu.user + cpu.system) / 1e6;
    this.stats.lastTime = Math.floor(now);
    return samples;
  }
}
