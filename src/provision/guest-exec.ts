/**
 * Commands and files inside a share's guest, one interface for both guest kinds:
 *  - containers: `pct exec` / `pct push` on this node;
 *  - VMs: the QEMU guest agent through the Proxmox VE API (`POST .../agent/exec` with `input-data` as
 *    standard input, `GET .../agent/exec-status` until it exits, `POST .../agent/file-write`). With the
 *    pvesh transport every parameter would be an argument of pvesh (visible in `ps`), so a command that
 *    reads a secret on standard input runs through `qm guest exec --pass-stdin 1` on the node instead.
 * Secrets only ever travel as standard input, never as arguments.
 *
 * Also the journal records of what a step changes inside a guest (accounts, files, passwords) and their
 * repairers, so that `repair` can put a guest back after a crash (provision/repair.ts registers them).
 */
import { GatewayError } from '../core/errors.ts';
import type { Runner } from '../core/exec.ts';
import type { JournalRecord } from '../core/journal.ts';
import type { GuestKind, PveApi } from '../pve/api.ts';
import { PveshTransport } from '../pve/client.ts';
import { pctExec, pctPush } from './guest.ts';

export interface GuestShell {
  /** `CT 101` or `VM 102`, for messages. */
  readonly what: string;
  readonly ref: GuestRef;
  /** Run a command; `input` is its standard input (secrets go there). Fails on a non-zero exit. */
  exec(argv: string[], input?: string): Promise<string>;
  /** Replace a file (not a secret: the VM variant sends the content as an API parameter). */
  write(path: string, content: string, perms: string): Promise<void>;
}

/** Which guest: enough to reach it again in a repair. */
export interface GuestRef { type: GuestKind; node: string; vmid: number }

export function pctShell(run: Runner, node: string, vmid: number): GuestShell {
  return {
    what: `CT ${vmid}`,
    ref: { type: 'lxc', node, vmid },
    exec: (argv, input) => pctExec(run, vmid, argv, input),
    write: (path, content, perms) => pctPush(run, vmid, content, path, perms),
  };
}

/** The agent's limit for file-write content (Proxmox's schema: maxLength 61440). */
const FILE_WRITE_MAX = 61440;

export function agentShell(api: PveApi, run: Runner, node: string, vmid: number, timeoutMs = 10 * 60_000): GuestShell {
  const what = `VM ${vmid}`;
  const failed = (argv: string[], code: number | string, err: string) =>
    new GatewayError('failed', `in ${what}: ${argv.slice(0, 3).join(' ')} failed (exit ${code}): ${err.trim().split('\n').slice(-3).join(' | ') || 'no output'}`);
  const viaQm = async (argv: string[], input: string): Promise<string> => {
    const secs = Math.max(1, Math.ceil(timeoutMs / 1000));
    const r = await run('qm', ['guest', 'exec', String(vmid), '--pass-stdin', '1', '--timeout', String(secs), '--', ...argv], { input, allowFail: true, timeoutMs: timeoutMs + 10_000 });
    if (r.code !== 0) throw failed(argv, r.code, r.stderr || r.stdout);
    let st: { exitcode?: number; exited?: number | boolean; 'out-data'?: string; 'err-data'?: string; signal?: number };
    try { st = JSON.parse(r.stdout) as typeof st; } catch { throw new GatewayError('failed', `in ${what}: qm guest exec gave no result: ${r.stdout.trim().slice(0, 200)}`); }
    if (!st.exited) throw new GatewayError('failed', `in ${what}: ${argv.slice(0, 3).join(' ')} did not finish within ${secs} s`);
    if (st.exitcode !== 0) throw failed(argv, st.exitcode ?? `signal ${st.signal}`, st['err-data'] || st['out-data'] || '');
    return st['out-data'] ?? '';
  };
  const exec = async (argv: string[], input?: string): Promise<string> => {
    if (input !== undefined && api.c.transport instanceof PveshTransport) return viaQm(argv, input);
    const { pid } = await api.agentExec(node, vmid, argv, input);
    const deadline = Date.now() + timeoutMs;
    let wait = 50;
    for (;;) {
      const st = await api.agentExecStatus(node, vmid, pid);
      if (st.exited) {
        if (st.exitcode !== 0) throw failed(argv, st.exitcode ?? `signal ${st.signal}`, st['err-data'] || st['out-data'] || '');
        return st['out-data'] ?? '';
      }
      if (Date.now() > deadline) throw new GatewayError('failed', `in ${what}: ${argv.slice(0, 3).join(' ')} did not finish within ${Math.round(timeoutMs / 1000)} s`);
      await new Promise((r) => setTimeout(r, wait));
      wait = Math.min(wait * 2, 1000);
    }
  };
  return {
    what,
    ref: { type: 'qemu', node, vmid },
    exec,
    write: async (path, content, perms) => {
      if (content.length > FILE_WRITE_MAX) throw new GatewayError('failed', `in ${what}: ${path} would be ${content.length} characters, more than the guest agent takes (${FILE_WRITE_MAX})`);
      await api.agentFileWrite(node, vmid, path, content);
      await exec(['chmod', perms, path]);
    },
  };
}

/** The shell of a recorded guest (a repair). */
export function shellOf(ref: GuestRef, c: { run: Runner; api: () => PveApi }): GuestShell {
  return ref.type === 'lxc' ? pctShell(c.run, ref.node, ref.vmid) : agentShell(c.api(), c.run, ref.node, ref.vmid);
}

// --- accounts inside a guest ---

/** The uid of an account in the guest, or undefined when there is none. */
export async function guestUid(sh: GuestShell, name: string): Promise<number | undefined> {
  const out = await sh.exec(['getent', 'passwd', name]).catch(() => '');
  const f = out.trim().split(':');
  return f[0] === name && /^\d+$/.test(f[2] ?? '') ? Number(f[2]) : undefined;
}

export async function addGuestAccount(sh: GuestShell, name: string, uid: number, password: string): Promise<void> {
  const id = String(uid);
  if ((await guestUid(sh, name)) === undefined) {
    await sh.exec(['groupadd', '--gid', id, name]).catch(() => undefined); // the group may be left from before
    await sh.exec(['useradd', '--no-create-home', '--shell', '/usr/sbin/nologin', '--uid', id, '--gid', id, name]);
  }
  await sh.exec(['smbpasswd', '-s', '-a', name], `${password}\n${password}\n`);
}

export async function removeGuestAccount(sh: GuestShell, name: string): Promise<void> {
  await sh.exec(['pdbedit', '-x', '-u', name]).catch(() => undefined);
  await sh.exec(['userdel', name]).catch(() => undefined);
  await sh.exec(['groupdel', name]).catch(() => undefined);
}

/**
 * An account a step adds (before false) or removes (after false) in a guest. A removed account is put
 * back from the password the gateway keeps for it (guest accounts are the gateway's own), so the record
 * holds it: the journal is 0600 like the secrets.
 */
export type GuestAccountRecord = { kind: 'guest-account'; guest: GuestRef; name: string; uid: number; before: boolean; after: boolean; password?: string };

export async function undoGuestAccount(sh: GuestShell, r: GuestAccountRecord): Promise<string> {
  const uid = await guestUid(sh, r.name);
  if (r.after && !r.before) {
    if (uid === undefined) return `${r.name} is not in ${sh.what}`;
    if (uid !== r.uid) throw new GatewayError('failed', `${r.name} in ${sh.what} has uid ${uid}, not ${r.uid} as the operation made it: left as it is`);
    await removeGuestAccount(sh, r.name);
    return `removed ${r.name} from ${sh.what}`;
  }
  if (r.before && !r.after) {
    if (uid !== undefined && uid !== r.uid) throw new GatewayError('failed', `${r.name} in ${sh.what} has uid ${uid}, not ${r.uid} as before: left as it is`);
    if (r.password === undefined) throw new GatewayError('failed', `${r.name} in ${sh.what}: no password kept to put the account back`);
    await addGuestAccount(sh, r.name, r.uid, r.password);
    return `put back ${r.name} in ${sh.what}`;
  }
  return `${r.name} in ${sh.what} unchanged`;
}

/** A password a step sets again in a guest; the undo sets the one before (the gateway's stored secret). */
export type GuestPasswordRecord = { kind: 'guest-password'; guest: GuestRef; name: string; before: string };

export async function undoGuestPassword(sh: GuestShell, r: GuestPasswordRecord): Promise<string> {
  if ((await guestUid(sh, r.name)) === undefined) return `${r.name} is not in ${sh.what}`;
  await sh.exec(['smbpasswd', '-s', r.name], `${r.before}\n${r.before}\n`);
  return `put back the password of ${r.name} in ${sh.what}`;
}

/** A file a step replaces in a guest (the managed smb.conf): its text before; Samba reloads after the undo. */
export type GuestFileRecord = { kind: 'guest-file'; guest: GuestRef; path: string; before: string | null; perms: string };

export async function readGuestFile(sh: GuestShell, path: string): Promise<string | null> {
  return sh.exec(['cat', '--', path]).catch((e: Error) => { if (/No such file/i.test(e.message)) return null; throw e; });
}

export async function reloadGuestSamba(sh: GuestShell): Promise<void> {
  await sh.exec(['smbcontrol', 'smbd', 'reload-config']).catch((e: Error) => { if (!/Can't find pid for destination 'smbd'/.test(e.message)) throw e; });
}

export async function undoGuestFile(sh: GuestShell, r: GuestFileRecord): Promise<string> {
  if (r.before === null) await sh.exec(['rm', '-f', '--', r.path]);
  else await sh.write(r.path, r.before, r.perms);
  await reloadGuestSamba(sh);
  return `put back ${r.path} in ${sh.what}`;
}

export const guestRepairers = {
  'guest-account': { undo: (r: JournalRecord, c: { run: Runner; api: () => PveApi }) => undoGuestAccount(shellOf((r as GuestAccountRecord).guest, c), r as GuestAccountRecord) },
  'guest-password': { undo: (r: JournalRecord, c: { run: Runner; api: () => PveApi }) => undoGuestPassword(shellOf((r as GuestPasswordRecord).guest, c), r as GuestPasswordRecord) },
  'guest-file': { undo: (r: JournalRecord, c: { run: Runner; api: () => PveApi }) => undoGuestFile(shellOf((r as GuestFileRecord).guest, c), r as GuestFileRecord) },
};
