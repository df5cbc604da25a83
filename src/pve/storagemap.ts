/**
 * Which Proxmox VE storage backs a directory: the ACL path a share's privileges are checked on.
 * Proxmox checks storage privileges on /storage/<id>; a share whose path lies in the directory of a
 * storage of the cluster's storage.cfg (`path` of dir, btrfs, nfs, cifs, cephfs, glusterfs;
 * `mountpoint` of zfspool) is checked on that storage's path, the deepest one when storages nest.
 * A path no storage holds is checked on /storage itself (where Proxmox puts the privileges over all
 * storages). The mapping is pure; `storageAclPaths` is the thin adapter that reads the file.
 */
import { readFile, realpath } from 'node:fs/promises';
import { posix } from 'node:path';
import { GatewayError } from '../core/errors.ts';
import type { AclPaths } from '../core/operation.ts';
import { parseSectionConfig, type Section } from '../core/sectionconfig.ts';

export interface StorageDir {
  id: string;
  type: string;
  /** Where the storage keeps its files on the nodes. */
  dir: string;
  /** Nodes the storage is restricted to (undefined: all). */
  nodes?: string[];
}

/** Storage types mounted at /mnt/pve/<id> unless their entry names another `path`. */
const MOUNTED = new Set(['nfs', 'cifs', 'cephfs', 'glusterfs']);

function clean(p: string): string {
  const n = posix.normalize(p);
  return n.length > 1 ? n.replace(/\/+$/, '') : n;
}

/** The directory of each file-based storage of a storage.cfg (block storages such as lvm or rbd have none). */
export function storageDirs(sections: readonly Section[]): StorageDir[] {
  const out: StorageDir[] = [];
  for (const s of sections) {
    let dir: string | undefined;
    if (s.type === 'zfspool') dir = s.props.mountpoint || (s.props.pool ? `/${s.props.pool}` : undefined);
    else if (s.type === 'dir' || s.type === 'btrfs') dir = s.props.path;
    else if (MOUNTED.has(s.type)) dir = s.props.path || `/mnt/pve/${s.id}`;
    if (!dir || !dir.startsWith('/')) continue;
    const nodes = s.props.nodes ? s.props.nodes.split(/[,\s]+/).filter(Boolean) : undefined;
    out.push({ id: s.id, type: s.type, dir: clean(dir), ...(nodes ? { nodes } : {}) });
  }
  return out;
}

function inside(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir === '/' ? '/' : `${dir}/`);
}

/** The storage whose directory holds `path` on `node` (the deepest such directory), if any. */
export function storageForPath(dirs: readonly StorageDir[], path: string, node?: string): StorageDir | undefined {
  const p = clean(path);
  let best: StorageDir | undefined;
  for (const d of dirs) {
    if (node !== undefined && d.nodes && !d.nodes.includes(node)) continue;
    if (inside(p, d.dir) && (!best || d.dir.length > best.dir.length)) best = d;
  }
  return best;
}

/** The ACL path privileges on `path` are checked on: /storage/<id>, else /storage. */
export function storageAclPath(dirs: readonly StorageDir[], path: string, node?: string): string {
  const s = storageForPath(dirs, path, node);
  return s ? `/storage/${s.id}` : '/storage';
}

/** The path with symbolic links resolved as far as it exists (a share path may not exist yet). */
async function resolveExisting(path: string): Promise<string> {
  const rest: string[] = [];
  let cur = clean(path);
  for (;;) {
    try {
      const real = await realpath(cur);
      return rest.length ? posix.join(real, ...rest.reverse()) : real;
    } catch {
      if (cur === '/') return clean(path);
      rest.push(posix.basename(cur));
      cur = posix.dirname(cur);
    }
  }
}

/**
 * AclPaths from a storage.cfg file, read at each question (it is small, and changes when storages
 * are added). A missing file means no storage: every path is checked on /storage.
 */
export function storageAclPaths(file: string | undefined, node: string): AclPaths {
  return {
    storage: async (fsPath) => {
      let text = '';
      if (file) {
        try { text = await readFile(file, 'utf8'); } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new GatewayError('unreachable', `${file} is not readable: cannot find the storage that holds ${fsPath}`);
        }
      }
      // Where things really are: a symbolic link must not move a path into another storage.
      const dirs = await Promise.all(storageDirs(parseSectionConfig(text)).map(async (d) => ({ ...d, dir: await resolveExisting(d.dir) })));
      return storageAclPath(dirs, await resolveExisting(fsPath), node);
    },
  };
}
