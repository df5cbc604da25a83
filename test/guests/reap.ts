/**
 * Leftovers of test runs that were killed before their cleanup ran (a test timeout, Ctrl-C, a CI stop):
 * each guest's run dir holds `owner.json` ({owner: pid of the test process, kind, pids of its daemons}).
 * When the owner is gone, the guest is stopped (LXC container killed, QEMU/virtiofsd killed), its
 * overlay unmounted and its dir removed. Called before new guests are made; safe with concurrent runs
 * (only guests of dead owners are touched).
 */
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { alive, note, run } from './common.ts';

export interface OwnerInfo {
  owner: number;
  /** lxc: a container's run dir; vm: a VM's dir; backend: a RealGuestBackend's dir (guests below it). */
  kind: 'lxc' | 'vm' | 'backend';
  /** LXC: name and lxc path. */
  name?: string;
  lxcPath?: string;
  /** VM: pids of QEMU and virtiofsd. */
  pids?: number[];
  /** Overlay dir (mountOverlay) to unmount. */
  overlayDir?: string;
}

export async function writeOwner(dir: string, info: Omit<OwnerInfo, 'owner'>): Promise<void> {
  await writeFile(join(dir, 'owner.json'), JSON.stringify({ owner: process.pid, ...info }) + '\n');
}

/** Network namespaces made by createNetwork are recorded here with their owner. */
export const NETNS_OWNERS = '/run/smbgw-netns';

export async function writeNetnsOwner(ns: string): Promise<void> {
  await mkdir(NETNS_OWNERS, { recursive: true });
  await writeFile(join(NETNS_OWNERS, ns), `${process.pid}\n`);
}

export async function dropNetnsOwner(ns: string): Promise<void> {
  await rm(join(NETNS_OWNERS, ns), { force: true });
}

async function readOwner(dir: string): Promise<OwnerInfo | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, 'owner.json'), 'utf8')) as OwnerInfo;
  } catch {
    return undefined;
  }
}

/** Stops and removes guests (and networks) whose owning test process is gone. Returns what it removed. */
export async function reapStale(): Promise<string[]> {
  const removed: string[] = [];
  for (const d of await readdir('/tmp').catch(() => [] as string[])) {
    if (!/^smbgw-(lxc|vm|realbackend)-/.test(d)) continue;
    const dir = join('/tmp', d);
    const info = await readOwner(dir);
    if (!info || alive(info.owner)) continue;
    if (info.kind === 'backend') {
      note(`reaping real-guest backend left by dead process ${info.owner}: ${dir}`);
      for (const kind of ['ct', 'vm']) {
        for (const id of await readdir(join(dir, kind)).catch(() => [] as string[])) {
          const runDir = join(dir, kind, id, 'run');
          const sub = await readOwner(runDir);
          if (sub) await reapOne(runDir, sub);
          await unmountRootfs(join(dir, kind, id));
        }
      }
      await rm(dir, { recursive: true, force: true });
    } else {
      await reapOne(dir, info);
    }
    removed.push(dir);
  }
  for (const ns of await readdir(NETNS_OWNERS).catch(() => [] as string[])) {
    const owner = Number(await readFile(join(NETNS_OWNERS, ns), 'utf8').catch(() => '0'));
    if (owner && alive(owner)) continue;
    note(`reaping network namespace ${ns} left by dead process ${owner}`);
    await run('ip', ['netns', 'del', ns], { allowFail: true });
    await dropNetnsOwner(ns);
    removed.push(`netns ${ns}`);
  }
  return removed;
}

async function unmountRootfs(dir: string): Promise<void> {
  const r = await run('umount', [join(dir, 'rootfs')], { allowFail: true });
  if (r.code !== 0 && !/not mounted|no mount point|no such file/i.test(r.stderr)) await run('umount', ['-l', join(dir, 'rootfs')], { allowFail: true });
}

async function reapOne(dir: string, info: OwnerInfo): Promise<void> {
  {
    note(`reaping ${info.kind} guest left by dead process ${info.owner}: ${dir}`);
    if (info.kind === 'lxc' && info.name && info.lxcPath) await run('lxc-stop', ['-P', info.lxcPath, '-n', info.name, '-k'], { allowFail: true });
    for (const p of info.pids ?? []) {
      if (!alive(p)) continue;
      // Only kill what is still the daemon we started (pids get reused).
      const cmd = await readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '');
      // Daemons were spawned detached: pid = process group; kill the group (virtiofsd forks a worker).
      if (cmd.includes(dir)) try { process.kill(-p, 'SIGKILL'); } catch { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
    }
    if (info.overlayDir) await unmountRootfs(info.overlayDir);
    await rm(dir, { recursive: true, force: true });
  }
}
