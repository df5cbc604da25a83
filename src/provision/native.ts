/**
 * Native mode: Samba on the host. Planning (what to do, from the request and what exists) is
 * kept apart from applying it (applyPlan, with rollback).
 */
import { readFile, rm, rmdir } from 'node:fs/promises';
import { GatewayError, invalid } from '../core/errors.ts';
import type { Runner } from '../core/exec.ts';
import type { Step } from '../core/plan.ts';
import { shareUsers, type Share } from '../core/share.ts';
import type { ShareStore } from '../core/store.ts';
import { smbConfSteps } from '../samba/apply.ts';
import type { Samba } from '../samba/samba.ts';
import { backingTag, deleteSnapshot, listSnapshots, snapshottable } from '../backup/snapshots.ts';
import { addUnixUser, deleteUnixUser, getUnixUser } from './accounts.ts';
import { permissionSteps, revokePermissionsStep } from './permissions.ts';
import { destroyDataset, preStorageQuotaSteps, quotaSteps, storageSteps } from './quota.ts';
import { placeNewShare, requireQuotaSupport } from './storage.ts';

export interface NativeCtx {
  run: Runner;
  store: ShareStore;
  samba: Samba;
  allowedRoots: readonly string[];
}

/**
 * Passwords from a file: one line = the password of every new user; `user:password` lines name
 * the user. `-` reads standard input.
 */
export async function readPasswordFile(file: string, users: readonly string[]): Promise<Map<string, string>> {
  let text: string;
  try {
    text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
  } catch {
    throw invalid('password_file', `cannot read ${file}`);
  }
  const lines = text.split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l !== '');
  const out = new Map<string, string>();
  if (lines.length === 1 && !users.some((u) => lines[0]!.startsWith(u + ':'))) {
    for (const u of users) out.set(u, lines[0]!);
  } else {
    for (const l of lines) {
      const i = l.indexOf(':');
      if (i > 0) out.set(l.slice(0, i), l.slice(i + 1));
    }
  }
  for (const [u, pw] of out) if (pw.length < 8) throw invalid('password_file', `the password for ${u} must have at least 8 characters`);
  return out;
}

function readStdin(): Promise<string> {
  return new Promise((res, rej) => {
    let s = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d) => (s += d));
    process.stdin.on('end', () => res(s));
    process.stdin.on('error', rej);
  });
}

export interface CreatePlan { steps: Step[]; share: Share; warnings: string[] }

/** Everything a create needs to know, checked before anything changes. */
export async function planNativeCreate(ctx: NativeCtx, req: Share, existing: readonly Share[], passwords: Map<string, string>): Promise<CreatePlan> {
  const { run, store, samba } = ctx;
  const { path, backing } = await placeNewShare(run, req, existing, ctx.allowedRoots);
  requireQuotaSupport(backing, req.quota);

  const created: string[] = [];
  const share: Share = { ...req, path, created, backing: backingTag(backing, backing.kind === 'btrfs' && !backing.exists) };
  const warnings: string[] = [];

  // Accounts: which unix and Samba users are new, and which need a password.
  const users = shareUsers(share);
  const newUnix: string[] = [];
  const newSamba: string[] = [];
  const resetSamba: string[] = [];
  for (const u of users) {
    if (!(await getUnixUser(run, u))) newUnix.push(u);
    if (!(await samba.userExists(u))) {
      if (!passwords.has(u)) throw invalid('password_file', `user ${u} has no Samba account yet: give a password for it`);
      newSamba.push(u);
    } else if (passwords.has(u)) resetSamba.push(u);
  }
  for (const u of passwords.keys()) if (!users.includes(u)) throw invalid('password_file', `names user ${u}, who is not given access to this share`);

  const steps: Step[] = [
    ...preStorageQuotaSteps(run, backing, share.quota),
    ...storageSteps(run, path, backing, created),
    ...quotaSteps(run, path, backing, share.quota),
  ];
  if (newUnix.length) {
    const made: string[] = [];
    steps.push({
      name: 'add-unix-users',
      do: async () => { for (const u of newUnix) { await addUnixUser(run, u); made.push(u); created.push(`unixuser:${u}`); } },
      undo: async () => { for (const u of made.reverse()) await deleteUnixUser(run, u); },
    });
  }
  if (newSamba.length || resetSamba.length) {
    const added: string[] = [];
    const oldHashes = new Map<string, string>();
    steps.push({
      name: 'set-samba-passwords',
      do: async () => {
        for (const u of newSamba) { await samba.setPassword(u, passwords.get(u)!, true); added.push(u); created.push(`sambauser:${u}`); }
        for (const u of resetSamba) {
          const h = await samba.ntHash(u);
          if (h) oldHashes.set(u, h);
          await samba.setPassword(u, passwords.get(u)!, false);
        }
      },
      undo: async () => {
        for (const [u, h] of oldHashes) await samba.setNtHash(u, h);
        for (const u of added.reverse()) await samba.deleteUser(u);
      },
    });
  }
  steps.push(...permissionSteps(run, path, share, warnings, { fresh: !backing.exists }));
  if (passwords.size) steps.push(store.storeSecretsStep(share.sharename, passwords));
  const after = [...existing, share];
  steps.push(store.saveStep(() => after));
  steps.push(...smbConfSteps(samba, () => after));
  const probeUser = users.find((u) => passwords.has(u));
  if (probeUser) {
    steps.push({
      name: 'health-check',
      do: async () => {
        if (!(await samba.running())) { warnings.push('smbd is not running: the share is configured and will be served when smbd starts'); return; }
        const p = await samba.probe(share.sharename, probeUser, passwords.get(probeUser)!);
        if (!p.ok) throw new GatewayError('failed', `health check: smbclient as ${probeUser} could not list the share: ${p.output.split('\n').slice(-1)[0]}`);
      },
    });
  }
  return { steps, share, warnings };
}

/** Users and groups other shares still refer to are kept. */
function stillUsed(existing: readonly Share[], self: Share, user: string): boolean {
  return existing.some((s) => s !== self && shareUsers(s).includes(user));
}

export async function planNativeDelete(ctx: NativeCtx, share: Share, existing: readonly Share[], opts: { purge: boolean }): Promise<Step[]> {
  const { run, store, samba } = ctx;
  const rest = existing.filter((s) => s !== share);
  const steps: Step[] = [
    store.saveStep(() => rest),
    ...smbConfSteps(samba, () => rest),
    // After the reload no new tree connect can reach the share; now drop the ones still open.
    { name: 'close-share', do: () => samba.closeShare(share.sharename) },
  ];
  steps.push(store.removeSecretsStep(share.sharename, shareUsers(share)));
  steps.push(revokePermissionsStep(run, share, rest)); // before the accounts go: their ids stay in ACLs
  const sambaUsers = share.created.filter((c) => c.startsWith('sambauser:')).map((c) => c.slice(10)).filter((u) => !stillUsed(existing, share, u));
  if (sambaUsers.length) {
    const hashes = new Map<string, string>();
    steps.push({
      name: 'remove-samba-users',
      do: async () => { for (const u of sambaUsers) { const h = await samba.ntHash(u); if (h) hashes.set(u, h); await samba.deleteUser(u); } },
      undo: async () => {
        for (const [u, h] of hashes) {
          await samba.setPassword(u, `restore-${Math.random().toString(36).slice(2)}A1!`, true);
          await samba.setNtHash(u, h);
        }
      },
    });
  }
  const unixUsers = share.created.filter((c) => c.startsWith('unixuser:')).map((c) => c.slice(9)).filter((u) => !stillUsed(existing, share, u));
  if (unixUsers.length) {
    const uids = new Map<string, number>();
    steps.push({
      name: 'remove-unix-users',
      do: async () => { for (const u of unixUsers) { const x = await getUnixUser(run, u); if (x) { uids.set(u, x.uid); await deleteUnixUser(run, u); } } },
      undo: async () => { for (const [u, uid] of uids) await addUnixUser(run, u, uid); },
    });
  }
  if (opts.purge) {
    // Destroying data cannot be undone: it is the last step, and only what the gateway itself made.
    steps.push({
      name: 'purge-storage',
      do: async () => {
        for (const c of [...share.created].reverse()) {
          const [kind, ...r] = c.split(':');
          const v = r.join(':');
          if (kind === 'dataset') await destroyDataset(run, v);
          else if (kind === 'subvolume') {
            const snaps = snapshottable(share);
            if (snaps?.kind === 'btrfs') {
              for (const n of await listSnapshots(run, snaps)) await deleteSnapshot(run, snaps, n);
              await rmdir(snaps.snapdir).catch(() => undefined);
            }
            await run('btrfs', ['subvolume', 'delete', v]);
          }
          else if (kind === 'dir') await rm(v, { recursive: true, force: true }).then(() => rmdir(v).catch(() => undefined));
        }
      },
    });
  }
  return steps;
}
