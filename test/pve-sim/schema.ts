/**
 * A generic validator for Proxmox VE API requests, driven by the official schema (apidata.json, read
 * at run time from ../shared/pve-api relative to the repository, never copied in). It finds the
 * endpoint for a method and path, then checks every parameter the way a PVE node's JSONSchema code
 * does: unknown parameters (additionalProperties 0), types, enums, patterns, minimum/maximum, length,
 * required parameters, `requires`, named formats and property strings (mp[n], net[n], rootfs,
 * ipconfig[n], virtiofs[n], ...) against their format. Messages follow Proxmox's wording.
 */
import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { resolve } from 'node:path';

export interface PropSchema {
  type?: string;
  optional?: number | boolean;
  default?: unknown;
  enum?: string[];
  pattern?: string;
  minimum?: number | string;
  maximum?: number | string;
  minLength?: number;
  maxLength?: number;
  format?: string | Record<string, PropSchema>;
  format_description?: string;
  default_key?: number;
  alias?: string;
  keyAlias?: string;
  requires?: string;
  items?: PropSchema;
  typetext?: string;
  description?: string;
}
export interface MethodInfo {
  name: string;
  method: string;
  parameters: { additionalProperties?: number; properties?: Record<string, PropSchema> };
  permissions?: { check?: unknown[]; user?: string; description?: string };
  returns?: PropSchema;
  allowtoken?: number;
  protected?: number;
}
interface TreeNode { path: string; info?: Record<string, MethodInfo>; children?: TreeNode[] }

export const REPO_ROOT = resolve(import.meta.dirname, '../..');
/** The schema beside the checkout (../shared), or where PVE_APIDATA names it (a worktree elsewhere). */
export const APIDATA = process.env.PVE_APIDATA ?? resolve(REPO_ROOT, '../shared/pve-api/apidata.json');

export class ApiSchema {
  readonly endpoints: { path: string; re: RegExp; names: string[]; info: Record<string, MethodInfo> }[] = [];

  constructor(file = APIDATA) {
    const tree = JSON.parse(readFileSync(file, 'utf8')) as TreeNode[];
    const walk = (nodes: TreeNode[]) => {
      for (const n of nodes) {
        if (n.info) {
          const names: string[] = [];
          const re = new RegExp('^' + n.path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{(\w[\w-]*)\}/g, (_, name: string) => { names.push(name); return '([^/]+)'; }) + '$');
          this.endpoints.push({ path: n.path, re, names, info: n.info });
        }
        if (n.children) walk(n.children);
      }
    };
    walk(tree);
  }

  /** The endpoint for a concrete path, with its path parameters. */
  match(path: string): { path: string; info: Record<string, MethodInfo>; pathParams: Record<string, string> } | undefined {
    // Prefer the pattern with the fewest placeholders (literal segments beat {param}).
    let best: { path: string; info: Record<string, MethodInfo>; pathParams: Record<string, string>; n: number } | undefined;
    for (const e of this.endpoints) {
      const m = e.re.exec(path);
      if (!m) continue;
      if (best && best.n <= e.names.length) continue;
      const pathParams: Record<string, string> = {};
      e.names.forEach((n, i) => { pathParams[n] = decodeURIComponent(m[i + 1]!); });
      best = { path: e.path, info: e.info, pathParams, n: e.names.length };
    }
    return best;
  }

  method(path: string, method: string): MethodInfo | undefined {
    return this.match(path)?.info[method];
  }
}

// ---------------------------------------------------------------------------------------------
// Perl regexes from the schema as JavaScript ones, anchored as PVE anchors them.

const reCache = new Map<string, RegExp | null>();
export function perlRegex(src: string): RegExp | null {
  if (reCache.has(src)) return reCache.get(src)!;
  let flags = '';
  let s = src.replace(/\(\?\^([a-z]*):/g, (_, f: string) => { if (f.includes('i')) flags = 'i'; return '(?:'; });
  s = s.replace(/\\z/g, '$').replace(/\\A/g, '^').replace(/\\Z/g, '$');
  let re: RegExp | null;
  try { re = new RegExp(`^(?:${s})$`, flags); } catch { re = null; }
  reCache.set(src, re);
  return re;
}

// ---------------------------------------------------------------------------------------------
// Named formats (PVE::JSONSchema register_format). Formats not listed here are not checked.

const LABEL = '[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?';
const DNS_NAME = new RegExp(`^(?:${LABEL}\\.)*${LABEL}$`);
const STORAGE_ID = /^[a-z][a-z0-9\-_.]*[a-z0-9]$/i;
const VOLUME_ID = /^[a-z][a-z0-9\-_.]*[a-z0-9]:.+$/i;
function cidr(v: string, fam: 4 | 6): boolean {
  const [ip, len, ...rest] = v.split('/');
  if (rest.length || ip === undefined || len === undefined || !/^\d+$/.test(len)) return false;
  return fam === 4 ? isIPv4(ip) && Number(len) <= 32 : isIPv6(ip) && Number(len) <= 128;
}
function absPath(v: string): boolean { return v.startsWith('/') && !/(^|\/)\.\.?(\/|$)/.test(v) && !v.includes('\0'); }

/** A named property-string format (for formats given by name whose keys the schema shows only in typetext). */
const NAMED_PROPERTY_FORMATS: Record<string, Record<string, PropSchema>> = {
  'pve-qm-ipconfig': {
    ip: { type: 'string', format: 'pve-ipv4-config', optional: 1 },
    gw: { type: 'string', format: 'ipv4', optional: 1 },
    ip6: { type: 'string', format: 'pve-ipv6-config', optional: 1 },
    gw6: { type: 'string', format: 'ipv6', optional: 1 },
  },
  'pve-qm-cicustom': {
    meta: { type: 'string', format: 'pve-volume-id', optional: 1 },
    network: { type: 'string', format: 'pve-volume-id', optional: 1 },
    user: { type: 'string', format: 'pve-volume-id', optional: 1 },
    vendor: { type: 'string', format: 'pve-volume-id', optional: 1 },
  },
  'pve-startup-order': {
    order: { type: 'integer', minimum: 0, optional: 1, default_key: 1 },
    up: { type: 'integer', minimum: 0, optional: 1 },
    down: { type: 'integer', minimum: 0, optional: 1 },
  },
  'pve-qm-boot': {
    order: { type: 'string', optional: 1, pattern: '[\\w;]+', default_key: 1 },
  },
};

const FORMATS: Record<string, (v: string) => string | undefined> = {
  'pve-node': (v) => (/^[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$/.test(v) ? undefined : `value does not look like a valid node name`),
  'pve-vmid': (v) => (/^[1-9][0-9]{2,8}$/.test(v) ? undefined : `value does not look like a valid VM ID`),
  'pve-configid': (v) => (/^[a-z][a-z0-9_-]+$/i.test(v) ? undefined : `invalid configuration ID '${v}'`),
  'pve-storage-id': (v) => (STORAGE_ID.test(v) ? undefined : `storage ID '${v}' contains illegal characters`),
  'pve-poolid': (v) => (/^[A-Za-z0-9_\-]+(?:\/[A-Za-z0-9_\-]+){0,2}$/.test(v) ? undefined : `invalid pool ID '${v}'`),
  'pve-userid': (v) => (/^[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+$/.test(v) ? undefined : `value '${v}' does not look like a valid user name`),
  'pve-realm': (v) => (/^[A-Za-z][A-Za-z0-9.\-_]+$/.test(v) ? undefined : `value '${v}' does not look like a valid realm`),
  'dns-name': (v) => (DNS_NAME.test(v) ? undefined : `value '${v}' does not look like a valid DNS name`),
  'ipv4': (v) => (isIPv4(v) ? undefined : `value does not look like a valid IPv4 address`),
  'ipv6': (v) => (isIPv6(v) ? undefined : `value does not look like a valid IPv6 address`),
  'ip': (v) => (isIPv4(v) || isIPv6(v) ? undefined : `value does not look like a valid IP address`),
  'CIDRv4': (v) => (cidr(v, 4) ? undefined : `value does not look like a valid IPv4 network configuration`),
  'CIDRv6': (v) => (cidr(v, 6) ? undefined : `value does not look like a valid IPv6 network configuration`),
  'CIDR': (v) => (cidr(v, 4) || cidr(v, 6) ? undefined : `value does not look like a valid CIDR network`),
  'pve-ipv4-config': (v) => (v === 'dhcp' || v === 'manual' || cidr(v, 4) ? undefined : `value does not look like a valid IPv4 network configuration`),
  'pve-ipv6-config': (v) => (['dhcp', 'auto', 'manual'].includes(v) || cidr(v, 6) ? undefined : `value does not look like a valid IPv6 network configuration`),
  'mac-addr': (v) => (/^[a-f0-9][02468ace](?::[a-f0-9]{2}){5}$/i.test(v) ? undefined : `value does not look like a valid unicast MAC address`),
  'pve-bridge-id': (v) => (/^[-_.\w\d]+$/.test(v) ? undefined : `invalid bridge ID '${v}'`),
  'pve-volume-id': (v) => (VOLUME_ID.test(v) ? undefined : `unable to parse volume ID '${v}'`),
  'pve-volume-id-or-qm-path': (v) => (VOLUME_ID.test(v) || absPath(v) || v === 'none' || v === 'cdrom' || /^[a-z][a-z0-9\-_.]*[a-z0-9]:\d+(\.\d+)?$/i.test(v) ? undefined : `unable to parse volume ID '${v}'`),
  'pve-volume-id-or-absolute-path': (v) => (VOLUME_ID.test(v) || absPath(v) ? undefined : `unable to parse volume ID '${v}'`),
  'pve-lxc-mp-string': (v) => {
    if (VOLUME_ID.test(v) || /^[a-z][a-z0-9\-_.]*[a-z0-9]:\d+(\.\d+)?$/i.test(v)) return undefined;
    if (!v.startsWith('/') && !/^\w/.test(v)) return `invalid mount point '${v}'`;
    if (/(^|\/)\.\.?(\/|$)/.test(v)) return `${v} contains illegal character sequences ('.' or '..' path components)`;
    return undefined;
  },
  'pve-storage-path': (v) => (absPath(v) ? undefined : `invalid path '${v}'`),
  'pve-storage-path-in-property-string': (v) => (absPath(v) && !/[,=]/.test(v) ? undefined : `invalid path '${v}'`),
  'pve-tag-list': (v) => (v.split(/[;, ]/).filter(Boolean).every((t) => /^[a-z0-9_][a-z0-9_\-+.]*$/i.test(t)) ? undefined : `invalid tag list '${v}'`),
  'pve-ha-resource-or-vm-id': (v) => (/^(?:(?:ct|vm):)?[1-9][0-9]{2,8}$/.test(v) ? undefined : `value does not look like a valid HA resource id`),
  'pve-storage-content': (v) => (/^(?:images|rootdir|vztmpl|iso|backup|snippets|import|none)$/.test(v) ? undefined : `invalid content type '${v}'`),
  'disk-size': (v) => (/^\d+(?:\.\d+)?[KMGT]?$/.test(v) ? undefined : `invalid disk size '${v}'`),
  'urlencoded': (v) => (/^[-%a-zA-Z0-9_.!~*'()]*$/.test(v) ? undefined : `invalid url encoded string '${v}'`),
  'email': (v) => (/^[\w+\-~.]+@[A-Za-z0-9\-.]+$/.test(v) ? undefined : `value does not look like a valid email address`),
};

function checkFormatName(name: string, v: string, path: string): string | undefined {
  const prop = NAMED_PROPERTY_FORMATS[name];
  if (prop) return checkPropertyString(prop, v, path);
  const f = FORMATS[name];
  if (f) return f(v);
  if (name.endsWith('-list')) {
    const base = name.slice(0, -5);
    if (FORMATS[base] || NAMED_PROPERTY_FORMATS[base]) {
      for (const item of v.split(/[;,\s\0]+/).filter(Boolean)) {
        const e = checkFormatName(base, item, path);
        if (e) return e;
      }
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Property strings: `[key=]value,key=value,...` with default_key, alias and keyAlias.

export function parsePropertyString(fmt: Record<string, PropSchema>, v: string): { res: Record<string, string>; error?: string } {
  const res: Record<string, string> = {};
  const defaultKey = Object.entries(fmt).find(([, p]) => p.default_key)?.[0];
  for (const part of v.split(',')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    let k: string;
    let val: string;
    if (eq < 0) {
      // A bare value: the default key, or a keyAlias key (net0: `virtio` = model=virtio).
      if (fmt[part]?.keyAlias) { k = fmt[part]!.keyAlias!; val = part; }
      else if (defaultKey) { k = defaultKey; val = part; }
      else return { res, error: `value without key, but schema does not define a default key` };
    } else {
      k = part.slice(0, eq);
      val = part.slice(eq + 1);
      const p = fmt[k];
      if (p?.keyAlias) { // model given as key: `virtio=MAC`
        if (k in res || p.keyAlias in res) return { res, error: `duplicate key in comma-separated list property: ${p.keyAlias}` };
        res[p.keyAlias] = k;
        k = p.alias!;
      } else if (p?.alias) k = p.alias;
    }
    if (!fmt[k]) return { res, error: `invalid key in comma-separated list property: ${k}` };
    if (k in res) return { res, error: `duplicate key in comma-separated list property: ${k}` };
    res[k] = val;
  }
  return { res };
}

function checkPropertyString(fmt: Record<string, PropSchema>, v: string, path: string): string | undefined {
  const { res, error } = parsePropertyString(fmt, v);
  if (error) return `invalid format - ${error}`;
  const errs: string[] = [];
  for (const [k, p] of Object.entries(fmt)) {
    if (p.alias || p.keyAlias) continue;
    if (!(k in res)) {
      if (!p.optional) errs.push(`${path}.${k}: property is missing and it is not optional`);
      continue;
    }
    const e = checkValue(p, res[k]!, `${path}.${k}`);
    if (e) errs.push(`${path}.${k}: ${e}`);
  }
  return errs.length ? `invalid format - ${errs.join('\n')}\n` : undefined;
}

// ---------------------------------------------------------------------------------------------

const TRUE = /^(?:1|true|yes|on)$/i;
const FALSE = /^(?:0|false|no|off)$/i;

/** One value against its property schema; the broken rule in PVE's words, or undefined. */
export function checkValue(p: PropSchema, v: string, path: string): string | undefined {
  const type = p.type ?? 'string';
  if (type === 'integer') {
    if (!/^[+-]?\d+$/.test(v)) return `type check ('integer') failed - got '${v}'`;
  } else if (type === 'number') {
    if (!/^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/.test(v)) return `type check ('number') failed - got '${v}'`;
  } else if (type === 'boolean') {
    if (!TRUE.test(v) && !FALSE.test(v)) return `type check ('boolean') failed - got '${v}'`;
  }
  if (type === 'integer' || type === 'number') {
    const n = Number(v);
    if (p.minimum !== undefined && n < Number(p.minimum)) return `value must have a minimum value of ${p.minimum}`;
    if (p.maximum !== undefined && n > Number(p.maximum)) return `value must have a maximum value of ${p.maximum}`;
  }
  if (type === 'string') {
    if (p.maxLength !== undefined && v.length > p.maxLength) return `value may only be ${p.maxLength} characters long`;
    if (p.minLength !== undefined && v.length < p.minLength) return `value must be at least ${p.minLength} characters long`;
  }
  if (p.enum && !p.enum.includes(v)) return `value '${v}' does not have a value in the enumeration '${p.enum.join(', ')}'`;
  if (p.pattern) {
    const re = perlRegex(p.pattern);
    if (re && !re.test(v)) return `value does not match the regex pattern`;
  }
  if (p.format !== undefined) {
    if (typeof p.format === 'string') return checkFormatName(p.format, v, path);
    return checkPropertyString(p.format, v, path);
  }
  return undefined;
}

export type Values = Record<string, string | string[]>;

/** The property schema that applies to a parameter name (`mp0` matches `mp[n]`). */
export function propFor(props: Record<string, PropSchema>, name: string): PropSchema | undefined {
  if (props[name]) return props[name];
  const m = /^([a-z_-]+?)(\d+)$/i.exec(name);
  if (m && props[`${m[1]}[n]`]) return props[`${m[1]}[n]`];
  return undefined;
}

/**
 * Validate a request's parameters (path parameters included) against a method's schema.
 * Returns Proxmox's `errors` map: empty when the request is acceptable.
 */
export function validateParams(info: MethodInfo, values: Values): Record<string, string> {
  const props = info.parameters.properties ?? {};
  const errors: Record<string, string> = {};
  for (const [k, raw] of Object.entries(values)) {
    const p = propFor(props, k);
    if (!p) {
      if (info.parameters.additionalProperties === 0) errors[k] = 'property is not defined in schema and the schema does not allow additional properties';
      continue;
    }
    const list = Array.isArray(raw) ? raw : [raw];
    if (p.type === 'array') {
      for (const item of list) {
        const e = p.items ? checkValue(p.items, item, k) : undefined;
        if (e) { errors[k] = e; break; }
      }
      continue;
    }
    if (list.length > 1) { errors[k] = `type check ('${p.type ?? 'string'}') failed - got an array`; continue; }
    const e = checkValue(p, list[0] ?? '', k);
    if (e) errors[k] = e;
  }
  for (const [k, p] of Object.entries(props)) {
    if (k.endsWith('[n]')) continue;
    if (!p.optional && !(k in values)) errors[k] = 'property is missing and it is not optional';
    if (p.requires && k in values && !(p.requires in values)) errors[p.requires] = `parameter '${p.requires}' is required by '${k}'`;
  }
  return errors;
}
