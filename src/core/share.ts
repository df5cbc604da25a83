/**
 * The share model: one schema for CLI input, API input and the stored config.
 */
import { invalid } from './errors.ts';
import { calendarEventRule } from './calendar.ts';
import { nodeProp, storageIdProp } from './formats.ts';
import { pruneOptionsRule } from './prune.ts';
import { validate, type Infer, type Schema } from './schema.ts';

export const MODES = ['native', 'lxc', 'vm'] as const;
export const SECURITY_PROFILES = ['standard', 'high'] as const;

/** Section names Samba gives a meaning of its own (compared ignoring case). */
const RESERVED_NAMES = new Set(['global', 'homes', 'printers', 'ipc$', 'print$']);
const BAD_SHARE_CHARS = /[\\/[\]:|<>+=;,*?"]/;

/** Samba's rules for a share name; returns the broken rule or undefined. */
export function shareNameRule(name: string): string | undefined {
  if (name.length === 0) return 'must not be empty';
  if (name.length > 80) return 'must be at most 80 characters';
  const bad = BAD_SHARE_CHARS.exec(name);
  if (bad) return `must not contain the character ${JSON.stringify(bad[0])} (none of \\ / [ ] : | < > + = ; , * ? ")`;
  if (/[\x00-\x1f\x7f]/.test(name)) return 'must not contain control characters';
  if (/^\s|\s$/u.test(name)) return 'must not start or end with a space';
  if (name.startsWith('-')) return 'must not start with "-" (tools would take it for an option)';
  if (RESERVED_NAMES.has(name.toLowerCase())) return `"${name}" is reserved by Samba (global, homes, printers, IPC$, print$)`;
  return undefined;
}

/** Sizes as Proxmox writes them: 50G, 512M, 1.5T, or plain bytes. */
const SIZE_RE = /^(\d+(?:\.\d+)?)([KMGTP]?)(i?B?)?$/i;
const UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40, P: 2 ** 50 };

export function parseSize(v: string): number | undefined {
  const m = SIZE_RE.exec(v.trim());
  if (!m) return undefined;
  const n = Number(m[1]) * (UNITS[(m[2] ?? '').toUpperCase()] ?? 1);
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : undefined;
}

export function sizeRule(v: string): string | undefined {
  return parseSize(v) === undefined ? 'must be a positive size such as 500M, 50G or 2T' : undefined;
}

/** Share presets: documented sets of smb.conf parameters (samba/presets.ts renders them). */
export const PRESET_NAMES = ['timemachine', 'macos', 'recycle', 'audit', 'private'] as const;
function presetRule(v: string): string | undefined {
  return (PRESET_NAMES as readonly string[]).includes(v) ? undefined : `must be one of ${PRESET_NAMES.join(', ')}`;
}

/** Local unix/Samba account and group names. */
export const ACCOUNT_RE = /^[a-z_][a-z0-9_.-]{0,31}$/;
/** Names that are system accounts on every Debian host (and in every guest), whatever the uid ranges say. */
const SYSTEM_ACCOUNTS = new Set(['root', 'nobody', 'nogroup', 'daemon', 'bin', 'sys', 'adm', 'sudo', 'shadow', 'staff', 'www-data', 'backup', 'operator', 'disk', 'users']);
export function accountRule(v: string): string | undefined {
  if (!ACCOUNT_RE.test(v)) return 'must be a local account name (lowercase letters, digits, _ . -, starting with a letter or _, at most 32)';
  if (SYSTEM_ACCOUNTS.has(v)) return `${v} is a system account and cannot be given SMB access`;
  return undefined;
}

/**
 * A domain principal as smb.conf and winbind name it: NETBIOSDOMAIN\\name. The name may hold single
 * spaces between its characters (`LAB\\Domain Users`, `LAB\\John Smith`); smb.conf lists quote it.
 */
export const DOMAIN_PRINCIPAL_RE = /^([A-Za-z0-9][A-Za-z0-9-]{0,14})\\([A-Za-z0-9_](?:[A-Za-z0-9_.$-]| (?=[A-Za-z0-9_.$-])){0,63})$/;
export const isDomainPrincipal = (v: string): boolean => DOMAIN_PRINCIPAL_RE.test(v);
/** The NetBIOS domain of a DOMAIN\\name (upper case). */
export const principalDomain = (v: string): string => (DOMAIN_PRINCIPAL_RE.exec(v)?.[1] ?? '').toUpperCase();

/** users/read_users/groups/read_groups: a local name, or a domain principal DOMAIN\\name (docs/ad.md). */
export function principalRule(v: string): string | undefined {
  if (v.startsWith('@')) return 'must be given without @ (a group goes in groups/read_groups as DOMAIN\\group or name; smb.conf gets the @)';
  if (v.includes('\\')) return isDomainPrincipal(v) ? undefined : 'must be DOMAIN\\name for a domain principal (NetBIOS domain, then a name of letters, digits, _ . - $ and single spaces between them)';
  return accountRule(v);
}

/** The one password rule, for --password-file and the API's password alike. */
export function passwordRule(pw: string): string | undefined {
  if (pw.length < 8) return 'must have at least 8 characters';
  if (pw.length > 256) return 'must have at most 256 characters';
  if (/[\x00-\x1f\x7f]/.test(pw)) return 'must not contain control characters (line breaks end a password on stdin)';
  return undefined;
}

/** Per-user passwords as the API takes them: {"user": "password"}. */
export function parsePasswords(v: unknown): Record<string, string> {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('must be an object of user names to passwords');
  const out: Record<string, string> = {};
  for (const [u, pw] of Object.entries(v)) {
    const bad = accountRule(u);
    if (bad) throw new Error(`${JSON.stringify(u)}: ${bad}`);
    if (typeof pw !== 'string') throw new Error(`the password for ${u} must be a string`);
    const rule = passwordRule(pw);
    if (rule) throw new Error(`the password for ${u} ${rule}`);
    out[u] = pw;
  }
  return out;
}

/** A share path: absolute, normalised, and something Samba reads back exactly (no %-macros, no trailing backslash). */
export function pathRule(v: string): string | undefined {
  if (!v.startsWith('/')) return 'must be an absolute path';
  if (v.split('/').includes('..')) return 'must not contain ".." components';
  if (v.includes('%')) return 'must not contain % (Samba would expand it)';
  if (v.endsWith('\\')) return 'must not end with a backslash (smb.conf would continue the line)';
  return undefined;
}

/**
 * What the gateway made for a share, as structured records written before each is made and checked
 * again before it is destroyed: the identity fields (inode, subvolume UUID, dataset GUID) tell a
 * directory the gateway made from another one that took its place since.
 */
export type Made =
  | { kind: 'dir'; path: string; dev?: number; ino?: number }
  | { kind: 'subvolume'; path: string; uuid?: string }
  | { kind: 'dataset'; name: string; guid?: string }
  | { kind: 'ct'; vmid: number }
  | { kind: 'vm'; vmid: number }
  | { kind: 'mapping'; id: string }
  | { kind: 'nfs'; client: string }
  | { kind: 'snippet'; path: string }
  /** A CephFS share: the CephX client, its ceph.conf, the file system and the directory inside it. */
  | { kind: 'cephx'; client: string; conf: string; fs: string; cephpath: string };

const MADE_FIELDS: Record<Made['kind'], Record<string, 'string' | 'number'>> = {
  dir: { path: 'string', dev: 'number', ino: 'number' },
  subvolume: { path: 'string', uuid: 'string' },
  dataset: { name: 'string', guid: 'string' },
  ct: { vmid: 'number' },
  vm: { vmid: 'number' },
  mapping: { id: 'string' },
  nfs: { client: 'string' },
  snippet: { path: 'string' },
  cephx: { client: 'string', conf: 'string', fs: 'string', cephpath: 'string' },
};
const MADE_REQUIRED: Record<Made['kind'], string> = { dir: 'path', subvolume: 'path', dataset: 'name', ct: 'vmid', vm: 'vmid', mapping: 'id', nfs: 'client', snippet: 'path', cephx: 'cephpath' };

export function parseMade(v: unknown): Made[] {
  if (!Array.isArray(v)) throw new Error('must be a list of records');
  return v.map((r: unknown) => {
    if (!r || typeof r !== 'object' || Array.isArray(r)) throw new Error('each record must be an object');
    const o = r as Record<string, unknown>;
    const fields = MADE_FIELDS[o.kind as Made['kind']];
    if (!fields) throw new Error(`unknown record kind ${JSON.stringify(o.kind)}`);
    for (const [k, x] of Object.entries(o)) {
      if (k === 'kind') continue;
      if (!fields[k] || typeof x !== fields[k]) throw new Error(`record ${String(o.kind)}: bad field ${k}`);
    }
    if (o[MADE_REQUIRED[o.kind as Made['kind']]] === undefined) throw new Error(`record ${String(o.kind)}: ${MADE_REQUIRED[o.kind as Made['kind']]} is missing`);
    return o as Made;
  });
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
function vipRule(v: string): string | undefined {
  if (v === 'auto') return undefined;
  const [ip, prefix, ...rest] = v.split('/');
  if (rest.length || !ip || !IPV4.test(ip)) return 'must be an IPv4 address (optionally /prefix) or "auto"';
  if (prefix !== undefined && !(/^\d+$/.test(prefix) && Number(prefix) >= 8 && Number(prefix) <= 32)) return 'prefix must be 8..32';
  return undefined;
}

function guestIpRule(v: string): string | undefined {
  if (v === 'dhcp') return undefined;
  const [ip, prefix, ...rest] = v.split('/');
  if (rest.length || !ip || !IPV4.test(ip) || prefix === undefined || !/^\d+$/.test(prefix) || Number(prefix) < 8 || Number(prefix) > 32) return 'must be dhcp or an IPv4 address with a /prefix (8..32)';
  return undefined;
}

/**
 * A value that goes into smb.conf as it is: Samba expands `%` variables (%U, %m, %H, ...) in most
 * parameters, and a backslash at the end of a line continues it onto the next one.
 */
export function smbValueRule(v: string): string | undefined {
  if (v.includes('%')) return 'must not contain % (Samba would expand it as a variable such as %U)';
  if (/\\\s*$/.test(v)) return 'must not end with a backslash (smb.conf would continue the line)';
  return undefined;
}

/** Unix permission bits only: 000 to 0777, without setuid, setgid or the sticky bit. */
const MODE_RE = /^0?[0-7]{3}$/;
const MODE_TEXT = 'must be permission bits 000 to 0777 in octal (setuid, setgid and the sticky bit are refused)';

/**
 * Per-share smb.conf parameters a user may add (`--option name=value`). An allowlist: anything that
 * could point Samba at another path, run a program, or weaken the security profile is refused.
 */
export const ALLOWED_SHARE_OPTIONS: Record<string, RegExp> = {
  'browseable': /^(yes|no)$/i,
  'hide dot files': /^(yes|no)$/i,
  'hide unreadable': /^(yes|no)$/i,
  'access based share enum': /^(yes|no)$/i,
  'create mask': MODE_RE,
  'directory mask': MODE_RE,
  'force create mode': MODE_RE,
  'force directory mode': MODE_RE,
  'inherit permissions': /^(yes|no)$/i,
  'inherit acls': /^(yes|no)$/i,
  'oplocks': /^(yes|no)$/i,
  'level2 oplocks': /^(yes|no)$/i,
  'strict locking': /^(yes|no|auto)$/i,
  'case sensitive': /^(yes|no|auto)$/i,
  'store dos attributes': /^(yes|no)$/i,
  'ea support': /^(yes|no)$/i,
  'map archive': /^(yes|no)$/i,
  // /pattern/pattern/: no %, which Samba expands (a pattern per logged-on user or client).
  'veto files': /^(\/[^/\\%]+)+\/$/,
  'delete veto files': /^(yes|no)$/i,
  // Samba reads a leading 0 as octal here: 010 would mean 8.
  'max connections': /^(0|[1-9]\d{0,5})$/,
  'strict sync': /^(yes|no)$/i,
  // The gateway renders 0 (synchronous I/O, see src/samba/tuning.ts); 1 turns async I/O back on for slow disks.
  'aio read size': /^(0|[1-9]\d{0,9})$/,
  'aio write size': /^(0|[1-9]\d{0,9})$/,
};

/** Why a value is refused, for the parameters with more than yes/no. */
const OPTION_RULE_TEXT: Record<string, string> = {
  'create mask': MODE_TEXT,
  'directory mask': MODE_TEXT,
  'force create mode': MODE_TEXT,
  'force directory mode': MODE_TEXT,
  'veto files': 'must be /pattern/.../ without % or backslashes',
};

export function shareOptionRule(item: string): string | undefined {
  const eq = item.indexOf('=');
  if (eq <= 0) return 'must be name=value';
  const name = item.slice(0, eq).trim().toLowerCase().replace(/_/g, ' ');
  const value = item.slice(eq + 1).trim();
  const rule = ALLOWED_SHARE_OPTIONS[name];
  if (!rule) return `parameter "${name}" may not be set through options (allowed: ${Object.keys(ALLOWED_SHARE_OPTIONS).join(', ')})`;
  if (!rule.test(value)) return `value ${JSON.stringify(value)} is not valid for "${name}"${OPTION_RULE_TEXT[name] ? `: ${OPTION_RULE_TEXT[name]}` : ''}`;
  return undefined;
}

/** The options list as smb.conf parameter pairs. */
export function shareOptions(items: readonly string[]): [string, string][] {
  return items.map((item) => {
    const eq = item.indexOf('=');
    return [item.slice(0, eq).trim().toLowerCase().replace(/_/g, ' '), item.slice(eq + 1).trim()];
  });
}

export const shareSchema = {
  sharename: { type: 'string', description: 'SMB share name (Samba rules; unique ignoring case)', check: shareNameRule },
  mode: { type: 'string', enum: MODES, description: 'Where Samba runs: native (host), lxc (container), vm (virtual machine)' },
  path: { type: 'string', description: 'Storage path to share (inside an allowed storage root; its parent directory must exist)', check: (v) => pathRule(v) ?? smbValueRule(v), maxLength: 4096 },
  quota: { type: 'string', optional: true, description: 'Size limit enforced by the filesystem (ZFS quota or btrfs qgroup), e.g. 50G', check: sizeRule },
  ad_domain: {
    type: 'string', optional: true, description: 'Active Directory domain to join',
    pattern: /^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))+$/, patternText: 'must be a DNS domain name such as example.com',
  },
  ctdb_vip: { type: 'string', optional: true, description: 'Floating IP for CTDB HA (address[/prefix] or auto)', check: vipRule },
  ha_enabled: { type: 'boolean', default: false, optional: true, description: 'High availability with CTDB' },
  monitoring_enabled: { type: 'boolean', default: true, optional: true, description: 'Collect metrics for this share' },
  backup_enabled: { type: 'boolean', default: true, optional: true, description: 'Include in backups (scheduled ones too: the backup_schedule setting applies to every share with this on)' },
  backup_schedule: { type: 'string', optional: true, maxLength: 128, check: calendarEventRule, description: 'When the daemon takes a backup, in Proxmox calendar-event syntax (daily, mon..fri 02:00, *:0/15); default: the gateway\'s backup_schedule setting' },
  backup_prune: { type: 'string', optional: true, maxLength: 256, check: pruneOptionsRule, description: 'Which snapshots a scheduled backup keeps, as Proxmox prune options (keep-last=3,keep-daily=7,keep-weekly=4,...); default: the gateway\'s backup_prune setting, else all' },
  backup_storage: { ...storageIdProp('lxc/vm: Proxmox storage receiving the guest\'s vzdump backup, taken together with each backup of the data'), optional: true },
  security_profile: { type: 'string', enum: SECURITY_PROFILES, default: 'standard', optional: true, description: 'standard: SMB2.1+ with signing; high: SMB3 with encryption required' },
  vm_template: { type: 'string', optional: true, description: 'Gateway template (VM mode)', pattern: /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/, patternText: 'must be a template name or VMID' },
  vm_memory: { type: 'integer', optional: true, minimum: 256, maximum: 262144, description: 'VM memory in MiB (vm mode; default 2048)' },
  vm_cores: { type: 'integer', optional: true, minimum: 1, maximum: 128, description: 'VM cores (vm mode; default 2)' },
  node: nodeProp('Proxmox VE node serving the share'),
  comment: { type: 'string', optional: true, maxLength: 256, description: 'Free text shown to SMB clients (no %, no trailing backslash)', check: smbValueRule },
  read_only: { type: 'boolean', default: false, optional: true, description: 'Nobody may write' },
  users: { type: 'list', default: [], optional: true, description: 'Users with read and write access (local names, or DOMAIN\\name with ad_domain)', item: principalRule },
  read_users: { type: 'list', default: [], optional: true, description: 'Users with read-only access (local names, or DOMAIN\\name with ad_domain)', item: principalRule },
  groups: { type: 'list', default: [], optional: true, description: 'Groups with read and write access (local names, or DOMAIN\\group with ad_domain)', item: principalRule },
  read_groups: { type: 'list', default: [], optional: true, description: 'Groups with read-only access (local names, or DOMAIN\\group with ad_domain)', item: principalRule },
  guest_ok: { type: 'boolean', default: false, optional: true, description: 'Allow guest access (standard profile only)' },
  options: { type: 'list', default: [], optional: true, description: 'Extra smb.conf parameters name=value from an allowlist', item: shareOptionRule },
  // Presets (native mode; see docs/day2.md and samba/presets.ts)
  presets: { type: 'list', default: [], optional: true, description: `Share presets: ${PRESET_NAMES.join(', ')} (combinable; see docs/day2.md)`, item: presetRule },
  timemachine_max_size: { type: 'string', optional: true, description: 'Size Time Machine may use on the share (timemachine preset), e.g. 500G', check: (v) => sizeRule(v) ?? (/^\d+[KMGTP]?$/i.test(v) ? undefined : 'must be a whole number with an optional K, M, G, T or P, e.g. 500G') },
  recycle_keep_days: { type: 'integer', optional: true, minimum: 1, maximum: 3650, description: 'Days a deleted file stays in the recycle bin before the daemon purges it (recycle preset; unset: kept until removed by hand)' },
  // lxc and vm modes (see docs/proxmox.md)
  bridge: { type: 'string', optional: true, pattern: /^[-_.\w]{1,64}$/, patternText: 'must be a bridge name such as vmbr0', description: 'Bridge for the guest network (default: the pve_bridge setting, else vmbr0)' },
  ip: { type: 'string', optional: true, check: guestIpRule, description: 'Guest IPv4 address with prefix (e.g. 192.0.2.10/24), or dhcp (default)' },
  gateway: { type: 'string', optional: true, pattern: IPV4, patternText: 'must be an IPv4 address', description: 'Default gateway of the guest (with a static ip)' },
  ct_memory: { type: 'integer', optional: true, minimum: 16, maximum: 262144, description: 'Container memory in MiB (lxc mode; default 128)' },
  nameserver: {
    type: 'string', optional: true, check: (v) => (v.split(' ').length <= 3 && v.split(' ').every((a) => IPV4.test(a)) ? undefined : 'must be 1 to 3 IPv4 addresses separated by single spaces'),
    description: 'DNS servers of the container (lxc mode; default: the node\'s, as Proxmox VE does); with ad_domain they must answer for the domain (e.g. its DCs, docs/ad.md)',
  },
  clone: { type: 'string', optional: true, enum: ['linked', 'full'], description: 'Clone of the template: linked (where the storage allows; default) or full' },
  vm_attach: { type: 'string', optional: true, enum: ['auto', 'virtiofs', 'rbd', 'nfs'], description: 'How a VM reaches the share path: virtiofs (local filesystems), rbd (Ceph disk), nfs (default auto)' },
  vmid: { type: 'integer', optional: true, internal: true, minimum: 100, maximum: 999999999, description: 'The guest serving the share (lxc/vm mode)' },
  guest_ip: { type: 'string', optional: true, internal: true, description: 'Address the guest got (lxc/vm mode)' },
  guest_uids: { type: 'list', default: [], optional: true, internal: true, description: 'user:uid of the share users inside the guest' },
  created: { type: 'json', parse: parseMade, default: [] as Made[], optional: true, internal: true, description: 'What the gateway created for this share (undone on delete)' },
  backing: { type: 'string', optional: true, internal: true, description: 'What holds the data (recorded by create): zfs:<dataset>, btrfs:<mountpoint> (a subvolume), cephfs:<fs name> or dir' },
} as const satisfies Schema;

export type Share = Infer<typeof shareSchema>;

type ShareKey = keyof typeof shareSchema;
const COMMON: readonly ShareKey[] = ['sharename', 'mode', 'path', 'quota', 'ad_domain', 'monitoring_enabled', 'security_profile', 'node', 'comment', 'read_only', 'users', 'read_users', 'guest_ok', 'options', 'created'];
const PRESET_KEYS: readonly ShareKey[] = ['presets', 'timemachine_max_size', 'recycle_keep_days'];
const ACCESS_KEYS: readonly ShareKey[] = ['users', 'read_users', 'groups', 'read_groups'];
/** Backups of guest shares live on the host (data snapshot, vzdump through the API): update may change them. */
const GUEST_BACKUP: readonly ShareKey[] = ['backup_enabled', 'backup_schedule', 'backup_prune', 'backup_storage'];
const GUEST: readonly ShareKey[] = ['vm_template', 'bridge', 'ip', 'gateway', 'clone', 'vmid', 'guest_ip', 'guest_uids', 'backing'];

/**
 * Which options each mode takes and which of them `update` may change (as Proxmox's SectionConfig
 * declares `options` and `fixed` per type): everything else is fixed when the share is made. An option
 * of another mode is refused instead of being stored and ignored.
 */
export const MODE_OPTIONS: Record<(typeof MODES)[number], { options: readonly ShareKey[]; updatable: readonly ShareKey[] }> = {
  native: {
    options: [...COMMON, 'groups', 'read_groups', 'ha_enabled', 'ctdb_vip', 'backup_enabled', 'backing', 'backup_schedule', 'backup_prune', ...PRESET_KEYS],
    updatable: ['comment', 'read_only', 'guest_ok', 'security_profile', 'options', 'monitoring_enabled', 'backup_enabled', 'backup_schedule', 'backup_prune', ...ACCESS_KEYS, ...PRESET_KEYS],
  },
  // The guest keeps its own smb.conf: its Samba settings are fixed until update can reach into the guest
  // (lxc and vm: who has access and the presets are changed inside the guest, see provision/access-guest.ts).
  // lxc groups: domain groups only (with ad_domain, docs/ad.md); the container has no local groups to give
  lxc: { options: [...COMMON, ...GUEST, ...GUEST_BACKUP, 'ct_memory', 'nameserver', 'groups', 'read_groups', ...PRESET_KEYS], updatable: ['monitoring_enabled', ...GUEST_BACKUP, 'users', 'read_users', ...PRESET_KEYS] },
  vm: { options: [...COMMON, ...GUEST, ...GUEST_BACKUP, 'vm_memory', 'vm_cores', 'vm_attach', ...PRESET_KEYS], updatable: ['monitoring_enabled', ...GUEST_BACKUP, 'users', 'read_users', ...PRESET_KEYS] },
};

const isDefault = (k: ShareKey, v: unknown) => {
  const d = (shareSchema[k] as { default?: unknown }).default;
  return v === undefined || JSON.stringify(v) === JSON.stringify(d);
};

/** Cross-field rules that a single property cannot express. */
export function checkShare(s: Share): Share {
  const allowed = MODE_OPTIONS[s.mode as keyof typeof MODE_OPTIONS]?.options ?? [];
  for (const k of Object.keys(shareSchema) as ShareKey[]) {
    if (allowed.includes(k) || isDefault(k, s[k])) continue;
    const modes = MODES.filter((m) => MODE_OPTIONS[m].options.includes(k));
    throw invalid(k, `is not an option of ${s.mode} shares (it applies to ${modes.join(' and ')} mode)`);
  }
  if (s.guest_ok && s.security_profile === 'high') throw invalid('guest_ok', 'guest access is not allowed with the high security profile');
  const both = s.users.find((u) => s.read_users.includes(u));
  if (both) throw invalid('read_users', `user ${both} is listed with both read and write access`);
  if (s.backup_enabled === false && s.backup_schedule) throw invalid('backup_schedule', 'backups of this share are off (backup_enabled 0): turn them on or drop the schedule');
  if (s.ha_enabled && !s.ctdb_vip) throw invalid('ctdb_vip', 'is required when ha_enabled is set');
  const names = shareOptions(s.options).map(([k]) => k);
  const twice = names.find((k, i) => names.indexOf(k) !== i);
  if (twice) throw invalid('options', `"${twice}" is given twice (smb.conf would keep only the last)`);
  for (const [field, list] of [['users', s.users], ['read_users', s.read_users], ['groups', s.groups], ['read_groups', s.read_groups]] as const) {
    const d = list.find(isDomainPrincipal);
    if (d && !s.ad_domain) throw invalid(field, `${d} is a domain principal: give ad_domain (the Active Directory domain this host is, or is to be, joined to)`);
  }
  const both2 = s.groups.find((x) => s.read_groups.includes(x));
  if (both2) throw invalid('read_groups', `group ${both2} is listed with both read and write access`);
  checkPresets(s);
  return s;
}

export function parseShare(input: Record<string, unknown>, opts: { allowInternal?: boolean } = {}): Share {
  return checkShare(validate(shareSchema, input, { allowInternal: opts.allowInternal }));
}

/** All account names a share refers to. */
export function shareUsers(s: Share): string[] {
  return [...new Set([...s.users, ...s.read_users])];
}

/** Which presets combine, and the settings that belong to one. */
function checkPresets(s: Share): void {
  const p = s.presets;
  const twice = p.find((x, i) => p.indexOf(x) !== i);
  if (twice) throw invalid('presets', `${twice} is given twice`);
  if (s.timemachine_max_size !== undefined && !p.includes('timemachine')) throw invalid('timemachine_max_size', 'applies to the timemachine preset only (add --preset timemachine)');
  if (s.recycle_keep_days !== undefined && !p.includes('recycle')) throw invalid('recycle_keep_days', 'applies to the recycle preset only (add --preset recycle)');
  if (p.includes('private') && s.guest_ok) throw invalid('presets', 'private gives each user a directory of their own: it cannot be combined with guest access');
  if (p.includes('private') && s.path.includes("'")) throw invalid('path', "must not contain ' with the private preset (the per-user directory is made by a command line)");
  if (p.includes('audit') && s.mode !== 'native') throw invalid('presets', `audit is a native-mode preset: in ${s.mode} mode its records would stay in the guest's log, which the audit query and metrics do not read`);
  if (s.recycle_keep_days !== undefined && s.mode === 'vm' && s.vm_attach === 'rbd') throw invalid('recycle_keep_days', 'the share\'s data is on an RBD disk inside the VM, where the daemon cannot purge the recycle bin');
  if (p.includes('timemachine') && s.read_only) throw invalid('presets', 'timemachine needs a writable share (read_only is set)');
}
