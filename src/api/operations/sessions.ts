/**
 * Who is connected to a share (user, client, dialect, signing, encryption, open files, the smbd
 * serving it) and disconnecting one of them; which storages a new share may go on.
 */
import { readdir, readFile, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { GatewayError, invalid } from '../../core/errors.ts';
import { defineOperation } from '../../core/operation.ts';
import { type Schema } from '../../core/schema.ts';
import { shareSchema, type Share } from '../../core/share.ts';
import type { SmbStatus } from '../../samba/samba.ts';
import { parseSectionConfig } from '../../core/sectionconfig.ts';
import { storageDirs } from '../../pve/storagemap.ts';
import type { Gateway } from '../../provision/context.ts';
import { AUDIT, changeSharePrivileges, readSharePrivileges } from '../privileges.ts';

const op = defineOperation<Gateway>();
const nameParam = { sharename: shareSchema.sharename } satisfies Schema;

export interface SessionRow {
  pid: number;
  user: string;
  machine: string;
  dialect: string | null;
  signed: boolean | null;
  encrypted: boolean | null;
  open_files: number;
}

/** The sessions on one share in an smbstatus answer (pure). */
export function sessionsOf(st: SmbStatus, share: Pick<Share, 'sharename' | 'path'>): SessionRow[] {
  const name = share.sharename.toLowerCase();
  const out: SessionRow[] = [];
  for (const t of st.tcons) {
    if (t.service.toLowerCase() !== name) continue;
    const s = st.sessions.find((x) => x.id === t.sessionId);
    let open = 0;
    for (const [path, n] of st.openByPidPath.get(t.pid) ?? []) if (path === share.path || path.startsWith(share.path + '/')) open += n;
    out.push({
      pid: t.pid, user: s?.username ?? '', machine: t.machine || s?.remote || '',
      dialect: s?.dialect ?? null, signed: s?.signed ?? null, encrypted: t.encrypted ?? s?.encrypted ?? null, open_files: open,
    });
  }
  return out;
}

async function nativeShare(g: Gateway, name: string): Promise<Share> {
  const share = await g.store.require(name);
  if (share.mode !== 'native') throw new GatewayError('unavailable', `sharename: sessions of ${share.mode} shares are seen in their guest (pve-smbgateway status ${share.sharename})`, 'sharename');
  return share;
}

export const sessionsOp = op({
  command: ['sessions'],
  method: 'GET',
  path: '/nodes/{node}/smbgateway/{sharename}/sessions',
  description: 'The SMB sessions on a share: user, client, dialect, signing, encryption, open files and the smbd process serving each.',
  parameters: nameParam,
  positional: ['sharename'],
  returns: { description: 'Sessions', schema: { type: 'array', items: { type: 'object', properties: { pid: { type: 'integer' }, user: { type: 'string' }, machine: { type: 'string' }, dialect: { type: 'string', nullable: true }, signed: { type: 'boolean', nullable: true }, encrypted: { type: 'boolean', nullable: true }, open_files: { type: 'integer' } } } } },
  privilege: readSharePrivileges,
  handler: async (p, g) => {
    const share = await nativeShare(g, p.sharename);
    if (!(await g.samba.running())) return [];
    return sessionsOf(await g.samba.status(), share);
  },
});

export const disconnectOp = op({
  command: ['disconnect'],
  method: 'POST',
  path: '/nodes/{node}/smbgateway/{sharename}/sessions/{pid}/disconnect',
  description: 'Disconnect one client from a share: the smbd process serving it (pid, as `sessions` lists) closes its connection to this share; its other shares stay. The client may connect again.',
  parameters: {
    ...nameParam,
    pid: { type: 'integer', minimum: 2, maximum: 4194304, description: 'The smbd process serving the session (see `sessions`)' },
  },
  positional: ['sharename', 'pid'],
  returns: { description: 'Who was disconnected', schema: { type: 'object', properties: { sharename: { type: 'string' }, pid: { type: 'integer' }, user: { type: 'string' }, machine: { type: 'string' } } } },
  privilege: changeSharePrivileges,
  handler: async (p, g) => {
    const share = await nativeShare(g, p.sharename);
    // Checked at the moment it runs: the pid must serve this share now (a pid can be reused).
    const rows = (await g.samba.running()) ? sessionsOf(await g.samba.status(), share) : [];
    const row = rows.find((r) => r.pid === p.pid);
    if (!row) throw invalid('pid', `no session of share ${share.sharename} is served by process ${p.pid} (it may have ended; see: pve-smbgateway sessions ${share.sharename})`);
    await g.samba.closeShareOf(row.pid, share.sharename);
    g.log(`disconnected ${row.user || 'a client'} from ${row.machine} on share ${share.sharename} (smbd ${row.pid})`);
    return { sharename: share.sharename, pid: row.pid, user: row.user, machine: row.machine };
  },
});

export interface StorageRow { path: string; storage: string | null; type: string | null; free: number | null; total: number | null; entries: string[] }

const within = (p: string, root: string) => p === root || p.startsWith(root.endsWith('/') ? root : root + '/');

/** The node's file storages of storage.cfg inside the allowed roots (where create may place a share), then the roots themselves. */
export function storageChoices(cfgText: string, node: string, roots: readonly string[]): { path: string; storage: string | null; type: string | null }[] {
  const out: { path: string; storage: string | null; type: string | null }[] = [];
  for (const d of storageDirs(parseSectionConfig(cfgText))) {
    if (d.nodes && !d.nodes.includes(node)) continue;
    if (roots.some((r) => within(d.dir, r)) && !out.some((o) => o.path === d.dir)) out.push({ path: d.dir, storage: d.id, type: d.type });
  }
  for (const r of roots) if (!out.some((o) => o.path === r)) out.push({ path: r, storage: null, type: null });
  return out;
}

export const storagesOp = op({
  command: ['storages'],
  method: 'GET',
  path: '/nodes/{node}/smbgateway/storages',
  description: 'Where a share may be placed: the file storages of this node (storage.cfg) inside the allowed storage roots, and the roots themselves, with their free space and the directories already in them.',
  parameters: {},
  returns: { description: 'Storage roots', schema: { type: 'array', items: { type: 'object', properties: { path: { type: 'string' }, storage: { type: 'string', nullable: true }, type: { type: 'string', nullable: true }, free: { type: 'integer', nullable: true }, total: { type: 'integer', nullable: true }, entries: { type: 'array', items: { type: 'string' } } } } } },
  privilege: AUDIT,
  handler: async (_p, g): Promise<StorageRow[]> => {
    const cfg = await readFile(g.settings.storageCfg, 'utf8').catch(() => '');
    const out: StorageRow[] = [];
    for (const c of storageChoices(cfg, g.settings.node, g.settings.allowedRoots)) {
      const st = await statfs(c.path).catch(() => undefined);
      if (!st) continue;
      const entries = (await readdir(c.path, { withFileTypes: true }).catch(() => [])).filter((d) => d.isDirectory() && !d.name.startsWith('.')).map((d) => join(c.path, d.name)).sort().slice(0, 200);
      out.push({ ...c, free: st.bavail * st.bsize, total: st.blocks * st.bsize, entries });
    }
    return out;
  },
});

export const sessionOperations = [sessionsOp, disconnectOp, storagesOp];
