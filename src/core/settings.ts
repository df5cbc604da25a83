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
  node: 'node', store_dir: 'storeDir', lock_dir: 'lockDir', smb_conf: 'smbConf', managed_conf: 'managedConf',
  smb_host: 'smbHost', smb_port: 'smbPort', allowed_roots: 'allowedRoots', state_dir: 'stateDir', is_pve: 'isPve',
  pve_transport: 'pveTransport', pve_api: 'pveApi', pve_fingerprint: 'pveFingerprint', pve_token_file: 'pveTokenFile',
  pve_user: 'pveUser', pve_password_file: 'pvePasswordFile', pve_bridge: 'pveBridge', pve_snippets_storage: 'pveSnippetsStorage',
  pve_task_timeout: 'pveTaskTimeout',
};

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
