/**
 * Real unprivileged LXC containers, configured the way Proxmox VE configures them:
 * - `lxc.idmap` u/g 0 100000 65536 (or any map, e.g. a passthrough of uid 1000), root's ranges in
 *   /etc/subuid and /etc/subgid ensured (only missing lines are appended);
 * - root filesystem: an overlay whose lower dir is the cached rootfs already shifted into the map
 *   (made once by extracting inside the user namespace, like `pct create`), and a per-container upper
 *   dir: a copy-on-write "linked clone", instant, and the cache stays clean. A caller may instead give
 *   its own rootfs dir (already shifted, e.g. from `extractTemplate`) or another lower dir (a template);
 * - hostname, memory limit, bind mount points (host path -> path inside, like Proxmox's mpN);
 * - network: `lxc.net.0.type = empty`, then a veth from a namespace the caller owns (GuestNetwork) with a
 *   static address inside (`lxc-start` under `ip netns exec` does not work: it remounts /sys);
 * - systemd as init (like a standard template), so smbd starts as a service.
 * exec/push run commands and write files inside; memory() reads the container's memory cgroup.
 * Every container has a unique name and lives in its own LXC path; destroy() removes all of it.
 */
import { mkdir, rm, writeFile, readFile, chown, chmod, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { note, run, runWithInput, since, sleep, uid, waitFor } from './common.ts';
import { reapStale, writeOwner } from './reap.ts';
import { ensureSubids, lxcIdmapLines, PROXMOX_IDMAP, toHost, type IdMap } from './idmap.ts';
import { shiftedRootfs } from './rootfs.ts';
import type { GuestNetwork } from './netns.ts';
import type { RunResult } from '../../src/core/exec.ts';

export interface MountPoint {
  /** Directory on the host (must exist). */
  host: string;
  /** Absolute path inside the container. */
  path: string;
  readOnly?: boolean;
  /** Extra mount options, e.g. 'idmap=container' (host ids seen unshifted inside; see docs/guests.md). */
  options?: string[];
}

export interface ContainerOptions {
  /** Unique name; default `smbgw-ct-<random>`. */
  name?: string;
  hostname?: string;
  /** Default: Proxmox's map u/g 0 100000 65536; an empty map makes a privileged container. */
  idmap?: IdMap;
  /** Memory limit in MiB (Proxmox `memory`); default 128. */
  memoryMiB?: number;
  mounts?: MountPoint[];
  /**
   * Root filesystem: default an overlay on the cached shifted rootfs (removed by destroy). `lowerDir`:
   * an overlay on that dir instead. `dir`: use this directory as is (already owned by the mapped ids,
   * e.g. from extractTemplate or mountOverlay); it is the caller's and destroy() leaves it alone.
   */
  rootfs?: { lowerDir: string } | { dir: string };
  /** Network to plug into on start, with the container's address (cidr, e.g. 10.77.3.10/24). */
  net?: { network: GuestNetwork; cidr: string; gateway?: string };
  /** lxc.init.cmd; default the rootfs's /sbin/init (systemd). */
  init?: string[];
  /** Where the container's config, upper dir and logs go; default a fresh dir under /tmp. */
  baseDir?: string;
  /** Extra raw LXC config lines. */
  extraConfig?: string[];
}

export interface MemoryUsage {
  /** Total charged to the cgroup (memory.usage_in_bytes / memory.current), page cache included. */
  usage: number;
  /** Page cache part (memory.stat total_cache / file). */
  cache: number;
  /** usage - cache: what Proxmox shows as the CT's memory. */
  used: number;
  /** Anonymous memory (total_rss / anon). */
  rss: number;
  limit: number | undefined;
}

export interface Container {
  name: string;
  lxcPath: string;
  /** Merged root filesystem as seen from the host (overlay mount), writable by host root. */
  rootfs: string;
  idmap: IdMap;
  /** Address inside the network, if any. */
  ip: string | undefined;
  start: () => Promise<{ seconds: number; pid: number }>;
  stop: (timeoutS?: number) => Promise<void>;
  /** Init pid (host view) while running. */
  pid: () => Promise<number>;
  state: () => Promise<string>;
  /** Runs argv inside the container (lxc-attach, clean environment). */
  exec: (cmd: string[], opts?: { input?: string; allowFail?: boolean; timeoutMs?: number }) => Promise<RunResult>;
  /** Writes a file inside the running container (like `pct push`), mode and owner (container ids) optional. */
  push: (content: string | Buffer, dest: string, opts?: { mode?: number; uid?: number; gid?: number }) => Promise<void>;
  memory: () => Promise<MemoryUsage>;
  /** Stops (kill) and removes everything: overlay, dirs, config. Safe to call twice. */
  destroy: () => Promise<void>;
}

function configText(o: {
  name: string; hostname: string; rootfs: string; idmap: IdMap; memoryMiB: number; mounts: MountPoint[];
  init: string[] | undefined; logFile: string; extra: string[]; cgroupV1Memory: boolean;
}): string {
  const lines = [
    `lxc.uts.name = ${o.hostname}`,
    'lxc.arch = amd64',
    'lxc.include = /usr/share/lxc/config/debian.common.conf',
    ...(o.idmap.length ? ['lxc.include = /usr/share/lxc/config/debian.userns.conf', ...lxcIdmapLines(o.idmap)] : []),
    `lxc.rootfs.path = dir:${o.rootfs}`,
    'lxc.net.0.type = empty',
    // Proxmox confines CTs with its lxc-container-default-cgns profile; AppArmor is not enabled on this kernel.
    'lxc.apparmor.profile = unconfined',
    'lxc.tty.max = 2',
    'lxc.environment = TERM=linux',
    o.cgroupV1Memory ? `lxc.cgroup.memory.limit_in_bytes = ${o.memoryMiB}M` : `lxc.cgroup2.memory.max = ${o.memoryMiB}M`,
    `lxc.log.file = ${o.logFile}`,
    'lxc.log.level = INFO',
  ];
  for (const m of o.mounts) {
    if (!m.path.startsWith('/') || /\s/.test(m.path) || /\s/.test(m.host)) throw new Error(`mount point ${m.host} -> ${m.path}: absolute paths without spaces only`);
    const opts = ['bind', 'create=dir', ...(m.readOnly ? ['ro'] : []), ...(m.options ?? [])];
    lines.push(`lxc.mount.entry = ${m.host} ${m.path.replace(/^\/+/, '')} none ${opts.join(',')} 0 0`);
  }
  if (o.init) lines.push(`lxc.init.cmd = ${o.init.join(' ')}`);
  lines.push(...o.extra);
  return lines.join('\n') + '\n';
}

async function cgroupV1Memory(): Promise<boolean> {
  return readFile('/proc/self/cgroup', 'utf8').then((t) => /^\d+:[^:]*\bmemory\b[^:]*:/m.test(t), () => false);
}

/** Memory cgroup of a process: v1 (`N:memory:/path`) or v2 (`0::/path`) — returns the directory. */
async function memoryCgroupDir(pid: number): Promise<string> {
  const t = await readFile(`/proc/${pid}/cgroup`, 'utf8');
  const v1 = /^\d+:(?:[^:]*,)?memory(?:,[^:]*)?:(.*)$/m.exec(t);
  if (v1) return join('/sys/fs/cgroup/memory', v1[1]!);
  const v2 = /^0::(.*)$/m.exec(t);
  if (v2) return join('/sys/fs/cgroup', v2[1]!);
  throw new Error(`no memory cgroup for pid ${pid}`);
}

export async function readMemory(pid: number): Promise<MemoryUsage> {
  let dir = await memoryCgroupDir(pid);
  // systemd inside puts init into init.scope; LXC's limit and totals sit on the container's cgroup.
  const m = /^(.*\/lxc\.payload\.[^/]+)/.exec(dir);
  if (m) dir = m[1]!;
  const num = async (f: string) => readFile(join(dir, f), 'utf8').then((s) => (s.trim() === 'max' ? undefined : Number(s.trim())), () => undefined);
  const stat = Object.fromEntries((await readFile(join(dir, 'memory.stat'), 'utf8')).split('\n').filter(Boolean).map((l) => { const [k, v] = l.split(' '); return [k!, Number(v)]; }));
  const v1 = (await num('memory.usage_in_bytes')) !== undefined;
  const usage = (v1 ? await num('memory.usage_in_bytes') : await num('memory.current')) ?? 0;
  const cache = v1 ? stat.total_cache ?? stat.cache ?? 0 : stat.file ?? 0;
  const rss = v1 ? stat.total_rss ?? stat.rss ?? 0 : stat.anon ?? 0;
  const lim = v1 ? await num('memory.limit_in_bytes') : await num('memory.max');
  return { usage, cache, used: usage - cache, rss, limit: lim !== undefined && lim < 2 ** 60 ? lim : undefined };
}

/**
 * A copy-on-write root filesystem: overlay of `lower` (read-only, e.g. the cached shifted rootfs or a
 * template's rootfs) with `<dir>/upper` (owned by the container's root) mounted at `<dir>/rootfs`.
 * This is how linked clones are made here. Returns the mount point.
 */
export async function mountOverlay(lower: string, dir: string, rootUid: number, rootGid: number): Promise<string> {
  const upper = join(dir, 'upper');
  const work = join(dir, 'work');
  const merged = join(dir, 'rootfs');
  for (const d of [upper, work, merged]) await mkdir(d, { recursive: true });
  await chown(upper, rootUid, rootGid);
  await chmod(upper, 0o755);
  await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, merged]);
  return merged;
}

/** Unmounts (lazily if busy) a mount point made by mountOverlay; no error if nothing is mounted. */
export async function unmountOverlay(dir: string): Promise<void> {
  const merged = join(dir, 'rootfs');
  const r = await run('umount', [merged], { allowFail: true });
  if (r.code !== 0 && !/not mounted|no mount point|not found/i.test(r.stderr)) await run('umount', ['-l', merged], { allowFail: true });
}

/**
 * LXC mounts bind-mount sources from inside the container's user namespace, where host root is nobody:
 * every parent directory must be searchable by others (o+x), or lxc-start fails with EACCES.
 */
async function assertTraversable(path: string): Promise<void> {
  const parts = path.split('/').filter(Boolean);
  for (let i = 0; i < parts.length; i++) {
    const p = '/' + parts.slice(0, i).join('/');
    const st = await stat(p);
    if (!(st.mode & 0o001)) throw new Error(`mount source ${path}: parent ${p} is not searchable by others (mode ${(st.mode & 0o777).toString(8)}); an unprivileged container cannot reach it`);
  }
  await stat(path);
}

export async function createContainer(opts: ContainerOptions = {}): Promise<Container> {
  const name = opts.name ?? `smbgw-ct-${uid()}`;
  if (!/^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/.test(name)) throw new Error(`container name ${name}: letters, digits, '.', '-'`);
  const idmap = opts.idmap ?? PROXMOX_IDMAP;
  const hostname = opts.hostname ?? name;
  // An empty map means a privileged container (container root = host root), like `unprivileged: 0`.
  const privileged = idmap.length === 0;
  const rootUid = privileged ? 0 : toHost(idmap, 'u', 0);
  const rootGid = privileged ? 0 : toHost(idmap, 'g', 0);
  if (rootUid === undefined || rootGid === undefined) throw new Error('idmap: container root (0) must be mapped');
  if (!privileged) await ensureSubids(idmap);
  for (const m of opts.mounts ?? []) await assertTraversable(m.host);
  const base = opts.baseDir ?? join('/tmp', `smbgw-lxc-${name}`);
  const lxcPath = join(base, 'lxc');
  const ctDir = join(lxcPath, name);
  const logFile = join(base, 'lxc.log');
  let rootfs: string;
  let overlay = false;
  await reapStale();
  await mkdir(ctDir, { recursive: true });
  await writeOwner(base, { kind: 'lxc', name, lxcPath });
  const cleanupDirs = async () => { await rm(base, { recursive: true, force: true }); };
  try {
    if (opts.rootfs && 'dir' in opts.rootfs) {
      rootfs = opts.rootfs.dir;
    } else {
      const lower = opts.rootfs?.lowerDir ?? (await shiftedRootfs(idmap)).path;
      rootfs = join(base, 'rootfs');
      await mountOverlay(lower, base, rootUid, rootGid);
      overlay = true;
      await writeOwner(base, { kind: 'lxc', name, lxcPath, overlayDir: base });
    }
    // What Proxmox writes into a CT before its first start: hostname and hosts.
    const etc = join(rootfs, 'etc');
    await writeFile(join(etc, 'hostname'), `${hostname}\n`);
    await writeFile(join(etc, 'hosts'), `127.0.0.1 localhost\n127.0.1.1 ${hostname}\n::1 localhost ip6-localhost ip6-loopback\n`);
    for (const f of ['hostname', 'hosts']) await chown(join(etc, f), rootUid, rootGid);
    await writeFile(join(ctDir, 'config'), configText({
      name, hostname, rootfs, idmap, memoryMiB: opts.memoryMiB ?? 128, mounts: opts.mounts ?? [], init: opts.init,
      logFile, extra: opts.extraConfig ?? [], cgroupV1Memory: await cgroupV1Memory(),
    }));
  } catch (e) {
    if (overlay) await unmountOverlay(base);
    await cleanupDirs();
    throw e;
  }
  const L = ['-P', lxcPath, '-n', name];
  let ip: string | undefined = opts.net?.cidr.split('/')[0];
  let destroyed = false;

  const state = async () => (await run('lxc-info', [...L, '-sH'], { allowFail: true })).stdout.trim() || 'UNKNOWN';
  const pid = async () => {
    const p = Number((await run('lxc-info', [...L, '-pH'])).stdout.trim());
    if (!p) throw new Error(`container ${name} is not running`);
    return p;
  };
  const start = async () => {
    const t0 = Date.now();
    const r = await run('lxc-start', [...L, '-d'], { allowFail: true });
    if (r.code !== 0) {
      const log = await readFile(logFile, 'utf8').catch(() => '');
      throw new Error(`lxc-start ${name} failed: ${r.stderr.trim()} ${log.split('\n').filter((l) => /ERROR/.test(l)).slice(-5).join(' | ')}`);
    }
    const p = await waitFor(`${name} running`, async () => ((await state()) === 'RUNNING' ? pid() : undefined), 20_000, 50);
    if (opts.net) await opts.net.network.plug(p, opts.net.cidr, opts.net.gateway ? { gateway: opts.net.gateway } : {});
    note(`container ${name} started (pid ${p}) in ${since(t0)} s`);
    return { seconds: since(t0), pid: p };
  };
  const stop = async (timeoutS = 10) => {
    if ((await state()) !== 'RUNNING') return;
    const r = await run('lxc-stop', [...L, '-t', String(timeoutS)], { allowFail: true, timeoutMs: (timeoutS + 10) * 1000 });
    if (r.code !== 0) await run('lxc-stop', [...L, '-k'], { allowFail: true });
  };
  const exec: Container['exec'] = (cmd, o = {}) =>
    run('lxc-attach', [...L, '--clear-env', '--set-var', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', '--set-var', 'LC_ALL=C', '--', ...cmd], {
      timeoutMs: o.timeoutMs ?? 60_000, allowFail: o.allowFail ?? false, ...(o.input !== undefined ? { input: o.input } : {}),
    });
  const push: Container['push'] = async (content, dest, o = {}) => {
    if (!dest.startsWith('/')) throw new Error(`push ${dest}: absolute path expected`);
    // Written by the container's own root (inside its user namespace), so ids are the container's.
    await runWithInput('lxc-attach', [...L, '--clear-env', '--', '/bin/sh', '-c',
      'umask 077 && cat > "$1.smbgw-push" && chmod "$2" "$1.smbgw-push" && chown "$3:$4" "$1.smbgw-push" && mv -f "$1.smbgw-push" "$1"',
      'push', dest, (o.mode ?? 0o644).toString(8), String(o.uid ?? 0), String(o.gid ?? 0)], content);
  };
  const memory = async () => readMemory(await pid());
  const destroy = async () => {
    if (destroyed) return;
    destroyed = true;
    if ((await state()) === 'RUNNING') await run('lxc-stop', [...L, '-k'], { allowFail: true });
    // lxc-stop -k returns once the init is gone; wait until LXC lets go of the rootfs.
    for (let i = 0; i < 50 && (await state()) === 'RUNNING'; i++) await sleep(100);
    if (overlay) await unmountOverlay(base);
    await cleanupDirs();
  };
  return {
    name, lxcPath, rootfs, idmap, get ip() { return ip; }, set ip(v) { ip = v; },
    start, stop, pid, state, exec, push, memory, destroy,
  } as Container;
}
