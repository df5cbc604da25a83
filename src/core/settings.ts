/**
 * Where the gateway keeps things on this host. Defaults follow Proxmox VE when /etc/pve is there
 * (cluster-wide config through pmxcfs), else a plain Debian host. A JSON file named by
 * SMBGATEWAY_CONFIG (default /etc/smbgateway/gateway.json) overrides any of them.
 */
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { GatewayError } from './errors.ts';
import { nodeProp, storageIdProp } from './formats.ts';
import { validate, type Schema } from './schema.ts';
import { calendarEventRule } from './calendar.ts';
import { pruneOptionsRule } from './prune.ts';

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
  /** CephFS shares: the cluster's ceph.conf (default /etc/pve/ceph.conf on PVE, else /etc/ceph/ceph.conf). */
  cephConf?: string;
  /** The CephX identity the gateway administers Ceph as (default admin). */
  cephAdmin?: string;
  /** The CephX client smbd uses for CephFS shares (default smbgateway: client.smbgateway). */
  cephClient?: string;
  /** Scheduled backups of every share with backup_enabled and no schedule of its own (Proxmox calendar event). */
  backupSchedule?: string;
  /** Their retention (Proxmox prune options), for shares without backup_prune. */
  backupPrune?: string;
  /** Active Directory (docs/ad.md): the nsswitch.conf a join adds winbind to, and how winbindd is run. */
  nsswitchConf?: string;
  winbindControl?: 'systemd' | 'daemon';
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

/** gateway.json, checked with the same schema machinery as every operation's parameters. */
const PATH = { type: 'string', optional: true, check: (v: string) => (v.startsWith('/') ? undefined : 'must be an absolute path') } as const;
export const settingsFileSchema = {
  node: nodeProp('This node\'s name'),
  store_dir: { ...PATH, description: 'Where shares.cfg lives' },
  priv_dir: { ...PATH, description: 'Where secrets live (0700)' },
  lock_dir: { ...PATH, description: 'mkdir locks' },
  storage_cfg: { ...PATH, description: 'The cluster\'s storage.cfg' },
  smb_conf: { ...PATH, description: 'The smb.conf smbd runs with' },
  managed_conf: { ...PATH, description: 'The gateway\'s managed include file' },
  state_dir: { ...PATH, description: 'Node-local state' },
  account_uid_min: { type: 'integer', optional: true, minimum: 1, maximum: 4294967294, description: 'Lowest uid/gid of accounts the gateway makes or adopts' },
  account_uid_max: { type: 'integer', optional: true, minimum: 1, maximum: 4294967294, description: 'Highest uid/gid of accounts the gateway makes or adopts' },
  smb_host: { type: 'string', optional: true, description: 'SMB address for health probes' },
  smb_port: { type: 'integer', optional: true, minimum: 1, maximum: 65535, description: 'SMB port for health probes' },
  allowed_roots: { type: 'list', optional: true, item: (v: string) => (v.startsWith('/') && v !== '/' ? undefined : 'must be an absolute path other than /'), description: 'Storage roots share paths must resolve into' },
  is_pve: { type: 'boolean', optional: true, description: 'Whether this is a Proxmox VE node (default: /etc/pve/local exists)' },
  pve_transport: { type: 'string', optional: true, enum: ['pvesh', 'api'], description: 'How to reach Proxmox VE' },
  pve_api: { type: 'string', optional: true, pattern: /^https:\/\/\S+$/, patternText: 'must be an https:// URL', description: 'https://host:8006 of a node' },
  pve_fingerprint: { type: 'string', optional: true, description: 'SHA-256 fingerprint of that node\'s certificate' },
  pve_token_file: { ...PATH, description: '0600 file with user@realm!tokenid=secret' },
  pve_user: { type: 'string', optional: true, description: 'user@realm for ticket login' },
  pve_password_file: { ...PATH, description: '0600 file with that user\'s password' },
  pve_bridge: { type: 'string', optional: true, pattern: /^[-_.\w]{1,64}$/, patternText: 'must be a bridge name', description: 'Bridge for the guests' },
  pve_snippets_storage: storageIdProp('Storage for cloud-init snippets'),
  pve_task_timeout: { type: 'integer', optional: true, minimum: 1, maximum: 86400, description: 'Seconds to wait for a task or a guest' },
  ceph_conf: { ...PATH, description: 'The Ceph cluster\'s ceph.conf (CephFS shares)' },
  ceph_admin: { type: 'string', optional: true, pattern: /^[A-Za-z0-9_.-]{1,64}$/, patternText: 'must be a CephX id', description: 'CephX id the gateway administers Ceph as' },
  ceph_client: { type: 'string', optional: true, pattern: /^[A-Za-z0-9_.-]{1,64}$/, patternText: 'must be a CephX id', description: 'CephX client smbd uses for CephFS shares' },
  backup_schedule: { type: 'string', optional: true, maxLength: 128, check: calendarEventRule, description: 'Default backup schedule of shares with backup_enabled (Proxmox calendar event)' },
  backup_prune: { type: 'string', optional: true, maxLength: 256, check: pruneOptionsRule, description: 'Default retention of scheduled backups (Proxmox prune options)' },
  nsswitch_conf: { ...PATH, description: 'The nsswitch.conf an AD join adds winbind to (default /etc/nsswitch.conf)' },
  winbind_control: { type: 'string', optional: true, enum: ['systemd', 'daemon'], description: 'How winbindd is started after an AD join: systemd (winbind.service, default) or daemon (winbindd -D)' },
} as const satisfies Schema;

const KEYS: Record<keyof typeof settingsFileSchema, keyof Settings> = {
  node: 'node', store_dir: 'storeDir', priv_dir: 'privDir', account_uid_min: 'accountUidMin', account_uid_max: 'accountUidMax', storage_cfg: 'storageCfg', lock_dir: 'lockDir', smb_conf: 'smbConf', managed_conf: 'managedConf',
  smb_host: 'smbHost', smb_port: 'smbPort', allowed_roots: 'allowedRoots', state_dir: 'stateDir', is_pve: 'isPve',
  pve_transport: 'pveTransport', pve_api: 'pveApi', pve_fingerprint: 'pveFingerprint', pve_token_file: 'pveTokenFile',
  pve_user: 'pveUser', pve_password_file: 'pvePasswordFile', pve_bridge: 'pveBridge', pve_snippets_storage: 'pveSnippetsStorage',
  pve_task_timeout: 'pveTaskTimeout', ceph_conf: 'cephConf', ceph_admin: 'cephAdmin', ceph_client: 'cephClient',
  backup_schedule: 'backupSchedule', backup_prune: 'backupPrune', nsswitch_conf: 'nsswitchConf', winbind_control: 'winbindControl',
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
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new GatewayError('invalid', `${file}: must be a JSON object`);
  let v: Record<string, unknown>;
  try {
    v = validate(settingsFileSchema, raw, { defaults: false });
  } catch (e) {
    const err = e as GatewayError;
    throw new GatewayError('invalid', `${file}: ${err.message}${err.message.includes('unknown parameter') ? ` (known: ${Object.keys(KEYS).join(', ')})` : ''}`, err.field);
  }
  for (const [k, x] of Object.entries(v)) (s as unknown as Record<string, unknown>)[KEYS[k as keyof typeof KEYS]] = x;
  if (s.accountUidMin > s.accountUidMax) throw new GatewayError('invalid', `${file}: account_uid_min must not be above account_uid_max`, 'account_uid_min');
  return s;
}

/** The settings file text for a given Settings (used by the demo and tests). */
export function settingsJson(s: Partial<Settings>): string {
  const out: Record<string, unknown> = {};
  for (const [k, key] of Object.entries(KEYS)) if (s[key] !== undefined) out[k] = s[key];
  return JSON.stringify(out, null, 2) + '\n';
}
