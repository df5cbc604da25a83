/**
 * Real Debian VMs under QEMU with software emulation (TCG; /dev/kvm is not usable on this machine).
 *
 * - `buildVmImage()`: the cached rootfs (see rootfs.ts) plus linux-image-amd64, a small initramfs,
 *   cloud-init (NoCloud) and ifupdown/isc-dhcp-client, written into an ext4 raw image with
 *   `mkfs.ext4 -d` (no loop device, no mount). Kernel and initrd are kept next to it for direct boot.
 *   Cached under <cache>/vm-bookworm-<key>, built in a temp dir and renamed, under a lock.
 * - `startVm()`: a qcow2 overlay per VM (the cached image stays clean), a NoCloud seed ISO (volume id
 *   `cidata`) from the given user-data/meta-data/network-config, host directories shared with virtiofs
 *   (qemu 7.2's /usr/lib/qemu/virtiofsd, guest RAM in a shared memfd) and/or 9p, a user-mode NIC with
 *   `restrict=on` (the guest reaches nothing outside) and host ports forwarded from 127.0.0.1 only.
 *   QEMU and virtiofsd run detached in their own sessions; `destroy()` stops them and removes all files.
 * - Readiness: the serial console goes to a file; `waitConsole(re)` waits for a line (cloud-init prints
 *   "Cloud-init v. X finished at ..."), `waitCloudInit()` for exactly that.
 */
import { spawn } from 'node:child_process';
import { cp, mkdir, readFile, rm, writeFile, chmod, stat, readdir, copyFile, open } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort } from '../../src/demo/sandbox.ts';
import { alive, cacheRoot, note, run, since, sleep, uid, waitFor } from './common.ts';
import { buildRootfs, cached, inChroot, maskUnit, recipeKey, SUITE, type Built } from './rootfs.ts';
import { reapStale, writeOwner } from './reap.ts';

/** Packages added on top of the container rootfs for a bootable cloud image. */
export const VM_PACKAGES = ['linux-image-amd64', 'initramfs-tools', 'cloud-init', 'ifupdown', 'isc-dhcp-client', 'qemu-guest-agent'];
const VM_RECIPE_VERSION = 3;
/** Modules the initramfs needs to mount a virtio-blk ext4 root; everything else loads from the root fs. */
const INITRD_MODULES = ['virtio_pci', 'virtio_blk', 'ext4', 'crc32c_generic'];
export const VIRTIOFSD = process.env.SMBGW_VIRTIOFSD ?? '/usr/lib/qemu/virtiofsd';

export interface VmImage extends Built {
  disk: string;
  kernel: string;
  initrd: string;
}

/**
 * cloud-init settings baked into the image: NoCloud only, no default user (gateway user-data brings its
 * own), the modules a gateway needs, in two stages instead of four (each stage is a Python start,
 * ~10 s under TCG): "init" (after the network is up) and "final" (after network-online, so a runcmd
 * may `systemctl restart smbd`, whose unit waits for network-online). The config-stage modules run at
 * the start of the final stage, in their usual order.
 */
export function cloudCfg(): string {
  return `# pve-smbgateway test image: NoCloud seed only (cidata ISO, as Proxmox's cloud-init drive)
datasource_list: [ NoCloud, None ]
# The Debian default user "debian" would take uid 1000; gateway user-data brings its own users.
users: []
disable_root: false
locale: false
ssh_deletekeys: false
ssh_genkeytypes: []
cloud_init_modules: [seed_random, bootcmd, write_files, set_hostname, update_hostname, update_etc_hosts, users_groups]
cloud_config_modules: []
cloud_final_modules: [mounts, set_passwords, timezone, runcmd, scripts_per_once, scripts_per_boot, scripts_per_instance, scripts_user, final_message, power_state_change]
`;
}

export async function buildVmImage(): Promise<VmImage> {
  const base = await buildRootfs();
  const key = recipeKey({ VM_PACKAGES, VM_RECIPE_VERSION, INITRD_MODULES, cfg: cloudCfg() });
  const path = join(cacheRoot(), `vm-${SUITE}-${key}`);
  const r = await cached(path, async (tmp) => {
    const root = join(tmp, 'root');
    await mkdir(tmp, { recursive: true });
    await run('cp', ['-a', '--reflink=auto', base.path, root], { timeoutMs: 300_000 });
    const w = (p: string, text: string, mode = 0o644) => mkdir(join(root, p, '..'), { recursive: true }).then(() => writeFile(join(root, p), text)).then(() => chmod(join(root, p), mode));
    await w('usr/sbin/policy-rc.d', '#!/bin/sh\nexit 101\n', 0o755);
    // A small initramfs (MODULES=list + a hook adding the virtio/ext4 modules) boots much faster under TCG.
    await w('etc/initramfs-tools/conf.d/smbgw.conf', 'MODULES=list\nCOMPRESS=gzip\n');
    await w('etc/initramfs-tools/hooks/smbgw-virtio', `#!/bin/sh\n[ "$1" = prereqs ] && exit 0\n. /usr/share/initramfs-tools/hook-functions\nfor m in ${INITRD_MODULES.join(' ')}; do manual_add_modules "$m"; done\n`, 0o755);
    await inChroot(root, ['apt-get', 'install', '-y', '-q', '--no-install-recommends', '-o', 'Dpkg::Use-Pty=0', ...VM_PACKAGES], 15 * 60_000);
    await w('etc/fstab', '/dev/vda / ext4 rw,relatime 0 1\n');
    await w('etc/network/interfaces', 'auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n');
    await w('etc/cloud/cloud.cfg.d/90-smbgw.cfg', cloudCfg());
    // ds-identify (a long shell script run by the cloud-init generator) costs seconds under TCG; the
    // datasource list above already says NoCloud, so enable cloud-init without the search.
    await w('etc/cloud/ds-identify.cfg', 'policy: enabled\n');
    // Modules a TCG guest would load for nothing (host CPU features, PC speaker).
    await w('etc/modprobe.d/smbgw-tcg.conf', ['kvm', 'kvm_amd', 'kvm_intel', 'pcspkr', 'floppy', 'joydev', 'serio_raw'].map((m) => `blacklist ${m}`).join('\n') + '\n');
    // Units with no use in a disposable test guest; each costs time under emulation.
    // Two cloud-init stages (see cloudCfg): no pre-network "init-local" stage (DHCP on eth0 comes from
    // ifupdown below, not from a rendered network-config) and no separate "config" stage.
    await w('etc/network/interfaces.d/60-smbgw-eth0', 'auto eth0\nallow-hotplug eth0\niface eth0 inet dhcp\n');
    for (const u of ['cloud-init-local.service', 'cloud-config.service']) await maskUnit(root, u);
    for (const u of ['e2scrub_reap.service', 'e2scrub_all.timer', 'apt-daily.timer', 'apt-daily-upgrade.timer', 'man-db.timer', 'fstrim.timer',
      'getty@tty1.service', 'systemd-pstore.service', 'modprobe@dm_mod.service', 'modprobe@loop.service', 'modprobe@drm.service',
      'dev-hugepages.mount', 'sys-kernel-tracing.mount', 'sys-kernel-debug.mount', 'proc-sys-fs-binfmt_misc.automount', 'systemd-binfmt.service']) await maskUnit(root, u);
    await rm(join(root, 'usr/sbin/policy-rc.d'));
    await inChroot(root, ['apt-get', 'clean']);
    await rm(join(root, 'var/lib/apt/lists'), { recursive: true, force: true });
    await mkdir(join(root, 'var/lib/apt/lists/partial'), { recursive: true });
    const boot = await readdir(join(root, 'boot'));
    const vmlinuz = boot.find((f) => f.startsWith('vmlinuz-'));
    const initrd = boot.find((f) => f.startsWith('initrd.img-'));
    if (!vmlinuz || !initrd) throw new Error(`no kernel/initrd in ${root}/boot: ${boot.join(' ')}`);
    await copyFile(join(root, 'boot', vmlinuz), join(tmp, 'vmlinuz'));
    await copyFile(join(root, 'boot', initrd), join(tmp, 'initrd.img'));
    // ext4 image straight from the directory: no loop device or mount needed. Sparse; 1.5 GiB free inside.
    const used = Number((await run('du', ['-sxb', root])).stdout.split(/\s/)[0]);
    const size = Math.ceil((used * 1.1 + 1.5 * 2 ** 30) / 2 ** 20);
    await run('truncate', ['-s', `${size}M`, join(tmp, 'disk.raw')]);
    await run('mkfs.ext4', ['-q', '-F', '-L', 'smbgw-root', '-d', root, join(tmp, 'disk.raw')], { timeoutMs: 300_000 });
    await writeFile(join(tmp, 'info.json'), JSON.stringify({ key, kernel: vmlinuz, initrd, packages: VM_PACKAGES, rootfs: base.path, builtAt: new Date().toISOString() }, null, 2) + '\n');
    await rm(root, { recursive: true, force: true });
  }, { prunePrefix: `vm-${SUITE}-` });
  return { path, key, built: r.built || base.built, seconds: base.seconds + r.seconds, disk: join(path, 'disk.raw'), kernel: join(path, 'vmlinuz'), initrd: join(path, 'initrd.img') };
}

export interface SharedDir {
  /** Host directory. */
  host: string;
  /** Mount tag the guest uses (`mount -t virtiofs <tag> /path` or `mount -t 9p -o trans=virtio <tag> /path`). */
  tag: string;
  /** virtiofs: expose POSIX ACLs to the guest (Proxmox VE's expose-acl=1). */
  acl?: boolean;
}

export interface VmOptions {
  name?: string;
  memoryMiB?: number;
  cpus?: number;
  /** cloud-init user-data (starts with `#cloud-config` or `#!`). */
  userData: string;
  /** cloud-init meta-data; default instance-id/local-hostname from the name. */
  metaData?: string;
  /**
   * cloud-init network-config (v1 or v2), put in the seed. The image skips cloud-init's pre-network
   * stage and brings eth0 up by DHCP (QEMU's user-mode DHCP) whatever this says; see docs/guests.md.
   */
  networkConfig?: string;
  virtiofs?: SharedDir[];
  ninep?: SharedDir[];
  /** Guest TCP ports to forward from 127.0.0.1:<free port> (e.g. 445). */
  forward?: number[];
  /** Kernel command line added after root/console (default `quiet`). */
  append?: string;
  /**
   * Boot this qcow2/raw disk instead of a fresh overlay over the cached image (a persistent VM disk,
   * e.g. a clone); it is not removed by destroy() unless it lies inside the VM's dir.
   */
  disk?: string;
  /** Subnet of the user-mode NIC (default QEMU's 10.0.2.0/24; the guest gets .15 by DHCP). */
  userNet?: string;
  baseDir?: string;
  image?: VmImage;
}

export interface Vm {
  name: string;
  dir: string;
  pid: number;
  /** Host port on 127.0.0.1 for each forwarded guest port. */
  ports: Record<number, number>;
  consoleLog: string;
  startedAt: number;
  console: () => Promise<string>;
  waitConsole: (re: RegExp, timeoutMs?: number) => Promise<string>;
  waitCloudInit: (timeoutMs?: number) => Promise<number>;
  /**
   * Asks the QEMU guest agent (qemu-guest-agent in the image, on a virtio-serial port as Proxmox's
   * `agent: 1`), e.g. {execute:'guest-network-get-interfaces'}; rejects while the agent does not answer.
   */
  agent: (cmd: Record<string, unknown>, timeoutMs?: number) => Promise<unknown>;
  /** Sends a QMP command (e.g. {execute:'system_powerdown'}) and returns its answer. */
  qmp: (cmd: Record<string, unknown>) => Promise<unknown>;
  /** ACPI power-off, waits up to timeoutS, then kills. */
  stop: (timeoutS?: number) => Promise<void>;
  destroy: () => Promise<void>;
}

function spawnDaemon(bin: string, args: string[], logFile: string): Promise<number> {
  return open(logFile, 'a').then((fh) => {
    const c = spawn(bin, args, { detached: true, stdio: ['ignore', fh.fd, fh.fd] });
    c.unref();
    const pid = c.pid;
    return fh.close().then(() => {
      if (!pid) throw new Error(`${bin} did not start`);
      return pid;
    });
  });
}

/** SIGTERM, wait, then SIGKILL to the daemon's whole process group (virtiofsd forks a worker). */
async function killWait(pid: number, timeoutMs = 5000): Promise<void> {
  if (alive(pid)) {
    try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
    const deadline = Date.now() + timeoutMs;
    while (alive(pid) && Date.now() < deadline) await sleep(50);
  }
  // Spawned detached: the pid is its process group; take down whatever is left in it.
  try { process.kill(-pid, 'SIGKILL'); } catch { /* group gone */ }
  const deadline = Date.now() + 3000;
  while (alive(pid) && Date.now() < deadline) await sleep(50);
}

function qmpCall(sock: string, cmd: Record<string, unknown>, timeoutMs = 5000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const c = connect(sock);
    let buf = '';
    let stage = 0;
    const t = setTimeout(() => { c.destroy(); reject(new Error('QMP timeout')); }, timeoutMs);
    c.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        let msg: Record<string, unknown>;
        try { msg = JSON.parse(line); } catch { continue; }
        if (stage === 0 && 'QMP' in msg) { stage = 1; c.write(JSON.stringify({ execute: 'qmp_capabilities' }) + '\n'); }
        else if (stage === 1 && 'return' in msg) { stage = 2; c.write(JSON.stringify(cmd) + '\n'); }
        else if (stage === 2 && ('return' in msg || 'error' in msg)) { clearTimeout(t); c.end(); resolve(msg); }
      }
    });
    c.on('error', (e) => { clearTimeout(t); reject(e); });
  });
}

/** One guest-agent command: guest-sync-delimited first (flushes stale output), then the command. */
function qgaCall(sock: string, cmd: Record<string, unknown>, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const c = connect(sock);
    c.setEncoding('latin1'); // the sync delimiter is a raw 0xff byte
    const id = Math.floor(Math.random() * 1e9);
    let buf = '';
    let synced = false;
    const t = setTimeout(() => { c.destroy(); reject(new Error('guest agent does not answer')); }, timeoutMs);
    c.on('connect', () => c.write(JSON.stringify({ execute: 'guest-sync-delimited', arguments: { id } }) + '\n'));
    c.on('data', (d) => {
      buf += d;
      if (!synced) {
        const k = buf.lastIndexOf('\xff');
        if (k < 0) return;
        buf = buf.slice(k + 1);
      }
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        let msg: Record<string, unknown>;
        try { msg = JSON.parse(line); } catch { continue; }
        if (!synced) {
          if (msg.return === id) { synced = true; c.write(JSON.stringify(cmd) + '\n'); }
          continue;
        }
        clearTimeout(t);
        c.destroy();
        if ('error' in msg) reject(new Error(`guest agent: ${JSON.stringify(msg.error)}`));
        else resolve(msg.return);
        return;
      }
    });
    c.on('error', (e) => { clearTimeout(t); reject(e); });
  });
}

export async function startVm(opts: VmOptions): Promise<Vm> {
  const name = opts.name ?? `smbgw-vm-${uid()}`;
  const image = opts.image ?? (await buildVmImage());
  const dir = opts.baseDir ?? join('/tmp', `smbgw-vm-${name}`);
  const mem = opts.memoryMiB ?? 512;
  const pids: number[] = [];
  await reapStale();
  await mkdir(join(dir, 'seed'), { recursive: true });
  await writeOwner(dir, { kind: 'vm', pids });
  const cleanup = async () => {
    for (const p of pids.reverse()) await killWait(p);
    // SMBGW_GUEST_KEEP=1 keeps the VM's dir (console log, seed, overlay) for a post-mortem.
    if (!process.env.SMBGW_GUEST_KEEP) await rm(dir, { recursive: true, force: true });
    else note(`kept ${dir}`);
  };
  try {
    // Per-VM copy-on-write disk over the cached image.
    let disk = opts.disk;
    if (!disk) {
      disk = join(dir, 'disk.qcow2');
      await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', image.disk, disk]);
    }
    const diskFormat = disk.endsWith('.raw') ? 'raw' : 'qcow2';
    // NoCloud seed: an ISO9660 volume labelled "cidata" with user-data, meta-data (and network-config).
    const seedDir = join(dir, 'seed');
    await writeFile(join(seedDir, 'user-data'), opts.userData, { mode: 0o600 });
    await writeFile(join(seedDir, 'meta-data'), opts.metaData ?? `instance-id: ${name}\nlocal-hostname: ${name.slice(0, 63)}\n`);
    const seedFiles = [join(seedDir, 'user-data'), join(seedDir, 'meta-data')];
    if (opts.networkConfig) {
      await writeFile(join(seedDir, 'network-config'), opts.networkConfig);
      seedFiles.push(join(seedDir, 'network-config'));
    }
    const seedIso = join(dir, 'seed.iso');
    await run('genisoimage', ['-quiet', '-output', seedIso, '-volid', 'cidata', '-joliet', '-rock', ...seedFiles]);
    await chmod(seedIso, 0o600);

    const ports: Record<number, number> = {};
    for (const gp of opts.forward ?? []) ports[gp] = await freePort();
    const hostfwd = Object.entries(ports).map(([g, h]) => `,hostfwd=tcp:127.0.0.1:${h}-:${g}`).join('');
    const consoleLog = join(dir, 'console.log');
    const qmpSock = join(dir, 'qmp.sock');
    const qgaSock = join(dir, 'qga.sock');
    const args = [
      '-name', name, '-accel', 'tcg', '-cpu', 'qemu64', '-smp', String(opts.cpus ?? 2), '-m', `${mem}M`,
      '-nodefaults', '-display', 'none', '-no-user-config', '-serial', `file:${consoleLog}`,
      '-kernel', image.kernel, '-initrd', image.initrd,
      // quiet: every console byte is an emulated UART write; cloud-init still prints its own lines.
      '-append', `root=/dev/vda rw console=ttyS0 net.ifnames=0 ${opts.append ?? 'quiet'}`.trim(),
      '-drive', `file=${disk},if=virtio,format=${diskFormat},cache=${opts.disk ? 'writeback' : 'unsafe'}`,
      '-drive', `file=${seedIso},if=virtio,format=raw,readonly=on`,
      // restrict=on: the guest can reach nothing outside (no NAT); only the forwards below reach it.
      '-nic', `user,model=virtio-net-pci,restrict=on${opts.userNet ? `,net=${opts.userNet}` : ''}${hostfwd}`,
      '-qmp', `unix:${qmpSock},server=on,wait=off`,
      '-device', 'virtio-serial-pci', '-chardev', `socket,id=qga0,path=${qgaSock},server=on,wait=off`,
      '-device', 'virtserialport,chardev=qga0,name=org.qemu.guest_agent.0',
      '-pidfile', join(dir, 'qemu.pid'),
    ];
    if (opts.virtiofs?.length) {
      // vhost-user needs the guest RAM shared with virtiofsd.
      args.push('-object', `memory-backend-memfd,id=mem,size=${mem}M,share=on`, '-numa', 'node,memdev=mem');
      let i = 0;
      for (const s of opts.virtiofs) {
        const sock = join(dir, `virtiofs${i}.sock`);
        pids.push(await spawnDaemon(VIRTIOFSD, [`--socket-path=${sock}`, '-o', `source=${s.host}`, '-o', 'cache=auto', ...(s.acl ? ['-o', 'xattr', '-o', 'posix_acl'] : [])], join(dir, `virtiofsd${i}.log`)));
        await writeOwner(dir, { kind: 'vm', pids });
        await waitFor(`virtiofsd socket ${sock}`, () => stat(sock).then(() => true, () => false), 10_000, 20);
        args.push('-chardev', `socket,id=vfs${i},path=${sock}`, '-device', `vhost-user-fs-pci,chardev=vfs${i},tag=${s.tag}`);
        i++;
      }
    }
    let j = 0;
    for (const s of opts.ninep ?? []) {
      args.push('-virtfs', `local,path=${s.host},mount_tag=${s.tag},security_model=passthrough,id=p9n${j++}`);
    }
    const startedAt = Date.now();
    const pid = await spawnDaemon('qemu-system-x86_64', args, join(dir, 'qemu.log'));
    pids.push(pid);
    await writeOwner(dir, { kind: 'vm', pids });
    await sleep(300);
    if (!alive(pid)) throw new Error(`qemu exited at once: ${(await readFile(join(dir, 'qemu.log'), 'utf8').catch(() => '')).trim()}`);
    note(`vm ${name} started (pid ${pid}), ports ${JSON.stringify(ports)}`);

    const consoleText = () => readFile(consoleLog, 'utf8').catch(() => '');
    const waitConsole = (re: RegExp, timeoutMs = 180_000) => waitFor(`console line ${re} of ${name}`, async () => {
      if (!alive(pid)) throw new Error(`qemu of ${name} exited; console tail: ${(await consoleText()).slice(-800)}`);
      return re.exec(await consoleText())?.[0];
    }, timeoutMs, 200).catch(async (e) => {
      if (/exited/.test((e as Error).message)) throw e;
      throw new Error(`${(e as Error).message}; console tail:\n${(await consoleText()).slice(-1500)}`);
    });
    let destroyed = false;
    const vm: Vm = {
      name, dir, pid, ports, consoleLog, startedAt,
      console: consoleText,
      waitConsole,
      waitCloudInit: async (timeoutMs = 240_000) => {
        await waitConsole(/Cloud-init v\. \S+ finished at/, timeoutMs);
        return since(startedAt);
      },
      qmp: (cmd) => qmpCall(qmpSock, cmd),
      agent: (cmd, timeoutMs = 3000) => qgaCall(qgaSock, cmd, timeoutMs),
      stop: async (timeoutS = 15) => {
        if (!alive(pid)) return;
        await qmpCall(qmpSock, { execute: 'system_powerdown' }).catch(() => undefined);
        const deadline = Date.now() + timeoutS * 1000;
        while (alive(pid) && Date.now() < deadline) await sleep(200);
        await killWait(pid);
      },
      destroy: async () => {
        if (destroyed) return;
        destroyed = true;
        await cleanup();
      },
    };
    return vm;
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** Copies a cached VM image's kernel/initrd/disk elsewhere (e.g. a simulated storage), raw or qcow2. */
export async function exportVmDisk(image: VmImage, dest: string, format: 'raw' | 'qcow2' = 'qcow2'): Promise<void> {
  if (format === 'raw') await cp(image.disk, dest);
  else await run('qemu-img', ['convert', '-O', 'qcow2', image.disk, dest], { timeoutMs: 300_000 });
}
