/**
 * What a scheduled backup run costs for 50 shares: 50 native shares on btrfs subvolumes (a loop
 * device), all due at the same event of the daemon's scheduler (injected clock), measured side by side
 * with the same 50 backups taken one `pve-smbgateway backup` command at a time (what a cron job or a
 * systemd timer calling the CLI would do). Wall time, CPU of the daemon process and of the commands it
 * ran (btrfs), and the cost of an idle scheduler tick (50 schedules, nothing due).
 *
 *   node --import tsx bench/backup-schedule.ts [shares]     (default 50; root)
 *
 * Last line: sched_wall_s=<x> sched_cpu_s=<y> cli_wall_s=<z> cli_cpu_s=<w> ratio_wall=<z/x> idle_tick_ms=<t>
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { BackupScheduler } from '../src/api/scheduler.ts';
import { TaskManager } from '../src/api/tasks.ts';
import { readBackupState } from '../src/backup/state.ts';
import { defaultSettings, settingsJson, type Settings } from '../src/core/settings.ts';
import { parseShare } from '../src/core/share.ts';
import { makeGateway } from '../src/provision/context.ts';

const N = Number(process.argv[2] ?? 50);
const ROOT = resolve(import.meta.dirname, '..');
const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' });

/** CPU seconds of this process and of its waited-for children (/proc/self/stat utime, stime, cutime, cstime). */
async function cpu(): Promise<{ self: number; children: number }> {
  const f = (await readFile('/proc/self/stat', 'utf8')).split(') ')[1]!.split(' ');
  const tck = Number(sh('getconf', ['CLK_TCK']).trim());
  return { self: (Number(f[11]) + Number(f[12])) / tck, children: (Number(f[13]) + Number(f[14])) / tck };
}

async function main(): Promise<void> {
  const id = randomBytes(3).toString('hex');
  const dir = await mkdtemp(join(tmpdir(), `smbgw-bench-backup${id}-`));
  const img = join(dir, 'btrfs.img');
  const mnt = join(dir, 'storage');
  await mkdir(mnt, { recursive: true });
  sh('truncate', ['-s', '1G', img]);
  const loop = sh('losetup', ['-f', '--show', img]).trim();
  try {
    sh('mkfs.btrfs', ['-q', '-f', loop]);
    sh('mount', [loop, mnt]);
    const settings: Settings = {
      ...defaultSettings(), isPve: false, node: 'benchnode', storeDir: join(dir, 'etc'), lockDir: join(dir, 'lock'), stateDir: join(dir, 'state'),
      smbConf: join(dir, 'smb.conf'), managedConf: join(dir, 'smbgateway.conf'), allowedRoots: [mnt],
    };
    const settingsFile = join(dir, 'gateway.json');
    await writeFile(settingsFile, settingsJson(settings));
    const g = makeGateway(settings);
    const shares = [];
    for (let i = 0; i < N; i++) {
      const path = join(mnt, `s${i}`);
      sh('btrfs', ['subvolume', 'create', path]);
      await writeFile(join(path, 'f.txt'), `share ${i}\n`);
      shares.push(parseShare({ sharename: `s${i}`, mode: 'native', path, users: ['nobody1'], backing: `btrfs:${mnt}`, backup_schedule: 'daily', backup_prune: 'keep-last=7' }, { allowInternal: true }));
    }
    await g.store.write(shares);

    // A: the daemon's scheduler, every share due at midnight.
    let clock = Date.UTC(2030, 0, 7, 23, 0, 0);
    const sched = new BackupScheduler(g, new TaskManager('benchnode'), { now: () => clock, utc: true });
    await sched.tick(); // notes the schedules
    const idleT0 = performance.now();
    const idleTicks = 20;
    for (let i = 0; i < idleTicks; i++) await sched.tick();
    const idleTickMs = (performance.now() - idleT0) / idleTicks;
    clock = Date.UTC(2030, 0, 8, 0, 0, 5);
    const c0 = await cpu();
    const t0 = performance.now();
    const started = await sched.tick();
    await Promise.all(sched.running.values());
    const schedWall = (performance.now() - t0) / 1000;
    const c1 = await cpu();
    const state = await readBackupState(settings.stateDir);
    const ok = Object.values(state).filter((s) => s.last_status === 'ok').length;
    if (started.length !== N || ok !== N) throw new Error(`scheduler: ${started.length} started, ${ok} ok of ${N}`);

    // B: one CLI command per share.
    const c2 = await cpu();
    const t1 = performance.now();
    for (let i = 0; i < N; i++) execFileSync(join(ROOT, 'bin/pve-smbgateway'), ['backup', `s${i}`, '--json'], { env: { ...process.env, SMBGATEWAY_CONFIG: settingsFile } });
    const cliWall = (performance.now() - t1) / 1000;
    const c3 = await cpu();

    const schedCpu = (c1.self - c0.self) + (c1.children - c0.children);
    const cliCpu = (c3.self - c2.self) + (c3.children - c2.children);
    console.log(`${N} shares, btrfs on a loop device, this ${sh('nproc', []).trim()}-core machine`);
    console.log(`scheduler (one daemon, all due at once): wall ${schedWall.toFixed(2)} s, CPU ${schedCpu.toFixed(2)} s (daemon ${(c1.self - c0.self).toFixed(2)} s + btrfs ${(c1.children - c0.children).toFixed(2)} s), ${(schedWall / N * 1000).toFixed(0)} ms per share`);
    console.log(`CLI, one command per share:             wall ${cliWall.toFixed(2)} s, CPU ${cliCpu.toFixed(2)} s, ${(cliWall / N * 1000).toFixed(0)} ms per share`);
    console.log(`idle scheduler tick (${N} schedules, nothing due): ${idleTickMs.toFixed(2)} ms`);
    console.log(`sched_wall_s=${schedWall.toFixed(2)} sched_cpu_s=${schedCpu.toFixed(2)} cli_wall_s=${cliWall.toFixed(2)} cli_cpu_s=${cliCpu.toFixed(2)} ratio_wall=${(cliWall / schedWall).toFixed(1)} idle_tick_ms=${idleTickMs.toFixed(2)}`);
  } finally {
    execFileSync('umount', [mnt], { stdio: 'ignore' });
    execFileSync('losetup', ['-d', loop], { stdio: 'ignore' });
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
