/**
 * Where the gateway keeps things on this host. Defaults follow Proxmox VE when /etc/pve is there
 * (cluster-wide config through pmxcfs), else a plain Debian host. A JSON file named by
 * SMBGATEWAY_CONFIG (default /etc/smbgateway/gateway.json) overrides any of them.
 */
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { GatewayError } from './errors.ts';

export interface Settings {
  /** Proxmox VE node (pmxcfs mounted). */
  isPve: boolean;
  node: string;
  /** shares.cfg lives here, secrets in priv/ beside it. */
  storeDir: string;
  /** Secrets (0600 files); see privDirOf for the default. */
  privDir?: string;
  /** Local accounts the gateway may create or adopt have uids in this range (login.defs' UID_MIN..UID_MAX). */
  accountUidMin: number;
  accountUidMax: number;
  /** The cluster's storage.cfg, read by migrate and to find the storage behind a share path. */
  storageCfg: string;
  /** mkdir locks: /etc/pve/priv/lock on PVE, a local dir elsewhere. */
  lockDir: string;
  /** The smb.conf smbd runs with, and our managed fragment that it includes. */
  smbConf: string;
  managedConf: string;
  /** SMB address and port for health probes. */
  smbHost: string;
  smbPort: number;
  /** Share paths must resolve inside one of these. */
  allowedRoots: string[];
  /** Node-local state (metrics database, task logs). */
  stateDir: string;
  /** Proxmox VE access for lxc/vm modes (see docs/proxmox.md): `pvesh` on the node as root, or the HTTPS API. */
  pveTransport?: 'pvesh' | 'api';
  /** https://host:8006 of a node (api transport). */
  pveApi?: string;
  /** SHA-256 fingerprint of that node's certificate (pinned). */
  pveFingerprint?: string;
  /** 0600 file with `user@realm!tokenid=secret` (API token), or */
  pveTokenFile?: string;
  /** user@realm and a 0600 file with the password (ticket login, e.g. root@pam for bind mounts). */
  pveUser?: string;
  pvePasswordFile?: string;
  /** Bridge for the guests' network (default vmbr0). */
  pveBridge?: string;
  /** Storage whose snippets/ directory receives cloud-init user-data (default local). */
  pveSnippetsStorage?: string;
  /** Seconds to wait for a Proxmox VE task or a guest to come up. */
  pveTaskTimeout?: number;
}

export function defaultSettings(): Settings {
  const isPve = existsSync('/etc/pve/local');
  return {
    isPve,
    node: hostname().split('.')[0] ?? 'localhost',
    storeDir: isPve ? '/etc/pve/smbgateway' : '/etc/smbgateway',
    accountUidMin: 1000,
    accountUidMax: 60000,
    storageCfg: '/etc/pve/storage.cfg',
    lockDir: isPve ? '/etc/pve/priv/lock' : '/run/lock/smbgateway',
    smbConf: '/etc/samba/smb.conf',
    managedConf: '/etc/samba/smbgateway.conf',
    smbHost: '127.0.0.1',
    smbPort: 445,
    allowedRoots: ['/srv', '/tank', '/rpool', '/mnt', '/var/lib/vz', '/data'],
    stateDir: '/var/lib/smbgateway',
  };
}

const KEYS: Record<string, keyof Settings> = {
  node: 'node', store_dir: 'storeDir', priv_dir: 'privDir', account_uid_min: 'accountUidMin', account_uid_max: 'accountUidMax', storage_cfg: 'storageCfg', lock_dir: 'lockDir', smb_conf: 'smbConf', managed_conf: 'managedConf',
  smb_host: 'smbHost', smb_port: 'smbPort', allowed_roots: 'allowedRoots', state_dir: 'stateDir', is_pve: 'isPve',
  pve_transport: 'pveTransport', pve_api: 'pveApi', pve_fingerprint: 'pveFingerprint', pve_token_file: 'pveTokenFile',
  pve_user: 'pveUser', pve_password_file: 'pvePasswordFile', pve_bridge: 'pveBridge', pve_snippets_storage: 'pveSnippetsStorage',
  pve_task_timeout: 'pveTaskTimeout',
};

/**
 * Where secrets live: on a Proxmox VE node pmxcfs keeps only /etc/pve/priv private (elsewhere under
 * /etc/pve files are 0640 root:www-data and chmod fails), so the store's secrets go to
 * /etc/pve/priv/smbgateway; a store elsewhere keeps them in priv/ beside it (0700 dir, 0600 files).
 */
export function privDirOf(s: Pick<Settings, 'storeDir' | 'privDir'>): string {
  if (s.privDir) return s.privDir;
  return s.storeDir.replace(/\/+$/, '') === '/etc/pve/smbgateway' ? '/etc/pve/priv/smbgateway' : `${s.storeDir.replace(/\/+$/, '')}/priv`;
}

export function settingsPath(): string {
  return process.env.SMBGATEWAY_CONFIG ?? '/etc/smbgateway/gateway.json';
}

export function loadSettings(file = settingsPath()): Settings {
  const s = defaultSettings();
  if (!existsSync(file)) return s;
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new GatewayError('invalid', `${file}: not valid JSON (${(e as Error).message})`);
  }
  for (const [k, v] of Object.entries(raw)) {
    const key = KEYS[k];
    if (!key) throw new GatewayError('invalid', `${file}: unknown setting "${k}" (known: ${Object.keys(KEYS).join(', ')})`, k);
    (s as unknown as Record<string, unknown>)[key] = v;
  }
  return s;
}

/** The settings file text for a given Settings (used by the demo and tests). */
export function settingsJson(s: Partial<Settings>): string {
  const out: Record<string, unknown> = {};
  for (const [k, key] of Object.entries(KEYS)) if (s[key] !== undefined) out[k] = s[key];
  return JSON.stringify(out, null, 2) + '\n';
}
