/**
 * A snapshot of everything a share operation can change on this host, to compare byte for byte:
 * shares.cfg, the managed smb.conf, what the private directory holds (names, modes and bytes), the storage tree (names,
 * types, modes, owners, sizes, file contents and ACLs through getfacl), the test users' passwd and
 * group entries and their Samba accounts (`pdbedit -L -w` line: NT hash and last change time; SID).
 */
import { createHash } from 'node:crypto';
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { Settings } from '../../src/core/settings.ts';
import { privDirOf } from '../../src/core/settings.ts';
import { sh } from './gateway.ts';

export interface SystemSnapshot {
  cfg: string;
  conf: string;
  priv: Record<string, string>;
  tree: Record<string, string>;
  accounts: Record<string, string>;
  samba: Record<string, string>;
}

async function walk(root: string, visit: (path: string) => Promise<void>): Promise<void> {
  await visit(root);
  const st = await lstat(root).catch(() => undefined);
  if (!st?.isDirectory()) return;
  for (const n of (await readdir(root)).sort()) await walk(join(root, n), visit);
}

async function describe(path: string): Promise<string> {
  const st = await lstat(path);
  const type = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'link' : 'other';
  const content = st.isFile() ? ` sha256=${createHash('sha256').update(await readFile(path)).digest('hex')}` : '';
  return `${type} mode=${(st.mode & 0o7777).toString(8)} owner=${st.uid}:${st.gid}${st.isFile() ? ` size=${st.size}` : ''}${content}`;
}

export async function systemSnapshot(settings: Settings, storage: string, users: readonly string[], opts: { skip?: readonly string[] } = {}): Promise<SystemSnapshot> {
  const text = (p: string) => readFile(p, 'utf8').catch(() => '<none>');
  const priv: Record<string, string> = {};
  const privDir = privDirOf(settings);
  await walk(privDir, async (p) => {
    const st = await lstat(p).catch(() => undefined);
    if (!st) return;
    // Its content: the directory itself may be left (empty, 0700) by the first operation that locked the store.
    if (p === privDir) return;
    priv[relative(privDir, p)] = st.isFile() ? `${(st.mode & 0o777).toString(8)} ${(await readFile(p)).toString('base64')}` : `dir ${(st.mode & 0o777).toString(8)}`;
  });
  const tree: Record<string, string> = {};
  const skip = opts.skip ?? [];
  await walk(storage, async (p) => {
    const rel = relative(storage, p) || '.';
    if (skip.some((s) => rel === s || rel.startsWith(s + '/'))) return;
    const acl = await sh('getfacl', ['-n', '--absolute-names', '--', p]);
    tree[rel] = `${await describe(p)}\n${acl.stdout.split('\n').filter((l) => !l.startsWith('# file:')).join('\n')}`;
  });
  const accounts: Record<string, string> = {};
  const samba: Record<string, string> = {};
  for (const u of users) {
    accounts[u] = `${(await sh('getent', ['passwd', u])).stdout}${(await sh('getent', ['group', u])).stdout}`;
    const w = await sh('pdbedit', ['-s', settings.smbConf, '-L', '-w', '-u', u]);
    const v = await sh('pdbedit', ['-s', settings.smbConf, '-L', '-v', '-u', u]);
    samba[u] = w.code === 0 ? `${w.stdout.trim()} ${/User SID:\s*(\S+)/.exec(v.stdout)?.[1] ?? ''}` : '<none>';
  }
  return { cfg: await text(join(settings.storeDir, 'shares.cfg')), conf: await text(settings.managedConf), priv, tree, accounts, samba };
}
