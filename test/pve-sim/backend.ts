/**
 * What the simulator does with guests beyond its own bookkeeping. The `fake` backend only records:
 * files pushed, commands run (a few are interpreted: package state, accounts, Samba users, cat), so
 * that tests can assert what a container or VM would hold. A real backend (LXC containers and QEMU
 * VMs on this machine, test/guests/) implements the same interface.
 */
import { readFile } from 'node:fs/promises';

export interface SimGuest {
  vmid: number;
  kind: 'lxc' | 'qemu';
  node: string;
  config: Record<string, string>;
  status: 'running' | 'stopped';
  template: boolean;
}

export interface ExecResult { code: number; stdout: string; stderr: string }

export interface VmStartContext {
  /** cloud-init user-data named by cicustom (read from the snippets storage). */
  userData?: string;
  /** virtiofs tags, the host directory each maps to on this node, and whether ACLs are exposed. */
  virtiofs: { tag: string; path: string; acl?: boolean }[];
}

export interface GuestBackend {
  readonly name: string;
  /** A new container from an ostemplate archive (path on the node) or a clone of another. */
  ctCreate(g: SimGuest, ostemplatePath: string | undefined): Promise<void>;
  ctClone(src: SimGuest, dst: SimGuest, linked: boolean): Promise<void>;
  ctStart(g: SimGuest): Promise<void>;
  ctStop(g: SimGuest): Promise<void>;
  ctDestroy(g: SimGuest): Promise<void>;
  ctExec(g: SimGuest, argv: string[], stdin?: Buffer): Promise<ExecResult>;
  ctPush(g: SimGuest, data: Buffer, dest: string, mode: number): Promise<void>;
  ctInterfaces(g: SimGuest): Promise<{ name: string; inet?: string; hwaddr?: string }[]>;
  vmCreate(g: SimGuest, importFrom: string | undefined): Promise<void>;
  vmClone(src: SimGuest, dst: SimGuest, linked: boolean): Promise<void>;
  vmStart(g: SimGuest, ctx: VmStartContext): Promise<void>;
  vmStop(g: SimGuest): Promise<void>;
  vmDestroy(g: SimGuest): Promise<void>;
  /** Whether the VM still runs (it may power itself off, e.g. after the template setup). */
  vmRunning?(g: SimGuest): Promise<boolean>;
  /** undefined while the guest agent does not answer. */
  vmAgentInterfaces(g: SimGuest): Promise<{ name: string; 'ip-addresses': { 'ip-address': string; 'ip-address-type': string; prefix: number }[] }[] | undefined>;
  /** A command through the VM's guest agent (guest-exec; stdin as its input-data); rejects while the agent does not answer. */
  vmExec?(g: SimGuest, argv: string[], stdin?: Buffer): Promise<ExecResult>;
  /** A file written through the guest agent (guest-file-open/write/close). */
  vmWriteFile?(g: SimGuest, path: string, data: Buffer): Promise<void>;
  /** Whether an SMB logon to host/share with user/password would work (fake backend; real ones use smbclient). */
  probe?(host: string, share: string, user: string, password: string): Promise<{ ok: boolean; output: string }>;
  close(): Promise<void>;
}

export interface FakeGuestState {
  files: Map<string, { data: string; mode: number }>;
  exec: { argv: string[]; stdin?: string }[];
  packages: Set<string>;
  unixUsers: Map<string, { uid: number; gid: number }>;
  sambaUsers: Map<string, string>;
  /** VMs: NT hashes of the Samba accounts (from the cloud-init passdb, then smbpasswd and pdbedit -x). */
  ntHashes: Map<string, string>;
  reloads: number;
  ip?: string;
  userData?: string;
  virtiofs: { tag: string; path: string; acl?: boolean }[];
  agentUpAt?: number;
}

/** An address for a DHCP guest: recorded only, never contacted. */
function fakeDhcp(vmid: number): string { return `10.213.${Math.floor(vmid / 250) % 250}.${(vmid % 250) + 2}`; }

function staticIp(spec: string | undefined): string | undefined {
  const m = /(?:^|,)ip=([\d.]+)\/\d+/.exec(spec ?? '');
  return m?.[1];
}

export class FakeBackend implements GuestBackend {
  readonly name = 'fake';
  readonly guests = new Map<number, FakeGuestState>();
  /** Packages that the ostemplate already carries (a Debian standard template has no Samba). */
  constructor(private readonly opts: { preinstalled?: string[]; agentDelayMs?: number } = {}) {}

  state(vmid: number): FakeGuestState {
    let s = this.guests.get(vmid);
    if (!s) {
      s = { files: new Map(), exec: [], packages: new Set(this.opts.preinstalled ?? []), unixUsers: new Map(), sambaUsers: new Map(), ntHashes: new Map(), reloads: 0, virtiofs: [] };
      this.guests.set(vmid, s);
    }
    return s;
  }

  private copy(src: number, dst: number): void {
    const a = this.state(src);
    this.guests.set(dst, {
      files: new Map(a.files), exec: [], packages: new Set(a.packages), unixUsers: new Map(a.unixUsers),
      sambaUsers: new Map(a.sambaUsers), ntHashes: new Map(a.ntHashes), reloads: 0, virtiofs: [],
    });
  }

  async ctCreate(g: SimGuest): Promise<void> { this.guests.delete(g.vmid); this.state(g.vmid); }
  async ctClone(src: SimGuest, dst: SimGuest): Promise<void> { this.copy(src.vmid, dst.vmid); }
  async ctStart(g: SimGuest): Promise<void> {
    const s = this.state(g.vmid);
    s.ip = staticIp(g.config.net0) ?? (/ip=dhcp/.test(g.config.net0 ?? '') ? fakeDhcp(g.vmid) : undefined);
  }
  async ctStop(g: SimGuest): Promise<void> { this.state(g.vmid).ip = undefined; }
  async ctDestroy(g: SimGuest): Promise<void> { this.guests.delete(g.vmid); }
  async ctInterfaces(g: SimGuest) {
    const s = this.state(g.vmid);
    return [{ name: 'lo', inet: '127.0.0.1/8' }, { name: 'eth0', ...(s.ip ? { inet: `${s.ip}/24` } : {}), hwaddr: 'BC:24:11:00:00:01' }];
  }
  async ctPush(g: SimGuest, data: Buffer, dest: string, mode: number): Promise<void> {
    this.state(g.vmid).files.set(dest, { data: data.toString('utf8'), mode });
  }

  async ctExec(g: SimGuest, argv: string[], stdin?: Buffer): Promise<ExecResult> {
    const s = this.state(g.vmid);
    const input = stdin?.toString('utf8');
    s.exec.push({ argv, stdin: input === undefined ? undefined : '<' + input.length + ' bytes>' });
    let i = 0;
    if (argv[0] === 'env') { i = 1; while (argv[i]?.includes('=')) i++; }
    const [cmd, ...args] = argv.slice(i);
    const ok = (stdout = ''): ExecResult => ({ code: 0, stdout, stderr: '' });
    const fail = (stderr: string, code = 1): ExecResult => ({ code, stdout: '', stderr });
    const need = (pkg: string) => s.packages.has(pkg);
    switch (cmd) {
      case 'dpkg-query': {
        // As dpkg-query -W: the status of each package asked for, exit 1 if one is not there.
        const pkgs = args.filter((a) => !a.startsWith('-'));
        const missing = pkgs.find((p) => !need(p));
        if (missing) return fail(`dpkg-query: no packages found matching ${missing}`);
        return ok(pkgs.map(() => 'install ok installed').join('\n') + (pkgs.length > 1 ? '\n' : ''));
      }
      case 'apt-get':
        if (args.includes('install')) for (const p of args.filter((a) => !a.startsWith('-') && a !== 'install')) s.packages.add(p);
        return ok();
      case 'groupadd': return ok();
      case 'groupdel': return ok();
      case 'getent': {
        const u = s.unixUsers.get(args[1]!);
        return args[0] === 'passwd' && u ? ok(`${args[1]}:x:${u.uid}:${u.gid}::/nonexistent:/usr/sbin/nologin\n`) : fail('', 2);
      }
      case 'chmod': { const f = s.files.get(args[1]!); if (!f) return fail(`chmod: cannot access '${args[1]}': No such file or directory`); f.mode = parseInt(args[0]!, 8); return ok(); }
      case 'useradd': {
        const name = args[args.length - 1]!;
        const uid = Number(args[args.indexOf('--uid') + 1] ?? args[args.indexOf('-u') + 1]);
        if (s.unixUsers.has(name)) return fail(`useradd: user '${name}' already exists`, 9);
        s.unixUsers.set(name, { uid, gid: uid });
        return ok();
      }
      case 'userdel': s.unixUsers.delete(args[args.length - 1]!); return ok();
      case 'smbpasswd': {
        if (!need('samba')) return fail('smbpasswd: command not found', 127);
        const name = args[args.length - 1]!;
        if (!s.unixUsers.has(name)) return fail(`Failed to add entry for user ${name}.`);
        const pw = (input ?? '').split('\n')[0] ?? '';
        if (!args.includes('-a') && !s.sambaUsers.has(name) && !s.ntHashes.has(name)) return fail(`Failed to find entry for user ${name}.`);
        s.sambaUsers.set(name, pw);
        s.ntHashes.set(name, (await import('../../src/samba/nthash.ts')).ntHash(pw));
        return ok(args.includes('-a') ? `Added user ${name}.` : '');
      }
      case 'pdbedit':
        if (args.includes('-x')) { s.sambaUsers.delete(args[args.length - 1]!); s.ntHashes.delete(args[args.length - 1]!); }
        return ok();
      case 'testparm': {
        if (!need('samba')) return fail('testparm: command not found', 127);
        const file = args[args.length - 1]!;
        const f = s.files.get(file);
        return f ? ok(f.data) : fail(`Can't load ${file} - run testparm to debug it`);
      }
      case 'smbcontrol': if (!need('samba')) return fail('smbcontrol: command not found', 127); s.reloads++; return ok();
      case 'smbstatus': return need('samba') ? ok(JSON.stringify({ sessions: {}, tcons: {}, open_files: {} })) : fail('smbstatus: command not found', 127);
      case 'cat': {
        const file = args[args.length - 1]!;
        const f = s.files.get(file);
        return f ? ok(f.data) : fail(`cat: ${file}: No such file or directory`);
      }
      case 'rm': for (const a of args) if (!a.startsWith('-')) s.files.delete(a); return ok();
      default: return ok();
    }
  }

  async vmCreate(g: SimGuest): Promise<void> { this.guests.delete(g.vmid); this.state(g.vmid); }
  async vmClone(src: SimGuest, dst: SimGuest): Promise<void> { this.copy(src.vmid, dst.vmid); }
  async vmStart(g: SimGuest, ctx: VmStartContext): Promise<void> {
    const s = this.state(g.vmid);
    if (ctx.userData !== undefined && s.userData === undefined) {
      // First boot: cloud-init's write_files and the passdb import (NT hashes), as the guest would hold them.
      for (const m of ctx.userData.matchAll(/^  - path: "([^"]+)"\n    permissions: "(\d+)"\n    content: \|\n((?:      .*\n?)*)/gm)) {
        s.files.set(m[1]!, { data: m[3]!.split('\n').map((l) => l.slice(6)).join('\n').replace(/\n*$/, '\n'), mode: parseInt(m[2]!, 8) });
      }
      for (const m of ctx.userData.matchAll(/^      ([^:\s]+):(\d+):X{32}:([0-9A-F]{32}):/gm)) { s.ntHashes.set(m[1]!, m[3]!); s.unixUsers.set(m[1]!, { uid: Number(m[2]), gid: Number(m[2]) }); }
      if (s.packages.has('samba')) s.reloads++;
    }
    s.userData = ctx.userData;
    s.virtiofs = ctx.virtiofs;
    s.ip = staticIp(g.config.ipconfig0) ?? fakeDhcp(g.vmid);
    s.agentUpAt = Date.now() + (this.opts.agentDelayMs ?? 50);
  }
  async vmRunning(g: SimGuest): Promise<boolean> {
    const s = this.state(g.vmid);
    return !(s.userData?.includes('power_state:') && s.agentUpAt !== undefined && Date.now() >= s.agentUpAt);
  }
  async vmExec(g: SimGuest, argv: string[], stdin?: Buffer): Promise<ExecResult> {
    const s = this.state(g.vmid);
    if (!s.agentUpAt || Date.now() < s.agentUpAt) throw new Error('QEMU guest agent is not running');
    return this.ctExec(g, argv, stdin);
  }
  async vmWriteFile(g: SimGuest, path: string, data: Buffer): Promise<void> {
    const s = this.state(g.vmid);
    if (!s.agentUpAt || Date.now() < s.agentUpAt) throw new Error('QEMU guest agent is not running');
    s.files.set(path, { data: data.toString('utf8'), mode: s.files.get(path)?.mode ?? 0o644 });
  }
  async vmStop(g: SimGuest): Promise<void> { const s = this.state(g.vmid); s.ip = undefined; s.agentUpAt = undefined; }
  async vmDestroy(g: SimGuest): Promise<void> { this.guests.delete(g.vmid); }
  async vmAgentInterfaces(g: SimGuest) {
    const s = this.state(g.vmid);
    if (!s.agentUpAt || Date.now() < s.agentUpAt) return undefined;
    return [
      { name: 'lo', 'ip-addresses': [{ 'ip-address': '127.0.0.1', 'ip-address-type': 'ipv4', prefix: 8 }] },
      { name: 'eth0', 'ip-addresses': [{ 'ip-address': s.ip!, 'ip-address-type': 'ipv4', prefix: 24 }] },
    ];
  }

  /** A logon works when a running guest at that address serves the share and knows the user's password. */
  async probe(host: string, share: string, user: string, password: string): Promise<{ ok: boolean; output: string }> {
    const entry = [...this.guests.entries()].find(([, s]) => s.ip === host);
    if (!entry) return { ok: false, output: `do_connect: Connection to ${host} failed (Error NT_STATUS_HOST_UNREACHABLE)` };
    const [, s] = entry;
    if (s.userData !== undefined) {
      // VM: the config and the users' NT hashes as cloud-init left them, changed since through the guest agent.
      const { ntHash } = await import('../../src/provision/guest.ts');
      const conf = s.files.get('/etc/samba/smbgateway.conf')?.data ?? s.userData;
      if (!conf.includes(`[${share}]`)) return { ok: false, output: 'tree connect failed: NT_STATUS_BAD_NETWORK_NAME' };
      if (s.ntHashes.get(user) !== ntHash(password)) return { ok: false, output: 'session setup failed: NT_STATUS_LOGON_FAILURE' };
      const valid = /^\s*valid users = (.*)$/m.exec(conf)?.[1]?.split(' ') ?? [];
      if (!valid.includes(user)) return { ok: false, output: 'tree connect failed: NT_STATUS_ACCESS_DENIED' };
      return { ok: true, output: '  .   D   0  Thu Jan  1 00:00:00 2026' };
    }
    const conf = [...s.files.values()].map((f) => f.data).join('\n');
    if (!s.reloads || !conf.includes(`[${share}]`)) return { ok: false, output: 'tree connect failed: NT_STATUS_BAD_NETWORK_NAME' };
    if (s.sambaUsers.get(user) !== password) return { ok: false, output: 'session setup failed: NT_STATUS_LOGON_FAILURE' };
    return { ok: true, output: '  .   D   0  Thu Jan  1 00:00:00 2026' };
  }

  async close(): Promise<void> { this.guests.clear(); }
}

export async function readIfExists(path: string): Promise<string | undefined> {
  return readFile(path, 'utf8').catch(() => undefined);
}
