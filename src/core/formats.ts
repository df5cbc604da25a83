/**
 * Named formats, declared once (as Proxmox's get_standard_option): each operation's schema takes its
 * property from here instead of writing the pattern again.
 */
import type { StringProp } from './schema.ts';

/** A Proxmox VE node name (a DNS label). */
export const NODE_RE = /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;
/** A Proxmox VE storage id (pve-storage-id). */
export const STORAGE_ID_RE = /^[a-z][a-z0-9\-_.]*[a-z0-9]$/i;
/** A domain account name as `net ads` takes it with -U (Administrator, joiner@example.com). */
export const DOMAIN_ACCOUNT_RE = /^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$/;
/** A task id. */
export const UPID_RE = /^UPID:[^\s]+$/;

export function nodeProp<D extends string>(description: D) {
  return { type: 'string', optional: true, pattern: NODE_RE, patternText: 'must be a node name', description } as const satisfies StringProp;
}

export function storageIdProp<D extends string>(description: D) {
  return { type: 'string', optional: true, pattern: STORAGE_ID_RE, patternText: 'must be a storage id (as in storage.cfg)', description } as const satisfies StringProp;
}

export function upidProp<D extends string>(description: D) {
  return { type: 'string', maxLength: 512, pattern: UPID_RE, patternText: 'must be a task id (UPID:...)', description } as const satisfies StringProp;
}

export function domainAccountProp<D extends string>(description: D) {
  return { type: 'string', optional: true, pattern: DOMAIN_ACCOUNT_RE, patternText: 'must be a domain account name such as Administrator', description } as const satisfies StringProp;
}
