/**
 * Real guests behind the PVE simulator (test/pve-sim): implements its GuestBackend with the LXC and
 * QEMU machinery of this folder, so that a gateway driving the simulated API gets real containers and VMs.
 *
 * Containers (`pct`):
 * - create: the ostemplate archive is extracted into the CT's id range (as `pct create` does). The
 *   simulator's stock "debian-12-standard" file is a placeholder; when the archive is not a real
 *   tarball, the cached Samba template of buildCtTemplate() is used instead (guests here have no
 *   network to a mirror, so Samba is already inside; `dpkg-query -W samba` says installed).
 * - clone: linked = overlay over the source's rootfs (a template), full = copy.
 * - start: config from the CT's config keys: hostname, memory, mpN (`<host path>,mp=<path>[,ro=1]`),
 *   unprivileged (Proxmox map, or privileged), net0 (`bridge=..,ip=<cidr>|dhcp[,gw=..]`). Each bridge is a
 *   network namespace (GuestNetwork) of this backend; a static guest subnet gets its gateway (or .254)
 *   added to that bridge; `ip=dhcp` gets a free address of the bridge's own subnet (no DHCP server).
 * VMs (`qm`):
 * - create: a qcow2 disk backed by the cached Debian cloud image (direct kernel boot) stands in for
 *   `import-from=<cloud image>`; clone: linked = qcow2 overlay on the source disk, full = converted copy.
 * - start: cloud-init user-data from cicustom, virtiofs dirs from the directory mappings, memory/cores;
 *   user-mode NIC in its own subnet 10.0.<n>.0/24 (the agent reports 10.0.<n>.15), port 445 forwarded
 *   from 127.0.0.1; stop is a hard stop (like `qm stop`).
 * probe(host, ...) runs smbclient: into the bridge namespace for a container address, to the forwarded
 * port for a VM address.
 */
import { chmod, chown, mkdir, open, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ExecResult, GuestBackend, SimGuest, VmStartContext } from '../pve-sim/backend.ts';
import { alive, run, uid } from './common.ts';
import { PROXMOX_IDMAP, toHost, type IdMap } from './idmap.ts';
import { createContainer, mountOverlay, unmountOverlay, type Container, type MountPoint } from './lxc.ts';
import { createNetwork, type GuestNetwork } from './netns.ts';
import { buildCtTemplate, extractTemplate, exists } from './rootfs.ts';
import { buildVmImage, startVm, type Vm, type VmImage } from './vm.ts';
import { writeOwner } from './reap.ts';

interface CtState { dir: string; rootfs: string; overlay: boolean; idmap: IdMap; ct?: Container; ip?: string; net?: GuestNetwork }
interface VmState { dir: string; disk: string; vm?: Vm; subnet?: number }

/** Property string `a=b,c=d` (first item may be positional, returned under `_`). */
export function propString(v: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [i, part] of (v ?? '').split(',').entries()) {
    const k = part.indexOf('=');
    if (k < 0) { if (i === 0 && part) out._ = part; continue; }
    out[part.slice(0, k)] = part.slice(k + 1);
  }
  return out;
}

/** Mount points mpN of a CT config that are bind mounts (an absolute host path as volume). */
export function bindMounts(config: Record<string, string>): MountPoint[] {
  const out: MountPoint[] = [];
  for (const [k, v] of Object.entries(config)) {
    if (!/^mp\d+$/.test(k)) continue;
    const p = propString(v);
    const vol = p._ ?? p.volume;
    if (!vol?.startsWith('/') || !p.mp) continue;
    out.push({ host: vol, path: p.mp, ...(p.ro === '1' ? { readOnly: true } : {}) });
  }
  return out;
}

async function isArchive(path: string): Promise<boolean> {
  const fh = await open(path, 'r').catch(() => undefined);
  if (!fh) return false;
  const b = Buffer.alloc(6);
  await fh.read(b, 0, 6, 0);
  await fh.close();
  return b.readUInt32LE(0) === 0xfd2fb528 /* zstd */ || (b[0] === 0x1f && b[1] === 0x8b) /* gzip */ || b.toString('latin1', 0, 6) === '\xfd7zXZ\x00';
}

export class RealGuestBackend implements GuestBackend {
  readonly name = 'real';
  readonly dir: string;
  private readonly cts = new Map<number, CtState>();
  private readonly vms = new Map<number, VmState>();
  private readonly nets = new Map<string, GuestNetwork>();
  private image?: VmImage;

  /** `dir`: where CT rootfs, VM disks and run dirs go (default a fresh /tmp dir; removed by close()). */
  constructor(opts: { dir?: string } = {}) {
    this.dir = opts.dir ?? join('/tmp', `smbgw-realbackend-${uid()}`);
  }

  /** Builds/caches what guests need (rootfs, CT template, VM image) ahead of the first API call. */
  async prepare(opts: { vm?: boolean } = {}): Promise<void> {
    await this.own();
    await buildCtTemplate();
    if (opts.vm) this.image = await buildVmImage();
  }

  private owned = false;
  /** Marks the backend dir with this process as owner, so a killed run's guests get reaped later. */
  private async own(): Promise<void> {
    if (this.owned) return;
    await mkdir(this.dir, { recursive: true });
    await chmod(this.dir, 0o755);
    await writeOwner(this.dir, { kind: 'backend' });
    this.owned = true;
  }

  private ct(g: SimGuest): CtState {
    const s = this.cts.get(g.vmid);
    if (!s) throw new Error(`CT ${g.vmid}: no root filesystem on this backend`);
    return s;
  }

  /** The running container of CT `vmid` (exec, memory(), pid …), undefined while it is stopped. */
  container(vmid: number): Container | undefined {
    return this.cts.get(vmid)?.ct;
  }

  /** The running VM of `vmid` (ports, console, agent …), undefined while it is stopped. */
  vm(vmid: number): Vm | undefined {
    return this.vms.get(vmid)?.vm;
  }

  /** The network namespace standing for `bridge` (e.g. 'vmbr0'), once a guest was plugged into it: run clients there. */
  bridgeNetwork(bridge = 'vmbr0'): GuestNetwork | undefined {
    return this.nets.get(bridge);
  }

  private async network(bridge: string): Promise<GuestNetwork> {
    let n = this.nets.get(bridge);
    if (!n) {
      n = await createNetwork();
      this.nets.set(bridge, n);
    }
    return n;
  }

  // ------------------------------------------------------------------------------------------ CTs

  async ctCreate(g: SimGuest, ostemplatePath: string | undefined): Promise<void> {
    await this.own();
    await this.ctDestroy(g);
    const idmap = g.config.unprivileged === '0' ? [] : PROXMOX_IDMAP;
    const archive = ostemplatePath && (await isArchive(ostemplatePath)) ? ostemplatePath : (await buildCtTemplate()).path;
    const dir = join(this.dir, 'ct', String(g.vmid));
    const rootfs = join(dir, 'rootfs');
    await mkdir(dir, { recursive: true });
    await chmod(dir, 0o755);
    await extractTemplate(archive, rootfs, idmap);
    this.cts.set(g.vmid, { dir, rootfs, overlay: false, idmap });
  }

  async ctClone(src: SimGuest, dst: SimGuest, linked: boolean): Promise<void> {
    const s = this.ct(src);
    await this.ctDestroy(dst);
    const dir = join(this.dir, 'ct', String(dst.vmid));
    await mkdir(dir, { recursive: true });
    await chmod(dir, 0o755);
    if (linked) {
      const rootfs = await mountOverlay(s.rootfs, dir, toHost(s.idmap, 'u', 0) ?? 0, toHost(s.idmap, 'g', 0) ?? 0);
      this.cts.set(dst.vmid, { dir, rootfs, overlay: true, idmap: s.idmap });
    } else {
      const rootfs = join(dir, 'rootfs');
      await run('cp', ['-a', '--reflink=auto', s.rootfs, rootfs], { timeoutMs: 300_000 });
      this.cts.set(dst.vmid, { dir, rootfs, overlay: false, idmap: s.idmap });
    }
  }

  async ctStart(g: SimGuest): Promise<void> {
    const s = this.ct(g);
    const net0 = propString(g.config.net0);
    let net: { network: GuestNetwork; cidr: string; gateway?: string } | undefined;
    if (g.config.net0) {
      const network = await this.network(net0.bridge ?? 'vmbr0');
      let cidr = net0.ip;
      if (!cidr || cidr === 'dhcp' || cidr === 'manual') cidr = `${network.guestIp(100 + (g.vmid % 150))}/24`;
      else await network.addAddress(net0.gw ? `${net0.gw}/${cidr.split('/')[1] ?? '24'}` : cidr.replace(/\.\d+\//, '.254/'));
      net = { network, cidr, ...(net0.gw ? { gateway: net0.gw } : {}) };
      s.net = network;
      s.ip = cidr.split('/')[0];
    }
    // What Proxmox writes from the CT's nameserver/searchdomain options before the start (else the node's resolver)
    if (g.config.nameserver || g.config.searchdomain) {
      const resolv = join(s.rootfs, 'etc/resolv.conf');
      await rm(resolv, { force: true });
      await writeFile(resolv, [...(g.config.searchdomain ? [`search ${g.config.searchdomain}`] : []), ...(g.config.nameserver ?? '').split(' ').filter(Boolean).map((a) => `nameserver ${a}`), ''].join('\n'));
      await chown(resolv, toHost(s.idmap, 'u', 0) ?? 0, toHost(s.idmap, 'g', 0) ?? 0);
    }
    s.ct = await createContainer({
      name: `smbgw-ct${g.vmid}-${uid(2)}`, hostname: g.config.hostname ?? `CT${g.vmid}`, idmap: s.idmap,
      memoryMiB: Number(g.config.memory ?? 512), mounts: bindMounts(g.config), rootfs: { dir: s.rootfs },
      baseDir: join(s.dir, 'run'), ...(net ? { net } : {}),
    });
    // Proxmox's /etc/hosts: with a searchdomain the hostname's FQDN comes first (hostname -f)
    if (g.config.searchdomain && g.config.hostname) {
      const h = g.config.hostname;
      await writeFile(join(s.rootfs, 'etc/hosts'), `127.0.0.1 localhost\n127.0.1.1 ${h}.${g.config.searchdomain.split(' ')[0]} ${h}\n::1 localhost ip6-localhost ip6-loopback\n`);
    }
    try {
      await s.ct.start();
    } catch (e) {
      await s.ct.destroy();
      s.ct = undefined;
      throw e;
    }
  }

  async ctStop(g: SimGuest): Promise<void> {
    const s = this.cts.get(g.vmid);
    if (!s?.ct) return;
    await s.ct.stop();
    await s.ct.destroy();
    s.ct = undefined;
  }

  async ctDestroy(g: SimGuest): Promise<void> {
    const s = this.cts.get(g.vmid);
    if (!s) return;
    await this.ctStop(g);
    if (s.overlay) await unmountOverlay(s.dir);
    await rm(s.dir, { recursive: true, force: true });
    this.cts.delete(g.vmid);
  }

  private running(g: SimGuest): Container {
    const c = this.cts.get(g.vmid)?.ct;
    if (!c) throw new Error(`CT ${g.vmid} not running`);
    return c;
  }

  async ctExec(g: SimGuest, argv: string[], stdin?: Buffer): Promise<ExecResult> {
    return this.running(g).exec(argv, { allowFail: true, timeoutMs: 120_000, ...(stdin ? { input: stdin.toString('utf8') } : {}) });
  }

  async ctPush(g: SimGuest, data: Buffer, dest: string, mode: number): Promise<void> {
    await this.running(g).push(data, dest, { mode });
  }

  async ctInterfaces(g: SimGuest): Promise<{ name: string; inet?: string; hwaddr?: string }[]> {
    const c = this.cts.get(g.vmid)?.ct;
    if (!c) return [];
    const r = await run('nsenter', ['-t', String(await c.pid()), '-n', '--', 'ip', '-j', 'addr', 'show']);
    const list = JSON.parse(r.stdout) as { ifname: string; address?: string; addr_info?: { family: string; local: string; prefixlen: number }[] }[];
    return list.map((i) => {
      const v4 = i.addr_info?.find((a) => a.family === 'inet');
      return { name: i.ifname, ...(v4 ? { inet: `${v4.local}/${v4.prefixlen}` } : {}), ...(i.address && i.ifname !== 'lo' ? { hwaddr: i.address.toUpperCase() } : {}) };
    });
  }

  // ------------------------------------------------------------------------------------------ VMs

  async vmCreate(g: SimGuest, _importFrom: string | undefined): Promise<void> {
    await this.own();
    await this.vmDestroy(g);
    this.image ??= await buildVmImage();
    const dir = join(this.dir, 'vm', String(g.vmid));
    await mkdir(dir, { recursive: true });
    const disk = join(dir, 'disk.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', this.image.disk, disk]);
    this.vms.set(g.vmid, { dir, disk });
  }

  async vmClone(src: SimGuest, dst: SimGuest, linked: boolean): Promise<void> {
    const s = this.vms.get(src.vmid);
    if (!s) throw new Error(`VM ${src.vmid}: no disk on this backend`);
    await this.vmDestroy(dst);
    const dir = join(this.dir, 'vm', String(dst.vmid));
    await mkdir(dir, { recursive: true });
    const disk = join(dir, 'disk.qcow2');
    if (linked) await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', s.disk, disk]);
    else await run('qemu-img', ['convert', '-O', 'qcow2', s.disk, disk], { timeoutMs: 600_000 });
    this.vms.set(dst.vmid, { dir, disk });
  }

  async vmStart(g: SimGuest, ctx: VmStartContext): Promise<void> {
    const s = this.vms.get(g.vmid);
    if (!s) throw new Error(`VM ${g.vmid}: no disk on this backend`);
    this.image ??= await buildVmImage();
    const used = new Set([...this.vms.values()].filter((v) => v.vm).map((v) => v.subnet));
    let subnet = 3 + (g.vmid % 250);
    while (used.has(subnet)) subnet = 3 + ((subnet - 2) % 250);
    s.subnet = subnet;
    const name = g.config.name ?? `vm${g.vmid}`;
    s.vm = await startVm({
      name: `smbgw-vm${g.vmid}-${uid(2)}`, image: this.image, disk: s.disk, baseDir: join(s.dir, 'run'),
      memoryMiB: Math.max(512, Number(g.config.memory ?? 512)), cpus: Math.min(2, Number(g.config.cores ?? 1) * Number(g.config.sockets ?? 1)),
      userData: ctx.userData ?? '#cloud-config\n{}\n',
      metaData: `instance-id: vm${g.vmid}-${s.disk.length}-${Buffer.from(ctx.userData ?? '').length}\nlocal-hostname: ${name}\n`,
      virtiofs: ctx.virtiofs.map((v) => ({ host: v.path, tag: v.tag, acl: v.acl })), forward: [445], userNet: `10.0.${subnet}.0/24`,
    });
  }

  async vmStop(g: SimGuest): Promise<void> {
    const s = this.vms.get(g.vmid);
    if (!s?.vm) return;
    await s.vm.destroy();
    s.vm = undefined;
  }

  async vmRunning(g: SimGuest): Promise<boolean> {
    const vm = this.vms.get(g.vmid)?.vm;
    return !!vm && alive(vm.pid);
  }

  async vmDestroy(g: SimGuest): Promise<void> {
    const s = this.vms.get(g.vmid);
    if (!s) return;
    await this.vmStop(g);
    await rm(s.dir, { recursive: true, force: true });
    this.vms.delete(g.vmid);
  }

  async vmAgentInterfaces(g: SimGuest) {
    const vm = this.vms.get(g.vmid)?.vm;
    if (!vm || !alive(vm.pid)) return undefined;
    try {
      const r = await vm.agent({ execute: 'guest-network-get-interfaces' }) as { name: string; 'ip-addresses'?: { 'ip-address': string; 'ip-address-type': string; prefix: number }[] }[];
      return r.map((i) => ({ name: i.name, 'ip-addresses': i['ip-addresses'] ?? [] }));
    } catch {
      return undefined;
    }
  }

  /** guest-exec through the agent (stdin as input-data, output captured), then guest-exec-status until it exits. */
  async vmExec(g: SimGuest, argv: string[], stdin?: Buffer): Promise<ExecResult> {
    const vm = this.vms.get(g.vmid)?.vm;
    if (!vm || !alive(vm.pid)) throw new Error('QEMU guest agent is not running');
    const { pid } = await vm.agent({ execute: 'guest-exec', arguments: { path: argv[0], arg: argv.slice(1), 'capture-output': true, ...(stdin ? { 'input-data': stdin.toString('base64') } : {}) } }, 10_000) as { pid: number };
    const deadline = Date.now() + 120_000;
    for (;;) {
      const st = await vm.agent({ execute: 'guest-exec-status', arguments: { pid } }, 10_000) as { exited: boolean; exitcode?: number; signal?: number; 'out-data'?: string; 'err-data'?: string };
      if (st.exited) {
        const dec = (x?: string) => (x ? Buffer.from(x, 'base64').toString('utf8') : '');
        return { code: st.exitcode ?? 128 + (st.signal ?? 0), stdout: dec(st['out-data']), stderr: dec(st['err-data']) };
      }
      if (Date.now() > deadline) throw new Error(`guest-exec ${argv[0]} did not finish`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async vmWriteFile(g: SimGuest, path: string, data: Buffer): Promise<void> {
    const vm = this.vms.get(g.vmid)?.vm;
    if (!vm || !alive(vm.pid)) throw new Error('QEMU guest agent is not running');
    const h = await vm.agent({ execute: 'guest-file-open', arguments: { path, mode: 'w' } }, 10_000) as number;
    try {
      await vm.agent({ execute: 'guest-file-write', arguments: { handle: h, 'buf-b64': data.toString('base64') } }, 10_000);
    } finally {
      await vm.agent({ execute: 'guest-file-close', arguments: { handle: h } }, 10_000);
    }
  }

  /** The forwarded 127.0.0.1 port of the running VM whose user-mode address is `host` (10.0.<n>.15). */
  vmPortFor(host: string, guestPort = 445): number | undefined {
    for (const v of this.vms.values()) if (v.vm && host === `10.0.${v.subnet}.15`) return v.vm.ports[guestPort];
    return undefined;
  }

  async probe(host: string, share: string, user: string, password: string): Promise<{ ok: boolean; output: string }> {
    await mkdir(this.dir, { recursive: true });
    const auth = join(this.dir, `auth-${uid()}`);
    await writeFile(auth, `username = ${user}\npassword = ${password}\n`, { mode: 0o600 });
    try {
      const port = this.vmPortFor(host);
      const ct = [...this.cts.values()].find((c) => c.ct && c.ip === host);
      let r;
      if (port) r = await run('smbclient', ['-s', '/dev/null', '-p', String(port), `//127.0.0.1/${share}`, '-A', auth, '-c', 'ls'], { allowFail: true });
      else if (ct?.net) r = await ct.net.exec(['smbclient', '-s', '/dev/null', `//${host}/${share}`, '-A', auth, '-c', 'ls'], { allowFail: true });
      else return { ok: false, output: `do_connect: Connection to ${host} failed (Error NT_STATUS_HOST_UNREACHABLE)` };
      return { ok: r.code === 0, output: (r.stdout + r.stderr).trim() };
    } finally {
      await rm(auth, { force: true });
    }
  }

  async close(): Promise<void> {
    for (const vmid of [...this.vms.keys()]) await this.vmDestroy({ vmid } as SimGuest);
    for (const vmid of [...this.cts.keys()]) await this.ctDestroy({ vmid } as SimGuest);
    for (const n of this.nets.values()) await n.destroy();
    this.nets.clear();
    if (await exists(this.dir)) await rm(this.dir, { recursive: true, force: true });
  }
}

/** Convenience for tests: a backend whose guests end with the test. */
export async function realBackend(t: { after: (fn: () => Promise<void>) => void }, opts: { dir?: string; vm?: boolean } = {}): Promise<RealGuestBackend> {
  const b = new RealGuestBackend(opts);
  t.after(() => b.close());
  await b.prepare({ vm: opts.vm ?? false });
  return b;
}
