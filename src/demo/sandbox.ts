/**
 * A private smbd on 127.0.0.1: its own smb.conf, state, locks, passdb and port, so that it never
 * touches the host's Samba. Used by the demo and the tests. smbd runs in its own session
 * (detached), since a foreground smbd signals its whole process group when stopped.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { join } from 'node:path';
import { binaryFor } from '../core/exec.ts';

export interface Sandbox {
  dir: string;
  smbConf: string;
  managedConf: string;
  port: number;
  host: string;
  pid: number;
  stop: () => Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

export function waitPort(host: string, port: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((res, rej) => {
    const attempt = () => {
      const c = connect(port, host);
      c.once('connect', () => { c.destroy(); res(); });
      c.once('error', () => {
        c.destroy();
        if (Date.now() > deadline) rej(new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

/** The main smb.conf of a sandboxed instance; shares come from the managed include file. */
export function sandboxConf(dir: string, port: number, managedConf: string, netbios = 'SMBGWDEMO'): string {
  const d = (x: string) => join(dir, x);
  return `[global]
   workgroup = WORKGROUP
   server role = standalone server
   netbios name = ${netbios}
   smb ports = ${port}
   interfaces = 127.0.0.1
   bind interfaces only = yes
   disable netbios = yes
   private dir = ${d('private')}
   lock directory = ${d('lock')}
   state directory = ${d('state')}
   cache directory = ${d('cache')}
   pid directory = ${d('pid')}
   ncalrpc dir = ${d('ncalrpc')}
   log file = ${d('log')}/log.%m
   logging = file
   log level = 1 auth_json_audit:3@${d('log')}/auth.json full_audit:1@${d('log')}/tcon.log
   max log size = 1000
   load printers = no
   printing = bsd
   printcap name = /dev/null
   disable spoolss = yes
   passdb backend = tdbsam:${d('private')}/passdb.tdb
   include = ${managedConf}
`;
}

/** Whether a process other than a zombie is left in session `sid` (zombies write nothing). */
async function sessionAlive(sid: number): Promise<boolean> {
  for (const d of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(d)) continue;
    const stat = await readFile(`/proc/${d}/stat`, 'utf8').catch(() => '');
    // pid (comm) state ppid pgrp session ...: comm may hold spaces, so split after the last ')'.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (f[0] !== 'Z' && Number(f[3]) === sid) return true;
  }
  return false;
}

export async function startSandbox(dir: string, opts: { port?: number; netbios?: string } = {}): Promise<Sandbox> {
  await rm(dir, { recursive: true, force: true });
  for (const x of ['private', 'lock', 'state', 'cache', 'pid', 'ncalrpc', 'log']) await mkdir(join(dir, x), { recursive: true });
  const port = opts.port ?? (await freePort());
  const smbConf = join(dir, 'smb.conf');
  const managedConf = join(dir, 'smbgateway.conf');
  await writeFile(smbConf, sandboxConf(dir, port, managedConf, opts.netbios));
  const child: ChildProcess = spawn(binaryFor('smbd'), ['--foreground', '--no-process-group', '-s', smbConf], {
    detached: true,
    stdio: 'ignore',
  });
  child.unref();
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  const pid = child.pid!;
  const stop = async () => {
    try { process.kill(pid, 'SIGTERM'); } catch { return; }
    const t = setTimeout(() => { try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ } }, 5000);
    await exited;
    clearTimeout(t);
    // smbd's children exit with their parent; make sure none lingers in the session, and wait until
    // the session is empty, so that nothing writes into the state directory after the caller removes it.
    try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ }
    for (const end = Date.now() + 5000; Date.now() < end && (await sessionAlive(pid)); ) await new Promise((r) => setTimeout(r, 20));
  };
  try {
    await waitPort('127.0.0.1', port);
  } catch (e) {
    await stop();
    throw e;
  }
  return { dir, smbConf, managedConf, port, host: '127.0.0.1', pid, stop };
}
